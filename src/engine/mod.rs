//! The job engine: tokio tasks that upload, create, poll and download, never on a FUSE
//! handler's path. Each job has at most one task; every step is persisted before the network
//! call it leads to, so a restart resumes where it stopped and never repeats a create.

pub mod job;
pub mod layout;
pub(crate) mod names;
pub mod registry;
pub(crate) mod store;
pub(crate) mod submit;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::api::catalog::{Overrides, ProjectKind};
use crate::api::retry::{Backoff, retry};
use crate::api::{ApiError, Client};
use job::{JobId, JobStatus, Next, Stage, apply_poll, poll_interval};
use registry::Registry;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// First poll interval for every kind; `None` follows the documented cadence (3 s, videos 5 s).
    pub poll_base: Option<Duration>,
    /// Requests in flight at once, all jobs together.
    pub max_in_flight: usize,
    /// Requests started per second, all jobs together.
    pub max_per_second: f64,
    pub backoff: Backoff,
    /// The user's defaults file, over the built-in defaults.
    pub defaults: Overrides,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            poll_base: None,
            max_in_flight: 8,
            max_per_second: 10.0,
            backoff: Backoff::default(),
            defaults: Overrides::default(),
        }
    }
}

/// A global cap on requests in flight and on their rate. File transfers (uploads, downloads)
/// have slots of their own, so long transfers never hold up polls.
struct Limiter {
    calls: Semaphore,
    transfers: Semaphore,
    next: Mutex<Instant>,
    gap: Duration,
}

impl Limiter {
    fn new(cfg: &EngineConfig) -> Limiter {
        Limiter {
            calls: Semaphore::new(cfg.max_in_flight.max(1)),
            transfers: Semaphore::new(cfg.max_in_flight.max(1)),
            next: Mutex::new(Instant::now()),
            gap: Duration::from_secs_f64(1.0 / cfg.max_per_second.max(0.1)),
        }
    }

    /// A slot for an API call.
    async fn acquire(&self) -> SemaphorePermit<'_> {
        self.paced(&self.calls).await
    }

    /// A slot for a file transfer.
    async fn transfer(&self) -> SemaphorePermit<'_> {
        self.paced(&self.transfers).await
    }

    async fn paced<'a>(&self, slots: &'a Semaphore) -> SemaphorePermit<'a> {
        let permit = slots.acquire().await.expect("never closed");
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let at = (*next).max(Instant::now());
            *next = at + self.gap;
            at
        };
        tokio::time::sleep_until(at.into()).await;
        permit
    }
}

pub struct Engine {
    client: Client,
    registry: Arc<Registry>,
    cfg: EngineConfig,
    limiter: Limiter,
    tasks: Mutex<HashMap<JobId, tokio::task::JoinHandle<()>>>,
    /// Project ids looked up under jobs/ recently, so each is probed once a minute at most.
    probed: Mutex<HashMap<String, Instant>>,
    /// Wakes a job's task from its wait between polls (a webhook event came).
    wakers: Mutex<HashMap<JobId, Arc<tokio::sync::Notify>>>,
    /// Events for projects not known yet (the event beat the create's answer): the job whose
    /// create returns that id then polls at once.
    early: Mutex<HashMap<String, Instant>>,
    runtime: tokio::runtime::Handle,
}

/// Why a job was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// It cannot be deleted now (its create call is in flight): try again in a moment.
    #[error("{0}")]
    Busy(String),
    /// Magic Hour did not delete it.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl DeleteError {
    /// The errno `rmdir` answers with.
    pub fn errno(&self) -> i32 {
        match self {
            DeleteError::Busy(_) => libc::EBUSY,
            DeleteError::Api(e) => e.errno(),
        }
    }
}

/// Why a job step stopped: the job was failed and saved, or it was removed under us.
struct Stopped;

impl Engine {
    pub fn new(client: Client, registry: Arc<Registry>, cfg: EngineConfig) -> Arc<Engine> {
        Arc::new(Engine {
            client,
            registry,
            limiter: Limiter::new(&cfg),
            cfg,
            tasks: Mutex::new(HashMap::new()),
            probed: Mutex::new(HashMap::new()),
            wakers: Mutex::new(HashMap::new()),
            early: Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Starts or resumes every unfinished job. A create that was in flight when the process
    /// stopped has an unknown outcome: it is never sent again.
    pub fn resume(self: &Arc<Self>) {
        for job in self.registry.jobs() {
            if job.stage == Stage::Creating {
                self.registry.update(job.id, |j| {
                    j.stage = Stage::Unknown;
                    j.status = JobStatus::Error;
                    j.error = Some(unknown_outcome_text(
                        &j.tool,
                        "mhfs stopped while this job's create call was in flight",
                    ));
                });
                log::warn!(
                    "job {}: create was in flight at the last stop; outcome unknown, not resent",
                    job.name
                );
            } else if job.is_active() {
                self.kick(job.id);
            }
        }
    }

    /// Runs the job's task unless one is running.
    pub fn kick(self: &Arc<Self>, id: JobId) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if tasks.get(&id).is_some_and(|t| !t.is_finished()) {
            return;
        }
        let me = self.clone();
        let task = self.runtime.spawn(async move {
            me.run(id).await;
            me.tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
        tasks.insert(id, task);
    }

    /// Deletes a job: `DELETE` on Magic Hour when a project exists (204 or 404 both mean gone),
    /// then the local copies. Any other answer keeps the job and is returned.
    pub async fn delete(self: &Arc<Self>, id: JobId) -> Result<(), DeleteError> {
        // First stop the job from starting a create, then stop its task and wait for it, so
        // nothing can bill behind the deletion.
        if self.registry.begin_delete(id).is_none() {
            return match self.registry.job(id) {
                None => Ok(()),
                Some(_) => Err(DeleteError::Busy("its create call is in flight".into())),
            };
        }
        let task = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        let Some(job) = self.registry.job(id) else {
            self.registry.end_delete(id);
            return Ok(());
        };
        let remote = match (job.kind(), job.project_id.as_deref()) {
            (Some(ProjectKind::FaceDetection), _) | (_, None) => None,
            (Some(kind), Some(pid)) => Some((kind, pid)),
            (None, Some(pid)) => {
                log::warn!(
                    "job {}: tool {:?} unknown to this mhfs; project {pid} stays on Magic Hour",
                    job.name,
                    job.tool
                );
                None
            }
        };
        if let Some((kind, pid)) = remote {
            // Few, quick retries: the rmdir that asked is waiting for this answer.
            let quick = Backoff {
                max_attempts: 3,
                base: Duration::from_millis(200),
                cap: Duration::from_secs(2),
            };
            let attempts = retry(quick, || async {
                let _permit = self.limiter.acquire().await;
                self.client.delete_project(kind, pid).await
            });
            let result = tokio::time::timeout(Duration::from_secs(5), attempts)
                .await
                .unwrap_or_else(|_| {
                    Err(ApiError::Retryable {
                        status: None,
                        retry_after: None,
                        reason: "no answer to DELETE within 5 s".into(),
                    })
                });
            match result {
                Ok(()) | Err(ApiError::Refused { status: 404, .. }) => {}
                Err(e) => {
                    // The job stays; it resumes whatever it was doing.
                    self.registry.end_delete(id);
                    if job.is_active() {
                        self.kick(id);
                    }
                    return Err(DeleteError::Api(e));
                }
            }
        }
        self.registry.remove(id);
        self.registry.end_delete(id);
        self.wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        Ok(())
    }

    fn waker(&self, id: JobId) -> Arc<tokio::sync::Notify> {
        self.wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default()
            .clone()
    }

    /// A verified webhook event: the job it is about polls now instead of at its next turn.
    pub fn on_event(self: &Arc<Self>, event: &crate::api::webhook::Event) {
        let Some(pid) = event.payload.get("id").and_then(|v| v.as_str()) else {
            return;
        };
        let job = self
            .registry
            .by_project(pid)
            .and_then(|id| self.registry.job(id));
        match job {
            Some(job) if job.stage == Stage::Created => {
                log::info!("job {}: event {}", job.name, event.kind);
                // A stored permit: a task not yet waiting still wakes at once.
                self.waker(job.id).notify_one();
                self.kick(job.id);
            }
            Some(_) => {}
            None => {
                log::debug!(
                    "webhook: event {} for a project not known yet: {pid}",
                    event.kind
                );
                let mut early = self.early.lock().unwrap_or_else(|p| p.into_inner());
                early.retain(|_, t| t.elapsed() < Duration::from_secs(60));
                early.insert(pid.to_string(), Instant::now());
            }
        }
    }

    /// Looks for a project made elsewhere by its id, in the background: image, video, then
    /// audio projects. Found, it becomes a job named after the id.
    pub fn adopt(self: &Arc<Self>, project_id: String) {
        {
            let mut probed = self.probed.lock().unwrap_or_else(|p| p.into_inner());
            if probed
                .get(&project_id)
                .is_some_and(|t| t.elapsed() < Duration::from_secs(60))
            {
                return;
            }
            probed.retain(|_, t| t.elapsed() < Duration::from_secs(60));
            probed.insert(project_id.clone(), Instant::now());
        }
        let me = self.clone();
        self.runtime.spawn(async move {
            for kind in [ProjectKind::Image, ProjectKind::Video, ProjectKind::Audio] {
                let found = retry(me.cfg.backoff, || async {
                    let _permit = me.limiter.acquire().await;
                    me.client.project(kind, &project_id).await
                })
                .await;
                match found {
                    Ok((project, _)) => {
                        let project_type = match &project {
                            crate::api::types::Project::Image(p) => p.project_type.clone(),
                            crate::api::types::Project::Video(p) => p.project_type.clone(),
                            crate::api::types::Project::Audio(p) => p.project_type.clone(),
                            crate::api::types::Project::Faces(_) => String::new(),
                        };
                        match crate::api::catalog::tool_of_type(kind, &project_type) {
                            Some(tool) => {
                                if let Some(id) = me.registry.adopt(tool, &project_id) {
                                    me.kick(id);
                                }
                            }
                            None => log::warn!(
                                "jobs/{project_id}: a {} project of type {project_type}, which mhfs does not know",
                                kind.as_str()
                            ),
                        }
                        return;
                    }
                    Err(ApiError::Refused { status: 404, .. }) => continue,
                    Err(e) => {
                        log::warn!("jobs/{project_id}: cannot look it up: {e}");
                        return;
                    }
                }
            }
            log::info!("jobs/{project_id}: no such project on Magic Hour");
        });
    }

    async fn run(self: &Arc<Self>, id: JobId) {
        loop {
            let Some(job) = self.registry.job(id) else {
                return;
            };
            if job.tool().is_none() && job.is_active() {
                let _ = self.fail(
                    id,
                    Stage::Failed,
                    "unknown_tool",
                    "this mhfs does not know its tool",
                );
                return;
            }
            let step = match job.stage {
                Stage::Staged => self.plan(id).await,
                Stage::Uploading => self.upload(id).await,
                Stage::Creating => self.create(id).await,
                Stage::Created => self.poll(id).await,
                Stage::Done | Stage::Failed | Stage::Unknown => return,
            };
            if step.is_err() {
                return;
            }
        }
    }

    fn fail(&self, id: JobId, stage: Stage, code: &str, message: &str) -> Result<(), Stopped> {
        if let Some(job) = self.registry.update(id, |j| j.fail(stage, code, message)) {
            log::warn!("job {}: {code}: {message}", job.name);
        }
        Err(Stopped)
    }

    /// Builds the body from the dropped files (local work, on a blocking thread).
    async fn plan(&self, id: JobId) -> Result<(), Stopped> {
        let Some(mut job) = self.registry.job(id) else {
            return Err(Stopped);
        };
        let input_dir = self.registry.layout().input_dir(id);
        let defaults = self.cfg.defaults.clone();
        let planned = tokio::task::spawn_blocking(move || {
            let plan = submit::plan(&mut job, &input_dir, &defaults);
            (job, plan)
        })
        .await
        .map_err(|_| Stopped)?;
        match planned {
            (_, Err(refusal)) => self.fail(id, Stage::Failed, refusal.code, &refusal.message),
            (planned_job, Ok(plan)) => {
                self.registry.update(id, |j| {
                    j.inputs = planned_job.inputs;
                    j.plan = Some(plan);
                    j.stage = Stage::Uploading;
                    j.status = JobStatus::Uploading;
                });
                Ok(())
            }
        }
    }

    /// Uploads every planned input not uploaded yet, saving each `file_path` as it comes.
    async fn upload(&self, id: JobId) -> Result<(), Stopped> {
        let Some(job) = self.registry.job(id) else {
            return Err(Stopped);
        };
        let Some(plan) = job.plan.clone() else {
            return self.fail(
                id,
                Stage::Failed,
                "internal_error",
                "no plan for the upload",
            );
        };
        for up in &plan.uploads {
            let input = &job.inputs[up.input];
            if input.remote.is_some() {
                continue;
            }
            let result = retry(self.cfg.backoff, || async {
                let _permit = self.limiter.transfer().await;
                self.client.upload_file(&input.path, up.media).await
            })
            .await;
            match result {
                Ok(remote) => {
                    log::info!("job {}: uploaded {} as {remote}", job.name, input.name);
                    self.registry
                        .update(id, |j| j.inputs[up.input].remote = Some(remote));
                }
                Err(e) => {
                    let (code, message) = e.code_and_message();
                    return self.fail(
                        id,
                        Stage::Failed,
                        &code,
                        &format!("upload of {} failed: {message}", input.name),
                    );
                }
            }
        }
        // Every file_path is known: the body to send. Saved before the create is sent.
        let Some(job) = self.registry.job(id) else {
            return Err(Stopped);
        };
        let mut body = plan.body.clone();
        for up in &plan.uploads {
            if let (Some(slot), Some(remote)) = (
                body.pointer_mut(&up.pointer),
                job.inputs[up.input].remote.clone(),
            ) {
                *slot = serde_json::Value::String(remote);
            }
        }
        if self.registry.begin_create(id, body) {
            Ok(())
        } else {
            Err(Stopped)
        }
    }

    /// The create call: sent once. Retried only when the API said nothing was done (no
    /// connection, 429, 5xx); an answer lost after sending leaves the job `Unknown`.
    async fn create(&self, id: JobId) -> Result<(), Stopped> {
        let Some(job) = self.registry.job(id) else {
            return Err(Stopped);
        };
        let body = job.request.clone().unwrap_or_default();
        let slug = job.tool.as_str();
        let result = retry(self.cfg.backoff, || async {
            let _permit = self.limiter.acquire().await;
            self.client.create(slug, &body).await
        })
        .await;
        match result {
            Ok(created) => {
                log::info!(
                    "job {}: created {} project {} ({} credits)",
                    job.name,
                    slug,
                    created.id,
                    created.credits_charged
                );
                self.registry.update(id, |j| {
                    j.project_id = Some(created.id.clone());
                    j.stage = Stage::Created;
                    j.status = JobStatus::Queued;
                });
                Ok(())
            }
            Err(ApiError::UnknownOutcome { reason }) => {
                self.registry.update(id, |j| {
                    j.stage = Stage::Unknown;
                    j.status = JobStatus::Error;
                    j.error = Some(unknown_outcome_text(&j.tool, &reason));
                });
                log::warn!(
                    "job {}: create outcome unknown ({reason}); not resent",
                    job.name
                );
                Err(Stopped)
            }
            Err(e) => {
                let (code, message) = e.code_and_message();
                self.fail(id, Stage::Failed, &code, &message)
            }
        }
    }

    /// One poll, after the cadence's wait; downloads when complete.
    async fn poll(&self, id: JobId) -> Result<(), Stopped> {
        let Some(job) = self.registry.job(id) else {
            return Err(Stopped);
        };
        let kind = job.kind().unwrap_or(ProjectKind::Image);
        let Some(pid) = job.project_id.clone() else {
            return self.fail(id, Stage::Failed, "internal_error", "no project id");
        };
        let waited = job.created.elapsed().unwrap_or_default();
        let early = self
            .early
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pid)
            .is_some();
        if job.status != JobStatus::Downloading && !early {
            let wake = self.waker(id);
            tokio::select! {
                _ = tokio::time::sleep(poll_interval(kind, waited, self.cfg.poll_base)) => {}
                _ = wake.notified() => {}
            }
        }
        let polled = retry(self.cfg.backoff, || async {
            let _permit = self.limiter.acquire().await;
            self.client.project(kind, &pid).await
        })
        .await;
        let (project, raw) = match polled {
            Ok(p) => p,
            Err(ApiError::Refused { status: 404, .. }) => {
                return self.fail(
                    id,
                    Stage::Done,
                    "not_found",
                    "the project no longer exists on Magic Hour",
                );
            }
            // Still failing after the retries: keep the job and try again at the next poll.
            Err(e) => {
                log::warn!("job {}: poll failed: {e}", job.name);
                return Ok(());
            }
        };
        let mut next = Next::Poll;
        self.registry
            .update(id, |j| next = apply_poll(j, &project, &raw));
        match next {
            Next::Download => self.download(id).await,
            Next::Poll | Next::Stop => Ok(()),
        }
    }

    /// Downloads every output not yet here, each to a temp file renamed into place, and only
    /// then shown. An expired URL is refreshed by the next poll.
    async fn download(&self, id: JobId) -> Result<(), Stopped> {
        let Some(job) = self.registry.job(id) else {
            return Err(Stopped);
        };
        let out_dir = self.registry.layout().output_dir(id);
        if let Err(e) = tokio::fs::create_dir_all(&out_dir).await {
            return self.fail(
                id,
                Stage::Done,
                "local_error",
                &format!("cannot create {}: {e}", out_dir.display()),
            );
        }
        for (i, out) in job.outputs.iter().enumerate() {
            if out.done || out.removed {
                continue;
            }
            let layout = self.registry.layout();
            let part = layout.partial_output(id, &out.name);
            let result = retry(self.cfg.backoff, || async {
                let _permit = self.limiter.transfer().await;
                self.client.download(&out.url, &part).await
            })
            .await;
            match result {
                Ok(size) => {
                    if let Err(e) = tokio::fs::rename(&part, layout.output(id, &out.name)).await {
                        return self.fail(
                            id,
                            Stage::Done,
                            "local_error",
                            &format!("cannot keep {}: {e}", out.name),
                        );
                    }
                    log::info!("job {}: downloaded {} ({size} bytes)", job.name, out.name);
                    self.registry.update(id, |j| {
                        j.outputs[i].done = true;
                        j.outputs[i].size = size;
                    });
                }
                Err(e) => {
                    let _ = tokio::fs::remove_file(&part).await;
                    // Expired or refused URL, or still failing: a new GET gives fresh URLs.
                    log::info!(
                        "job {}: download of {} failed ({e}); refreshing the URLs",
                        job.name,
                        out.name
                    );
                    tokio::time::sleep(self.cfg.backoff.delay(3, None)).await;
                    return Ok(());
                }
            }
        }
        self.registry.update(id, |j| {
            if j.outputs.iter().all(|o| o.done || o.removed) {
                j.status = JobStatus::Complete;
                j.stage = Stage::Done;
            }
        });
        Ok(())
    }
}

/// The `error` of a job whose create may or may not have happened.
fn unknown_outcome_text(tool: &str, reason: &str) -> String {
    format!(
        "unknown_outcome: {reason}. The job may exist (and be billed) on Magic Hour; mhfs never \
         resends a create whose outcome is unknown. Check your projects on magichour.ai; to submit \
         it again, copy the input kept in this folder into inbox/{tool}/."
    )
}
