#!/usr/bin/env bash
# A tour: mounts in a temp dir on the embedded mock, submits jobs of different kinds, shows
# their status changing and their outputs, removes one, and unmounts.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin=$PWD/target/debug/mhfs
tmp=$(mktemp -d)
mnt=$tmp/mnt
mkdir -p "$mnt" "$tmp/in"
"$bin" mount "$mnt" --state-dir "$tmp/state" --mock-render-time 3 --poll-interval 0.5 --settle 1 \
  2>"$tmp/mhfs.log" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
until [ -e "$mnt/README.txt" ]; do sleep 0.1; done
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; eval "$*"; }
statuses() { for j in "$mnt"/jobs/*; do printf '  %-12s %s\n' "$(basename "$j")" "$(cat "$j/status")"; done; }

say "ls $mnt; head -n 8 $mnt/README.txt"
say "echo 'a lighthouse at dawn' > $mnt/inbox/ai-image-generator/lighthouse.txt"
say "echo 'Hello from the drive' > $mnt/inbox/ai-voice-generator/hello.txt"
say "echo 'a dog running on a beach' > $mnt/inbox/text-to-video/dog.txt"
for _ in 1 2 3 4 5 6 7 8; do echo "  -- $(date +%T)"; statuses; sleep 0.7; done
say "ls -l $mnt/jobs/lighthouse $mnt/jobs/dog"
# A photo of our own (the generated lighthouse) for the upscaler, and a face-swap folder.
cp "$mnt/jobs/lighthouse/output.png" "$tmp/in/holiday.png"
say "cp $tmp/in/holiday.png $mnt/inbox/ai-image-upscaler/"
mkdir -p "$tmp/in/me" && cp "$tmp/in/holiday.png" "$tmp/in/me/face.png" && cp "$mnt/jobs/dog/output.mp4" "$tmp/in/me/clip.mp4"
say "cp -r $tmp/in/me $mnt/inbox/face-swap/"
for _ in 1 2 3 4 5 6 7 8; do echo "  -- $(date +%T)"; statuses; sleep 0.7; done
say "cat $mnt/jobs/holiday/request.json"
say "file $mnt/jobs/*/output* 2>/dev/null || ls -l $mnt/jobs/*/"
say "rm -r $mnt/jobs/hello && ls $mnt/jobs"
say "kill -TERM $pid && wait $pid"
echo "demo: done (log: mhfs printed $(wc -l <"$tmp/mhfs.log") lines)"
