#!/usr/bin/env bash
# Mounts the drive on the embedded mock API (nothing is billed) at MOUNTPOINT (default
# ~/MagicHour), in the foreground: Ctrl-C unmounts.
set -euo pipefail
cd "$(dirname "$0")/.."
mnt=${1:-$HOME/MagicHour}
if [ ! -e /dev/fuse ]; then
  echo "try.sh: /dev/fuse is missing: this machine cannot mount FUSE file systems" >&2; exit 1
fi
if [ "$(id -u)" != 0 ] && ! command -v fusermount3 >/dev/null; then
  echo "try.sh: as a normal user, mounting needs fusermount3: sudo apt-get install fuse3" >&2; exit 1
fi
cargo build --release --quiet
mkdir -p "$mnt"
echo "try.sh: in another terminal: cat $mnt/README.txt; echo 'a lighthouse' > $mnt/inbox/ai-image-generator/lighthouse.txt"
exec target/release/mhfs mount "$mnt" "${@:2}"
