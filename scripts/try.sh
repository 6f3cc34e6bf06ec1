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
# Builds (cargo shows its progress) and puts mhfs on the PATH: ~/.cargo/bin/mhfs.
echo "try.sh: building and installing mhfs into ${CARGO_HOME:-$HOME/.cargo}/bin (a few minutes the first time)"
cargo install --path . --locked
bin="${CARGO_HOME:-$HOME/.cargo}/bin/mhfs"
if ! command -v mhfs >/dev/null; then
  echo "try.sh: add ${CARGO_HOME:-$HOME/.cargo}/bin to your PATH to run mhfs anywhere: export PATH=\"${CARGO_HOME:-$HOME/.cargo}/bin:\$PATH\""
fi
mkdir -p "$mnt"
echo "try.sh: in another terminal: cat $mnt/README.txt; tail -f $mnt/activity.log; echo 'a lighthouse' > $mnt/inbox/ai-image-generator/lighthouse.txt; mhfs jobs $mnt"
exec "$bin" mount "$mnt" "${@:2}"
