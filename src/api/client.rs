//! The HTTP client of the Magic Hour API (reqwest + rustls).
//!
//! Every call returns a typed [`ApiError`] that tells refusals, retryable failures and unknown
//! outcomes apart. Nothing here retries by itself: callers wrap idempotent calls in
//! [`super::retry::retry`], and never a create whose outcome is unknown.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE, RETRY_AFTER,
};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::catalog::{Media, ProjectKind};
use super::error::{ApiError, default_code};
use super::types::{
    Account, CreateResponse, ErrorBody, Project, UploadItem, UploadUrl, UploadUrlsRequest,
    UploadUrlsResponse,
};

/// The API key. Its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into().trim().to_string())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: ApiKey,
}

/// Whether a failed request may have had an effect on the server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// GET, DELETE, upload-urls, uploads: repeating them is harmless.
    Idempotent,
    /// A create: once sent, a lost answer means the outcome is unknown.
    Billing,
}

impl Client {
    /// `base` is the API root without `/v1`, e.g. `https://api.magichour.ai`.
    pub fn new(base: &str, key: ApiKey) -> Result<Client, ApiError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("mhfs/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            // A redirect would turn a create into a GET, or send a body elsewhere: refuse them.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ApiError::Local(format!("cannot build HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            key,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        effect: Effect,
    ) -> Result<T, ApiError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header(AUTHORIZATION, format!("Bearer {}", self.key.0))
            .header("accept", "application/json");
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| send_error(e, effect))?;
        let resp = check_status(resp, effect).await?;
        let bytes = resp.bytes().await.map_err(|e| match effect {
            Effect::Billing => ApiError::UnknownOutcome {
                reason: format!("{method} {path}: answer cut off: {e}"),
            },
            Effect::Idempotent => ApiError::Retryable {
                status: None,
                retry_after: None,
                reason: format!("{method} {path}: answer cut off: {e}"),
            },
        })?;
        // An empty 2xx body (DELETE's 204) parses as JSON null.
        let text = if bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes
        };
        serde_json::from_slice(text).map_err(|e| {
            let reason = format!("{method} {path}: unexpected answer: {e}");
            match effect {
                Effect::Billing => ApiError::UnknownOutcome { reason },
                Effect::Idempotent => ApiError::Local(reason),
            }
        })
    }

    /// `POST /v1/files/upload-urls`.
    pub async fn upload_urls(&self, items: &[(Media, &str)]) -> Result<Vec<UploadUrl>, ApiError> {
        let body = UploadUrlsRequest {
            items: items
                .iter()
                .map(|(m, ext)| UploadItem {
                    media: m.as_str().to_string(),
                    extension: ext.to_string(),
                })
                .collect(),
        };
        let body = serde_json::to_value(body).expect("serializable");
        let resp: UploadUrlsResponse = self
            .call(
                Method::POST,
                "/v1/files/upload-urls",
                Some(&body),
                Effect::Idempotent,
            )
            .await?;
        if resp.items.len() != items.len() {
            return Err(ApiError::Local(format!(
                "upload-urls answered {} items for {}",
                resp.items.len(),
                items.len()
            )));
        }
        Ok(resp.items)
    }

    /// PUTs a local file to a pre-signed upload URL, streamed: memory does not grow with size.
    /// No Authorization header: the key never goes to storage URLs.
    pub async fn put_file(&self, upload_url: &str, file: &Path) -> Result<u64, ApiError> {
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| ApiError::Local(format!("cannot read {}: {e}", file.display())))?;
        let len = f
            .metadata()
            .await
            .map_err(|e| ApiError::Local(format!("cannot stat {}: {e}", file.display())))?
            .len();
        let body =
            reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024));
        let resp = self
            .http
            .put(upload_url)
            .header(CONTENT_LENGTH, len)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| send_error(e, Effect::Idempotent))?;
        check_status(resp, Effect::Idempotent).await?;
        Ok(len)
    }

    /// The whole upload flow for one file: get a URL, PUT the bytes, return the `file_path`
    /// to put into the create body.
    pub async fn upload_file(&self, file: &Path, media: Media) -> Result<String, ApiError> {
        let ext = file
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| ApiError::Local(format!("{} has no extension", file.display())))?;
        let url = self.upload_urls(&[(media, &ext)]).await?.remove(0);
        self.put_file(&url.upload_url, file).await?;
        Ok(url.file_path)
    }

    /// `POST /v1/<slug>`: creates a project, which bills. Never call it twice for one
    /// submission when it returned [`ApiError::UnknownOutcome`].
    pub async fn create(&self, slug: &str, body: &Value) -> Result<CreateResponse, ApiError> {
        self.call(
            Method::POST,
            &format!("/v1/{slug}"),
            Some(body),
            Effect::Billing,
        )
        .await
    }

    /// GETs a project (or face detection task); returns the typed view and the raw JSON.
    pub async fn project(&self, kind: ProjectKind, id: &str) -> Result<(Project, Value), ApiError> {
        check_id(id)?;
        let raw: Value = self
            .call(
                Method::GET,
                &kind.project_path(id),
                None,
                Effect::Idempotent,
            )
            .await?;
        let project = Project::from_value(kind, raw.clone())
            .map_err(|e| ApiError::Local(format!("unexpected {} project: {e}", kind.as_str())))?;
        Ok((project, raw))
    }

    /// `DELETE /v1/<kind>-projects/{id}` (204).
    pub async fn delete_project(&self, kind: ProjectKind, id: &str) -> Result<(), ApiError> {
        check_id(id)?;
        let _: Value = self
            .call(
                Method::DELETE,
                &kind.project_path(id),
                None,
                Effect::Idempotent,
            )
            .await?;
        Ok(())
    }

    pub async fn account(&self) -> Result<Account, ApiError> {
        self.call(Method::GET, "/v1/account", None, Effect::Idempotent)
            .await
    }

    /// Downloads a signed output URL into `dest`, streamed, and returns the file's final length.
    ///
    /// A `dest` that already holds L > 0 bytes (an earlier, cut download) is resumed with
    /// `Range: bytes=L-`: a `206` starting at L is appended, a `200` rewrites the file from the
    /// start, and a `416` whose total is L means the file was already whole. A `206` starting
    /// elsewhere or a `416` with another total means the file is not a prefix of this output: it
    /// is fetched again whole, once.
    pub async fn download(&self, url: &str, dest: &Path) -> Result<u64, ApiError> {
        let have = match tokio::fs::metadata(dest).await {
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        };
        match self.download_from(url, dest, have).await? {
            Fetched::Done(n) => Ok(n),
            Fetched::Mismatch(why) => {
                log::info!(
                    "{}: cannot resume ({why}); downloading it whole",
                    dest.display()
                );
                match self.download_from(url, dest, 0).await? {
                    Fetched::Done(n) => Ok(n),
                    Fetched::Mismatch(why) => Err(ApiError::Local(format!(
                        "download into {}: {why}",
                        dest.display()
                    ))),
                }
            }
        }
    }

    /// One GET of a download, asking for the bytes from `have` on when `have > 0`.
    async fn download_from(&self, url: &str, dest: &Path, have: u64) -> Result<Fetched, ApiError> {
        let mut req = self.http.get(url);
        if have > 0 {
            req = req.header(RANGE, format!("bytes={have}-"));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| send_error(e, Effect::Idempotent))?;
        let status = resp.status();
        let range = resp
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        if have > 0 && status == StatusCode::RANGE_NOT_SATISFIABLE {
            return Ok(match range.as_deref().and_then(unsatisfied_total) {
                Some(total) if total == have => Fetched::Done(have),
                total => Fetched::Mismatch(format!(
                    "the file has {have} bytes but the output has {}",
                    total.map_or("an unknown number of".to_string(), |t| t.to_string())
                )),
            });
        }
        let resp = check_status(resp, Effect::Idempotent).await?;
        if status != StatusCode::PARTIAL_CONTENT {
            // The whole output (a server that ignored the range too): from the start.
            // Outputs are private to mhfs (0600); the drive shows them to whom they belong.
            let out = tokio::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(dest)
                .await
                .map_err(|e| ApiError::Local(format!("cannot create {}: {e}", dest.display())))?;
            let n = stream_into(resp, out, dest, 0).await?;
            return Ok(Fetched::Done(n));
        }
        let Some((start, end, total)) = range.as_deref().and_then(content_range) else {
            return Ok(Fetched::Mismatch(format!(
                "206 with an unreadable Content-Range {range:?}"
            )));
        };
        if start != have {
            return Ok(Fetched::Mismatch(format!(
                "asked for bytes from {have}, got {start}-{end}"
            )));
        }
        let mut out = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(dest)
            .await
            .map_err(|e| ApiError::Local(format!("cannot open {}: {e}", dest.display())))?;
        let now = out
            .metadata()
            .await
            .map_err(|e| ApiError::Local(format!("cannot stat {}: {e}", dest.display())))?
            .len();
        if now != have {
            return Err(ApiError::Local(format!(
                "{} changed during the download ({have} bytes, then {now})",
                dest.display()
            )));
        }
        out.seek(std::io::SeekFrom::Start(have))
            .await
            .map_err(|e| ApiError::Local(format!("cannot write {}: {e}", dest.display())))?;
        let n = stream_into(resp, out, dest, have).await?;
        let len = have + n;
        let short = if n < end - start + 1 {
            Some(format!("bytes {start}-{end}"))
        } else {
            total.filter(|&t| t != len).map(|t| format!("{t} bytes"))
        };
        match short {
            // The next call resumes from here.
            Some(expected) => Err(ApiError::Retryable {
                status: None,
                retry_after: None,
                reason: format!(
                    "download ended early: {n} bytes from byte {have} of {expected}, the file has {len}"
                ),
            }),
            None => Ok(Fetched::Done(len)),
        }
    }
}

/// How one download request went.
enum Fetched {
    /// The file is whole; its length.
    Done(u64),
    /// The answer does not fit the partial file: it must be fetched whole.
    Mismatch(String),
}

/// Streams a download's body into `out` (positioned at byte `from` of the file), then syncs it.
/// Returns the bytes received; a body cut mid-way is retryable, and its reason tells how far it
/// got.
async fn stream_into(
    resp: reqwest::Response,
    mut out: tokio::fs::File,
    dest: &Path,
    from: u64,
) -> Result<u64, ApiError> {
    let mut stream = resp.bytes_stream();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        if chunk.is_err() {
            // What arrived is kept whole on disk, so the next try resumes right after it.
            let _ = out.flush().await;
        }
        let chunk = chunk.map_err(|e| {
            let at = if from > 0 {
                format!(" (from byte {from}; the file has {})", from + n)
            } else {
                String::new()
            };
            ApiError::Retryable {
                status: None,
                retry_after: None,
                reason: format!("download cut off after {n} bytes{at}: {}", without_url(&e)),
            }
        })?;
        out.write_all(&chunk)
            .await
            .map_err(|e| ApiError::Local(format!("cannot write {}: {e}", dest.display())))?;
        n += chunk.len() as u64;
    }
    out.flush()
        .await
        .map_err(|e| ApiError::Local(format!("cannot write {}: {e}", dest.display())))?;
    out.sync_all()
        .await
        .map_err(|e| ApiError::Local(format!("cannot sync {}: {e}", dest.display())))?;
    Ok(n)
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`) of a 206.
fn content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let (unit, rest) = v.trim().split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (span, total) = rest.trim().split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let (start, end) = (start.parse::<u64>().ok()?, end.parse::<u64>().ok()?);
    let total = match total {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    (end >= start && total.is_none_or(|t| end < t)).then_some((start, end, total))
}

/// `bytes */TOTAL` of a 416.
fn unsatisfied_total(v: &str) -> Option<u64> {
    let (unit, rest) = v.trim().split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    rest.trim().strip_prefix("*/")?.parse().ok()
}

/// IDs go into URL paths: refuse anything that could change the path (as the official CLI does).
fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.contains(['/', '\\', '?', '#']) {
        return Err(ApiError::Local(format!("invalid project id {id:?}")));
    }
    Ok(())
}

/// A request that got no answer. Only a failed connect proves nothing was sent.
fn send_error(e: reqwest::Error, effect: Effect) -> ApiError {
    let reason = without_url(&e);
    if e.is_builder() {
        return ApiError::Local(format!("cannot build the request: {reason}"));
    }
    if e.is_connect() || effect == Effect::Idempotent {
        ApiError::Retryable {
            status: None,
            retry_after: None,
            reason,
        }
    } else {
        ApiError::UnknownOutcome {
            reason: format!("the request was sent but no answer came back: {reason}"),
        }
    }
}

/// reqwest errors print their URL; signed URLs carry secrets in their query, so drop it.
fn without_url(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    if let Some(url) = e.url() {
        msg = msg.replace(url.as_str(), url.path());
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Sorts a non-2xx answer. For a create, what the answer proves (docs/SEMANTICS.md, "What a
/// create's answer proves"): 4xx is a refusal (nothing created, not retried); 429, 502
/// (spec/API.md §10: no job exists), 503 (overload: the work was refused) and a 500 that carries
/// the API's own error body (`{code, message}`: the API answered, with an error instead of a
/// project) mean nothing was created, so the create is sent again; any other 5xx (504, or a
/// 500 without the API's body, i.e. from something in front of it) may have come after the
/// project was made: unknown.
async fn check_status(
    resp: reqwest::Response,
    effect: Effect,
) -> Result<reqwest::Response, ApiError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = resp.bytes().await.unwrap_or_default();
    let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
    let api_error_body = parsed
        .as_ref()
        .is_some_and(|b| b.code.is_some() || !b.message.is_empty());
    let code = parsed
        .as_ref()
        .and_then(|b| b.code.clone())
        .unwrap_or_else(|| default_code(status.as_u16()).to_string());
    let message = parsed
        .map(|b| b.message)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let nothing_done =
        matches!(status.as_u16(), 429 | 502 | 503) || (status.as_u16() == 500 && api_error_body);
    if status.is_server_error() && effect == Effect::Billing && !nothing_done {
        Err(ApiError::UnknownOutcome {
            reason: format!(
                "the create was answered {} {code}: {message}",
                status.as_u16()
            ),
        })
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(ApiError::Retryable {
            status: Some(status.as_u16()),
            retry_after,
            reason: format!("{} {code}: {message}", status.as_u16()),
        })
    } else {
        Err(ApiError::Refused {
            status: status.as_u16(),
            code,
            message,
        })
    }
}

/// Retry-After is either delta-seconds or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v.trim()).ok()?;
    when.duration_since(std::time::SystemTime::now()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_redacted() {
        let c = Client::new("http://127.0.0.1:9", ApiKey::new("mhk_live_secret")).unwrap();
        assert!(!format!("{c:?}").contains("secret"));
        assert!(!format!("{:?}", ApiKey::new("mhk_live_secret")).contains("secret"));
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn content_ranges_are_parsed() {
        assert_eq!(content_range("bytes 10-19/100"), Some((10, 19, Some(100))));
        assert_eq!(content_range("bytes 10-19/*"), Some((10, 19, None)));
        assert_eq!(content_range("bytes 19-10/100"), None);
        assert_eq!(content_range("bytes 10-100/100"), None);
        assert_eq!(content_range("bytes */100"), None);
        assert_eq!(unsatisfied_total("bytes */100"), Some(100));
        assert_eq!(unsatisfied_total("bytes 0-1/100"), None);
    }

    #[test]
    fn ids_cannot_escape_the_path() {
        assert!(check_id("abc-123_X").is_ok());
        for bad in ["", "a/b", "a?b", "a#b", "..\\x"] {
            assert!(check_id(bad).is_err());
        }
    }
}
