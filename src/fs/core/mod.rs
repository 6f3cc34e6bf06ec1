//! The drive's file system, without FUSE: the tree, the inbox staging area, the job folders.
//!
//! Every call here is served from local state (memory and local disk): no network. The engine
//! changes jobs through `update`, which persists them and tells the kernel what changed through
//! the `invalidate` hook; the FUSE adapter (`fuse.rs`) only translates.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::api::ApiError;
use crate::api::catalog::{TOOLS, Tool};
use crate::engine::job::{InputFile, Job, JobId, JobStatus, Stage};
use crate::engine::store::Store;
use crate::engine::submit::{FileRole, accepted, folder_ready, role_of};

use super::names::{is_scratch, job_name};
use super::readme;

mod inbox;
mod tree;

pub const ROOT: u64 = 1;
const README: u64 = 2;
const INBOX: u64 = 3;
const JOBS: u64 = 4;
const FIRST_TOOL: u64 = 16;
const FIRST_DYNAMIC: u64 = 1024;

/// How long the kernel may cache: directories and immutable files longer, changing files not.
const DIR_TTL: Duration = Duration::from_secs(1);
const FILE_TTL: Duration = Duration::from_millis(100);
const LIVE_TTL: Duration = Duration::ZERO;

/// A refusal: the errno the caller sees, and the one log line that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsError {
    pub errno: i32,
    /// `None` for the quiet, expected misses (a lookup of a name that does not exist).
    pub message: Option<String>,
}

impl FsError {
    pub fn quiet(errno: i32) -> FsError {
        FsError {
            errno,
            message: None,
        }
    }

    pub fn refuse(errno: i32, message: impl Into<String>) -> FsError {
        let message = message.into();
        log::warn!("{message}");
        FsError {
            errno,
            message: Some(message),
        }
    }

    fn io(e: std::io::Error, what: &str) -> FsError {
        let errno = e.raw_os_error().unwrap_or(libc::EIO);
        if errno == libc::ENOENT {
            FsError::quiet(errno)
        } else {
            FsError::refuse(errno, format!("{what}: {e}"))
        }
    }
}

pub type FsResult<T> = Result<T, FsError>;

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
}

/// What the kernel should forget, sent by the engine side (never from inside a handler).
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
    pub delete: Box<dyn Fn(JobId) -> BoxFuture<Result<(), ApiError>> + Send + Sync>,
    pub invalidate: Box<dyn Fn(Inval) + Send + Sync>,
    /// Look for a project made elsewhere (web app, SDK) with this id, in the background.
    pub adopt: Box<dyn Fn(String) + Send + Sync>,
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

/// The parts of a job folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Part {
    Status,
    JobJson,
    Request,
    Error,
    Output(String),
    Input(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Node {
    /// A file or folder of the inbox staging area, by its path under the inbox.
    Staged(PathBuf),
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

struct Inner {
    jobs: BTreeMap<JobId, Job>,
    nodes: HashMap<u64, Node>,
    inos: HashMap<Node, u64>,
    next_ino: u64,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    staged: HashMap<PathBuf, StagedMeta>,
    /// Inbox folders and when they last changed, for the settle interval.
    folders: HashMap<PathBuf, Instant>,
    /// Submitted files: their old inode now points at the job's copy (for `mv`'s late setattr).
    moved: HashMap<u64, PathBuf>,
    /// Jobs being deleted: they must not start their create.
    deleting: std::collections::HashSet<JobId>,
}

pub struct DriveConfig {
    pub state_dir: PathBuf,
    /// The defaults README.txt shows (built-in, then the user's file).
    pub defaults: crate::api::catalog::Overrides,
    /// Quiet time before a complete inbox folder is submitted.
    pub settle: Duration,
    pub uid: u32,
    pub gid: u32,
}

pub struct Drive {
    cfg: DriveConfig,
    inbox: PathBuf,
    store: Mutex<Store>,
    inner: Mutex<Inner>,
    hooks: OnceLock<Hooks>,
    readme: Vec<u8>,
    started: SystemTime,
    /// Held for the life of the drive: one mount per state directory, or jobs would run twice.
    _lock: File,
    /// Set when unmounting begins: no new create call starts.
    stopping: std::sync::atomic::AtomicBool,
}

/// Takes the state directory's lock, or says which process holds it.
fn lock_state_dir(dir: &Path) -> Result<File, String> {
    use std::os::fd::AsRawFd;
    let path = dir.join("mhfs.lock");
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a valid, owned descriptor.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "the state directory {} is in use by another mhfs mount (one mount per state \
             directory; give this one --state-dir)",
            dir.display()
        ));
    }
    Ok(file)
}

fn tool_ino(i: usize) -> u64 {
    FIRST_TOOL + i as u64
}

fn tool_of_ino(ino: u64) -> Option<&'static Tool> {
    ino.checked_sub(FIRST_TOOL)
        .filter(|_| ino < FIRST_DYNAMIC)
        .and_then(|i| TOOLS.get(i as usize))
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
    /// Opens (or creates) the state directory and loads every job.
    pub fn load(cfg: DriveConfig) -> Result<Arc<Drive>, String> {
        let inbox = cfg.state_dir.join("inbox");
        for t in TOOLS {
            std::fs::create_dir_all(inbox.join(t.slug))
                .map_err(|e| format!("cannot create {}: {e}", inbox.display()))?;
        }
        std::fs::create_dir_all(cfg.state_dir.join("jobs"))
            .map_err(|e| format!("cannot create {}: {e}", cfg.state_dir.display()))?;
        let lock = lock_state_dir(&cfg.state_dir)?;
        let store = Store::open(&cfg.state_dir.join("jobs.db")).map_err(|e| e.to_string())?;
        let mut jobs = store.all().map_err(|e| e.to_string())?;
        recover(&cfg.state_dir, &store, &mut jobs);
        // Inbox folders left from the last run are not armed: a file in one may have been cut
        // by the stop. The next change in a folder arms it again.
        let folders = HashMap::new();
        let inner = Inner {
            jobs: jobs.into_iter().map(|j| (j.id, j)).collect(),
            nodes: HashMap::new(),
            inos: HashMap::new(),
            next_ino: FIRST_DYNAMIC,
            handles: HashMap::new(),
            next_fh: 1,
            staged: HashMap::new(),
            folders,
            moved: HashMap::new(),
            deleting: Default::default(),
        };
        Ok(Arc::new(Drive {
            readme: readme::readme_txt(&cfg.defaults, cfg.settle).into_bytes(),
            cfg,
            inbox,
            store: Mutex::new(store),
            inner: Mutex::new(inner),
            hooks: OnceLock::new(),
            started: SystemTime::now(),
            _lock: lock,
            stopping: Default::default(),
        }))
    }

    pub fn set_hooks(&self, hooks: Hooks) {
        let _ = self.hooks.set(hooks);
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

    // ---- the engine's side ----

    pub fn jobs(&self) -> Vec<Job> {
        self.lock().jobs.values().cloned().collect()
    }

    pub fn job(&self, id: JobId) -> Option<Job> {
        self.lock().jobs.get(&id).cloned()
    }

    pub fn job_dir(&self, id: JobId) -> PathBuf {
        self.cfg.state_dir.join("jobs").join(id.to_string())
    }

    pub fn input_dir(&self, id: JobId) -> PathBuf {
        self.job_dir(id).join("input")
    }

    pub fn output_dir(&self, id: JobId) -> PathBuf {
        self.job_dir(id).join("out")
    }

    /// Changes a job, saves it, and tells the kernel. Locks are always taken in the order
    /// `inner` then `store`, so saves happen in the order of the changes.
    pub fn update(&self, id: JobId, f: impl FnOnce(&mut Job)) -> Option<Job> {
        let (job, inos) = {
            let mut inner = self.lock();
            let job = inner.jobs.get_mut(&id)?;
            f(job);
            job.updated = SystemTime::now();
            let job = job.clone();
            if let Err(e) = self.store().save(&job) {
                log::error!("job {}: {e}", job.name);
            }
            let inos: Vec<u64> = [Part::Status, Part::JobJson, Part::Request, Part::Error]
                .into_iter()
                .filter_map(|p| inner.inos.get(&Node::JobFile(id, p)).copied())
                .chain(inner.inos.get(&Node::Job(id)).copied())
                .collect();
            (job, inos)
        };
        for ino in inos {
            self.invalidate(Inval::Inode(ino));
        }
        Some(job)
    }

    /// The step before a create call: records the body and `Creating`, durably, unless the job
    /// is being deleted. `false`: do not send the create.
    pub fn begin_create(&self, id: JobId, body: serde_json::Value) -> bool {
        let mut inner = self.lock();
        if inner.deleting.contains(&id) || self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        let Some(job) = inner.jobs.get_mut(&id) else {
            return false;
        };
        let before = job.clone();
        job.request = Some(body);
        job.stage = Stage::Creating;
        job.status = JobStatus::Submitting;
        job.updated = SystemTime::now();
        let saved = self.store().save(job);
        if let Err(e) = saved {
            log::error!(
                "job {}: cannot record the create step, not sending it: {e}",
                job.name
            );
            *job = before;
            return false;
        }
        let ino = inner.inos.get(&Node::JobFile(id, Part::Status)).copied();
        drop(inner);
        if let Some(ino) = ino {
            self.invalidate(Inval::Inode(ino));
        }
        true
    }

    /// Unmounting begins: no create starts from now on, and the ones in flight get `limit` to
    /// finish, so a clean stop never leaves a create's outcome unknown.
    pub fn stop_creates(&self, limit: Duration) {
        {
            // Under the lock, so no begin_create is between its check and its save.
            let _inner = self.lock();
            self.stopping
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let deadline = Instant::now() + limit;
        while self.jobs().iter().any(|j| j.stage == Stage::Creating) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Marks a job as being deleted, so it will not start a create. Refused (`None`) while a
    /// create is in flight: its outcome decides whether there is a project to delete.
    pub fn begin_delete(&self, id: JobId) -> Option<Stage> {
        let mut inner = self.lock();
        let stage = inner.jobs.get(&id)?.stage;
        if stage == Stage::Creating {
            return None;
        }
        inner.deleting.insert(id);
        Some(stage)
    }

    pub fn end_delete(&self, id: JobId) {
        self.lock().deleting.remove(&id);
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets a deleted job and its local data.
    pub fn remove_job(&self, id: JobId) {
        let removed = {
            let mut inner = self.lock();
            let removed = inner.jobs.remove(&id);
            if let Err(e) = self.store().delete(id) {
                log::error!("job {id}: {e}");
            }
            removed
        };
        if let Some(job) = removed {
            let _ = std::fs::remove_dir_all(self.job_dir(id));
            self.invalidate(Inval::Entry {
                parent: JOBS,
                name: job.name.clone(),
            });
            log::info!("job {}: deleted", job.name);
        }
    }
}

/// Mends what a crash in the middle of a submission or a deletion can leave: a job recorded
/// before its input was moved in (its inputs are found again in its folder, or it fails saying
/// where the file is), and job folders whose job was deleted.
fn recover(state_dir: &Path, store: &Store, jobs: &mut [Job]) {
    for job in jobs
        .iter_mut()
        .filter(|j| j.stage == Stage::Staged && j.inputs.is_empty())
    {
        let dir = state_dir
            .join("jobs")
            .join(job.id.to_string())
            .join("input");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.metadata().is_ok_and(|m| m.is_file() && m.len() > 0))
            .filter(|p| !is_scratch(&p.file_name().unwrap_or_default().to_string_lossy()))
            .collect();
        files.sort();
        if files.is_empty() {
            job.fail(
                Stage::Failed,
                "input_lost",
                "mhfs stopped while taking this file; it is still in the inbox (or gone if it was \
                 being written): copy it in again",
            );
        } else {
            let folder = job.source == "folder";
            job.inputs = files
                .into_iter()
                .map(|path| {
                    let file = path
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .to_string();
                    let name = if folder {
                        format!("{}/{file}", job.name)
                    } else {
                        file
                    };
                    InputFile {
                        name,
                        path,
                        remote: None,
                    }
                })
                .collect();
        }
        if let Err(e) = store.save(job) {
            log::error!("job {}: {e}", job.name);
        }
    }
    let known: std::collections::HashSet<String> = jobs.iter().map(|j| j.id.to_string()).collect();
    for entry in std::fs::read_dir(state_dir.join("jobs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        if !known.contains(&name) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `p` under `src`, moved under `dst` (`src` itself becomes `dst`, without a trailing slash).
fn rebase(p: &Path, src: &Path, dst: &Path) -> PathBuf {
    match p.strip_prefix(src) {
        Ok(rest) if !rest.as_os_str().is_empty() => dst.join(rest),
        _ => dst.to_path_buf(),
    }
}

fn pretty(v: &serde_json::Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s.into_bytes()
}

/// Owner of the mount's files: the user who runs mhfs (or the one in the options).
pub fn current_ids() -> (u32, u32) {
    // SAFETY: getuid/getgid cannot fail and touch no memory.
    unsafe { (libc::getuid(), libc::getgid()) }
}
