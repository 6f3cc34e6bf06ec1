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
        let mut folders = HashMap::new();
        for t in TOOLS {
            for entry in std::fs::read_dir(inbox.join(t.slug))
                .into_iter()
                .flatten()
                .flatten()
            {
                if entry.file_type().is_ok_and(|f| f.is_dir()) {
                    folders.insert(Path::new(t.slug).join(entry.file_name()), Instant::now());
                }
            }
        }
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
            readme: readme::readme_txt(&cfg.defaults).into_bytes(),
            cfg,
            inbox,
            store: Mutex::new(store),
            inner: Mutex::new(inner),
            hooks: OnceLock::new(),
            started: SystemTime::now(),
            _lock: lock,
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
        if inner.deleting.contains(&id) {
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

    // ---- attributes ----

    fn attr(
        &self,
        ino: u64,
        kind: Kind,
        size: u64,
        perm: u16,
        mtime: SystemTime,
        ttl: Duration,
    ) -> Attr {
        Attr {
            ino,
            kind,
            size,
            perm,
            mtime,
            ttl,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
        }
    }

    fn ino_of(inner: &mut Inner, node: Node) -> u64 {
        if let Some(ino) = inner.inos.get(&node) {
            return *ino;
        }
        let ino = inner.next_ino;
        inner.next_ino += 1;
        inner.inos.insert(node.clone(), ino);
        inner.nodes.insert(ino, node);
        ino
    }

    fn staged_attr(&self, ino: u64, path: &Path) -> FsResult<Attr> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| FsError::io(e, "stat"))?;
        let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
        Ok(self.attr(
            ino,
            kind,
            meta.len(),
            (meta.permissions().mode() & 0o7777) as u16,
            meta.modified().unwrap_or(self.started),
            if kind == Kind::Dir { DIR_TTL } else { FILE_TTL },
        ))
    }

    fn job_file_content(&self, job: &Job, part: &Part) -> Option<Vec<u8>> {
        match part {
            Part::Status => Some(job.status_text().into_bytes()),
            Part::JobJson => job.project.as_ref().map(pretty),
            Part::Request => job.request.as_ref().map(pretty),
            Part::Error => job.error_text().map(String::into_bytes),
            Part::Output(_) | Part::Input(_) => None,
        }
    }

    /// The local file behind an output or a kept input, if it is shown.
    fn job_local_file(&self, job: &Job, part: &Part) -> Option<PathBuf> {
        match part {
            Part::Output(name) => job
                .outputs
                .iter()
                .find(|o| &o.name == name && o.done && !o.removed)
                .map(|o| self.output_dir(job.id).join(&o.name)),
            Part::Input(i) => job
                .inputs
                .get(*i)
                .filter(|_| job.shows_inputs())
                .map(|f| f.path.clone())
                .filter(|p| p.exists()),
            _ => None,
        }
    }

    /// The names in a job folder, in display order.
    fn job_parts(&self, job: &Job) -> Vec<(String, Part)> {
        let mut parts = vec![("status".to_string(), Part::Status)];
        if job.request.is_some() {
            parts.push(("request.json".into(), Part::Request));
        }
        if job.project.is_some() {
            parts.push(("job.json".into(), Part::JobJson));
        }
        if job.error.is_some() {
            parts.push(("error".into(), Part::Error));
        }
        for o in job.outputs.iter().filter(|o| o.done && !o.removed) {
            parts.push((o.name.clone(), Part::Output(o.name.clone())));
        }
        if job.shows_inputs() {
            for (i, f) in job.inputs.iter().enumerate() {
                let name = f.name.rsplit('/').next().unwrap_or(&f.name).to_string();
                if f.path.exists() && !parts.iter().any(|(n, _)| *n == name) {
                    parts.push((name, Part::Input(i)));
                }
            }
        }
        parts
    }

    fn job_part_attr(&self, ino: u64, job: &Job, part: &Part) -> FsResult<Attr> {
        if let Some(content) = self.job_file_content(job, part) {
            return Ok(self.attr(
                ino,
                Kind::File,
                content.len() as u64,
                0o444,
                job.updated,
                LIVE_TTL,
            ));
        }
        let path = self
            .job_local_file(job, part)
            .ok_or(FsError::quiet(libc::ENOENT))?;
        let meta = std::fs::metadata(&path).map_err(|e| FsError::io(e, "stat"))?;
        Ok(self.attr(
            ino,
            Kind::File,
            meta.len(),
            0o444,
            meta.modified().unwrap_or(job.updated),
            FILE_TTL,
        ))
    }

    pub fn getattr(&self, ino: u64) -> FsResult<Attr> {
        let dir = |ino, perm| self.attr(ino, Kind::Dir, 0, perm, self.started, DIR_TTL);
        match ino {
            ROOT | INBOX => return Ok(dir(ino, 0o755)),
            JOBS => return Ok(dir(ino, 0o755)),
            README => {
                return Ok(self.attr(
                    ino,
                    Kind::File,
                    self.readme.len() as u64,
                    0o444,
                    self.started,
                    DIR_TTL,
                ));
            }
            _ => {}
        }
        if tool_of_ino(ino).is_some() {
            return Ok(dir(ino, 0o777));
        }
        let inner = self.lock();
        if let Some(path) = inner.moved.get(&ino) {
            let path = path.clone();
            drop(inner);
            return self.staged_attr(ino, &path);
        }
        match inner.nodes.get(&ino).cloned() {
            Some(Node::Staged(rel)) => {
                drop(inner);
                self.staged_attr(ino, &self.inbox.join(rel))
            }
            Some(Node::Job(id)) => {
                let job = inner.jobs.get(&id).ok_or(FsError::quiet(libc::ENOENT))?;
                Ok(self.attr(ino, Kind::Dir, 0, 0o755, job.created, DIR_TTL))
            }
            Some(Node::JobFile(id, part)) => {
                let job = inner
                    .jobs
                    .get(&id)
                    .cloned()
                    .ok_or(FsError::quiet(libc::ENOENT))?;
                drop(inner);
                self.job_part_attr(ino, &job, &part)
            }
            None => Err(FsError::quiet(libc::ENOENT)),
        }
    }

    /// Where a directory inode lives in the staging area (`inbox/<tool>` or one of its folders).
    fn staged_dir(&self, inner: &Inner, ino: u64) -> Option<(PathBuf, &'static Tool, bool)> {
        if let Some(t) = tool_of_ino(ino) {
            return Some((PathBuf::from(t.slug), t, false));
        }
        match inner.nodes.get(&ino) {
            Some(Node::Staged(rel)) if rel.components().count() == 2 => {
                let slug = rel.components().next()?.as_os_str().to_str()?;
                let tool = TOOLS.iter().find(|t| t.slug == slug)?;
                self.inbox
                    .join(rel)
                    .is_dir()
                    .then(|| (rel.clone(), tool, true))
            }
            _ => None,
        }
    }

    fn job_by_name(inner: &Inner, name: &str) -> Option<JobId> {
        inner.jobs.values().find(|j| j.name == name).map(|j| j.id)
    }

    pub fn lookup(&self, parent: u64, name: &str) -> FsResult<Attr> {
        match parent {
            ROOT => {
                return match name {
                    "README.txt" => self.getattr(README),
                    "inbox" => self.getattr(INBOX),
                    "jobs" => self.getattr(JOBS),
                    _ => Err(FsError::quiet(libc::ENOENT)),
                };
            }
            INBOX => {
                return tool_index(name)
                    .map(|i| self.getattr(tool_ino(i)))
                    .unwrap_or(Err(FsError::quiet(libc::ENOENT)));
            }
            _ => {}
        }
        let mut inner = self.lock();
        if parent == JOBS {
            let Some(id) = Self::job_by_name(&inner, name) else {
                // A project id of a job made elsewhere: adopt it in the background (never a
                // network call here); it appears in jobs/ once found.
                if looks_like_project_id(name)
                    && !inner
                        .jobs
                        .values()
                        .any(|j| j.project_id.as_deref() == Some(name))
                    && let Some(h) = self.hooks.get()
                {
                    (h.adopt)(name.to_string());
                }
                return Err(FsError::quiet(libc::ENOENT));
            };
            let ino = Self::ino_of(&mut inner, Node::Job(id));
            drop(inner);
            return self.getattr(ino);
        }
        if let Some((dir, _, _)) = self.staged_dir(&inner, parent) {
            let rel = dir.join(name);
            // Only names that exist get an inode: misses (file managers probe a lot) cost nothing.
            let attr = self.staged_attr(0, &self.inbox.join(&rel))?;
            let ino = Self::ino_of(&mut inner, Node::Staged(rel));
            return Ok(Attr { ino, ..attr });
        }
        if let Some(Node::Job(id)) = inner.nodes.get(&parent).cloned() {
            let job = inner
                .jobs
                .get(&id)
                .cloned()
                .ok_or(FsError::quiet(libc::ENOENT))?;
            let part = self
                .job_parts(&job)
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| p)
                .ok_or(FsError::quiet(libc::ENOENT))?;
            let ino = Self::ino_of(&mut inner, Node::JobFile(id, part.clone()));
            drop(inner);
            return self.job_part_attr(ino, &job, &part);
        }
        Err(FsError::quiet(libc::ENOENT))
    }

    pub fn readdir(&self, ino: u64) -> FsResult<Vec<DirEntry>> {
        let entry = |ino, kind, name: &str| DirEntry {
            ino,
            kind,
            name: name.to_string(),
        };
        match ino {
            ROOT => {
                return Ok(vec![
                    entry(README, Kind::File, "README.txt"),
                    entry(INBOX, Kind::Dir, "inbox"),
                    entry(JOBS, Kind::Dir, "jobs"),
                ]);
            }
            INBOX => {
                return Ok(TOOLS
                    .iter()
                    .enumerate()
                    .map(|(i, t)| entry(tool_ino(i), Kind::Dir, t.slug))
                    .collect());
            }
            _ => {}
        }
        let mut inner = self.lock();
        if ino == JOBS {
            let jobs: Vec<(JobId, String)> = inner
                .jobs
                .values()
                .map(|j| (j.id, j.name.clone()))
                .collect();
            return Ok(jobs
                .into_iter()
                .map(|(id, name)| entry(Self::ino_of(&mut inner, Node::Job(id)), Kind::Dir, &name))
                .collect());
        }
        if let Some((dir, _, _)) = self.staged_dir(&inner, ino) {
            let listing =
                std::fs::read_dir(self.inbox.join(&dir)).map_err(|e| FsError::io(e, "readdir"))?;
            let mut out = Vec::new();
            for e in listing.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let kind = if e.file_type().is_ok_and(|t| t.is_dir()) {
                    Kind::Dir
                } else {
                    Kind::File
                };
                let child = Self::ino_of(&mut inner, Node::Staged(dir.join(&name)));
                out.push(entry(child, kind, &name));
            }
            return Ok(out);
        }
        if let Some(Node::Job(id)) = inner.nodes.get(&ino).cloned() {
            let job = inner
                .jobs
                .get(&id)
                .cloned()
                .ok_or(FsError::quiet(libc::ENOENT))?;
            return Ok(self
                .job_parts(&job)
                .into_iter()
                .map(|(name, part)| {
                    entry(
                        Self::ino_of(&mut inner, Node::JobFile(id, part)),
                        Kind::File,
                        &name,
                    )
                })
                .collect());
        }
        Err(FsError::quiet(libc::ENOTDIR))
    }

    /// The parent directory's inode of a node, for `..`.
    pub fn parent_of(&self, ino: u64) -> u64 {
        if matches!(ino, ROOT | README | INBOX | JOBS) {
            return ROOT;
        }
        if tool_of_ino(ino).is_some() {
            return INBOX;
        }
        let inner = self.lock();
        match inner.nodes.get(&ino) {
            Some(Node::Job(_)) => JOBS,
            Some(Node::JobFile(id, _)) => inner.inos.get(&Node::Job(*id)).copied().unwrap_or(JOBS),
            Some(Node::Staged(rel)) => {
                let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
                match parent.components().count() {
                    1 => tool_index(&parent.to_string_lossy())
                        .map(tool_ino)
                        .unwrap_or(INBOX),
                    _ => inner
                        .inos
                        .get(&Node::Staged(parent))
                        .copied()
                        .unwrap_or(INBOX),
                }
            }
            None => ROOT,
        }
    }

    // ---- open, read, write ----

    fn new_handle(inner: &mut Inner, h: Handle) -> u64 {
        let fh = inner.next_fh;
        inner.next_fh += 1;
        inner.handles.insert(fh, h);
        fh
    }

    pub fn open(&self, ino: u64, write: bool, truncate: bool) -> FsResult<Opened> {
        if ino == README {
            if write {
                return Err(FsError::refuse(libc::EACCES, "README.txt is read-only"));
            }
            let mut inner = self.lock();
            let fh = Self::new_handle(&mut inner, Handle::Snapshot(Arc::new(self.readme.clone())));
            return Ok(Opened {
                fh,
                direct_io: false,
                backing: None,
            });
        }
        let mut inner = self.lock();
        match inner.nodes.get(&ino).cloned() {
            Some(Node::Staged(rel)) => {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(write)
                    .truncate(truncate && write)
                    .open(self.inbox.join(&rel))
                    .map_err(|e| FsError::io(e, "open"))?;
                if write {
                    let meta = inner.staged.entry(rel.clone()).or_default();
                    meta.writers += 1;
                    if truncate {
                        meta.written = true;
                    }
                    self.touch_folder(&mut inner, &rel);
                }
                let fh = Self::new_handle(
                    &mut inner,
                    Handle::Staged {
                        file: Arc::new(file),
                        rel,
                        write,
                    },
                );
                Ok(Opened {
                    fh,
                    direct_io: false,
                    backing: None,
                })
            }
            Some(Node::JobFile(id, part)) => {
                if write {
                    return Err(FsError::refuse(libc::EACCES, "job folders are read-only"));
                }
                let job = inner
                    .jobs
                    .get(&id)
                    .cloned()
                    .ok_or(FsError::quiet(libc::ENOENT))?;
                if let Some(content) = self.job_file_content(&job, &part) {
                    let fh = Self::new_handle(&mut inner, Handle::Snapshot(Arc::new(content)));
                    return Ok(Opened {
                        fh,
                        direct_io: true,
                        backing: None,
                    });
                }
                let path = self
                    .job_local_file(&job, &part)
                    .ok_or(FsError::quiet(libc::ENOENT))?;
                let file = Arc::new(File::open(&path).map_err(|e| FsError::io(e, "open"))?);
                let fh = Self::new_handle(&mut inner, Handle::Local(file.clone()));
                Ok(Opened {
                    fh,
                    direct_io: false,
                    backing: Some(file),
                })
            }
            _ if inner.moved.contains_key(&ino) => Err(FsError::quiet(libc::ENOENT)),
            _ => Err(FsError::quiet(libc::EISDIR)),
        }
    }

    pub fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        enum Src {
            Bytes(Arc<Vec<u8>>),
            File(Arc<File>),
        }
        let src = match self.lock().handles.get(&fh) {
            Some(Handle::Snapshot(b)) => Src::Bytes(b.clone()),
            Some(Handle::Staged { file, .. }) | Some(Handle::Local(file)) => {
                Src::File(file.clone())
            }
            None => return Err(FsError::quiet(libc::EBADF)),
        };
        match src {
            Src::Bytes(b) => {
                let start = (offset as usize).min(b.len());
                let end = (start + size as usize).min(b.len());
                Ok(b[start..end].to_vec())
            }
            Src::File(f) => {
                let mut buf = vec![0; size as usize];
                let mut n = 0;
                while n < buf.len() {
                    match f.read_at(&mut buf[n..], offset + n as u64) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(FsError::io(e, "read")),
                    }
                }
                buf.truncate(n);
                Ok(buf)
            }
        }
    }

    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let (file, rel) = {
            let mut inner = self.lock();
            let (file, rel) = match inner.handles.get(&fh) {
                Some(Handle::Staged {
                    file,
                    rel,
                    write: true,
                }) => (file.clone(), rel.clone()),
                Some(_) => return Err(FsError::quiet(libc::EBADF)),
                None => return Err(FsError::quiet(libc::EBADF)),
            };
            inner.staged.entry(rel.clone()).or_default().written = true;
            self.touch_folder(&mut inner, &rel);
            (file, rel)
        };
        file.write_all_at(data, offset)
            .map_err(|e| FsError::io(e, &format!("write {}", rel.display())))?;
        Ok(data.len() as u32)
    }

    pub fn fsync(&self, fh: u64) -> FsResult<()> {
        let file = match self.lock().handles.get(&fh) {
            Some(Handle::Staged { file, .. }) => file.clone(),
            _ => return Ok(()),
        };
        file.sync_data().map_err(|e| FsError::io(e, "fsync"))
    }

    /// Last close after data was written: a visible, non-empty file of a tool's folder is
    /// complete and is submitted.
    pub fn release(&self, fh: u64) {
        let mut inner = self.lock();
        let Some(Handle::Staged {
            rel, write: true, ..
        }) = inner.handles.remove(&fh)
        else {
            return;
        };
        let meta = inner.staged.entry(rel.clone()).or_default();
        meta.writers = meta.writers.saturating_sub(1);
        if meta.writers > 0 {
            return;
        }
        let written = std::mem::take(&mut meta.written);
        inner.staged.remove(&rel);
        self.touch_folder(&mut inner, &rel);
        if written && rel.components().count() == 2 {
            self.submit_file(&mut inner, &rel);
        }
    }

    pub fn forget_handle(&self, fh: u64) {
        self.lock().handles.remove(&fh);
    }

    fn touch_folder(&self, inner: &mut Inner, rel: &Path) {
        if rel.components().count() >= 3 {
            let folder: PathBuf = rel.components().take(2).collect();
            inner.folders.insert(folder, Instant::now());
        }
    }

    // ---- creating things ----

    /// Checks a name for a tool's folder: scratch names always, otherwise what the tool takes.
    fn check_name(tool: &Tool, dir: &Path, name: &str, in_folder: bool) -> FsResult<()> {
        if is_scratch(name) || role_of(tool, name).is_some() {
            return Ok(());
        }
        let where_ = if in_folder {
            dir.display().to_string()
        } else {
            tool.slug.to_string()
        };
        Err(FsError::refuse(
            libc::EINVAL,
            format!(
                "inbox/{where_}: refused {name:?}: {} takes {}",
                tool.slug,
                accepted(tool)
            ),
        ))
    }

    pub fn create(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        truncate: bool,
        owner: (u32, u32),
    ) -> FsResult<(Attr, Opened)> {
        let mut inner = self.lock();
        let Some((dir, tool, in_folder)) = self.staged_dir(&inner, parent) else {
            return Err(self.refuse_write(&inner, parent, name));
        };
        Self::check_name(tool, &dir, name, in_folder)?;
        let rel = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(truncate)
            .open(self.inbox.join(&rel))
            .map_err(|e| FsError::io(e, "create"))?;
        let _ = file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777));
        // The staged file belongs to whoever wrote it: local files its JSON names are read
        // only if that user may read them.
        let _ = std::os::unix::fs::fchown(&file, Some(owner.0), Some(owner.1));
        let ino = Self::ino_of(&mut inner, Node::Staged(rel.clone()));
        inner.moved.remove(&ino);
        inner.staged.entry(rel.clone()).or_default().writers += 1;
        self.touch_folder(&mut inner, &rel);
        let fh = Self::new_handle(
            &mut inner,
            Handle::Staged {
                file: Arc::new(file),
                rel: rel.clone(),
                write: true,
            },
        );
        drop(inner);
        let attr = self.staged_attr(ino, &self.inbox.join(&rel))?;
        Ok((
            attr,
            Opened {
                fh,
                direct_io: false,
                backing: None,
            },
        ))
    }

    /// The refusal for writing where the drive takes nothing.
    fn refuse_write(&self, inner: &Inner, parent: u64, name: &str) -> FsError {
        let in_jobs = parent == JOBS || matches!(inner.nodes.get(&parent), Some(Node::Job(_)));
        match parent {
            ROOT | INBOX => FsError::refuse(
                libc::EPERM,
                format!("cannot create {name:?} here: only inbox/<tool>/ takes files"),
            ),
            _ if in_jobs => FsError::refuse(
                libc::EACCES,
                format!(
                    "cannot create {name:?}: jobs/ is read-only (drop files into inbox/<tool>/)"
                ),
            ),
            // A folder that was just submitted (its inode is gone).
            _ => FsError::quiet(libc::ENOENT),
        }
    }

    pub fn mkdir(&self, parent: u64, name: &str, mode: u32, owner: (u32, u32)) -> FsResult<Attr> {
        let mut inner = self.lock();
        match self.staged_dir(&inner, parent) {
            Some((dir, _, false)) => {
                let rel = dir.join(name);
                std::fs::create_dir(self.inbox.join(&rel)).map_err(|e| FsError::io(e, "mkdir"))?;
                let _ =
                    std::os::unix::fs::chown(self.inbox.join(&rel), Some(owner.0), Some(owner.1));
                let _ = std::fs::set_permissions(
                    self.inbox.join(&rel),
                    std::fs::Permissions::from_mode(mode & 0o777),
                );
                inner.folders.insert(rel.clone(), Instant::now());
                let ino = Self::ino_of(&mut inner, Node::Staged(rel.clone()));
                drop(inner);
                self.staged_attr(ino, &self.inbox.join(rel))
            }
            Some((dir, _, true)) => Err(FsError::refuse(
                libc::EPERM,
                format!(
                    "inbox/{}: folders inside a submission folder are not taken",
                    dir.display()
                ),
            )),
            None if parent == INBOX => Err(FsError::refuse(
                libc::EPERM,
                format!("inbox/{name}: no such tool (README.txt lists them)"),
            )),
            None => Err(FsError::refuse(
                libc::EPERM,
                format!("mkdir {name:?}: only inbox/<tool>/ takes folders"),
            )),
        }
    }

    pub fn setattr(
        &self,
        ino: u64,
        fh: Option<u64>,
        size: Option<u64>,
        mode: Option<u32>,
        mtime: Option<SystemTime>,
    ) -> FsResult<Attr> {
        let path = {
            let inner = self.lock();
            match (inner.nodes.get(&ino), inner.moved.get(&ino)) {
                (_, Some(moved)) => {
                    // A submitted file: `mv`/`cp -p` set times and modes after closing. Harmless.
                    let moved = moved.clone();
                    drop(inner);
                    return self.staged_attr(ino, &moved);
                }
                (Some(Node::Staged(rel)), _) => self.inbox.join(rel),
                _ => {
                    drop(inner);
                    if size.is_some() {
                        return Err(FsError::refuse(libc::EACCES, "job folders are read-only"));
                    }
                    return self.getattr(ino);
                }
            }
        };
        if let Some(size) = size {
            let file = fh.and_then(|fh| match self.lock().handles.get(&fh) {
                Some(Handle::Staged {
                    file, write: true, ..
                }) => Some(file.clone()),
                _ => None,
            });
            let result = match file {
                Some(f) => f.set_len(size),
                None => std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(size)),
            };
            result.map_err(|e| FsError::io(e, "truncate"))?;
        }
        if let Some(mode) = mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(|e| FsError::io(e, "chmod"))?;
        }
        if let Some(mtime) = mtime {
            let f = File::options()
                .write(true)
                .open(&path)
                .or_else(|_| File::open(&path));
            if let Ok(f) = f {
                let _ = f.set_modified(mtime);
            }
        }
        self.staged_attr(ino, &path)
    }

    // ---- removing and renaming ----

    pub fn unlink(&self, parent: u64, name: &str) -> FsResult<()> {
        let mut inner = self.lock();
        if let Some((dir, _, _)) = self.staged_dir(&inner, parent) {
            let rel = dir.join(name);
            std::fs::remove_file(self.inbox.join(&rel)).map_err(|e| FsError::io(e, "unlink"))?;
            if let Some(ino) = inner.inos.remove(&Node::Staged(rel.clone())) {
                inner.nodes.remove(&ino);
            }
            self.touch_folder(&mut inner, &rel);
            return Ok(());
        }
        let Some(Node::Job(id)) = inner.nodes.get(&parent).cloned() else {
            return Err(FsError::refuse(
                libc::EPERM,
                format!("cannot remove {name:?} here"),
            ));
        };
        let job = inner
            .jobs
            .get(&id)
            .cloned()
            .ok_or(FsError::quiet(libc::ENOENT))?;
        drop(inner);
        let part = self
            .job_parts(&job)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p)
            .ok_or(FsError::quiet(libc::ENOENT))?;
        // Removing a file of a job drops the local copy; status and the JSON files stay (they
        // are views of the job, which only rmdir of its folder removes).
        match part {
            Part::Output(out) => {
                let _ = std::fs::remove_file(self.output_dir(id).join(&out));
                self.update(id, |j| {
                    if let Some(o) = j.outputs.iter_mut().find(|o| o.name == out) {
                        o.removed = true;
                    }
                });
            }
            Part::Input(i) => {
                let _ = std::fs::remove_file(&job.inputs[i].path);
            }
            _ => {}
        }
        Ok(())
    }

    pub fn rmdir(self: &Arc<Self>, parent: u64, name: &str) -> Rmdir {
        let inner = self.lock();
        if parent == JOBS {
            let Some(id) = Self::job_by_name(&inner, name) else {
                return Rmdir::Done(Err(FsError::quiet(libc::ENOENT)));
            };
            drop(inner);
            let Some(hooks) = self.hooks.get() else {
                return Rmdir::Done(Err(FsError::refuse(libc::EIO, "the engine is not running")));
            };
            let delete = (hooks.delete)(id);
            let name = name.to_string();
            return Rmdir::Pending(Box::pin(async move {
                delete.await.map_err(|e| {
                    let errno = match e {
                        ApiError::Local(_) => libc::EBUSY,
                        _ => libc::EIO,
                    };
                    FsError::refuse(errno, format!("rmdir jobs/{name}: the job stays: {e}"))
                })
            }));
        }
        if let Some((dir, _, false)) = self.staged_dir(&inner, parent) {
            let rel = dir.join(name);
            drop(inner);
            return Rmdir::Done(
                std::fs::remove_dir(self.inbox.join(&rel))
                    .map_err(|e| FsError::io(e, "rmdir"))
                    .map(|()| {
                        let mut inner = self.lock();
                        inner.folders.remove(&rel);
                        if let Some(ino) = inner.inos.remove(&Node::Staged(rel)) {
                            inner.nodes.remove(&ino);
                        }
                    }),
            );
        }
        Rmdir::Done(Err(FsError::refuse(
            libc::EPERM,
            format!("cannot remove {name:?} here"),
        )))
    }

    /// Renames within `jobs/` (a local rename) or within `inbox/` (where a hidden temp name
    /// becoming visible completes the file). `noreplace`: fail if the target exists.
    pub fn rename(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        noreplace: bool,
    ) -> FsResult<()> {
        let mut inner = self.lock();
        if parent == JOBS && new_parent == JOBS {
            let id = Self::job_by_name(&inner, name).ok_or(FsError::quiet(libc::ENOENT))?;
            if name == new_name {
                return Ok(());
            }
            if Self::job_by_name(&inner, new_name).is_some() {
                return Err(FsError::refuse(
                    libc::EEXIST,
                    format!("jobs/{new_name} exists"),
                ));
            }
            if new_name.is_empty() || new_name.starts_with('.') {
                return Err(FsError::refuse(
                    libc::EINVAL,
                    format!("bad job name {new_name:?}"),
                ));
            }
            // Checked and renamed under one lock, so no new job can take the name meanwhile.
            let job = inner.jobs.get_mut(&id).expect("found above");
            job.name = new_name.to_string();
            if let Err(e) = self.store().save(job) {
                job.name = name.to_string();
                return Err(FsError::refuse(
                    libc::EIO,
                    format!("rename jobs/{name}: {e}"),
                ));
            }
            drop(inner);
            self.invalidate(Inval::Entry {
                parent: JOBS,
                name: name.to_string(),
            });
            log::info!("job {name}: renamed to {new_name}");
            return Ok(());
        }
        let from = self.staged_dir(&inner, parent);
        let to = self.staged_dir(&inner, new_parent);
        let (Some((from_dir, _, _)), Some((to_dir, tool, in_folder))) = (from, to) else {
            return Err(FsError::refuse(
                libc::EXDEV,
                format!("rename {name:?} -> {new_name:?}: only within inbox/ or within jobs/"),
            ));
        };
        let (src, dst) = (from_dir.join(name), to_dir.join(new_name));
        if noreplace && self.inbox.join(&dst).symlink_metadata().is_ok() {
            return Err(FsError::quiet(libc::EEXIST));
        }
        let is_dir = self.inbox.join(&src).is_dir();
        if !is_dir {
            Self::check_name(tool, &to_dir, new_name, in_folder)?;
        }
        std::fs::rename(self.inbox.join(&src), self.inbox.join(&dst))
            .map_err(|e| FsError::io(e, "rename"))?;
        // The inode follows the file (and, for a folder, its children follow too).
        let moves: Vec<(Node, u64)> = inner
            .inos
            .iter()
            .filter_map(|(node, ino)| match node {
                Node::Staged(p) if p.starts_with(&src) => Some((node.clone(), *ino)),
                _ => None,
            })
            .collect();
        for (node, ino) in moves {
            let Node::Staged(p) = &node else { continue };
            let new_path = rebase(p, &src, &dst);
            inner.inos.remove(&node);
            if let Some(old) = inner.inos.insert(Node::Staged(new_path.clone()), ino) {
                inner.nodes.remove(&old);
            }
            inner.nodes.insert(ino, Node::Staged(new_path));
        }
        // Open files follow too: their writers and handles now live at the new name, so the
        // last close submits it there (GIO and editors rename before closing).
        let open: Vec<PathBuf> = inner
            .staged
            .keys()
            .filter(|p| p.starts_with(&src))
            .cloned()
            .collect();
        for p in open {
            let meta = inner.staged.remove(&p).expect("listed");
            inner.staged.insert(rebase(&p, &src, &dst), meta);
        }
        for h in inner.handles.values_mut() {
            if let Handle::Staged { rel, .. } = h
                && rel.starts_with(&src)
            {
                *rel = rebase(rel, &src, &dst);
            }
        }
        if is_dir {
            inner.folders.remove(&src);
            inner.folders.insert(dst.clone(), Instant::now());
        }
        self.touch_folder(&mut inner, &src);
        self.touch_folder(&mut inner, &dst);
        // A hidden temp name renamed to a visible one is complete (rsync, editors, browsers).
        let open = inner.staged.get(&dst).is_some_and(|m| m.writers > 0);
        if !is_dir && !open && dst.components().count() == 2 {
            self.submit_file(&mut inner, &dst);
        }
        Ok(())
    }

    // ---- submission ----

    /// Records a project found on Magic Hour as a job named after its id, and starts polling it.
    pub fn adopt_project(&self, tool: &'static Tool, project_id: &str) -> Option<JobId> {
        let mut inner = self.lock();
        if inner
            .jobs
            .values()
            .any(|j| j.project_id.as_deref() == Some(project_id))
        {
            return None;
        }
        let name = job_name(project_id, |n| inner.jobs.values().any(|j| j.name == n));
        let mut job = Job::new(name, tool, "adopted");
        job.stage = Stage::Created;
        job.status = JobStatus::Queued;
        job.project_id = Some(project_id.to_string());
        if let Err(e) = self.store().insert(&mut job) {
            log::error!("adopting {project_id}: {e}");
            return None;
        }
        let id = job.id;
        log::info!(
            "jobs/{}: adopted {} project {project_id}",
            job.name,
            tool.slug
        );
        inner.jobs.insert(id, job);
        drop(inner);
        self.kick(id);
        Some(id)
    }

    fn new_job(
        &self,
        inner: &mut Inner,
        tool: &'static Tool,
        name: &str,
        source: &str,
        path: &Path,
    ) -> Result<Job, String> {
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(path).ok().map(|m| (m.uid(), m.gid()));
        let job_name = job_name(name, |n| inner.jobs.values().any(|j| j.name == n));
        let mut job = Job::new(job_name, tool, source);
        job.owner = owner;
        let store = self.store();
        store.insert(&mut job).map_err(|e| e.to_string())?;
        Ok(job)
    }

    /// Moves a complete inbox file into a new job and starts it. Empty files and scratch names
    /// stay in the inbox.
    fn submit_file(&self, inner: &mut Inner, rel: &Path) {
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let path = self.inbox.join(rel);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if is_scratch(&name) || size == 0 {
            return;
        }
        let Some(tool) = tool_of_rel(rel) else {
            return;
        };
        let source = match role_of(tool, &name) {
            Some(FileRole::Text) => "text",
            Some(FileRole::Json) => "json",
            Some(FileRole::Media(_)) => "file",
            None => return,
        };
        let mut job = match self.new_job(inner, tool, &name, source, &path) {
            Ok(j) => j,
            Err(e) => {
                log::error!("inbox/{}: cannot record the job: {e}", rel.display());
                return;
            }
        };
        let input_dir = self.input_dir(job.id);
        let kept = input_dir.join(&name);
        if let Err(e) =
            std::fs::create_dir_all(&input_dir).and_then(|()| std::fs::rename(&path, &kept))
        {
            log::error!("inbox/{}: cannot move into the job: {e}", rel.display());
            let _ = self
                .store
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .delete(job.id);
            return;
        }
        job.inputs.push(InputFile {
            name: name.clone(),
            path: kept.clone(),
            remote: None,
        });
        self.take_in(inner, job, rel, Some(kept));
    }

    /// Records a new job in memory, forgets its inbox entry, and starts it.
    fn take_in(&self, inner: &mut Inner, job: Job, rel: &Path, kept: Option<PathBuf>) {
        if let Err(e) = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .save(&job)
        {
            log::error!("job {}: {e}", job.name);
        }
        log::info!(
            "inbox/{}: submitted as jobs/{} ({})",
            rel.display(),
            job.name,
            job.tool
        );
        if let Some(ino) = inner.inos.remove(&Node::Staged(rel.to_path_buf())) {
            inner.nodes.remove(&ino);
            if let Some(kept) = kept {
                inner.moved.insert(ino, kept);
            }
        }
        let id = job.id;
        inner.jobs.insert(id, job);
        let (parent, name) = (
            rel.parent().unwrap_or(Path::new("")),
            rel.file_name().unwrap_or_default(),
        );
        let parent_ino = match parent.components().count() {
            1 => tool_index(&parent.to_string_lossy()).map(tool_ino),
            _ => inner.inos.get(&Node::Staged(parent.to_path_buf())).copied(),
        };
        if let Some(parent_ino) = parent_ino {
            self.invalidate(Inval::Entry {
                parent: parent_ino,
                name: name.to_string_lossy().to_string(),
            });
        }
        self.kick(id);
    }

    /// Submits inbox folders that are complete, closed and quiet for the settle interval.
    /// Called about twice a second by a timer task.
    pub fn tick(&self) {
        let mut inner = self.lock();
        let due: Vec<PathBuf> = inner
            .folders
            .iter()
            .filter(|(_, changed)| changed.elapsed() >= self.cfg.settle)
            .map(|(rel, _)| rel.clone())
            .collect();
        for rel in due {
            if inner
                .staged
                .iter()
                .any(|(p, m)| p.starts_with(&rel) && m.writers > 0)
            {
                continue;
            }
            let folder_name = rel
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let path = self.inbox.join(&rel);
            if is_scratch(&folder_name) || !path.is_dir() {
                if !path.is_dir() {
                    inner.folders.remove(&rel);
                }
                continue;
            }
            let Some(tool) = tool_of_rel(&rel) else {
                continue;
            };
            let names: Vec<String> = std::fs::read_dir(&path)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| !is_scratch(n))
                .filter(|n| std::fs::metadata(path.join(n)).is_ok_and(|m| m.len() > 0))
                .collect();
            if names.is_empty() || !folder_ready(tool, &names) {
                continue;
            }
            inner.folders.remove(&rel);
            let mut job = match self.new_job(&mut inner, tool, &folder_name, "folder", &path) {
                Ok(j) => j,
                Err(e) => {
                    log::error!("inbox/{}: cannot record the job: {e}", rel.display());
                    continue;
                }
            };
            let input_dir = self.input_dir(job.id);
            if let Err(e) = std::fs::create_dir_all(self.job_dir(job.id))
                .and_then(|()| std::fs::rename(&path, &input_dir))
            {
                log::error!("inbox/{}: cannot move into the job: {e}", rel.display());
                let _ = self
                    .store
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .delete(job.id);
                continue;
            }
            let mut sorted = names;
            sorted.sort();
            job.inputs = sorted
                .into_iter()
                .map(|n| InputFile {
                    name: format!("{folder_name}/{n}"),
                    path: input_dir.join(&n),
                    remote: None,
                })
                .collect();
            // Forget the folder's children too.
            let children: Vec<Node> = inner
                .inos
                .keys()
                .filter(|n| matches!(n, Node::Staged(p) if p.starts_with(&rel) && p != &rel))
                .cloned()
                .collect();
            for node in children {
                if let Some(ino) = inner.inos.remove(&node) {
                    inner.nodes.remove(&ino);
                }
            }
            self.take_in(&mut inner, job, &rel, None);
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
            .filter(|p| p.is_file())
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
