//! The webhook receiver: Magic Hour (or the mock) posts signed job events; a valid one wakes the
//! job's task, which polls at once. Polling then only runs as a slow safety net.
//!
//! Hardening: the secret must be at least [`MIN_SECRET_LEN`] bytes; bodies over [`BODY_LIMIT`]
//! get 413 unread; an event already delivered (same signed timestamp and body) is answered 200
//! again but not delivered twice, so a sender retrying after a lost answer stops; refusals are
//! counted and logged at most once per [`LOG_EVERY`].

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

use crate::api::webhook::{
    Event, SIGNATURE_HEADER, TIMESTAMP_HEADER, TOLERANCE_SECS, now_secs, verify,
};

/// What a delivered event is handed to (the engine's `on_event` in the drive, a recorder in
/// tests).
pub type OnEvent = Arc<dyn Fn(&Event) + Send + Sync>;

/// Shorter secrets are guessable; Magic Hour's and the embedded mock's are longer.
pub const MIN_SECRET_LEN: usize = 16;
/// Events are one project object: far below this.
pub const BODY_LIMIT: usize = 1 << 20;
/// At most one warning line about refused requests per this much time.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// Events remembered for replay detection; past this the oldest are forgotten early.
const SEEN_CAPACITY: usize = 4096;

/// Refuses a secret that is empty or too short, before anything listens.
pub fn check_secret(secret: &[u8]) -> Result<(), String> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "the webhook secret is {} bytes long; at least {MIN_SECRET_LEN} are needed",
            secret.len()
        ));
    }
    Ok(())
}

/// Counters of a running receiver.
#[derive(Debug, Default)]
pub struct Stats {
    delivered: AtomicU64,
    duplicates: AtomicU64,
    refused: AtomicU64,
    warnings: AtomicU64,
}

impl Stats {
    /// Events handed on.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
    /// Valid events not handed on again.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }
    /// Requests refused (bad signature or timestamp, oversize, unreadable, not an event).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
    /// Warning lines logged about refusals.
    pub fn warnings(&self) -> u64 {
        self.warnings.load(Ordering::Relaxed)
    }
}

struct Receiver {
    on_event: OnEvent,
    secret: Vec<u8>,
    stats: Arc<Stats>,
    /// Signature tag -> the event's timestamp, in arrival order.
    seen: Mutex<lru::LruCache<Vec<u8>, u64>>,
    /// Refusals since the last warning line, and when that line was written.
    refusals: Mutex<(u64, Option<Instant>)>,
}

/// Serves the receiver on `listener` (any path takes events) until the runtime ends.
pub fn serve(
    listener: tokio::net::TcpListener,
    secret: Vec<u8>,
    on_event: OnEvent,
) -> Result<Arc<Stats>, String> {
    check_secret(&secret)?;
    let stats = Arc::new(Stats::default());
    let receiver = Receiver {
        on_event,
        secret,
        stats: stats.clone(),
        seen: Mutex::new(lru::LruCache::new(
            NonZeroUsize::new(SEEN_CAPACITY).expect("non-zero"),
        )),
        refusals: Mutex::new((0, None)),
    };
    let app = Router::new()
        .fallback(receive)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(Arc::new(receiver));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            log::error!("webhook receiver stopped: {e}");
        }
    });
    Ok(stats)
}

impl Receiver {
    fn refuse(&self, status: StatusCode, why: &str) -> (StatusCode, axum::Json<serde_json::Value>) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        let mut r = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        r.0 += 1;
        // A flood of bad requests must not flood the log: one line per LOG_EVERY at most.
        if r.1.is_none_or(|last| last.elapsed() >= LOG_EVERY) {
            log::warn!(
                "webhook: refused {} request(s) since the last report; latest: {why}",
                r.0
            );
            self.stats.warnings.fetch_add(1, Ordering::Relaxed);
            *r = (0, Some(Instant::now()));
        }
        (status, axum::Json(json!({"message": why})))
    }

    /// Whether this tag was seen within the tolerance window; remembers it if not.
    fn first_time(&self, tag: Vec<u8>, ts: u64, now: u64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Older events fail the timestamp check anyway, so they need not be remembered.
        let horizon = now.saturating_sub(TOLERANCE_SECS);
        while seen.peek_lru().is_some_and(|(_, &t)| t < horizon) {
            seen.pop_lru();
        }
        if seen.contains(&tag) {
            return false;
        }
        seen.put(tag, ts);
        true
    }
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> impl IntoResponse {
    // Oversize (413) or unreadable bodies: refused before verifying.
    let body = match body {
        Ok(b) => b,
        Err(e) => return r.refuse(e.status(), &e.body_text()),
    };
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let now = now_secs();
    let (timestamp, signature) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER));
    if let Err(why) = verify(&r.secret, timestamp, signature, &body, now) {
        return r.refuse(StatusCode::UNAUTHORIZED, why);
    }
    let event = match serde_json::from_slice::<Event>(&body) {
        Ok(event) => event,
        Err(e) => return r.refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    // Verified, so both parse; the tag is the HMAC of timestamp.body: the same tag is the
    // same timestamp and body.
    let ts: u64 = timestamp.unwrap_or_default().trim().parse().unwrap_or(now);
    let tag = hex::decode(signature.unwrap_or_default().trim()).unwrap_or_default();
    if !r.first_time(tag, ts, now) {
        r.stats.duplicates.fetch_add(1, Ordering::Relaxed);
        log::debug!("webhook: {} delivered again: ignored", event.kind);
        return (
            StatusCode::OK,
            axum::Json(json!({"message": "already received"})),
        );
    }
    (r.on_event)(&event);
    r.stats.delivered.fetch_add(1, Ordering::Relaxed);
    (StatusCode::OK, axum::Json(json!({"message": "ok"})))
}
