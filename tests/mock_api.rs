//! The real client against the real mock server, over HTTP on loopback.

mod common;

use std::time::Duration;

use mhfs::api::catalog::{self, Media, ProjectKind, TOOLS, merge, set_path};
use mhfs::api::retry::{Backoff, retry};
use mhfs::api::types::{Project, Status};
use mhfs::api::{ApiError, ApiKey, Client};
use mhfs::mock::{Fault, Faults, MockConfig, MockServer, Op, Rule};
use serde_json::{Value, json};

fn instant() -> MockConfig {
    MockConfig {
        render_time: Duration::ZERO,
        ..MockConfig::default()
    }
}

fn client(server: &MockServer) -> Client {
    Client::new(&server.url(), ApiKey::new("test-key")).unwrap()
}

fn fast() -> Backoff {
    Backoff {
        max_attempts: 5,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
    }
}

/// The minimal valid body of a tool, with its required inputs uploaded.
async fn minimal_body(c: &Client, tool: &catalog::Tool, dir: &std::path::Path) -> Value {
    let mut body = (tool.defaults)();
    for input in tool.required_inputs() {
        let file = common::sample(dir, input.role, input.media[0]);
        let path = c.upload_file(&file, input.media[0]).await.unwrap();
        let value = if input.list {
            json!([path])
        } else {
            json!(path)
        };
        set_path(&mut body, input.field, value);
        if let Some((field, v)) = input.implies {
            set_path(&mut body, field, json!(v));
        }
    }
    if let Some(text) = tool.text.filter(|t| t.required) {
        set_path(
            &mut body,
            text.field,
            json!(format!("a test of {}", tool.slug)),
        );
    }
    merge(&mut body, &json!({"name": format!("test {}", tool.slug)}));
    body
}

async fn create(c: &Client, tool: &catalog::Tool, body: &Value) -> String {
    if tool.kind == ProjectKind::FaceDetection {
        // Face detection is created like a tool but is a task, not a project.
        c.create("face-detection", body).await.unwrap().id
    } else {
        c.create(tool.slug, body).await.unwrap().id
    }
}

async fn poll(c: &Client, kind: ProjectKind, id: &str) -> Project {
    for _ in 0..200 {
        let (p, _) = c.project(kind, id).await.unwrap();
        if p.status().is_terminal() {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{id} never finished");
}

#[tokio::test]
async fn every_tool_completes_with_decodable_outputs() {
    let server = MockServer::start_local(instant()).await.unwrap();
    let c = client(&server);
    let dir = tempfile::tempdir().unwrap();
    for tool in TOOLS {
        let body = minimal_body(&c, tool, dir.path()).await;
        let id = create(&c, tool, &body).await;
        let project = poll(&c, tool.kind, &id).await;
        assert_eq!(
            project.status(),
            Status::Complete,
            "{}: {project:?}",
            tool.slug
        );
        let urls = project.download_urls();
        assert!(!urls.is_empty(), "{} has no outputs", tool.slug);
        let mut names = Vec::new();
        for url in urls {
            let name = url
                .split('?')
                .next()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            assert!(
                !names.contains(&name),
                "{}: duplicate output name {name}",
                tool.slug
            );
            let dest = dir.path().join(format!("{}-{name}", tool.slug));
            let n = c.download(&url, &dest).await.unwrap();
            assert!(n > 0);
            common::check_output(tool, &dest);
            names.push(name);
        }
    }
    // Exactly one create per tool, nothing retried.
    assert_eq!(server.count("create"), TOOLS.len() as u64);
}

#[tokio::test]
async fn projects_move_through_queued_and_rendering() {
    let server = MockServer::start_local(MockConfig {
        render_time: Duration::from_millis(900),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let c = client(&server);
    let tool = catalog::tool("ai-image-generator").unwrap();
    let body = json!({"image_count": 3, "style": {"prompt": "three cats"}});
    let created = c.create(tool.slug, &body).await.unwrap();
    assert_eq!(created.credits_charged, 15);
    assert_eq!(created.frame_cost, Some(15));
    let mut seen = Vec::new();
    loop {
        let (p, raw) = c.project(ProjectKind::Image, &created.id).await.unwrap();
        if seen.last() != Some(&p.status()) {
            seen.push(p.status());
        }
        if p.status() != Status::Complete {
            assert_eq!(raw["downloads"], json!([]), "downloads only once complete");
        } else {
            let urls = p.download_urls();
            assert_eq!(urls.len(), 3);
            for (i, u) in urls.iter().enumerate() {
                assert!(u.contains(&format!("/output-{}.", i + 1)), "{u}");
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        vec![Status::Queued, Status::Rendering, Status::Complete]
    );
}

#[tokio::test]
async fn failure_marker_fails_the_job_and_refunds() {
    let server = MockServer::start_local(instant()).await.unwrap();
    let c = client(&server);
    let before = c.account().await.unwrap().credits;
    let body =
        json!({"name": "x mock-error:no_source_face", "style": {"prompt": "hi"}, "image_count": 1});
    let id = c.create("ai-image-generator", &body).await.unwrap().id;
    let p = poll(&c, ProjectKind::Image, &id).await;
    assert_eq!(p.status(), Status::Error);
    assert_eq!(p.error().unwrap().code, "no_source_face");
    assert!(p.download_urls().is_empty());
    assert_eq!(c.account().await.unwrap().credits, before);
}

#[tokio::test]
async fn asset_never_uploaded_fails_the_job() {
    let server = MockServer::start_local(instant()).await.unwrap();
    let c = client(&server);
    let body = json!({"assets": {"image_file_path": "api-assets/nope/never.png"}});
    let id = c.create("photo-colorizer", &body).await.unwrap().id;
    let p = poll(&c, ProjectKind::Image, &id).await;
    assert_eq!(p.error().unwrap().code, "invalid_image_path");
}

#[tokio::test]
async fn an_upload_whose_bytes_are_not_its_fields_media_is_refused_at_create() {
    let server = MockServer::start_local(instant()).await.unwrap();
    let c = client(&server);
    let dir = tempfile::tempdir().unwrap();
    let photo = common::sample(dir.path(), "photo", Media::Image);
    let fake = dir.path().join("x.mov");
    std::fs::copy(&photo, &fake).unwrap();
    let path = c.upload_file(&fake, Media::Video).await.unwrap();
    let before = c.account().await.unwrap().credits;
    let body = json!({"start_seconds": 0, "end_seconds": 1, "style": {"template": "cinematic"},
                      "assets": {"video_file_path": path}});
    match c
        .create("auto-subtitle-generator", &body)
        .await
        .unwrap_err()
    {
        ApiError::Refused {
            status: 422,
            code,
            message,
        } => {
            assert_eq!(code, "invalid_video_file");
            assert!(message.contains("PNG image"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.account().await.unwrap().credits,
        before,
        "nothing charged"
    );
    // The same field with a real video is accepted.
    let clip = common::sample(dir.path(), "clip", Media::Video);
    let path = c.upload_file(&clip, Media::Video).await.unwrap();
    let body = json!({"start_seconds": 0, "end_seconds": 1, "style": {"template": "cinematic"},
                      "assets": {"video_file_path": path}});
    c.create("auto-subtitle-generator", &body).await.unwrap();
}

#[tokio::test]
async fn refusals_are_typed() {
    let server = MockServer::start_local(MockConfig {
        api_key: Some("right".into()),
        credits: 10,
        ..instant()
    })
    .await
    .unwrap();
    let good = Client::new(&server.url(), ApiKey::new("right")).unwrap();
    let bad = Client::new(&server.url(), ApiKey::new("wrong")).unwrap();

    let refused = |e: ApiError| match e {
        ApiError::Refused { status, code, .. } => (status, code),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        refused(bad.account().await.unwrap_err()),
        (401, "unauthorized".into())
    );
    assert_eq!(
        refused(
            good.project(ProjectKind::Video, "cnotthere")
                .await
                .unwrap_err()
        ),
        (404, "not_found".into())
    );
    assert_eq!(
        refused(good.create("no-such-tool", &json!({})).await.unwrap_err()),
        (404, "not_found".into())
    );
    let missing = good
        .create("ai-image-upscaler", &json!({"scale_factor": 2}))
        .await;
    match missing.unwrap_err() {
        ApiError::Refused {
            status: 400,
            code,
            message,
        } => {
            assert_eq!(code, "invalid_request");
            assert!(message.contains("assets"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let pricey = json!({"image_count": 4, "style": {"prompt": "x"}});
    assert_eq!(
        refused(
            good.create("ai-image-generator", &pricey)
                .await
                .unwrap_err()
        ),
        (402, "insufficient_credits".into())
    );
    assert_eq!(
        refused(
            good.upload_urls(&[(Media::Audio, "mp4")])
                .await
                .unwrap_err()
        ),
        (422, "unprocessable_entity".into())
    );
    // 402 did not bill: the balance is intact.
    assert_eq!(good.account().await.unwrap().credits, 10);
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let server = MockServer::start_local(instant()).await.unwrap();
    server.set_faults(Faults {
        rules: vec![
            Rule {
                op: Op::Get.into(),
                fault: Fault::Throttle {
                    retry_after_secs: 0,
                },
                count: 2,
            },
            Rule {
                op: Op::Get.into(),
                fault: Fault::Status { status: 503 },
                count: 1,
            },
        ],
        ..Faults::default()
    });
    let c = client(&server);
    let id = c
        .create(
            "ai-qr-code-generator",
            &json!({"content": "x", "style": {"art_style": "Mech"}}),
        )
        .await
        .unwrap()
        .id;
    let first = c.project(ProjectKind::Image, &id).await.unwrap_err();
    assert!(
        matches!(
            first,
            ApiError::Retryable {
                status: Some(429),
                ..
            }
        ),
        "{first:?}"
    );
    let (p, _) = retry(fast(), || c.project(ProjectKind::Image, &id))
        .await
        .unwrap();
    assert_eq!(p.status(), Status::Complete);
    assert_eq!(server.count("get"), 4);
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_an_unknown_outcome() {
    let server = MockServer::start_local(instant()).await.unwrap();
    server.set_faults(Faults {
        rules: vec![Rule {
            op: Op::Create.into(),
            fault: Fault::Drop,
            count: 1,
        }],
        ..Faults::default()
    });
    let c = client(&server);
    let body = json!({"content": "x", "style": {"art_style": "Mech"}});
    let err = retry(fast(), || c.create("ai-qr-code-generator", &body))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::UnknownOutcome { .. }), "{err:?}");
    // The retry helper did not repeat it, and the mock did create (and bill) the project.
    assert_eq!(server.count("create"), 1);

    // The API's own 500 (with its error body), 502 and 503 say nothing was created: retried.
    server.set_faults(Faults {
        rules: vec![
            Rule {
                op: Op::Create.into(),
                fault: Fault::Status { status: 500 },
                count: 1,
            },
            Rule {
                op: Op::Create.into(),
                fault: Fault::Status { status: 503 },
                count: 1,
            },
        ],
        ..Faults::default()
    });
    retry(fast(), || c.create("ai-qr-code-generator", &body))
        .await
        .unwrap();
    assert_eq!(server.count("create"), 4);
    // A gateway's 504 (no API body) may have come after the project was made: unknown, not
    // retried.
    server.set_faults(Faults {
        rules: vec![Rule {
            op: Op::Create.into(),
            fault: Fault::Gateway { status: 504 },
            count: 1,
        }],
        ..Faults::default()
    });
    let err = retry(fast(), || c.create("ai-qr-code-generator", &body))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::UnknownOutcome { .. }), "{err:?}");
    assert_eq!(server.count("create"), 5);
}

#[tokio::test]
async fn expired_download_urls_are_refused() {
    let server = MockServer::start_local(instant()).await.unwrap();
    server.set_faults(Faults {
        url_lifetime_secs: Some(0),
        ..Faults::default()
    });
    let c = client(&server);
    let id = c
        .create(
            "ai-qr-code-generator",
            &json!({"content": "x", "style": {"art_style": "Mech"}}),
        )
        .await
        .unwrap()
        .id;
    let p = poll(&c, ProjectKind::Image, &id).await;
    let dir = tempfile::tempdir().unwrap();
    let err = c
        .download(&p.download_urls()[0], &dir.path().join("o.png"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Refused { status: 403, .. }),
        "{err:?}"
    );
    // A fresh GET gives fresh URLs that work.
    server.set_faults(Faults::default());
    let (p, _) = c.project(ProjectKind::Image, &id).await.unwrap();
    c.download(&p.download_urls()[0], &dir.path().join("o.png"))
        .await
        .unwrap();
    // A tampered signature is refused too.
    let tampered = p.download_urls()[0].replace("sig=", "sig=0");
    assert!(
        c.download(&tampered, &dir.path().join("t.png"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn delete_is_204_then_404() {
    let server = MockServer::start_local(instant()).await.unwrap();
    let c = client(&server);
    let id = c
        .create(
            "ai-voice-generator",
            &json!({"style": {"prompt": "hi", "voice_name": "Morgan Freeman"}}),
        )
        .await
        .unwrap()
        .id;
    c.delete_project(ProjectKind::Audio, &id).await.unwrap();
    let again = c.delete_project(ProjectKind::Audio, &id).await.unwrap_err();
    assert_eq!(again.status(), Some(404));
    assert_eq!(
        c.project(ProjectKind::Audio, &id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
}

#[tokio::test]
async fn the_record_shows_exactly_the_calls_made() {
    let server = MockServer::start_local(instant()).await.unwrap();
    let c = client(&server);
    let dir = tempfile::tempdir().unwrap();
    let file = common::sample(dir.path(), "in", Media::Image);
    let path = c.upload_file(&file, Media::Image).await.unwrap();
    let id = c
        .create(
            "photo-colorizer",
            &json!({"assets": {"image_file_path": path}}),
        )
        .await
        .unwrap()
        .id;
    let p = poll(&c, ProjectKind::Image, &id).await;
    c.download(&p.download_urls()[0], &dir.path().join("out"))
        .await
        .unwrap();
    c.delete_project(ProjectKind::Image, &id).await.unwrap();

    let ops: Vec<Op> = server.requests().iter().map(|r| r.op).collect();
    assert_eq!(
        ops,
        [
            Op::UploadUrls,
            Op::Upload,
            Op::Create,
            Op::Get,
            Op::Download,
            Op::Delete
        ]
    );
    let create = &server.requests()[2];
    assert_eq!(create.path, "/v1/photo-colorizer");
    assert_eq!(create.body["assets"]["image_file_path"], json!(path));
    assert_eq!(server.count("create:photo-colorizer"), 1);

    // The same record over HTTP, as other processes read it.
    let over_http: Value = reqwest::get(format!("{}/_mock/requests", server.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http["counts"]["create"], json!(1));
    assert_eq!(over_http["requests"].as_array().unwrap().len(), 6);
}

/// Every request the official Python SDK's tests send is accepted; the only exceptions are
/// GET/DELETE of the SDK's fixed id `cuid-example`, which a stateful mock does not know (404,
/// spec/API.md §16.8).
#[tokio::test]
async fn python_sdk_test_requests_are_accepted() {
    let server = MockServer::start_local(instant()).await.unwrap();
    let http = reqwest::Client::new();
    let jsonl = include_str!("../spec/python-sdk-test-requests.jsonl");
    let mut n = 0;
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let req: Value = serde_json::from_str(line).unwrap();
        let method: reqwest::Method = req["method"].as_str().unwrap().parse().unwrap();
        let path = req["path"].as_str().unwrap();
        let mut r = http
            .request(method.clone(), format!("{}{path}", server.url()))
            .header("authorization", req["authorization"].as_str().unwrap());
        if !req["json_body"].is_null() {
            r = r.json(&req["json_body"]);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "application/json",
            "{method} {path}"
        );
        if path.ends_with("/cuid-example") || path.ends_with("/uuid-example") {
            assert_eq!(status, 404, "{method} {path}");
        } else {
            let text = resp.text().await.unwrap();
            assert_eq!(status, 200, "{method} {path}: {text}");
        }
        n += 1;
    }
    assert!(n >= 38, "only {n} requests read");
}

#[tokio::test]
async fn unknown_routes_are_json_404() {
    let server = MockServer::start_local(instant()).await.unwrap();
    let resp = reqwest::Client::new()
        .get(format!("{}/v2/nothing", server.url()))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"code": "not_found", "message": "Not Found"}));
}

/// With a data directory (the embedded mock of `mhfs mount` has one), a restarted mock still
/// knows its projects, uploads and balance.
#[tokio::test]
async fn a_mock_with_a_data_dir_remembers_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = MockConfig {
        render_time: Duration::from_millis(300),
        data_dir: Some(dir.path().to_path_buf()),
        ..MockConfig::default()
    };
    let server = MockServer::start_local(config.clone()).await.unwrap();
    let c = client(&server);
    let file = common::sample(dir.path(), "in", Media::Image);
    let path = c.upload_file(&file, Media::Image).await.unwrap();
    let id = c
        .create(
            "photo-colorizer",
            &json!({"assets": {"image_file_path": path}}),
        )
        .await
        .unwrap()
        .id;
    let credits = c.account().await.unwrap().credits;
    server.stop().await;

    let server = MockServer::start_local(config).await.unwrap();
    let c = client(&server);
    assert_eq!(c.account().await.unwrap().credits, credits);
    let p = poll(&c, ProjectKind::Image, &id).await;
    assert_eq!(p.status(), Status::Complete, "{p:?}");
    let out = tempfile::tempdir().unwrap();
    c.download(&p.download_urls()[0], &out.path().join("o.png"))
        .await
        .unwrap();
}

/// A finished QR-code project's first output URL.
async fn an_output_url(c: &Client) -> String {
    let id = c
        .create(
            "ai-qr-code-generator",
            &json!({"content": "ranges", "style": {"art_style": "Mech"}}),
        )
        .await
        .unwrap()
        .id;
    poll(c, ProjectKind::Image, &id).await.download_urls()[0].clone()
}

fn last_download(server: &MockServer) -> mhfs::mock::Record {
    server
        .requests()
        .into_iter()
        .rfind(|r| r.op == Op::Download)
        .expect("a download was recorded")
}

#[tokio::test]
async fn a_cut_download_resumes_from_where_it_stopped() {
    let server = MockServer::start_local(instant()).await.unwrap();
    let c = client(&server);
    let url = an_output_url(&c).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("output.png");

    server.set_faults(Faults {
        rules: vec![Rule {
            op: Op::Download.into(),
            fault: Fault::Drop,
            count: 1,
        }],
        ..Faults::default()
    });
    let err = c.download(&url, &dest).await.unwrap_err();
    let part = std::fs::metadata(&dest).unwrap().len();
    match &err {
        ApiError::Retryable { reason, .. } => assert!(
            reason.contains(&format!("cut off after {part} bytes")),
            "{reason}"
        ),
        other => panic!("a cut body is retryable: {other:?}"),
    }
    assert!(part > 0, "the cut left part of the file");

    let whole = dir.path().join("whole.png");
    let total = c.download(&url, &whole).await.unwrap();
    assert!(part < total, "{part} of {total}");

    let n = c.download(&url, &dest).await.unwrap();
    assert_eq!(n, total, "the count is the file's final length");
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&whole).unwrap()
    );
    let resumed = last_download(&server);
    assert_eq!(resumed.status, 206);
    assert_eq!(resumed.body["range"], json!(format!("bytes={part}-")));
    assert_eq!(resumed.body["range_start"], json!(part));
    // One record per request, ranged or not: the cut one, the whole one, the resumed one.
    assert_eq!(server.count("download"), 3);
    mhfs::mock::media::check_image(&std::fs::read(&dest).unwrap()).unwrap();
}

#[tokio::test]
async fn resuming_a_file_that_is_already_whole_returns_its_length() {
    let server = MockServer::start_local(instant()).await.unwrap();
    let c = client(&server);
    let url = an_output_url(&c).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("output.png");
    let total = c.download(&url, &dest).await.unwrap();
    let before = std::fs::read(&dest).unwrap();

    assert_eq!(c.download(&url, &dest).await.unwrap(), total);
    assert_eq!(std::fs::read(&dest).unwrap(), before);
    let again = last_download(&server);
    assert_eq!(again.status, 416);
    assert_eq!(again.body["range_start"], json!(total));
}

#[tokio::test]
async fn a_partial_file_that_is_not_a_prefix_of_the_output_is_downloaded_again_whole() {
    let server = MockServer::start_local(instant()).await.unwrap();
    let c = client(&server);
    let url = an_output_url(&c).await;
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.png");
    let total = c.download(&url, &whole).await.unwrap();

    // Longer than the output: 416 with another total, so the client starts over.
    let dest = dir.path().join("output.png");
    std::fs::write(&dest, vec![7u8; total as usize + 100]).unwrap();
    assert_eq!(c.download(&url, &dest).await.unwrap(), total);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&whole).unwrap()
    );
    let statuses: Vec<u16> = server
        .requests()
        .iter()
        .filter(|r| r.op == Op::Download)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 416, 200]);
}

#[tokio::test]
async fn the_mock_answers_byte_ranges_with_206_and_only_that_part() {
    let server = MockServer::start_local(instant()).await.unwrap();
    let c = client(&server);
    let url = an_output_url(&c).await;
    let http = reqwest::Client::new();

    let whole = http.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let whole = whole.bytes().await.unwrap();
    let total = whole.len();

    let part = http
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["accept-ranges"], "bytes");
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 10-19/{total}").as_str()
    );
    assert_eq!(part.headers()["content-length"], "10");
    assert_eq!(part.bytes().await.unwrap(), whole.slice(10..20));

    let tail = http
        .get(&url)
        .header("range", format!("bytes={}-", total - 5))
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap(), whole.slice(total - 5..));

    let past = http
        .get(&url)
        .header("range", format!("bytes={total}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(past.status(), 416);
    assert_eq!(
        past.headers()["content-range"],
        format!("bytes */{total}").as_str()
    );

    // The signature is checked first: a tampered URL is refused, range or not.
    let tampered = http
        .get(url.replace("sig=", "sig=0"))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 403);
}

#[tokio::test]
async fn a_server_that_ignores_the_range_gets_the_file_rewritten_from_the_start() {
    use axum::routing::get;
    let app = axum::Router::new().route("/f", get(|| async { "hello, whole file" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let c = Client::new(&format!("http://{addr}"), ApiKey::new("k")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    std::fs::write(&dest, "stale bytes that are longer than the answer").unwrap();

    let n = c
        .download(&format!("http://{addr}/f"), &dest)
        .await
        .unwrap();
    assert_eq!(n, 17);
    assert_eq!(std::fs::read(&dest).unwrap(), b"hello, whole file");
}
