//! The refusals of docs/SEMANTICS.md, row by row: every refusal is an errno plus one log line, and every failed job
//! says why in its own folder, keeps its input, and billed nothing.

mod common;

use common::drive::TestDrive;
use mhfs::api::catalog::Media;

#[test]
fn a_type_the_tool_cannot_take_is_einval_at_once() {
    let Some(d) = TestDrive::start() else { return };
    let exe = d.outside().join("a.exe");
    std::fs::write(&exe, b"MZ").unwrap();
    let err = d.fails(&format!("cp {} inbox/ai-image-upscaler/", exe.display()));
    assert!(err.contains("Invalid argument"), "{err}");
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("a.exe"))
        .expect("one log line");
    assert!(
        line.contains("png") && line.contains("jpg"),
        "names the accepted types: {line}"
    );
    assert_eq!(d.count("upload-urls"), 0);
}

#[test]
fn no_such_tool_is_eperm_or_enoent() {
    let Some(d) = TestDrive::start() else { return };
    let err = d.fails("mkdir inbox/no-such-tool");
    assert!(err.contains("Operation not permitted"), "{err}");
    let photo = common::sample(&d.outside(), "x", Media::Image);
    let err = d.fails(&format!("cp {} inbox/no-such-tool/", photo.display()));
    assert!(
        err.contains("No such file or directory") || err.contains("Not a directory"),
        "{err}"
    );
}

#[test]
fn jobs_is_read_only() {
    let Some(d) = TestDrive::start() else { return };
    d.ok("echo 'x' > inbox/ai-image-generator/x.txt");
    d.wait_status("x", &["complete"]);
    let err = d.fails("touch jobs/new-file");
    assert!(err.contains("Permission denied"), "{err}");
    let err = d.fails("echo hi > jobs/x/status");
    assert!(err.contains("Permission denied"), "{err}");
    let err = d.fails("mkdir jobs/y");
    assert!(err.contains("Operation not permitted"), "{err}");
    assert_eq!(d.ok("cat jobs/x/status"), "complete\n");
}

/// Drops `content` as `name` into `inbox/<tool>/`, waits for the job to fail, and returns its
/// `error` file. Checks nothing was created on Magic Hour and the input is kept.
fn fails_locally(d: &TestDrive, tool: &str, name: &str, content: &str) -> String {
    let src = d.outside().join(name);
    std::fs::write(&src, content).unwrap();
    d.ok(&format!("cp {} inbox/{tool}/", src.display()));
    let job = name.rsplit_once('.').unwrap().0;
    d.wait_status(job, &["error"]);
    assert_eq!(
        d.ok(&format!("cat jobs/{job}/{name}")),
        content,
        "the input is kept"
    );
    assert_eq!(d.count("create"), 0, "nothing was billed");
    d.ok(&format!("cat jobs/{job}/error"))
}

#[test]
fn invalid_json_fails_the_job_with_the_parse_error() {
    let Some(d) = TestDrive::start() else { return };
    let error = fails_locally(
        &d,
        "ai-image-upscaler",
        "body.json",
        "{\"scale_factor\": 2,",
    );
    assert!(error.starts_with("invalid_json: body.json: "), "{error}");
    assert!(error.contains("line 1"), "{error}");
}

#[test]
fn a_missing_required_field_is_named() {
    let Some(d) = TestDrive::start() else { return };
    let error = fails_locally(
        &d,
        "ai-image-generator",
        "empty.json",
        r#"{"image_count": 2}"#,
    );
    assert!(error.starts_with("missing_input: "), "{error}");
    assert!(error.contains("style.prompt"), "{error}");
}

#[test]
fn a_field_of_the_wrong_type_is_named() {
    let Some(d) = TestDrive::start() else { return };
    let body =
        r#"{"scale_factor": "big", "assets": {"image_file_path": "https://example.com/a.png"}}"#;
    let error = fails_locally(&d, "ai-image-upscaler", "typed.json", body);
    assert!(error.starts_with("invalid_request: "), "{error}");
    assert!(error.contains("scale_factor"), "{error}");
}

#[test]
fn a_prompt_too_long_fails_before_billing() {
    let Some(d) = TestDrive::start() else { return };
    let long = "x".repeat(501);
    let error = fails_locally(&d, "ai-gif-generator", "long.txt", &long);
    assert!(
        error.starts_with("text_too_long: style.prompt is 501 characters long"),
        "{error}"
    );
}

#[test]
fn an_unreadable_local_reference_is_named() {
    let Some(d) = TestDrive::start() else { return };
    let body = r#"{"assets": {"image_file_path": "/no/such/photo.png"}}"#;
    let error = fails_locally(&d, "ai-image-upscaler", "ref.json", body);
    assert!(
        error.starts_with("unreadable_reference: /no/such/photo.png"),
        "{error}"
    );
}

#[test]
fn a_local_reference_in_json_is_uploaded_first() {
    let Some(d) = TestDrive::start() else { return };
    let photo = common::sample(&d.outside(), "ref", Media::Image);
    let body = format!(
        r#"{{"scale_factor": 4, "assets": {{"image_file_path": "{}"}}}}"#,
        photo.display()
    );
    d.ok(&format!("echo '{body}' > inbox/ai-image-upscaler/big.json"));
    d.wait_status("big", &["complete"]);
    let request = d.ok("cat jobs/big/request.json");
    assert!(
        request.contains("\"image_file_path\": \"api-assets/"),
        "{request}"
    );
    assert!(request.contains("\"scale_factor\": 4"), "{request}");
    let (w, _) =
        mhfs::mock::media::check_image(&std::fs::read(d.path("jobs/big/output.png")).unwrap())
            .unwrap();
    assert_eq!(w, 64 * 4, "the upscaler really scaled by 4");
}

#[test]
fn an_api_refusal_is_written_to_error() {
    let Some(d) = TestDrive::start() else { return };
    // (A 402 is not a refusal: the job waits for credits, see mount_credits.rs.)
    d.mock.set_faults(mhfs::mock::Faults {
        rules: vec![mhfs::mock::Rule {
            op: mhfs::mock::Op::Create.into(),
            fault: mhfs::mock::Fault::Status { status: 403 },
            count: 1,
        }],
        ..Default::default()
    });
    let photo = common::sample(&d.outside(), "broke", Media::Image);
    d.ok(&format!("cp {} inbox/photo-colorizer/", photo.display()));
    d.wait_status("broke", &["error"]);
    let error = d.ok("cat jobs/broke/error");
    assert!(error.starts_with("forbidden: "), "{error}");
    assert!(d.path("jobs/broke/broke.png").exists(), "the input is kept");
    assert_eq!(d.count("create"), 1);
}

#[test]
fn a_failed_job_says_why_in_its_folder() {
    let Some(d) = TestDrive::start() else { return };
    // The mock's failure marker, in the dropped file's name (the job's `name`).
    let photo = common::sample(&d.outside(), "mock-error:no_source_face", Media::Image);
    d.ok(&format!(
        "cp '{}' inbox/ai-headshot-generator/",
        photo.display()
    ));
    d.wait_status("mock-error:no_source_face", &["error"]);
    assert_eq!(
        d.ok("cat 'jobs/mock-error:no_source_face/error'"),
        "no_source_face: Please use an image with a detectable face\n"
    );
    let job: serde_json::Value =
        serde_json::from_str(&d.ok("cat 'jobs/mock-error:no_source_face/job.json'")).unwrap();
    assert_eq!(job["error"]["code"], "no_source_face");
}
