//! Billed once per intent, and media-aware parameters (docs/SEMANTICS.md, "Once per intent",
//! "Media-aware parameters"), through a real mount: the same bytes and parameters dropped again
//! are not submitted again, `.again` is the deliberate rerun, clip tools bill the real clip,
//! and a file whose bytes are not what its name says fails before any upload.

mod common;

use std::time::{Duration, Instant};

use common::drive::TestDrive;
use mhfs::api::catalog::Media;
use mhfs::mock::Op;
use serde_json::Value;

const DUPLICATE: &str = "(same bytes and parameters): not submitted again";

/// Waits until the log says `n` drops were duplicates, and returns those lines.
fn wait_duplicates(d: &TestDrive, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines: Vec<String> = d
            .log()
            .lines()
            .filter(|l| l.contains(DUPLICATE))
            .map(String::from)
            .collect();
        if lines.len() >= n {
            assert_eq!(lines.len(), n, "{}", d.log());
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} duplicates seen\n{}",
            lines.len(),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// The create bodies the mock received for `slug`, in order.
fn create_bodies(d: &TestDrive, slug: &str) -> Vec<Value> {
    d.mock
        .requests()
        .into_iter()
        .filter(|r| r.op == Op::Create && r.path == format!("/v1/{slug}"))
        .map(|r| r.body)
        .collect()
}

fn job_json(d: &TestDrive, job: &str) -> Value {
    serde_json::from_str(&d.ok(&format!("cat jobs/{job}/job.json"))).unwrap()
}

#[test]
fn rsync_of_a_folder_twice_creates_each_photo_once() {
    let Some(d) = TestDrive::start() else { return };
    let photos = d.outside().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for stem in ["a", "b", "c"] {
        common::sample(&photos, stem, Media::Image);
    }
    let rsync = format!("rsync -a {}/ inbox/ai-image-upscaler/", photos.display());
    d.ok(&rsync);
    for job in ["a", "b", "c"] {
        d.wait_status(job, &["complete"]);
    }
    assert_eq!(d.count("create"), 3);
    // The inbox is empty again, so rsync sends all three again: the same intent, not billed.
    d.ok(&rsync);
    let lines = wait_duplicates(&d, 3);
    assert!(
        lines.iter().any(|l| l.contains(
            "inbox/ai-image-upscaler/a.png: the same as jobs/a (same bytes and parameters): \
             not submitted again; to run it again, name it a.again.png"
        )),
        "{lines:?}"
    );
    assert_eq!(
        d.jobs(),
        ["a", "b", "c"],
        "the duplicates' folders are gone"
    );
    assert_eq!(d.count("create"), 3);
    assert_eq!(d.count("upload"), 3, "nothing uploaded for the duplicates");
}

#[test]
fn an_unchanged_prompt_saved_three_times_is_created_once() {
    let Some(d) = TestDrive::start() else { return };
    for _ in 0..3 {
        d.ok("sh -c 'echo a cat > inbox/ai-image-generator/cat.txt'");
        // Each save leaves the inbox before the next one.
        let deadline = Instant::now() + Duration::from_secs(10);
        while d.path("inbox/ai-image-generator/cat.txt").exists() {
            assert!(Instant::now() < deadline, "{}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let lines = wait_duplicates(&d, 2);
    assert!(
        lines[0].contains(
            "inbox/ai-image-generator/cat.txt: the same as jobs/cat (same bytes and \
             parameters): not submitted again; to run it again, name it cat.again.txt"
        ),
        "{lines:?}"
    );
    d.wait_status("cat", &["complete"]);
    assert_eq!(d.jobs(), ["cat"]);
    assert_eq!(d.count("create"), 1);
}

#[test]
fn an_editor_saving_the_same_prompt_three_times_bills_it_once() {
    let Some(d) = TestDrive::start() else { return };
    if !common::have("vim") {
        return;
    }
    // vim writes the file (with its swap file and 4913 probe) each time it saves.
    for _ in 0..3 {
        d.ok("vim -es -u NONE -i NONE -c 'normal ia lighthouse at dawn' -c 'wq' inbox/ai-image-generator/dawn.txt");
        let deadline = Instant::now() + Duration::from_secs(10);
        while d.path("inbox/ai-image-generator/dawn.txt").exists() {
            assert!(Instant::now() < deadline, "{}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    wait_duplicates(&d, 2);
    d.wait_status("dawn", &["complete"]);
    assert_eq!(d.jobs(), ["dawn"]);
    assert_eq!(d.count("create"), 1);
}

#[test]
fn the_again_name_submits_the_same_intent_once_more() {
    let Some(d) = TestDrive::start() else { return };
    d.ok("echo a lighthouse > inbox/ai-image-generator/lighthouse.txt");
    d.wait_status("lighthouse", &["complete"]);
    d.ok("echo a lighthouse > inbox/ai-image-generator/lighthouse.again.txt");
    d.wait_status("lighthouse.again", &["complete"]);
    assert_eq!(d.count("create"), 2);
    assert!(!d.log().contains(DUPLICATE), "{}", d.log());
}

#[test]
fn a_failed_jobs_input_can_be_submitted_again() {
    let Some(d) = TestDrive::start() else { return };
    d.mock.set_faults(mhfs::mock::Faults {
        rules: vec![mhfs::mock::Rule {
            op: mhfs::mock::Op::Create.into(),
            fault: mhfs::mock::Fault::Status { status: 403 },
            count: 1,
        }],
        ..Default::default()
    });
    let photo = common::sample(&d.outside(), "retry", Media::Image);
    d.ok(&format!("cp {} inbox/photo-colorizer/", photo.display()));
    d.wait_status("retry", &["error"]);
    d.ok(&format!("cp {} inbox/photo-colorizer/", photo.display()));
    d.wait_status("retry-2", &["complete"]);
    assert_eq!(d.count("create"), 2);
}

#[test]
fn clip_length_defaults_to_the_inputs_real_duration() {
    let Some(d) = TestDrive::start() else { return };
    let short = d.outside().join("short.mp4");
    std::fs::write(&short, mhfs::mock::media::mp4(1.0, 64, 64, 3)).unwrap();
    // The MP4 synthesiser stops at 10 s; a 20 s WAV for an audio-driven tool.
    let long = d.outside().join("long.wav");
    std::fs::write(&long, mhfs::mock::media::wav(20.0, 3)).unwrap();
    d.ok(&format!(
        "cp {} inbox/auto-subtitle-generator/",
        short.display()
    ));
    d.ok(&format!("cp {} inbox/audio-to-video/", long.display()));
    d.wait_status("short", &["complete"]);
    d.wait_status("long", &["complete"]);

    let sub = create_bodies(&d, "auto-subtitle-generator");
    assert_eq!(sub.len(), 1);
    let end = sub[0]["end_seconds"].as_f64().unwrap();
    assert!((end - 1.0).abs() < 0.05, "end_seconds {end}");
    let a2v = create_bodies(&d, "audio-to-video");
    assert_eq!(a2v.len(), 1);
    let end = a2v[0]["end_seconds"].as_f64().unwrap();
    assert!((end - 20.0).abs() < 0.05, "end_seconds {end}");
    let request = d.ok("cat jobs/long/request.json");
    assert!(request.contains("\"end_seconds\": 20"), "{request}");

    // The charge follows the clip (the mock bills video tools per started second).
    let credits = |slug: &str| mhfs::api::catalog::tool(slug).unwrap().credits as i64;
    assert_eq!(
        job_json(&d, "short")["credits_charged"],
        credits("auto-subtitle-generator")
    );
    assert_eq!(
        job_json(&d, "long")["credits_charged"],
        credits("audio-to-video") * 20
    );
}

#[test]
fn a_jpeg_named_mov_fails_before_any_upload() {
    let Some(d) = TestDrive::start() else { return };
    let img = mhfs::mock::media::decode(&mhfs::mock::media::draw("x", 1, 64, 48)).unwrap();
    let (jpeg, _) = mhfs::mock::media::restyle(&img, 1, "x");
    let fake = d.outside().join("x.mov");
    std::fs::write(&fake, &jpeg).unwrap();
    d.ok(&format!(
        "cp {} inbox/auto-subtitle-generator/",
        fake.display()
    ));
    d.wait_status("x", &["error"]);
    assert_eq!(
        d.ok("cat jobs/x/error"),
        "invalid_video_file: x.mov is a JPEG image, not a video\n"
    );
    assert_eq!(
        std::fs::read(d.path("jobs/x/x.mov")).unwrap(),
        jpeg,
        "the input is kept"
    );
    assert_eq!(d.count("upload-urls"), 0);
    assert_eq!(d.count("upload"), 0);
    assert_eq!(d.count("create"), 0);
}

#[test]
fn cp_p_and_mv_of_a_duplicate_succeed_and_submit_nothing() {
    let Some(d) = TestDrive::start() else { return };
    let photo = common::sample(&d.outside(), "same", Media::Image);
    d.ok(&format!("cp -p {} inbox/photo-colorizer/", photo.display()));
    d.wait_status("same", &["complete"]);
    // `cp -p` sets times and modes after the close that submitted (and dropped) the copy.
    d.ok(&format!("cp -p {} inbox/photo-colorizer/", photo.display()));
    wait_duplicates(&d, 1);
    d.ok(&format!("mv {} inbox/photo-colorizer/", photo.display()));
    wait_duplicates(&d, 2);
    assert_eq!(d.jobs(), ["same"]);
    assert_eq!(d.count("create"), 1);
}
