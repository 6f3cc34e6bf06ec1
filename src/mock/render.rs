//! What a mock job produces: real files of the advertised type, derived from the inputs where
//! the tool takes some, or drawn from the prompt; and the failures a real job can end in.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::media::{self, ImageKind};
use super::state::{Outcome, Upload, read_small};
use crate::api::catalog::{Media, Output, Tool, get_path};
use crate::api::types::ProjectError;

/// Size and frame rate of the videos the mock draws (inputs that are MP4 are returned as is).
pub const VIDEO_SIZE: (u32, u32) = (128, 96);
pub const VIDEO_FPS: f64 = 4.0;

/// Images bigger than this are not decoded (a drawn picture stands in).
const MAX_DECODE_BYTES: u64 = 64 << 20;

/// The marker that makes a job fail: any string of the create body containing
/// `mock-error:<code>` (a prompt, the name, ...) ends the job in `error` with that code.
pub const ERROR_MARKER: &str = "mock-error:";

pub struct Job {
    pub tool: &'static Tool,
    pub body: Value,
    pub inputs: Vec<Resolved>,
    pub out_dir: PathBuf,
}

/// An asset field of the body and what it points at.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub field: String,
    pub expects: &'static [Media],
    pub value: String,
    pub source: Source,
}

#[derive(Debug, Clone)]
pub enum Source {
    /// A completed upload of this server.
    Uploaded { disk: PathBuf, media: Media },
    /// An `api-assets/` path never uploaded (or never PUT), or a value that is not a path.
    Missing,
    /// An http(s) URL that is not one of this mock's own download URLs: the mock cannot
    /// fetch it, but checks its extension.
    Url { ext_ok: bool },
}

/// Looks up every asset field of the body the tool declares (plus `face_mappings[].new_face`).
pub fn resolve_inputs(
    tool: &Tool,
    body: &Value,
    uploads: &HashMap<String, Upload>,
    outputs: &Path,
) -> Vec<Resolved> {
    let mut out = Vec::new();
    let mut add = |field: String, expects: &'static [Media], value: &str| {
        let source = if let Some(u) = uploads.get(value).filter(|u| u.complete) {
            Source::Uploaded {
                disk: u.disk.clone(),
                media: u.media,
            }
        } else if let Some(source) = own_output(value, expects, outputs) {
            source
        } else if value.starts_with("http://") || value.starts_with("https://") {
            let path = value.split(['?', '#']).next().unwrap_or(value);
            let ext = extension(path);
            Source::Url {
                ext_ok: expects.iter().any(|m| m.accepts(&ext)),
            }
        } else {
            Source::Missing
        };
        out.push(Resolved {
            field,
            expects,
            value: value.to_string(),
            source,
        });
    };
    for input in tool.inputs {
        match get_path(body, input.field) {
            Some(Value::String(s)) => add(input.field.to_string(), input.media, s),
            Some(Value::Array(items)) => {
                for (i, v) in items.iter().enumerate() {
                    if let Some(s) = v.as_str() {
                        add(format!("{}[{i}]", input.field), input.media, s);
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(Value::Array(maps)) = get_path(body, "assets.face_mappings") {
        for (i, m) in maps.iter().enumerate() {
            if let Some(s) = m.get("new_face").and_then(Value::as_str) {
                add(
                    format!("assets.face_mappings[{i}].new_face"),
                    &[Media::Image],
                    s,
                );
            }
        }
    }
    out
}

/// One of this mock's own download URLs (`.../_mock/files/<project>/<name>?...`), as the real
/// API takes the URL of an output of an earlier project: the output on its disk.
fn own_output(value: &str, expects: &'static [Media], outputs: &Path) -> Option<Source> {
    let path = value.split(['?', '#']).next()?;
    let rest = &path[path.find("/_mock/files/")? + "/_mock/files/".len()..];
    let (id, name) = rest.split_once('/')?;
    if id.is_empty() || id.contains("..") || name.contains('/') || name.starts_with('.') {
        return None;
    }
    let disk = outputs.join(id).join(name);
    if !disk.is_file() {
        return None;
    }
    let ext = extension(name);
    let media = expects
        .iter()
        .copied()
        .find(|m| m.accepts(&ext))
        .or_else(|| {
            crate::api::catalog::media_of_extension(&ext)
                .first()
                .copied()
        })?;
    Some(Source::Uploaded { disk, media })
}

fn extension(path: &str) -> String {
    Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn fail(code: &str, message: impl Into<String>) -> Outcome {
    Outcome::Failed(ProjectError {
        code: code.into(),
        message: message.into(),
    })
}

/// The code after the first `mock-error:` marker in any string of the body.
pub fn requested_error(body: &Value) -> Option<String> {
    match body {
        Value::String(s) => s.find(ERROR_MARKER).map(|i| {
            s[i + ERROR_MARKER.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        }),
        Value::Array(a) => a.iter().find_map(requested_error),
        Value::Object(o) => o.values().find_map(requested_error),
        _ => None,
    }
    .filter(|code: &String| !code.is_empty())
}

/// The message the real API gives for the documented codes.
fn message_for(code: &str) -> String {
    match code {
        "no_source_face" => "Please use an image with a detectable face".into(),
        "insufficient_credits" => "Not enough credits to finish this job".into(),
        "content_policy_violation" => "The content violates the content policy".into(),
        "processing_timeout" => "Processing timed out".into(),
        "text_too_long" => "The text is too long".into(),
        other => format!("The job failed ({other}), as requested by a mock-error marker"),
    }
}

/// Renders a job whose time is over: outputs into `out_dir`, or the reason it failed.
pub fn render(job: &Job) -> Outcome {
    if let Some(code) = requested_error(&job.body) {
        return fail(&code, message_for(&code));
    }
    for input in &job.inputs {
        let want = input.expects[0].as_str();
        match &input.source {
            Source::Missing => {
                return fail(
                    &format!("invalid_{want}_path"),
                    format!(
                        "file path '{}' does not exist. Please make sure that the value matches the \
                         'items.[].file_path' from the /v1/files/upload-urls API and the files are \
                         uploaded by sending a PUT request to the upload url.",
                        input.value
                    ),
                );
            }
            Source::Url { ext_ok: false } => {
                return fail(
                    &format!("invalid_{want}_path"),
                    format!(
                        "{} does not end in a supported {want} extension",
                        input.field
                    ),
                );
            }
            Source::Uploaded { media, .. } if !input.expects.contains(media) => {
                return fail(
                    &format!("invalid_{want}_file"),
                    format!(
                        "{} must be a {want} file, got a {} file",
                        input.field,
                        media.as_str()
                    ),
                );
            }
            _ => {}
        }
    }
    if let Err(e) = std::fs::create_dir_all(&job.out_dir) {
        return fail("unknown_error", format!("mock cannot write outputs: {e}"));
    }
    match produce(job) {
        Ok(files) => Outcome::Complete(files),
        Err(outcome) => outcome,
    }
}

fn seed_of(job: &Job) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    job.body.to_string().hash(&mut h);
    h.finish()
}

/// The text of the body a drawing is made from: prompt, topic, content or script.
fn prompt_of(job: &Job) -> String {
    job.tool
        .text
        .and_then(|t| get_path(&job.body, t.field))
        .and_then(Value::as_str)
        .or_else(|| job.body.get("name").and_then(Value::as_str))
        .unwrap_or(job.tool.slug)
        .to_string()
}

/// The first uploaded input of a media type, by role order.
fn uploaded(job: &Job, media: Media) -> Option<&Path> {
    job.inputs.iter().find_map(|i| match &i.source {
        Source::Uploaded { disk, media: m } if *m == media => Some(disk.as_path()),
        _ => None,
    })
}

/// Decodes an uploaded image; `Ok(None)` when there is none or the mock cannot decode its type.
fn input_image(job: &Job, role: Option<&str>) -> Result<Option<image::DynamicImage>, Outcome> {
    let disk = match role {
        Some(role) => job.tool.input_by_role(role).and_then(|input| {
            job.inputs.iter().find_map(|r| match &r.source {
                Source::Uploaded { disk, .. } if r.field == input.field => Some(disk.as_path()),
                _ => None,
            })
        }),
        None => uploaded(job, Media::Image),
    };
    let Some(disk) = disk else { return Ok(None) };
    if !media::can_decode(&extension(&disk.to_string_lossy())) {
        return Ok(None);
    }
    let Some(bytes) = read_small(disk, MAX_DECODE_BYTES) else {
        return Ok(None);
    };
    media::decode(&bytes).map(Some).map_err(|e| {
        fail(
            "invalid_image_file",
            format!("The image could not be read: {e}"),
        )
    })
}

pub fn output_count(tool: &Tool, body: &Value) -> u64 {
    crate::api::catalog::output_count(tool, body)
}

/// `start_seconds`, `end_seconds` of a video body (defaults 0 and 5).
pub fn clip(body: &Value) -> (f64, f64) {
    crate::api::catalog::clip(body)
}

/// What a job costs: the drive's own price rule (`catalog::price`), so the two always agree.
pub fn cost(tool: &Tool, body: &Value) -> i64 {
    crate::api::catalog::price(tool, body)
}

fn prompt_len(tool: &Tool, body: &Value) -> usize {
    tool.text
        .and_then(|t| get_path(body, t.field))
        .and_then(Value::as_str)
        .map_or(0, |s| s.chars().count())
}

pub fn mime_of(name: &str) -> &'static str {
    match extension(name).as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "mp4" => "video/mp4",
        "wav" => "audio/wav",
        _ => "application/octet-stream",
    }
}

fn write(job: &Job, name: String, bytes: &[u8]) -> Result<String, Outcome> {
    std::fs::write(job.out_dir.join(&name), bytes)
        .map_err(|e| fail("unknown_error", format!("mock cannot write {name}: {e}")))?;
    Ok(name)
}

fn image_name(kind: ImageKind, index: Option<u64>) -> String {
    match index {
        Some(i) => format!("output-{i}.{}", kind.ext()),
        None => format!("output.{}", kind.ext()),
    }
}

/// Writes the outputs; returns their basenames in order.
fn produce(job: &Job) -> Result<Vec<String>, Outcome> {
    let seed = seed_of(job);
    let prompt = prompt_of(job);
    let slug = job.tool.slug;
    match job.tool.output {
        Output::Image { .. } => {
            let count = output_count(job.tool, &job.body);
            let input = input_image(job, None)?;
            let mut names = Vec::new();
            for i in 0..count {
                let s = seed.wrapping_add(i);
                let (bytes, kind) = match (slug, &input) {
                    ("ai-image-upscaler", Some(img)) => {
                        let factor = job
                            .body
                            .get("scale_factor")
                            .and_then(Value::as_f64)
                            .unwrap_or(2.0);
                        media::upscale(img, if factor >= 4.0 { 4 } else { 2 })
                    }
                    ("image-background-remover", Some(img)) => {
                        let bg = input_image(job, Some("background_image"))?;
                        media::remove_background(img, bg.as_ref())
                    }
                    ("photo-colorizer", Some(img)) => media::colorize(img),
                    (_, Some(img)) => media::restyle(img, s, slug),
                    (_, None) => (media::draw(&prompt, s, 512, 512), ImageKind::Png),
                };
                names.push(write(
                    job,
                    image_name(kind, (count > 1).then_some(i + 1)),
                    &bytes,
                )?);
            }
            Ok(names)
        }
        Output::Animation => {
            let format = job
                .body
                .get("output_format")
                .and_then(Value::as_str)
                .unwrap_or("gif");
            if format == "gif" {
                let bytes = media::gif(&prompt, seed, 128, 128, 8);
                Ok(vec![write(job, "output.gif".into(), &bytes)?])
            } else {
                // The mock has no WebM encoder: mp4 and webm requests both get an MP4.
                let bytes = media::mp4(2.0, 128, 128, seed);
                Ok(vec![write(job, "output.mp4".into(), &bytes)?])
            }
        }
        Output::Video => {
            let name = "output.mp4".to_string();
            let source = uploaded(job, Media::Video)
                .filter(|p| matches!(extension(&p.to_string_lossy()).as_str(), "mp4" | "m4v"));
            match source {
                // The input video's own bytes: a valid MP4 of any size, copied by the kernel.
                Some(src) => {
                    std::fs::copy(src, job.out_dir.join(&name)).map_err(|e| {
                        fail("unknown_error", format!("mock cannot copy video: {e}"))
                    })?;
                    Ok(vec![name])
                }
                None => {
                    let (start, end) = clip(&job.body);
                    let bytes = media::mp4((end - start) as f32, VIDEO_SIZE.0, VIDEO_SIZE.1, seed);
                    Ok(vec![write(job, name, &bytes)?])
                }
            }
        }
        Output::Audio => {
            let seconds = match slug {
                "ai-music-generator" => job
                    .body
                    .get("duration")
                    .and_then(Value::as_f64)
                    .unwrap_or(30.0) as f32,
                _ => (prompt_len(job.tool, &job.body) as f32 / 15.0).max(1.0),
            };
            let bytes = media::wav(seconds, seed);
            Ok(vec![write(job, "output.wav".into(), &bytes)?])
        }
        Output::FaceCrops => {
            let img = match input_image(job, None)? {
                Some(img) => img,
                None => media::decode(&media::draw(&prompt, seed, 256, 256))
                    .map_err(|e| fail("unknown_error", e.to_string()))?,
            };
            let crops = media::face_crops(&img, 1 + (seed % 3) as usize);
            crops
                .iter()
                .enumerate()
                .map(|(i, c)| write(job, format!("0-{i}.png"), c))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn marker_finds_code_anywhere() {
        assert_eq!(
            requested_error(&json!({"style": {"prompt": "a cat mock-error:no_source_face!"}})),
            Some("no_source_face".into())
        );
        assert_eq!(requested_error(&json!({"name": "mock-error:"})), None);
        assert_eq!(requested_error(&json!({"name": "plain"})), None);
    }

    #[test]
    fn costs_follow_the_price_list() {
        let t = crate::api::catalog::tool("ai-image-generator").unwrap();
        assert_eq!(cost(t, &json!({"image_count": 4})), 20);
        let t = crate::api::catalog::tool("ai-voice-generator").unwrap();
        assert_eq!(cost(t, &json!({"style": {"prompt": "x".repeat(25)}})), 3);
        let t = crate::api::catalog::tool("ai-image-upscaler").unwrap();
        assert_eq!(cost(t, &json!({"scale_factor": 4})), 200);
    }
}
