#!/usr/bin/env bash
# Throughput through the mount, as ratios against the same work on the local disk measured in
# the same run (machines are shared and noisy: compare ratios, not seconds). Prints a Markdown
# table; BENCHMARKS.md records results.
#   scripts/bench.sh [SIZE_MIB]   (default 512)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-512}
cargo build --release --quiet
bin=$PWD/target/release/mhfs
tmp=$(mktemp -d)
mnt=$tmp/mnt; mkdir -p "$mnt" "$tmp/local"
"$bin" mock --listen 127.0.0.1:0 --render-time 0 >"$tmp/mock.url" 2>"$tmp/mock.log" &
mock=$!
until [ -s "$tmp/mock.url" ]; do sleep 0.05; done
"$bin" mount "$mnt" --api-url "$(cat "$tmp/mock.url")" --state-dir "$tmp/state" --poll-interval 0.1 2>"$tmp/mhfs.log" &
mhfs=$!
cleanup() { kill "$mhfs" 2>/dev/null; wait "$mhfs" 2>/dev/null; kill "$mock" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
until [ -e "$mnt/README.txt" ]; do sleep 0.05; done

now() { date +%s.%N; }
secs() { local t0=$1; echo "$(now) - $t0" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
best() { # best of 3 runs of a command, in seconds
  local b=999999 t0 t
  for _ in 1 2 3; do t0=$(now); eval "$1" >/dev/null 2>&1; t=$(secs "$t0"); b=$(echo "if ($t < $b) $t else $b" | bc -l); done
  echo "$b"
}

# Writes: a scratch file in the inbox (staged on local disk) vs the same dd on the local disk.
w_local=$(best "dd if=/dev/zero of=$tmp/local/w.bin bs=1M count=$size conv=fsync")
w_mount=$(best "dd if=/dev/zero of=$mnt/inbox/ai-video-upscaler/.w.bin bs=1M count=$size conv=fsync")

# Reads: a downloaded output (the mock returns the input video's bytes) vs the same file read
# from the state directory directly; warm page cache on both sides.
head -c $((size << 20)) /dev/urandom > "$tmp/local/big.mp4"
cp "$tmp/local/big.mp4" "$mnt/inbox/ai-video-upscaler/"
until [ "$(cat "$mnt/jobs/big/status" 2>/dev/null)" = complete ]; do sleep 0.1; done
out=$(find "$tmp/state/jobs" -name output.mp4)
cat "$out" "$mnt/jobs/big/output.mp4" >/dev/null
r_local=$(best "cat $out")
r_mount=$(best "cat $mnt/jobs/big/output.mp4")

# Listing: ls -l of jobs/ with 200 jobs vs ls -l of a local folder of 200 files.
for i in $(seq 1 200); do echo "p$i" > "$mnt/inbox/ai-qr-code-generator/q$i.txt"; done
until [ "$(ls "$mnt/jobs" | wc -l)" -ge 201 ]; do sleep 0.1; done
mkdir -p "$tmp/local/list"; for i in $(seq 1 200); do echo x > "$tmp/local/list/f$i"; done
l_local=$(best "for i in 1 2 3 4 5 6 7 8 9 10; do ls -l $tmp/local/list; done")
l_mount=$(best "for i in 1 2 3 4 5 6 7 8 9 10; do ls -l $mnt/jobs; done")

echo "| what | local disk (s) | through mhfs (s) | mhfs / local |"
echo "|---|---|---|---|"
printf '| write %s MiB (dd, fsync) | %.3f | %.3f | %s |\n' "$size" "$w_local" "$w_mount" "$(ratio "$w_mount" "$w_local")"
printf '| read %s MiB output (cat, warm) | %.3f | %.3f | %s |\n' "$size" "$r_local" "$r_mount" "$(ratio "$r_mount" "$r_local")"
printf '| ls -l of 200 entries, x10 | %.3f | %.3f | %s |\n' "$l_local" "$l_mount" "$(ratio "$l_mount" "$l_local")"
