//! The drive's file system, without FUSE: the tree, the inbox staging area, the job folders.
//!
//! Every call here is served from local state (memory and local disk): no network, and no
//! durable write while holding the lock other calls need. Jobs live in the engine's
//! `Registry`; this side shows them, and turns the registry's changes into what the kernel must
//! forget (`invalidations`). The FUSE adapter (`fuse.rs`) only translates.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::api::catalog::{TOOLS, Tool};
use crate::engine::DeleteError;
use crate::engine::job::{InputFile, Job, JobId, Source};
use crate::engine::names::is_scratch;
use crate::engine::registry::{Change, Registry};
use crate::engine::submit::{FileRole, accepted, folder_ready, role_of};

use super::readme;

mod error;
mod inbox;
pub mod job_folder;
mod tree;

pub use error::{FsError, FsResult};
pub use job_folder::Part;

pub const ROOT: u64 = 1;
const README: u64 = 2;
pub const INBOX: u64 = 3;
pub const JOBS: u64 = 4;
const FIRST_TOOL: u64 = 16;
const FIRST_STAGED: u64 = 1024;

/// How long the kernel may cache: directories and immutable files longer, changing files not.
const DIR_TTL: Duration = Duration::from_secs(1);
const FILE_TTL: Duration = Duration::from_millis(100);
const LIVE_TTL: Duration = Duration::ZERO;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

#[derive(Debug, Clone)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
    pub mtime: SystemTime,
    pub ttl: Duration,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: Kind,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Opened {
    pub fh: u64,
    /// Content that changes (status, job.json): no page cache, reads see the snapshot.
    pub direct_io: bool,
    /// An immutable local file (a downloaded output, a kept input): the kernel may read it
    /// directly (FUSE passthrough) instead of asking for each block.
    pub backing: Option<Arc<File>>,
    /// Content that never changes once shown (outputs, kept inputs): the kernel keeps its page
    /// cache across opens (FOPEN_KEEP_CACHE), so a second read costs what a local read does.
    pub keep_cache: bool,
}

/// What the kernel should forget, sent from outside the handlers (never from inside one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inval {
    Entry { parent: u64, name: String },
    Inode(u64),
}

pub type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// What the core asks of the world outside it, set once at start-up.
pub struct Hooks {
    /// Start (or resume) the job's task.
    pub kick: Box<dyn Fn(JobId) + Send + Sync>,
    /// Delete the job on Magic Hour, then locally.
    pub delete: Box<dyn Fn(JobId) -> BoxFuture<Result<(), DeleteError>> + Send + Sync>,
    pub invalidate: Box<dyn Fn(Inval) + Send + Sync>,
    /// Look for a project made elsewhere (web app, SDK) with this id, in the background.
    pub adopt: Box<dyn Fn(String) + Send + Sync>,
}

/// What the kernel must forget when a job changes.
pub fn invalidations(change: &Change) -> Vec<Inval> {
    match change {
        Change::Updated(id) => job_folder::live_inos(*id).map(Inval::Inode).collect(),
        Change::Added { name, .. } => vec![Inval::Entry {
            parent: JOBS,
            name: name.clone(),
        }],
        Change::Renamed { from: name, .. } | Change::Removed { name, .. } => vec![Inval::Entry {
            parent: JOBS,
            name: name.clone(),
        }],
    }
}

/// Whether a name could be a Magic Hour project id (a cuid): what `jobs/<id>` adopts.
pub fn looks_like_project_id(name: &str) -> bool {
    name.len() >= 20
        && name.len() <= 40
        && name.starts_with('c')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// `rmdir` of a job waits for the API; everything else answers at once.
pub enum Rmdir {
    Done(FsResult<()>),
    Pending(BoxFuture<FsResult<()>>),
}

/// What an inode number stands for.
#[derive(Debug, Clone)]
enum Node {
    Root,
    Readme,
    Inbox,
    Jobs,
    Tool(&'static Tool),
    /// A file or folder of the inbox staging area, by its path under the inbox.
    Staged(PathBuf),
    /// A submitted file's old inode: it now points at the job's copy (for `mv`'s late setattr).
    Moved(PathBuf),
    Job(JobId),
    JobFile(JobId, Part),
}

enum Handle {
    Staged {
        file: Arc<File>,
        rel: PathBuf,
        write: bool,
    },
    Snapshot(Arc<Vec<u8>>),
    Local(Arc<File>),
}

#[derive(Default)]
struct StagedMeta {
    writers: u32,
    written: bool,
}

/// An inode of the inbox, with the kernel's count of references to it (`forget` lowers it;
/// at zero the entry goes).
struct Counted {
    path: PathBuf,
    lookups: u64,
}

#[derive(Default)]
struct Inner {
    /// Inbox inodes by number, and by path.
    staged: HashMap<u64, Counted>,
    inos: HashMap<PathBuf, u64>,
    /// Submitted files' old inodes (see `Node::Moved`), until the kernel forgets them.
    moved: HashMap<u64, Counted>,
    next_ino: u64,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    /// Open files of the inbox: writers, and whether data was written.
    open: HashMap<PathBuf, StagedMeta>,
    /// Inbox folders and when they last changed, for the settle interval.
    folders: HashMap<PathBuf, Instant>,
    /// Inbox files and folders being moved into a job right now: nothing may open or change
    /// them meanwhile.
    submitting: HashSet<PathBuf>,
}

pub struct DriveConfig {
    /// The defaults README.txt shows (built-in, then the user's file).
    pub defaults: crate::api::catalog::Overrides,
    /// Quiet time before a complete inbox folder is submitted.
    pub settle: Duration,
    pub uid: u32,
    pub gid: u32,
}

pub struct Drive {
    cfg: DriveConfig,
    registry: Arc<Registry>,
    inbox: PathBuf,
    inner: Mutex<Inner>,
    hooks: OnceLock<Hooks>,
    readme: Vec<u8>,
    started: SystemTime,
}

fn tool_ino(i: usize) -> u64 {
    FIRST_TOOL + i as u64
}

/// The tool of a path under the inbox (`<tool>/...`).
fn tool_of_rel(rel: &Path) -> Option<&'static Tool> {
    rel.components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .and_then(crate::api::catalog::tool)
}

fn tool_index(slug: &str) -> Option<usize> {
    TOOLS.iter().position(|t| t.slug == slug)
}

impl Drive {
    pub fn new(registry: Arc<Registry>, cfg: DriveConfig) -> Arc<Drive> {
        Arc::new(Drive {
            readme: readme::readme_txt(&cfg.defaults, cfg.settle).into_bytes(),
            inbox: registry.layout().inbox(),
            registry,
            cfg,
            // Inbox folders left from the last run are not armed: a file in one may have been
            // cut by the stop. The next change in a folder arms it again.
            inner: Mutex::new(Inner {
                next_ino: FIRST_STAGED,
                next_fh: 1,
                ..Inner::default()
            }),
            hooks: OnceLock::new(),
            started: SystemTime::now(),
        })
    }

    pub fn set_hooks(&self, hooks: Hooks) {
        let _ = self.hooks.set(hooks);
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn invalidate(&self, inval: Inval) {
        if let Some(h) = self.hooks.get() {
            (h.invalidate)(inval);
        }
    }

    fn kick(&self, id: JobId) {
        if let Some(h) = self.hooks.get() {
            (h.kick)(id);
        }
    }

    /// What an inode stands for, or `None` if it is unknown (or forgotten).
    fn node(&self, inner: &Inner, ino: u64) -> Option<Node> {
        match ino {
            ROOT => return Some(Node::Root),
            README => return Some(Node::Readme),
            INBOX => return Some(Node::Inbox),
            JOBS => return Some(Node::Jobs),
            _ => {}
        }
        if ino >= job_folder::JOB_BASE {
            return job_folder::decode(ino).map(|(id, part)| match part {
                None => Node::Job(id),
                Some(p) => Node::JobFile(id, p),
            });
        }
        if let Some(i) = ino.checked_sub(FIRST_TOOL).filter(|_| ino < FIRST_STAGED) {
            return TOOLS.get(i as usize).map(Node::Tool);
        }
        if let Some(c) = inner.staged.get(&ino) {
            return Some(Node::Staged(c.path.clone()));
        }
        inner.moved.get(&ino).map(|c| Node::Moved(c.path.clone()))
    }

    /// The inode of an inbox path, made on first sight.
    fn staged_ino(inner: &mut Inner, rel: &Path) -> u64 {
        if let Some(ino) = inner.inos.get(rel) {
            return *ino;
        }
        let ino = inner.next_ino;
        inner.next_ino += 1;
        inner.inos.insert(rel.to_path_buf(), ino);
        inner.staged.insert(
            ino,
            Counted {
                path: rel.to_path_buf(),
                lookups: 0,
            },
        );
        ino
    }

    /// The kernel took a reference to an inode (an entry was replied).
    fn remember(inner: &mut Inner, ino: u64) {
        if let Some(c) = inner.staged.get_mut(&ino) {
            c.lookups += 1;
        }
    }

    /// Drops an inbox path's inode (it was removed or submitted); `Some(ino)` if it had one.
    fn drop_staged(inner: &mut Inner, rel: &Path) -> Option<(u64, u64)> {
        let ino = inner.inos.remove(rel)?;
        let lookups = inner.staged.remove(&ino).map_or(0, |c| c.lookups);
        Some((ino, lookups))
    }

    /// The kernel forgot `n` references to an inode: at zero, its entry goes. Job and fixed
    /// inodes are computed, so there is nothing to drop for them.
    pub fn forget(&self, ino: u64, n: u64) {
        let mut inner = self.lock();
        if let Some(c) = inner.staged.get_mut(&ino) {
            c.lookups = c.lookups.saturating_sub(n);
            if c.lookups == 0 {
                let path = inner.staged.remove(&ino).map(|c| c.path);
                if let Some(path) = path
                    && inner.inos.get(&path) == Some(&ino)
                {
                    inner.inos.remove(&path);
                }
            }
        } else if let Some(c) = inner.moved.get_mut(&ino) {
            c.lookups = c.lookups.saturating_sub(n);
            if c.lookups == 0 {
                inner.moved.remove(&ino);
            }
        }
    }

    /// How many inodes the drive holds in memory (fixed and job inodes are computed and not
    /// counted): for tests of the inode lifecycle.
    pub fn inode_count(&self) -> usize {
        let inner = self.lock();
        inner.staged.len() + inner.moved.len()
    }
}

/// `p` under `src`, moved under `dst` (`src` itself becomes `dst`, without a trailing slash).
fn rebase(p: &Path, src: &Path, dst: &Path) -> PathBuf {
    match p.strip_prefix(src) {
        Ok(rest) if !rest.as_os_str().is_empty() => dst.join(rest),
        _ => dst.to_path_buf(),
    }
}

/// Owner of the mount's files: the user who runs mhfs (or the one in the options).
pub fn current_ids() -> (u32, u32) {
    // SAFETY: getuid/getgid cannot fail and touch no memory.
    unsafe { (libc::getuid(), libc::getgid()) }
}
