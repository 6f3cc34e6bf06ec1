//! `mhfs mock`: a stateful imitation of the Magic Hour API on a real HTTP server (axum).
//!
//! Faithful to spec/API.md §16: every tool endpoint, upload URLs with a raw PUT, project GET and
//! DELETE, face detection, account; jobs that take `render_time`; real output files; signed,
//! expiring download URLs; a failure marker; fault knobs; and a record of every request.
//! Admin endpoints live under `/_mock/` (see `routes.rs`).

pub(crate) mod faults;
pub mod media;
mod project;
mod render;
mod routes;
mod state;
mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use faults::{Fault, Faults, Op, Rule, RuleOp};
pub use state::Record;

/// How the mock behaves. `Default` is what `mhfs mock` starts with.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Time from create to complete; a third of it is `queued`, the rest `rendering`.
    /// Zero: complete at the first poll.
    pub render_time: Duration,
    /// Credit balance; creates that cost more are refused with 402.
    pub credits: i64,
    /// When set, only this bearer token is accepted; otherwise any non-empty one.
    pub api_key: Option<String>,
    pub faults: Faults,
    /// Where uploads and outputs are kept; a temporary folder when `None`.
    pub data_dir: Option<PathBuf>,
    /// Where to send signed job events (spec/API.md §12), if anywhere.
    pub webhook: Option<WebhookTarget>,
}

/// A webhook receiver and the secret its events are signed with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: String,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            render_time: Duration::from_secs(6),
            credits: 100_000,
            api_key: None,
            faults: Faults::default(),
            data_dir: None,
            webhook: None,
        }
    }
}

/// A running mock. Dropping it stops the server.
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<state::State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MockServer {
    /// Binds `addr` (port 0 picks a free one) and serves on the current tokio runtime.
    pub async fn start(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(state::State::new(config, format!("http://{addr}"))?);
        let app = routes::router(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                log::error!("mock server stopped: {e}");
            }
        });
        Ok(MockServer {
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Starts on a free loopback port.
    pub async fn start_local(config: MockConfig) -> std::io::Result<MockServer> {
        MockServer::start(([127, 0, 0, 1], 0).into(), config).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL to give a client, e.g. `http://127.0.0.1:4242`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far (uploads without their bytes).
    pub fn requests(&self) -> Vec<Record> {
        self.state.records()
    }

    /// How many requests of an operation (`create`, `create:<slug>`, `get`, `delete`,
    /// `upload-urls`, `upload`, `download`, ...) were received.
    pub fn count(&self, op: &str) -> u64 {
        self.state.count(op)
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state.set_faults(faults);
    }

    pub fn set_credits(&self, credits: i64) {
        self.state.set_credits(credits);
    }

    /// Sends job events to `target` from now on (`None`: no more events).
    pub fn set_webhook(&self, target: Option<WebhookTarget>) {
        self.state.lock().webhook = target;
    }

    pub fn clear_requests(&self) {
        self.state.clear_records();
    }

    /// Stops accepting connections and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            // Graceful shutdown waits for idle keep-alive connections; don't wait long.
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
