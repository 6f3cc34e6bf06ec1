//! The job engine: tokio tasks that upload, create, poll and download, never on a FUSE
//! handler's path. Each job has at most one task; every step is persisted before the network
//! call it leads to, so a restart resumes where it stopped and never repeats a create.
//!
//! Errors are true: an API that is down or busy (no connection, 429, 5xx) delays a job, it
//! never fails it; a create is marked "in flight" only once it holds its slot and is about to
//! be written, so a crash before that resends it at the next mount, and only a create that may
//! have reached the API can ever be `unknown_outcome`.

pub mod activity;
pub mod credits;
pub mod creds;
pub mod job;
pub mod layout;
pub mod limiter;
pub(crate) mod names;
pub mod output_cache;
pub mod registry;
pub(crate) mod store;
pub(crate) mod submit;
pub mod webhook;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api::catalog::{Overrides, ProjectKind};
use crate::api::retry::{Backoff, retry};
use crate::api::{ApiError, Client};
use job::{
    JobId, JobStatus, Next, RENDERS_KEPT, Stage, apply_poll, learned_poll_interval, render_seen,
    typical_render,
};
use limiter::{Answer, Class, Limiter};
use registry::Registry;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// First poll interval for every kind; `None` follows the documented cadence (3 s, videos 5 s).
    pub poll_base: Option<Duration>,
    /// With webhooks: how often a job whose events do arrive is still polled (a safety net).
    /// Jobs no event has come for yet poll on their normal cadence.
    pub safety_net: Option<Duration>,
    /// Requests in flight at once, per kind (API calls; file transfers).
    pub max_in_flight: usize,
    /// The most requests per second, all jobs together (the adaptive rate stays below it).
    pub max_per_second: f64,
    /// Backoff between retries (its cap bounds each wait during an outage).
    pub backoff: Backoff,
    /// How long uploads and creates wait through an outage (no connection, 429, 5xx) before
    /// the job fails as `unavailable`. Polls and downloads never give up.
    pub outage: Duration,
    /// The user's defaults file, over the built-in defaults.
    pub defaults: Overrides,
    /// The balance, this mount's charges and the budget.
    pub credits: Arc<credits::Credits>,
    /// `--cache-size`: the most bytes of outputs kept on local disk (`None`: no bound, and
    /// nothing tracked).
    pub cache_size: Option<u64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            poll_base: None,
            safety_net: None,
            max_in_flight: 16,
            max_per_second: limiter::CEILING,
            backoff: Backoff::default(),
            outage: Duration::from_secs(24 * 3600),
            defaults: Overrides::default(),
            credits: Arc::new(credits::Credits::default()),
            cache_size: None,
        }
    }
}

/// How many times in a row a download may be refused with a fresh URL before the job fails.
const MAX_REFRESHES: u32 = 8;
/// A download URL older than this when its transfer starts is refreshed first.
const FRESH_FOR: Duration = Duration::from_secs(2);
/// How long after a create the balance is read: the creates of a burst share one read.
const BALANCE_AFTER_CREATE: Duration = Duration::from_millis(200);

pub struct Engine {
    client: Client,
    registry: Arc<Registry>,
    cfg: EngineConfig,
    limiter: Arc<Limiter>,
    /// Jobs a webhook event has arrived for in this run: only these poll at the safety net.
    evented: Mutex<HashSet<JobId>>,
    /// When each waiting job last said so in the log (one line a minute).
    said: Mutex<HashMap<JobId, Instant>>,
    tasks: Mutex<HashMap<JobId, tokio::task::JoinHandle<()>>>,
    /// Project ids looked up under jobs/ recently, so each is probed once a minute at most.
    probed: Mutex<HashMap<String, Instant>>,
    /// Wakes a job's task from its wait between polls (a webhook event came).
    wakers: Mutex<HashMap<JobId, Arc<tokio::sync::Notify>>>,
    /// Events for projects not known yet (the event beat the create's answer): the job whose
    /// create returns that id then polls at once.
    early: Mutex<HashMap<String, Instant>>,
    /// When each job's create was answered in this run, and how long after it a poll last
    /// saw the job unfinished (for the render times below).
    created_at: Mutex<HashMap<JobId, (Instant, Duration)>>,
    /// Each tool's recent create → complete times: polls wait for its typical time.
    renders: Mutex<HashMap<String, VecDeque<Duration>>>,
    /// `--cache-size`: the outputs on local disk, least recently used first.
    outputs: Option<Mutex<output_cache::OutputCache>>,
    /// Outputs being fetched again, one lock each (output_cache.rs).
    fetching: output_cache::Fetching,
    /// A read of the balance is scheduled (`read_balance_soon`).
    balance_due: Arc<AtomicBool>,
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
        let renders = kept_renders(&registry);
        Arc::new(Engine {
            client,
            registry,
            limiter: Arc::new(Limiter::new(cfg.max_in_flight, cfg.max_per_second)),
            outputs: cfg
                .cache_size
                .map(|cap| Mutex::new(output_cache::OutputCache::new(cap))),
            cfg,
            evented: Mutex::new(HashSet::new()),
            said: Mutex::new(HashMap::new()),
            tasks: Mutex::new(HashMap::new()),
            probed: Mutex::new(HashMap::new()),
            wakers: Mutex::new(HashMap::new()),
            early: Mutex::new(HashMap::new()),
            created_at: Mutex::new(HashMap::new()),
            renders: Mutex::new(renders),
            fetching: Mutex::default(),
            balance_due: Arc::new(AtomicBool::new(false)),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Starts or resumes every unfinished job. A create that was in flight when the process
    /// stopped has an unknown outcome: it is never sent again.
    pub fn resume(self: &Arc<Self>) {
        self.load_output_cache();
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
            } else if job.is_active() || job.delete_when_done {
                self.kick(job.id);
            } else {
                self.continue_chain(job.id);
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
            me.delete_if_emptied(id).await;
            me.continue_chain(id);
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
                let _permit = self.limiter.acquire(Class::Priority).await;
                let deleted = self.client.delete_project(kind, pid).await;
                self.answered(&deleted);
                deleted
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
        self.forget_outputs(id);
        self.registry.end_delete(id);
        self.wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.lock(&self.created_at).remove(&id);
        Ok(())
    }

    /// Trash hook: a job emptied from the trash while it ran (`delete_when_done`) is deleted
    /// once it ends. If Magic Hour does not delete it, it stays in the trash, whole.
    async fn delete_if_emptied(self: &Arc<Self>, id: JobId) {
        let emptied = self
            .registry
            .with_job(id, |j| j.delete_when_done && !j.is_active());
        if emptied != Some(true) {
            return;
        }
        if let Err(e) = self.delete(id).await
            && let Some(job) = self.registry.update(id, |j| {
                j.delete_when_done = false;
                j.hidden.clear();
                if let Some(t) = j.trashed.as_mut() {
                    t.expunged = None;
                }
            })
        {
            log::warn!(
                "job {}: emptied from the trash, but not deleted on Magic Hour ({e}); it is \
                 back in the trash",
                job.name
            );
        }
    }

    /// A pipeline step that ended: a complete one hands its first output to the next step (a
    /// new job, given the output by reference); a failed one stops the chain, and each later
    /// step appears as a failed job saying why. Each step is handed on once.
    fn continue_chain(self: &Arc<Self>, id: JobId) {
        let Some(job) = self.registry.job(id) else {
            return;
        };
        let Some(chain) = job.chain.clone() else {
            return;
        };
        if chain.handed_on || job.is_active() || chain.step + 1 >= chain.steps.len() {
            return;
        }
        // Checked and marked in one step of the registry: two tasks ending at once (a kick
        // racing the end of the last one) hand the step on once, never twice.
        let mut won = false;
        self.registry.update(id, |j| {
            if let Some(c) = j.chain.as_mut() {
                won = !c.handed_on;
                c.handed_on = true;
            }
        });
        if !won {
            return;
        }
        let layout = self.registry.layout();
        let output = job
            .outputs
            .iter()
            .find(|o| o.done && !o.removed)
            .filter(|_| job.status == JobStatus::Complete);
        let next = chain.step + 1;
        let new_step = |n: usize, tool: &'static crate::api::catalog::Tool| {
            let hint = format!("{}.{}-{}.step", chain.base, n + 1, tool.slug);
            let mut nj = self
                .registry
                .reserve(&hint, tool, job::Source::Step, job.owner);
            nj.preset = job.preset.clone();
            let params = &chain.steps[n].params;
            nj.params = (!params.is_null()).then(|| params.clone());
            nj.chain = Some(job::Chain {
                step: n,
                handed_on: false,
                ..chain.clone()
            });
            nj
        };
        match output {
            Some(out) => {
                let Some(tool) = crate::api::catalog::tool(&chain.steps[next].tool) else {
                    return;
                };
                let mut nj = new_step(next, tool);
                nj.inputs.push(job::InputFile {
                    name: out.name.clone(),
                    path: layout.output(id, &out.name),
                    remote: None,
                });
                nj.reuse.insert(
                    0,
                    job::OutputRef {
                        job: id,
                        output: out.name.clone(),
                    },
                );
                if let Err(e) = self.registry.record(&nj) {
                    log::error!(
                        "pipeline {}: cannot start step {}: {e}",
                        chain.preset,
                        next + 1
                    );
                    self.registry.discard(nj.id);
                    return;
                }
                log::info!(
                    "pipeline {}: jobs/{} hands {} on to step {} as jobs/{} ({})",
                    chain.preset,
                    job.name,
                    out.name,
                    next + 1,
                    nj.name,
                    tool.slug
                );
                let nid = nj.id;
                self.registry.publish(nj);
                self.kick(nid);
            }
            None => {
                let why = format!(
                    "step {} (jobs/{}) ended {}{}; this step of pipeline {} did not run",
                    chain.step + 1,
                    job.name,
                    job.status.as_str(),
                    job.error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default(),
                    chain.preset
                );
                let line = format!("pipeline {}: stopped: {why}", chain.preset);
                log::warn!("{line}");
                self.registry.activity().note(&line);
                for n in next..chain.steps.len() {
                    let Some(tool) = crate::api::catalog::tool(&chain.steps[n].tool) else {
                        continue;
                    };
                    let mut nj = new_step(n, tool);
                    if let Some(c) = nj.chain.as_mut() {
                        c.handed_on = true;
                    }
                    nj.fail(Stage::Failed, "pipeline_stopped", &why);
                    if self.registry.record(&nj).is_err() {
                        self.registry.discard(nj.id);
                        continue;
                    }
                    let nid = nj.id;
                    self.registry.publish(nj);
                    self.registry
                        .update(nid, |j| j.fail(Stage::Failed, "pipeline_stopped", &why));
                }
            }
        }
    }

    fn waker(&self, id: JobId) -> Arc<tokio::sync::Notify> {
        self.wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default()
            .clone()
    }

    /// A verified webhook event: the job it is about polls now instead of at its next turn,
    /// and from now on only at the safety net (its events are proven to arrive). An event for
    /// a project no job knows may settle a job whose create's outcome was unknown: same name
    /// (the create body's), same tool.
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
                self.lock(&self.evented).insert(job.id);
                // A stored permit: a task not yet waiting still wakes at once.
                self.waker(job.id).notify_one();
                self.kick(job.id);
            }
            Some(_) => {}
            None if self.settle_unknown(pid, event) => {}
            None => {
                log::debug!(
                    "webhook: event {} for a project not known yet: {pid}",
                    event.kind
                );
                let mut early = self.lock(&self.early);
                early.retain(|_, t| t.elapsed() < Duration::from_secs(60));
                early.insert(pid.to_string(), Instant::now());
            }
        }
    }

    /// Adopts the project of an event into the job whose create's answer was lost, if one
    /// matches: it exists after all, so the job follows it instead of staying unknown.
    fn settle_unknown(self: &Arc<Self>, pid: &str, event: &crate::api::webhook::Event) -> bool {
        let name = event.payload.get("name").and_then(|v| v.as_str());
        let family = event.kind.split('.').next().unwrap_or_default();
        let project_type = event
            .payload
            .get("type")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let Some(name) = name else { return false };
        // Made when (or after) the job was: a project of the same name made elsewhere before
        // it is not its create's.
        let made = event
            .payload
            .get("created_at")
            .and_then(|v| v.as_str())
            .and_then(|t| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok());
        let Some(made) = made else { return false };
        let candidates: Vec<job::Job> = self
            .registry
            .jobs()
            .into_iter()
            .filter(|j| made + Duration::from_secs(5) >= j.created)
            .filter(|j| {
                j.stage == Stage::Unknown
                    && j.request
                        .as_ref()
                        .and_then(|r| r.str_field("name"))
                        .as_deref()
                        == Some(name)
                    && j.kind().is_some_and(|k| k.as_str() == family)
                    && (project_type.is_empty()
                        || j.kind()
                            .and_then(|k| crate::api::catalog::tool_of_type(k, project_type))
                            .is_some_and(|t| t.slug == j.tool))
            })
            .collect();
        // Only an unambiguous match: two unknown jobs of the same name and tool stay unknown.
        let [job] = candidates.as_slice() else {
            return false;
        };
        let job = job.clone();
        log::info!(
            "job {}: its create did reach Magic Hour (project {pid}, from event {}); following it",
            job.name,
            event.kind
        );
        self.registry.update(job.id, |j| {
            j.project_id = Some(pid.to_string());
            j.stage = Stage::Created;
            j.status = JobStatus::Queued;
            j.error = None;
        });
        self.lock(&self.evented).insert(job.id);
        self.kick(job.id);
        true
    }

    fn lock<'a, T>(&self, m: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
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
                    let _permit = me.limiter.acquire(Class::Priority).await;
                    let found = me.client.project(kind, &project_id).await;
                    me.answered(&found);
                    found
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
        // A job (re)started polls at once: at a mount, every unfinished job is checked.
        let mut first_poll = true;
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
                Stage::Uploading => {
                    let created = self.upload(id).await;
                    // Just created: poll at once only while the tool's render time is unknown.
                    first_poll = self.typical_render(&job.tool).is_none();
                    created
                }
                Stage::Created => {
                    let polled = self.poll(id, first_poll).await;
                    first_poll = false;
                    polled
                }
                // A create is only ever `Creating` inside `create`; a task never resumes it.
                Stage::Creating | Stage::Done | Stage::Failed | Stage::Unknown => return,
            };
            if step.is_err() {
                self.lock(&self.said).remove(&id);
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

    /// Tells the limiter how an API answer went.
    fn answered<T>(&self, result: &Result<T, ApiError>) {
        let answer = match result {
            Ok(_) | Err(ApiError::Refused { .. }) => Answer::Good,
            Err(ApiError::Retryable {
                status: Some(429 | 502 | 503 | 504),
                retry_after,
                ..
            }) => Answer::Busy(*retry_after),
            Err(ApiError::Retryable {
                status: Some(_), ..
            }) => Answer::Failed,
            Err(ApiError::Retryable { status: None, .. } | ApiError::UnknownOutcome { .. }) => {
                Answer::Down
            }
            Err(ApiError::Local(_)) => return,
        };
        self.limiter.answered(answer);
    }

    /// Waits out one failed attempt of a job's request: capped, jittered backoff that honours
    /// Retry-After and ends at once when the API answers again. Says so in the log, once a
    /// minute per job.
    async fn wait_out(
        &self,
        id: JobId,
        what: &str,
        attempt: u32,
        error: &ApiError,
        since: Instant,
        billing: bool,
    ) {
        let retry_after = match error {
            ApiError::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        };
        let delay = self.cfg.backoff.delay(attempt, retry_after);
        let say = {
            let mut said = self.lock(&self.said);
            let due = said
                .get(&id)
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
            if due {
                said.insert(id, Instant::now());
            }
            due
        };
        if say && let Some(job) = self.registry.job(id) {
            let said = format!(
                "jobs/{}: {what} waits for the API ({error}); next try in {:.1} s, waiting for {:.0} s",
                job.name,
                delay.as_secs_f64(),
                since.elapsed().as_secs_f64()
            );
            log::warn!("{said}");
            self.registry.activity().note(&said);
        }
        // A request that costs nothing (an upload, a poll, a download) goes on as soon as the
        // API answers anyone again. A create waits out its full backoff after an answer that
        // was an error rather than an outage (a 500, a 429): it bills, so it never hurries.
        let outage = !billing
            || matches!(
                error,
                ApiError::Retryable {
                    status: None | Some(502..=504),
                    ..
                }
            );
        self.limiter.wait_out(delay, outage).await;
    }

    /// Runs one request of a job until it succeeds or fails for good. No connection, 429 and
    /// 5xx are waited out; `limit` bounds the whole wait (`None`: wait as long as it takes).
    async fn patiently<T, F, Fut>(
        &self,
        id: JobId,
        class: Class,
        what: &str,
        limit: Option<Duration>,
        mut op: F,
    ) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let since = Instant::now();
        let mut attempt = 0;
        loop {
            let result = {
                let _permit = self.limiter.acquire(class).await;
                op().await
            };
            if !matches!(class, Class::Transfer | Class::Storage) {
                self.answered(&result);
            }
            match result {
                Err(e @ ApiError::Retryable { .. })
                    if limit.is_none_or(|l| since.elapsed() < l) =>
                {
                    attempt += 1;
                    self.wait_out(id, what, attempt, &e, since, false).await;
                }
                other => {
                    if other.is_ok() && attempt > 0 {
                        self.lock(&self.said).remove(&id);
                    }
                    return other;
                }
            }
        }
    }

    /// Builds the body from the dropped files (local work, on a blocking thread).
    async fn plan(&self, id: JobId) -> Result<(), Stopped> {
        let Some(mut job) = self.registry.job(id) else {
            return Err(Stopped);
        };
        // A pipeline step's input is the step before's output: fetched again if it was evicted
        // from the local cache (--cache-size), waiting out an API that is down.
        for (&input, from) in &job.reuse {
            let missing = job.inputs.get(input).is_some_and(|f| !f.path.exists());
            let index = self
                .registry
                .with_job(from.job, |j| {
                    j.outputs.iter().position(|o| o.name == from.output)
                })
                .flatten();
            if let (true, Some(i)) = (missing, index)
                && let Err(e) = self.fetch_output(from.job, i, None).await
            {
                return self.fail(id, Stage::Failed, "input_unavailable", &e);
            }
        }
        let input_dir = self.registry.layout().input_dir(id);
        let defaults = self.cfg.defaults.clone();
        let planned = tokio::task::spawn_blocking(move || {
            let plan = submit::plan(&mut job, &input_dir, &defaults).and_then(|plan| {
                let fp = submit::fingerprint(&job.tool, &plan, &job.inputs).map_err(|e| {
                    submit::Refusal {
                        code: "unreadable_input",
                        message: e.to_string(),
                    }
                })?;
                Ok((plan, fp))
            });
            // The local inputs' digests, to find outputs of other jobs dropped again.
            let digests: Vec<(usize, String)> = match &plan {
                Ok((p, _)) => p
                    .uploads
                    .iter()
                    .filter(|u| !job.reuse.contains_key(&u.input))
                    .filter_map(|u| {
                        submit::file_sha256(&job.inputs[u.input].path)
                            .ok()
                            .map(|d| (u.input, d))
                    })
                    .collect(),
                Err(_) => vec![],
            };
            (job, plan, digests)
        })
        .await;
        let planned = match planned {
            Ok(planned) => planned,
            // A bug met on this input (a panic while reading it): the job says so instead of
            // staying staged for ever.
            Err(e) if e.is_panic() => {
                return self.fail(
                    id,
                    Stage::Failed,
                    "internal_error",
                    "mhfs failed while reading this job's inputs (please report it); nothing was sent",
                );
            }
            Err(_) => return Err(Stopped),
        };
        match planned {
            (_, Err(refusal), _) => self.fail(id, Stage::Failed, refusal.code, &refusal.message),
            (planned_job, Ok((plan, fingerprint)), digests) => {
                let expected = planned_job
                    .tool()
                    .map_or(0, |t| crate::api::catalog::price(t, &plan.body));
                {
                    // Checked and reserved as one step: submissions planned at once cannot
                    // all fit in the same room of the budget.
                    let _admit = self.cfg.credits.admit();
                    let reserved = credits::reserved(&self.registry, Some(id));
                    if let Err(over) = self.cfg.credits.check(expected, reserved) {
                        return self.fail(
                            id,
                            Stage::Failed,
                            "over_budget",
                            &format!("not submitted: {over}; nothing was uploaded or billed"),
                        );
                    }
                    self.registry
                        .update(id, |j| j.expected_credits = Some(expected));
                }
                if !self.claim(id, &planned_job, fingerprint) {
                    return Err(Stopped);
                }
                let mut reuse = planned_job.reuse.clone();
                for (input, digest) in digests {
                    if let Some(found) = self.output_with_digest(&digest) {
                        log::info!(
                            "job {}: {} is {} of jobs/{}: passed by reference, not uploaded",
                            planned_job.name,
                            planned_job.inputs[input].name,
                            found.1.output,
                            found.0
                        );
                        reuse.insert(input, found.1);
                    }
                }
                log::info!(
                    "job {}: expected price {expected} credits",
                    planned_job.name
                );
                self.registry.update(id, |j| {
                    j.inputs = planned_job.inputs;
                    j.plan = Some(plan);
                    j.reuse = reuse;
                    j.expected_credits = Some(expected);
                    j.stage = Stage::Uploading;
                    j.status = JobStatus::Uploading;
                });
                Ok(())
            }
        }
    }

    /// A downloaded output of a job still on Magic Hour with these bytes: (its job's name,
    /// the reference).
    fn output_with_digest(&self, digest: &str) -> Option<(String, job::OutputRef)> {
        self.registry
            .select(|j| {
                let pid_known = j.project_id.is_some() && j.kind().is_some();
                let name = j
                    .output_sha256
                    .iter()
                    .find(|(_, d)| d.as_str() == digest)
                    .map(|(n, _)| n.clone())?;
                pid_known.then(|| {
                    (
                        j.name.clone(),
                        job::OutputRef {
                            job: j.id,
                            output: name,
                        },
                    )
                })
            })
            .into_iter()
            .next()
    }

    /// Billed once per intent: a job whose fingerprint a live job of its tool already holds is
    /// a duplicate, removed before anything is uploaded or created (`false`), and the log says
    /// which job it matches. A rerun (`<stem>.again.<ext>`) skips the check.
    fn claim(&self, id: JobId, job: &job::Job, fingerprint: String) -> bool {
        // A later pipeline step is its chain's, not a drop: a rerun of the chain runs it again.
        if job.source == job::Source::Step {
            self.registry
                .update(id, |j| j.fingerprint = Some(fingerprint));
            return true;
        }
        if submit::is_rerun(job) {
            log::info!(
                "job {}: {} is a deliberate rerun; not checked for duplicates",
                job.name,
                submit::dropped_name(job)
            );
            self.registry
                .update(id, |j| j.fingerprint = Some(fingerprint));
            return true;
        }
        let Err(other) = self.registry.claim_fingerprint(id, &fingerprint) else {
            return true;
        };
        let other = self
            .registry
            .with_job(other, |j| j.name.clone())
            .unwrap_or_else(|| other.to_string());
        let said = format!(
            "inbox/{}/{}: the same as jobs/{other} (same bytes and parameters): not submitted \
             again; to run it again, name it {}",
            job.tool,
            submit::dropped_name(job),
            submit::rerun_name(job)
        );
        log::info!("{said}");
        self.registry.activity().note(&said);
        self.registry.remove(id);
        false
    }

    /// Uploads every planned input not uploaded yet, saving each `file_path` as it comes,
    /// then sends the create.
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
            let Some(input) = job.inputs.get(up.input) else {
                return self.fail(
                    id,
                    Stage::Failed,
                    "internal_error",
                    "the plan names a missing input",
                );
            };
            if input.remote.is_some() {
                continue;
            }
            if let Some(from) = job.reuse.get(&up.input) {
                match self.reference(id, from).await {
                    Some(url) => {
                        log::info!(
                            "job {}: {} passed by reference (an output of an earlier job), not uploaded",
                            job.name,
                            input.name
                        );
                        self.registry
                            .update(id, |j| j.inputs[up.input].remote = Some(url));
                        continue;
                    }
                    None => log::info!(
                        "job {}: the output {} cannot be passed by reference; uploading it",
                        job.name,
                        from.output
                    ),
                }
            }
            let what = format!("the upload of {}", input.name);
            let result = self
                .patiently(id, Class::Transfer, &what, Some(self.cfg.outage), || {
                    self.client.upload_file(&input.path, up.media)
                })
                .await;
            match result {
                Ok(remote) => {
                    log::info!("job {}: uploaded {} as {remote}", job.name, input.name);
                    self.registry.update(id, |j| {
                        if let Some(i) = j.inputs.get_mut(up.input) {
                            i.remote = Some(remote);
                        }
                    });
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
        // Every file_path is known: the body to send.
        let Some(job) = self.registry.job(id) else {
            return Err(Stopped);
        };
        let mut body = plan.body.clone();
        for up in &plan.uploads {
            if let (Some(slot), Some(remote)) = (
                body.pointer_mut(&up.pointer),
                job.inputs.get(up.input).and_then(|i| i.remote.clone()),
            ) {
                *slot = serde_json::Value::String(remote);
            }
        }
        self.create(id, body).await
    }

    /// A fresh URL of another job's output (one GET of its project, so an expired URL is
    /// renewed), or `None` when that job or its project is gone.
    async fn reference(&self, id: JobId, from: &job::OutputRef) -> Option<String> {
        let src = self.registry.job(from.job)?;
        let kind = src.kind()?;
        let pid = src.project_id.clone()?;
        let polled = self
            .patiently(
                id,
                Class::Priority,
                "a URL refresh",
                Some(self.cfg.outage),
                || self.client.project(kind, &pid),
            )
            .await
            .ok()?;
        let mut url = None;
        self.registry.update(from.job, |j| {
            apply_poll(j, &polled.0, &polled.1);
            url = j
                .outputs
                .iter()
                .find(|o| o.name == from.output)
                .map(|o| o.url.clone());
        });
        url.filter(|u| !u.is_empty())
    }

    /// The create call. `Creating` is recorded (durably) only once the call holds its slot,
    /// right before it is written, so a stop before that leaves nothing in doubt. An answer
    /// that proves nothing was created (no connection, 429, the API's own 5xx) puts the job
    /// back to ready, durably, and it is sent again after a wait; an answer lost after sending
    /// leaves the job `Unknown`, never resent.
    async fn create(&self, id: JobId, body: serde_json::Value) -> Result<(), Stopped> {
        let Some(job) = self.registry.job(id) else {
            return Err(Stopped);
        };
        let slug = job.tool.clone();
        let mut since = Instant::now();
        let mut attempt = 0;
        loop {
            let result = {
                let _permit = self.limiter.acquire(Class::Create).await;
                if !self.registry.begin_create(id, body.clone()) {
                    return Err(Stopped);
                }
                self.client.create(&slug, &body).await
            };
            self.answered(&result);
            match result {
                Ok(created) => {
                    log::info!(
                        "job {}: created {slug} project {} ({} credits)",
                        job.name,
                        created.id,
                        created.credits_charged
                    );
                    let expected = job.expected_credits.unwrap_or(created.credits_charged);
                    self.cfg.credits.created(expected, created.credits_charged);
                    self.lock(&self.created_at)
                        .insert(id, (Instant::now(), Duration::ZERO));
                    self.registry.update(id, |j| {
                        j.project_id = Some(created.id.clone());
                        j.stage = Stage::Created;
                        j.status = JobStatus::Queued;
                        j.credits_charged = Some(created.credits_charged);
                    });
                    self.read_balance_soon();
                    return Ok(());
                }
                Err(ApiError::Refused {
                    status: 402,
                    message,
                    ..
                }) => {
                    // Nothing was created or billed: the job waits, visibly, for credits.
                    self.registry.update(id, |j| {
                        j.stage = Stage::Uploading;
                        j.status = JobStatus::Submitting;
                    });
                    self.wait_for_credits(id, &job, &message).await;
                    if self.registry.job(id).is_none() {
                        return Err(Stopped);
                    }
                    // An outage after a long wait for credits has its own full allowance.
                    since = Instant::now();
                }
                Err(e @ ApiError::Retryable { .. }) => {
                    // Nothing was created: ready to send again (a stop now resends it later).
                    self.registry.update(id, |j| j.stage = Stage::Uploading);
                    if since.elapsed() >= self.cfg.outage {
                        let (code, message) = e.code_and_message();
                        return self.fail(id, Stage::Failed, &code, &message);
                    }
                    attempt += 1;
                    self.wait_out(id, "the create", attempt, &e, since, true)
                        .await;
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
                    return Err(Stopped);
                }
                Err(e) => {
                    let (code, message) = e.code_and_message();
                    return self.fail(id, Stage::Failed, &code, &message);
                }
            }
        }
    }

    /// Reads the balance (`GET /v1/account`) in the background, a moment after a create: one
    /// read for a burst of creates (a batch of 1000 once sent 1000), paced like the polls.
    fn read_balance_soon(&self) {
        if self.balance_due.swap(true, Ordering::AcqRel) {
            return;
        }
        let (due, limiter) = (self.balance_due.clone(), self.limiter.clone());
        let (client, credits) = (self.client.clone(), self.cfg.credits.clone());
        self.runtime.spawn(async move {
            tokio::time::sleep(BALANCE_AFTER_CREATE).await;
            due.store(false, Ordering::Release);
            let read = {
                let _permit = limiter.acquire(Class::Priority).await;
                client.account().await
            };
            if let Ok(account) = read {
                credits.set_balance(account.credits);
            }
        });
    }

    /// Reads the balance now, and then on the slow cadence, for as long as the engine lives.
    pub fn watch_credits(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        let every = self.cfg.credits.refresh_every;
        self.runtime.spawn(async move {
            loop {
                let Some(engine) = me.upgrade() else { return };
                let read = {
                    let _permit = engine.limiter.acquire(Class::Priority).await;
                    engine.client.account().await
                };
                match read {
                    Ok(account) => engine.cfg.credits.set_balance(account.credits),
                    Err(e) => log::debug!("credits: cannot read the balance: {e}"),
                }
                drop(engine);
                tokio::time::sleep(every).await;
            }
        });
    }

    /// A create refused for insufficient credits (402): the job stays `submitting` and tries
    /// again once the balance (read on the slow cadence) covers its price. Said in the log.
    async fn wait_for_credits(&self, id: JobId, job: &job::Job, message: &str) {
        let price = job.expected_credits.unwrap_or(0);
        let line = format!(
            "job {}: Magic Hour refused it for insufficient credits ({message}); it needs {price} \
             credits and waits until the balance covers it (checked every {} s); remove the job \
             to give up",
            job.name,
            self.cfg.credits.refresh_every.as_secs_f64()
        );
        log::warn!("{line}");
        self.registry.activity().note(&line);
        loop {
            let changed = self.cfg.credits.changed.notified();
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(self.cfg.credits.refresh_every) => {
                    let read = {
                        let _permit = self.limiter.acquire(Class::Priority).await;
                        self.client.account().await
                    };
                    if let Ok(account) = read {
                        self.cfg.credits.set_balance(account.credits);
                    }
                }
            }
            if self.registry.job(id).is_none() {
                return;
            }
            if self.cfg.credits.balance().is_some_and(|b| b >= price) {
                log::info!(
                    "job {}: the balance now covers its {price} credits; sending it again",
                    job.name
                );
                return;
            }
        }
    }

    /// How long a created job waits before its next poll: its tool's typical render time
    /// once one was seen (counted from its create's answer in this run), else the documented
    /// cadence.
    fn next_poll(&self, id: JobId, kind: ProjectKind, tool: &str, waited: Duration) -> Duration {
        match self.cfg.safety_net {
            Some(net) if self.lock(&self.evented).contains(&id) => net,
            _ => {
                let since_create = self.lock(&self.created_at).get(&id).map(|c| c.0.elapsed());
                let typical = since_create.and(self.typical_render(tool));
                learned_poll_interval(
                    kind,
                    since_create.unwrap_or(waited),
                    typical,
                    self.cfg.poll_base,
                )
            }
        }
    }

    /// What is learned of a tool's render time (the median of its recent jobs), if anything.
    pub fn typical_render(&self, tool: &str) -> Option<Duration> {
        let seen: Vec<Duration> = self
            .lock(&self.renders)
            .get(tool)?
            .iter()
            .copied()
            .collect();
        typical_render(&seen)
    }

    /// A job of `tool` created in this run was seen complete: its render time, learned (and
    /// kept in its row by the caller, so the next mount starts from it).
    fn rendered(&self, id: JobId, tool: &str) -> Option<Duration> {
        let (at, unfinished) = self.lock(&self.created_at).remove(&id)?;
        let render = render_seen(unfinished, at.elapsed());
        learn_render(&mut self.lock(&self.renders), tool, render);
        Some(render)
    }

    /// One poll, after the cadence's wait (none for the first poll of a task); downloads when
    /// complete.
    async fn poll(&self, id: JobId, first: bool) -> Result<(), Stopped> {
        let Some(job) = self.registry.job(id) else {
            return Err(Stopped);
        };
        let kind = job.kind().unwrap_or(ProjectKind::Image);
        let Some(pid) = job.project_id.clone() else {
            return self.fail(id, Stage::Failed, "internal_error", "no project id");
        };
        let waited = job.created.elapsed().unwrap_or_default();
        let early = self.lock(&self.early).remove(&pid).is_some();
        if !first && job.status != JobStatus::Downloading && !early {
            let wake = self.waker(id);
            tokio::select! {
                _ = tokio::time::sleep(self.next_poll(id, kind, &job.tool, waited)) => {}
                _ = wake.notified() => {}
            }
        }
        let polled = self
            .patiently(id, Class::Priority, "polling", None, || {
                self.client.project(kind, &pid)
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
            // A refusal that may pass (a key being fixed) or a bad answer: try again at the
            // next turn (waited here: a downloading job's next poll does not wait).
            Err(e) => {
                log::warn!("job {}: poll failed: {e}", job.name);
                tokio::time::sleep(
                    self.next_poll(id, kind, &job.tool, waited)
                        .max(Duration::from_secs(1)),
                )
                .await;
                return Ok(());
            }
        };
        let mut next = Next::Poll;
        let complete = matches!(project.status(), crate::api::types::Status::Complete);
        let render = complete.then(|| self.rendered(id, &job.tool)).flatten();
        self.registry.update(id, |j| {
            next = apply_poll(j, &project, &raw);
            if let Some(r) = render {
                j.render_ms = Some(r.as_millis() as u64);
            }
        });
        match project.status() {
            crate::api::types::Status::Complete => {}
            _ if next == Next::Stop => {
                self.lock(&self.created_at).remove(&id);
            }
            _ => {
                if let Some(c) = self.lock(&self.created_at).get_mut(&id) {
                    c.1 = c.0.elapsed();
                }
            }
        }
        match next {
            Next::Download => self.download(id, kind, &pid, Instant::now()).await,
            Next::Poll | Next::Stop => Ok(()),
        }
    }

    /// Fresh download URLs: one GET of the project, ahead of new work.
    async fn refresh(&self, id: JobId, kind: ProjectKind, pid: &str) -> Result<(), ApiError> {
        let (project, raw) = self
            .patiently(id, Class::Priority, "a URL refresh", None, || {
                self.client.project(kind, pid)
            })
            .await?;
        self.registry.update(id, |j| {
            apply_poll(j, &project, &raw);
        });
        Ok(())
    }

    /// Downloads every output not yet here, each to a hidden part file renamed into place,
    /// and only then shown. A URL is used as soon as it is minted: one that waited for its
    /// transfer slot is refreshed first, while the slot is held. A cut download resumes where
    /// it stopped; a refused one gets a fresh URL, a bounded number of times in a row.
    async fn download(
        &self,
        id: JobId,
        kind: ProjectKind,
        pid: &str,
        mut minted: Instant,
    ) -> Result<(), Stopped> {
        let layout = self.registry.layout();
        let out_dir = layout.output_dir(id);
        if let Err(e) = registry::private_dir(&out_dir) {
            return self.fail(
                id,
                Stage::Done,
                "local_error",
                &format!("cannot create {}: {e}", out_dir.display()),
            );
        }
        let Some(job) = self.registry.job(id) else {
            return Err(Stopped);
        };
        for i in 0..job.outputs.len() {
            let since = Instant::now();
            let (mut refused, mut attempt) = (0, 0);
            loop {
                let Some(out) = self
                    .registry
                    .job(id)
                    .and_then(|j| j.outputs.get(i).cloned())
                else {
                    return Err(Stopped);
                };
                if out.done || out.removed {
                    break;
                }
                let part = layout.partial_output(id, &out.name);
                let result = {
                    let _permit = self.limiter.acquire(Class::Storage).await;
                    let mut url = out.url.clone();
                    if minted.elapsed() > FRESH_FOR || refused > 0 {
                        if let Err(e) = self.refresh(id, kind, pid).await {
                            log::warn!("job {}: cannot refresh its URLs: {e}", job.name);
                            drop(_permit);
                            let waited = job.created.elapsed().unwrap_or_default();
                            tokio::time::sleep(
                                self.next_poll(id, kind, &job.tool, waited)
                                    .max(Duration::from_secs(1)),
                            )
                            .await;
                            return Ok(());
                        }
                        minted = Instant::now();
                        match self
                            .registry
                            .job(id)
                            .and_then(|j| j.outputs.get(i).cloned())
                        {
                            Some(o) => url = o.url,
                            None => return Err(Stopped),
                        }
                    }
                    self.client.download(&url, &part).await
                };
                match result {
                    Ok(size) => {
                        if let Err(e) = tokio::fs::rename(&part, layout.output(id, &out.name)).await
                        {
                            return self.fail(
                                id,
                                Stage::Done,
                                "local_error",
                                &format!("cannot keep {}: {e}", out.name),
                            );
                        }
                        log::info!("job {}: downloaded {} ({size} bytes)", job.name, out.name);
                        let kept = layout.output(id, &out.name);
                        let mtime = std::fs::metadata(&kept).and_then(|m| m.modified()).ok();
                        let digest =
                            tokio::task::spawn_blocking(move || submit::file_sha256(&kept).ok())
                                .await
                                .ok()
                                .flatten();
                        self.registry.update(id, |j| {
                            j.outputs[i].done = true;
                            j.outputs[i].size = size;
                            j.outputs[i].url = String::new();
                            j.outputs[i].mtime = mtime;
                            if let Some(d) = digest {
                                j.output_sha256.insert(out.name.clone(), d);
                            }
                        });
                        if self.outputs.is_some()
                            && let Ok(file) = std::fs::File::open(layout.output(id, &out.name))
                        {
                            self.output_used(id, i, &file);
                        }
                        break;
                    }
                    // Expired or refused URL: a fresh one, used at once.
                    Err(e @ ApiError::Refused { .. }) => {
                        refused += 1;
                        if refused >= MAX_REFRESHES {
                            let (code, message) = e.code_and_message();
                            return self.fail(
                                id,
                                Stage::Done,
                                "download_refused",
                                &format!(
                                    "{} was refused {refused} times with fresh URLs: {code}: {message}",
                                    out.name
                                ),
                            );
                        }
                        log::info!(
                            "job {}: download of {} refused ({e}); refreshing its URL",
                            job.name,
                            out.name
                        );
                        tokio::time::sleep(self.cfg.backoff.delay(refused, None)).await;
                    }
                    // Cut off, or storage unreachable: wait, then resume from the part file.
                    Err(e @ ApiError::Retryable { .. }) => {
                        attempt += 1;
                        self.wait_out(
                            id,
                            &format!("the download of {}", out.name),
                            attempt,
                            &e,
                            since,
                            false,
                        )
                        .await;
                    }
                    Err(e) => {
                        let _ = tokio::fs::remove_file(&part).await;
                        let (code, message) = e.code_and_message();
                        return self.fail(id, Stage::Done, &code, &message);
                    }
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

/// Adds a render time of `tool` to what is learned of it (the last `RENDERS_KEPT`).
fn learn_render(renders: &mut HashMap<String, VecDeque<Duration>>, tool: &str, d: Duration) {
    let seen = renders.entry(tool.to_string()).or_default();
    if seen.len() == RENDERS_KEPT {
        seen.pop_front();
    }
    seen.push_back(d);
}

/// The render times kept in the jobs' rows, oldest first: what earlier mounts learned.
fn kept_renders(registry: &Registry) -> HashMap<String, VecDeque<Duration>> {
    let mut kept = registry.select(|j| j.render_ms.map(|ms| (j.updated, j.tool.clone(), ms)));
    kept.sort();
    let mut renders = HashMap::new();
    for (_, tool, ms) in kept {
        learn_render(&mut renders, &tool, Duration::from_millis(ms));
    }
    renders
}

/// The `error` of a job whose create may or may not have happened.
fn unknown_outcome_text(tool: &str, reason: &str) -> String {
    format!(
        "unknown_outcome: {reason}. The job may exist (and be billed) on Magic Hour; mhfs never \
         resends a create whose outcome is unknown. Check your projects on magichour.ai; to submit \
         it again, copy the input kept in this folder into inbox/{tool}/."
    )
}
