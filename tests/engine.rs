//! The engine in process, against the real mock server in the same process: no kernel mount,
//! no root. Jobs are made the way the file system makes them (recorded, inputs moved in,
//! published) and driven by the engine's tasks.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::engine::{config, engine_with, prompt_job, runtime, start_mock, wait_until};
use mhfs::engine::Engine;
use mhfs::engine::job::{JobId, JobStatus, Stage};
use mhfs::engine::registry::Registry;
use mhfs::mock::{Fault, Faults, MockConfig, MockServer, Op, Rule};

fn engine(mock: &MockServer, registry: &Arc<Registry>) -> Arc<Engine> {
    engine_with(&mock.url(), registry, config())
}

fn wait_for(registry: &Registry, id: JobId, stages: &[Stage]) -> mhfs::engine::job::Job {
    wait_until(registry, id, stages, Duration::from_secs(20))
}

fn outputs_exist(registry: &Registry, id: JobId) -> bool {
    let job = registry.job(id).unwrap();
    !job.outputs.is_empty()
        && job.outputs.iter().all(|o| {
            o.done
                && Path::new(&registry.layout().output(id, &o.name))
                    .metadata()
                    .is_ok()
        })
}

#[test]
fn each_job_is_created_once_and_its_outputs_downloaded() {
    let rt = runtime();
    let mock = rt
        .block_on(MockServer::start_local(MockConfig {
            render_time: Duration::from_millis(100),
            ..MockConfig::default()
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let _guard = rt.enter();
    let engine = engine(&mock, &registry);
    let ids: Vec<JobId> = (0..5)
        .map(|i| prompt_job(&registry, &format!("p{i}"), &format!("a lighthouse {i}")))
        .collect();
    for &id in &ids {
        engine.kick(id);
        // A second kick while the task runs starts nothing more.
        engine.kick(id);
    }
    for &id in &ids {
        let job = wait_for(&registry, id, &[Stage::Done, Stage::Failed]);
        assert_eq!(job.status, JobStatus::Complete, "{:?}", job.error);
        assert!(outputs_exist(&registry, id));
        assert!(job.request.is_some(), "request.json is kept");
    }
    assert_eq!(mock.count("create"), 5);
}

#[test]
fn a_lost_create_answer_is_unknown_and_never_resent() {
    let rt = runtime();
    let mock = rt
        .block_on(MockServer::start_local(MockConfig {
            render_time: Duration::ZERO,
            faults: Faults {
                rules: vec![Rule {
                    op: Op::Create.into(),
                    fault: Fault::Drop,
                    count: 1,
                }],
                ..Faults::default()
            },
            ..MockConfig::default()
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let _guard = rt.enter();
    let engine = engine(&mock, &registry);
    let id = prompt_job(&registry, "lost", "a lighthouse");
    engine.kick(id);
    let job = wait_for(&registry, id, &[Stage::Unknown, Stage::Done, Stage::Failed]);
    assert_eq!(job.stage, Stage::Unknown);
    assert!(job.error.unwrap().starts_with("unknown_outcome:"));
    // Kicked again (as a remount would), it still sends nothing.
    engine.kick(id);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(mock.count("create"), 1);
}

#[test]
fn after_a_stop_a_create_in_flight_is_unknown_and_the_rest_resume() {
    let rt = runtime();
    let mock = rt
        .block_on(MockServer::start_local(MockConfig {
            render_time: Duration::ZERO,
            ..MockConfig::default()
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _guard = rt.enter();
    // First run: one job completes its create, then the process "stops" (everything dropped)
    // with a second job recorded as sending its create, and a third not started.
    let (created, in_flight, waiting) = {
        let registry = Registry::open(dir.path()).unwrap();
        let engine = engine(&mock, &registry);
        let created = prompt_job(&registry, "created", "one");
        engine.kick(created);
        wait_for(&registry, created, &[Stage::Created, Stage::Done]);
        let in_flight = prompt_job(&registry, "inflight", "two");
        assert!(registry.begin_create(in_flight, serde_json::json!({"style": {}})));
        let waiting = prompt_job(&registry, "waiting", "three");
        drop(engine);
        (created, in_flight, waiting)
    };
    let creates_before = mock.count("create");
    // Wait for the first run's tasks to notice their registry is gone.
    std::thread::sleep(Duration::from_millis(100));
    let registry = loop {
        match Registry::open(dir.path()) {
            Ok(r) => break r,
            // The first run's task may still hold the state dir for a moment.
            Err(e) if e.contains("in use") => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("{e}"),
        }
    };
    let engine = engine(&mock, &registry);
    engine.resume();
    let job = wait_for(&registry, in_flight, &[Stage::Unknown]);
    assert!(job.error.unwrap().contains("in flight"));
    assert_eq!(
        wait_for(&registry, created, &[Stage::Done]).status,
        JobStatus::Complete
    );
    assert_eq!(
        wait_for(&registry, waiting, &[Stage::Done]).status,
        JobStatus::Complete
    );
    // Only the job that had not been sent yet was created in the second run.
    assert_eq!(mock.count("create"), creates_before + 1);
}

#[test]
fn delete_sends_one_delete_and_forgets_the_job() {
    let rt = runtime();
    let mock = rt
        .block_on(MockServer::start_local(MockConfig {
            render_time: Duration::ZERO,
            ..MockConfig::default()
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let _guard = rt.enter();
    let engine = engine(&mock, &registry);
    let id = prompt_job(&registry, "bye", "a lighthouse");
    engine.kick(id);
    wait_for(&registry, id, &[Stage::Done]);
    let job_dir = registry.layout().job_dir(id);
    assert!(job_dir.exists());
    rt.block_on(engine.delete(id)).unwrap();
    assert!(registry.job(id).is_none());
    assert!(registry.by_name("bye").is_none());
    assert!(!job_dir.exists());
    assert_eq!(mock.count("delete"), 1);
}

#[test]
fn render_times_are_kept_in_the_store_and_learned_at_the_next_start() {
    let rt = runtime();
    let mock = start_mock(&rt, Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let _guard = rt.enter();
    // The documented cadence (nothing set): what a mount does.
    let cfg = mhfs::engine::EngineConfig {
        poll_base: None,
        ..config()
    };
    let tool = "ai-image-generator";
    let engine = engine_with(&mock.url(), &registry, cfg.clone());
    assert_eq!(engine.typical_render(tool), None, "nothing seen yet");
    let id = prompt_job(&registry, "first", "a lighthouse");
    engine.kick(id);
    let job = wait_for(&registry, id, &[Stage::Done, Stage::Failed]);
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.error);
    let kept = job.render_ms.expect("its render time is kept in its row");
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    assert_eq!(ms(engine.typical_render(tool)), Some(kept));
    drop(engine);
    drop(registry);
    // A new start over the same state directory knows it before any job of the tool ran.
    let registry = Registry::open(dir.path()).unwrap();
    let engine = engine_with(&mock.url(), &registry, cfg);
    assert_eq!(ms(engine.typical_render(tool)), Some(kept));
    assert_eq!(engine.typical_render("ai-image-upscaler"), None);
}

#[test]
fn a_burst_of_creates_shares_its_balance_reads_and_the_balance_ends_right() {
    let rt = runtime();
    let mock = start_mock(&rt, Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let _guard = rt.enter();
    let cfg = config();
    let credits = cfg.credits.clone();
    let engine = engine_with(&mock.url(), &registry, cfg);
    let ids: Vec<JobId> = (0..30)
        .map(|i| prompt_job(&registry, &format!("b{i}"), &format!("a lighthouse {i}")))
        .collect();
    for &id in &ids {
        engine.kick(id);
    }
    for &id in &ids {
        let job = wait_for(&registry, id, &[Stage::Done, Stage::Failed]);
        assert_eq!(job.status, JobStatus::Complete, "{:?}", job.error);
    }
    assert_eq!(mock.count("create"), 30);
    // The last create is followed by a read: the balance known is the account's.
    let client = mhfs::api::Client::new(&mock.url(), mhfs::api::ApiKey::new("test-key")).unwrap();
    let account = rt.block_on(client.account()).unwrap().credits;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while credits.balance() != Some(account) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(credits.balance(), Some(account));
    // Creates a moment apart share one read (one each used to be sent, unpaced).
    let reads = mock.count("account") - 1;
    assert!(reads < 30, "{reads} balance reads for 30 creates");
}
