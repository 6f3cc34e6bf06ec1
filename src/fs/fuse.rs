//! The thin fuser adapter: arguments in, a core call, the reply out. No logic lives here.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use fuser::{
    BackingId, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use super::core::{Ask, Attr, Drive, FsError, Kind, Open, Opened, Rmdir, Who};
use super::refresh::{OwnLookup, Refresh};

pub struct Fuse {
    drive: Arc<Drive>,
    runtime: tokio::runtime::Handle,
    /// Whether the kernel granted FUSE passthrough (root, Linux 6.9+).
    passthrough: bool,
    /// Passthrough backing ids: one per inode while any handle is open (the kernel requires
    /// the same id for every open of an inode), held by each open handle. Shared with the
    /// tasks that answer an open once its output is fetched again.
    backing: Arc<Mutex<Backing>>,
    /// Live refresh: the requests of the refresh thread replay the daemon's own changes on the
    /// mount (for inotify) and are answered without side effects (see refresh.rs).
    refresh: Arc<Refresh>,
}

type ReplyResult = Result<Attr, FsError>;

#[derive(Default)]
struct Backing {
    by_handle: HashMap<u64, Arc<BackingId>>,
    by_inode: HashMap<u64, Weak<BackingId>>,
}

impl Fuse {
    pub fn new(drive: Arc<Drive>, runtime: tokio::runtime::Handle, refresh: Arc<Refresh>) -> Fuse {
        Fuse {
            drive,
            runtime,
            passthrough: false,
            backing: Arc::default(),
            refresh,
        }
    }

    /// Live refresh (refresh.rs): the refresh thread's mkdir/mknod of an entry that exists
    /// already is answered with it, unchanged; its lookup of an entry being announced as new
    /// answers ENOENT, of a job being announced as removed its last inode.
    fn own_entry(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        create: bool,
    ) -> Option<ReplyResult> {
        if !self.refresh.is_own(req.pid()) {
            return None;
        }
        let n = match name(n) {
            Ok(n) => n,
            Err(e) => return Some(Err(e)),
        };
        if !create {
            match self.refresh.own_lookup(parent.0, n) {
                OwnLookup::Drive => return None,
                OwnLookup::Absent => return Some(Err(FsError::quiet(libc::ENOENT))),
                OwnLookup::Ghost(a) => return Some(Ok(a)),
            }
        }
        Some(self.drive.lookup(parent.0, n))
    }

    /// Whether the caller may do `ask` on a shared mount (access.rs); root, the refresh
    /// thread and a mount no one else sees pass at once.
    fn permit(&self, req: &Request, ask: Ask) -> Result<(), FsError> {
        if req.uid() == 0 || !self.drive.shared() || self.refresh.is_own(req.pid()) {
            return Ok(());
        }
        let who = Who {
            uid: req.uid(),
            gid: req.gid(),
            groups: groups(req.pid(), req.uid(), req.gid()),
        };
        self.drive.permit(&who, ask)
    }
}

/// Registers (or reuses) the backing file of an immutable file, for passthrough reads.
fn backing_id(
    backing: &Mutex<Backing>,
    ino: u64,
    fh: u64,
    file: &File,
    reply: &ReplyOpen,
) -> Option<Arc<BackingId>> {
    let mut b = backing.lock().unwrap_or_else(|p| p.into_inner());
    let id = match b.by_inode.get(&ino).and_then(Weak::upgrade) {
        Some(id) => id,
        None => match reply.open_backing(file) {
            Ok(id) => {
                let id = Arc::new(id);
                b.by_inode.insert(ino, Arc::downgrade(&id));
                id
            }
            Err(e) => {
                log::debug!("passthrough unavailable for inode {ino}: {e}");
                return None;
            }
        },
    };
    b.by_handle.insert(fh, id.clone());
    Some(id)
}

/// Answers an open: through passthrough when the kernel granted it and the file has a backing
/// file, else as a FUSE handle.
fn reply_opened(
    backing: &Mutex<Backing>,
    passthrough: bool,
    ino: u64,
    o: &Opened,
    write: bool,
    reply: ReplyOpen,
) {
    let id = o
        .backing
        .as_ref()
        .filter(|_| passthrough)
        .and_then(|f| backing_id(backing, ino, o.fh, f, &reply));
    // Only a staged file being written acts on its flush (its close submits it): no FLUSH
    // round trip at the close of anything opened to read.
    let mut flags = open_flags(o);
    if !write {
        flags |= FopenFlags::FOPEN_NOFLUSH;
    }
    match id {
        // The kernel reads the backing file through its own page cache; keeping the FUSE
        // inode's cache too makes every read of the open fail (EIO).
        Some(id) => {
            let flags = flags - FopenFlags::FOPEN_KEEP_CACHE;
            reply.opened_passthrough(FileHandle(o.fh), flags, &id)
        }
        None => reply.opened(FileHandle(o.fh), flags),
    }
}

/// The block size `stat` reports: the largest request the kernel passes in one piece (256
/// pages, `/proc/sys/fs/fuse/max_pages_limit`'s default), so `cp`, `cat` and stdio use buffers
/// that size (coreutils takes `max(128 KiB, st_blksize)`): a quarter as many round trips into
/// the daemon as with 4 KiB (which they round up to 128 KiB).
const BLKSIZE: u32 = 1 << 20;
/// The block size of small content read without the page cache (`Attr::direct`): each read
/// pins (and first faults in) as much of the reader's buffer as it asks for, and `cat` would
/// ask for BLKSIZE to read `status`'s ten bytes; with a page, its usual 128 KiB.
const DIRECT_BLKSIZE: u32 = 4096;

fn attr(a: &Attr) -> FileAttr {
    let (kind, nlink) = match a.kind {
        Kind::Dir => (FileType::Directory, 2),
        Kind::File => (FileType::RegularFile, 1),
    };
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.mtime,
        kind,
        perm: a.perm,
        nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: if a.direct { DIRECT_BLKSIZE } else { BLKSIZE },
        flags: 0,
    }
}

/// The one place a refused call is logged: with the operation's name, at the error's level.
/// What the user should hear about (warning and above) also goes to `activity.log`.
fn refused(drive: &Drive, op: &str, e: FsError) -> Errno {
    match &e.message {
        Some(m) => {
            log::log!(e.level, "{op}: {m}");
            if e.level <= log::Level::Warn {
                drive.registry().activity().note(m);
            }
        }
        None => log::debug!("{op}: errno {}", e.errno),
    }
    Errno::from_i32(e.errno)
}

fn name(n: &OsStr) -> Result<&str, FsError> {
    n.to_str().ok_or_else(|| {
        FsError::refuse(
            libc::EINVAL,
            format!("{n:?}: names must be UTF-8 (this drive's names are text)"),
        )
    })
}

/// A name being made (create, mkdir, mknod, rename's target): UTF-8 and no control
/// characters (a newline or tab in a name breaks every script that lists the folder).
fn new_name(n: &OsStr) -> Result<&str, FsError> {
    let n = name(n)?;
    if n.chars().any(|c| (c as u32) < 0x20 || c as u32 == 0x7f) {
        return Err(FsError::refuse(
            libc::EINVAL,
            format!("{n:?}: names must not hold control characters (newline, tab, ...)"),
        ));
    }
    Ok(n)
}

/// The caller's supplementary groups, from /proc (what the kernel checks), else from the
/// group database.
fn groups(pid: u32, uid: u32, gid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_else(|| crate::engine::creds::groups_of(uid, gid))
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

fn open_flags(o: &Opened) -> FopenFlags {
    let mut flags = FopenFlags::empty();
    if o.direct_io {
        flags |= FopenFlags::FOPEN_DIRECT_IO;
    }
    if o.keep_cache {
        flags |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    flags
}

impl Filesystem for Fuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // O_TRUNC arrives with open (one call, no separate setattr); page caches drop when a
        // file's mtime changes; more requests may wait in the background queue.
        let _ = config
            .add_capabilities(InitFlags::FUSE_ATOMIC_O_TRUNC | InitFlags::FUSE_AUTO_INVAL_DATA);
        let _ = config.set_max_background(64);
        // NFS re-export (nfsd, nfs-ganesha's FSAL_VFS): file handles carry the inode number,
        // stable for jobs; the kernel rebuilds one it no longer caches with LOOKUP "." / "..".
        let _ = config.add_capabilities(InitFlags::FUSE_EXPORT_SUPPORT);
        // The largest reads and writes the kernel allows: readahead can only be lowered from
        // what the kernel offers, so ask for all of it; writes are capped by max_pages (fuser
        // derives it from its 16 MiB max_write; the kernel clamps it to max_pages_limit).
        let readahead = match config.set_max_readahead(u32::MAX) {
            Ok(_) => u32::MAX,
            Err(max) => config.set_max_readahead(max).map_or(0, |_| max),
        };
        log::debug!("kernel: max_readahead {readahead}");
        // Outputs are immutable local files: with passthrough the kernel reads them directly.
        // Only root may register backing files; asking otherwise costs a failing call per open.
        // SAFETY: geteuid cannot fail and touches no memory.
        let root = unsafe { libc::geteuid() } == 0;
        self.passthrough = root
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok();
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEntry) {
        let found = self.own_entry(req, parent, n, false).unwrap_or_else(|| {
            self.permit(req, Ask::Lookup(parent.0))?;
            name(n).and_then(|n| match n {
                "." | ".." => self.drive.lookup_dot(parent.0, n == ".."),
                n => self.drive.lookup(parent.0, n),
            })
        });
        match found {
            Ok(a) => reply.entry(&a.ttl, &attr(&a), Generation(0)),
            Err(e) => reply.error(refused(&self.drive, "lookup", e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.drive.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.drive.getattr_open(ino.0, fh.map(|f| f.0)) {
            Ok(a) => reply.attr(&a.ttl, &attr(&a)),
            Err(e) => reply.error(refused(&self.drive, "getattr", e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // Live refresh: the refresh thread's truncate announces a change (IN_MODIFY); it
        // changes nothing.
        if self.refresh.is_own(req.pid()) {
            return match self.drive.getattr(ino.0) {
                Ok(a) => reply.attr(&a.ttl, &attr(&a)),
                Err(e) => reply.error(refused(&self.drive, "setattr", e)),
            };
        }
        let changes_meta = mode.is_some() || uid.is_some() || gid.is_some();
        let times = mtime.or(atime).is_some();
        let checked = (|| -> Result<(), FsError> {
            if changes_meta || times {
                self.drive.may_change_attrs(ino.0, mode, uid, gid, times)?;
            }
            if changes_meta {
                self.permit(req, Ask::Chmod(ino.0))?;
            }
            if size.is_some() {
                self.permit(
                    req,
                    Ask::Open {
                        ino: ino.0,
                        write: true,
                    },
                )?;
            }
            if uid.is_some() || gid.is_some() {
                let who = (req.uid() != 0).then(|| Who {
                    uid: req.uid(),
                    gid: req.gid(),
                    groups: groups(req.pid(), req.uid(), req.gid()),
                });
                self.drive.chown(ino.0, uid, gid, who.as_ref())?;
            }
            Ok(())
        })();
        if let Err(e) = checked {
            return reply.error(refused(&self.drive, "setattr", e));
        }
        match self.drive.setattr(
            ino.0,
            fh.map(|f| f.0),
            size,
            mode,
            mtime.map(time),
            atime.map(time),
        ) {
            Ok(a) => reply.attr(&a.ttl, &attr(&a)),
            Err(e) => reply.error(refused(&self.drive, "setattr", e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        if let Some(own) = self.own_entry(req, parent, n, true) {
            return match own {
                Ok(a) => reply.entry(&a.ttl, &attr(&a), Generation(0)),
                Err(e) => reply.error(refused(&self.drive, "mkdir", e)),
            };
        }
        let owner = (req.uid(), req.gid());
        let made = new_name(n).and_then(|n| {
            self.permit(
                req,
                Ask::Make {
                    parent: parent.0,
                    name: n,
                },
            )?;
            self.drive.mkdir(parent.0, n, mode & !umask, owner)
        });
        match made {
            Ok(a) => reply.entry(&a.ttl, &attr(&a), Generation(0)),
            Err(e) => reply.error(refused(&self.drive, "mkdir", e)),
        }
    }

    /// The refresh thread's (live refresh, announcing a new file), or a regular file made
    /// without opening it (the kernel's NFS server); special files are refused.
    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        match self.own_entry(req, parent, n, true) {
            Some(Ok(a)) => return reply.entry(&a.ttl, &attr(&a), Generation(0)),
            Some(Err(e)) => return reply.error(refused(&self.drive, "mknod", e)),
            None => {}
        }
        // A regular file made without opening it (the kernel's NFS server creates files so):
        // an empty staged file, as `create` then `close` would leave it.
        if mode & libc::S_IFMT == libc::S_IFREG {
            let made = new_name(n).and_then(|n| {
                self.permit(
                    req,
                    Ask::Make {
                        parent: parent.0,
                        name: n,
                    },
                )?;
                self.drive
                    .create(parent.0, n, mode & !umask, false, (req.uid(), req.gid()))
            });
            return match made {
                Ok((a, o)) => {
                    self.drive.release(o.fh);
                    reply.entry(&a.ttl, &attr(&a), Generation(0))
                }
                Err(e) => reply.error(refused(&self.drive, "mknod", e)),
            };
        }
        let e = FsError::refuse(
            libc::EPERM,
            format!("{n:?}: special files (devices, fifos, sockets) are not taken"),
        );
        reply.error(refused(&self.drive, "mknod", e))
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let e = FsError::refuse(
            libc::EPERM,
            format!("{link_name:?} -> {target:?}: symbolic links are not supported"),
        );
        reply.error(refused(&self.drive, "symlink", e));
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let e = FsError::refuse(
            libc::EPERM,
            format!("{newname:?}: hard links are not supported"),
        );
        reply.error(refused(&self.drive, "link", e));
    }

    fn unlink(&self, req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        let removed = name(n).and_then(|n| {
            self.permit(
                req,
                Ask::Remove {
                    parent: parent.0,
                    name: n,
                },
            )?;
            self.drive.unlink(parent.0, n)
        });
        match removed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refused(&self.drive, "unlink", e)),
        }
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        let n = match name(n) {
            Ok(n) => n,
            Err(e) => return reply.error(refused(&self.drive, "rmdir", e)),
        };
        // Live refresh: the refresh thread's rmdir announces a removal made by the daemon
        // (IN_DELETE); one made here raises its own, and is marked so it is not announced.
        if self.refresh.is_own(req.pid()) {
            return reply.ok();
        }
        if let Err(e) = self.permit(
            req,
            Ask::Remove {
                parent: parent.0,
                name: n,
            },
        ) {
            return reply.error(refused(&self.drive, "rmdir", e));
        }
        let jobs = parent.0 == super::core::JOBS;
        if jobs {
            self.refresh.removing(parent.0, n, true);
        }
        let (refresh, name) = (self.refresh.clone(), n.to_string());
        let unmark = move || {
            if jobs {
                refresh.removing(parent.0, &name, false);
            }
        };
        match self.drive.rmdir(parent.0, n) {
            Rmdir::Done(Ok(())) => reply.ok(),
            Rmdir::Done(Err(e)) => {
                unmark();
                reply.error(refused(&self.drive, "rmdir", e))
            }
            // The DELETE runs on the runtime; the reply is sent from there, so no FUSE thread
            // waits on the network.
            Rmdir::Pending(delete) => {
                let drive = self.drive.clone();
                self.runtime.spawn(async move {
                    match delete.await {
                        Ok(()) => reply.ok(),
                        Err(e) => {
                            unmark();
                            reply.error(refused(&drive, "rmdir", e))
                        }
                    }
                });
            }
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            let e = FsError::refuse(
                libc::EINVAL,
                format!("{n:?}: rename flags {flags} are not supported"),
            );
            return reply.error(refused(&self.drive, "rename", e));
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let result = name(n).and_then(|n| {
            let newname = new_name(newname)?;
            self.permit(
                req,
                Ask::Rename {
                    parent: parent.0,
                    name: n,
                    new_parent: newparent.0,
                    new_name: newname,
                },
            )?;
            self.drive
                .rename(parent.0, n, newparent.0, newname, noreplace)
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refused(&self.drive, "rename", e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let truncate = flags.0 & libc::O_TRUNC != 0;
        let read = flags.acc_mode() != OpenAccMode::O_WRONLY;
        let permitted = (|| -> Result<(), FsError> {
            if read {
                self.permit(
                    req,
                    Ask::Open {
                        ino: ino.0,
                        write: false,
                    },
                )?;
            }
            if write {
                self.permit(
                    req,
                    Ask::Open {
                        ino: ino.0,
                        write: true,
                    },
                )?;
            }
            Ok(())
        })();
        let opened = match permitted {
            Ok(()) => self.drive.open_or_fetch(ino.0, write, truncate),
            Err(e) => Open::Done(Err(e)),
        };
        match opened {
            Open::Done(Ok(o)) => {
                if write {
                    self.drive.opened_by(o.fh, (req.uid(), req.gid()));
                }
                reply_opened(&self.backing, self.passthrough, ino.0, &o, write, reply)
            }
            Open::Done(Err(e)) => reply.error(refused(&self.drive, "open", e)),
            // An output evicted from the local cache is fetched again on the runtime; the
            // reply is sent from there, so no FUSE thread waits on the network.
            Open::Pending(fetch) => {
                let (drive, backing) = (self.drive.clone(), self.backing.clone());
                let passthrough = self.passthrough;
                self.runtime.spawn(async move {
                    match fetch.await {
                        Ok(o) => reply_opened(&backing, passthrough, ino.0, &o, false, reply),
                        Err(e) => reply.error(refused(&drive, "open", e)),
                    }
                });
            }
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.drive.read(fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(refused(&self.drive, "read", e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.drive.write(fh.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(refused(&self.drive, "write", e)),
        }
    }

    // flush and fsync answer (never ENOSYS: the kernel would stop sending them).
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        match self.drive.flush(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refused(&self.drive, "flush", e)),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.drive.fsync(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refused(&self.drive, "fsync", e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.drive.release(fh.0);
        let mut backing = self.backing.lock().unwrap_or_else(|p| p.into_inner());
        if backing.by_handle.remove(&fh.0).is_some() {
            backing.by_inode.retain(|_, id| id.strong_count() > 0);
        }
        drop(backing);
        reply.ok();
    }

    /// A job folder's listing is kept by the kernel (FOPEN_CACHE_DIR) until the job changes
    /// (`Inval::Listing`): `find` and file managers list it without asking. Every other
    /// folder changes in ways the kernel does not see, and is listed afresh.
    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if let Err(e) = self.permit(req, Ask::List(ino.0)) {
            return reply.error(refused(&self.drive, "opendir", e));
        }
        let flags = if self.drive.keeps_listing(ino.0) {
            FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::empty()
        };
        reply.opened(FileHandle(0), flags);
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if offset == 0
            && let Err(e) = self.permit(req, Ask::List(ino.0))
        {
            return reply.error(refused(&self.drive, "readdir", e));
        }
        let entries = match self.drive.readdir(ino.0) {
            Ok(e) => e,
            Err(e) => return reply.error(refused(&self.drive, "readdir", e)),
        };
        let dots = [
            (ino.0, FileType::Directory, "."),
            (self.drive.parent_of(ino.0), FileType::Directory, ".."),
        ];
        let all = dots.into_iter().chain(entries.iter().map(|e| {
            let kind = match e.kind {
                Kind::Dir => FileType::Directory,
                Kind::File => FileType::RegularFile,
            };
            (e.ino, kind, e.name.as_str())
        }));
        for (i, (ino, kind, n)) in all.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, n) {
                break;
            }
        }
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let truncate = flags & libc::O_TRUNC != 0;
        match new_name(n).and_then(|n| {
            self.permit(
                req,
                Ask::Make {
                    parent: parent.0,
                    name: n,
                },
            )?;
            self.drive
                .create(parent.0, n, mode & !umask, truncate, (req.uid(), req.gid()))
        }) {
            Ok((a, o)) => reply.created(
                &a.ttl,
                &attr(&a),
                Generation(0),
                FileHandle(o.fh),
                open_flags(&o),
            ),
            Err(e) => reply.error(refused(&self.drive, "create", e)),
        }
    }

    // The space of the state directory, where drops are staged. Finder, Explorer and Samba
    // check free space before a copy; fuser's default answer (all zeros) reads as a full disk.
    /// Credits as space (docs/SEMANTICS.md): 1 KiB blocks, 1 block = 1 credit; total = the
    /// balance plus what this mount was charged, free = available = the balance (or what is
    /// left of the budget, if less). Inode counts are the state directory's. Until the balance
    /// is known, the state directory's own numbers.
    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: fuser::ReplyStatfs) {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.drive.staging_dir().as_os_str().as_bytes());
        // SAFETY: statvfs writes only into the zeroed struct we pass, from a NUL-terminated path.
        let st = path.ok().and_then(|p| unsafe {
            let mut st: libc::statvfs = std::mem::zeroed();
            (libc::statvfs(p.as_ptr(), &mut st) == 0).then_some(st)
        });
        match (st, self.drive.credit_blocks()) {
            (st, Some((total, avail))) => {
                let (files, ffree) = st.map_or((0, 0), |st| (st.f_files, st.f_ffree));
                reply.statfs(total, avail, avail, files, ffree, 1024, 255, 1024)
            }
            (Some(st), None) => reply.statfs(
                st.f_blocks,
                st.f_bfree,
                st.f_bavail,
                st.f_files,
                st.f_ffree,
                st.f_bsize as u32,
                255,
                st.f_frsize as u32,
            ),
            (None, None) => reply.statfs(0, 0, 0, 0, 0, 512, 255, 0),
        }
    }

    // Permissions are decided by each operation (EACCES/EPERM with a log line), not up front.
    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    // No ioctls: "not a terminal" is what isatty() and friends expect to hear.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    // No preallocation (glib asks before writing a `.trashinfo`, and does without): ENOSYS once,
    // and the kernel answers EOPNOTSUPP itself from then on, without a warning each time.
    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    // No extended attributes: ENOSYS once, and the kernel stops asking (ls -l, rsync, cp -a).
    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    // Samba stores DOS attributes in `user.DOSATTRIB` at every create: ENOSYS once, quietly
    // (fuser's default answer logs a warning).
    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }
}

/// Forwards the core's invalidations to the kernel from a thread of their own: never from
/// inside a handler, and not at all once unmounting began.
pub fn spawn_invalidator(
    notifier: fuser::Notifier,
    rx: std::sync::mpsc::Receiver<super::core::Inval>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("mhfs-inval".into())
        .spawn(move || {
            for inval in rx {
                let result = match &inval {
                    super::core::Inval::Entry { parent, name } => {
                        notifier.inval_entry(INodeNo(*parent), OsStr::new(name))
                    }
                    // Attributes only (negative offset): never drop pages under a read.
                    super::core::Inval::Inode(ino) => notifier.inval_inode(INodeNo(*ino), -1, 0),
                    // A folder's attributes and its cached listing.
                    super::core::Inval::Listing(ino) => notifier.inval_inode(INodeNo(*ino), 0, 0),
                };
                if let Err(e) = result
                    && e.raw_os_error() != Some(libc::ENOENT)
                {
                    log::debug!("invalidate {inval:?}: {e}");
                }
            }
        })
        .expect("spawn a thread")
}
