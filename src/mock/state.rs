//! The mock's memory: projects, uploads, credits, faults and the request record.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use rand::RngExt;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::MockConfig;
use super::faults::{Faults, Op};
use crate::api::catalog::{Media, Tool};
use crate::api::types::ProjectError;

/// One request as received.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub method: String,
    pub path: String,
    pub op: Op,
    /// The JSON body (null when none; uploads are summarised as `{"bytes": N}`, ranged downloads
    /// as `{"range": "bytes=N-", "range_start": N}`).
    pub body: Value,
    pub status: u16,
    /// ISO-8601 time of arrival.
    pub time: String,
}

/// How a job ends, decided once when its render time is over.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Output basenames, in order, under `outputs/<id>/`.
    Complete(Vec<String>),
    Failed(ProjectError),
}

pub struct Project {
    pub id: String,
    pub tool: &'static Tool,
    pub body: Value,
    pub created: SystemTime,
    pub started: Instant,
    pub credits: i64,
    pub outcome: Arc<OnceCell<Outcome>>,
}

pub struct Upload {
    pub disk: PathBuf,
    pub media: Media,
    /// Set once a PUT completed.
    pub complete: bool,
}

pub struct Inner {
    pub projects: HashMap<String, Project>,
    pub uploads: HashMap<String, Upload>,
    pub credits: i64,
    pub faults: Faults,
    pub webhook: Option<super::WebhookTarget>,
    records: Vec<Record>,
    counts: BTreeMap<String, u64>,
}

pub struct State {
    pub config: MockConfig,
    pub base_url: String,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    secret: [u8; 32],
    inner: Mutex<Inner>,
    /// Serializes saves, so an older snapshot never overwrites a newer one.
    saving: Mutex<()>,
}

/// What a mock with a data directory keeps across restarts (the embedded mock of `mhfs mount`).
#[derive(Serialize, serde::Deserialize)]
struct Saved {
    credits: i64,
    projects: Vec<SavedProject>,
    uploads: Vec<SavedUpload>,
}

#[derive(Serialize, serde::Deserialize)]
struct SavedProject {
    id: String,
    tool: String,
    body: Value,
    created: SystemTime,
    credits: i64,
}

#[derive(Serialize, serde::Deserialize)]
struct SavedUpload {
    file_path: String,
    disk: PathBuf,
    media: Media,
    complete: bool,
}

/// Phase of a job by elapsed time.
pub enum Phase {
    Queued,
    Rendering,
    Done,
}

impl State {
    pub fn new(config: MockConfig, base_url: String) -> std::io::Result<State> {
        let (dir, tmp) = match &config.data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::Builder::new().prefix("mhfs-mock-").tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        // The embedded mock's data lives in the state directory: private like the rest.
        for sub in ["uploads", "outputs"] {
            crate::engine::registry::private_dir(&dir.join(sub))?;
        }
        let mut inner = Inner {
            projects: HashMap::new(),
            uploads: HashMap::new(),
            credits: config.credits,
            faults: config.faults.clone(),
            webhook: config.webhook.clone(),
            records: Vec::new(),
            counts: BTreeMap::new(),
        };
        if config.data_dir.is_some() {
            load(&dir, &mut inner);
        }
        Ok(State {
            config,
            base_url,
            dir,
            _tmp: tmp,
            secret: rand::rng().random(),
            inner: Mutex::new(inner),
            saving: Mutex::new(()),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn phase(&self, started: Instant) -> Phase {
        let total = self.config.render_time;
        let elapsed = started.elapsed();
        if elapsed >= total {
            Phase::Done
        } else if elapsed < total / 3 {
            Phase::Queued
        } else {
            Phase::Rendering
        }
    }

    pub fn output_dir(&self, id: &str) -> PathBuf {
        self.dir.join("outputs").join(id)
    }

    pub fn record(&self, rec: Record) {
        let mut inner = self.lock();
        *inner.counts.entry(rec.op.to_string()).or_default() += 1;
        if rec.op == Op::Create
            && let Some(slug) = rec.path.strip_prefix("/v1/")
        {
            *inner.counts.entry(format!("create:{slug}")).or_default() += 1;
        }
        inner.records.push(rec);
    }

    pub fn records(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.lock().counts.clone()
    }

    pub fn count(&self, op: &str) -> u64 {
        self.lock().counts.get(op).copied().unwrap_or(0)
    }

    pub fn clear_records(&self) {
        let mut inner = self.lock();
        inner.records.clear();
        inner.counts.clear();
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    pub fn set_credits(&self, credits: i64) {
        self.lock().credits = credits;
    }

    pub fn url_lifetime(&self) -> Duration {
        let secs = self.lock().faults.url_lifetime_secs.unwrap_or(24 * 3600);
        Duration::from_secs(secs)
    }

    /// A signed URL on this server for `path`, valid for `lifetime`. Returns the URL and its
    /// expiry time.
    pub fn sign(&self, method: &str, path: &str, lifetime: Duration) -> (String, SystemTime) {
        let expires = SystemTime::now() + lifetime;
        let secs = expires
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let sig = self.signature(method, path, secs);
        (
            format!("{}{path}?expires={secs}&sig={sig}", self.base_url),
            expires,
        )
    }

    /// Checks a signed URL's query: `Err` says why it is refused.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        query: &HashMap<String, String>,
    ) -> Result<(), &'static str> {
        let expires: u64 = query
            .get("expires")
            .and_then(|e| e.parse().ok())
            .ok_or("missing signature")?;
        let sig = query.get("sig").ok_or("missing signature")?;
        let sig = hex::decode(sig).map_err(|_| "bad signature")?;
        self.mac(method, path, expires)
            .verify_slice(&sig)
            .map_err(|_| "bad signature")?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if now >= expires {
            return Err("expired");
        }
        Ok(())
    }

    fn mac(&self, method: &str, path: &str, expires: u64) -> hmac::Hmac<sha2::Sha256> {
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(format!("{method}\n{path}\n{expires}").as_bytes());
        mac
    }

    fn signature(&self, method: &str, path: &str, expires: u64) -> String {
        hex::encode(self.mac(method, path, expires).finalize().into_bytes())
    }

    /// Saves projects, uploads and credits when the mock has a data directory, so a restarted
    /// mock still knows them (outputs are rendered again at the next GET).
    pub fn persist(&self) {
        if self.config.data_dir.is_none() {
            return;
        }
        let _saving = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let saved = {
            let inner = self.lock();
            Saved {
                credits: inner.credits,
                projects: inner
                    .projects
                    .values()
                    .map(|p| SavedProject {
                        id: p.id.clone(),
                        tool: p.tool.slug.to_string(),
                        body: p.body.clone(),
                        created: p.created,
                        credits: p.credits,
                    })
                    .collect(),
                uploads: inner
                    .uploads
                    .iter()
                    .map(|(k, u)| SavedUpload {
                        file_path: k.clone(),
                        disk: u.disk.clone(),
                        media: u.media,
                        complete: u.complete,
                    })
                    .collect(),
            }
        };
        let tmp = self.dir.join("state.json.tmp");
        let result = serde_json::to_vec(&saved)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, self.dir.join("state.json")));
        if let Err(e) = result {
            log::warn!("mock: cannot save its state: {e}");
        }
    }

    pub fn upload_disk_path(&self, name: &str) -> PathBuf {
        self.dir.join("uploads").join(name)
    }
}

fn load(dir: &Path, inner: &mut Inner) {
    let Ok(bytes) = std::fs::read(dir.join("state.json")) else {
        return;
    };
    let saved: Saved = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("mock: ignoring its saved state: {e}");
            return;
        }
    };
    inner.credits = saved.credits;
    for p in saved.projects {
        let Some(tool) = crate::api::catalog::tool(&p.tool) else {
            continue;
        };
        // The clock goes on from when it was created.
        let age = p.created.elapsed().unwrap_or_default();
        let started = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        inner.projects.insert(
            p.id.clone(),
            Project {
                id: p.id,
                tool,
                body: p.body,
                created: p.created,
                started,
                credits: p.credits,
                outcome: Default::default(),
            },
        );
    }
    for u in saved.uploads {
        inner.uploads.insert(
            u.file_path,
            Upload {
                disk: u.disk,
                media: u.media,
                complete: u.complete,
            },
        );
    }
}

/// A cuid-like id: `c` and 24 lower-case letters or digits.
pub fn new_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    std::iter::once('c')
        .chain((0..24).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char))
        .collect()
}

/// Reads a small file whole (inputs to image synthesis); `None` when missing or too large.
pub fn read_small(path: &Path, limit: u64) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > limit {
        return None;
    }
    std::fs::read(path).ok()
}
