//! The generated help: `README.txt` at the root of the mount, and the tools table of README.md
//! (`mhfs tools`), both from the catalogue.

use std::fmt::Write;

use serde_json::Value;

use crate::api::catalog::{Output, Overrides, TOOLS, Tool, get_path};
use crate::api::schema::schema_for;

fn inputs_text(t: &Tool) -> String {
    if t.inputs.is_empty() {
        return "-".into();
    }
    t.inputs
        .iter()
        .map(|i| {
            let media: Vec<&str> = i.media.iter().map(|m| m.as_str()).collect();
            let mut s = format!("{}: {}", i.role, media.join("/"));
            if i.list {
                s.push_str(" (1-10 files)");
            }
            if !i.required {
                s.push_str(" (optional)");
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn text_text(t: &Tool) -> String {
    match t.text {
        None => "-".into(),
        Some(x) => {
            let mut s = format!("`{}`", x.field);
            if !x.required {
                s.push_str(" (optional)");
            }
            if let Some(max) = x.max_chars {
                let _ = write!(s, " (at most {max} chars)");
            }
            s
        }
    }
}

fn output_text(t: &Tool) -> &'static str {
    match t.output {
        Output::Image {
            count_field: Some(_),
        } => "image_count images",
        Output::Image { .. } => "1 image",
        Output::Animation => "1 GIF (or MP4 per output_format)",
        Output::Video => "1 MP4",
        Output::Audio => "1 audio file",
        Output::FaceCrops => "1 PNG per face",
    }
}

/// A minimal example of submitting to a tool.
fn example(t: &Tool) -> String {
    let dir = format!("inbox/{}/", t.slug);
    if t.needs_folder() {
        let mut files: Vec<String> = t
            .required_inputs()
            .map(|i| {
                let ext = match i.media[0] {
                    crate::api::catalog::Media::Image => "jpg",
                    crate::api::catalog::Media::Video => "mp4",
                    crate::api::catalog::Media::Audio => "mp3",
                };
                format!("{}.{ext}", i.role)
            })
            .collect();
        if t.text.is_some_and(|x| x.required) {
            files.push("prompt.txt".into());
        }
        format!(
            "mkdir /tmp/mine && cp ... /tmp/mine/{{{}}} && cp -r /tmp/mine {dir}",
            files.join(",")
        )
    } else if let Some(input) = t.required_inputs().next() {
        let ext = match input.media[0] {
            crate::api::catalog::Media::Image => "jpg",
            crate::api::catalog::Media::Video => "mp4",
            crate::api::catalog::Media::Audio => "mp3",
        };
        format!("cp holiday.{ext} {dir}")
    } else {
        format!("echo 'a lighthouse at dawn' > {dir}lighthouse.txt")
    }
}

const HELP: &str = r#"mhfs: Magic Hour as a drive
===========================

Submit: copy a file into inbox/<tool>/. The moment it is complete (closed after writing, or
renamed from a hidden temp name) it leaves the inbox and jobs/<name>/ appears.
  - A media file (image, video, audio by extension) is the tool's input.
  - A .txt file is the tool's text (prompt, topic, content or script).
  - A .json file is the create body itself, in the API's field names, over the defaults below.
    Asset fields may hold api-assets/ paths, http(s) URLs, or local files (absolute, or
    relative to the JSON's folder), which mhfs uploads first.
  - A folder inbox/<tool>/<name>/ holding files named by role (image.jpg, video.mp4,
    audio.mp3, person.png, ...; or unambiguous by type), an optional params.json (merged into
    the body) and an optional prompt.txt is submitted once every required input is there,
    no file is open, and it has been quiet for {settle} seconds. Until then activity.log says
    what it still needs ("waiting for a video (video.mp4)").
  - A folder of several photos (or clips) in a tool that takes one input is a batch: one job
    per file, each named after its file; a params.json or prompt.txt beside them goes with each.
Never submitted: empty files, hidden names (.*), *~, *.swp, *.tmp, *.part, *.crdownload,
4913. They stay in the inbox as scratch files until renamed or removed.
Billed once: the same bytes and parameters as a job of the tool that has not failed are not
submitted again (the log names the job). To rerun on purpose, name it <stem>.again.<ext>
(a folder: <name>.again). An input's bytes must be the type its name says, and clip tools
default end_seconds to the input's real length.

Jobs: jobs/<name>/
  status        uploading, submitting, queued, rendering, downloading, complete, error
                or canceled
  job.json      the project as last seen from the API
  request.json  the body sent to create the job
  error         why it failed ("<code>: <message>"); the dropped input is kept beside it
  output.<ext>  the outputs (output-1.<ext> ... when several), once downloaded
rm -r jobs/<name> of a finished job deletes the project on Magic Hour (if Magic Hour refuses,
the job stays whole); an unfinished one is busy until it ends. mv jobs/a jobs/b renames locally.
gio trash jobs/<name> (or a file manager) moves a job to .Trash-<uid>/ without deleting it;
restore it from there, or empty the trash to delete it.
outputs/ holds every finished output of every job as <job>.<ext> (<job>-N.<ext> when several),
read-only: cp outputs/* ~/Pictures/ collects them all.
activity.log says what the drive did and refused, and what to do, one line each, newest last:
tail -f activity.log follows it. mhfs jobs <mount> lists the jobs and the waiting folders.
A project made elsewhere (web app, SDK) is adopted by looking up its id: ls jobs/<project-id>
says "No such file" at first; a moment later the job is there.

Credits: the file credits (here, at the root) shows the balance, what this mount was charged
and the budget; df shows credits as space: 1 KiB block = 1 credit, available = the balance
(or what is left of the budget). Each job's expected price and its charge: mhfs jobs.
  - mhfs mount --budget N (or "budget" in the config file) caps what this drive may spend: a
    file that would pass it is refused when it is closed (cp: Disk quota exceeded) and stays
    in the inbox, nothing uploaded or billed.
  - A job Magic Hour refuses for insufficient credits stays "submitting" and goes on by
    itself once the balance covers it (or remove it).
Presets and pipelines: the config file (--config, default ~/.config/mhfs/config.json) names
presets, each a folder inbox/<preset>/ that works like its tool's folder with the preset's
parameters (a dropped JSON's own win). A preset with "steps" is a pipeline: each step is a
job (<name>, <name>.2-<tool>, <name>.3-<tool>, ...), handed the output of the one before by
URL, without a new upload. Edits to the file take effect within a second, no remount.
An output of a job copied into another inbox is recognised and passed by reference.

Tools
-----
Each tool: what it takes, its defaults, its price (credits, after the API's price list), an example
params.json, and every parameter of its create body with its type, its allowed values (in full),
its bounds and its default.
"#;

/// What a job of the tool costs, after the price list (spec/API.md §3.6) as the catalogue
/// holds it.
fn price_text(t: &Tool) -> String {
    let c = t.credits;
    match (t.kind, t.slug) {
        (_, "ai-voice-generator" | "ai-voice-cloner") => {
            "1 credit per 10 characters of text".into()
        }
        (_, "ai-music-generator") => "1 credit per second of music (duration)".into(),
        (_, "ai-image-upscaler") => format!("{c} credits (scale_factor 4: {})", c * 4),
        (crate::api::catalog::ProjectKind::Video, _) => {
            format!("{c} credits per second of video (end_seconds - start_seconds)")
        }
        _ => match t.output {
            Output::Image {
                count_field: Some(f),
            } => format!("{c} credits per image ({f})"),
            _ => format!("{c} credits per job"),
        },
    }
}

/// Whether a body field is one of the tool's file inputs (given by dropping a file).
fn is_input_field(t: &Tool, path: &str) -> bool {
    t.inputs.iter().any(|i| i.field == path)
}

/// One line per parameter of the tool's create body (from the create schema): its type, its
/// allowed values (every one), its bounds, whether it is required, and its default.
fn params_text(t: &Tool, body: &Value) -> String {
    fn walk(t: &Tool, schema: &Value, path: &str, required: bool, body: &Value, out: &mut String) {
        if let Some(props) = schema["properties"].as_object() {
            let req: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for (k, sub) in props {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if p == "name" || is_input_field(t, &p) {
                    continue;
                }
                walk(t, sub, &p, req.contains(&k.as_str()), body, out);
            }
            return;
        }
        let mut line = format!("    {path}: {}", schema["type"].as_str().unwrap_or("any"));
        if let Some(all) = schema["enum"].as_array() {
            let _ = write!(line, ", one of: {}", crate::api::schema::list(all));
        }
        match (schema.get("minimum"), schema.get("maximum")) {
            (Some(lo), Some(hi)) => {
                let _ = write!(line, ", {lo} to {hi}");
            }
            (Some(lo), None) => {
                let _ = write!(line, ", at least {lo}");
            }
            (None, Some(hi)) => {
                let _ = write!(line, ", at most {hi}");
            }
            (None, None) => {}
        }
        if let Some(max) = schema["maxLength"].as_u64() {
            let _ = write!(line, ", at most {max} characters");
        }
        if let Some(max) = schema["maxItems"].as_u64() {
            let _ = write!(line, ", at most {max} items");
        }
        if required {
            line.push_str(" (required)");
        }
        match get_path(body, path) {
            Some(v) => {
                let _ = write!(line, "; default {v}");
            }
            None => line.push_str("; no default"),
        }
        out.push_str(&line);
        out.push('\n');
    }
    let mut out = String::new();
    if let Some(schema) = schema_for(&t.create_path()) {
        walk(t, schema, "", false, body, &mut out);
    }
    out
}

/// An example `params.json` for a folder of the tool: its defaults, without the input files.
fn example_params(t: &Tool, body: &Value) -> String {
    let mut body = body.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("name");
    }
    if let Some(assets) = body.get_mut("assets").and_then(Value::as_object_mut) {
        assets.retain(|k, _| !is_input_field(t, &format!("assets.{k}")));
        if assets.is_empty() {
            body.as_object_mut().map(|m| m.remove("assets"));
        }
    }
    serde_json::to_string(&body).unwrap_or_default()
}

/// README.txt at the root of the mount.
pub fn readme_txt(defaults: &Overrides, settle: std::time::Duration) -> String {
    let mut s = HELP.replace("{settle}", &format!("{}", settle.as_secs_f64()));
    for t in TOOLS {
        let _ = writeln!(
            s,
            "\n{} ({} project): {}",
            t.slug,
            t.kind.as_str(),
            t.summary
        );
        let _ = writeln!(s, "  inputs:   {}", inputs_text(t).replace('`', ""));
        let _ = writeln!(s, "  text:     {}", text_text(t).replace('`', ""));
        let _ = writeln!(s, "  outputs:  {}", output_text(t));
        let body = defaults.body(t);
        let _ = writeln!(s, "  defaults: {body}");
        let _ = writeln!(
            s,
            "  price:    {}; {} credits at these defaults",
            price_text(t),
            crate::api::catalog::price(t, &body)
        );
        let _ = writeln!(s, "  example:  {}", example(t));
        let _ = writeln!(
            s,
            "  params.json (in a folder, or as the .json body): {}",
            example_params(t, &body)
        );
        let _ = write!(s, "  parameters:\n{}", params_text(t, &body));
    }
    s
}

/// The tools table of README.md (`mhfs tools` prints it; a test keeps README.md current).
pub fn tools_markdown() -> String {
    let mut s = String::from(
        "| tool | kind | inputs (role: media) | text field | outputs | defaults |\n|---|---|---|---|---|---|\n",
    );
    for t in TOOLS {
        let folder = if t.needs_folder() { " (folder)" } else { "" };
        let _ = writeln!(
            s,
            "| `{}`{folder} | {} | {} | {} | {} | `{}` |",
            t.slug,
            t.kind.as_str(),
            inputs_text(t),
            text_text(t),
            output_text(t),
            (t.defaults)()
        );
    }
    s
}
