//! HTTP routes of the mock. API routes under `/v1/` as the real service; the mock's own under
//! `/_mock/`: signed upload and download URLs, and the admin endpoints (`requests`, `faults`,
//! `credits`).

// Handlers short-cut with a ready `Response` as their error; its size does not matter here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State as Extract};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::faults::{Fault, Faults, Op, op_of};
use super::project::project_value;
use super::render;
use super::state::{Project, Record, State, Upload, new_id};
use crate::api::catalog::{self, Media, ProjectKind};
use crate::api::schema::validate_create;
use crate::api::types::timestamp;

type Shared = Arc<State>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/files/upload-urls", post(upload_urls))
        .route("/v1/account", get(account))
        .route("/v1/face-detection", post(create_face_detection))
        .route("/v1/face-detection/{id}", get(get_face_detection))
        .route(
            "/v1/image-projects/{id}",
            get(get_image).delete(delete_image),
        )
        .route(
            "/v1/video-projects/{id}",
            get(get_video).delete(delete_video),
        )
        .route(
            "/v1/audio-projects/{id}",
            get(get_audio).delete(delete_audio),
        )
        .route("/v1/{slug}", post(create))
        .route("/_mock/upload/{*path}", put(upload))
        .route("/_mock/files/{id}/{name}", get(download))
        .route("/_mock/requests", get(requests).delete(clear_requests))
        .route("/_mock/faults", get(get_faults).post(set_faults))
        .route("/_mock/credits", post(set_credits))
        .route("/_mock/webhook", post(set_webhook))
        .fallback(|| async { not_found() })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// A JSON error in both generations' shape: `{code, message}`.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    json_response(status, json!({"code": code, "message": message.into()}))
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "Not Found")
}

/// Records every request, checks auth on `/v1/`, and applies faults and latency.
async fn observe(Extract(state): Extract<Shared>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let op = op_of(&method, &path);
    let slug = (op == Op::Create).then(|| path.trim_start_matches("/v1/").to_string());
    let time = timestamp(SystemTime::now());

    // Keep JSON bodies for the record; uploads stream to disk and are only counted; a download
    // has no body, and a ranged one notes its `Range` and where it starts.
    let (req, body) = if op == Op::Download {
        let range = req
            .headers()
            .get(header::RANGE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let body = match range {
            Some(r) => json!({"range": r, "range_start": range_start(&r)}),
            None => Value::Null,
        };
        (req, body)
    } else if op == Op::Upload {
        let bytes = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        (req, json!({ "bytes": bytes }))
    } else {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, 16 << 20)
            .await
            .unwrap_or_default();
        let recorded = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (Request::from_parts(parts, Body::from(bytes)), recorded)
    };

    let fault = if op.is_faultable() {
        let (latency, fault) = {
            let mut inner = state.lock();
            let fault = inner.faults.pick(op, slug.as_deref());
            (inner.faults.latency_ms, fault)
        };
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        fault
    } else {
        None
    };

    let resp = if path.starts_with("/v1/")
        && let Err(resp) = authorize(&state, req.headers())
    {
        resp
    } else {
        match fault {
            Some(Fault::Status { status }) => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let code = crate::api::error::default_code(status.as_u16());
                error(status, code, format!("mock fault: {status}"))
            }
            Some(Fault::Throttle { retry_after_secs }) => {
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    "Too many requests",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, retry_after_secs.into());
                r
            }
            Some(Fault::Drop) => cut_body(next.run(req).await).await,
            Some(Fault::Gateway { status }) => {
                let _ = next.run(req).await;
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::GATEWAY_TIMEOUT);
                (status, "upstream timed out\n").into_response()
            }
            None => next.run(req).await,
        }
    };

    if op != Op::Admin && op != Op::Download {
        state.persist();
    }
    if op != Op::Admin {
        state.record(Record {
            method,
            path,
            op,
            body,
            status: resp.status().as_u16(),
            time,
        });
    }
    resp
}

fn authorize(state: &State, headers: &HeaderMap) -> Result<(), Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    let ok = match &state.config.api_key {
        Some(key) => token == key,
        None => !token.is_empty(),
    };
    if ok {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
        ))
    }
}

/// Sends the head and half of the body, then breaks the connection.
async fn cut_body(resp: Response) -> Response {
    use axum::body::HttpBody;
    let (mut parts, body) = resp.into_parts();
    // Streamed, so a cut gigabyte download costs no memory: pass half the bytes, then fail. A
    // streamed body (a download) knows its length only from its Content-Length.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(len) = body.size_hint().exact().or(declared) else {
        return Response::from_parts(
            parts,
            Body::from_stream(futures_util::stream::iter([dropped()])),
        );
    };
    parts.headers.insert(header::CONTENT_LENGTH, len.into());
    let half = body.into_data_stream().scan(len / 2, |left, chunk| {
        let keep = chunk.map(|c| {
            let n = c.len().min(*left as usize);
            *left -= n as u64;
            c.slice(..n)
        });
        std::future::ready(
            keep.ok()
                .filter(|c| !c.is_empty())
                .map(Ok::<_, std::io::Error>),
        )
    });
    // Let the half reach the wire before the connection breaks: the error comes a poll later.
    let cut = futures_util::stream::once(async {
        tokio::task::yield_now().await;
        dropped()
    });
    Response::from_parts(parts, Body::from_stream(half.chain(cut)))
}

fn dropped() -> Result<Bytes, std::io::Error> {
    Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "mock fault: connection dropped",
    ))
}

fn parse_json(body: &Bytes) -> Result<Value, Response> {
    if body.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing request body",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("Request body is not valid JSON: {e}"),
        )
    })
}

fn validate(path: &str, body: &Value) -> Result<(), Response> {
    validate_create(path, body).map_err(|inv| {
        json_response(
            StatusCode::BAD_REQUEST,
            json!({"code": "invalid_request", "message": inv.message, "field": inv.field}),
        )
    })
}

async fn upload_urls(Extract(state): Extract<Shared>, body: Bytes) -> Response {
    let body = match parse_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = validate("/v1/files/upload-urls", &body) {
        return r;
    }
    let items = body["items"].as_array().cloned().unwrap_or_default();
    let mut minted = Vec::new();
    for item in &items {
        let ext = item["extension"].as_str().unwrap_or_default();
        let kind = item["type"].as_str().unwrap_or_default();
        let media = match kind {
            "image" => Media::Image,
            "video" => Media::Video,
            _ => Media::Audio,
        };
        if !media.accepts(ext) {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable_entity",
                format!(
                    "'{ext}' is an invalid {kind} extension. Possible extensions are '{}'",
                    media.extensions().join(", ")
                ),
            );
        }
        minted.push((media, ext.to_string()));
    }
    let lifetime = state.url_lifetime();
    let mut out = Vec::new();
    let mut inner = state.lock();
    for (media, ext) in minted {
        let name = format!("{}.{ext}", new_id());
        let file_path = format!("api-assets/{}/{name}", &new_id()[1..9]);
        let (url, expires) = state.sign("PUT", &format!("/_mock/upload/{file_path}"), lifetime);
        inner.uploads.insert(
            file_path.clone(),
            Upload {
                disk: state.upload_disk_path(&name),
                media,
                complete: false,
            },
        );
        out.push(
            json!({"upload_url": url, "expires_at": timestamp(expires), "file_path": file_path}),
        );
    }
    json_response(StatusCode::OK, json!({ "items": out }))
}

/// The raw-body PUT of an upload URL, streamed to disk.
async fn upload(
    Extract(state): Extract<Shared>,
    Path(file_path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    if let Err(why) = state.verify("PUT", &format!("/_mock/upload/{file_path}"), &query) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("upload URL {why}"),
        );
    }
    let disk = match state.lock().uploads.get(&file_path) {
        Some(u) => u.disk.clone(),
        None => return error(StatusCode::NOT_FOUND, "not_found", "Not Found"),
    };
    let part = disk.with_extension("part");
    let result = async {
        let mut f = tokio::fs::File::create(&part).await?;
        let mut stream = req.into_body().into_data_stream();
        while let Some(chunk) = stream.next().await {
            f.write_all(&chunk.map_err(std::io::Error::other)?).await?;
        }
        f.flush().await?;
        tokio::fs::rename(&part, &disk).await
    }
    .await;
    match result {
        Ok(()) => {
            if let Some(u) = state.lock().uploads.get_mut(&file_path) {
                u.complete = true;
            }
            StatusCode::OK.into_response()
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("upload failed: {e}"),
            )
        }
    }
}

async fn create(
    Extract(state): Extract<Shared>,
    Path(slug): Path<String>,
    body: Bytes,
) -> Response {
    let Some(tool) = catalog::tool(&slug).filter(|t| t.kind != ProjectKind::FaceDetection) else {
        return not_found();
    };
    let body = match parse_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = validate(&tool.create_path(), &body) {
        return r;
    }
    if let Some(r) = undecodable_upload(&state, tool, &body) {
        return r;
    }
    let cost = render::cost(tool, &body);
    let id = new_id();
    {
        let mut inner = state.lock();
        if inner.credits < cost {
            return error(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_credits",
                format!("This job needs {cost} credits; {} are left", inner.credits),
            );
        }
        inner.credits -= cost;
        inner.projects.insert(
            id.clone(),
            Project {
                id: id.clone(),
                tool,
                body,
                created: SystemTime::now(),
                started: std::time::Instant::now(),
                credits: cost,
                outcome: Default::default(),
            },
        );
    }
    let webhook = state.lock().webhook.clone();
    if let Some(target) = webhook {
        tokio::spawn(super::webhooks::follow(
            state.clone(),
            id.clone(),
            tool.kind,
            target,
        ));
    }
    let mut resp = json!({"id": id, "credits_charged": cost});
    match tool.kind {
        ProjectKind::Image => resp["frame_cost"] = cost.into(),
        ProjectKind::Video => resp["estimated_frame_cost"] = cost.into(),
        _ => {}
    }
    json_response(StatusCode::OK, resp)
}

/// The API decodes the media it is given at create: an asset uploaded to this server whose
/// bytes are not the type its field takes (a JPEG uploaded as a video) is refused with 422
/// `invalid_<type>_file`, before anything is charged. Assets never uploaded here (the official
/// SDK's test bodies name made-up paths) are left to the render, as before.
fn undecodable_upload(
    state: &State,
    tool: &'static catalog::Tool,
    body: &Value,
) -> Option<Response> {
    let inputs = render::resolve_inputs(tool, body, &state.lock().uploads, &state.output_dir(""));
    for input in inputs {
        let render::Source::Uploaded { disk, .. } = &input.source else {
            continue;
        };
        let mut head = Vec::with_capacity(crate::media::HEAD_LEN);
        let read = std::fs::File::open(disk).and_then(|f| {
            use std::io::Read;
            f.take(crate::media::HEAD_LEN as u64).read_to_end(&mut head)
        });
        if read.is_err() {
            continue;
        }
        let sniffed = crate::media::sniff(&head);
        if sniffed.is_some_and(|s| input.expects.iter().any(|m| s.fits(*m))) {
            continue;
        }
        let want = input.expects[0].as_str();
        let what = match sniffed {
            Some(s) => format!("is {}", s.describe()),
            None => "could not be decoded".to_string(),
        };
        return Some(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("invalid_{want}_file"),
            format!(
                "{} ({}) {what}, not a {want} file",
                input.field, input.value
            ),
        ));
    }
    None
}

async fn create_face_detection(Extract(state): Extract<Shared>, body: Bytes) -> Response {
    let body = match parse_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = validate("/v1/face-detection", &body) {
        return r;
    }
    let tool = catalog::tool("face-detection").expect("in the catalogue");
    let id = new_id();
    state.lock().projects.insert(
        id.clone(),
        Project {
            id: id.clone(),
            tool,
            body,
            created: SystemTime::now(),
            started: std::time::Instant::now(),
            credits: 0,
            outcome: Default::default(),
        },
    );
    json_response(StatusCode::OK, json!({"id": id, "credits_charged": 0}))
}

/// The project object of spec/API.md §3 as the official SDK requires it.
async fn project_json(state: &Shared, id: &str, kind: ProjectKind) -> Response {
    match project_value(state, id, kind).await {
        Some(body) => json_response(StatusCode::OK, body),
        None => not_found(),
    }
}

async fn get_image(Extract(s): Extract<Shared>, Path(id): Path<String>) -> Response {
    project_json(&s, &id, ProjectKind::Image).await
}
async fn get_video(Extract(s): Extract<Shared>, Path(id): Path<String>) -> Response {
    project_json(&s, &id, ProjectKind::Video).await
}
async fn get_audio(Extract(s): Extract<Shared>, Path(id): Path<String>) -> Response {
    project_json(&s, &id, ProjectKind::Audio).await
}
async fn get_face_detection(Extract(s): Extract<Shared>, Path(id): Path<String>) -> Response {
    project_json(&s, &id, ProjectKind::FaceDetection).await
}

/// DELETE removes the project and its outputs for good; a later GET or DELETE is 404.
async fn delete_project(state: &Shared, id: &str, kind: ProjectKind) -> Response {
    let removed = {
        let mut inner = state.lock();
        match inner.projects.get(id) {
            Some(p) if p.tool.kind == kind => inner.projects.remove(id),
            _ => None,
        }
    };
    if removed.is_none() {
        return not_found();
    }
    let _ = tokio::fs::remove_dir_all(state.output_dir(id)).await;
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_image(Extract(s): Extract<Shared>, Path(id): Path<String>) -> Response {
    delete_project(&s, &id, ProjectKind::Image).await
}
async fn delete_video(Extract(s): Extract<Shared>, Path(id): Path<String>) -> Response {
    delete_project(&s, &id, ProjectKind::Video).await
}
async fn delete_audio(Extract(s): Extract<Shared>, Path(id): Path<String>) -> Response {
    delete_project(&s, &id, ProjectKind::Audio).await
}

/// Signed, expiring, unauthenticated output download, streamed from disk. Answers a single
/// byte range (`Range: bytes=N-`, `bytes=N-M`, `bytes=-N`) with `206` and only that part.
async fn download(
    Extract(state): Extract<Shared>,
    Path((id, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(why) = state.verify("GET", &format!("/_mock/files/{id}/{name}"), &query) {
        let message = if why == "expired" {
            "Request has expired".to_string()
        } else {
            format!("download URL: {why}")
        };
        return error(StatusCode::FORBIDDEN, "forbidden", message);
    }
    if name.contains('/') || name.starts_with('.') {
        return not_found();
    }
    let path = state.output_dir(&id).join(&name);
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return not_found();
    };
    let total = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let mime = render::mime_of(&name).to_string();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (start, end) = match wanted(range, total) {
        Wanted::Whole => {
            return (
                [
                    (header::CONTENT_TYPE, mime),
                    (header::CONTENT_LENGTH, total.to_string()),
                    (header::ACCEPT_RANGES, "bytes".to_string()),
                ],
                Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
                    file,
                    256 * 1024,
                )),
            )
                .into_response();
        }
        Wanted::Unsatisfiable => {
            let mut r = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the file has {total} bytes"),
            );
            let h = r.headers_mut();
            h.insert(header::ACCEPT_RANGES, "bytes".parse().expect("valid"));
            h.insert(
                header::CONTENT_RANGE,
                format!("bytes */{total}").parse().expect("valid"),
            );
            return r;
        }
        Wanted::Part { start, end } => (start, end),
    };
    if let Err(e) = file.seek(std::io::SeekFrom::Start(start)).await {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            format!("cannot read the output: {e}"),
        );
    }
    let len = end - start + 1;
    (
        StatusCode::PARTIAL_CONTENT,
        [
            (header::CONTENT_TYPE, mime),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::ACCEPT_RANGES, "bytes".to_string()),
            (
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{total}"),
            ),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            file.take(len),
            256 * 1024,
        )),
    )
        .into_response()
}

/// What a `Range` header asks of a file of `total` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// No range, or one the mock ignores (malformed, or several ranges): the whole file, 200.
    Whole,
    /// Bytes `start..=end`, both within the file: 206.
    Part { start: u64, end: u64 },
    /// A range wholly past the end: 416.
    Unsatisfiable,
}

fn wanted(range: Option<&str>, total: u64) -> Wanted {
    let Some(spec) = range.and_then(bytes_spec) else {
        return Wanted::Whole;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return Wanted::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // `bytes=-N`: the last N bytes.
        return match last.parse::<u64>() {
            Ok(0) => Wanted::Unsatisfiable,
            Ok(_) if total == 0 => Wanted::Unsatisfiable,
            Ok(n) => Wanted::Part {
                start: total - n.min(total),
                end: total - 1,
            },
            Err(_) => Wanted::Whole,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return Wanted::Whole;
    };
    let last = if last.is_empty() {
        None
    } else {
        match last.parse::<u64>() {
            Ok(l) if l >= start => Some(l),
            _ => return Wanted::Whole,
        }
    };
    if start >= total {
        return Wanted::Unsatisfiable;
    }
    Wanted::Part {
        start,
        end: last.map_or(total - 1, |l| l.min(total - 1)),
    }
}

/// The range set of a `bytes=` header, when it holds a single range.
fn bytes_spec(header: &str) -> Option<&str> {
    let (unit, spec) = header.trim().split_once('=')?;
    (unit.trim().eq_ignore_ascii_case("bytes") && !spec.contains(',')).then_some(spec.trim())
}

/// Where a `Range` header starts, for the record (`None` for a suffix range or a malformed one).
fn range_start(header: &str) -> Option<u64> {
    bytes_spec(header)?.split_once('-')?.0.trim().parse().ok()
}

async fn account(Extract(state): Extract<Shared>) -> Response {
    let credits = state.lock().credits.max(0);
    json_response(
        StatusCode::OK,
        json!({"id": "mock-account", "email": "mock@example.com", "tier": "business",
               "credits": credits, "subscription": null}),
    )
}

async fn requests(Extract(state): Extract<Shared>) -> Response {
    json_response(
        StatusCode::OK,
        json!({"requests": state.records(), "counts": state.counts()}),
    )
}

async fn clear_requests(Extract(state): Extract<Shared>) -> Response {
    state.clear_records();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_faults(Extract(state): Extract<Shared>) -> Response {
    json_response(
        StatusCode::OK,
        serde_json::to_value(state.faults()).expect("serializable"),
    )
}

async fn set_faults(Extract(state): Extract<Shared>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(f) => {
            state.set_faults(f.clone());
            json_response(
                StatusCode::OK,
                serde_json::to_value(f).expect("serializable"),
            )
        }
        Err(e) => error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
    }
}

/// `POST /_mock/webhook {"url": ..., "secret": ...}` (or `null`): where job events go.
async fn set_webhook(Extract(state): Extract<Shared>, body: Bytes) -> Response {
    match serde_json::from_slice::<Option<super::WebhookTarget>>(&body) {
        Ok(target) => {
            state.lock().webhook = target.clone();
            json_response(StatusCode::OK, json!({ "webhook": target }))
        }
        Err(e) => error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
    }
}

async fn set_credits(Extract(state): Extract<Shared>, body: Bytes) -> Response {
    match parse_json(&body).map(|v| v["credits"].as_i64()) {
        Ok(Some(c)) => {
            state.set_credits(c);
            json_response(StatusCode::OK, json!({ "credits": c }))
        }
        Ok(None) => error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "credits must be an integer",
        ),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        let part = |start, end| Wanted::Part { start, end };
        assert_eq!(wanted(None, 100), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=10-"), 100), part(10, 99));
        assert_eq!(wanted(Some("bytes=10-19"), 100), part(10, 19));
        assert_eq!(wanted(Some("bytes=0-0"), 100), part(0, 0));
        assert_eq!(wanted(Some("bytes=90-500"), 100), part(90, 99));
        assert_eq!(wanted(Some("bytes=-30"), 100), part(70, 99));
        assert_eq!(wanted(Some("bytes=-300"), 100), part(0, 99));
        assert_eq!(wanted(Some("Bytes = 5-"), 100), part(5, 99));
        assert_eq!(wanted(Some("bytes=100-"), 100), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=0-"), 0), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-0"), 100), Wanted::Unsatisfiable);
        // Malformed or multiple ranges are ignored: the whole file.
        for ignored in [
            "bytes=20-10",
            "bytes=x-",
            "items=0-5",
            "bytes=0-1,5-6",
            "bytes=5",
        ] {
            assert_eq!(wanted(Some(ignored), 100), Wanted::Whole, "{ignored}");
        }
        assert_eq!(range_start("bytes=42-"), Some(42));
        assert_eq!(range_start("bytes=-42"), None);
    }
}
