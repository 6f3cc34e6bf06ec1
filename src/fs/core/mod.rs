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
use crate::engine::submit::{FileRole, accepted, folder_needs, folder_ready, role_of, takes};

use super::readme;

mod access;
mod error;
mod inbox;
pub mod job_folder;
mod trash;
mod tree;

pub use access::{Ask, Sharing, Who};
pub use error::{FsError, FsResult};
pub use job_folder::Part;

pub const ROOT: u64 = 1;
const README: u64 = 2;
pub const INBOX: u64 = 3;
pub const JOBS: u64 = 4;
/// `activity.log` at the root.
pub const ACTIVITY: u64 = 5;
/// `outputs/` at the root: every finished output, flat.
pub const OUTPUTS: u64 = 6;
/// `.mhfs-state` at the root (hidden, not listed): the state directory's path, for
/// `mhfs jobs MOUNTPOINT`.
const STATE_FILE: u64 = 7;
pub const STATE_FILE_NAME: &str = ".mhfs-state";
/// The root's `credits` file: the balance, this mount's charges, the budget.
const CREDITS: u64 = 8;
const FIRST_TOOL: u64 = 16;
const FIRST_STAGED: u64 = 1024;

/// How long the kernel may cache: directories and immutable files longer, changing files not.
const DIR_TTL: Duration = Duration::from_secs(1);
/// A job folder in `jobs/` and its entries: only the daemon changes them, and every change it
/// makes is pushed to the kernel as it happens (`invalidations`), so the kernel may keep them
/// long; `find`, `cat */status` and file managers then cost no lookups.
const JOB_TTL: Duration = Duration::from_secs(60);
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
    /// When it was last read (a local file's own, which is how a staged file keeps a time set
    /// by `touch -a` or an NFS server's create verifier; else its mtime).
    pub atime: SystemTime,
    /// When its attributes last changed (a staged file's own; else its mtime).
    pub ctime: SystemTime,
    pub ttl: Duration,
    pub uid: u32,
    pub gid: u32,
    /// Small content read without the page cache (`status`, `job.json`, `activity.log`,
    /// `credits`: `Opened::direct_io`): `stat` reports a small block size, since the kernel
    /// pins as much of the reader's buffer as it asks for at every read.
    pub direct: bool,
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
    Entry {
        parent: u64,
        name: String,
    },
    /// A file's attributes.
    Inode(u64),
    /// A folder's attributes and the listing the kernel keeps of it (`keeps_listing`).
    Listing(u64),
}

pub type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// A job's output (by index) was opened from this local file.
pub type OutputUsed = dyn Fn(JobId, usize, &File) + Send + Sync;
/// Fetch a job's output (by index) again: the file, open, or one line saying why not.
pub type FetchOutput = dyn Fn(JobId, usize) -> BoxFuture<Result<File, String>> + Send + Sync;

/// What the core asks of the world outside it, set once at start-up.
pub struct Hooks {
    /// Start (or resume) the job's task.
    pub kick: Box<dyn Fn(JobId) + Send + Sync>,
    /// Delete the job on Magic Hour, then locally.
    pub delete: Box<dyn Fn(JobId) -> BoxFuture<Result<(), DeleteError>> + Send + Sync>,
    pub invalidate: Box<dyn Fn(Inval) + Send + Sync>,
    /// Look for a project made elsewhere (web app, SDK) with this id, in the background.
    pub adopt: Box<dyn Fn(String) + Send + Sync>,
    /// A job's output (by index) was opened from local disk (`--cache-size` keeps the most
    /// recently used).
    pub output_used: Box<OutputUsed>,
    /// Fetch again a job's output whose local file is gone (evicted by `--cache-size`): the
    /// file, open, or the one line that says why not and what to do.
    pub fetch_output: Box<FetchOutput>,
}

/// What the kernel must forget when a job changes.
pub fn invalidations(change: &Change) -> Vec<Inval> {
    match change {
        Change::Updated(id) => job_folder::live_inos(*id)
            .map(Inval::Inode)
            .chain([Inval::Listing(job_folder::dir_ino(*id))])
            .collect(),
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

/// `open` of an output evicted from the local cache waits for it to be fetched again;
/// everything else answers at once.
pub enum Open {
    Done(FsResult<Opened>),
    Pending(BoxFuture<FsResult<Opened>>),
}

/// What an inode number stands for.
#[derive(Debug, Clone)]
enum Node {
    Root,
    Readme,
    Inbox,
    Jobs,
    Activity,
    Outputs,
    StateFile,
    /// A job's `outputs[i]`, as `outputs/` shows it.
    Flat(JobId, usize),
    Tool(&'static Tool),
    /// A preset's folder (`inbox/<preset>`), by name.
    Preset(String),
    Credits,
    /// A file or folder of the inbox staging area, by its path under the inbox.
    Staged(PathBuf),
    /// A submitted file's old inode: it now points at the job's copy (for `mv`'s late setattr).
    Moved(PathBuf),
    Job(JobId),
    JobFile(JobId, Part),
    /// A trash folder `.Trash-<uid>`, its `files/` (trashed jobs) and `info/` (local files).
    Bin(u32),
    BinFiles(u32),
    BinInfo(u32),
    BinExpunged(u32),
    /// A file of a trash's `info/`, by its path on local disk.
    Info(PathBuf),
}

enum Handle {
    Staged {
        file: Arc<File>,
        /// Which staged file it is, whatever its name becomes (see `Inner::open`).
        id: FileId,
        rel: PathBuf,
        write: bool,
    },
    Snapshot(Arc<Vec<u8>>),
    Local(Arc<File>),
    /// An ordinary local file (a trash's `.trashinfo`).
    Plain {
        file: Arc<File>,
        write: bool,
    },
}

/// A staged file's identity on the local disk (device, inode): it follows renames, and a new
/// file at the same name is another file.
type FileId = (u64, u64);

fn file_id(meta: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// An inbox file open for writing.
struct Writing {
    writers: u32,
    written: bool,
    /// Its name now (it follows renames).
    rel: PathBuf,
    /// Unlinked or replaced while open: it can no longer be submitted, and it holds up nothing.
    gone: bool,
    /// Refused at close (over the budget): it stays in the inbox, not submitted.
    refused: bool,
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
    /// Inbox files open for writing, by identity: counted per file, not per name, so a
    /// writer of a removed or replaced file never holds up a new file of the same name.
    open: HashMap<FileId, Writing>,
    /// Inbox folders and when they last changed, for the settle interval.
    folders: HashMap<PathBuf, Instant>,
    /// Inbox folders not complete yet, and what activity.log last said they need.
    waiting: HashMap<PathBuf, String>,
    /// Inbox files and folders being moved into a job right now: nothing may open or change
    /// them meanwhile.
    submitting: HashSet<PathBuf>,
    /// Who wrote each inbox file, and who made each inbox folder, by identity (from the
    /// FUSE request, not the file's owner on disk): recorded with the job they become.
    writers: HashMap<FileId, (u32, u32)>,
    /// Inbox files unlinked while open, by their old inode: still usable through their
    /// descriptors (`fstat`, `fchmod`) until the last handle closes.
    orphans: HashMap<u64, Arc<File>>,
    /// Files of the trashes' `info/` folders by inode, and by path.
    info: HashMap<u64, Counted>,
    info_inos: HashMap<PathBuf, u64>,
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
    /// The presets of the config file in force: each is an inbox folder.
    presets: Arc<crate::fs::presets::Presets>,
    credits: OnceLock<Arc<crate::engine::credits::Credits>>,
    sharing: OnceLock<Sharing>,
    readme: Vec<u8>,
    started: SystemTime,
}

fn tool_ino(i: usize) -> u64 {
    FIRST_TOOL + i as u64
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
            presets: Arc::default(),
            credits: OnceLock::new(),
            sharing: OnceLock::new(),
            started: SystemTime::now(),
        })
    }

    pub fn set_hooks(&self, hooks: Hooks) {
        let _ = self.hooks.set(hooks);
    }

    /// Sets the credits shown at the root and in `statfs`, and counted by the budget at close.
    pub fn set_credits(&self, credits: Arc<crate::engine::credits::Credits>) {
        let _ = self.credits.set(credits);
    }

    pub fn credits(&self) -> Option<&Arc<crate::engine::credits::Credits>> {
        self.credits.get()
    }

    pub fn presets(&self) -> &Arc<crate::fs::presets::Presets> {
        &self.presets
    }

    /// Puts the config file's presets in force: each gets its inbox folder (on local disk
    /// too); folders of presets gone are no longer shown (files left in them stay on disk).
    pub fn set_presets(
        &self,
        presets: std::collections::BTreeMap<String, crate::fs::presets::Preset>,
    ) {
        for name in presets.keys() {
            if let Err(e) = std::fs::create_dir_all(self.inbox.join(name)) {
                log::warn!("preset {name:?}: cannot make its inbox folder: {e}");
            }
        }
        let (added, removed) = self.presets.replace(presets);
        for name in added.iter().chain(&removed) {
            self.invalidate(Inval::Entry {
                parent: INBOX,
                name: name.clone(),
            });
        }
        for name in &added {
            log::info!("preset {name}: inbox/{name}/ takes files");
        }
        for name in &removed {
            log::info!("preset {name}: removed from the config; inbox/{name}/ is gone");
        }
        if !added.is_empty() || !removed.is_empty() {
            self.invalidate(Inval::Inode(INBOX));
        }
    }

    /// The inode of an inbox folder of a tool or a preset, by name.
    fn folder_ino(&self, name: &str) -> Option<u64> {
        tool_index(name)
            .map(tool_ino)
            .or_else(|| self.presets.ino(name))
    }

    /// The tool of a path under the inbox (`<tool or preset>/...`): a preset's first step.
    fn tool_of_rel(&self, rel: &Path) -> Option<&'static Tool> {
        let first = rel.components().next()?.as_os_str().to_str()?;
        crate::api::catalog::tool(first).or_else(|| self.presets.get(first).map(|p| p.tool()))
    }

    /// A new job from an inbox path of a preset's folder takes the preset: its parameters,
    /// and, for a pipeline, its place as the first step.
    fn apply_preset(&self, job: &mut Job, rel: &Path) {
        let Some(first) = rel.components().next().and_then(|c| c.as_os_str().to_str()) else {
            return;
        };
        let Some(preset) = self.presets.get(first) else {
            return;
        };
        job.preset = Some(preset.name.clone());
        let params = &preset.steps[0].params;
        job.params = (!params.is_null()).then(|| params.clone());
        if preset.is_pipeline() {
            job.chain = Some(crate::engine::job::Chain {
                preset: preset.name.clone(),
                base: job.name.clone(),
                step: 0,
                steps: preset
                    .steps
                    .iter()
                    .map(|s| crate::engine::job::ChainStep {
                        tool: s.tool.slug.to_string(),
                        params: s.params.clone(),
                    })
                    .collect(),
                handed_on: false,
            });
        }
    }

    /// The `credits` file's content.
    fn credits_text(&self) -> String {
        match self.credits.get() {
            Some(c) => c.text(crate::engine::credits::reserved(&self.registry, None)),
            None => "balance: unknown\n".to_string(),
        }
    }

    /// `statfs` in credits (see `Credits::statfs`): (total, available) 1 KiB blocks.
    pub fn credit_blocks(&self) -> Option<(u64, u64)> {
        self.credits
            .get()?
            .statfs(crate::engine::credits::reserved(&self.registry, None))
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Where dropped files are staged: the space free there is the space a copy can take.
    pub fn staging_dir(&self) -> &Path {
        &self.inbox
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
            ACTIVITY => return Some(Node::Activity),
            OUTPUTS => return Some(Node::Outputs),
            STATE_FILE => return Some(Node::StateFile),
            CREDITS => return Some(Node::Credits),
            _ => {}
        }
        if let Some((id, i)) = job_folder::decode_flat(ino) {
            return Some(Node::Flat(id, i));
        }
        if let Some(node) = trash::decode_trash(ino) {
            return Some(node);
        }
        if let Some(c) = inner.info.get(&ino) {
            return Some(Node::Info(c.path.clone()));
        }
        if ino >= job_folder::JOB_BASE {
            return job_folder::decode(ino).map(|(id, part)| match part {
                None => Node::Job(id),
                Some(p) => Node::JobFile(id, p),
            });
        }
        if (crate::fs::presets::FIRST..crate::fs::presets::END).contains(&ino) {
            return self.presets.name_of(ino).map(Node::Preset);
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
        } else if let Some(c) = inner.info.get_mut(&ino) {
            c.lookups = c.lookups.saturating_sub(n);
            if c.lookups == 0 {
                let path = inner.info.remove(&ino).map(|c| c.path);
                if let Some(path) = path
                    && inner.info_inos.get(&path) == Some(&ino)
                {
                    inner.info_inos.remove(&path);
                }
            }
        }
    }

    /// How many inodes the drive holds in memory (fixed and job inodes are computed and not
    /// counted): for tests of the inode lifecycle.
    pub fn inode_count(&self) -> usize {
        let inner = self.lock();
        inner.staged.len() + inner.moved.len() + inner.info.len()
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
