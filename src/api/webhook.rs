//! Webhook events (spec/API.md §12): `POST {"type": "<family>.<event>", "payload": <project>}` signed
//! with `hex(HMAC_SHA256(secret, timestamp + "." + raw body))`. The mock signs, the drive checks.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const SIGNATURE_HEADER: &str = "magic-hour-event-signature";
pub const TIMESTAMP_HEADER: &str = "magic-hour-event-timestamp";

/// How far a timestamp may be from now, either way (replays older than this are refused).
pub const TOLERANCE_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `video.started`, `image.completed`, `audio.errored`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The same object as `GET /v1/<family>-projects/{id}`.
    pub payload: Value,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

/// Checks an event's signature over the raw body, in constant time, and its timestamp.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: u64,
) -> Result<(), &'static str> {
    let timestamp = timestamp.ok_or("no timestamp header")?;
    let signature = signature.ok_or("no signature header")?;
    let ts: u64 = timestamp.trim().parse().map_err(|_| "bad timestamp")?;
    if ts.abs_diff(now) > TOLERANCE_SECS {
        return Err("timestamp too far from now");
    }
    // Not hex (or the wrong length) is as bad as a wrong tag; verify_slice compares in constant
    // time.
    let given = hex::decode(signature.trim()).map_err(|_| "bad signature")?;
    mac(secret, timestamp.trim(), body)
        .verify_slice(&given)
        .map_err(|_| "bad signature")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_refuse() {
        let body = br#"{"type":"image.completed","payload":{}}"#;
        let sig = sign(b"s3cret", "1700000000", body);
        assert_eq!(sig.len(), 64);
        assert_eq!(
            verify(b"s3cret", Some("1700000000"), Some(&sig), body, 1700000100),
            Ok(())
        );
        assert_eq!(
            verify(b"other", Some("1700000000"), Some(&sig), body, 1700000100),
            Err("bad signature")
        );
        assert_eq!(
            verify(b"s3cret", Some("1700000000"), Some(&sig), b"{}", 1700000100),
            Err("bad signature")
        );
        assert_eq!(
            verify(b"s3cret", Some("1700000000"), Some("zz"), body, 1700000100),
            Err("bad signature")
        );
        assert_eq!(
            verify(
                b"s3cret",
                Some("1700000000"),
                Some(&sig[..62]),
                body,
                1700000100
            ),
            Err("bad signature")
        );
        assert_eq!(
            verify(b"s3cret", Some("1700000000"), Some(&sig), body, 1700001000),
            Err("timestamp too far from now")
        );
        assert_eq!(
            verify(b"s3cret", None, Some(&sig), body, 0),
            Err("no timestamp header")
        );
    }
}
