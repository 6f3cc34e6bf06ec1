#!/usr/bin/env bash
# Installs what the tests drive, where missing: fuse3 (fusermount3), rsync, vim, bc, samba
# (smbd) and smbclient for the SMB re-export test, nfs-ganesha (FSAL VFS) and libnfs-utils
# (nfs-cp, nfs-ls) for the NFS re-export test, gio with gvfs's trash backend and
# dbus-run-session for the trash tests, inotify-tools (inotifywait) and gio monitor for the
# live-refresh test (Debian packages, as root), cargo-nextest (crates.io), and the official
# SDK's virtualenv (PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v fusermount3 >/dev/null || missing+=(fuse3)
command -v rsync >/dev/null || missing+=(rsync)
command -v vim >/dev/null || missing+=(vim)
command -v bc >/dev/null || missing+=(bc)
command -v smbd >/dev/null || missing+=(samba)
command -v smbclient >/dev/null || missing+=(smbclient)
command -v ganesha.nfsd >/dev/null || missing+=(nfs-ganesha)
# FSAL VFS is a plugin of its own (no command to check for).
ls /usr/lib/*/ganesha/libfsalvfs.so >/dev/null 2>&1 || missing+=(nfs-ganesha-vfs)
command -v nfs-cp >/dev/null || missing+=(libnfs-utils)
command -v gio >/dev/null || missing+=(libglib2.0-bin)
# `gio trash --empty/--restore/--list` go through gvfs's trash backend, on a session bus.
[ -x /usr/libexec/gvfsd-trash ] || missing+=(gvfs-daemons)
command -v dbus-run-session >/dev/null || missing+=(dbus-daemon)
command -v inotifywait >/dev/null || missing+=(inotify-tools)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "test-deps.sh: please install: ${missing[*]} (as root: apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
scripts/sdk-venv.sh
