//! "Seen where the user looks": activity.log, waiting folders, outputs/, batches, README.txt's
//! parameters, and the command line around the mount.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::drive::TestDrive;
use mhfs::api::catalog::Media;
use mhfs::mock::MockConfig;

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn activity(d: &TestDrive) -> String {
    std::fs::read_to_string(d.path("activity.log")).unwrap()
}

/// Waits until activity.log has a line containing every one of `parts`; returns that line.
fn activity_line(d: &TestDrive, parts: &[&str]) -> String {
    let mut found = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while found.is_none() {
        found = activity(d)
            .lines()
            .find(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_string);
        assert!(
            Instant::now() < deadline || found.is_some(),
            "no line with {parts:?} in activity.log:\n{}",
            activity(d)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    found.unwrap()
}

#[test]
fn activity_log_says_what_was_done_and_refused() {
    let Some(d) = TestDrive::start() else { return };
    assert!(d.ok("ls").contains("activity.log"));
    // A type the tool does not take: the accepted types.
    let exe = d.outside().join("a.exe");
    std::fs::write(&exe, b"MZ").unwrap();
    d.fails(&format!("cp {} inbox/ai-image-upscaler/", exe.display()));
    let line = activity_line(&d, &["a.exe", "ai-image-upscaler takes png, jpg"]);
    // Local time, ISO-like, first.
    let stamp = &line[..19];
    assert!(
        stamp.as_bytes()[4] == b'-' && stamp.as_bytes()[10] == b' ' && stamp.as_bytes()[13] == b':',
        "{line}"
    );
    // A tool folder that does not exist: the closest one.
    d.fails("mkdir inbox/ai-image-upscalr");
    let line = activity_line(&d, &["inbox/ai-image-upscalr", "did you mean"]);
    assert!(line.contains("inbox/ai-image-upscaler?"), "{line}");
    let photo = common::sample(&d.outside(), "me", Media::Image);
    d.fails(&format!("cp {} inbox/ai-image-upscalr/", photo.display()));
    // A single photo in a two-input tool: the job fails, and both its error and the log say
    // how to do it.
    d.ok(&format!("cp {} inbox/face-swap/", photo.display()));
    d.wait_status("me", &["error"]);
    let error = std::fs::read_to_string(d.path("jobs/me/error")).unwrap();
    assert!(error.starts_with("missing_input"), "{error}");
    assert!(
        error.contains("this tool takes two inputs: make a folder with image.png and video.mp4"),
        "{error}"
    );
    activity_line(&d, &["jobs/me: error: missing_input", "make a folder with"]);
    // A submission, its state changes and its completion.
    d.ok(&format!("cp {} inbox/ai-image-upscaler/", photo.display()));
    d.wait_status("me-2", &["complete"]);
    activity_line(
        &d,
        &["inbox/ai-image-upscaler/me.png: submitted as jobs/me-2"],
    );
    activity_line(&d, &["jobs/me-2: complete: jobs/me-2/output.png"]);
    // Each refusal once (the mkdir and the cp right after it say the same thing: one line),
    // newest last.
    let log = activity(&d);
    assert_eq!(
        log.matches("did you mean inbox/ai-image-upscaler?").count(),
        1,
        "{log}"
    );
    let submitted = log.find("submitted as jobs/me-2").unwrap();
    assert!(
        log.find("jobs/me-2: complete").unwrap() > submitted,
        "{log}"
    );
    // Kept in the state directory, for its owner only; read-only on the mount.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.state().join("activity.log"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    d.fails("echo x >> activity.log");
}

#[test]
fn tail_f_follows_activity_log() {
    let Some(d) = TestDrive::start() else { return };
    let size = |d: &TestDrive| std::fs::metadata(d.path("activity.log")).unwrap().len();
    let before = size(&d);
    let mut tail = Command::new("tail")
        .args(["-n", "0", "-f", "activity.log"])
        .current_dir(d.mnt())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tail.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    d.fails("mkdir inbox/face-swapp");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("face-swapp")) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "tail -f saw {seen:?}\n{}", activity(&d));
        if let Ok(l) = rx.recv_timeout(left) {
            seen.push(l);
        }
    }
    tail.kill().unwrap();
    tail.wait().unwrap();
    assert!(size(&d) > before, "getattr reports the real size");
}

#[test]
fn activity_log_raises_in_modify_for_inotify() {
    let Some(d) = TestDrive::start() else { return };
    let mut watch = Command::new("inotifywait")
        .args(["-m", "-e", "modify", "activity.log"])
        .current_dir(d.mnt())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    d.fails("mkdir inbox/nope");
    let got = rx.recv_timeout(Duration::from_secs(10));
    watch.kill().unwrap();
    watch.wait().unwrap();
    assert!(got.is_ok_and(|l| l.contains("MODIFY")));
}

#[test]
fn an_incomplete_folder_says_what_it_needs() {
    let Some(d) = TestDrive::start() else { return };
    d.ok("mkdir inbox/face-swap/me");
    common::sample(&d.path("inbox/face-swap/me"), "image", Media::Image);
    let line = activity_line(&d, &["inbox/face-swap/me: waiting for"]);
    assert!(
        line.ends_with(
            "inbox/face-swap/me: waiting for a video (video.mp4): this tool takes image + video"
        ),
        "{line}"
    );
    // Once per change: it stays one line while nothing changes.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(activity(&d).matches("waiting for").count(), 1);
    // `mhfs jobs MOUNTPOINT` lists it, with what it needs.
    let out = Command::new(env!("CARGO_BIN_EXE_mhfs"))
        .arg("jobs")
        .arg(d.mnt())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("inbox/face-swap/me"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        row.contains("waiting") && row.contains("a video (video.mp4)"),
        "{row}"
    );
    // Completed, it goes.
    common::sample(&d.path("inbox/face-swap/me"), "video", Media::Video);
    d.wait_status("me", &["complete"]);
}

#[test]
fn outputs_shows_every_finished_output_flat() {
    let Some(d) = TestDrive::start() else { return };
    let photo = common::sample(&d.outside(), "holiday", Media::Image);
    d.ok(&format!("cp {} inbox/ai-image-upscaler/", photo.display()));
    d.ok(
        r#"echo '{"style": {"prompt": "two moons"}, "image_count": 2}' > inbox/ai-image-generator/moons.json"#,
    );
    d.wait_status("holiday", &["complete"]);
    d.wait_status("moons", &["complete"]);
    let listed = d.ok("ls outputs");
    let names: Vec<&str> = listed.lines().collect();
    assert_eq!(
        names,
        ["holiday.png", "moons-1.png", "moons-2.png"],
        "{listed}"
    );
    for (flat, inside) in [
        ("outputs/holiday.png", "jobs/holiday/output.png"),
        ("outputs/moons-2.png", "jobs/moons/output-2.png"),
    ] {
        assert_eq!(
            std::fs::read(d.path(flat)).unwrap(),
            std::fs::read(d.path(inside)).unwrap(),
            "{flat}"
        );
    }
    // Read-only, and `cp outputs/* dir` collects them.
    d.fails("echo x > outputs/holiday.png");
    d.fails("touch outputs/new.png");
    let collect = d.outside().join("collected");
    std::fs::create_dir_all(&collect).unwrap();
    d.ok(&format!("cp outputs/* {}", collect.display()));
    assert_eq!(std::fs::read_dir(&collect).unwrap().count(), 3);
    // A name two jobs' outputs share (moons-2: the second image of moons, and the only one of
    // the job moons-2) is listed once: the one a lookup finds, the job of that name.
    d.ok("echo 'two moons again' > inbox/ai-image-generator/moons.txt");
    d.wait_status("moons-2", &["complete"]);
    let listed = d.ok("ls outputs");
    assert_eq!(listed.matches("moons-2.png").count(), 1, "{listed}");
    assert_eq!(
        std::fs::read(d.path("outputs/moons-2.png")).unwrap(),
        std::fs::read(d.path("jobs/moons-2/output.png")).unwrap()
    );
    // A job removed takes its outputs with it.
    d.ok("rm -r jobs/holiday");
    wait_for("outputs/holiday.png to go", || {
        !d.path("outputs/holiday.png").exists()
    });
}

#[test]
fn a_folder_of_photos_in_a_one_input_tool_is_one_job_per_photo() {
    let Some(d) = TestDrive::start() else { return };
    let batch = d.outside().join("batch");
    std::fs::create_dir_all(&batch).unwrap();
    for stem in ["anna", "ben", "cleo"] {
        common::sample(&batch, stem, Media::Image);
    }
    d.ok(&format!(
        "cp -r {} inbox/ai-image-upscaler/",
        batch.display()
    ));
    for job in ["anna", "ben", "cleo"] {
        d.wait_status(job, &["complete"]);
    }
    assert_eq!(d.jobs(), ["anna", "ben", "cleo"]);
    assert_eq!(d.count("create"), 3, "one create per photo");
    wait_for("the folder to leave the inbox", || {
        !d.path("inbox/ai-image-upscaler/batch").exists()
    });
    activity_line(
        &d,
        &["inbox/ai-image-upscaler/batch/ben.png: submitted as jobs/ben"],
    );
    // With params.json, each photo's job takes it.
    let batch = d.outside().join("fours");
    std::fs::create_dir_all(&batch).unwrap();
    for stem in ["dan", "eve"] {
        common::sample(&batch, stem, Media::Image);
    }
    std::fs::write(batch.join("params.json"), r#"{"scale_factor": 4}"#).unwrap();
    d.ok(&format!(
        "cp -r {} inbox/ai-image-upscaler/",
        batch.display()
    ));
    for job in ["dan", "eve"] {
        d.wait_status(job, &["complete"]);
        let request = std::fs::read_to_string(d.path(&format!("jobs/{job}/request.json"))).unwrap();
        assert!(request.contains("\"scale_factor\": 4"), "{request}");
    }
}

#[test]
fn readme_lists_every_parameter_with_its_allowed_values_and_price() {
    let text = mhfs::fs::readme::readme_txt(&Default::default(), Duration::from_secs(2));
    let schema = mhfs::api::schema::schema_for("/v1/ai-image-generator").unwrap();
    let tools = schema["properties"]["style"]["properties"]["tool"]["enum"]
        .as_array()
        .unwrap();
    assert_eq!(tools.len(), 35);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("style.tool:"))
        .expect("style.tool is listed");
    assert!(line.contains(&mhfs::api::schema::list(tools)), "{line}");
    assert!(line.contains("default \"general\""), "{line}");
    // Every voice, the price and an example params.json.
    assert!(text.contains("Bob Dylan"));
    let upscaler = text
        .split("\nai-image-upscaler (")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    assert!(upscaler.contains("price:"), "{upscaler}");
    assert!(upscaler.contains("params.json"), "{upscaler}");
    assert!(
        upscaler.contains("style.mode: string, one of: pro, preserve, balanced, creative"),
        "{upscaler}"
    );
}

// ---- the command line ----

fn mhfs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mhfs"))
}

#[test]
fn mhfs_jobs_reads_a_mount_or_a_state_dir_as_json_and_survives_a_closed_pipe() {
    let Some(d) = TestDrive::start() else { return };
    let photo = common::sample(&d.outside(), "sea", Media::Image);
    d.ok(&format!("cp {} inbox/ai-image-upscaler/", photo.display()));
    d.wait_status("sea", &["complete"]);
    for path in [d.mnt(), d.state()] {
        let out = mhfs()
            .arg("jobs")
            .arg("--json")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let sea = all
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == "sea")
            .unwrap();
        assert_eq!(sea["status"], "complete");
        assert_eq!(sea["outputs"][0], "output.png");
    }
    // The reader went away: no panic, no message.
    let mut child = mhfs()
        .arg("jobs")
        .arg(d.mnt())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("panicked"), "{said}");
    assert!(said.is_empty(), "{said}");
}

#[test]
fn a_wrong_api_key_stops_the_mount_and_an_unreachable_api_does_not() {
    if !common::drive::fuse_available() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = rt
        .block_on(mhfs::mock::MockServer::start_local(MockConfig {
            api_key: Some("the-right-key".into()),
            ..MockConfig::default()
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "a-wrong-key\n").unwrap();
    let out = mhfs()
        .arg("mount")
        .arg(&mnt)
        .args(["--api-url", &mock.url(), "--api-key-file"])
        .arg(&key)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("API key was refused"), "{said}");
    // No API at all: a warning, and the mount comes up.
    let log = dir.path().join("log");
    let mut child = mhfs()
        .arg("mount")
        .arg(&mnt)
        .args(["--api-url", "http://127.0.0.1:9", "--state-dir"])
        .arg(dir.path().join("state"))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for("the mount", || mnt.join("README.txt").exists());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("could not check the API key"), "{said}");
    rt.block_on(mock.stop());
}

#[test]
fn mounting_over_a_non_empty_folder_is_refused_unless_allowed() {
    if !common::drive::fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::write(mnt.join("mine.txt"), "x").unwrap();
    let out = mhfs()
        .arg("mount")
        .arg(&mnt)
        .args(["--api-url", "http://127.0.0.1:9", "--state-dir"])
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("is not empty"), "{said}");
    let mut child = mhfs()
        .arg("mount")
        .arg(&mnt)
        .args([
            "--allow-non-empty",
            "--api-url",
            "http://127.0.0.1:9",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the mount", || mnt.join("README.txt").exists());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(mnt.join("mine.txt").exists());
}

#[test]
fn a_clean_umount_warns_of_nothing_and_the_banner_is_said_once() {
    let Some(mut d) = TestDrive::start() else {
        return;
    };
    let mnt = d.mnt();
    d.stop_with(|| {
        assert!(Command::new("umount").arg(&mnt).status().unwrap().success());
    });
    let log = d.log();
    assert!(!log.contains("Unmount failed"), "{log}");
    assert_eq!(log.matches("mounted on").count(), 1, "{log}");
}

#[test]
fn mhfs_mock_removes_its_temp_folder_on_exit() {
    let tmp = tempfile::tempdir().unwrap();
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let mut child = mhfs()
            .args(["mock", "--listen", "127.0.0.1:0"])
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut url = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut url)
            .unwrap();
        assert!(url.starts_with("http://"), "{url}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        assert!(child.wait().unwrap().success());
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[test]
fn a_new_output_raises_in_create_in_outputs() {
    let Some(d) = TestDrive::start() else { return };
    let mut watch = Command::new("inotifywait")
        .args(["-m", "-e", "create", "--format", "%e %f", "outputs"])
        .current_dir(d.mnt())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let photo = common::sample(&d.outside(), "dawn", Media::Image);
    d.ok(&format!("cp {} inbox/ai-image-upscaler/", photo.display()));
    let got = rx.recv_timeout(Duration::from_secs(15));
    watch.kill().unwrap();
    watch.wait().unwrap();
    assert_eq!(got.ok().as_deref(), Some("CREATE dawn.png"));
}
