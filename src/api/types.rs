//! Serde models of the Magic Hour API's requests and responses (spec/API.md §3–§10).
//!
//! Create bodies are JSON objects built from the catalogue's defaults and the user's files, so they
//! are `serde_json::Value`s checked against `spec/create-schemas.json`, not thirty structs.
//! Responses carry the deprecated fields the official SDK 0.90.0 requires (`frame_cost`,
//! `estimated_frame_cost`, `total_frame_cost`, `download`), so the mock can serve them.

use serde::{Deserialize, Serialize};

use super::catalog::ProjectKind;

/// Project status (spec/API.md §3.2). Face detection uses the first four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Draft,
    Queued,
    Rendering,
    Complete,
    Error,
    Canceled,
}

impl Status {
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Complete | Status::Error | Status::Canceled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Queued => "queued",
            Status::Rendering => "rendering",
            Status::Complete => "complete",
            Status::Error => "error",
            Status::Canceled => "canceled",
        }
    }
}

/// One output of a finished project: a signed URL that needs no auth and expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Download {
    pub url: String,
    pub expires_at: String,
}

/// Why a project failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectError {
    pub code: String,
    pub message: String,
}

/// `POST /v1/<tool>` answer. `frame_cost` (image tools) and `estimated_frame_cost` (video tools)
/// are deprecated but required by the official SDK.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateResponse {
    pub id: String,
    pub credits_charged: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_cost: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_frame_cost: Option<i64>,
}

/// `GET /v1/image-projects/{id}` (spec/API.md §3.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageProject {
    pub id: String,
    pub name: Option<String>,
    pub status: Status,
    pub image_count: i64,
    #[serde(rename = "type")]
    pub project_type: String,
    pub created_at: String,
    pub enabled: bool,
    pub credits_charged: i64,
    /// Deprecated twin of `credits_charged`; required by SDK 0.90.0.
    pub total_frame_cost: i64,
    pub downloads: Vec<Download>,
    pub error: Option<ProjectError>,
}

/// `GET /v1/video-projects/{id}` (spec/API.md §3.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoProject {
    pub id: String,
    pub name: Option<String>,
    pub status: Status,
    #[serde(rename = "type")]
    pub project_type: String,
    pub created_at: String,
    pub width: i64,
    pub height: i64,
    pub enabled: bool,
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub credits_charged: i64,
    pub total_frame_cost: i64,
    pub fps: f64,
    pub error: Option<ProjectError>,
    /// Legacy single-output form of `downloads[0]`; the key must be present (null until complete).
    pub download: Option<Download>,
    pub downloads: Vec<Download>,
}

/// `GET /v1/audio-projects/{id}` (spec/API.md §3.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioProject {
    pub id: String,
    pub name: Option<String>,
    pub status: Status,
    #[serde(rename = "type")]
    pub project_type: String,
    pub created_at: String,
    pub enabled: bool,
    pub credits_charged: i64,
    pub downloads: Vec<Download>,
    pub error: Option<ProjectError>,
}

/// One detected face: `path` goes into `face_mappings[].original_face`, `url` is a viewable copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Face {
    pub path: String,
    pub url: String,
}

/// `GET /v1/face-detection/{id}` (spec/API.md §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceDetection {
    pub id: String,
    pub credits_charged: i64,
    pub status: Status,
    pub faces: Vec<Face>,
}

/// Any pollable object, as the engine sees it: whatever the kind, a status, outputs and an error.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Project {
    Video(VideoProject),
    Image(ImageProject),
    Audio(AudioProject),
    Faces(FaceDetection),
}

impl Project {
    /// Parses a GET answer as the model of its kind (the kind is known from the tool).
    pub fn from_value(kind: ProjectKind, v: serde_json::Value) -> serde_json::Result<Project> {
        Ok(match kind {
            ProjectKind::Image => Project::Image(serde_json::from_value(v)?),
            ProjectKind::Video => Project::Video(serde_json::from_value(v)?),
            ProjectKind::Audio => Project::Audio(serde_json::from_value(v)?),
            ProjectKind::FaceDetection => Project::Faces(serde_json::from_value(v)?),
        })
    }

    pub fn id(&self) -> &str {
        match self {
            Project::Image(p) => &p.id,
            Project::Video(p) => &p.id,
            Project::Audio(p) => &p.id,
            Project::Faces(p) => &p.id,
        }
    }

    pub fn status(&self) -> Status {
        match self {
            Project::Image(p) => p.status,
            Project::Video(p) => p.status,
            Project::Audio(p) => p.status,
            Project::Faces(p) => p.status,
        }
    }

    /// The output URLs in order (face crops for face detection).
    pub fn download_urls(&self) -> Vec<String> {
        match self {
            Project::Image(p) => p.downloads.iter().map(|d| d.url.clone()).collect(),
            Project::Video(p) => p.downloads.iter().map(|d| d.url.clone()).collect(),
            Project::Audio(p) => p.downloads.iter().map(|d| d.url.clone()).collect(),
            Project::Faces(p) => p.faces.iter().map(|f| f.url.clone()).collect(),
        }
    }

    pub fn error(&self) -> Option<&ProjectError> {
        match self {
            Project::Image(p) => p.error.as_ref(),
            Project::Video(p) => p.error.as_ref(),
            Project::Audio(p) => p.error.as_ref(),
            Project::Faces(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadItem {
    #[serde(rename = "type")]
    pub media: String,
    pub extension: String,
}

/// `POST /v1/files/upload-urls` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadUrlsRequest {
    pub items: Vec<UploadItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadUrl {
    pub upload_url: String,
    pub expires_at: String,
    pub file_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadUrlsResponse {
    pub items: Vec<UploadUrl>,
}

/// `GET /v1/account` (SDK 0.90.0 only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub email: Option<String>,
    pub tier: String,
    pub credits: i64,
    pub subscription: Option<serde_json::Value>,
}

/// Error body: the newest spec sends `code` and `message`, older ones only `message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: String,
}

/// ISO-8601 UTC with milliseconds, as the API writes timestamps (`2024-10-19T05:16:19.027Z`).
pub fn timestamp(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}
