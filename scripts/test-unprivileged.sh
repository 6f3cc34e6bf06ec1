#!/usr/bin/env bash
# The in-process suites (the core, the model-based test, the engine against the mock, unit tests)
# need no kernel mount and no root: run them as an unprivileged user to prove it. As root, a user
# `mhfs-test` is created for this if missing; as a normal user, they simply run.
set -euo pipefail
cd "$(dirname "$0")/.."
suites=(--lib --test core --test core_model --test engine --test engine_faults)
bins=$(cargo test --no-run --message-format=json "${suites[@]}" 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')
run=()
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if [ "$(id -u)" = 0 ]; then
  id mhfs-test >/dev/null 2>&1 || useradd --system --no-create-home mhfs-test
  run=(runuser -u mhfs-test -- env -u CI HOME="$dir")
  # The checkout may sit where that user cannot reach (under /root): run copies.
  chmod 755 "$dir"
fi
for bin in $bins; do
  cp "$bin" "$dir/"
  echo "unprivileged: $(basename "$bin")"
  (cd "$dir" && "${run[@]}" "$dir/$(basename "$bin")" -q)
done
