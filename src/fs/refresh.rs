//! Live refresh: inotify watchers of the mount (file managers through GIO, `inotifywait`) see
//! the changes the daemon makes on its own: a job appearing in `jobs/`, an output or another
//! file appearing in a job folder, a file's content (`status`) changing, a job removed by the
//! daemon. See docs/LIVE_REFRESH.md for the experiments behind this.
//!
//! The kernel raises inotify events only for operations that pass through the VFS; FUSE
//! notifications (`inval_entry`, `inval_inode`, `store`) raise none, and `FUSE_NOTIFY_DELETE`
//! raises only `IN_DELETE_SELF`. So a thread of the daemon performs the matching VFS operation
//! on its own mount, and the adapter answers the requests coming from that thread (and only
//! from it: the kernel tags each request with the calling thread's id) without side effects:
//!
//! | change                    | VFS call on the mount        | event                |
//! |---------------------------|------------------------------|----------------------|
//! | job added                 | `mkdir jobs/<job>`           | `IN_CREATE,IN_ISDIR` |
//! | file appeared in a job    | `mknod jobs/<job>/<name>`    | `IN_CREATE`          |
//! | file content changed      | `truncate <file> <its size>` | `IN_MODIFY`          |
//! | job removed by the daemon | `rmdir jobs/<job>`           | `IN_DELETE,IN_ISDIR` |
//! | output in `outputs/`      | `mknod outputs/<job>.<ext>`  | `IN_CREATE`          |
//! | `activity.log` grew       | `truncate activity.log <size>` | `IN_MODIFY`        |
//!
//! Removals and renames made through the mount already raise their events and are skipped.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::hash::{Hash, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::INodeNo;

use super::core::job_folder::{self, Part, dir_ino};
use super::core::{Attr, Drive, JOBS, Kind, OUTPUTS};
use crate::engine::job::JobId;
use crate::engine::registry::{Change, Registry};

/// What the refresh thread replays.
pub enum Replay {
    /// A job's change (from the registry's listener).
    Job(Change),
    /// `activity.log` grew.
    Activity,
}

/// What the adapter asks before answering a request: shared by the refresh thread and the
/// fuser adapter.
#[derive(Default)]
pub struct Refresh {
    /// The refresh thread's id (0 until it runs): requests carrying it are its own.
    tid: AtomicU32,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The entry being announced as new: the refresh thread's lookup of it answers ENOENT,
    /// so that its mkdir/mknod reaches the drive.
    hiding: Option<(u64, String)>,
    /// The job being announced as removed: the refresh thread's lookup of it answers this.
    ghost: Option<(u64, String, Attr)>,
    /// Jobs being removed through the mount (whose rmdir raises its own event).
    removing: HashSet<(u64, String)>,
}

/// How the adapter answers a lookup of the refresh thread.
pub enum OwnLookup {
    /// As usual.
    Drive,
    /// ENOENT: the entry is being announced as new.
    Absent,
    /// The removed job being announced.
    Ghost(Attr),
}

impl Refresh {
    pub fn new() -> Arc<Refresh> {
        Arc::new(Refresh::default())
    }

    /// Whether a request comes from the refresh thread (`req.pid()` is the calling thread's
    /// id, not the process id).
    pub fn is_own(&self, pid: u32) -> bool {
        pid != 0 && pid == self.tid.load(Ordering::Relaxed)
    }

    pub fn own_lookup(&self, parent: u64, name: &str) -> OwnLookup {
        let s = self.lock();
        if s.hiding
            .as_ref()
            .is_some_and(|(p, n)| *p == parent && n == name)
        {
            return OwnLookup::Absent;
        }
        match &s.ghost {
            Some((p, n, a)) if *p == parent && n == name => OwnLookup::Ghost(a.clone()),
            _ => OwnLookup::Drive,
        }
    }

    /// The adapter's rmdir (from anyone else) marks the job: its removal needs no
    /// announcement. `done` unmarks it when the rmdir failed.
    pub fn removing(&self, parent: u64, name: &str, on: bool) {
        let mut s = self.lock();
        if on {
            s.removing.insert((parent, name.to_string()));
        } else {
            s.removing.remove(&(parent, name.to_string()));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the refresh thread: it follows the registry's changes (`rx`) and replays each on
    /// the mount. Call after mounting, with a notifier of the session; it ends with `rx`'s
    /// sender.
    pub fn spawn(
        self: &Arc<Self>,
        mountpoint: PathBuf,
        drive: Arc<Drive>,
        registry: Arc<Registry>,
        notifier: fuser::Notifier,
        rx: Receiver<Replay>,
        activity_pending: Arc<std::sync::atomic::AtomicBool>,
    ) -> std::thread::JoinHandle<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("mhfs-refresh".into())
            .spawn(move || {
                // SAFETY: gettid cannot fail and touches no memory.
                me.tid
                    .store(unsafe { libc::gettid() } as u32, Ordering::Relaxed);
                let mut r = Replayer {
                    refresh: &me,
                    jobs: mountpoint.join("jobs"),
                    outputs: mountpoint.join("outputs"),
                    drive,
                    registry,
                    notifier,
                    known: HashMap::new(),
                };
                r.snapshot_all();
                let activity = mountpoint.join("activity.log");
                for event in rx {
                    match event {
                        Replay::Job(change) => r.replay(&change),
                        Replay::Activity => {
                            activity_pending.store(false, Ordering::Release);
                            let size = r.registry.activity().size();
                            r.modified(&activity, size);
                        }
                    }
                }
            })
            .expect("spawn a thread")
    }
}

/// A job folder as last announced: name → (kind, digest and size of a content made from the
/// job's state; `None` for local files, which never change), sorted by name. A boxed slice,
/// not a map: one is kept for every job, and a folder has a handful of entries.
type Folder = Box<[(Name, Kind, Option<(u64, u64)>)]>;
/// An entry's name: the fixed names of a job folder cost no allocation (10,000 jobs are kept).
type Name = std::borrow::Cow<'static, str>;

fn entry_name(name: String) -> Name {
    match ["status", "job.json", "request.json", "error"]
        .into_iter()
        .find(|n| *n == name)
    {
        Some(fixed) => Name::Borrowed(fixed),
        None => Name::Owned(name),
    }
}

struct Replayer<'a> {
    refresh: &'a Refresh,
    jobs: PathBuf,
    outputs: PathBuf,
    drive: Arc<Drive>,
    registry: Arc<Registry>,
    notifier: fuser::Notifier,
    /// Per job: its folder's inode and contents as last announced.
    known: HashMap<JobId, (u64, Folder)>,
}

impl Replayer<'_> {
    fn snapshot_all(&mut self) {
        for (id, _) in self.registry.names() {
            if let Some(s) = self.snapshot(id) {
                self.known.insert(id, s);
            }
        }
    }

    /// The job folder as the mount shows it, with a digest of each entry made from the job's
    /// state (status, job.json, ...): what changed is what a reader would see change.
    fn snapshot(&self, id: JobId) -> Option<(u64, Folder)> {
        let job = self.registry.job(id)?;
        let ino = dir_ino(id);
        let parts: HashMap<String, Part> = job_folder::parts(&job).into_iter().collect();
        let mut folder = self
            .drive
            .readdir(ino)
            .ok()?
            .into_iter()
            .map(|e| {
                let digest = parts
                    .get(&e.name)
                    .and_then(|p| job_folder::content(&job, *p))
                    .map(|c| {
                        let mut h = DefaultHasher::new();
                        c.hash(&mut h);
                        (h.finish(), c.len() as u64)
                    });
                (entry_name(e.name), e.kind, digest)
            })
            .collect::<Vec<_>>();
        folder.sort_by(|a, b| a.0.cmp(&b.0));
        let folder = folder.into_boxed_slice();
        Some((ino, folder))
    }

    fn replay(&mut self, change: &Change) {
        match change {
            Change::Added { id, name } => {
                self.create(JOBS, name, &self.jobs.join(name), Kind::Dir);
                if let Some(s) = self.snapshot(*id) {
                    self.known.insert(*id, s);
                }
            }
            Change::Updated(id) => self.updated(*id),
            Change::Removed { id, name } => {
                let known = self.known.remove(id);
                let by_mount = self
                    .refresh
                    .lock()
                    .removing
                    .remove(&(JOBS, name.to_string()));
                if let (Some((ino, _)), false) = (known, by_mount) {
                    self.remove(JOBS, name, ino);
                }
            }
            // Only `mv` on the mount renames a job: its events are raised already.
            Change::Renamed { .. } => {}
        }
    }

    fn updated(&mut self, id: JobId) {
        let Some(job) = self.registry.job(id) else {
            return;
        };
        let Some((ino, now)) = self.snapshot(id) else {
            return;
        };
        let before = self.known.insert(id, (ino, now.clone()));
        let Some((_, before)) = before else {
            return;
        };
        let dir = self.jobs.join(&job.name);
        for (name, kind, digest) in now.iter() {
            let name: &str = name;
            let was = before.iter().find(|b| &*b.0 == name).map(|b| (b.1, b.2));
            match (was, digest) {
                (None, _) => {
                    self.create(ino, name, &dir.join(name), *kind);
                    // A new output shows in outputs/ too.
                    if let Some((flat, _)) = job_folder::flat(&job)
                        .into_iter()
                        .find(|(_, i)| job.outputs[*i].name == *name)
                    {
                        self.create(OUTPUTS, &flat, &self.outputs.join(&flat), Kind::File);
                    }
                }
                (Some((_, was)), Some((_, size))) if was != *digest => {
                    self.modified(&dir.join(name), *size)
                }
                _ => {}
            }
        }
    }

    /// `IN_CREATE`: drop the kernel's entry, then create it through the mount; the drive's
    /// answer to this thread is the entry that exists already.
    fn create(&self, parent: u64, name: &str, path: &Path, kind: Kind) {
        let _ = self.notifier.inval_entry(INodeNo(parent), OsStr::new(name));
        self.refresh.lock().hiding = Some((parent, name.to_string()));
        let result = match kind {
            Kind::Dir => std::fs::create_dir(path),
            Kind::File => mknod(path),
        };
        self.refresh.lock().hiding = None;
        // EEXIST: someone looked it up in between (and has seen it).
        if let Err(e) = result
            && e.raw_os_error() != Some(libc::EEXIST)
        {
            log::debug!("refresh: announce {}: {e}", path.display());
        }
    }

    /// `IN_MODIFY`: a truncate to the file's size through the mount; the drive answers it
    /// with the file's attributes, unchanged.
    fn modified(&self, path: &Path, size: u64) {
        let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
            return;
        };
        // SAFETY: a valid C string; truncate touches no other memory.
        if unsafe { libc::truncate(c.as_ptr(), size as libc::off_t) } != 0 {
            log::debug!(
                "refresh: announce {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
    }

    /// `IN_DELETE`: the refresh thread's lookup finds the removed job once more, and its rmdir
    /// is answered without effect.
    fn remove(&self, parent: u64, name: &str, ino: u64) {
        let (uid, gid) = self
            .drive
            .getattr(parent)
            .map_or((0, 0), |a| (a.uid, a.gid));
        let now = SystemTime::now();
        let attr = Attr {
            ino,
            kind: Kind::Dir,
            size: 0,
            perm: 0o755,
            mtime: now,
            atime: now,
            ctime: now,
            ttl: Duration::ZERO,
            uid,
            gid,
            direct: false,
        };
        let _ = self.notifier.inval_entry(INodeNo(parent), OsStr::new(name));
        self.refresh.lock().ghost = Some((parent, name.to_string(), attr));
        let result = std::fs::remove_dir(self.jobs.join(name));
        self.refresh.lock().ghost = None;
        if let Err(e) = result {
            log::debug!("refresh: announce removal of {name}: {e}");
        }
    }
}

fn mknod(path: &Path) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a valid C string; mknod touches no other memory.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFREG | 0o644, 0) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
