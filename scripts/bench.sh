#!/usr/bin/env bash
# Benchmarks through a real mount, each as a ratio against its peer measured in the same run
# (machines are shared and noisy: compare ratios, not seconds; each figure is the best of RUNS,
# the two sides alternating). Prints Markdown table rows; BENCHMARKS.md records results.
# Runs as root (it mounts as root and, through fusermount3, as a normal user; it drops caches).
#   scripts/bench.sh [MODE...]            (default: io load)
#   SIZE_MIB=512 RUNS=5 scripts/bench.sh io
# io:     writing into the inbox, reading an output, ls -l of 200 jobs, each vs the local disk.
# load:   ls -l of jobs/ while 200 jobs are submitted and polled, vs the same listing when idle.
# batch:  (1) JOBS=1000 prompts, mock --render-time 0: first drop -> all complete, vs the official
#         Python SDK's generate() in a pool of 8 threads against the same mock.
# one:    (2) one image job rendering 4 s: drop -> output, vs SDK generate(), and requests each.
# read:   (3, 4) cat of a READ_MIB=1024 output through the mount as a normal user (no
#         passthrough) and as root (passthrough), warm and cold page cache, vs cat of the file.
# write:  (5) cp of READ_MIB into the inbox vs cp into a local folder.
# tree:   (6-9) TREE_JOBS=10000 jobs: ls -l jobs/ and find jobs -name status | xargs cat after
#         the kernel's 1 s cache expired, vs the same tree copied to local disk (and the find
#         through bindfs, a pass-through FUSE file system, for what FUSE itself costs); daemon
#         RSS per job; mount -> first listing of jobs/ with them in the state directory.
# all:    every mode above.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${SIZE_MIB:-512}
runs=${RUNS:-5}
what=("$@")
[ ${#what[@]} -gt 0 ] || what=(io load)
[ "${what[*]}" != all ] || what=(io load batch one read write tree)
# MHFS_BIN=/path/to/mhfs measures that build instead (e.g. the one before a change).
if [ -n "${MHFS_BIN:-}" ]; then
  bin=$MHFS_BIN
else
  cargo build --release --quiet
  bin=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/mhfs
fi
tmp=$(mktemp -d /var/tmp/mhfs-bench.XXXXXX)
chmod 755 "$tmp"
pids=()
mounts=()
cleanup() {
  for m in "${mounts[@]}"; do ! mountpoint -q "$m" || umount -l "$m" || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  # Never through a mount left behind: rm -r in jobs/ deletes jobs.
  rm -rf --one-file-system "$tmp"
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
  big_mp4 "$local_dir/big.mp4" "$size"
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

# ---- helpers of the modes below ----

# big_mp4 FILE MIB: a video the drive and the mock take (an MP4 header: ftyp, and moov whose
# mvhd says 2 s), then MIB MiB of random bytes in a trailing `free` box.
big_mp4() {
  python3 - "$1" "$2" <<'PY'
import os, struct, sys
path, n = sys.argv[1], int(sys.argv[2]) << 20
box = lambda kind, body: struct.pack(">I", 8 + len(body)) + kind + body
mvhd = bytearray(100)
mvhd[12:20] = struct.pack(">II", 1000, 2000)
head = box(b"ftyp", b"isom\0\0\2\0isom") + box(b"moov", box(b"mvhd", bytes(mvhd)) + box(b"trak", bytes(16)))
with open(path, "wb") as f:
    f.write(head + struct.pack(">I", 8 + n) + b"free")
    for _ in range(n >> 20):
        f.write(os.urandom(1 << 20))
PY
}

# the best of two values
min() { echo "if ($1 < $2) $1 else $2" | bc -l; }
# a field of a JSON line on stdin
jget() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
# pair A B: runs the commands A and B (each in a subshell) alternately, $runs times each, running $before (if set)
# before each; sets $a and $b to the best seconds of each.
pair() {
  local t0 t
  a=999999 b=999999
  for _ in $(seq "$runs"); do
    eval "${before:-:}"
    t0=$(now); (eval "$1") >/dev/null 2>&1; t=$(secs "$t0"); a=$(min "$a" "$t")
    eval "${before:-:}"
    t0=$(now); (eval "$2") >/dev/null 2>&1; t=$(secs "$t0"); b=$(min "$b" "$t")
  done
}
header() {
  echo "| what | $1 (s) | mhfs (s) | mhfs / $1 | N |"
  echo "|---|---|---|---|---|"
}
# row WHAT PEER_SECONDS MHFS_SECONDS [N]
row() {
  printf '| %s | %.3f | %.3f | %s | %s |\n' "$1" "$2" "$3" "$(ratio "$3" "$2")" "${4:-$runs}"
}

# start_mock NAME RENDER_TIME: a mock of its own; sets $mock to its URL
start_mock() {
  mkdir -p "$tmp/$1"
  "$bin" mock --listen 127.0.0.1:0 --render-time "$2" >"$tmp/$1/mock.url" 2>"$tmp/$1/mock.log" &
  pids+=($!)
  until [ -s "$tmp/$1/mock.url" ]; do sleep 0.05; done
  mock=$(cat "$tmp/$1/mock.url")
}
# requests the mock answered since the last clear_requests
requests() { curl -fsS "$mock/_mock/requests" | jget '["requests"].__len__()'; }
clear_requests() { curl -fsS -X DELETE "$mock/_mock/requests" >/dev/null; }

# mount_as USER DIR URL [OPTION...]: mounts DIR/mnt (state in DIR/state) on the mock at URL as
# USER (root directly; another user through runuser, so fusermount3 mounts, without
# passthrough); sets $mnt and $mhfs_pid (the daemon's pid when root).
mount_as() {
  local user=$1 dir=$2 url=$3 run=() as=()
  shift 3
  mkdir -p "$dir/mnt" "$dir/state"
  if [ "$user" != root ]; then
    chown -R "$user" "$dir"
    run=(runuser -u "$user" --)
    # Without allow_other, only the user who mounted sees the mount (root neither).
    as=(runuser -u "$user" --)
  fi
  "${run[@]}" "$bin" mount "$dir/mnt" --api-url "$url" --state-dir "$dir/state" "$@" \
    2>>"$dir/mhfs.log" &
  mhfs_pid=$!
  pids=("$mhfs_pid" "${pids[@]}")
  mounts+=("$dir/mnt")
  mnt=$dir/mnt
  until "${as[@]}" test -e "$mnt/README.txt"; do sleep 0.01; done
}
unmount() {
  # A moment after a burst of work the kernel may still call it busy.
  local i
  for i in $(seq 50); do umount "$mnt" 2>/dev/null && break; sleep 0.1; done
  ! mountpoint -q "$mnt" || umount -l "$mnt"
  wait "$mhfs_pid" 2>/dev/null || true
}

# A normal user for the mounts without passthrough. Distributions ship /dev/fuse 0666 (fuse3
# makes fusermount3 setuid root); a container may not: make it so.
bench_user() {
  id mhfsbench >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin mhfsbench
  [ "$(stat -c %a /dev/fuse)" = 666 ] || chmod 0666 /dev/fuse
  command -v fusermount3 >/dev/null || { echo "bench.sh: install fuse3 (fusermount3)" >&2; exit 1; }
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

sdk_python() {
  scripts/sdk-venv.sh
  echo "$PWD/target/sdk-venv/bin/python"
}

# ---- (1) a batch of prompt jobs vs the SDK ----
batch() {
  local n=${JOBS:-1000} py r out sdk_best=999999 mhfs_best=999999 first_best=999999 sdk_first=999999
  local n_runs=${BATCH_RUNS:-3} req_m req_s
  py=$(sdk_python)
  start_mock batch 0
  for r in $(seq "$n_runs"); do
    # mhfs: a fresh mount (nothing learned yet), drop N prompts, wait until all are complete.
    clear_requests
    mount_as root "$tmp/batch/m$r" "$mock"
    out=$(python3 scripts/bench-jobs.py mhfs-batch "$mnt" "$n" "p$r")
    req_m=$(requests)
    unmount
    mhfs_best=$(min "$mhfs_best" "$(jget '["total"]' <<<"$out")")
    first_best=$(min "$first_best" "$(jget '["first"]' <<<"$out")")
    # The SDK: generate() in 8 threads.
    clear_requests
    out=$("$py" scripts/bench-jobs.py sdk-batch "$mock" "$n" "$tmp/batch/sdk$r")
    req_s=$(requests)
    sdk_best=$(min "$sdk_best" "$(jget '["total"]' <<<"$out")")
    sdk_first=$(min "$sdk_first" "$(jget '["first"]' <<<"$out")")
  done
  header "SDK"
  row "(1) $n prompt jobs, render 0: first drop → all complete (requests: SDK $req_s, mhfs $req_m)" \
    "$sdk_best" "$mhfs_best" "$n_runs"
  row "(1) the same: first output" "$sdk_first" "$first_best" "$n_runs"
}

# ---- (2) one image job rendering 4 s vs the SDK ----
one() {
  local py r out sdk_best=999999 mhfs_best=999999 cold_m cold_s req_m req_s
  py=$(sdk_python)
  start_mock one 4
  mount_as root "$tmp/one/m" "$mock"
  # Round 0 is the first job of the mount (nothing learned of the tool yet): shown apart.
  for r in $(seq 0 "$runs"); do
    clear_requests
    out=$(python3 scripts/bench-jobs.py mhfs-one "$mnt" "o$r")
    [ "$r" = 0 ] && cold_m=$(jget '["total"]' <<<"$out") ||
      mhfs_best=$(min "$mhfs_best" "$(jget '["total"]' <<<"$out")")
    req_m=$(requests)
    clear_requests
    out=$("$py" scripts/bench-jobs.py sdk-one "$mock" "$tmp/one/sdk$r")
    [ "$r" = 0 ] && cold_s=$(jget '["total"]' <<<"$out") ||
      sdk_best=$(min "$sdk_best" "$(jget '["total"]' <<<"$out")")
    req_s=$(requests)
  done
  unmount
  header "SDK"
  row "(2) one image job, render 4 s: drop → output (requests: SDK $req_s, mhfs $req_m)" \
    "$sdk_best" "$mhfs_best"
  row "(2) the same, the mount's first job of the tool" "$cold_s" "$cold_m" 1
}

# ---- (3, 4) reading a big output, (5) writing into the inbox ----
# big_output USER: a READ_MIB output in a mount of USER; sets $out (the file in the state dir)
big_output() {
  local mib=${READ_MIB:-1024}
  mkdir -p "$tmp/big"
  [ -e "$tmp/big/big.mp4" ] || big_mp4 "$tmp/big/big.mp4" "$mib"
  chmod 644 "$tmp/big/big.mp4"
  [ -n "${mock_big:-}" ] || { start_mock bigmock 0; mock_big=$mock; }
  mount_as "$1" "$tmp/big/$1" "$mock_big"
  local as=()
  [ "$1" = root ] || as=(runuser -u "$1" --)
  "${as[@]}" cp "$tmp/big/big.mp4" "$mnt/inbox/ai-video-upscaler/"
  until [ "$("${as[@]}" cat "$mnt/jobs/big/status" 2>/dev/null)" = complete ]; do sleep 0.2; done
  out=$(find "$tmp/big/$1/state/jobs" -name output.mp4)
}

read_mode() {
  local mib=${READ_MIB:-1024} user as
  bench_user
  header "cat of the local file"
  for user in mhfsbench root; do
    big_output "$user"
    as=""
    [ "$user" = root ] || as="runuser -u $user --"
    local how="as a normal user (no passthrough)"
    [ "$user" != root ] || how="as root (passthrough)"
    before=drop_caches
    pair "$as cat $out" "$as cat $mnt/jobs/big/output.mp4"
    row "(4) cat of a $mib MiB output, cold cache, $how" "$a" "$b"
    before="$as cat $out $mnt/jobs/big/output.mp4 >/dev/null"
    pair "$as cat $out" "$as cat $mnt/jobs/big/output.mp4"
    row "(3) cat of a $mib MiB output, warm cache, $how" "$a" "$b"
    before=""
    unmount
  done
  # What FUSE itself costs without passthrough: bindfs (a pass-through FUSE file system,
  # keeping its page cache across opens) over the folder of the last output.
  bindfs_on "$(dirname "$out")"
  before=drop_caches
  pair "cat $out" "cat $bind/$(basename "$out")"
  row "(4) the same file through bindfs (FUSE, no passthrough), cold cache" "$a" "$b"
  before="cat $out $bind/$(basename "$out") >/dev/null"
  pair "cat $out" "cat $bind/$(basename "$out")"
  row "(3) the same file through bindfs (FUSE, no passthrough), warm cache" "$a" "$b"
  before=""
  umount "$bind"
}

# bindfs_on DIR: a bindfs mount of DIR (installed if missing); sets $bind
bindfs_on() {
  command -v bindfs >/dev/null || apt-get install -y -qq bindfs >/dev/null
  bind=$(mktemp -d "$tmp/bind.XXXXXX")
  bindfs -o kernel_cache "$1" "$bind"
  mounts+=("$bind")
}

write_mode() {
  local mib=${READ_MIB:-1024}
  big_output root
  mkdir -p "$tmp/big/local"
  # A hidden name: an ordinary scratch file of the inbox (never submitted), so only the
  # copy is measured.
  before="rm -f $tmp/big/local/cp.mp4 $mnt/inbox/ai-video-upscaler/.cp.mp4"
  pair "cp $tmp/big/big.mp4 $tmp/big/local/cp.mp4" "cp $tmp/big/big.mp4 $mnt/inbox/ai-video-upscaler/.cp.mp4"
  before=""
  header "local disk"
  row "(5) cp of $mib MiB into the inbox vs into a local folder" "$a" "$b"
  unmount
  bindfs_on "$tmp/big/local"
  before="rm -f $tmp/big/local/cp.mp4 $tmp/big/local/cp2.mp4"
  pair "cp $tmp/big/big.mp4 $tmp/big/local/cp.mp4" "cp $tmp/big/big.mp4 $bind/cp2.mp4"
  before=""
  row "(5) the same into bindfs (pass-through FUSE) over a local folder" "$a" "$b"
  umount "$bind"
}

# ---- (6-9) a tree of many jobs ----
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

tree() {
  local n=${TREE_JOBS:-10000} empty_rss rss t0 m_best=999999 e_best=999999 r
  start_mock tree 0
  # An empty mount: the baseline of memory and of mount time.
  mount_as root "$tmp/tree/empty" "$mock"
  ls "$mnt/jobs" >/dev/null
  empty_rss=$(rss_kib "$mhfs_pid")
  unmount
  # Seeding: N prompts dropped into the inbox, rendered by the mock at once.
  mount_as root "$tmp/tree/m" "$mock"
  python3 scripts/bench-jobs.py mhfs-batch "$mnt" "$n" t >/dev/null
  mkdir -p "$tmp/tree/local"
  cp -r "$mnt/jobs" "$tmp/tree/local/jobs"
  unmount
  # (9) mount -> the first listing of jobs/ that shows them, vs the same with no jobs.
  for r in $(seq "$runs"); do
    t0=$(now)
    mount_as root "$tmp/tree/empty" "$mock"
    ls "$mnt/jobs" >/dev/null
    e_best=$(min "$e_best" "$(secs "$t0")")
    unmount
    t0=$(now)
    mount_as root "$tmp/tree/m" "$mock"
    until [ "$(ls "$mnt/jobs" | wc -l)" -ge "$n" ]; do :; done
    m_best=$(min "$m_best" "$(secs "$t0")")
    [ "$r" = "$runs" ] || unmount
  done
  # (7) once, right after the mount: the kernel holds no entry of a job yet.
  t0=$(now)
  (cd "$mnt" && find jobs -name status | xargs cat) >/dev/null
  local find_first
  find_first=$(secs "$t0")
  # (6, 7) after the kernel's 1 s cache of the listing and attributes expired (mhfs keeps a
  # job's entries 60 s: it tells the kernel of every change).
  before="sleep 1.1"
  pair "ls -l $tmp/tree/local/jobs" "ls -l $mnt/jobs"
  local ls_local=$a ls_mhfs=$b
  pair "cd $tmp/tree/local && find jobs -name status | xargs cat" "cd $mnt && find jobs -name status | xargs cat"
  local find_local=$a find_mhfs=$b
  # What any FUSE file system costs: bindfs (a pass-through FUSE file system) over the local
  # tree, the same command, after its own 1 s caches expired.
  command -v bindfs >/dev/null || apt-get install -y -qq bindfs >/dev/null
  mkdir -p "$tmp/tree/bind"
  bindfs "$tmp/tree/local" "$tmp/tree/bind"
  mounts+=("$tmp/tree/bind")
  pair "cd $tmp/tree/local && find jobs -name status | xargs cat" "cd $tmp/tree/bind && find jobs -name status | xargs cat"
  local find_local2=$a find_bind=$b
  umount "$tmp/tree/bind"
  before=""
  sleep 11 # the daemon gives freed memory back every 10 s
  rss=$(rss_kib "$mhfs_pid")
  unmount
  header "peer"
  row "(6) ls -l jobs/ of $n jobs, cache expired, vs the same tree on local disk" "$ls_local" "$ls_mhfs"
  row "(7) find jobs -name status | xargs cat, $n jobs, vs local disk" "$find_local" "$find_mhfs"
  row "(7) the same, the first time after the mount (local: best of $runs)" "$find_local" "$find_first" 1
  row "(7) the same through bindfs (pass-through FUSE) over the local tree, vs local disk" "$find_local2" "$find_bind"
  row "(9) mount → jobs/ lists $n jobs, vs mount → jobs/ lists with none" "$e_best" "$m_best"
  printf '| (8) daemon RSS: %s KiB with %s jobs, %s KiB with none: %s KiB per job | | | | 1 |\n' \
    "$rss" "$n" "$empty_rss" "$(echo "scale=2; ($rss - $empty_rss) / $n" | bc -l)"
}

for w in "${what[@]}"; do
  case $w in
    io | load | batch | one | tree) "$w" ;;
    read | write) "${w}_mode" ;;
    *) echo "bench.sh: no mode $w" >&2; exit 2 ;;
  esac
  echo
done
