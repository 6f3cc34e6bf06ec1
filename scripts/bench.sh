#!/usr/bin/env bash
# Benchmarks through a real mount, each as a ratio against its peer measured in the same run
# (machines are shared and noisy: compare ratios, not seconds). Prints Markdown tables;
# BENCHMARKS.md records results. Needs root (or fusermount3) and bc.
#   scripts/bench.sh [io] [load]     (default: both)
#   SIZE_MIB=512 RUNS=5 scripts/bench.sh io
# io:   writing into the inbox, reading an output, ls -l of 200 jobs, each vs the local disk.
# load: ls -l of jobs/ while 200 jobs are submitted and polled, vs the same listing when idle.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${SIZE_MIB:-512}
runs=${RUNS:-5}
what=("$@")
[ ${#what[@]} -gt 0 ] || what=(io load)
cargo build --release --quiet
bin=$PWD/target/release/mhfs
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { echo "$(now) - $1" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
# best of $runs runs of a command, in seconds
best() {
  local b=999999 t0 t
  for _ in $(seq "$runs"); do
    t0=$(now); eval "$1" >/dev/null 2>&1; t=$(secs "$t0")
    b=$(echo "if ($t < $b) $t else $b" | bc -l)
  done
  echo "$b"
}

# mount NAME RENDER_TIME POLL: a mock and a mount of its own under $tmp/NAME; sets $mnt
mount_on_mock() {
  local dir=$tmp/$1
  mkdir -p "$dir/mnt"
  "$bin" mock --listen 127.0.0.1:0 --render-time "$2" >"$dir/mock.url" 2>"$dir/mock.log" &
  pids+=($!)
  until [ -s "$dir/mock.url" ]; do sleep 0.05; done
  "$bin" mount "$dir/mnt" --api-url "$(cat "$dir/mock.url")" --state-dir "$dir/state" \
    --poll-interval "$3" 2>"$dir/mhfs.log" &
  pids=("$!" "${pids[@]}")
  until [ -e "$dir/mnt/README.txt" ]; do sleep 0.05; done
  mnt=$dir/mnt
}

io() {
  mount_on_mock io 0 0.1
  local local_dir=$tmp/local; mkdir -p "$local_dir"
  # Writes: a scratch file in the inbox (staged on local disk) vs the same dd on the local disk.
  w_local=$(best "dd if=/dev/zero of=$local_dir/w.bin bs=1M count=$size conv=fsync")
  w_mount=$(best "dd if=/dev/zero of=$mnt/inbox/ai-video-upscaler/.w.bin bs=1M count=$size conv=fsync")
  # Reads: a downloaded output (the mock returns the input video's bytes) vs the same file read
  # from the state directory directly; warm page cache on both sides.
  head -c $((size << 20)) /dev/urandom > "$local_dir/big.mp4"
  cp "$local_dir/big.mp4" "$mnt/inbox/ai-video-upscaler/"
  until [ "$(cat "$mnt/jobs/big/status" 2>/dev/null)" = complete ]; do sleep 0.1; done
  out=$(find "$tmp/io/state/jobs" -name output.mp4)
  cat "$out" "$mnt/jobs/big/output.mp4" >/dev/null
  r_local=$(best "cat $out")
  r_mount=$(best "cat $mnt/jobs/big/output.mp4")
  # Listing: ls -l of jobs/ with 200 jobs vs ls -l of a local folder of 200 files.
  for i in $(seq 1 200); do echo "p$i" > "$mnt/inbox/ai-qr-code-generator/q$i.txt"; done
  until [ "$(ls "$mnt/jobs" | wc -l)" -ge 201 ]; do sleep 0.1; done
  mkdir -p "$local_dir/list"; for i in $(seq 1 200); do echo x > "$local_dir/list/f$i"; done
  l_local=$(best "for i in 1 2 3 4 5 6 7 8 9 10; do ls -l $local_dir/list; done")
  l_mount=$(best "for i in 1 2 3 4 5 6 7 8 9 10; do ls -l $mnt/jobs; done")

  echo "| what (best of $runs) | local disk (s) | through mhfs (s) | mhfs / local |"
  echo "|---|---|---|---|"
  printf '| write %s MiB (dd, fsync) | %.3f | %.3f | %s |\n' "$size" "$w_local" "$w_mount" "$(ratio "$w_mount" "$w_local")"
  printf '| read %s MiB output (cat, warm) | %.3f | %.3f | %s |\n' "$size" "$r_local" "$r_mount" "$(ratio "$r_mount" "$r_local")"
  printf '| ls -l of 200 entries, x10 | %.3f | %.3f | %s |\n' "$l_local" "$l_mount" "$(ratio "$l_mount" "$l_local")"
}

load() {
  # Jobs render for 30 s and are polled every 0.1 s: while they are submitted (a durable write
  # each), created and polled, the tree is listed; then the same listing once all are idle.
  mount_on_mock load 30 0.1
  local list="for i in 1 2 3 4 5 6 7 8 9 10; do ls -l $mnt/jobs; done"
  for i in $(seq 1 200); do echo "prompt $i" > "$mnt/inbox/ai-image-generator/p$i.txt"; done
  busy=$(best "$list")
  active=$(cat "$mnt"/jobs/*/status | grep -vc complete || true)
  until [ "$(cat "$mnt"/jobs/*/status | grep -vc complete)" = 0 ]; do sleep 0.5; done
  idle=$(best "$list")
  echo "| what (best of $runs) | idle (s) | under load (s) | load / idle |"
  echo "|---|---|---|---|"
  printf '| ls -l of jobs/ (200 jobs) x10, while 200 jobs are submitted and polled (%s still active after) | %.3f | %.3f | %s |\n' \
    "$active" "$idle" "$busy" "$(ratio "$busy" "$idle")"
}

for w in "${what[@]}"; do "$w"; echo; done
