#!/usr/bin/env bash
# The whole test suite: formatting, lints, every Rust test (mounted ones included) and the
# official Python SDK against `mhfs mock`. Needs what .ci/run installs (fuse3, rsync).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/sdk-venv.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --no-fail-fast
else
  cargo test --no-fail-fast
fi
