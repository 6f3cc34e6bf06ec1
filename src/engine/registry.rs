//! The one registry of jobs: what exists (in memory, indexed by id, name and project id) and
//! what is durable (the SQLite store), with every step the engine records.
//!
//! Two locks, always taken in this order: `store` (held across a durable write, so writes land
//! in the order of the changes) then `jobs` (held only to read or change memory). A reader
//! (`stat`, `readdir`, `read` in the file system) takes `jobs` alone, so it never waits for a
//! commit. A change is in memory a moment before it is on disk; every step that leads to a
//! network call returns only once it is on disk.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::api::catalog::{TOOLS, Tool};

use super::activity::Activity;
use super::job::{InputFile, Job, JobId, JobStatus, JsonText, Source, Stage};
use super::layout::Layout;
use super::names::{is_scratch, job_name};
use super::store::Store;

/// What changed, for whoever shows the jobs (the file system turns it into invalidations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added { id: JobId, name: String },
    Updated(JobId),
    Renamed { id: JobId, from: String },
    Removed { id: JobId, name: String },
}

#[derive(Default)]
struct Jobs {
    by_id: BTreeMap<JobId, Job>,
    by_name: HashMap<String, JobId>,
    by_project: HashMap<String, JobId>,
    /// Jobs being deleted: they must not start their create.
    deleting: HashSet<JobId>,
}

impl Jobs {
    fn taken(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    fn remove(&mut self, id: JobId) -> Option<Job> {
        let job = self.by_id.remove(&id)?;
        self.by_name.remove(&job.name);
        if let Some(pid) = &job.project_id {
            self.by_project.remove(pid);
        }
        Some(job)
    }

    fn insert(&mut self, mut job: Job) {
        if !job.needs_plan() {
            job.plan = None;
        }
        self.by_name.insert(job.name.clone(), job.id);
        if let Some(pid) = &job.project_id {
            self.by_project.insert(pid.clone(), job.id);
        }
        self.by_id.insert(job.id, job);
    }
}

/// Why a job cannot be renamed.
#[derive(Debug, thiserror::Error)]
pub enum RenameError {
    #[error("no such job")]
    NotFound,
    #[error("jobs/{0} exists")]
    Exists(String),
    #[error("{0}")]
    Store(String),
}

type Listener = Box<dyn Fn(&Change) + Send + Sync>;

pub struct Registry {
    layout: Layout,
    store: Mutex<Store>,
    jobs: RwLock<Jobs>,
    listener: OnceLock<Listener>,
    /// `activity.log`: what the drive did and refused, for the user.
    activity: Arc<Activity>,
    /// Set when unmounting begins: no new create call starts.
    stopping: AtomicBool,
    /// The next job's id: ids are never reused, so neither are job folders or inodes.
    next_id: AtomicI64,
    /// Held for the life of the registry: one mount per state directory, or jobs would run
    /// twice.
    _lock: File,
}

impl Registry {
    /// Opens (or creates) the state directory, takes its lock, loads every job and mends what
    /// a crash may have left half-done.
    pub fn open(state_dir: &Path) -> Result<Arc<Registry>, String> {
        let layout = Layout::new(state_dir);
        // Private whatever the umask: the state directory holds every user's inputs and
        // outputs (only mhfs itself reads it).
        let fresh = !state_dir.exists();
        for t in TOOLS {
            private_dir(&layout.inbox().join(t.slug))
                .map_err(|e| format!("cannot create {}: {e}", layout.inbox().display()))?;
        }
        private_dir(&layout.jobs())
            .map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
        for dir in [layout.inbox(), layout.jobs()] {
            let _ = set_mode(&dir, 0o700);
        }
        if fresh {
            let _ = set_mode(state_dir, 0o700);
        }
        let lock = lock_state_dir(&layout)?;
        let store = Store::open(&layout.db()).map_err(|e| e.to_string())?;
        // SQLite makes its -wal and -shm files with the database's mode.
        let _ = set_mode(&layout.db(), 0o600);
        let (mut loaded, ids) = store.load().map_err(|e| e.to_string())?;
        let next_id = store.last_id().map_err(|e| e.to_string())? + 1;
        recover(&layout, &store, &mut loaded, &ids);
        let mut jobs = Jobs::default();
        for job in loaded {
            jobs.insert(job);
        }
        Ok(Arc::new(Registry {
            activity: Arc::new(Activity::open(&layout.activity())),
            layout,
            store: Mutex::new(store),
            jobs: RwLock::new(jobs),
            listener: OnceLock::new(),
            stopping: AtomicBool::new(false),
            next_id: AtomicI64::new(next_id),
            _lock: lock,
        }))
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The activity log (`activity.log` at the mount's root).
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// Sets who hears of changes (once).
    pub fn on_change(&self, f: impl Fn(&Change) + Send + Sync + 'static) {
        let _ = self.listener.set(Box::new(f));
    }

    fn changed(&self, change: Change) {
        if let Some(f) = self.listener.get() {
            f(&change);
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> RwLockReadGuard<'_, Jobs> {
        self.jobs.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Jobs> {
        self.jobs.write().unwrap_or_else(|p| p.into_inner())
    }

    // ---- reading ----

    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn jobs(&self) -> Vec<Job> {
        self.read().by_id.values().cloned().collect()
    }

    pub fn job(&self, id: JobId) -> Option<Job> {
        self.read().by_id.get(&id).cloned()
    }

    /// Reads a job in place, without copying it.
    pub fn with_job<R>(&self, id: JobId, f: impl FnOnce(&Job) -> R) -> Option<R> {
        self.read().by_id.get(&id).map(f)
    }

    pub fn by_name(&self, name: &str) -> Option<JobId> {
        self.read().by_name.get(name).copied()
    }

    pub fn by_project(&self, project_id: &str) -> Option<JobId> {
        self.read().by_project.get(project_id).copied()
    }

    /// Every job's id and name, in id order.
    pub fn names(&self) -> Vec<(JobId, String)> {
        self.read()
            .by_id
            .values()
            .map(|j| (j.id, j.name.clone()))
            .collect()
    }

    /// What `f` picks out of every job, in id order, read in place.
    pub fn select<R>(&self, mut f: impl FnMut(&Job) -> Option<R>) -> Vec<R> {
        self.read().by_id.values().filter_map(&mut f).collect()
    }

    // ---- changing ----

    /// Changes a job, saves it, and tells the listener.
    pub fn update(&self, id: JobId, f: impl FnOnce(&mut Job)) -> Option<Job> {
        let store = self.store();
        let job = {
            let mut jobs = self.write();
            let job = jobs.by_id.get_mut(&id)?;
            let project = job.project_id.clone();
            f(job);
            if !job.needs_plan() {
                job.plan = None;
            }
            job.updated = SystemTime::now();
            let job = job.clone();
            if job.project_id != project
                && let Some(pid) = &job.project_id
            {
                jobs.by_project.insert(pid.clone(), id);
            }
            job
        };
        if let Err(e) = store.save(&job) {
            log::error!("job {}: {e}", job.name);
        }
        drop(store);
        self.changed(Change::Updated(id));
        Some(job)
    }

    /// A new job under a unique name made from `hint`, shown at once but not durable yet: the
    /// caller `record`s it, moves its inputs in, then `publish`es it (or `discard`s it). Taking
    /// no durable write, it can be made in the same instant the inbox stops showing the file.
    pub fn reserve(
        &self,
        hint: &str,
        tool: &'static Tool,
        source: Source,
        owner: Option<(u32, u32)>,
    ) -> Job {
        let job = {
            let mut jobs = self.write();
            let name = job_name(hint, |n| jobs.taken(n));
            let mut job = Job::new(name, tool, source);
            job.id = self.next_id.fetch_add(1, Ordering::SeqCst);
            job.owner = owner;
            jobs.insert(job.clone());
            job
        };
        self.changed(Change::Added {
            id: job.id,
            name: job.name.clone(),
        });
        job
    }

    /// Makes a reserved job durable (before anything is moved into it).
    pub fn record(&self, job: &Job) -> Result<(), String> {
        let store = self.store();
        // As it is now in memory (it may have been renamed since it was reserved).
        let now = self.read().by_id.get(&job.id).cloned();
        store
            .insert(now.as_ref().unwrap_or(job))
            .map_err(|e| e.to_string())
    }

    /// Saves a recorded job with its inputs. Only the inputs come from `job`: anything else
    /// changed meanwhile (a rename, a move to the trash) stays.
    pub fn publish(&self, job: Job) {
        let store = self.store();
        let id = job.id;
        let saved = {
            let mut jobs = self.write();
            jobs.by_id.get_mut(&id).map(|j| {
                j.inputs = job.inputs;
                // What the submitter set besides: the preset, its place in a pipeline, and
                // the inputs passed by reference.
                j.preset = job.preset;
                j.params = job.params;
                j.chain = job.chain;
                j.reuse = job.reuse;
                j.updated = SystemTime::now();
                j.clone()
            })
        };
        if let Some(saved) = &saved
            && let Err(e) = store.save(saved)
        {
            log::error!("job {}: {e}", saved.name);
        }
        drop(store);
        self.changed(Change::Updated(id));
    }

    /// Forgets a reserved job whose inputs could not be moved in.
    pub fn discard(&self, id: JobId) {
        let store = self.store();
        if let Err(e) = store.delete(id) {
            log::error!("job {id}: {e}");
        }
        let removed = self.write().remove(id);
        drop(store);
        if let Some(job) = removed {
            self.changed(Change::Removed { id, name: job.name });
        }
    }

    /// Records a project found on Magic Hour as a job named after its id. `None` if it is
    /// already a job (or cannot be recorded).
    pub fn adopt(&self, tool: &'static Tool, project_id: &str) -> Option<JobId> {
        let store = self.store();
        let name = {
            let jobs = self.read();
            if jobs.by_project.contains_key(project_id) {
                return None;
            }
            job_name(project_id, |n| jobs.taken(n))
        };
        let mut job = Job::new(name, tool, Source::Adopted);
        job.id = self.next_id.fetch_add(1, Ordering::SeqCst);
        job.stage = Stage::Created;
        job.status = JobStatus::Queued;
        job.project_id = Some(project_id.to_string());
        if let Err(e) = store.insert(&job) {
            log::error!("adopting {project_id}: {e}");
            return None;
        }
        let (id, name) = (job.id, job.name.clone());
        self.write().insert(job);
        drop(store);
        log::info!("jobs/{name}: adopted {} project {project_id}", tool.slug);
        self.changed(Change::Added { id, name });
        Some(id)
    }

    /// Renames a job (`mv jobs/a jobs/b`), checked and saved under the store's lock so no
    /// other job can take the name meanwhile.
    pub fn rename(&self, id: JobId, new_name: &str) -> Result<(), RenameError> {
        let store = self.store();
        let (job, from) = {
            let mut jobs = self.write();
            if jobs.taken(new_name) {
                return Err(RenameError::Exists(new_name.to_string()));
            }
            let job = jobs.by_id.get_mut(&id).ok_or(RenameError::NotFound)?;
            let from = std::mem::replace(&mut job.name, new_name.to_string());
            let job = job.clone();
            jobs.by_name.remove(&from);
            jobs.by_name.insert(new_name.to_string(), id);
            (job, from)
        };
        if let Err(e) = store.save(&job) {
            let mut jobs = self.write();
            jobs.by_name.remove(new_name);
            jobs.by_name.insert(from.clone(), id);
            if let Some(j) = jobs.by_id.get_mut(&id) {
                j.name = from;
            }
            return Err(RenameError::Store(e.to_string()));
        }
        drop(store);
        log::info!("job {from}: renamed to {new_name}");
        self.changed(Change::Renamed { id, from });
        Ok(())
    }

    /// The step before a create call: records the body and `Creating`, durably, unless the job
    /// is being deleted or the drive is stopping. `false`: do not send the create.
    pub fn begin_create(&self, id: JobId, body: serde_json::Value) -> bool {
        let store = self.store();
        let (job, before) = {
            let mut jobs = self.write();
            if jobs.deleting.contains(&id) || self.stopping.load(Ordering::SeqCst) {
                return false;
            }
            let Some(job) = jobs.by_id.get_mut(&id) else {
                return false;
            };
            let before = job.clone();
            job.request = Some(JsonText::new(&body));
            job.stage = Stage::Creating;
            job.status = JobStatus::Submitting;
            job.updated = SystemTime::now();
            (job.clone(), before)
        };
        if let Err(e) = store.save(&job) {
            log::error!(
                "job {}: cannot record the create step, not sending it: {e}",
                job.name
            );
            if let Some(j) = self.write().by_id.get_mut(&id) {
                *j = before;
            }
            return false;
        }
        drop(store);
        self.changed(Change::Updated(id));
        true
    }

    /// Claims a fingerprint for a job, atomically (under the store's lock): `Err(other)` when
    /// another job of the same tool with the same fingerprint exists and has not failed
    /// (status neither `error` nor `canceled`, not being deleted): this job is a duplicate and
    /// claims nothing. `Ok` records the fingerprint on the job, durably. A job gone meanwhile
    /// claims nothing and is `Ok` (its next step finds it gone).
    pub fn claim_fingerprint(&self, id: JobId, fingerprint: &str) -> Result<(), JobId> {
        let store = self.store();
        let job = {
            let mut jobs = self.write();
            let Some(tool) = jobs.by_id.get(&id).map(|j| j.tool.clone()) else {
                return Ok(());
            };
            if let Some(other) = jobs.by_id.values().find(|j| {
                j.id != id
                    && j.tool == tool
                    && j.fingerprint.as_deref() == Some(fingerprint)
                    && !matches!(j.status, JobStatus::Error | JobStatus::Canceled)
                    && !jobs.deleting.contains(&j.id)
                    // In the trash, or emptied from it: on its way out, so no reason to refuse
                    // the same intent made again.
                    && j.trashed.is_none()
                    && !j.delete_when_done
            }) {
                return Err(other.id);
            }
            let Some(job) = jobs.by_id.get_mut(&id) else {
                return Ok(());
            };
            job.fingerprint = Some(fingerprint.to_string());
            job.updated = SystemTime::now();
            job.clone()
        };
        if let Err(e) = store.save(&job) {
            log::error!("job {}: {e}", job.name);
        }
        drop(store);
        self.changed(Change::Updated(id));
        Ok(())
    }

    /// Unmounting begins: no create starts from now on, and the ones in flight get `limit` to
    /// finish, so a clean stop never leaves a create's outcome unknown.
    pub fn stop_creates(&self, limit: Duration) {
        {
            // Under the store's lock, so no begin_create is between its check and its save.
            let _store = self.store();
            self.stopping.store(true, Ordering::SeqCst);
        }
        let deadline = Instant::now() + limit;
        while self
            .read()
            .by_id
            .values()
            .any(|j| j.stage == Stage::Creating)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Marks a job as being deleted, so it will not start a create. Refused (`None`) while a
    /// create is in flight: its outcome decides whether there is a project to delete.
    pub fn begin_delete(&self, id: JobId) -> Option<Stage> {
        let mut jobs = self.write();
        let stage = jobs.by_id.get(&id)?.stage;
        if stage == Stage::Creating {
            return None;
        }
        jobs.deleting.insert(id);
        Some(stage)
    }

    pub fn end_delete(&self, id: JobId) {
        self.write().deleting.remove(&id);
    }

    /// Forgets a deleted job and its local data.
    pub fn remove(&self, id: JobId) {
        let store = self.store();
        if let Err(e) = store.delete(id) {
            log::error!("job {id}: {e}");
        }
        let removed = self.write().remove(id);
        drop(store);
        if let Some(job) = removed {
            let _ = std::fs::remove_dir_all(self.layout.job_dir(id));
            log::info!("job {}: deleted", job.name);
            self.changed(Change::Removed { id, name: job.name });
        }
    }
}

/// Makes a directory (and its missing parents) readable by mhfs alone: mode 0700.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Sets a file's or directory's permission bits.
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// The warning for a state directory others may read or enter (made by hand, or by an older
/// mhfs): `None` when it is private or does not exist yet.
pub fn loose_state_dir(state_dir: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(state_dir).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "the state directory {} has mode {mode:o}: other users may reach staged inputs and \
             outputs; `chmod 700 {}` makes it private (mhfs makes new ones 0700)",
            state_dir.display(),
            state_dir.display()
        )
    })
}

/// Takes the state directory's lock, or says that another mount holds it.
fn lock_state_dir(layout: &Layout) -> Result<File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = layout.lock();
    let file = File::options()
        .mode(0o600)
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "the state directory {} is in use by another mhfs mount (one mount per state \
             directory; give this one --state-dir)",
            layout.root().display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// Mends what a crash or an older mhfs can leave: a job recorded before its input was moved
/// in (its inputs are found again in its folder, or it fails saying where the file is), a job
/// of a tool this mhfs does not know (failed, saying so), and job folders whose job was
/// deleted. `ids` are every row of the store, readable or not: a folder is removed only when
/// its job is truly gone.
fn recover(layout: &Layout, store: &Store, jobs: &mut [Job], ids: &HashSet<JobId>) {
    for job in jobs.iter_mut() {
        let mut changed = false;
        if job.stage == Stage::Staged && job.inputs.is_empty() {
            find_inputs(layout, job);
            changed = true;
        }
        if job.tool().is_none() && job.is_active() {
            job.fail(
                Stage::Failed,
                "unknown_tool",
                &format!(
                    "this mhfs does not know the tool {:?} (made by another version); the job \
                     is kept but not followed",
                    job.tool
                ),
            );
            changed = true;
        }
        if changed && let Err(e) = store.save(job) {
            log::error!("job {}: {e}", job.name);
        }
    }
    for entry in std::fs::read_dir(layout.jobs())
        .into_iter()
        .flatten()
        .flatten()
    {
        let known = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<JobId>().ok())
            .is_some_and(|id| ids.contains(&id));
        if !known {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A job recorded but stopped before its inputs were saved with it: they are whatever its
/// input folder holds.
fn find_inputs(layout: &Layout, job: &mut Job) {
    let dir = layout.input_dir(job.id);
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
        return;
    }
    let folder = job.source == Source::Folder;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::catalog::tool;

    #[test]
    fn names_are_unique_across_reserved_and_recorded_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        let t = tool("ai-image-upscaler").unwrap();
        let a = r.reserve("holiday.jpg", t, Source::File, None);
        // Shown at once, before it is durable.
        assert_eq!(r.by_name("holiday"), Some(a.id));
        let b = r.reserve("holiday.png", t, Source::File, None);
        assert_eq!((a.name.as_str(), b.name.as_str()), ("holiday", "holiday-2"));
        r.record(&a).unwrap();
        r.publish(a);
        r.discard(b.id);
        assert_eq!(r.by_name("holiday-2"), None);
        let c = r.reserve("holiday.png", t, Source::File, None);
        assert_eq!(c.name, "holiday-2");
        assert!(c.id > b.id, "ids are never reused");
        r.discard(c.id);
        drop(r);
        // Only recorded jobs come back.
        let r = Registry::open(dir.path()).unwrap();
        assert_eq!(r.names().len(), 1);
        let d = r.reserve("x.png", t, Source::File, None);
        assert!(d.id > c.id || d.id > 1);
    }

    #[test]
    fn indexes_follow_renames_adoption_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        let t = tool("ai-image-generator").unwrap();
        let job = r.reserve("cat.txt", t, Source::Text, None);
        let id = job.id;
        r.record(&job).unwrap();
        r.publish(job);
        r.rename(id, "kitten").unwrap();
        assert_eq!(r.by_name("kitten"), Some(id));
        assert_eq!(r.by_name("cat"), None);
        assert!(matches!(
            r.rename(id, "kitten"),
            Err(RenameError::Exists(_))
        ));
        r.update(id, |j| j.project_id = Some("cproj1".into()));
        assert_eq!(r.by_project("cproj1"), Some(id));
        assert_eq!(r.adopt(t, "cproj1"), None, "already a job");
        let adopted = r.adopt(t, "cproj2").unwrap();
        assert_eq!(r.job(adopted).unwrap().name, "cproj2");
        r.remove(id);
        assert_eq!(r.by_project("cproj1"), None);
        assert_eq!(r.by_name("kitten"), None);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_second_open_of_the_same_state_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _r = Registry::open(dir.path()).unwrap();
        let err = Registry::open(dir.path()).err().unwrap();
        assert!(err.contains("in use by another mhfs mount"), "{err}");
    }

    #[test]
    fn a_job_of_an_unknown_tool_fails_when_loaded_and_nothing_panics() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let r = Registry::open(dir.path()).unwrap();
            let job = r.reserve(
                "x.jpg",
                tool("photo-colorizer").unwrap(),
                Source::File,
                None,
            );
            let id = job.id;
            r.record(&job).unwrap();
            r.publish(job);
            r.update(id, |j| {
                j.tool = "retired-tool".into();
                j.stage = Stage::Created;
                j.project_id = Some("cgone".into());
            });
            id
        };
        // A row that is not a job at all is skipped, and its folder is kept.
        {
            let conn = rusqlite::Connection::open(dir.path().join("jobs.db")).unwrap();
            conn.execute(
                "INSERT INTO jobs (name, data) VALUES ('garbled', 'not json')",
                [],
            )
            .unwrap();
            let garbled: i64 = conn.last_insert_rowid();
            std::fs::create_dir_all(dir.path().join("jobs").join(garbled.to_string())).unwrap();
        }
        let r = Registry::open(dir.path()).unwrap();
        let job = r.job(id).unwrap();
        assert_eq!(job.status, JobStatus::Error);
        assert!(job.error.as_ref().unwrap().starts_with("unknown_tool:"));
        assert!(!job.is_active());
        assert_eq!(r.len(), 1);
        assert!(dir.path().join(format!("jobs/{}", id + 1)).exists());
    }

    #[test]
    fn a_job_recorded_before_its_input_was_saved_finds_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let t = tool("photo-colorizer").unwrap();
        let (found, lost) = {
            let r = Registry::open(dir.path()).unwrap();
            // Recorded, input moved in, then a crash before the inputs were saved.
            let found = r.reserve("old.png", t, Source::File, None);
            r.record(&found).unwrap();
            let input = r.layout().input_dir(found.id);
            std::fs::create_dir_all(&input).unwrap();
            std::fs::write(input.join("old.png"), b"png").unwrap();
            // Recorded, then a crash before the file was moved in.
            let lost = r.reserve("new.png", t, Source::File, None);
            r.record(&lost).unwrap();
            (found.id, lost.id)
        };
        let r = Registry::open(dir.path()).unwrap();
        let found = r.job(found).unwrap();
        assert_eq!(found.stage, Stage::Staged);
        assert_eq!(found.inputs.len(), 1);
        assert_eq!(found.inputs[0].name, "old.png");
        let lost = r.job(lost).unwrap();
        assert_eq!(lost.status, JobStatus::Error);
        assert!(lost.error.unwrap().starts_with("input_lost:"));
    }

    #[test]
    fn a_fingerprint_is_claimed_once_per_live_job() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        let t = tool("ai-image-generator").unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let job = r.reserve("cat.txt", t, Source::Text, None);
            r.record(&job).unwrap();
            ids.push(job.id);
            r.publish(job);
        }
        assert_eq!(r.claim_fingerprint(ids[0], "f"), Ok(()));
        assert_eq!(r.claim_fingerprint(ids[1], "f"), Err(ids[0]));
        assert_eq!(r.job(ids[1]).unwrap().fingerprint, None);
        // Another tool, or another fingerprint, is another intent.
        let other = r.reserve(
            "cat.txt",
            tool("ai-gif-generator").unwrap(),
            Source::Text,
            None,
        );
        assert_eq!(r.claim_fingerprint(other.id, "f"), Ok(()));
        assert_eq!(r.claim_fingerprint(ids[2], "g"), Ok(()));
        // A failed job does not hold its fingerprint.
        r.update(ids[0], |j| j.fail(Stage::Failed, "x", "y"));
        assert_eq!(r.claim_fingerprint(ids[1], "f"), Ok(()));
        drop(r);
        let r = Registry::open(dir.path()).unwrap();
        assert_eq!(r.job(ids[1]).unwrap().fingerprint.as_deref(), Some("f"));
    }

    #[test]
    fn changes_reach_the_listener() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        r.on_change(move |c| s.lock().unwrap().push(c.clone()));
        let job = r.reserve(
            "a.png",
            tool("photo-colorizer").unwrap(),
            Source::File,
            None,
        );
        let id = job.id;
        r.record(&job).unwrap();
        r.publish(job);
        r.update(id, |j| j.status = JobStatus::Queued);
        r.rename(id, "b").unwrap();
        r.remove(id);
        assert_eq!(
            *seen.lock().unwrap(),
            [
                Change::Added {
                    id,
                    name: "a".into()
                },
                Change::Updated(id),
                Change::Updated(id),
                Change::Renamed {
                    id,
                    from: "a".into()
                },
                Change::Removed {
                    id,
                    name: "b".into()
                },
            ]
        );
    }
}
