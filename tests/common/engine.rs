//! The engine in process, for tests that need no mount: a runtime, a quick engine against a
//! mock, and jobs made the way the inbox makes them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mhfs::api::catalog::tool;
use mhfs::api::retry::Backoff;
use mhfs::api::{ApiKey, Client};
use mhfs::engine::job::{InputFile, Job, JobId, Source, Stage};
use mhfs::engine::registry::Registry;
use mhfs::engine::{Engine, EngineConfig};

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A mock in this process whose jobs render for `render`.
pub fn start_mock(rt: &tokio::runtime::Runtime, render: Duration) -> mhfs::mock::MockServer {
    rt.block_on(mhfs::mock::MockServer::start_local(
        mhfs::mock::MockConfig {
            render_time: render,
            ..mhfs::mock::MockConfig::default()
        },
    ))
    .unwrap()
}

/// Quick polls and short backoffs: tests wait milliseconds, not seconds.
pub fn config() -> EngineConfig {
    EngineConfig {
        poll_base: Some(Duration::from_millis(20)),
        backoff: Backoff {
            max_attempts: 4,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
        },
        ..EngineConfig::default()
    }
}

pub fn engine_with(url: &str, registry: &Arc<Registry>, cfg: EngineConfig) -> Arc<Engine> {
    let client = Client::new(url, ApiKey::new("test-key")).unwrap();
    Engine::new(client, registry.clone(), cfg)
}

/// A prompt job, made as the inbox makes one: reserved, recorded, its input moved in,
/// published.
pub fn prompt_job(registry: &Registry, name: &str, prompt: &str) -> JobId {
    let t = tool("ai-image-generator").unwrap();
    let mut job = registry.reserve(&format!("{name}.txt"), t, Source::Text, None);
    registry.record(&job).unwrap();
    let dir = registry.layout().input_dir(job.id);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.txt"));
    std::fs::write(&path, prompt).unwrap();
    job.inputs.push(InputFile {
        name: format!("{name}.txt"),
        path,
        remote: None,
    });
    let id = job.id;
    registry.publish(job);
    id
}

/// Waits until the job reaches one of `stages`.
pub fn wait_until(registry: &Registry, id: JobId, stages: &[Stage], limit: Duration) -> Job {
    let deadline = Instant::now() + limit;
    loop {
        let job = registry.job(id).expect("job exists");
        if stages.contains(&job.stage) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {} stuck at {:?} / {:?}",
            job.name,
            job.stage,
            job.status
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
