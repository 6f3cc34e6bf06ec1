#!/usr/bin/env bash
# The whole test suite: formatting, lints, the in-process suites as an unprivileged user, then
# every Rust test (mounted ones included, on a real kernel mount) and the official Python SDK
# against `mhfs mock`. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
scripts/test-unprivileged.sh
scripts/posix-suites.sh
cargo nextest run --no-fail-fast
