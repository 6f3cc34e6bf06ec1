//! A project as the API shows it (GET, and a webhook's payload): where it is in its life,
//! with its outputs rendered the first time it is over.

use std::sync::Arc;

use serde_json::{Value, json};

use super::render;
use super::state::{Outcome, Phase, State};
use crate::api::catalog::ProjectKind;
use crate::api::types::{Download, ProjectError, timestamp};

type Shared = Arc<State>;

/// Where a project is in its life, rendering its outputs the first time it is over.
async fn settle(state: &Shared, id: &str, kind: ProjectKind) -> Option<(Phase, Option<Outcome>)> {
    let (phase, cell, job) = {
        let inner = state.lock();
        let p = inner.projects.get(id).filter(|p| p.tool.kind == kind)?;
        let phase = state.phase(p.started);
        let job = render::Job {
            tool: p.tool,
            body: p.body.clone(),
            inputs: render::resolve_inputs(p.tool, &p.body, &inner.uploads, &state.output_dir("")),
            out_dir: state.output_dir(&p.id),
        };
        (phase, p.outcome.clone(), job)
    };
    if !matches!(phase, Phase::Done) {
        return Some((phase, None));
    }
    let outcome = cell
        .get_or_init(|| async move {
            tokio::task::spawn_blocking(move || render::render(&job))
                .await
                .unwrap_or_else(|e| {
                    Outcome::Failed(ProjectError {
                        code: "unknown_error".into(),
                        message: format!("mock render crashed: {e}"),
                    })
                })
        })
        .await
        .clone();
    if let Outcome::Failed(_) = outcome {
        // A failed job is refunded, once.
        let mut inner = state.lock();
        let refund = inner
            .projects
            .get_mut(id)
            .map(|p| std::mem::take(&mut p.credits));
        inner.credits += refund.unwrap_or(0);
    }
    Some((Phase::Done, Some(outcome)))
}

/// The project as GET (and a webhook's payload) shows it; `None` if there is no such project.
pub(super) async fn project_value(state: &Shared, id: &str, kind: ProjectKind) -> Option<Value> {
    let (phase, outcome) = settle(state, id, kind).await?;
    let lifetime = state.url_lifetime();
    let inner = state.lock();
    let p = inner.projects.get(id)?;
    let (status, downloads, err) = match (&phase, &outcome) {
        (Phase::Queued, _) => ("queued", vec![], None),
        (Phase::Rendering, _) | (Phase::Done, None) => ("rendering", vec![], None),
        (Phase::Done, Some(Outcome::Complete(files))) => {
            let downloads: Vec<Download> = files
                .iter()
                .map(|f| {
                    let (url, expires) =
                        state.sign("GET", &format!("/_mock/files/{}/{f}", p.id), lifetime);
                    Download {
                        url,
                        expires_at: timestamp(expires),
                    }
                })
                .collect();
            ("complete", downloads, None)
        }
        (Phase::Done, Some(Outcome::Failed(e))) => ("error", vec![], Some(e.clone())),
    };
    let name = p.body.get("name").and_then(Value::as_str).map(String::from);
    let created_at = timestamp(p.created);
    let body = match kind {
        ProjectKind::FaceDetection => {
            let faces: Vec<Value> = downloads
                .iter()
                .zip(match &outcome {
                    Some(Outcome::Complete(files)) => files.clone(),
                    _ => vec![],
                })
                .map(|(d, f)| json!({"path": format!("api-assets/{}/{f}", p.id), "url": d.url}))
                .collect();
            json!({"id": p.id, "credits_charged": p.credits, "status": status, "faces": faces})
        }
        ProjectKind::Image => json!({
            "id": p.id, "name": name, "status": status,
            "image_count": render::output_count(p.tool, &p.body),
            "type": p.tool.project_type, "created_at": created_at, "enabled": true,
            "credits_charged": p.credits, "total_frame_cost": p.credits,
            "downloads": downloads, "error": err,
        }),
        ProjectKind::Video => {
            let (start, end) = render::clip(&p.body);
            json!({
                "id": p.id, "name": name, "status": status, "type": p.tool.project_type,
                "created_at": created_at, "width": render::VIDEO_SIZE.0, "height": render::VIDEO_SIZE.1,
                "enabled": true, "start_seconds": start, "end_seconds": end,
                "credits_charged": p.credits, "total_frame_cost": p.credits, "fps": render::VIDEO_FPS,
                "error": err, "download": downloads.first(), "downloads": downloads,
            })
        }
        ProjectKind::Audio => json!({
            "id": p.id, "name": name, "status": status, "type": p.tool.project_type,
            "created_at": created_at, "enabled": true, "credits_charged": p.credits,
            "downloads": downloads, "error": err,
        }),
    };
    Some(body)
}
