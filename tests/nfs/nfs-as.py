#!/usr/bin/env python3
"""An NFS client that says it is a given user, with libnfs's userspace client (libnfs.so.13):

    nfs-as.py UID put LOCAL URL   copy a local file to URL (created exclusively)
    nfs-as.py UID rm URL          rm -r of URL

URLs are libnfs's (nfs://server/export/path?version=4&nfsport=N). libnfs-utils 4.0 has no remove
tool and its URLs take no uid=, so this drives libnfs's synchronous API with ctypes, with
AUTH_SYS credentials UID:UID. Exits 1 with libnfs's error on the first failure.
"""

import ctypes
import os
import sys

lib = ctypes.CDLL("libnfs.so.13")
ctx = ctypes.c_void_p
lib.nfs_init_context.restype = ctx
lib.nfs_get_error.restype = ctypes.c_char_p
lib.nfs_get_error.argtypes = [ctx]
lib.nfs_set_uid.argtypes = [ctx, ctypes.c_int]
lib.nfs_set_gid.argtypes = [ctx, ctypes.c_int]


class Url(ctypes.Structure):
    _fields_ = [("server", ctypes.c_char_p), ("path", ctypes.c_char_p), ("file", ctypes.c_char_p)]


class Dirent(ctypes.Structure):
    pass


# Only the leading fields are read: the entry list's link and the name.
Dirent._fields_ = [("next", ctypes.POINTER(Dirent)), ("name", ctypes.c_char_p)]

lib.nfs_parse_url_full.restype = ctypes.POINTER(Url)
lib.nfs_parse_url_full.argtypes = [ctx, ctypes.c_char_p]
lib.nfs_mount.argtypes = [ctx, ctypes.c_char_p, ctypes.c_char_p]
lib.nfs_opendir.argtypes = [ctx, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
lib.nfs_readdir.restype = ctypes.POINTER(Dirent)
lib.nfs_readdir.argtypes = [ctx, ctypes.c_void_p]
lib.nfs_closedir.argtypes = [ctx, ctypes.c_void_p]
lib.nfs_unlink.argtypes = [ctx, ctypes.c_char_p]
lib.nfs_rmdir.argtypes = [ctx, ctypes.c_char_p]
lib.nfs_create.argtypes = [ctx, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
# libnfs 4.x: nfs_write(nfs, fh, count, buf).
lib.nfs_write.argtypes = [ctx, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_char_p]
lib.nfs_close.argtypes = [ctx, ctypes.c_void_p]


def fail(nfs, what, path):
    err = lib.nfs_get_error(nfs) or b""
    sys.exit(f"nfs-as: {what} {path.decode()}: {err.decode()}")


def connect(uid, url):
    nfs = lib.nfs_init_context()
    lib.nfs_set_uid(nfs, uid)
    lib.nfs_set_gid(nfs, uid)
    parsed = lib.nfs_parse_url_full(nfs, url.encode())
    if not parsed:
        fail(nfs, "parse", url.encode())
    u = parsed.contents
    if lib.nfs_mount(nfs, u.server, u.path) != 0:
        fail(nfs, "mount", u.path)
    return nfs, u.file


def remove(nfs, path):
    handle = ctypes.c_void_p()
    if lib.nfs_opendir(nfs, path, ctypes.byref(handle)) != 0:
        if lib.nfs_unlink(nfs, path) != 0:
            fail(nfs, "remove", path)
        return
    names = []
    entry = lib.nfs_readdir(nfs, handle)
    while entry:
        if entry.contents.name not in (b".", b".."):
            names.append(entry.contents.name)
        entry = lib.nfs_readdir(nfs, handle)
    lib.nfs_closedir(nfs, handle)
    for name in names:
        remove(nfs, path.rstrip(b"/") + b"/" + name)
    if lib.nfs_rmdir(nfs, path) != 0:
        fail(nfs, "rmdir", path)


def put(nfs, local, path):
    fh = ctypes.c_void_p()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    if lib.nfs_create(nfs, path, flags, 0o644, ctypes.byref(fh)) != 0:
        fail(nfs, "create", path)
    with open(local, "rb") as f:
        while chunk := f.read(1 << 20):
            if lib.nfs_write(nfs, fh, len(chunk), chunk) != len(chunk):
                fail(nfs, "write", path)
    if lib.nfs_close(nfs, fh) != 0:
        fail(nfs, "close", path)


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[1] == "rm":
        nfs, path = connect(int(args[0]), args[2])
        remove(nfs, path)
    elif len(args) == 4 and args[1] == "put":
        nfs, path = connect(int(args[0]), args[3])
        put(nfs, args[2], path)
    else:
        sys.exit(__doc__)


main()
