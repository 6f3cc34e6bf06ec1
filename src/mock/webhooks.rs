//! The mock's webhook events (spec/API.md §12): `<family>.started` when a job starts rendering (skipped
//! when the render time is zero, as the real service may skip it for fast jobs), then
//! `<family>.completed` or `<family>.errored`, signed, retried with backoff on failure.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::WebhookTarget;
use super::project::project_value;
use super::state::State;
use crate::api::catalog::ProjectKind;
use crate::api::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, now_secs, sign};

/// Follows one job and sends its events.
pub async fn follow(state: Arc<State>, id: String, kind: ProjectKind, target: WebhookTarget) {
    let family = kind.as_str();
    let total = state.config.render_time;
    if !total.is_zero() {
        tokio::time::sleep(total / 3).await;
        match project_value(&state, &id, kind).await {
            Some(p) => send(&target, &format!("{family}.started"), p).await,
            None => return,
        }
        tokio::time::sleep(total - total / 3).await;
    }
    let Some(project) = project_value(&state, &id, kind).await else {
        return;
    };
    let event = match project["status"].as_str() {
        Some("complete") => "completed",
        Some("error") => "errored",
        _ => return,
    };
    send(&target, &format!("{family}.{event}"), project).await;
}

/// One delivery: any non-2xx or no answer is retried after 1, 2 and 4 seconds.
async fn send(target: &WebhookTarget, kind: &str, payload: Value) {
    let body = json!({"type": kind, "payload": payload}).to_string();
    let http = reqwest::Client::new();
    for attempt in 0..4u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
        }
        let ts = now_secs().to_string();
        let result = http
            .post(&target.url)
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, &ts)
            .header(
                SIGNATURE_HEADER,
                sign(target.secret.as_bytes(), &ts, body.as_bytes()),
            )
            .body(body.clone())
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => log::info!("mock webhook {kind}: receiver answered {}", r.status()),
            Err(e) => log::info!("mock webhook {kind}: {e}"),
        }
    }
    log::warn!("mock webhook {kind}: not delivered");
}
