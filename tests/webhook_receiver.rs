//! The webhook receiver in-process, with a recording callback instead of an engine.

use std::sync::{Arc, Mutex};

use mhfs::api::webhook::{Event, SIGNATURE_HEADER, TIMESTAMP_HEADER, now_secs, sign};
use mhfs::engine::webhook::{BODY_LIMIT, OnEvent, Stats, serve};

const SECRET: &[u8] = b"0123456789abcdef0123";

async fn start(secret: &[u8]) -> Result<(String, Arc<Stats>, Arc<Mutex<Vec<Event>>>), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let record = got.clone();
    let on_event: OnEvent = Arc::new(move |e: &Event| record.lock().unwrap().push(e.clone()));
    let stats = serve(listener, secret.to_vec(), on_event)?;
    Ok((url, stats, got))
}

async fn post(url: &str, ts: &str, sig: &str, body: Vec<u8>) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header(TIMESTAMP_HEADER, ts)
        .header(SIGNATURE_HEADER, sig)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn webhook_secret_must_be_long_enough() {
    for secret in [&b""[..], b"short", b"fifteen bytes!!"] {
        let err = start(secret).await.expect_err("refused");
        assert!(err.contains("at least 16"), "{err}");
    }
    assert!(start(b"sixteen bytes!!!").await.is_ok());
}

#[tokio::test]
async fn webhook_event_is_delivered_once() {
    let (url, stats, got) = start(SECRET).await.unwrap();
    let body = br#"{"type":"image.completed","payload":{"id":"p1"}}"#.to_vec();
    let ts = now_secs().to_string();
    let sig = sign(SECRET, &ts, &body);
    assert_eq!(post(&url, &ts, &sig, body.clone()).await, 200);
    // A retry of the same event (also with upper-case hex) is answered 200, not delivered.
    assert_eq!(post(&url, &ts, &sig, body.clone()).await, 200);
    assert_eq!(
        post(&url, &ts, &sig.to_uppercase(), body.clone()).await,
        200
    );
    assert_eq!(got.lock().unwrap().len(), 1);
    assert_eq!(got.lock().unwrap()[0].kind, "image.completed");
    assert_eq!((stats.delivered(), stats.duplicates()), (1, 2));
    // Another timestamp is another delivery.
    let ts2 = (now_secs() + 1).to_string();
    let sig2 = sign(SECRET, &ts2, &body);
    assert_eq!(post(&url, &ts2, &sig2, body).await, 200);
    assert_eq!(got.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn webhook_refusals_are_logged_at_a_bounded_rate() {
    let (url, stats, got) = start(SECRET).await.unwrap();
    let client = reqwest::Client::new();
    let ts = now_secs().to_string();
    for i in 0..2000 {
        let status = client
            .post(&url)
            .header(TIMESTAMP_HEADER, &ts)
            .header(SIGNATURE_HEADER, format!("{i:064x}"))
            .body("{}")
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);
    }
    assert_eq!(stats.refused(), 2000);
    assert!(stats.warnings() <= 3, "{} warning lines", stats.warnings());
    assert!(got.lock().unwrap().is_empty());
}

#[tokio::test]
async fn webhook_oversize_body_gets_413() {
    let (url, stats, got) = start(SECRET).await.unwrap();
    let mut body = br#"{"type":"image.completed","payload":{"pad":""#.to_vec();
    body.resize(BODY_LIMIT + 10, b'x');
    body.extend_from_slice(br#""}}"#);
    let ts = now_secs().to_string();
    let sig = sign(SECRET, &ts, &body);
    assert_eq!(post(&url, &ts, &sig, body).await, 413);
    assert!(got.lock().unwrap().is_empty());
    assert_eq!(stats.refused(), 1);
}
