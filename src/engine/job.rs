//! A job as the drive keeps it, and the pure rules that move it along.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::catalog::{self, Media, ProjectKind, Tool};
use crate::api::types::{Project, Status};

pub type JobId = i64;

/// Where a submission is, persisted before each network step so a restart knows what was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Inputs are on local disk; the body is not built yet.
    Staged,
    /// Local inputs are being uploaded (each one's `remote` is saved as it finishes).
    Uploading,
    /// The create call is about to be, or was, sent. Found at start-up, it means the outcome is
    /// unknown: the process died with the call in flight.
    Creating,
    /// The project exists on Magic Hour: poll and download.
    Created,
    /// Ended: complete, error or canceled (see `status`).
    Done,
    /// Failed before any project existed (nothing billed), or the create was refused.
    Failed,
    /// The create was sent and its answer lost: never retried automatically.
    Unknown,
}

/// The word in the job's `status` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Uploading,
    Submitting,
    Queued,
    Rendering,
    Downloading,
    Complete,
    Error,
    Canceled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Uploading => "uploading",
            JobStatus::Submitting => "submitting",
            JobStatus::Queued => "queued",
            JobStatus::Rendering => "rendering",
            JobStatus::Downloading => "downloading",
            JobStatus::Complete => "complete",
            JobStatus::Error => "error",
            JobStatus::Canceled => "canceled",
        }
    }
}

/// A JSON document kept as its compact text (`request.json`, `job.json`): a `Value` tree costs
/// several times its text, and most are never read again. Stored in a job's row as the JSON
/// value itself, so rows read the same either way; parsed on demand.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonText(Box<serde_json::value::RawValue>);

impl JsonText {
    pub fn new(v: &Value) -> JsonText {
        JsonText(serde_json::value::to_raw_value(v).expect("a Value serializes"))
    }

    /// The compact text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The document as a `Value` (`Null` if it does not parse, which a stored one always does).
    pub fn value(&self) -> Value {
        serde_json::from_str(self.as_str()).unwrap_or(Value::Null)
    }

    /// A top-level string field, read without building the document.
    pub fn str_field(&self, key: &str) -> Option<String> {
        let fields: BTreeMap<&str, &serde_json::value::RawValue> =
            serde_json::from_str(self.as_str()).ok()?;
        serde_json::from_str(fields.get(key)?.get()).ok()
    }

    /// The pretty-printed document, with a final newline.
    pub fn pretty(&self) -> Vec<u8> {
        let mut s = serde_json::to_string_pretty(&self.value()).unwrap_or_default();
        s.push('\n');
        s.into_bytes()
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &JsonText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl From<Value> for JsonText {
    fn from(v: Value) -> JsonText {
        JsonText::new(&v)
    }
}

/// A create body whose local files still need uploading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub body: Value,
    pub uploads: Vec<PlannedUpload>,
}

/// "Upload input `input` as `media` and put its `file_path` at `pointer`."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedUpload {
    /// JSON pointer into the body, e.g. `/assets/image_file_path`.
    pub pointer: String,
    pub input: usize,
    pub media: Media,
}

/// What a job was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A media file dropped into a tool's folder.
    File,
    /// A `.txt` file: the tool's prompt or text.
    Text,
    /// A `.json` file: the create body itself.
    Json,
    /// A submission folder of several inputs.
    Folder,
    /// A project made elsewhere (web app, SDK), found by its id.
    Adopted,
    /// A later step of a pipeline: its input is the output of the step before.
    Step,
}

/// An output of another job, used as an input by reference (its URL) instead of an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRef {
    pub job: JobId,
    /// The output's name in that job.
    pub output: String,
}

/// One step of a pipeline preset: a tool and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainStep {
    pub tool: String,
    #[serde(default)]
    pub params: Value,
}

/// Where a job stands in a pipeline: step `step` (0-based) of `steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chain {
    pub preset: String,
    /// The first step's job name: later steps are `<base>.<n>-<tool>`.
    pub base: String,
    pub step: usize,
    pub steps: Vec<ChainStep>,
    /// The next step was started (or, for a failed step, the later steps were failed).
    #[serde(default)]
    pub handed_on: bool,
}

/// A local input of the job: a dropped file, or a file of a dropped folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputFile {
    /// The name it had in the inbox, shown in the job folder when the job fails.
    pub name: String,
    /// Where it is kept, under the job's folder in the state directory.
    pub path: PathBuf,
    /// The `file_path` it got when uploaded.
    #[serde(default)]
    pub remote: Option<String>,
}

/// An output of the job: shown once `done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFile {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub done: bool,
    /// Removed by an mhfs before the trash existed (its local copy is gone): not shown, not
    /// downloaded again. `rm` now only hides a file (`Job::hidden`).
    #[serde(default)]
    pub removed: bool,
    #[serde(default)]
    pub size: u64,
    /// The downloaded file's modification time: what it shows, kept when the file is evicted
    /// from the local cache (`--cache-size`) and fetched again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<SystemTime>,
}

/// Where a trashed job is: its trash folder (`.Trash-<uid>`) and its name in `files/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trashed {
    pub bin: String,
    pub name: String,
    /// Being emptied by a file manager or `gio trash --empty` (gvfs): moved to
    /// `<bin>/expunged/<this>` before its files are removed; back in `files/` if Magic Hour
    /// does not delete it.
    #[serde(default)]
    pub expunged: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub name: String,
    pub tool: String,
    pub stage: Stage,
    pub status: JobStatus,
    #[serde(default)]
    pub project_id: Option<String>,
    /// What was dropped, or where the job came from.
    pub source: Source,
    pub inputs: Vec<InputFile>,
    /// The create body as sent (after uploads): `request.json`.
    #[serde(default)]
    pub request: Option<JsonText>,
    /// The project as last seen: `job.json`.
    #[serde(default)]
    pub project: Option<JsonText>,
    /// `code: message` when failed.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub outputs: Vec<OutputFile>,
    /// The body with placeholders and the uploads it waits for, made once when staged; dropped
    /// once the create is answered (see `needs_plan`).
    #[serde(default)]
    pub plan: Option<Plan>,
    /// uid and gid of the user who dropped it: the files its JSON names must be theirs to read.
    #[serde(default)]
    pub owner: Option<(u32, u32)>,
    /// uid and gid of the user who wrote each input, by its name in `inputs` (a folder's
    /// `params.json` may come from another user than the folder): the local files a JSON names
    /// are opened with its writer's rights.
    #[serde(default)]
    pub writers: BTreeMap<String, (u32, u32)>,
    /// Names in its folder the user removed (`rm`, `rm -r`, `mv` out of the drive): not listed,
    /// but their data stays on disk until the job's DELETE succeeds; a failed DELETE shows them
    /// again, so the job is whole.
    #[serde(default)]
    pub hidden: BTreeSet<String>,
    /// In the desktop trash (`<mount>/<bin>/files/<name>`) instead of `jobs/`. Nothing is sent
    /// to Magic Hour for trashing or restoring.
    #[serde(default)]
    pub trashed: Option<Trashed>,
    /// Emptied from the trash before it finished: its DELETE is sent once it ends.
    #[serde(default)]
    pub delete_when_done: bool,
    /// What was asked, as a digest (tool, body without its name, the inputs' bytes): two
    /// submissions with the same fingerprint are the same intent, billed once. Set when the
    /// job claims it, after planning.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// The preset this job came from (its folder in the inbox), if any.
    #[serde(default)]
    pub preset: Option<String>,
    /// The preset's parameters: over the tool's defaults, under a dropped JSON's.
    #[serde(default)]
    pub params: Option<Value>,
    /// Its place in a pipeline.
    #[serde(default)]
    pub chain: Option<Chain>,
    /// Inputs (by index) that are outputs of other jobs: passed by URL, not uploaded.
    #[serde(default)]
    pub reuse: std::collections::BTreeMap<usize, OutputRef>,
    /// The price of its create body (`catalog::price`), known once planned.
    #[serde(default)]
    pub expected_credits: Option<i64>,
    /// What the create's answer says was charged.
    #[serde(default)]
    pub credits_charged: Option<i64>,
    /// sha256 of each downloaded output, by name: a copy dropped into an inbox is recognised.
    #[serde(default)]
    pub output_sha256: std::collections::BTreeMap<String, String>,
    /// How long it rendered (create → complete, as polls saw it), in milliseconds: kept so
    /// the poll cadence of its tool is learned across remounts (`typical_render`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_ms: Option<u64>,
    pub created: SystemTime,
    pub updated: SystemTime,
}

impl Job {
    /// A new job of `tool`, staged: nothing sent yet. Its id comes from the store.
    pub fn new(name: String, tool: &Tool, source: Source) -> Job {
        let now = SystemTime::now();
        Job {
            id: 0,
            name,
            tool: tool.slug.to_string(),
            stage: Stage::Staged,
            status: JobStatus::Uploading,
            project_id: None,
            source,
            inputs: vec![],
            request: None,
            project: None,
            error: None,
            outputs: vec![],
            plan: None,
            owner: None,
            writers: BTreeMap::new(),
            hidden: BTreeSet::new(),
            trashed: None,
            delete_when_done: false,
            fingerprint: None,
            preset: None,
            params: None,
            chain: None,
            reuse: Default::default(),
            expected_credits: None,
            credits_charged: None,
            output_sha256: Default::default(),
            render_ms: None,
            created: now,
            updated: now,
        }
    }

    /// Forgets the signed URLs of downloaded outputs: they expire anyway, and whatever needs one
    /// again (a pipeline's next step, fetching an evicted output) asks for a fresh one first.
    /// A few hundred bytes per job, of 10,000 kept in memory.
    pub fn drop_spent_urls(&mut self) {
        for o in self.outputs.iter_mut().filter(|o| o.done) {
            o.url = String::new();
        }
    }

    /// The job's tool; `None` only for a job saved by an mhfs whose catalogue had a tool this
    /// one lacks (such a job is failed when loaded).
    pub fn tool(&self) -> Option<&'static Tool> {
        catalog::tool(&self.tool)
    }

    pub fn kind(&self) -> Option<ProjectKind> {
        self.tool().map(|t| t.kind)
    }

    /// `status` file content.
    pub fn status_text(&self) -> String {
        format!("{}\n", self.status.as_str())
    }

    pub fn error_text(&self) -> Option<String> {
        self.error.as_ref().map(|e| format!("{e}\n"))
    }

    /// Whether its task still has work: uploads, a create, polls or downloads.
    pub fn is_active(&self) -> bool {
        matches!(
            self.stage,
            Stage::Staged | Stage::Uploading | Stage::Creating | Stage::Created
        )
    }

    /// Whether its upload plan may still be read: until the create is answered. Only then is
    /// it sent again (a refused-for-credits or retryable create goes back to `Uploading`).
    pub fn needs_plan(&self) -> bool {
        matches!(
            self.stage,
            Stage::Staged | Stage::Uploading | Stage::Creating
        )
    }

    /// Ends the job in `error` with `code: message`.
    pub fn fail(&mut self, stage: Stage, code: &str, message: &str) {
        self.stage = stage;
        self.status = JobStatus::Error;
        self.error = Some(format!("{code}: {message}"));
    }

    /// Shows the dropped inputs in the job folder when it failed, so nothing is lost.
    pub fn shows_inputs(&self) -> bool {
        self.status == JobStatus::Error || self.stage == Stage::Unknown
    }
}

/// What the engine does next after a poll.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Not finished: poll again later.
    Poll,
    /// Finished with outputs to download.
    Download,
    /// Finished (error, canceled, or complete with nothing left to fetch).
    Stop,
}

/// Applies a polled project to the job: status, `job.json`, outputs, error. Pure, so the rules
/// are unit-tested without a server.
pub fn apply_poll(job: &mut Job, project: &Project, raw: &Value) -> Next {
    job.project = Some(JsonText::new(raw));
    match project.status() {
        Status::Draft | Status::Queued => {
            job.status = JobStatus::Queued;
            Next::Poll
        }
        Status::Rendering => {
            job.status = JobStatus::Rendering;
            Next::Poll
        }
        Status::Complete => {
            let urls = project.download_urls();
            let many = urls.len() > 1;
            for (i, url) in urls.iter().enumerate() {
                let kind = job.kind().unwrap_or(ProjectKind::Image);
                let name = output_name(kind, url, many.then_some(i + 1));
                match job.outputs.get_mut(i) {
                    // Fresh signed URLs replace expired ones; names and progress stay.
                    Some(o) => o.url = url.clone(),
                    None => job.outputs.push(OutputFile {
                        name,
                        url: url.clone(),
                        done: false,
                        removed: false,
                        size: 0,
                        mtime: None,
                    }),
                }
            }
            if job.outputs.iter().all(|o| o.done || o.removed) {
                job.status = JobStatus::Complete;
                job.stage = Stage::Done;
                Next::Stop
            } else {
                job.status = JobStatus::Downloading;
                Next::Download
            }
        }
        Status::Error => {
            let (code, message) = project
                .error()
                .map(|e| (e.code.clone(), e.message.clone()))
                .unwrap_or_else(|| ("unknown_error".into(), "the job failed".into()));
            job.fail(Stage::Done, &code, &message);
            Next::Stop
        }
        Status::Canceled => {
            job.stage = Stage::Done;
            job.status = JobStatus::Canceled;
            job.error = Some("canceled: the job was canceled on Magic Hour".into());
            Next::Stop
        }
    }
}

/// `output.<ext>`, or `output-N.<ext>` when there are several; face crops keep `face-N.png`.
/// The extension comes from the URL, as every official downloader does.
pub fn output_name(kind: ProjectKind, url: &str, index: Option<usize>) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path
        .rsplit('/')
        .next()
        .and_then(|base| base.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "bin".into());
    let stem = if kind == ProjectKind::FaceDetection {
        "face"
    } else {
        "output"
    };
    match (kind, index) {
        (ProjectKind::FaceDetection, None) => format!("{stem}-1.{ext}"),
        (_, Some(i)) => format!("{stem}-{i}.{ext}"),
        (_, None) => format!("{stem}.{ext}"),
    }
}

/// How long to wait before the next poll (README, "Jobs"): images and audio every 3 s, videos
/// every 5 s, backing off by half again per minute of waiting, up to 30 s. `base` overrides the
/// first interval (tests use a short one).
pub fn poll_interval(kind: ProjectKind, waited: Duration, base: Option<Duration>) -> Duration {
    let first = base.unwrap_or(match kind {
        ProjectKind::Video => Duration::from_secs(5),
        _ => Duration::from_secs(3),
    });
    let minutes = (waited.as_secs() / 60).min(10) as i32;
    first
        .mul_f64(1.5f64.powi(minutes))
        .min(Duration::from_secs(30).max(first))
}

/// How many recent render times of a tool its typical time is taken from.
pub const RENDERS_KEPT: usize = 8;

/// A tool's typical render time, from the recent create → complete times seen for it (each
/// seen at a poll, so at most one poll gap late): their median, robust to the odd long job.
/// `None` until one was seen.
pub fn typical_render(seen: &[Duration]) -> Option<Duration> {
    let mut sorted = seen.to_vec();
    sorted.sort();
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

/// The render time a complete job tells of: it finished between the last poll that saw it
/// unfinished and the poll that saw it complete (both counted from its create's answer), so
/// the middle of the two. Taking the later one would teach the cadence its own lateness.
pub fn render_seen(unfinished: Duration, complete: Duration) -> Duration {
    unfinished + complete.saturating_sub(unfinished) / 2
}

/// Like `poll_interval`, for a job created `since_create` ago whose tool typically renders in
/// `typical`: no poll before it is likely done (the typical time and a sixteenth more, 0.1 s to
/// 1 s: a job as long as the median then needs one poll, not two), then polls a short gap apart
/// (an eighth of the typical time, 0.25 s to the documented first interval) until twice the
/// typical time, then the documented cadence. Without a typical time, or with `base` set,
/// `poll_interval`.
pub fn learned_poll_interval(
    kind: ProjectKind,
    since_create: Duration,
    typical: Option<Duration>,
    base: Option<Duration>,
) -> Duration {
    let documented = poll_interval(kind, since_create, base);
    let Some(typical) = typical.filter(|_| base.is_none()) else {
        return documented;
    };
    let first = typical + (typical / 16).clamp(Duration::from_millis(100), Duration::from_secs(1));
    if since_create < first {
        return first - since_create;
    }
    if since_create < typical * 2 + Duration::from_secs(1) {
        return (typical / 8).clamp(Duration::from_millis(250), documented);
    }
    documented
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::{Download, ImageProject, ProjectError};
    use serde_json::json;

    fn job() -> Job {
        let mut j = Job::new(
            "holiday".into(),
            catalog::tool("ai-image-generator").unwrap(),
            Source::Text,
        );
        j.id = 1;
        j.stage = Stage::Created;
        j.status = JobStatus::Queued;
        j.project_id = Some("cabc".into());
        j
    }

    fn project(status: Status, urls: &[&str], error: Option<ProjectError>) -> Project {
        Project::Image(ImageProject {
            id: "cabc".into(),
            name: None,
            status,
            image_count: urls.len() as i64,
            project_type: "AI_IMAGE".into(),
            created_at: String::new(),
            enabled: true,
            credits_charged: 5,
            total_frame_cost: 5,
            downloads: urls
                .iter()
                .map(|u| Download {
                    url: u.to_string(),
                    expires_at: String::new(),
                })
                .collect(),
            error,
        })
    }

    #[test]
    fn poll_moves_status_and_names_outputs() {
        let mut j = job();
        assert_eq!(
            apply_poll(&mut j, &project(Status::Rendering, &[], None), &json!({})),
            Next::Poll
        );
        assert_eq!(j.status, JobStatus::Rendering);
        let urls = ["http://h/x/output-1.png?sig=1", "http://h/x/output-2.PNG"];
        assert_eq!(
            apply_poll(
                &mut j,
                &project(Status::Complete, &urls, None),
                &json!({"a": 1})
            ),
            Next::Download
        );
        assert_eq!(j.status, JobStatus::Downloading);
        let names: Vec<_> = j.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["output-1.png", "output-2.png"]);
        assert_eq!(j.project, Some(json!({"a": 1}).into()));

        // Fresh URLs keep names and progress.
        j.outputs[0].done = true;
        j.outputs[1].done = true;
        let fresh = [
            "http://h/x/output-1.png?sig=2",
            "http://h/x/output-2.png?sig=2",
        ];
        assert_eq!(
            apply_poll(&mut j, &project(Status::Complete, &fresh, None), &json!({})),
            Next::Stop
        );
        assert_eq!(j.status, JobStatus::Complete);
        assert!(j.outputs[0].url.ends_with("sig=2"));
    }

    #[test]
    fn poll_error_writes_code_and_message() {
        let mut j = job();
        let e = ProjectError {
            code: "no_source_face".into(),
            message: "Please use an image with a detectable face".into(),
        };
        assert_eq!(
            apply_poll(&mut j, &project(Status::Error, &[], Some(e)), &json!({})),
            Next::Stop
        );
        assert_eq!(j.status, JobStatus::Error);
        assert_eq!(
            j.error_text().unwrap(),
            "no_source_face: Please use an image with a detectable face\n"
        );
        assert!(j.shows_inputs());
    }

    #[test]
    fn canceled_in_the_web_app_is_canceled_here() {
        let mut j = job();
        assert_eq!(
            apply_poll(&mut j, &project(Status::Canceled, &[], None), &json!({})),
            Next::Stop
        );
        assert_eq!(j.status_text(), "canceled\n");
        assert_eq!(j.stage, Stage::Done);
    }

    #[test]
    fn output_names_take_the_url_extension() {
        assert_eq!(
            output_name(ProjectKind::Video, "https://v/id/output.mp4?x=1", None),
            "output.mp4"
        );
        assert_eq!(
            output_name(ProjectKind::Image, "https://v/id/noext", Some(2)),
            "output-2.bin"
        );
        assert_eq!(
            output_name(ProjectKind::FaceDetection, "https://v/a/0-1.png", Some(2)),
            "face-2.png"
        );
    }

    #[test]
    fn the_typical_render_is_the_median_of_those_seen() {
        let s = Duration::from_secs;
        assert_eq!(typical_render(&[]), None);
        assert_eq!(typical_render(&[s(4)]), Some(s(4)));
        assert_eq!(typical_render(&[s(9), s(4), s(5)]), Some(s(5)));
        assert_eq!(typical_render(&[s(4), s(60), s(5), s(4)]), Some(s(4)));
    }

    #[test]
    fn a_render_is_seen_between_the_last_two_polls() {
        let ms = Duration::from_millis;
        assert_eq!(render_seen(ms(0), ms(40)), ms(20));
        assert_eq!(render_seen(ms(3000), ms(6000)), ms(4500));
        assert_eq!(render_seen(ms(3000), ms(3000)), ms(3000));
    }

    #[test]
    fn a_learned_cadence_waits_for_the_typical_time_then_polls_closely() {
        let ms = Duration::from_millis;
        let img = ProjectKind::Image;
        // Nothing learned, or an explicit base: the documented cadence.
        assert_eq!(learned_poll_interval(img, ms(0), None, None), ms(3000));
        assert_eq!(
            learned_poll_interval(img, ms(0), Some(ms(4000)), Some(ms(100))),
            ms(100)
        );
        // Before the typical time and a sixteenth (0.1 s to 1 s): wait until then.
        assert_eq!(
            learned_poll_interval(img, ms(100), Some(ms(4000)), None),
            ms(4150)
        );
        assert_eq!(
            learned_poll_interval(img, ms(10), Some(ms(0)), None),
            ms(90)
        );
        // Past it: an eighth of it, at least 0.25 s, at most the documented interval.
        assert_eq!(
            learned_poll_interval(img, ms(4250), Some(ms(4000)), None),
            ms(500)
        );
        assert_eq!(
            learned_poll_interval(img, ms(200), Some(ms(0)), None),
            ms(250)
        );
        let video = ProjectKind::Video;
        assert_eq!(
            learned_poll_interval(video, ms(120_000), Some(ms(100_000)), None),
            poll_interval(video, ms(120_000), None).min(ms(12_500))
        );
        // Long past twice the typical time: the documented cadence again.
        assert_eq!(
            learned_poll_interval(img, ms(20_000), Some(ms(4000)), None),
            ms(3000)
        );
    }

    #[test]
    fn polls_back_off_for_long_jobs() {
        let img = poll_interval(ProjectKind::Image, Duration::ZERO, None);
        assert_eq!(img, Duration::from_secs(3));
        assert_eq!(
            poll_interval(ProjectKind::Video, Duration::ZERO, None),
            Duration::from_secs(5)
        );
        let later = poll_interval(ProjectKind::Video, Duration::from_secs(180), None);
        assert!(later > Duration::from_secs(5) && later <= Duration::from_secs(30));
        assert_eq!(
            poll_interval(ProjectKind::Video, Duration::from_secs(3600), None),
            Duration::from_secs(30)
        );
    }
}
