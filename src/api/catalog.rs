//! The tool catalogue: every Magic Hour tool (one row of `spec/TOOLS.tsv` each) as data.
//!
//! The client, the mock, the drive and its generated README.txt all read this one table.
//! `tests/catalog.rs` checks it against `spec/TOOLS.tsv` and the merged create schemas.

use serde_json::{Value, json};

/// Which family of project a tool creates, which decides the poll and delete paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProjectKind {
    Image,
    Video,
    Audio,
    /// Face detection tasks are not projects: `GET /v1/face-detection/{id}`, no DELETE.
    FaceDetection,
}

impl ProjectKind {
    /// Path of the project (or task) resource, e.g. `/v1/image-projects/ID`.
    pub fn project_path(self, id: &str) -> String {
        match self {
            ProjectKind::Image => format!("/v1/image-projects/{id}"),
            ProjectKind::Video => format!("/v1/video-projects/{id}"),
            ProjectKind::Audio => format!("/v1/audio-projects/{id}"),
            ProjectKind::FaceDetection => format!("/v1/face-detection/{id}"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProjectKind::Image => "image",
            ProjectKind::Video => "video",
            ProjectKind::Audio => "audio",
            ProjectKind::FaceDetection => "face-detection",
        }
    }

    pub fn parse(s: &str) -> Option<ProjectKind> {
        [Self::Image, Self::Video, Self::Audio, Self::FaceDetection]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// The three media types of the upload API (`items[].type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Media {
    Image,
    Video,
    Audio,
}

impl Media {
    pub fn as_str(self) -> &'static str {
        match self {
            Media::Image => "image",
            Media::Video => "video",
            Media::Audio => "audio",
        }
    }

    /// Extensions the API accepts for this type (spec/API.md §15). `gif` is accepted as image
    /// and video because the face-swap video input takes GIFs.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Media::Video => &["mp4", "m4v", "mov", "webm", "gif"],
            Media::Audio => &[
                "mp3", "wav", "aac", "flac", "webm", "weba", "m4a", "opus", "ogg", "oga", "aiff",
                "amr",
            ],
            Media::Image => &[
                "png", "jpg", "jpeg", "jfif", "heic", "heif", "webp", "avif", "jp2", "tiff", "tif",
                "bmp", "gif",
            ],
        }
    }

    pub fn accepts(self, ext: &str) -> bool {
        self.extensions().contains(&ext)
    }
}

/// The media types a file extension can be (lower-case, no dot). `webm` and `gif` are ambiguous.
pub fn media_of_extension(ext: &str) -> Vec<Media> {
    [Media::Image, Media::Video, Media::Audio]
        .into_iter()
        .filter(|m| m.accepts(ext))
        .collect()
}

/// One file input of a tool.
#[derive(Debug, Clone, Copy)]
pub struct Input {
    /// The name a file takes in a multi-input folder: the API field without `_file_path(s)`.
    pub role: &'static str,
    /// Dotted JSON path of the field, e.g. `assets.image_file_path`.
    pub field: &'static str,
    pub media: &'static [Media],
    pub required: bool,
    /// The field is an array of paths (`assets.image_file_paths`).
    pub list: bool,
    /// A field set alongside this input when it is given (e.g. `assets.audio_source: file`).
    pub implies: Option<(&'static str, &'static str)>,
}

/// The text field of a tool: what a dropped `.txt` file (or `prompt.txt`) becomes.
#[derive(Debug, Clone, Copy)]
pub struct Text {
    /// Dotted JSON path, e.g. `style.prompt`, `content`, `script`.
    pub field: &'static str,
    pub required: bool,
    pub max_chars: Option<usize>,
}

/// What a finished job produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Still image(s); `count_field` names the body field with the number of images.
    Image {
        count_field: Option<&'static str>,
    },
    /// Short animation: GIF by default, or the container in `output_format`.
    Animation,
    Video,
    Audio,
    /// Face detection: one PNG crop per face found.
    FaceCrops,
}

#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub slug: &'static str,
    pub kind: ProjectKind,
    /// The project `type` the API reports (TOOLS.tsv `project_type(inferred)`).
    pub project_type: &'static str,
    pub summary: &'static str,
    pub inputs: &'static [Input],
    pub text: Option<Text>,
    pub output: Output,
    /// Built-in defaults for the required non-input fields (and a few helpful optional ones).
    pub defaults: fn() -> Value,
    /// Credits the mock charges per unit (per image, per second of video/music, per 10 chars of speech).
    pub credits: u32,
}

impl Tool {
    /// `POST` path of the create call.
    pub fn create_path(&self) -> String {
        format!("/v1/{}", self.slug)
    }

    pub fn required_inputs(&self) -> impl Iterator<Item = &Input> {
        self.inputs.iter().filter(|i| i.required)
    }

    /// Whether the minimal submission needs a folder: several required inputs, or a required
    /// input plus a required text (`prompt.txt`). Every tool also accepts a folder.
    pub fn needs_folder(&self) -> bool {
        let text = self.text.is_some_and(|t| t.required) && !self.inputs.is_empty();
        self.required_inputs().count() + usize::from(text) > 1
    }

    /// The input a single dropped media file of type `media` fills, if exactly one fits.
    pub fn input_for(&self, media: Media) -> Option<&Input> {
        let mut fits = self.inputs.iter().filter(|i| i.media.contains(&media));
        let first = fits.next()?;
        // Prefer a required input over optional ones of the same media type.
        if first.required || fits.clone().all(|i| !i.required) {
            Some(first)
        } else {
            fits.find(|i| i.required)
        }
    }

    pub fn input_by_role(&self, role: &str) -> Option<&Input> {
        self.inputs.iter().find(|i| i.role == role)
    }

    /// Every extension some input of this tool accepts, for messages.
    pub fn accepted_extensions(&self) -> Vec<&'static str> {
        let mut exts: Vec<&'static str> = Vec::new();
        for media in self.inputs.iter().flat_map(|i| i.media) {
            for ext in media.extensions() {
                if !exts.contains(ext) {
                    exts.push(ext);
                }
            }
        }
        exts
    }
}

/// The tool that makes projects of this kind and `type` (for adopting projects made elsewhere).
pub fn tool_of_type(kind: ProjectKind, project_type: &str) -> Option<&'static Tool> {
    TOOLS
        .iter()
        .find(|t| t.kind == kind && t.project_type == project_type)
}

pub fn tool(slug: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.slug == slug)
}

const IMAGE: &[Media] = &[Media::Image];
const VIDEO: &[Media] = &[Media::Video];
const AUDIO: &[Media] = &[Media::Audio];
const IMAGE_OR_VIDEO: &[Media] = &[Media::Image, Media::Video];

const fn input(role: &'static str, field: &'static str, media: &'static [Media]) -> Input {
    Input {
        role,
        field,
        media,
        required: true,
        list: false,
        implies: None,
    }
}

const fn optional(mut i: Input) -> Input {
    i.required = false;
    i
}

const fn implies(mut i: Input, field: &'static str, value: &'static str) -> Input {
    i.implies = Some((field, value));
    i
}

const fn text(field: &'static str, required: bool, max_chars: Option<usize>) -> Option<Text> {
    Some(Text {
        field,
        required,
        max_chars,
    })
}

const ONE_IMAGE: Output = Output::Image { count_field: None };

fn none() -> Value {
    json!({})
}

/// Every tool of the API, in TOOLS.tsv order.
pub static TOOLS: &[Tool] = &[
    Tool {
        slug: "ai-clothes-changer",
        kind: ProjectKind::Image,
        project_type: "CLOTHES_CHANGER",
        summary: "put a garment on a person",
        inputs: &[
            input("person", "assets.person_file_path", IMAGE),
            input("garment", "assets.garment_file_path", IMAGE),
        ],
        text: None,
        output: ONE_IMAGE,
        defaults: || json!({"assets": {"garment_type": "entire_outfit"}}),
        credits: 25,
    },
    Tool {
        slug: "ai-face-editor",
        kind: ProjectKind::Image,
        project_type: "FACE_EDITOR",
        summary: "slider-based facial edits (style sliders -100..100 in params.json)",
        inputs: &[input("image", "assets.image_file_path", IMAGE)],
        text: None,
        output: ONE_IMAGE,
        defaults: || json!({"style": {"enhance_face": false, "mouth_smile": 20}}),
        credits: 1,
    },
    Tool {
        slug: "ai-gif-generator",
        kind: ProjectKind::Image,
        project_type: "AI_GIF",
        summary: "text to a short animation",
        inputs: &[],
        text: text("style.prompt", true, Some(500)),
        output: Output::Animation,
        defaults: || json!({"output_format": "gif"}),
        credits: 50,
    },
    Tool {
        slug: "ai-headshot-generator",
        kind: ProjectKind::Image,
        project_type: "AI_HEADSHOT",
        summary: "portrait to professional headshot",
        inputs: &[input("image", "assets.image_file_path", IMAGE)],
        text: text("style.prompt", false, None),
        output: ONE_IMAGE,
        defaults: none,
        credits: 50,
    },
    Tool {
        slug: "ai-image-editor",
        kind: ProjectKind::Image,
        project_type: "AI_IMAGE_EDITOR",
        summary: "prompt-driven edit of 1-10 images",
        inputs: &[Input {
            role: "image",
            field: "assets.image_file_paths",
            media: IMAGE,
            required: true,
            list: true,
            implies: None,
        }],
        text: text("style.prompt", true, Some(15000)),
        output: Output::Image {
            count_field: Some("image_count"),
        },
        defaults: || json!({"image_count": 1, "aspect_ratio": "auto"}),
        credits: 50,
    },
    Tool {
        slug: "ai-image-generator",
        kind: ProjectKind::Image,
        project_type: "AI_IMAGE",
        summary: "text to image(s)",
        inputs: &[],
        text: text("style.prompt", true, None),
        output: Output::Image {
            count_field: Some("image_count"),
        },
        defaults: || json!({"image_count": 1, "aspect_ratio": "1:1", "style": {"tool": "general"}}),
        credits: 5,
    },
    Tool {
        slug: "ai-image-upscaler",
        kind: ProjectKind::Image,
        project_type: "IMAGE_UPSCALER",
        summary: "2x or 4x upscale",
        inputs: &[input("image", "assets.image_file_path", IMAGE)],
        text: text("style.prompt", false, None),
        output: ONE_IMAGE,
        defaults: || json!({"scale_factor": 2, "style": {"mode": "balanced"}}),
        credits: 50,
    },
    Tool {
        slug: "ai-meme-generator",
        kind: ProjectKind::Image,
        project_type: "AI_MEME",
        summary: "topic to meme",
        inputs: &[],
        text: text("style.topic", true, Some(200)),
        output: ONE_IMAGE,
        defaults: || json!({"style": {"template": "Random", "searchWeb": false}}),
        credits: 10,
    },
    Tool {
        slug: "ai-qr-code-generator",
        kind: ProjectKind::Image,
        project_type: "QR_CODE",
        summary: "artistic QR code of a text or URL",
        inputs: &[],
        text: text("content", true, None),
        output: ONE_IMAGE,
        defaults: || json!({"style": {"art_style": "Watercolor"}}),
        credits: 0,
    },
    Tool {
        slug: "body-swap",
        kind: ProjectKind::Image,
        project_type: "BODY_SWAP",
        summary: "place a person into a scene",
        inputs: &[
            input("person", "assets.person_file_path", IMAGE),
            input("scene", "assets.scene_file_path", IMAGE),
        ],
        text: None,
        output: ONE_IMAGE,
        defaults: || json!({"resolution": "1k"}),
        credits: 50,
    },
    Tool {
        slug: "face-swap-photo",
        kind: ProjectKind::Image,
        project_type: "FACE_SWAP",
        summary: "swap the face of source onto the faces of target",
        inputs: &[
            input("source", "assets.source_file_path", IMAGE),
            input("target", "assets.target_file_path", IMAGE),
        ],
        text: None,
        output: ONE_IMAGE,
        defaults: || json!({"assets": {"face_swap_mode": "all-faces"}}),
        credits: 10,
    },
    Tool {
        slug: "head-swap",
        kind: ProjectKind::Image,
        project_type: "HEAD_SWAP",
        summary: "put the head of one photo onto the body of another",
        inputs: &[
            input("body", "assets.body_file_path", IMAGE),
            input("head", "assets.head_file_path", IMAGE),
        ],
        text: None,
        output: ONE_IMAGE,
        defaults: none,
        credits: 10,
    },
    Tool {
        slug: "image-background-remover",
        kind: ProjectKind::Image,
        project_type: "BACKGROUND_REMOVER",
        summary: "cut out the subject (transparent PNG, or onto background_image)",
        inputs: &[
            input("image", "assets.image_file_path", IMAGE),
            optional(input(
                "background_image",
                "assets.background_image_file_path",
                IMAGE,
            )),
        ],
        text: None,
        output: ONE_IMAGE,
        defaults: none,
        credits: 5,
    },
    Tool {
        slug: "photo-colorizer",
        kind: ProjectKind::Image,
        project_type: "PHOTO_COLORIZER",
        summary: "colorize a black-and-white photo",
        inputs: &[input("image", "assets.image_file_path", IMAGE)],
        text: None,
        output: ONE_IMAGE,
        defaults: none,
        credits: 10,
    },
    Tool {
        slug: "ai-talking-photo",
        kind: ProjectKind::Video,
        project_type: "TALKING_PHOTO",
        summary: "animate a portrait speaking an audio track",
        inputs: &[
            input("image", "assets.image_file_path", IMAGE),
            input("audio", "assets.audio_file_path", AUDIO),
        ],
        text: text("style.prompt", false, None),
        output: Output::Video,
        defaults: || json!({"start_seconds": 0, "end_seconds": 10, "style": {"generation_mode": "realistic"}}),
        credits: 30,
    },
    Tool {
        slug: "ai-video-editor",
        kind: ProjectKind::Video,
        project_type: "VIDEO_EDITOR",
        summary: "prompt-driven video edit",
        inputs: &[input("video", "assets.video_file_path", VIDEO)],
        text: text("style.prompt", true, None),
        output: Output::Video,
        defaults: || json!({"start_seconds": 0, "end_seconds": 5}),
        credits: 30,
    },
    Tool {
        slug: "animation",
        kind: ProjectKind::Video,
        project_type: "ANIMATION",
        summary: "audio-reactive stylised animation from a prompt",
        inputs: &[
            optional(implies(
                input("audio", "assets.audio_file_path", AUDIO),
                "assets.audio_source",
                "file",
            )),
            optional(input("image", "assets.image_file_path", IMAGE)),
        ],
        text: text("style.prompt", true, None),
        output: Output::Video,
        defaults: || {
            json!({
                "fps": 12, "end_seconds": 5, "width": 512, "height": 512,
                "assets": {"audio_source": "none"},
                "style": {"art_style": "Painterly Illustration", "camera_effect": "Simple Zoom In",
                          "prompt_type": "custom", "transition_speed": 5}
            })
        },
        credits: 1,
    },
    Tool {
        slug: "audio-to-video",
        kind: ProjectKind::Video,
        project_type: "AUDIO_TO_VIDEO",
        summary: "video for an audio track (optional first-frame image)",
        inputs: &[
            input("audio", "assets.audio_file_path", AUDIO),
            optional(input("image", "assets.image_file_path", IMAGE)),
        ],
        text: text("style.prompt", false, None),
        output: Output::Video,
        defaults: || json!({"start_seconds": 0, "end_seconds": 5}),
        credits: 30,
    },
    Tool {
        slug: "auto-subtitle-generator",
        kind: ProjectKind::Video,
        project_type: "AUTO_SUBTITLE",
        summary: "burn subtitles into a video",
        inputs: &[input("video", "assets.video_file_path", VIDEO)],
        text: None,
        output: Output::Video,
        defaults: || json!({"start_seconds": 0, "end_seconds": 10, "style": {"template": "cinematic"}}),
        credits: 10,
    },
    Tool {
        slug: "character-replace",
        kind: ProjectKind::Video,
        project_type: "CHARACTER_REPLACE",
        summary: "replace the person in a video with a reference character",
        inputs: &[
            input("video", "assets.video_file_path", VIDEO),
            input("image", "assets.image_file_path", IMAGE),
        ],
        text: None,
        output: Output::Video,
        defaults: || json!({"start_seconds": 0, "end_seconds": 5, "style": {"mode": "replace"}}),
        credits: 30,
    },
    Tool {
        slug: "face-swap",
        kind: ProjectKind::Video,
        project_type: "FACE_SWAP",
        summary: "swap the face of image into a video (or GIF)",
        inputs: &[
            input("image", "assets.image_file_path", IMAGE),
            implies(
                input("video", "assets.video_file_path", VIDEO),
                "assets.video_source",
                "file",
            ),
        ],
        text: None,
        output: Output::Video,
        defaults: || {
            json!({"start_seconds": 0, "end_seconds": 10,
                   "assets": {"video_source": "file", "face_swap_mode": "all-faces"}})
        },
        credits: 30,
    },
    Tool {
        slug: "image-to-video",
        kind: ProjectKind::Video,
        project_type: "IMAGE_TO_VIDEO",
        summary: "animate a still image (optional last frame)",
        inputs: &[
            input("image", "assets.image_file_path", IMAGE),
            optional(input("end_image", "assets.end_image_file_path", IMAGE)),
        ],
        text: text("style.prompt", false, None),
        output: Output::Video,
        defaults: || json!({"end_seconds": 5}),
        credits: 30,
    },
    Tool {
        slug: "lip-sync",
        kind: ProjectKind::Video,
        project_type: "LIP_SYNC",
        summary: "make the person in a video speak an audio track",
        inputs: &[
            input("audio", "assets.audio_file_path", AUDIO),
            implies(
                input("video", "assets.video_file_path", VIDEO),
                "assets.video_source",
                "file",
            ),
        ],
        text: None,
        output: Output::Video,
        defaults: || {
            json!({"start_seconds": 0, "end_seconds": 10, "assets": {"video_source": "file"},
                   "style": {"generation_mode": "lite"}})
        },
        credits: 30,
    },
    Tool {
        slug: "text-to-video",
        kind: ProjectKind::Video,
        project_type: "TEXT_TO_VIDEO",
        summary: "text to video",
        inputs: &[],
        text: text("style.prompt", true, Some(2000)),
        output: Output::Video,
        defaults: || json!({"end_seconds": 5, "aspect_ratio": "16:9"}),
        credits: 30,
    },
    Tool {
        slug: "video-to-video",
        kind: ProjectKind::Video,
        project_type: "VIDEO_TO_VIDEO",
        summary: "restyle a video",
        inputs: &[implies(
            input("video", "assets.video_file_path", VIDEO),
            "assets.video_source",
            "file",
        )],
        text: None,
        output: Output::Video,
        defaults: || {
            json!({"start_seconds": 0, "end_seconds": 5, "assets": {"video_source": "file"},
                   "style": {"art_style": "3D Render", "prompt_type": "default"}})
        },
        credits: 30,
    },
    Tool {
        slug: "ai-ugc-ad",
        kind: ProjectKind::Video,
        project_type: "UGC_AD",
        summary: "spoken UGC-style ad from a product image and a script",
        inputs: &[input("image", "assets.image_file_path", IMAGE)],
        text: text("script", true, Some(2500)),
        output: Output::Video,
        defaults: || json!({"end_seconds": 10}),
        credits: 30,
    },
    Tool {
        slug: "ai-video-translator",
        kind: ProjectKind::Video,
        project_type: "VIDEO_TRANSLATOR",
        summary: "dub the speech of a video into another language",
        inputs: &[input("video", "assets.video_file_path", VIDEO)],
        text: None,
        output: Output::Video,
        defaults: || json!({"start_seconds": 0, "end_seconds": 10, "target_language": "Spanish"}),
        credits: 30,
    },
    Tool {
        slug: "ai-video-upscaler",
        kind: ProjectKind::Video,
        project_type: "VIDEO_UPSCALER",
        summary: "upscale a video",
        inputs: &[input("video", "assets.video_file_path", VIDEO)],
        text: None,
        output: Output::Video,
        defaults: || json!({"start_seconds": 0, "end_seconds": 10, "resolution": "1080p"}),
        credits: 30,
    },
    Tool {
        slug: "ai-voice-generator",
        kind: ProjectKind::Audio,
        project_type: "VOICE_GENERATOR",
        summary: "text to speech in a named voice",
        inputs: &[],
        text: text("style.prompt", true, Some(1000)),
        output: Output::Audio,
        defaults: || json!({"style": {"voice_name": "Morgan Freeman"}}),
        credits: 1,
    },
    Tool {
        slug: "ai-voice-cloner",
        kind: ProjectKind::Audio,
        project_type: "VOICE_CLONER",
        summary: "speak a text in the voice of an audio sample",
        inputs: &[input("audio", "assets.audio_file_path", AUDIO)],
        text: text("style.prompt", true, Some(1000)),
        output: Output::Audio,
        defaults: none,
        credits: 1,
    },
    Tool {
        slug: "ai-music-generator",
        kind: ProjectKind::Audio,
        project_type: "MUSIC_GENERATOR",
        summary: "music from a description",
        inputs: &[],
        text: text("style.prompt", true, None),
        output: Output::Audio,
        defaults: || json!({"duration": 30}),
        credits: 1,
    },
    Tool {
        slug: "face-detection",
        kind: ProjectKind::FaceDetection,
        project_type: "",
        summary: "find the faces of an image or video (for individual-faces swaps)",
        inputs: &[input("target", "assets.target_file_path", IMAGE_OR_VIDEO)],
        text: None,
        output: Output::FaceCrops,
        defaults: || json!({"confidence_score": 0.5}),
        credits: 0,
    },
];

/// How many images a body asks for (`count_field`, 1 to 16), 1 for every other output.
pub fn output_count(tool: &Tool, body: &Value) -> u64 {
    match tool.output {
        Output::Image {
            count_field: Some(f),
        } => get_path(body, f)
            .and_then(Value::as_f64)
            .unwrap_or(1.0)
            .clamp(1.0, 16.0) as u64,
        _ => 1,
    }
}

/// `start_seconds`, `end_seconds` of a video body (defaults 0 and 5).
pub fn clip(body: &Value) -> (f64, f64) {
    let start = body
        .get("start_seconds")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let end = body
        .get("end_seconds")
        .and_then(Value::as_f64)
        .unwrap_or(start + 5.0);
    (start, end.max(start + 0.1))
}

/// Characters of the tool's text field in the body.
fn text_len(tool: &Tool, body: &Value) -> usize {
    tool.text
        .and_then(|t| get_path(body, t.field))
        .and_then(Value::as_str)
        .map_or(0, |s| s.chars().count())
}

/// What a create of `tool` with this effective body costs, in credits, from the tool's unit
/// price (`Tool::credits`): the one rule the drive (expected prices, the budget) and the mock
/// (what it charges) share.
///
/// - voice tools: 1 credit per started 10 characters of the text;
/// - `ai-music-generator`: 1 credit per second of `duration` (default 30);
/// - `ai-image-upscaler`: the unit price, 4 times for `scale_factor` 4;
/// - video projects: the unit price per started second of the clip (`end_seconds -
///   start_seconds`, default 5 s), at least one;
/// - everything else: the unit price per image asked for (`count_field`, default 1).
pub fn price(tool: &Tool, body: &Value) -> i64 {
    let base = i64::from(tool.credits);
    match (tool.kind, tool.slug) {
        (_, "ai-voice-generator" | "ai-voice-cloner") => (text_len(tool, body) as i64 + 9) / 10,
        (_, "ai-music-generator") => body.get("duration").and_then(Value::as_i64).unwrap_or(30),
        (_, "ai-image-upscaler") => {
            let four = body.get("scale_factor").and_then(Value::as_f64) == Some(4.0);
            if four { base * 4 } else { base }
        }
        (ProjectKind::Video, _) => {
            let (start, end) = clip(body);
            base * ((end - start).ceil() as i64).max(1)
        }
        _ => base * output_count(tool, body) as i64,
    }
}

/// The user's overrides of the built-in defaults, by tool slug: the defaults file, a JSON
/// object such as `{"ai-image-upscaler": {"scale_factor": 4}}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides(pub std::collections::BTreeMap<String, Value>);

impl Overrides {
    pub fn parse(text: &str) -> Result<Overrides, String> {
        let map: std::collections::BTreeMap<String, Value> =
            serde_json::from_str(text).map_err(|e| e.to_string())?;
        for (slug, body) in &map {
            if tool(slug).is_none() {
                return Err(format!("no such tool {slug:?}"));
            }
            if !body.is_object() {
                return Err(format!("{slug}: the defaults must be a JSON object"));
            }
        }
        Ok(Overrides(map))
    }

    /// The defaults a submission to `tool` starts from: built-in, then the user's.
    pub fn body(&self, tool: &Tool) -> Value {
        let mut body = (tool.defaults)();
        if let Some(over) = self.0.get(tool.slug) {
            merge(&mut body, over);
        }
        body
    }
}

/// Reads a dotted path (`assets.image_file_path`) from a JSON value.
pub fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

/// Writes a dotted path, creating intermediate objects.
pub fn set_path(value: &mut Value, path: &str, new: Value) {
    let mut cur = value;
    let mut keys = path.split('.').peekable();
    while let Some(key) = keys.next() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let map = cur.as_object_mut().expect("just made an object");
        if keys.peek().is_none() {
            map.insert(key.to_string(), new);
            return;
        }
        cur = map.entry(key).or_insert_with(|| json!({}));
    }
}

/// Deep-merges `over` into `base`: objects merge key by key, anything else replaces.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_set_get_and_merge() {
        let mut v = json!({"style": {"mode": "x"}});
        set_path(&mut v, "assets.image_file_path", json!("a.png"));
        assert_eq!(
            get_path(&v, "assets.image_file_path"),
            Some(&json!("a.png"))
        );
        merge(
            &mut v,
            &json!({"style": {"prompt": "p"}, "scale_factor": 4}),
        );
        assert_eq!(
            v,
            json!({"style": {"mode": "x", "prompt": "p"}, "scale_factor": 4,
                   "assets": {"image_file_path": "a.png"}})
        );
    }

    #[test]
    fn overrides_merge_over_builtin_defaults() {
        let o = Overrides::parse(r#"{"ai-image-upscaler": {"scale_factor": 4}}"#).unwrap();
        let t = tool("ai-image-upscaler").unwrap();
        assert_eq!(
            o.body(t),
            json!({"scale_factor": 4, "style": {"mode": "balanced"}})
        );
        assert!(Overrides::parse(r#"{"nope": {}}"#).is_err());
        assert!(Overrides::parse(r#"{"ai-image-upscaler": 3}"#).is_err());
    }

    #[test]
    fn single_file_input_prefers_required() {
        let t = tool("audio-to-video").unwrap();
        assert_eq!(t.input_for(Media::Audio).unwrap().role, "audio");
        assert_eq!(t.input_for(Media::Image).unwrap().role, "image");
        let t = tool("image-background-remover").unwrap();
        assert_eq!(t.input_for(Media::Image).unwrap().role, "image");
        assert!(tool("face-swap").unwrap().needs_folder());
        assert!(tool("ai-video-editor").unwrap().needs_folder());
        assert!(!tool("ai-image-upscaler").unwrap().needs_folder());
        assert!(!tool("animation").unwrap().needs_folder());
    }
}
