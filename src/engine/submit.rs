//! Turns what was dropped into a create body: the tool's defaults, the dropped text or JSON,
//! and the inputs, with a note of which JSON locations still need an uploaded `file_path`.
//! Every refusal here happens before anything is billed and names exactly what is wrong.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::job::{InputFile, Job, Plan, PlannedUpload, Source};
use super::names::is_scratch;
use crate::api::catalog::{Input, Media, Overrides, Tool, get_path, merge, set_path};
use crate::api::schema::{schema_for, validate_create};
use crate::media::{self, Mismatch};

/// Why a submission cannot be made: `code: message` for the job's `error` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

pub fn extension(name: &str) -> String {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

pub fn stem(name: &str) -> &str {
    Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(name)
}

/// What kind of file a name is for a tool, decided by its extension alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FileRole {
    Media(Media),
    Text,
    Json,
}

/// Whether a tool takes a file of this name (in its inbox folder), and as what.
pub fn role_of(tool: &Tool, name: &str) -> Option<FileRole> {
    let ext = extension(name);
    match ext.as_str() {
        "txt" if tool.text.is_some() => Some(FileRole::Text),
        "json" => Some(FileRole::Json),
        _ => tool
            .inputs
            .iter()
            .flat_map(|i| i.media.iter())
            .find(|m| m.accepts(&ext))
            .map(|m| FileRole::Media(*m)),
    }
}

/// Whether a dropped folder holds enough to try: a file for every required input (by role
/// name or media type) and a text when one is required. `plan` then checks it exactly.
pub fn folder_ready(tool: &Tool, names: &[String]) -> bool {
    let media_files = names
        .iter()
        .filter(|n| matches!(role_of(tool, n), Some(FileRole::Media(_))))
        .count();
    let inputs_ok = tool.required_inputs().all(|input| {
        names.iter().any(|n| {
            let ext = extension(n);
            input.media.iter().any(|m| m.accepts(&ext))
        })
    }) && media_files >= tool.required_inputs().count();
    let text_ok = !tool.text.is_some_and(|t| t.required)
        || names
            .iter()
            .any(|n| role_of(tool, n) == Some(FileRole::Text))
        || names
            .iter()
            .any(|n| stem(n) == "params" && extension(n) == "json");
    inputs_ok && text_ok
}

/// The file name a role takes in a folder, with its most common extension (`video.mp4`).
fn role_file(input: &Input) -> String {
    let ext = match input.media.first() {
        Some(Media::Video) => "mp4",
        Some(Media::Audio) => "mp3",
        _ => "png",
    };
    format!("{}.{ext}", input.role)
}

/// What a tool takes, in a few words: `image + video`, `image + prompt.txt`.
pub fn takes(tool: &Tool) -> String {
    let mut parts: Vec<String> = tool.required_inputs().map(|i| i.role.to_string()).collect();
    if tool.text.is_some_and(|t| t.required) {
        parts.push("prompt.txt".into());
    }
    parts.join(" + ")
}

/// How to submit to a tool that needs a folder: `this tool takes two inputs: make a folder with
/// image.png and video.mp4`.
pub fn folder_hint(tool: &Tool) -> String {
    let mut files: Vec<String> = tool.required_inputs().map(role_file).collect();
    if tool.text.is_some_and(|t| t.required) {
        files.push("prompt.txt".into());
    }
    let n = match files.len() {
        2 => "two".to_string(),
        3 => "three".to_string(),
        n => n.to_string(),
    };
    format!(
        "this tool takes {n} inputs: make a folder with {} (mkdir inbox/{}/<name>, then put them in it)",
        files.join(" and "),
        tool.slug
    )
}

/// What an inbox folder still needs before it is submitted (`None`: nothing), in the user's
/// terms: `a video (video.mp4)`. Files named by role fill their role; the others fill a
/// required input of their type, one file each.
pub fn folder_needs(tool: &Tool, names: &[String]) -> Option<String> {
    let names: Vec<&String> = names.iter().filter(|n| !is_scratch(n)).collect();
    let mut used = vec![false; names.len()];
    let required: Vec<&Input> = tool.required_inputs().collect();
    let mut filled = vec![false; required.len()];
    for (k, input) in required.iter().enumerate() {
        if let Some(j) = names.iter().position(|n| {
            stem(n) == input.role && input.media.iter().any(|m| m.accepts(&extension(n)))
        }) {
            filled[k] = true;
            used[j] = true;
        }
    }
    for (k, input) in required.iter().enumerate() {
        if filled[k] {
            continue;
        }
        let free = names.iter().enumerate().position(|(j, n)| {
            !used[j]
                && tool.input_by_role(stem(n)).is_none()
                && input.media.iter().any(|m| m.accepts(&extension(n)))
        });
        if let Some(j) = free {
            filled[k] = true;
            used[j] = true;
        }
    }
    let mut missing: Vec<String> = required
        .iter()
        .zip(&filled)
        .filter(|(_, f)| !**f)
        .map(|(i, _)| {
            let what = i.media.first().map_or("file", |m| m.as_str());
            let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            format!("{article} {what} ({})", role_file(i))
        })
        .collect();
    let text_ok = !tool.text.is_some_and(|t| t.required)
        || names
            .iter()
            .any(|n| role_of(tool, n) == Some(FileRole::Text))
        || names
            .iter()
            .any(|n| stem(n) == "params" && extension(n) == "json");
    if !text_ok {
        missing.push("a prompt (prompt.txt)".into());
    }
    (!missing.is_empty()).then(|| missing.join(" and "))
}

/// Every extension a tool's inbox folder takes, for messages.
pub fn accepted(tool: &Tool) -> String {
    let mut exts = tool.accepted_extensions();
    if tool.text.is_some() {
        exts.push("txt");
    }
    exts.push("json");
    exts.join(", ")
}

fn read_text(path: &Path, max: Option<usize>, field: &str) -> Result<String, Refusal> {
    let bytes = std::fs::read(path).map_err(|e| refuse("unreadable_input", e.to_string()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| refuse("invalid_text", "the text file is not UTF-8"))?
        .trim()
        .to_string();
    if text.is_empty() {
        return Err(refuse("empty_text", "the text file holds only white space"));
    }
    let n = text.chars().count();
    if let Some(max) = max.filter(|m| n > *m) {
        return Err(refuse(
            "text_too_long",
            format!("{field} is {n} characters long; this tool takes at most {max}"),
        ));
    }
    Ok(text)
}

fn set_text(tool: &Tool, body: &mut Value, path: &Path) -> Result<(), Refusal> {
    let text = tool
        .text
        .ok_or_else(|| refuse("unexpected_text", format!("{} takes no text", tool.slug)))?;
    let value = read_text(path, text.max_chars, text.field)?;
    set_path(body, text.field, json!(value));
    Ok(())
}

fn pointer(field: &str, index: Option<usize>) -> String {
    let mut p: String = field.split('.').map(|k| format!("/{k}")).collect();
    if let Some(i) = index {
        p.push_str(&format!("/{i}"));
    }
    p
}

/// A placeholder `file_path` that passes validation until the real one is known.
fn placeholder(name: &str) -> Value {
    json!(format!("api-assets/pending/{}", name.replace('/', "_")))
}

fn put_input(
    body: &mut Value,
    plan: &mut Vec<PlannedUpload>,
    input: &Input,
    files: &[(usize, &InputFile, Media)],
) {
    if input.list {
        let values: Vec<Value> = files.iter().map(|(_, f, _)| placeholder(&f.name)).collect();
        set_path(body, input.field, Value::Array(values));
        for (n, (i, _, media)) in files.iter().enumerate() {
            plan.push(PlannedUpload {
                pointer: pointer(input.field, Some(n)),
                input: *i,
                media: *media,
            });
        }
    } else if let Some((i, f, media)) = files.first() {
        set_path(body, input.field, placeholder(&f.name));
        plan.push(PlannedUpload {
            pointer: pointer(input.field, None),
            input: *i,
            media: *media,
        });
    }
    if let Some((field, value)) = input.implies.filter(|_| !files.is_empty()) {
        set_path(body, field, json!(value));
    }
}

/// Builds the plan for a job from its staged inputs. `source` is `file`, `text`, `json` or
/// `folder`. JSON bodies may reference local files; those are copied into `input_dir` and
/// added to `inputs` so they are kept with the job.
pub fn plan(job: &mut Job, input_dir: &Path, defaults: &Overrides) -> Result<Plan, Refusal> {
    let Some(tool) = job.tool() else {
        return Err(refuse("unknown_tool", format!("no tool {:?}", job.tool)));
    };
    if job.inputs.is_empty() {
        return Err(refuse("input_lost", "the job has no input file"));
    }
    let mut body = defaults.body(tool);
    // A preset's parameters: over the defaults, under a dropped JSON's own.
    if let Some(params) = &job.params {
        crate::api::catalog::merge(&mut body, params);
    }
    let mut uploads = Vec::new();
    // Whether the user's own JSON (a dropped body or params.json) gave `end_seconds`.
    let mut explicit_end = false;
    match job.source {
        Source::Text => set_text(tool, &mut body, &job.inputs[0].path)?,
        Source::Json => {
            explicit_end = json_body(tool, job, &mut body, &mut uploads, input_dir, None)?;
        }
        Source::File | Source::Step => {
            let f = &job.inputs[0];
            let Some(FileRole::Media(media)) = role_of(tool, &f.name) else {
                return Err(refuse(
                    "invalid_file_type",
                    format!("{} takes {}", tool.slug, accepted(tool)),
                ));
            };
            let input = tool.input_for(media).expect("role_of found an input");
            put_input(&mut body, &mut uploads, input, &[(0, f, media)]);
        }
        Source::Folder => {
            explicit_end = folder_body(tool, job, &mut body, &mut uploads, input_dir)?;
        }
        Source::Adopted => {
            return Err(refuse(
                "internal_error",
                "an adopted job has no body to make",
            ));
        }
    }
    if body.get("name").is_none() {
        body["name"] = json!(job.name);
    }
    check_complete(tool, &body).map_err(|mut r| {
        // A single file dropped into a tool that needs a folder: say how to do it.
        if matches!(job.source, Source::File | Source::Text) && tool.needs_folder() {
            r.message = format!("{}: {}", r.message, folder_hint(tool));
        }
        r
    })?;
    check_media(job, &uploads)?;
    clip_length(tool, job, &mut body, &uploads, explicit_end)?;
    validate_create(&tool.create_path(), &body)
        .map_err(|e| refuse("invalid_request", e.message))?;
    Ok(Plan { body, uploads })
}

/// The price a dropped file would have, before it is submitted (for the budget at close):
/// the body is planned as the engine will plan it (a media file's clip length is measured),
/// except that a dropped JSON is merged over the defaults without resolving its local files.
/// `None` when no body can be made (the engine will say why).
pub fn estimate(
    tool: &'static Tool,
    params: Option<&Value>,
    defaults: &Overrides,
    path: &Path,
    name: &str,
) -> Option<i64> {
    let source = match role_of(tool, name)? {
        FileRole::Json => {
            let mut body = defaults.body(tool);
            if let Some(p) = params {
                crate::api::catalog::merge(&mut body, p);
            }
            let user: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
            crate::api::catalog::merge(&mut body, &user);
            return Some(crate::api::catalog::price(tool, &body));
        }
        FileRole::Text => Source::Text,
        FileRole::Media(_) => Source::File,
    };
    let mut job = Job::new(stem(name).to_string(), tool, source);
    job.params = params.cloned();
    job.inputs.push(InputFile {
        name: name.to_string(),
        path: path.to_path_buf(),
        remote: None,
    });
    let dir = path.parent()?;
    let plan = plan(&mut job, dir, defaults).ok()?;
    Some(crate::api::catalog::price(tool, &plan.body))
}

/// The price of a later pipeline step, before its input exists: its parameters over the
/// defaults (a clip tool's length is its default).
pub fn step_estimate(tool: &Tool, params: &Value, defaults: &Overrides) -> i64 {
    let mut body = defaults.body(tool);
    crate::api::catalog::merge(&mut body, params);
    crate::api::catalog::price(tool, &body)
}

/// The job error code of a file whose bytes are not the media its name says.
pub fn invalid_file_code(media: Media) -> &'static str {
    match media {
        Media::Image => "invalid_image_file",
        Media::Video => "invalid_video_file",
        Media::Audio => "invalid_audio_file",
    }
}

/// How an input is called in messages: its inbox name (a JSON reference by its own name).
fn shown_name(job: &Job, input: usize) -> &str {
    let name = job.inputs[input].name.as_str();
    name.strip_prefix(&format!("ref-{input}-")).unwrap_or(name)
}

/// Every file to upload must be, by its first bytes, the media its name (or role) says: a
/// JPEG named `.mov` is refused here, before anything is uploaded or billed.
fn check_media(job: &Job, uploads: &[PlannedUpload]) -> Result<(), Refusal> {
    for up in uploads {
        let file = &job.inputs[up.input];
        media::check(&file.path, up.media, shown_name(job, up.input)).map_err(|m| match m {
            Mismatch::Unreadable { .. } => refuse("unreadable_input", m.to_string()),
            Mismatch::Wrong { .. } | Mismatch::Unknown { .. } => {
                refuse(invalid_file_code(up.media), m.to_string())
            }
        })?;
    }
    Ok(())
}

/// How far an explicit `end_seconds` may pass the input's measured length (container
/// rounding).
pub const CLIP_SLACK: f64 = 0.05;

/// `end_seconds`'s minimum and maximum in the tool's create schema; `None` when the body has
/// no `end_seconds`.
fn end_limits(tool: &Tool) -> Option<(Option<f64>, Option<f64>)> {
    let end = schema_for(&tool.create_path())?
        .get("properties")?
        .get("end_seconds")?;
    Some((
        end.get("minimum").and_then(Value::as_f64),
        end.get("maximum").and_then(Value::as_f64),
    ))
}

/// The length that decides a clip tool's `end_seconds`: the first video input's, else the
/// first audio input's; lip-sync, which needs both, takes the shorter. `None` when no local
/// input has a measurable length (stills, URLs, streams without a length).
fn clip_source(tool: &Tool, job: &Job, uploads: &[PlannedUpload]) -> Option<(f64, String)> {
    let of = |media: Media| uploads.iter().filter(move |u| u.media == media);
    let candidates: Vec<&PlannedUpload> = if tool.slug == "lip-sync" {
        of(Media::Video)
            .take(1)
            .chain(of(Media::Audio).take(1))
            .collect()
    } else {
        of(Media::Video)
            .take(1)
            .chain(of(Media::Audio).take(1))
            .take(1)
            .collect()
    };
    candidates
        .into_iter()
        .filter_map(|u| {
            let name = shown_name(job, u.input).to_string();
            match media::duration(&job.inputs[u.input].path) {
                Ok(Some(secs)) => Some((secs, name)),
                Ok(None) => None,
                Err(e) => {
                    log::warn!("job {}: cannot read the length of {name}: {e}", job.name);
                    None
                }
            }
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// Seconds as sent: whole milliseconds, never past the measured length.
fn millis(secs: f64) -> Value {
    let ms = (secs * 1000.0).floor() / 1000.0;
    if ms.fract() == 0.0 && ms.abs() < 1e15 {
        json!(ms as i64)
    } else {
        json!(ms)
    }
}

/// What `end_seconds` becomes for a clip of `len` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ClipEnd {
    /// The user gave it, and it fits the clip.
    Keep,
    /// The clip's own length.
    Set(f64),
    /// The clip is longer than the tool takes: its maximum.
    Clamped(f64),
}

/// The clip-length rules, pure: `explicit` is the user's `end_seconds`, `min`/`max` the
/// tool's limits. Refusals name both lengths.
fn clip_end(
    len: f64,
    name: &str,
    slug: &str,
    start: f64,
    explicit: Option<f64>,
    (min, max): (Option<f64>, Option<f64>),
) -> Result<ClipEnd, Refusal> {
    if start >= len {
        return Err(refuse(
            "invalid_request",
            format!("start_seconds is {start} s but {name} is only {len:.2} s long"),
        ));
    }
    if let Some(end) = explicit {
        if end > len + CLIP_SLACK {
            return Err(refuse(
                "invalid_request",
                format!(
                    "end_seconds is {end} s but {name} is only {len:.2} s long; give at most \
                     {len:.2}, or leave end_seconds out to use the whole clip"
                ),
            ));
        }
        return Ok(ClipEnd::Keep);
    }
    let (end, clamped) = match max {
        Some(max) if len > max => (max, true),
        _ => (len, false),
    };
    if let Some(min) = min.filter(|min| end < *min) {
        return Err(refuse(
            "invalid_request",
            format!("{name} is only {len:.2} s long; {slug} takes clips of at least {min} s"),
        ));
    }
    if end <= start {
        return Err(refuse(
            "invalid_request",
            format!(
                "start_seconds is {start} s, at or past the end of the clip ({end} s of {name})"
            ),
        ));
    }
    Ok(if clamped {
        ClipEnd::Clamped(end)
    } else {
        ClipEnd::Set(end)
    })
}

/// Media-aware clip length. A tool whose body has `end_seconds` and that takes a video or
/// audio input gets, unless the user's JSON gave one, the input's real length (clamped to the
/// tool's maximum, which the log says). An explicit `end_seconds` past the input's end, a
/// `start_seconds` at or past it, or an input shorter than the tool's minimum is refused here,
/// before anything is billed.
fn clip_length(
    tool: &Tool,
    job: &Job,
    body: &mut Value,
    uploads: &[PlannedUpload],
    explicit_end: bool,
) -> Result<(), Refusal> {
    let Some(limits) = end_limits(tool) else {
        return Ok(());
    };
    let Some((len, name)) = clip_source(tool, job, uploads) else {
        return Ok(());
    };
    let start = body
        .get("start_seconds")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let explicit = if explicit_end {
        match body.get("end_seconds").and_then(Value::as_f64) {
            Some(end) => Some(end),
            // Not a number: the schema check says so.
            None => return Ok(()),
        }
    } else {
        None
    };
    match clip_end(len, &name, tool.slug, start, explicit, limits)? {
        ClipEnd::Keep => {}
        ClipEnd::Set(end) => body["end_seconds"] = millis(end),
        ClipEnd::Clamped(end) => {
            log::warn!(
                "job {}: {name} is {len:.2} s long; {} takes at most {end} s, so end_seconds is \
                 {end} (the first {end} s)",
                job.name,
                tool.slug
            );
            body["end_seconds"] = millis(end);
        }
    }
    Ok(())
}

/// The name a job was dropped as, in the tool's inbox folder: the file, or the folder.
pub fn dropped_name(job: &Job) -> String {
    let first = job.inputs.first().map(|f| f.name.as_str()).unwrap_or("");
    match job.source {
        Source::Folder => first.split('/').next().unwrap_or(first).to_string(),
        _ => first.to_string(),
    }
}

/// The deliberate rerun gesture: a dropped name whose stem ends in `.again`
/// (`lighthouse.again.txt`, a folder `face.again/`). Such a job skips the duplicate check.
pub fn is_rerun(job: &Job) -> bool {
    let name = dropped_name(job);
    let stem = match job.source {
        Source::Folder => name.as_str(),
        _ => stem(&name),
    };
    stem.ends_with(".again")
}

/// The name to drop a file (or folder) as to run it again on purpose.
pub fn rerun_name(job: &Job) -> String {
    let name = dropped_name(job);
    let ext = extension(&name);
    match job.source {
        Source::Folder => format!("{name}.again"),
        _ if ext.is_empty() => format!("{}.again", stem(&name)),
        _ => format!("{}.again.{ext}", stem(&name)),
    }
}

/// What a planned job asks for, as one digest: sha256 over the tool, then the effective body
/// without its `name`, each local input's placeholder replaced by the sha256 of its bytes.
/// Files are hashed as they are read, never held whole. Two jobs with the same fingerprint are
/// the same intent.
pub fn fingerprint(tool: &str, plan: &Plan, inputs: &[InputFile]) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut body = plan.body.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("name");
    }
    for up in &plan.uploads {
        let digest = file_sha256(&inputs[up.input].path)?;
        if let Some(slot) = body.pointer_mut(&up.pointer) {
            *slot = json!(format!("sha256:{digest}"));
        }
    }
    let mut h = Sha256::new();
    h.update(tool.as_bytes());
    h.update([0u8]);
    canonical(&body, &mut |bytes| h.update(bytes));
    Ok(hex::encode(h.finalize()))
}

/// Feeds a JSON value with object keys in sorted order, whatever the map keeps.
fn canonical(v: &Value, out: &mut dyn FnMut(&[u8])) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out(b"{");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out(b",");
                }
                out(Value::String(k.clone()).to_string().as_bytes());
                out(b":");
                canonical(&map[k], out);
            }
            out(b"}");
        }
        Value::Array(items) => {
            out(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out(b",");
                }
                canonical(item, out);
            }
            out(b"]");
        }
        other => out(other.to_string().as_bytes()),
    }
}

pub(crate) fn file_sha256(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Names what a tool still misses, in the user's terms.
fn check_complete(tool: &Tool, body: &Value) -> Result<(), Refusal> {
    let missing: Vec<String> = tool
        .required_inputs()
        .filter(|i| get_path(body, i.field).is_none())
        .map(|i| {
            let exts: Vec<&str> = i
                .media
                .iter()
                .flat_map(|m| m.extensions().iter().copied())
                .collect();
            format!("{} ({})", i.role, exts.join(", "))
        })
        .chain(
            tool.text
                .filter(|t| t.required && get_path(body, t.field).is_none())
                .map(|t| format!("a text for {} (prompt.txt)", t.field)),
        )
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(refuse(
            "missing_input",
            format!("{} needs {}", tool.slug, missing.join(" and ")),
        ))
    }
}

fn folder_body(
    tool: &Tool,
    job: &mut Job,
    body: &mut Value,
    uploads: &mut Vec<PlannedUpload>,
    input_dir: &Path,
) -> Result<bool, Refusal> {
    // Role-named files first, then the rest by media type.
    let mut by_input: Vec<Vec<(usize, InputFile, Media)>> = vec![Vec::new(); tool.inputs.len()];
    let mut unplaced = Vec::new();
    let mut params = None;
    for (i, f) in job.inputs.iter().enumerate() {
        match role_of(tool, &f.name) {
            Some(FileRole::Json) if stem(&f.name) == "params" => params = Some(i),
            Some(FileRole::Text) => set_text(tool, body, &f.path)?,
            Some(FileRole::Media(media)) => {
                let role = stem(&f.name);
                match tool.inputs.iter().position(|inp| {
                    inp.role == role && inp.media.iter().any(|m| m.accepts(&extension(&f.name)))
                }) {
                    Some(k) => {
                        by_input[k].push((i, f.clone(), media_for(&tool.inputs[k], &f.name, media)))
                    }
                    None => unplaced.push((i, f.clone(), media)),
                }
            }
            _ => {
                return Err(refuse(
                    "unexpected_file",
                    format!(
                        "{} is not a role of {} ({}) nor params.json or prompt.txt",
                        f.name,
                        tool.slug,
                        roles(tool)
                    ),
                ));
            }
        }
    }
    for (i, f, media) in unplaced {
        let ext = extension(&f.name);
        let fits: Vec<usize> = (0..tool.inputs.len())
            .filter(|k| tool.inputs[*k].media.iter().any(|m| m.accepts(&ext)))
            .filter(|k| tool.inputs[*k].list || by_input[*k].is_empty())
            .collect();
        match fits.as_slice() {
            [k] => {
                let media = media_for(&tool.inputs[*k], &f.name, media);
                by_input[*k].push((i, f, media));
            }
            [] => {
                return Err(refuse(
                    "unexpected_file",
                    format!(
                        "{}: no input of {} left for it ({})",
                        f.name,
                        tool.slug,
                        roles(tool)
                    ),
                ));
            }
            _ => {
                return Err(refuse(
                    "ambiguous_file",
                    format!(
                        "{}: name it by its role ({}) so mhfs knows which input it is",
                        f.name,
                        roles(tool)
                    ),
                ));
            }
        }
    }
    for (k, files) in by_input.iter_mut().enumerate() {
        files.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        let refs: Vec<(usize, &InputFile, Media)> =
            files.iter().map(|(i, f, m)| (*i, f, *m)).collect();
        put_input(body, uploads, &tool.inputs[k], &refs);
    }
    match params {
        Some(i) => json_body(tool, job, body, uploads, input_dir, Some(i)),
        None => Ok(false),
    }
}

/// The media type an input takes a file as (webm is video or audio depending on the input).
fn media_for(input: &Input, name: &str, guess: Media) -> Media {
    let ext = extension(name);
    input
        .media
        .iter()
        .copied()
        .find(|m| m.accepts(&ext))
        .unwrap_or(guess)
}

fn roles(tool: &Tool) -> String {
    tool.inputs
        .iter()
        .map(|i| i.role)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Merges a dropped JSON body (or a folder's params.json) into `body`, and plans uploads for
/// its local file references. `true` when it gives `end_seconds` itself.
fn json_body(
    tool: &Tool,
    job: &mut Job,
    body: &mut Value,
    uploads: &mut Vec<PlannedUpload>,
    input_dir: &Path,
    index: Option<usize>,
) -> Result<bool, Refusal> {
    let file = job.inputs[index.unwrap_or(0)].clone();
    let text = std::fs::read_to_string(&file.path)
        .map_err(|e| refuse("unreadable_input", format!("{}: {e}", file.name)))?;
    let user: Value = serde_json::from_str(&text)
        .map_err(|e| refuse("invalid_json", format!("{}: {e}", file.name)))?;
    if !user.is_object() {
        return Err(refuse(
            "invalid_json",
            format!("{}: the body must be a JSON object", file.name),
        ));
    }
    merge(body, &user);
    let explicit_end = user.get("end_seconds").is_some_and(|v| !v.is_null());
    // The folder the JSON was dropped in, to resolve relative references.
    let base = job.inputs[index.unwrap_or(0)]
        .name
        .rsplit_once('/')
        .map(|(dir, _)| PathBuf::from(dir));
    for (ptr, media) in asset_pointers(tool, body) {
        let Some(value) = body.pointer(&ptr).and_then(Value::as_str).map(String::from) else {
            continue;
        };
        if is_remote(&value) {
            continue;
        }
        // Opened with the rights of the user who wrote the JSON (the kernel decides).
        let writer = job.writers.get(&file.name).copied().or(job.owner);
        let mut source = resolve_local(&value, job, base.as_deref(), writer)?;
        let name = Path::new(&value)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| value.clone());
        let ext = extension(&name);
        let Some(media) = media.iter().copied().find(|m| m.accepts(&ext)) else {
            return Err(refuse(
                "invalid_file_type",
                format!("{value} is not a {} file", media[0].as_str()),
            ));
        };
        let n = job.inputs.len();
        let dot_ext = Path::new(&name)
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        let kept_name = super::names::fit_name(&format!("ref-{n}-{}", stem(&name)), &dot_ext);
        let kept = input_dir.join(&kept_name);
        copy_private(&mut source, &kept)
            .map_err(|e| refuse("unreadable_reference", format!("{value}: {e}")))?;
        job.inputs.push(InputFile {
            name: kept_name,
            path: kept,
            remote: None,
        });
        *body.pointer_mut(&ptr).expect("just read") = placeholder(&name);
        uploads.push(PlannedUpload {
            pointer: ptr,
            input: n,
            media,
        });
    }
    Ok(explicit_end)
}

/// Values the API takes as they are: uploaded paths, URLs, library and saved-item paths.
fn is_remote(v: &str) -> bool {
    [
        "http://",
        "https://",
        "api-assets/",
        "saved-items/",
        "image/",
        "video/",
        "audio/",
    ]
    .iter()
    .any(|p| v.starts_with(p))
}

/// Copies an opened reference into the job (mode 0600: the state directory is mhfs's own).
fn copy_private(source: &mut std::fs::File, kept: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(kept)?;
    std::io::copy(source, &mut out)
}

/// Opens a local file a JSON names: another file dropped with it (relative), or any file the
/// JSON's writer may read (absolute), opened with that user's uid, gid and groups, so the kernel
/// decides (every directory of the path must be searchable by them). No writer known: mhfs's
/// own rights.
fn resolve_local(
    value: &str,
    job: &Job,
    base: Option<&Path>,
    writer: Option<(u32, u32)>,
) -> Result<std::fs::File, Refusal> {
    let path = Path::new(value);
    let opened = if path.is_absolute() {
        match writer {
            Some((uid, gid)) => super::creds::open_as(path, super::creds::Caller { uid, gid }),
            None => super::creds::open_regular(path),
        }
    } else {
        // Relative: another file dropped with it (a folder's file).
        let rel = base
            .map(|b| b.join(path))
            .unwrap_or_else(|| path.to_path_buf());
        let rel = rel.to_string_lossy().to_string();
        match job
            .inputs
            .iter()
            .find(|f| f.name == rel || f.name.ends_with(&format!("/{value}")))
        {
            Some(f) => std::fs::File::open(&f.path),
            None => {
                return Err(refuse(
                    "unreadable_reference",
                    format!(
                        "{value}: no such file beside the JSON (give an absolute path, a URL or an api-assets/ path)"
                    ),
                ));
            }
        }
    };
    let file = opened.map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => refuse(
            "unreadable_reference",
            format!(
                "{value}: permission denied (the user who dropped the JSON cannot read it: {e})"
            ),
        ),
        _ => refuse("unreadable_reference", format!("{value}: {e}")),
    })?;
    match file.metadata() {
        Ok(m) if m.is_file() => Ok(file),
        Ok(_) => Err(refuse(
            "unreadable_reference",
            format!("{value} is not a file"),
        )),
        Err(e) => Err(refuse("unreadable_reference", format!("{value}: {e}"))),
    }
}

/// JSON pointers of every asset field present in a body, with the media each takes.
fn asset_pointers(tool: &Tool, body: &Value) -> Vec<(String, &'static [Media])> {
    let mut out = Vec::new();
    for input in tool.inputs {
        match get_path(body, input.field) {
            Some(Value::Array(items)) => {
                out.extend((0..items.len()).map(|i| (pointer(input.field, Some(i)), input.media)));
            }
            Some(Value::String(_)) => out.push((pointer(input.field, None), input.media)),
            _ => {}
        }
    }
    const IMAGE: &[Media] = &[Media::Image];
    const ANY: &[Media] = &[Media::Image, Media::Video, Media::Audio];
    if let Some(Value::Array(maps)) = get_path(body, "assets.face_mappings") {
        out.extend((0..maps.len()).map(|i| (format!("/assets/face_mappings/{i}/new_face"), IMAGE)));
    }
    if let Some(Value::Array(refs)) = body.get("references") {
        out.extend((0..refs.len()).map(|i| (format!("/references/{i}/file_path"), ANY)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_folder_names_what_it_still_needs() {
        let swap = crate::api::catalog::tool("face-swap").unwrap();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            folder_needs(swap, &names(&["image.png"])).as_deref(),
            Some("a video (video.mp4)")
        );
        assert_eq!(
            folder_needs(swap, &names(&[])).as_deref(),
            Some("an image (image.png) and a video (video.mp4)")
        );
        assert_eq!(folder_needs(swap, &names(&["me.jpg", "clip.mov"])), None);
        assert_eq!(takes(swap), "image + video");
        assert_eq!(
            folder_hint(swap),
            "this tool takes two inputs: make a folder with image.png and video.mp4 \
             (mkdir inbox/face-swap/<name>, then put them in it)"
        );
        let editor = crate::api::catalog::tool("ai-image-editor").unwrap();
        assert_eq!(
            folder_needs(editor, &names(&["a.png"])).as_deref(),
            Some("a prompt (prompt.txt)")
        );
    }
    use crate::mock::media as sample;

    fn png() -> Vec<u8> {
        sample::draw("p", 1, 32, 32)
    }

    fn job(tool: &str, source: Source, files: &[(&str, &[u8])], dir: &Path) -> Job {
        let inputs = files
            .iter()
            .map(|(name, bytes)| {
                let path = dir.join(name.replace('/', "_"));
                std::fs::write(&path, bytes).unwrap();
                InputFile {
                    name: name.to_string(),
                    path,
                    remote: None,
                }
            })
            .collect();
        let mut job = Job::new("j".into(), crate::api::catalog::tool(tool).unwrap(), source);
        job.id = 1;
        job.inputs = inputs;
        job
    }

    #[test]
    fn a_photo_fills_the_image_input() {
        let d = tempfile::tempdir().unwrap();
        let mut j = job(
            "ai-image-upscaler",
            Source::File,
            &[("holiday.jpg", &png())],
            d.path(),
        );
        let p = plan(&mut j, d.path(), &Overrides::default()).unwrap();
        assert_eq!(p.body["scale_factor"], json!(2));
        assert_eq!(p.body["name"], json!("j"));
        assert_eq!(
            p.uploads,
            vec![PlannedUpload {
                pointer: "/assets/image_file_path".into(),
                input: 0,
                media: Media::Image
            }]
        );
    }

    #[test]
    fn a_text_is_the_prompt_and_its_length_is_checked() {
        let d = tempfile::tempdir().unwrap();
        let mut j = job(
            "ai-image-generator",
            Source::Text,
            &[("cat.txt", b"a cat\n")],
            d.path(),
        );
        let p = plan(&mut j, d.path(), &Overrides::default()).unwrap();
        assert_eq!(p.body["style"]["prompt"], json!("a cat"));
        assert!(p.uploads.is_empty());
        let long = "x".repeat(501);
        let mut j = job(
            "ai-gif-generator",
            Source::Text,
            &[("g.txt", long.as_bytes())],
            d.path(),
        );
        assert_eq!(
            plan(&mut j, d.path(), &Overrides::default())
                .unwrap_err()
                .code,
            "text_too_long"
        );
    }

    #[test]
    fn a_folder_takes_role_names_and_media_types() {
        let d = tempfile::tempdir().unwrap();
        let (i, v) = (png(), sample::mp4(4.0, 32, 32, 1));
        let mut j = job(
            "face-swap",
            Source::Folder,
            &[
                ("me/face.png", &i),
                ("me/clip.mp4", &v),
                ("me/params.json", br#"{"end_seconds": 3}"#),
            ],
            d.path(),
        );
        let p = plan(&mut j, d.path(), &Overrides::default()).unwrap();
        assert_eq!(p.body["assets"]["video_source"], json!("file"));
        assert_eq!(p.body["end_seconds"], json!(3));
        assert_eq!(p.uploads.len(), 2);
        let mut j = job(
            "head-swap",
            Source::Folder,
            &[("x/a.png", &i), ("x/b.png", &i)],
            d.path(),
        );
        assert_eq!(
            plan(&mut j, d.path(), &Overrides::default())
                .unwrap_err()
                .code,
            "ambiguous_file"
        );
        let mut j = job(
            "head-swap",
            Source::Folder,
            &[("x/head.png", &i), ("x/body.png", &i)],
            d.path(),
        );
        assert_eq!(
            plan(&mut j, d.path(), &Overrides::default())
                .unwrap()
                .uploads
                .len(),
            2
        );
        let mut j = job(
            "face-swap",
            Source::Folder,
            &[("me/face.png", &i)],
            d.path(),
        );
        let e = plan(&mut j, d.path(), &Overrides::default()).unwrap_err();
        assert_eq!(e.code, "missing_input");
        assert!(e.message.contains("video"), "{}", e.message);
    }

    #[test]
    fn json_bodies_merge_and_upload_local_references() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("abs.png");
        std::fs::write(&img, png()).unwrap();
        let body = format!(
            r#"{{"scale_factor": 4, "assets": {{"image_file_path": "{}"}}}}"#,
            img.display()
        );
        let mut j = job(
            "ai-image-upscaler",
            Source::Json,
            &[("b.json", body.as_bytes())],
            d.path(),
        );
        let p = plan(&mut j, d.path(), &Overrides::default()).unwrap();
        assert_eq!(p.body["scale_factor"], json!(4));
        assert_eq!(p.uploads.len(), 1);
        assert_eq!(j.inputs.len(), 2, "the reference is kept with the job");

        let mut j = job(
            "ai-image-upscaler",
            Source::Json,
            &[("b.json", b"{not json")],
            d.path(),
        );
        assert_eq!(
            plan(&mut j, d.path(), &Overrides::default())
                .unwrap_err()
                .code,
            "invalid_json"
        );
        let mut j = job(
            "ai-image-upscaler",
            Source::Json,
            &[(
                "b.json",
                br#"{"assets": {"image_file_path": "/no/such.png"}}"#,
            )],
            d.path(),
        );
        assert_eq!(
            plan(&mut j, d.path(), &Overrides::default())
                .unwrap_err()
                .code,
            "unreadable_reference"
        );
        let url = br#"{"assets": {"image_file_path": "https://x/y.png"}, "scale_factor": "big"}"#;
        let mut j = job(
            "ai-image-upscaler",
            Source::Json,
            &[("b.json", url)],
            d.path(),
        );
        let e = plan(&mut j, d.path(), &Overrides::default()).unwrap_err();
        assert_eq!(e.code, "invalid_request");
        assert!(e.message.contains("scale_factor"), "{}", e.message);
    }

    #[test]
    fn absolute_references_need_the_dropping_users_permission() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("secret.png");
        std::fs::write(&secret, png()).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let body = format!(
            r#"{{"assets": {{"image_file_path": "{}"}}}}"#,
            secret.display()
        );
        let mut j = job(
            "ai-image-upscaler",
            Source::Json,
            &[("b.json", body.as_bytes())],
            d.path(),
        );
        j.owner = Some((4242, 4242));
        let e = plan(&mut j, d.path(), &Overrides::default()).unwrap_err();
        assert_eq!(e.code, "unreadable_reference");
        assert!(e.message.contains("permission denied"), "{}", e.message);
        let mut j = job(
            "ai-image-upscaler",
            Source::Json,
            &[("b.json", body.as_bytes())],
            d.path(),
        );
        j.owner = Some(crate::fs::core::current_ids());
        assert!(plan(&mut j, d.path(), &Overrides::default()).is_ok());
    }

    /// The kernel decides, with the writer's uid, gid and groups: a world-readable file in a
    /// folder the writer cannot search is refused, whatever its own mode bits say.
    #[test]
    fn references_are_opened_with_the_writers_rights() {
        use std::os::unix::fs::PermissionsExt;
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: not root");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let private = d.path().join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let open = private.join("open.png");
        std::fs::write(&open, png()).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let body = format!(
            r#"{{"assets": {{"image_file_path": "{}"}}}}"#,
            open.display()
        );
        let mut j = job(
            "ai-image-upscaler",
            Source::Json,
            &[("b.json", body.as_bytes())],
            d.path(),
        );
        j.owner = Some((0, 0));
        // The JSON's own writer counts, not the job's owner.
        j.writers.insert("b.json".into(), (65534, 65534));
        let e = plan(&mut j, d.path(), &Overrides::default()).unwrap_err();
        assert_eq!(e.code, "unreadable_reference");
        assert!(e.message.contains("permission denied"), "{}", e.message);
        j.writers.insert("b.json".into(), (0, 0));
        j.inputs.truncate(1);
        assert!(plan(&mut j, d.path(), &Overrides::default()).is_ok());
    }

    fn jpeg() -> Vec<u8> {
        let img = sample::decode(&png()).unwrap();
        let (bytes, kind) = sample::restyle(&img, 1, "x");
        assert_eq!(kind, sample::ImageKind::Jpeg);
        bytes
    }

    fn end_of(tool: &str, source: Source, files: &[(&str, &[u8])]) -> Result<Value, Refusal> {
        let d = tempfile::tempdir().unwrap();
        let mut j = job(tool, source, files, d.path());
        plan(&mut j, d.path(), &Overrides::default()).map(|p| p.body["end_seconds"].clone())
    }

    #[test]
    fn clip_tools_default_end_seconds_to_the_inputs_real_length() {
        let one = sample::mp4(1.0, 32, 32, 1);
        let end = end_of("auto-subtitle-generator", Source::File, &[("a.mp4", &one)]);
        assert_eq!(end.unwrap(), json!(1));
        let long = sample::wav(20.0, 1);
        let end = end_of("audio-to-video", Source::File, &[("song.wav", &long)]);
        assert_eq!(end.unwrap(), json!(20));
        // An audio-driven tool takes the audio's length.
        let half = sample::wav(2.5, 1);
        let end = end_of(
            "ai-talking-photo",
            Source::Folder,
            &[("t/image.png", &png()), ("t/audio.wav", &half)],
        );
        assert_eq!(end.unwrap(), json!(2.5));
        // No media length: the tool's default stays.
        let end = end_of("image-to-video", Source::File, &[("a.png", &png())]);
        assert_eq!(end.unwrap(), json!(5));
        let end = end_of("text-to-video", Source::Text, &[("a.txt", b"a cat")]);
        assert_eq!(end.unwrap(), json!(5));
    }

    #[test]
    fn lip_sync_takes_the_shorter_of_video_and_audio() {
        let video = sample::mp4(3.0, 32, 32, 1);
        let audio = sample::wav(1.5, 1);
        let end = end_of(
            "lip-sync",
            Source::Folder,
            &[("l/video.mp4", &video), ("l/audio.wav", &audio)],
        );
        assert_eq!(end.unwrap(), json!(1.5));
        let audio = sample::wav(6.0, 1);
        let end = end_of(
            "lip-sync",
            Source::Folder,
            &[("l/video.mp4", &video), ("l/audio.wav", &audio)],
        );
        assert_eq!(end.unwrap(), json!(3));
    }

    #[test]
    fn an_explicit_end_past_the_input_or_a_start_past_it_is_refused() {
        let (i, v) = (png(), sample::mp4(1.0, 32, 32, 1));
        let with = |params: &[u8]| {
            end_of(
                "face-swap",
                Source::Folder,
                &[
                    ("f/face.png", &i),
                    ("f/clip.mp4", &v),
                    ("f/params.json", params),
                ],
            )
        };
        let e = with(br#"{"end_seconds": 3}"#).unwrap_err();
        assert_eq!(e.code, "invalid_request");
        assert!(
            e.message.contains("end_seconds is 3 s") && e.message.contains("1.00 s"),
            "names both lengths: {}",
            e.message
        );
        // Within the slack, and shorter, it is kept as given.
        assert_eq!(with(br#"{"end_seconds": 1.04}"#).unwrap(), json!(1.04));
        assert_eq!(with(br#"{"end_seconds": 0.5}"#).unwrap(), json!(0.5));
        let e = with(br#"{"start_seconds": 2}"#).unwrap_err();
        assert_eq!(e.code, "invalid_request");
        assert!(e.message.contains("start_seconds is 2 s"), "{}", e.message);
        // A start inside the clip keeps the default end at the clip's end.
        assert_eq!(with(br#"{"start_seconds": 0.5}"#).unwrap(), json!(1));
    }

    #[test]
    fn clip_limits_clamp_a_default_and_refuse_a_too_short_clip() {
        let limits = (Some(1.0), Some(60.0));
        assert_eq!(
            clip_end(90.0, "a.mp4", "t", 0.0, None, limits).unwrap(),
            ClipEnd::Clamped(60.0)
        );
        assert_eq!(
            clip_end(12.5, "a.mp4", "t", 0.0, None, limits).unwrap(),
            ClipEnd::Set(12.5)
        );
        let e = clip_end(0.5, "a.mp4", "t", 0.0, None, limits).unwrap_err();
        assert!(e.message.contains("at least 1 s"), "{}", e.message);
        assert_eq!(
            clip_end(10.0, "a.mp4", "t", 0.0, Some(10.05), limits).unwrap(),
            ClipEnd::Keep
        );
        assert!(clip_end(10.0, "a.mp4", "t", 0.0, Some(10.06), limits).is_err());
        assert!(clip_end(90.0, "a.mp4", "t", 60.0, None, limits).is_err());
    }

    #[test]
    fn a_file_whose_bytes_are_another_media_is_refused_by_name() {
        let e = end_of(
            "auto-subtitle-generator",
            Source::File,
            &[("x.mov", &jpeg())],
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_video_file");
        assert_eq!(e.message, "x.mov is a JPEG image, not a video");
        let wav = sample::wav(1.0, 1);
        let e = end_of("ai-image-upscaler", Source::File, &[("a.png", &wav)]).unwrap_err();
        assert_eq!(e.code, "invalid_image_file");
        assert!(e.message.contains("a WAV audio file"), "{}", e.message);
        let e = end_of(
            "ai-voice-cloner",
            Source::Folder,
            &[("v/audio.mp3", b"hello"), ("v/prompt.txt", b"hi")],
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_audio_file");
    }

    #[test]
    fn the_fingerprint_is_the_bytes_and_the_body_not_the_names() {
        let d = tempfile::tempdir().unwrap();
        let fp = |name: &str, bytes: &[u8], dir: &Path| {
            let mut j = job("ai-image-upscaler", Source::File, &[(name, bytes)], dir);
            j.name = name.into();
            let p = plan(&mut j, dir, &Overrides::default()).unwrap();
            fingerprint(&j.tool, &p, &j.inputs).unwrap()
        };
        let (a, b) = (png(), sample::draw("q", 2, 32, 32));
        let first = fp("a.png", &a, d.path());
        assert_eq!(first.len(), 64);
        assert_eq!(first, fp("renamed.png", &a, d.path()));
        assert_ne!(first, fp("a.png", &b, d.path()));
        let mut j = job(
            "ai-image-upscaler",
            Source::File,
            &[("a.png", &a)],
            d.path(),
        );
        let mut p = plan(&mut j, d.path(), &Overrides::default()).unwrap();
        p.body["scale_factor"] = json!(4);
        assert_ne!(first, fingerprint(&j.tool, &p, &j.inputs).unwrap());
    }

    #[test]
    fn again_names_are_the_rerun_gesture() {
        let d = tempfile::tempdir().unwrap();
        let j = job(
            "ai-image-generator",
            Source::Text,
            &[("cat.again.txt", b"a cat")],
            d.path(),
        );
        assert!(is_rerun(&j));
        let j = job(
            "ai-image-generator",
            Source::Text,
            &[("cat.txt", b"a cat")],
            d.path(),
        );
        assert!(!is_rerun(&j));
        assert_eq!(rerun_name(&j), "cat.again.txt");
        let j = job(
            "face-swap",
            Source::Folder,
            &[("me.again/face.png", b"i")],
            d.path(),
        );
        assert!(is_rerun(&j));
        let j = job(
            "face-swap",
            Source::Folder,
            &[("me/face.png", b"i")],
            d.path(),
        );
        assert_eq!(
            (dropped_name(&j).as_str(), rerun_name(&j).as_str()),
            ("me", "me.again")
        );
    }

    #[test]
    fn file_roles_follow_the_tool() {
        let t = crate::api::catalog::tool("ai-image-upscaler").unwrap();
        assert_eq!(role_of(t, "a.PNG"), Some(FileRole::Media(Media::Image)));
        assert_eq!(role_of(t, "a.txt"), Some(FileRole::Text));
        assert_eq!(role_of(t, "a.exe"), None);
        let t = crate::api::catalog::tool("photo-colorizer").unwrap();
        assert_eq!(role_of(t, "a.txt"), None);
    }
}
