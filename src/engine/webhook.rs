//! The webhook receiver: Magic Hour (or the mock) posts signed job events; a valid one wakes the
//! job's task, which polls at once. Polling then only runs as a slow safety net.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

use super::Engine;
use crate::api::webhook::{Event, SIGNATURE_HEADER, TIMESTAMP_HEADER, now_secs, verify};

struct Receiver {
    engine: Arc<Engine>,
    secret: Vec<u8>,
}

/// Serves the receiver on `listener` (any path takes events) until the runtime ends.
pub fn serve(listener: tokio::net::TcpListener, secret: Vec<u8>, engine: Arc<Engine>) {
    let app = Router::new()
        .fallback(receive)
        .with_state(Arc::new(Receiver { engine, secret }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            log::error!("webhook receiver stopped: {e}");
        }
    });
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(why) = verify(
        &r.secret,
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        now_secs(),
    ) {
        log::warn!("webhook: refused an event: {why}");
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": why})),
        );
    }
    match serde_json::from_slice::<Event>(&body) {
        Ok(event) => {
            r.engine.on_event(&event);
            (StatusCode::OK, axum::Json(json!({"message": "ok"})))
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"message": e.to_string()})),
        ),
    }
}
