//! The catalogue holds every row of TOOLS.tsv, and every field the spec marks required is
//! covered by its defaults, inputs or text.

use mhfs::api::catalog::{Output, ProjectKind, TOOLS, set_path, tool};
use mhfs::api::schema::{schema_for, validate_create};
use mhfs::api::types::{
    AudioProject, CreateResponse, FaceDetection, ImageProject, UploadUrlsResponse, VideoProject,
};
use serde_json::{Value, json};

fn rows() -> Vec<Vec<String>> {
    include_str!("../spec/TOOLS.tsv")
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(String::from).collect())
        .collect()
}

/// `a(x; y); b(z)` -> `a; b`: the TSV's notes in parentheses may hold `;` too.
fn without_parentheses(s: &str) -> String {
    let mut depth = 0;
    s.chars()
        .filter(|c| {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    return false;
                }
                _ => {}
            }
            depth == 0
        })
        .collect()
}

#[test]
fn every_tools_tsv_row_is_in_the_catalogue() {
    let rows = rows();
    assert_eq!(rows.len(), TOOLS.len(), "one tool per row");
    for row in rows {
        let slug = &row[0];
        let t = tool(slug).unwrap_or_else(|| panic!("{slug} missing from the catalogue"));
        assert_eq!(row[1], format!("POST {}", t.create_path()));
        let kind = match row[2].as_str() {
            "image" => ProjectKind::Image,
            "video" => ProjectKind::Video,
            "audio" => ProjectKind::Audio,
            _ => ProjectKind::FaceDetection,
        };
        assert_eq!(t.kind, kind, "{slug}");
        assert_eq!(
            row[3],
            format!("GET {}", kind.project_path("{id}")),
            "{slug}"
        );
        if kind != ProjectKind::FaceDetection {
            assert_eq!(row[4], t.project_type, "{slug}");
        }
        // Every required asset field of the TSV is a required input of the catalogue
        // (`assets.video_source` is a switch, set by the video input).
        for field in without_parentheses(&row[6])
            .split(';')
            .map(str::trim)
            .filter(|f| *f != "-")
        {
            let name = field.trim_end_matches("[]");
            if name == "assets.video_source" {
                continue;
            }
            let input = t
                .inputs
                .iter()
                .find(|i| i.field == name)
                .unwrap_or_else(|| panic!("{slug}: no input for {name}"));
            assert!(input.required, "{slug}: {name} should be required");
        }
        let outputs_many = row[11] == "image_count" || row[11].starts_with("image_count");
        assert_eq!(
            matches!(
                t.output,
                Output::Image {
                    count_field: Some(_)
                }
            ),
            outputs_many,
            "{slug}"
        );
    }
}

/// The minimal submission (defaults, required inputs, required text) passes the mock's
/// validation, which holds every field the spec and the SDK mark required.
#[test]
fn defaults_cover_every_required_field() {
    for t in TOOLS {
        let mut body = (t.defaults)();
        for input in t.required_inputs() {
            let v = if input.list {
                json!(["api-assets/x/a.png"])
            } else {
                json!("api-assets/x/a.png")
            };
            set_path(&mut body, input.field, v);
        }
        if let Some(text) = t.text.filter(|t| t.required) {
            set_path(&mut body, text.field, json!("hello"));
        }
        assert!(
            schema_for(&t.create_path()).is_some(),
            "{}: no schema",
            t.slug
        );
        if let Err(e) = validate_create(&t.create_path(), &body) {
            panic!("{}: minimal body {body} is refused: {}", t.slug, e.message);
        }
    }
}

#[test]
fn text_fields_and_inputs_exist_in_the_schemas() {
    for t in TOOLS {
        let schema = schema_for(&t.create_path()).unwrap();
        let fields = t
            .inputs
            .iter()
            .map(|i| i.field)
            .chain(t.text.map(|x| x.field));
        for field in fields {
            let mut node = schema;
            for key in field.split('.') {
                node = node["properties"]
                    .get(key)
                    .unwrap_or_else(|| panic!("{}: {field} not in the schema", t.slug));
            }
        }
    }
}

/// The spec's example responses (spec/API.md §3.4, §4, §13) parse into the models and back.
#[test]
fn models_round_trip_the_spec_examples() {
    let image = json!({"id":"cuid-example","name":"Example Name","status":"complete","image_count":1,"type":"AI_IMAGE","created_at":"1970-01-01T00:00:00","enabled":true,"credits_charged":5,"total_frame_cost":5,"downloads":[{"url":"https://videos.magichour.ai/id/output.png","expires_at":"2024-10-19T05:16:19.027Z"}],"error":{"code":"no_source_face","message":"Please use an image with a detectable face"}});
    let video = json!({"id":"cuid-example","name":"Example Name","status":"complete","type":"FACE_SWAP","created_at":"1970-01-01T00:00:00","width":512,"height":960,"enabled":true,"start_seconds":0.0,"end_seconds":15.0,"credits_charged":450,"total_frame_cost":450,"fps":30.0,"error":{"code":"no_source_face","message":"Please use an image with a detectable face"},"download":{"url":"https://videos.magichour.ai/id/output.mp4","expires_at":"2024-10-19T05:16:19.027Z"},"downloads":[{"url":"https://videos.magichour.ai/id/output.mp4","expires_at":"2024-10-19T05:16:19.027Z"}]});
    let audio = json!({"id":"cuid-example","name":"Example Name","status":"complete","type":"VOICE_GENERATOR","created_at":"1970-01-01T00:00:00","enabled":true,"credits_charged":2,"downloads":[{"url":"https://videos.magichour.ai/id/output.wav","expires_at":"2024-10-19T05:16:19.027Z"}],"error":{"code":"no_source_face","message":"Please use an image with a detectable face"}});
    let faces = json!({"id":"uuid-example","credits_charged":0,"status":"complete","faces":[{"path":"api-assets/id/0-0.png","url":"https://videos.magichour.ai/api-assets/id/0-0.png"}]});
    let uploads = json!({"items":[{"upload_url":"https://videos.magichour.ai/api-assets/id/video.mp4?auth-value=1234567890","expires_at":"2024-07-25T16:56:21.932Z","file_path":"api-assets/id/video.mp4"}]});
    let created = json!({"id":"cuid-example","credits_charged":450,"estimated_frame_cost":450});

    fn round<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) {
        let t: T = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(&serde_json::to_value(t).unwrap(), v);
    }
    round::<ImageProject>(&image);
    round::<VideoProject>(&video);
    round::<AudioProject>(&audio);
    round::<FaceDetection>(&faces);
    round::<UploadUrlsResponse>(&uploads);
    round::<CreateResponse>(&created);
}
