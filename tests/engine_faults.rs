//! What each answer to a create proves, and what the job does about it; outages and crashes.
//! The engine in process against the real mock server (docs/SEMANTICS.md, "What a create's
//! answer proves").

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::engine::{config, engine_with, runtime, wait_until};
use mhfs::api::catalog::tool;
use mhfs::engine::job::{InputFile, Job, JobId, JobStatus, Source, Stage};
use mhfs::engine::registry::Registry;
use mhfs::engine::{Engine, EngineConfig};
use mhfs::mock::{Fault, Faults, MockConfig, MockServer, Op, Rule, WebhookTarget};

fn prompt_job(registry: &Registry, name: &str) -> JobId {
    common::engine::prompt_job(registry, name, &format!("a lighthouse, take {name}"))
}

fn ended(registry: &Registry, id: JobId, limit: Duration) -> Job {
    wait_until(
        registry,
        id,
        &[Stage::Done, Stage::Failed, Stage::Unknown],
        limit,
    )
}

/// The names the mock received creates for (the body's `name`, which mhfs sets to the job's).
fn created_names(mock: &MockServer) -> Vec<String> {
    mock.requests()
        .into_iter()
        .filter(|r| r.op == Op::Create)
        .filter_map(|r| {
            r.body
                .get("name")
                .and_then(|n| n.as_str())
                .map(String::from)
        })
        .collect()
}

struct Case {
    rt: tokio::runtime::Runtime,
    mock: MockServer,
    _dir: tempfile::TempDir,
    registry: Arc<Registry>,
    engine: Arc<Engine>,
}

fn case(mock_config: MockConfig) -> Case {
    let rt = runtime();
    let mock = rt.block_on(MockServer::start_local(mock_config)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let engine = {
        let _guard = rt.enter();
        engine_with(&mock.url(), &registry, config())
    };
    Case {
        rt,
        mock,
        _dir: dir,
        registry,
        engine,
    }
}

/// One create answered with `fault`, then whatever follows; the job's end and the creates sent.
fn create_answered(fault: Fault) -> (Job, usize) {
    let c = case(MockConfig {
        render_time: Duration::ZERO,
        faults: Faults {
            rules: vec![Rule {
                op: Op::Create.into(),
                fault,
                count: 1,
            }],
            ..Faults::default()
        },
        ..MockConfig::default()
    });
    let _guard = c.rt.enter();
    let id = prompt_job(&c.registry, "p");
    c.engine.kick(id);
    let job = ended(&c.registry, id, Duration::from_secs(20));
    (job, c.mock.count("create") as usize)
}

#[test]
fn a_create_refused_with_a_4xx_fails_the_job_and_is_not_resent() {
    let (job, creates) = create_answered(Fault::Status { status: 422 });
    assert_eq!(job.stage, Stage::Failed);
    assert!(job.error.unwrap().starts_with("unprocessable_entity:"));
    assert_eq!(creates, 1);
}

#[test]
fn a_create_answered_429_is_sent_again() {
    let (job, creates) = create_answered(Fault::Throttle {
        retry_after_secs: 0,
    });
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(creates, 2);
}

#[test]
fn a_create_answered_500_by_the_api_is_sent_again() {
    let (job, creates) = create_answered(Fault::Status { status: 500 });
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.error);
    assert_eq!(creates, 2);
}

#[test]
fn a_create_answered_502_or_503_is_sent_again() {
    for status in [502, 503] {
        let (job, creates) = create_answered(Fault::Status { status });
        assert_eq!(job.status, JobStatus::Complete, "{status}: {:?}", job.error);
        assert_eq!(creates, 2, "{status}");
    }
}

#[test]
fn a_create_answered_504_by_a_gateway_is_unknown() {
    let (job, creates) = create_answered(Fault::Gateway { status: 504 });
    assert_eq!(job.stage, Stage::Unknown);
    assert!(job.error.unwrap().starts_with("unknown_outcome:"));
    assert_eq!(creates, 1);
}

#[test]
fn a_create_whose_answer_is_cut_is_unknown() {
    let (job, creates) = create_answered(Fault::Drop);
    assert_eq!(job.stage, Stage::Unknown);
    assert_eq!(creates, 1);
}

#[test]
fn an_outage_delays_jobs_and_they_go_on_when_the_api_is_back() {
    let rt = runtime();
    // Find a free port, and keep the API away from it for a while.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let _guard = rt.enter();
    let engine = engine_with(&format!("http://{addr}"), &registry, config());
    let ids: Vec<JobId> = (0..5)
        .map(|i| prompt_job(&registry, &format!("o{i}")))
        .collect();
    for &id in &ids {
        engine.kick(id);
    }
    std::thread::sleep(Duration::from_millis(1500));
    for &id in &ids {
        let job = registry.job(id).unwrap();
        assert_ne!(job.status, JobStatus::Error, "{:?}", job.error);
        assert_ne!(job.stage, Stage::Creating, "nothing is in flight");
    }
    let mock = rt
        .block_on(MockServer::start(
            addr,
            MockConfig {
                render_time: Duration::ZERO,
                ..MockConfig::default()
            },
        ))
        .unwrap();
    let back = Instant::now();
    for &id in &ids {
        let job = ended(&registry, id, Duration::from_secs(20));
        assert_eq!(job.status, JobStatus::Complete, "{:?}", job.error);
    }
    // Woken by the first good answer, not by the end of their backoff.
    assert!(back.elapsed() < Duration::from_secs(10));
    assert_eq!(mock.count("create"), 5);
}

#[test]
fn an_outage_of_a_minute_fails_nothing_and_jobs_go_on_at_once() {
    let rt = runtime();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let _guard = rt.enter();
    // The shipped backoff (capped at 30 s): by the end of the outage each job's next try is
    // up to 30 s away, yet they must go on within seconds of the API's return.
    let engine = engine_with(
        &format!("http://{addr}"),
        &registry,
        EngineConfig {
            poll_base: Some(Duration::from_millis(50)),
            ..EngineConfig::default()
        },
    );
    let ids: Vec<JobId> = (0..3)
        .map(|i| prompt_job(&registry, &format!("m{i}")))
        .collect();
    for &id in &ids {
        engine.kick(id);
    }
    std::thread::sleep(Duration::from_secs(60));
    for &id in &ids {
        let job = registry.job(id).unwrap();
        assert_ne!(job.status, JobStatus::Error, "{:?}", job.error);
    }
    let mock = rt
        .block_on(MockServer::start(
            addr,
            MockConfig {
                render_time: Duration::ZERO,
                ..MockConfig::default()
            },
        ))
        .unwrap();
    let back = Instant::now();
    for &id in &ids {
        let job = ended(&registry, id, Duration::from_secs(30));
        assert_eq!(job.status, JobStatus::Complete, "{:?}", job.error);
    }
    let took = back.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "went on {took:?} after the API was back"
    );
    assert_eq!(mock.count("create"), 3);
}

#[test]
fn uploads_wait_out_server_errors_instead_of_failing() {
    let c = case(MockConfig {
        render_time: Duration::ZERO,
        faults: Faults {
            rules: vec![Rule {
                op: Op::UploadUrls.into(),
                fault: Fault::Status { status: 500 },
                count: 12,
            }],
            ..Faults::default()
        },
        ..MockConfig::default()
    });
    let _guard = c.rt.enter();
    let t = tool("photo-colorizer").unwrap();
    let mut job = c.registry.reserve("old.png", t, Source::File, None);
    c.registry.record(&job).unwrap();
    let dir = c.registry.layout().input_dir(job.id);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("old.png");
    std::fs::write(&path, mhfs::mock::media::draw("old", 1, 32, 32)).unwrap();
    job.inputs.push(InputFile {
        name: "old.png".into(),
        path,
        remote: None,
    });
    let id = job.id;
    c.registry.publish(job);
    c.engine.kick(id);
    let job = ended(&c.registry, id, Duration::from_secs(30));
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.error);
    assert_eq!(c.mock.count("upload-urls"), 13);
}

#[test]
fn an_event_settles_a_create_whose_answer_was_lost() {
    let rt = runtime();
    let _guard = rt.enter();
    // The engine's webhook receiver, and a mock that sends it signed events.
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let receiver = format!("http://{}/", listener.local_addr().unwrap());
    let secret = "0123456789abcdef0123456789abcdef";
    let mock = rt
        .block_on(MockServer::start_local(MockConfig {
            render_time: Duration::from_millis(300),
            webhook: Some(WebhookTarget {
                url: receiver,
                secret: secret.into(),
            }),
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
    let engine = engine_with(
        &mock.url(),
        &registry,
        EngineConfig {
            safety_net: Some(Duration::from_secs(60)),
            ..config()
        },
    );
    let on_event = engine.clone();
    mhfs::engine::webhook::serve(
        listener,
        secret.as_bytes().to_vec(),
        Arc::new(move |e| on_event.on_event(e)),
    )
    .unwrap();
    let id = prompt_job(&registry, "settled");
    engine.kick(id);
    let job = ended(&registry, id, Duration::from_secs(20));
    assert_eq!(job.stage, Stage::Unknown, "the answer was lost");
    // The project's events name it: the job follows it to the end, with no second create.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let job = registry.job(id).unwrap();
        if job.status == JobStatus::Complete {
            assert!(job.error.is_none());
            assert!(job.project_id.is_some());
            break;
        }
        assert!(Instant::now() < deadline, "still {:?}", job.stage);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(mock.count("create"), 1);
}

#[test]
fn a_crash_marks_unknown_only_creates_that_were_sent() {
    let rt = runtime();
    let mock = rt
        .block_on(MockServer::start_local(MockConfig {
            render_time: Duration::ZERO,
            ..MockConfig::default()
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    // First run: requests paced at 2 a second, so most creates wait for their slot when the
    // process dies.
    let first = runtime();
    {
        let registry = Registry::open(dir.path()).unwrap();
        let _guard = first.enter();
        let engine = engine_with(
            &mock.url(),
            &registry,
            EngineConfig {
                max_per_second: 2.0,
                poll_base: Some(Duration::from_secs(30)),
                ..config()
            },
        );
        for name in &names {
            engine.kick(prompt_job(&registry, name));
        }
        std::thread::sleep(Duration::from_millis(1250));
    }
    first.shutdown_background();
    let sent_before = created_names(&mock);
    assert!(sent_before.len() < names.len());
    // Second run: every job ends; each was created exactly once, and an unknown one only if
    // the mock did receive its create.
    let registry = loop {
        match Registry::open(dir.path()) {
            Ok(r) => break r,
            Err(e) if e.contains("in use") => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("{e}"),
        }
    };
    let _guard = rt.enter();
    let engine = engine_with(&mock.url(), &registry, config());
    engine.resume();
    for (id, _) in registry.names() {
        let job = ended(&registry, id, Duration::from_secs(30));
        let sent = created_names(&mock)
            .iter()
            .filter(|n| **n == job.name)
            .count();
        match job.stage {
            Stage::Done => assert_eq!(job.status, JobStatus::Complete),
            Stage::Unknown => assert!(
                sent_before.contains(&job.name),
                "{} is unknown but its create never reached the API",
                job.name
            ),
            other => panic!("{}: {other:?} {:?}", job.name, job.error),
        }
        assert_eq!(sent, 1, "{} created {sent} times", job.name);
    }
}
