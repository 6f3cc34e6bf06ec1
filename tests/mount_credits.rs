//! Credits through a real mount against the mock (docs/SEMANTICS.md, "Credits, presets and
//! pipelines"): the balance at the root and in `df`, every job's price before and its charge
//! after, the budget refused at close, a 402 that waits for a top-up, presets from a watched
//! config file, pipelines, and outputs reused without a new upload.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::drive::TestDrive;
use mhfs::api::catalog::{self, Media, get_path};
use mhfs::mock::{MockConfig, Op, media};

fn config(credits: i64) -> MockConfig {
    MockConfig {
        render_time: Duration::ZERO,
        credits,
        ..MockConfig::default()
    }
}

fn wait_for(d: &TestDrive, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn drop_file(d: &TestDrive, folder: &str, file: &Path) {
    d.ok(&format!("cp '{}' 'inbox/{folder}/'", file.display()));
}

fn photo(d: &TestDrive, stem: &str) -> PathBuf {
    common::sample(&d.outside(), stem, Media::Image)
}

/// A row of `mhfs jobs`: name, tool, status, expected credits, charged credits.
type Row = (String, String, String, String, String);

/// `mhfs jobs` rows, and the TOTAL row.
fn jobs_table(d: &TestDrive) -> (Vec<Row>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mhfs"))
        .args(["jobs", "--state-dir"])
        .arg(d.state())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut rows = Vec::new();
    let mut total = String::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f[0] == "TOTAL" {
            total = line.to_string();
        } else {
            rows.push((
                f[0].to_string(),
                f[1].to_string(),
                f[2].to_string(),
                f[5].to_string(),
                f[6].to_string(),
            ));
        }
    }
    (rows, total)
}

fn creates(d: &TestDrive) -> Vec<mhfs::mock::Record> {
    d.mock
        .requests()
        .into_iter()
        .filter(|r| r.op == Op::Create && r.status == 200)
        .collect()
}

fn read(d: &TestDrive, rel: &str) -> String {
    std::fs::read_to_string(d.path(rel)).unwrap_or_default()
}

#[test]
fn the_balance_is_a_file_at_the_root_and_what_df_reports() {
    let Some(d) = TestDrive::with_args(config(10_000), &["--credits-refresh", "0.2"]) else {
        return;
    };
    wait_for(&d, "balance read", || {
        read(&d, "credits").starts_with("balance: 10000 credits")
    });
    assert!(d.ok("ls").contains("credits"));
    // 1 KiB blocks, 1 block = 1 credit: total = balance + charged, available = balance.
    assert_eq!(d.ok("stat -f -c '%S %b %a' ."), "1024 10000 10000\n");
    drop_file(&d, "photo-colorizer", &photo(&d, "old"));
    d.wait_status("old", &["complete"]);
    wait_for(&d, "balance after the create", || {
        read(&d, "credits").starts_with("balance: 9990 credits")
    });
    assert!(
        read(&d, "credits").contains("this mount: 10 credits charged for 1 jobs"),
        "{}",
        read(&d, "credits")
    );
    assert_eq!(d.ok("stat -f -c '%S %b %a' ."), "1024 10000 9990\n");
    assert_eq!(d.ok("df -k --output=avail . | tail -1").trim(), "9990");
}

#[test]
fn every_pricing_rule_is_known_before_the_create_and_matches_the_charge() {
    let Some(d) = TestDrive::start() else { return };
    let out = d.outside();
    let mp4 = out.join("clip.mp4");
    std::fs::write(&mp4, media::mp4(3.0, 64, 64, 7)).unwrap();
    let gen_json = out.join("cats.json");
    std::fs::write(
        &gen_json,
        r#"{"style": {"prompt": "cats"}, "image_count": 3}"#,
    )
    .unwrap();
    let voice = out.join("speech.txt");
    std::fs::write(&voice, "twenty-five characters!!!").unwrap();
    let music = out.join("calm.json");
    std::fs::write(&music, r#"{"style": {"prompt": "calm"}, "duration": 12}"#).unwrap();
    let up4 = out.join("big.json");
    let png = photo(&d, "big-src");
    std::fs::write(
        &up4,
        format!(
            r#"{{"scale_factor": 4, "assets": {{"image_file_path": "{}"}}}}"#,
            png.display()
        ),
    )
    .unwrap();
    drop_file(&d, "ai-image-upscaler", &photo(&d, "small"));
    drop_file(&d, "ai-image-upscaler", &up4);
    drop_file(&d, "ai-image-generator", &gen_json);
    drop_file(&d, "video-to-video", &mp4);
    drop_file(&d, "ai-voice-generator", &voice);
    drop_file(&d, "ai-music-generator", &music);
    let want = [
        ("small", 50), // unit price
        ("big", 200),  // scale factor 4: 4 times
        ("cats", 15),  // 3 images of 5
        ("clip", 90),  // 3 s measured from the file, 30 a second
        ("speech", 3), // 25 characters: 3 started tens
        ("calm", 12),  // 12 s of music
    ];
    for (job, _) in want {
        d.wait_status(job, &["complete"]);
    }
    let (rows, total) = jobs_table(&d);
    for (job, price) in want {
        let row = rows.iter().find(|r| r.0 == job).unwrap();
        assert_eq!(row.3, price.to_string(), "expected price of {job}: {row:?}");
        assert_eq!(row.4, price.to_string(), "charge of {job}: {row:?}");
    }
    let sum: i64 = want.iter().map(|(_, p)| p).sum();
    assert!(total.ends_with(&format!("{sum} {sum:>8}")), "{total}");
    // The mock charges with the same rule, from the body it was sent.
    for r in creates(&d) {
        let tool = catalog::tool(r.path.trim_start_matches("/v1/")).unwrap();
        let name = r.body["name"].as_str().unwrap();
        let price = want.iter().find(|(j, _)| *j == name).unwrap().1;
        assert_eq!(catalog::price(tool, &r.body), price, "{name}");
    }
}

#[test]
fn a_submission_over_the_budget_is_refused_at_close_and_stays_in_the_inbox() {
    let Some(d) = TestDrive::with_args(config(100_000), &["--budget", "60"]) else {
        return;
    };
    drop_file(&d, "photo-colorizer", &photo(&d, "one"));
    d.wait_status("one", &["complete"]);
    drop_file(&d, "ai-image-upscaler", &photo(&d, "two"));
    d.wait_status("two", &["complete"]);
    // 10 + 50 spent: another 10 would pass 60.
    let three = photo(&d, "three");
    let err = d.fails(&format!("cp '{}' inbox/photo-colorizer/", three.display()));
    assert!(err.contains("Disk quota exceeded"), "{err}");
    assert!(d.path("inbox/photo-colorizer/three.png").exists());
    std::thread::sleep(Duration::from_millis(800));
    assert!(d.path("inbox/photo-colorizer/three.png").exists());
    assert_eq!(d.status("three"), None);
    assert_eq!(d.count("create"), 2);
    assert_eq!(d.count("upload"), 2, "nothing of it was uploaded");
    assert!(d.log().contains("over the budget"), "{}", d.log());
    assert!(d.log().contains("by 10"), "{}", d.log());
    assert!(read(&d, "activity.log").contains("over the budget"));
    assert!(read(&d, "credits").contains("budget: 60 credits; 60 spent"));
    // A hidden temp name renamed into place (rsync, editors) over the budget stays too.
    let five = photo(&d, "five");
    d.ok(&format!(
        "cp '{}' inbox/photo-colorizer/.five.tmp && mv inbox/photo-colorizer/.five.tmp inbox/photo-colorizer/five.png",
        five.display()
    ));
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.path("inbox/photo-colorizer/five.png").exists());
    assert_eq!(d.status("five"), None);
    // A folder over the budget fails before anything of it is uploaded.
    d.ok("mkdir inbox/head-swap/pair");
    let (body, head) = (photo(&d, "body"), photo(&d, "head"));
    d.ok(&format!(
        "cp '{}' '{}' inbox/head-swap/pair/",
        body.display(),
        head.display()
    ));
    d.wait_status("pair", &["error"]);
    let error = read(&d, "jobs/pair/error");
    assert!(error.starts_with("over_budget: "), "{error}");
    assert_eq!(d.count("upload"), 2);
    assert_eq!(d.count("create"), 2);
    // Persisted: the next mount with the same budget still counts what was spent.
    let mut d = d;
    d.unmount();
    d.mount();
    let err = d.fails(&format!(
        "cp '{}' inbox/photo-colorizer/four.png",
        three.display()
    ));
    assert!(err.contains("Disk quota exceeded"), "{err}");
    assert_eq!(d.count("create"), 2);
}

#[test]
fn a_job_refused_for_credits_waits_and_goes_on_after_a_top_up() {
    let Some(d) = TestDrive::with_args(config(5), &["--credits-refresh", "0.3"]) else {
        return;
    };
    drop_file(&d, "photo-colorizer", &photo(&d, "wait"));
    wait_for(&d, "the 402", || {
        d.mock
            .requests()
            .iter()
            .any(|r| r.op == Op::Create && r.status == 402)
    });
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(d.status("wait").as_deref(), Some("submitting"));
    assert!(d.log().contains("insufficient credits"), "{}", d.log());
    assert!(read(&d, "activity.log").contains("insufficient credits"));
    d.mock.set_credits(1000);
    d.wait_status("wait", &["complete"]);
    wait_for(&d, "balance after the top-up", || {
        read(&d, "credits").starts_with("balance: 990 credits")
    });
}

fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn with_config(text: &str) -> Option<(TestDrive, tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    write_config(&path, text);
    let d = TestDrive::with_args(config(100_000), &["--config", path.to_str().unwrap()])?;
    Some((d, dir, path))
}

#[test]
fn presets_are_inbox_folders_that_change_with_the_config_file() {
    let Some((d, _dir, path)) = with_config(
        r#"{"presets": {
            "upscale-4x": {"tool": "ai-image-upscaler", "params": {"scale_factor": 4}},
            "broken": {"tool": "no-such-tool"}
        }}"#,
    ) else {
        return;
    };
    let inbox = d.ok("ls inbox");
    assert!(inbox.contains("upscale-4x\n"), "{inbox}");
    assert!(!inbox.contains("broken"), "{inbox}");
    assert!(d.log().contains("\"broken\""), "{}", d.log());
    assert!(read(&d, "activity.log").contains("preset \"broken\""));
    drop_file(&d, "upscale-4x", &photo(&d, "pic"));
    d.wait_status("pic", &["complete"]);
    let body = std::fs::read_to_string(d.path("jobs/pic/request.json")).unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["scale_factor"], 4);
    assert_eq!(
        body["style"]["mode"], "balanced",
        "over the tool's defaults"
    );
    let (rows, _) = jobs_table(&d);
    assert_eq!(rows.iter().find(|r| r.0 == "pic").unwrap().3, "200");
    // A dropped JSON's own parameters win over the preset's.
    let own = d.outside().join("own.json");
    let src = photo(&d, "own-src");
    std::fs::write(
        &own,
        format!(
            r#"{{"scale_factor": 2, "assets": {{"image_file_path": "{}"}}}}"#,
            src.display()
        ),
    )
    .unwrap();
    drop_file(&d, "upscale-4x", &own);
    d.wait_status("own", &["complete"]);
    let body = std::fs::read_to_string(d.path("jobs/own/request.json")).unwrap();
    assert!(body.contains("\"scale_factor\": 2"), "{body}");
    // Edited: one preset goes, another comes; no remount.
    write_config(
        &path,
        r#"{"presets": {"colorize": {"tool": "photo-colorizer"}}}"#,
    );
    wait_for(&d, "the new preset folder", || {
        let inbox = d.ok("ls inbox");
        inbox.contains("colorize\n") && !inbox.contains("upscale-4x")
    });
    assert!(d.sh("ls inbox/upscale-4x").status.code() != Some(0));
    drop_file(&d, "colorize", &photo(&d, "grey"));
    d.wait_status("grey", &["complete"]);
    // Not JSON: the presets in force stay, and the drive goes on.
    write_config(&path, "{ not json");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(d.ok("ls inbox").contains("colorize\n"));
}

const PIPELINE: &str = r#"{"presets": {"product-shot": {"steps": [
    {"tool": "image-background-remover"},
    {"tool": "ai-image-upscaler", "params": {"scale_factor": 2}},
    {"tool": "image-to-video"}
]}}}"#;

#[test]
fn a_pipeline_runs_each_step_as_a_job_passing_outputs_by_reference() {
    let Some((d, _dir, _)) = with_config(PIPELINE) else {
        return;
    };
    drop_file(&d, "product-shot", &photo(&d, "shoe"));
    d.wait_status("shoe.3-image-to-video", &["complete"]);
    assert_eq!(
        d.jobs(),
        ["shoe", "shoe.2-ai-image-upscaler", "shoe.3-image-to-video"]
    );
    common::check_output(
        catalog::tool("image-to-video").unwrap(),
        &d.path("jobs/shoe.3-image-to-video/output.mp4"),
    );
    // One upload: the original photo. Each later step got the output before it by URL.
    assert_eq!(d.count("upload"), 1);
    let creates = creates(&d);
    assert_eq!(creates.len(), 3);
    for (r, slug) in creates.iter().zip([
        "image-background-remover",
        "ai-image-upscaler",
        "image-to-video",
    ]) {
        assert_eq!(r.path, format!("/v1/{slug}"));
        let input = get_path(&r.body, "assets.image_file_path")
            .and_then(|v| v.as_str())
            .unwrap()
            .to_string();
        if slug == "image-background-remover" {
            assert!(input.starts_with("api-assets/"), "{input}");
        } else {
            assert!(input.contains("/_mock/files/"), "{input}");
        }
    }
    assert_eq!(creates[1].body["scale_factor"], 2);
    let (_, total) = jobs_table(&d);
    assert!(total.contains(" 205 "), "5 + 50 + 150: {total}");
    // A deliberate rerun runs the whole chain again (later steps are not duplicates).
    let again = d.outside().join("shoe.again.png");
    std::fs::copy(photo(&d, "shoe"), &again).unwrap();
    drop_file(&d, "product-shot", &again);
    d.wait_status("shoe.again.3-image-to-video", &["complete"]);
    assert_eq!(d.count("create"), 6);
}

#[test]
fn a_failed_step_stops_the_pipeline_in_the_later_steps_place() {
    let Some((d, _dir, _)) = with_config(PIPELINE) else {
        return;
    };
    let bad = photo(&d, "bad mock-error:unknown_error");
    drop_file(&d, "product-shot", &bad);
    let first = "bad mock-error:unknown_error";
    d.wait_status(first, &["error"]);
    let later = format!("{first}.3-image-to-video");
    wait_for(&d, "the later steps failed", || {
        d.status(&later).as_deref() == Some("error")
    });
    let error = read(&d, &format!("jobs/{first}.2-ai-image-upscaler/error"));
    assert!(
        error.starts_with("pipeline_stopped: step 1") && error.contains("did not run"),
        "{error}"
    );
    assert_eq!(d.count("create"), 1);
    assert!(d.log().contains("pipeline product-shot: stopped"));
    assert!(read(&d, "activity.log").contains("pipeline product-shot: stopped"));
}

#[test]
fn an_output_copied_into_another_inbox_is_passed_by_reference_not_uploaded() {
    let Some(d) = TestDrive::start() else { return };
    drop_file(&d, "photo-colorizer", &photo(&d, "street"));
    d.wait_status("street", &["complete"]);
    assert_eq!(d.count("upload"), 1);
    d.ok("cp jobs/street/output.png inbox/ai-image-upscaler/street-big.png");
    d.wait_status("street-big", &["complete"]);
    assert_eq!(d.count("upload"), 1, "no new upload");
    let body = read(&d, "jobs/street-big/request.json");
    assert!(body.contains("/_mock/files/"), "{body}");
    assert!(d.log().contains("passed by reference"), "{}", d.log());
}

#[test]
fn a_reused_output_gets_a_fresh_url_from_its_project() {
    let Some(d) = TestDrive::with(MockConfig {
        render_time: Duration::ZERO,
        faults: mhfs::mock::Faults {
            url_lifetime_secs: Some(1),
            ..Default::default()
        },
        ..MockConfig::default()
    }) else {
        return;
    };
    drop_file(&d, "photo-colorizer", &photo(&d, "dusk"));
    d.wait_status("dusk", &["complete"]);
    let project = read(&d, "jobs/dusk/job.json");
    let project: serde_json::Value = serde_json::from_str(&project).unwrap();
    let path = format!("/v1/image-projects/{}", project["id"].as_str().unwrap());
    // The URL it was downloaded with has expired.
    std::thread::sleep(Duration::from_millis(1500));
    let before = d.mock.requests().len();
    d.ok("cp jobs/dusk/output.png inbox/ai-image-upscaler/dusk-big.png");
    d.wait_status("dusk-big", &["complete"]);
    let after: Vec<_> = d.mock.requests().into_iter().skip(before).collect();
    let get = after.iter().position(|r| r.op == Op::Get && r.path == path);
    let create = after.iter().position(|r| r.op == Op::Create);
    assert!(
        get.is_some() && get < create,
        "a GET of the source project before the create"
    );
    assert_eq!(d.count("upload"), 1, "no new upload");
}
