#!/usr/bin/env bash
# Makes target/sdk-venv with the official Python SDK, for tests/python_sdk.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/sdk-venv
if ! "$venv/bin/python" -c 'import magic_hour' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'magic-hour==0.90.0'
fi
