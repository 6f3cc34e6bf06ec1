#!/usr/bin/env bash
# Fault campaign, as a benchmark of outcomes: tests/mount_campaign.rs at a big size, in release
# mode, through a real mount (needs root and /dev/fuse). It measures what becomes of jobs when
# the API misbehaves: the mock fails 20 % of requests with 500, throttles 10 % with 429 and a
# 1 s Retry-After, drops 5 % of connections after acting, and signs 3-second download URLs,
# while the daemon is killed with SIGKILL and remounted (one kill per 25 jobs). It prints one
# summary line: jobs, complete, errors by code, unknown outcomes (and how many of those
# creates the mock received / had their answer dropped), duplicate creates, kills, requests and
# seconds. BENCHMARKS.md ("Fault campaign") records results. The test's assertions still hold:
# a failure prints its seed.
#   scripts/fault-campaign.sh [SEED]          (CAMPAIGN_JOBS=300 by default)
#   CAMPAIGN_JOBS=1000 scripts/fault-campaign.sh 42
set -euo pipefail
cd "$(dirname "$0")/.."
export CAMPAIGN_JOBS=${CAMPAIGN_JOBS:-300}
if [ $# -gt 0 ]; then export CAMPAIGN_SEED=$1; fi
log=$(mktemp)
status=0
trap 'if [ "$status" = 0 ]; then rm -f "$log"; fi' EXIT
cargo test --release --test mount_campaign -- --nocapture >"$log" 2>&1 || status=$?
grep -E '^(campaign seed|fault campaign:|left in the inbox)' "$log" || true
if [ "$status" != 0 ]; then
  echo "FAILED (exit $status); the end of the output:" >&2
  grep -v '^\[' "$log" | tail -40 >&2
  echo "full output: $log" >&2
fi
exit "$status"
