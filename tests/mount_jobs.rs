//! Jobs through the mount: deletion, renames, persistence across unmounts and crashes,
//! unknown outcomes, and a hot path that never calls the API (docs/SEMANTICS.md, "Jobs").

mod common;

use std::time::Duration;

use common::drive::TestDrive;
use mhfs::api::catalog::Media;
use mhfs::mock::{Fault, Faults, MockConfig, Op, Rule};

fn drop_photo(d: &TestDrive, tool: &str, stem: &str) {
    let photo = common::sample(&d.outside(), stem, Media::Image);
    d.ok(&format!("cp {} inbox/{tool}/", photo.display()));
}

#[test]
fn rm_r_deletes_the_project_once_and_the_folder() {
    let Some(d) = TestDrive::start() else { return };
    drop_photo(&d, "photo-colorizer", "old");
    d.wait_status("old", &["complete"]);
    d.ok("rm -r jobs/old");
    assert!(d.jobs().is_empty());
    assert_eq!(d.count("delete"), 1);
    let delete = d
        .mock
        .requests()
        .into_iter()
        .find(|r| r.op == Op::Delete)
        .unwrap();
    assert!(
        delete.path.starts_with("/v1/image-projects/"),
        "{}",
        delete.path
    );
    // Its local data is gone too.
    assert!(
        std::fs::read_dir(d.state().join("jobs"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn removing_files_inside_a_job_hides_them_only() {
    let Some(d) = TestDrive::start() else { return };
    drop_photo(&d, "photo-colorizer", "pic");
    d.wait_status("pic", &["complete"]);
    d.ok("rm jobs/pic/output.png");
    assert_eq!(d.ok("ls jobs/pic"), "job.json\nrequest.json\nstatus\n");
    assert!(d.fails("cat jobs/pic/output.png").contains("No such file"));
    assert_eq!(d.count("delete"), 0);
    // Paid work is not destroyed by an rm: the download stays on disk until the DELETE.
    let kept = std::fs::read_dir(d.state().join("jobs"))
        .unwrap()
        .map(|e| e.unwrap().path().join("out/output.png"))
        .find(|p| p.exists());
    assert!(kept.is_some(), "the local copy is kept");
    d.wait_status("pic", &["complete"]);
}

#[test]
fn a_refused_delete_keeps_the_job() {
    let Some(d) = TestDrive::start() else { return };
    drop_photo(&d, "photo-colorizer", "kept");
    d.wait_status("kept", &["complete"]);
    d.mock.set_faults(Faults {
        rules: vec![Rule {
            op: Op::Delete.into(),
            fault: Fault::Status { status: 422 },
            count: 1,
        }],
        ..Faults::default()
    });
    let err = d.fails("rm -r jobs/kept");
    assert!(err.contains("Input/output error"), "{err}");
    assert_eq!(d.jobs(), ["kept"]);
    assert_eq!(d.count("delete"), 1);
    // Once the API agrees, it goes.
    d.ok("rm -r jobs/kept");
    assert!(d.jobs().is_empty());
}

#[test]
fn a_project_already_gone_is_removed_locally() {
    let Some(d) = TestDrive::start() else { return };
    drop_photo(&d, "photo-colorizer", "gone");
    d.wait_status("gone", &["complete"]);
    d.mock.set_faults(Faults {
        rules: vec![Rule {
            op: Op::Delete.into(),
            fault: Fault::Status { status: 404 },
            count: 1,
        }],
        ..Faults::default()
    });
    d.ok("rm -r jobs/gone");
    assert!(d.jobs().is_empty());
}

#[test]
fn mv_renames_a_job_locally() {
    let Some(d) = TestDrive::start() else { return };
    drop_photo(&d, "photo-colorizer", "a");
    d.wait_status("a", &["complete"]);
    d.ok("mv jobs/a jobs/b");
    assert_eq!(d.jobs(), ["b"]);
    // Onto another job's name: refused, both stay.
    drop_photo(&d, "photo-colorizer", "c");
    d.wait_status("c", &["complete"]);
    let err = d.fails("mv -T jobs/b jobs/c");
    assert!(err.contains("exists"), "{err}");
    assert_eq!(d.jobs(), ["b", "c"]);
    assert_eq!(d.count("delete"), 0, "a rename is local");
    assert_eq!(d.count("create"), 2);
    assert_eq!(d.ok("cat jobs/b/status"), "complete\n");
}

#[test]
fn listing_and_reading_status_make_no_api_request() {
    let Some(d) = TestDrive::start() else { return };
    drop_photo(&d, "photo-colorizer", "still");
    d.wait_status("still", &["complete"]);
    std::thread::sleep(Duration::from_millis(200));
    let before = d.mock.requests().len();
    for _ in 0..5 {
        d.ok("ls -l jobs/ jobs/still && stat jobs/still/status && cat jobs/still/status jobs/still/job.json");
        d.ok("cat README.txt > /dev/null && ls -la inbox/");
    }
    assert_eq!(d.mock.requests().len(), before);
}

#[test]
fn status_follows_the_job_through_queued_and_rendering() {
    let Some(d) = TestDrive::with(MockConfig {
        render_time: Duration::from_secs(2),
        ..MockConfig::default()
    }) else {
        return;
    };
    d.ok("echo 'a slow cat' > inbox/ai-image-generator/slow.txt");
    let mut seen = vec![];
    loop {
        let s = d.status("slow").unwrap_or_default();
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if s == "complete" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen.contains(&"queued".to_string()), "{seen:?}");
    assert!(seen.contains(&"rendering".to_string()), "{seen:?}");
    // job.json is the project as last seen.
    let job: serde_json::Value = serde_json::from_str(&d.ok("cat jobs/slow/job.json")).unwrap();
    assert_eq!(job["status"], "complete");
}

#[test]
fn unmount_and_mount_bring_every_job_back() {
    let Some(mut d) = TestDrive::start() else {
        return;
    };
    drop_photo(&d, "photo-colorizer", "one");
    d.ok("echo 'two' > inbox/ai-image-generator/two.txt");
    d.wait_status("one", &["complete"]);
    d.wait_status("two", &["complete"]);
    let output = std::fs::read(d.path("jobs/one/output.png")).unwrap();
    d.unmount();
    d.mount();
    assert_eq!(d.jobs(), ["one", "two"]);
    assert_eq!(
        std::fs::read(d.path("jobs/one/output.png")).unwrap(),
        output
    );
    assert_eq!(d.status("two").unwrap(), "complete");
    assert_eq!(d.count("create"), 2, "nothing submitted twice");
    // `mhfs jobs` lists them from the state directory, while mounted.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mhfs"))
        .args(["jobs", "--state-dir"])
        .arg(d.state())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    let one = table
        .lines()
        .find(|l| l.starts_with("one "))
        .expect("a line for jobs/one");
    assert!(
        one.contains("photo-colorizer") && one.contains("complete") && one.contains("1/1"),
        "{one}"
    );
}

#[test]
fn kill_9_then_mount_resumes_unfinished_jobs() {
    let Some(mut d) = TestDrive::with(MockConfig {
        render_time: Duration::from_secs(2),
        ..MockConfig::default()
    }) else {
        return;
    };
    drop_photo(&d, "photo-colorizer", "crash");
    d.wait_status("crash", &["queued", "rendering"]);
    d.kill();
    d.mount();
    d.wait_status("crash", &["complete"]);
    assert_eq!(d.count("create"), 1, "the create is not sent again");
    assert!(d.path("jobs/crash/output.png").exists());
}

#[test]
fn a_lost_create_answer_is_never_resent() {
    let Some(mut d) = TestDrive::start() else {
        return;
    };
    d.mock.set_faults(Faults {
        rules: vec![Rule {
            op: Op::Create.into(),
            fault: Fault::Drop,
            count: 1,
        }],
        ..Faults::default()
    });
    d.ok("echo 'lost' > inbox/ai-image-generator/lost.txt");
    d.wait_status("lost", &["error"]);
    let error = d.ok("cat jobs/lost/error");
    assert!(error.starts_with("unknown_outcome: "), "{error}");
    assert!(
        error.contains("inbox/ai-image-generator/"),
        "says how to resubmit: {error}"
    );
    // The input is kept in the job folder, to resubmit from.
    assert_eq!(d.ok("cat jobs/lost/lost.txt"), "lost\n");
    d.unmount();
    d.mount();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.status("lost").unwrap(), "error");
    assert_eq!(d.count("create"), 1);
}

#[test]
fn throttling_and_server_errors_are_retried_by_the_engine() {
    let Some(d) = TestDrive::start() else { return };
    d.mock.set_faults(Faults {
        rules: vec![
            Rule {
                op: Op::Create.into(),
                fault: Fault::Throttle {
                    retry_after_secs: 1,
                },
                count: 1,
            },
            Rule {
                op: Op::Get.into(),
                fault: Fault::Status { status: 503 },
                count: 2,
            },
            Rule {
                op: Op::Download.into(),
                fault: Fault::Drop,
                count: 1,
            },
        ],
        ..Faults::default()
    });
    d.ok("echo 'persistent' > inbox/ai-image-generator/p.txt");
    d.wait_status("p", &["complete"]);
    // The throttled create did nothing; the retry made the one project.
    let created: Vec<_> = d
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.op == Op::Create)
        .collect();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].status, 429);
    assert_eq!(created[1].status, 200);
    mhfs::mock::media::check_image(&std::fs::read(d.path("jobs/p/output.png")).unwrap()).unwrap();
}

#[test]
fn an_expired_download_url_is_refreshed() {
    let Some(d) = TestDrive::start() else { return };
    d.mock.set_faults(Faults {
        url_lifetime_secs: Some(0),
        ..Faults::default()
    });
    d.ok("echo 'expiring' > inbox/ai-image-generator/e.txt");
    d.wait_status("e", &["downloading"]);
    std::thread::sleep(Duration::from_millis(300));
    d.mock.set_faults(Faults::default());
    d.wait_status("e", &["complete"]);
    let downloads: Vec<_> = d
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.op == Op::Download)
        .collect();
    assert!(
        downloads.len() >= 2,
        "the expired URL was refused, then a fresh one worked"
    );
    assert_eq!(downloads[0].status, 403);
    assert_eq!(downloads.last().unwrap().status, 200);
}

#[test]
fn a_defaults_file_overrides_the_built_in_defaults() {
    let defaults = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        defaults.path(),
        r#"{"ai-image-upscaler": {"scale_factor": 4}}"#,
    )
    .unwrap();
    let path = defaults.path().to_str().unwrap();
    let config = MockConfig {
        render_time: Duration::ZERO,
        ..MockConfig::default()
    };
    let Some(d) = TestDrive::with_args(config, &["--defaults", path]) else {
        return;
    };
    // README.txt shows the effective defaults.
    assert!(
        d.ok("cat README.txt")
            .contains(r#"defaults: {"scale_factor":4,"style":{"mode":"balanced"}}"#)
    );
    drop_photo(&d, "ai-image-upscaler", "four");
    d.wait_status("four", &["complete"]);
    let (w, h) =
        mhfs::mock::media::check_image(&std::fs::read(d.path("jobs/four/output.png")).unwrap())
            .unwrap();
    assert_eq!((w, h), (64 * 4, 48 * 4));
}

#[test]
fn a_second_mount_of_the_same_state_directory_is_refused() {
    let Some(d) = TestDrive::start() else { return };
    let other = d.outside().join("mnt2");
    std::fs::create_dir_all(&other).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mhfs"))
        .arg("mount")
        .arg(&other)
        .args(["--api-url", &d.mock.url(), "--state-dir"])
        .arg(d.state())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another mhfs mount"), "{err}");
}

/// A project made elsewhere (web app, SDK) is adopted by looking up its id under jobs/: the
/// lookup itself answers at once (no API call on it), and the job appears once found.
#[test]
fn looking_up_a_project_id_adopts_a_job_made_elsewhere() {
    let Some(d) = TestDrive::start() else { return };
    let client =
        mhfs::api::Client::new(&d.mock.url(), mhfs::api::ApiKey::new("elsewhere")).unwrap();
    let body = serde_json::json!({"style": {"prompt": "made in the web app", "voice_name": "Morgan Freeman"}});
    let id =
        d.rt.block_on(client.create("ai-voice-generator", &body))
            .unwrap()
            .id;
    let err = d.fails(&format!("ls jobs/{id}"));
    assert!(err.contains("No such file"), "{err}");
    d.wait_status(&id, &["complete"]);
    mhfs::mock::media::check_wav(&std::fs::read(d.path(&format!("jobs/{id}/output.wav"))).unwrap())
        .unwrap();
    assert_eq!(d.count("create"), 1, "adopting creates nothing");
    // Ids that do not exist are probed once, then stay absent.
    d.fails("ls jobs/cnotaprojectidatall00000000");
    std::thread::sleep(Duration::from_millis(300));
    d.fails("ls jobs/cnotaprojectidatall00000000");
    assert!(d.count("get") >= 1);
}

/// Ctrl-C (SIGINT), SIGTERM and `umount MOUNTPOINT` all unmount cleanly: mhfs exits 0, the
/// folder is an empty local folder again, and the jobs are back at the next mount.
#[test]
fn ctrl_c_sigterm_and_umount_unmount_cleanly() {
    let Some(mut d) = TestDrive::start() else {
        return;
    };
    d.ok("echo 'kept' > inbox/ai-image-generator/kept.txt");
    d.wait_status("kept", &["complete"]);
    let mnt = d.mnt();
    let umount = |mnt: std::path::PathBuf| {
        move || {
            let ok = std::process::Command::new("umount")
                .arg(&mnt)
                .status()
                .unwrap();
            assert!(ok.success());
        }
    };
    d.stop_with(umount(mnt.clone()));
    assert!(
        std::fs::read_dir(&mnt).unwrap().next().is_none(),
        "unmounted"
    );
    d.mount();
    let pid = d.pid() as i32;
    d.stop_with(|| unsafe {
        libc::kill(pid, libc::SIGINT);
    });
    assert!(
        std::fs::read_dir(&mnt).unwrap().next().is_none(),
        "unmounted"
    );
    d.mount();
    assert_eq!(d.jobs(), ["kept"]);
    d.unmount();
    assert!(
        std::fs::read_dir(&mnt).unwrap().next().is_none(),
        "unmounted"
    );
}

/// `--daemon` returns once the mount answers; `umount` stops the background process.
/// `--uid`/`--gid` set the owner shown for every file.
#[test]
fn daemon_mode_returns_once_mounted() {
    let Some(d) = TestDrive::start() else { return };
    let mnt = d.outside().join("mnt-daemon");
    std::fs::create_dir_all(&mnt).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mhfs"))
        .arg("mount")
        .arg(&mnt)
        .args([
            "--daemon",
            "--uid",
            "4321",
            "--gid",
            "4322",
            "--api-url",
            &d.mock.url(),
        ])
        .arg("--state-dir")
        .arg(d.outside().join("state-daemon"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{said}");
    let pid: i32 = said
        .split("(pid ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(mnt.join("README.txt")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4321, 4322));
    assert!(
        std::process::Command::new("umount")
            .arg(&mnt)
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not stop after umount"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `--daemon` exits non-zero at once with the real reason when the mount cannot come up: the
/// child's own error, told through the readiness pipe, or the parent's for a missing folder.
/// (Needs no FUSE: both fail before mounting.)
#[test]
fn daemon_mode_reports_why_the_mount_failed() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    // Only the child reads the defaults file, so its error must cross the pipe.
    let defaults = dir.path().join("defaults.json");
    std::fs::write(&defaults, b"{not json").unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mhfs"))
        .arg("mount")
        .arg(&mnt)
        .args(["--daemon", "--api-url", "http://127.0.0.1:9", "--defaults"])
        .arg(&defaults)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{said}");
    assert!(started.elapsed() < Duration::from_secs(15), "{said}");
    assert!(
        said.contains(&format!("defaults file {}", defaults.display())),
        "{said}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mhfs"))
        .arg("mount")
        .arg(dir.path().join("missing"))
        .args(["--daemon", "--api-url", "http://127.0.0.1:9"])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("No such file or directory"), "{said}");
}

/// Unmounting while a create is in flight lets it finish: its outcome is known, not lost.
#[test]
fn unmounting_lets_a_create_in_flight_finish() {
    let Some(mut d) = TestDrive::start() else {
        return;
    };
    d.mock.set_faults(Faults {
        latency_ms: 1500,
        ..Faults::default()
    });
    d.ok("echo 'slow create' > inbox/ai-image-generator/inflight.txt");
    d.wait_status("inflight", &["submitting"]);
    d.unmount();
    d.mock.set_faults(Faults::default());
    d.mount();
    d.wait_status("inflight", &["complete"]);
    assert_eq!(d.count("create"), 1);
}

/// With a webhook receiver, job events move jobs at once: polling is a 60 s safety net here, yet
/// the job completes in about its render time. Forged events are refused.
#[test]
fn webhook_events_move_jobs_without_waiting_for_a_poll() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "whsec_test_0123456789\n").unwrap();
    let listen = format!("127.0.0.1:{port}");
    let config = MockConfig {
        render_time: Duration::from_millis(600),
        ..MockConfig::default()
    };
    let args = [
        "--webhook-listen",
        &listen,
        "--webhook-secret-file",
        secret.path().to_str().unwrap(),
    ];
    let Some(mut d) = TestDrive::with_args(config, &args) else {
        return;
    };
    d.unmount();
    d.poll = 60.0;
    d.mount();
    d.mock.set_webhook(Some(mhfs::mock::WebhookTarget {
        url: format!("http://{listen}/hooks"),
        secret: "whsec_test_0123456789".into(),
    }));
    let started = std::time::Instant::now();
    d.ok("echo 'a webhook cat' > inbox/ai-image-generator/hooked.txt");
    d.wait_status("hooked", &["complete"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited for a poll"
    );
    assert!(
        d.count("get") <= 3,
        "{} polls: events should drive this job",
        d.count("get")
    );
    assert!(
        d.log().contains("job hooked: event image.completed"),
        "{}",
        d.log()
    );

    // A forged event (wrong signature) is refused and changes nothing.
    let forged = d.rt.block_on(async {
        reqwest::Client::new()
            .post(format!("http://{listen}/"))
            .header(
                "magic-hour-event-timestamp",
                mhfs::api::webhook::now_secs().to_string(),
            )
            .header("magic-hour-event-signature", "0".repeat(64))
            .body(r#"{"type":"image.errored","payload":{"id":"x"}}"#)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(forged, 401);
}

#[test]
fn kept_job_files_follow_each_change_at_once() {
    let Some(d) = TestDrive::with(MockConfig {
        render_time: Duration::from_secs(2),
        ..MockConfig::default()
    }) else {
        return;
    };
    d.ok("echo 'a watched cat' > inbox/ai-image-generator/watched.txt");
    // The kernel keeps the folder and `status` for 60 s, so only mhfs's invalidations can make
    // `stat` and `ls` follow: each size must be the content's, each listing the job's.
    let mut checked = 0;
    let mut seen = Vec::new();
    loop {
        let st = d.ok(
            "stat -c '%s %o' jobs/watched/status; cat jobs/watched/status; \
             stat -c '%s %o' jobs/watched/status; ls jobs/watched",
        );
        let lines: Vec<&str> = st.lines().collect();
        let (before, status, after) = (lines[0], lines[1], lines[2]);
        assert!(before.ends_with(" 4096"), "a small block size: {before}");
        if before == after {
            assert_eq!(before, format!("{} 4096", status.len() + 1), "{st}");
            checked += 1;
        }
        if seen.last().map(String::as_str) != Some(status) {
            seen.push(status.to_string());
        }
        if status == "complete" {
            assert!(lines[3..].contains(&"output.png"), "listed at once: {st}");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(checked > 5 && seen.len() >= 3, "{seen:?}");
    assert!(seen.contains(&"rendering".to_string()), "{seen:?}");
    // Outputs are read through the page cache, in large blocks.
    assert_eq!(d.ok("stat -c %o jobs/watched/output.png"), "1048576\n");
}
