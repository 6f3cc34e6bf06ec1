//! Fault knobs of the mock: random shares and deterministic one-shot rules, changeable at run
//! time through `POST /_mock/faults`.

use rand::RngExt;
use serde::{Deserialize, Serialize};

/// What the mock does wrong, and how often.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share (0..1) of API requests answered `500 internal_server_error` without acting.
    pub error_rate: f64,
    /// Share of API requests answered `429` with `Retry-After: retry_after_secs`.
    pub throttle_rate: f64,
    pub retry_after_secs: u64,
    /// Delay added before every answer.
    pub latency_ms: u64,
    /// Share of answers whose body is cut in the middle (after the request took effect).
    pub drop_rate: f64,
    /// Lifetime of signed download URLs; `None` means 24 h, as the real API.
    pub url_lifetime_secs: Option<u64>,
    /// One-shot rules, consumed in order by the requests they match.
    pub rules: Vec<Rule>,
}

/// "The next `count` requests of operation `op` get `fault`".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// An operation name (see [`op_of`]), `create:<slug>`, or `*` for any API request.
    pub op: String,
    pub fault: Fault,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    /// Answer with this status (5xx, 4xx) and a `{code, message}` body, without acting.
    Status { status: u16 },
    /// `429` with Retry-After.
    Throttle { retry_after_secs: u64 },
    /// Act, then cut the answer's body in the middle: for a create, the project exists and is
    /// billed but the client cannot know.
    Drop,
}

/// The operation a request is, for the record and the rules.
pub fn op_of(method: &str, path: &str) -> String {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        ("POST", ["v1", "files", "upload-urls"]) => "upload-urls".into(),
        ("PUT", ["_mock", "upload", ..]) => "upload".into(),
        ("GET", ["_mock", "files", ..]) => "download".into(),
        ("GET", ["v1", "account"]) => "account".into(),
        ("GET", ["v1", "face-detection", _]) => "get".into(),
        ("GET", ["v1", kind, _]) if kind.ends_with("-projects") => "get".into(),
        ("DELETE", ["v1", _, _]) => "delete".into(),
        ("POST", ["v1", _]) => "create".into(),
        (_, ["_mock", ..]) => "admin".into(),
        _ => "other".into(),
    }
}

/// Whether faults may apply: admin calls never fail.
pub fn is_faultable(op: &str) -> bool {
    op != "admin"
}

impl Faults {
    /// Picks the fault for one request, consuming a matching rule first.
    pub fn pick(&mut self, op: &str, slug: Option<&str>) -> Option<Fault> {
        let matches = |r: &Rule| {
            r.op == "*" || r.op == op || slug.is_some_and(|s| r.op == format!("{op}:{s}"))
        };
        if let Some(i) = self.rules.iter().position(|r| r.count > 0 && matches(r)) {
            let rule = &mut self.rules[i];
            rule.count -= 1;
            let fault = rule.fault;
            if rule.count == 0 {
                self.rules.remove(i);
            }
            return Some(fault);
        }
        let mut rng = rand::rng();
        if self.error_rate > 0.0 && rng.random_bool(self.error_rate.clamp(0.0, 1.0)) {
            return Some(Fault::Status { status: 500 });
        }
        if self.throttle_rate > 0.0 && rng.random_bool(self.throttle_rate.clamp(0.0, 1.0)) {
            return Some(Fault::Throttle {
                retry_after_secs: self.retry_after_secs,
            });
        }
        if self.drop_rate > 0.0 && rng.random_bool(self.drop_rate.clamp(0.0, 1.0)) {
            return Some(Fault::Drop);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_are_named() {
        assert_eq!(op_of("POST", "/v1/ai-image-upscaler"), "create");
        assert_eq!(op_of("GET", "/v1/image-projects/abc"), "get");
        assert_eq!(op_of("GET", "/v1/face-detection/abc"), "get");
        assert_eq!(op_of("DELETE", "/v1/video-projects/abc"), "delete");
        assert_eq!(op_of("POST", "/v1/files/upload-urls"), "upload-urls");
        assert_eq!(op_of("PUT", "/_mock/upload/api-assets/x/y.png"), "upload");
        assert_eq!(op_of("GET", "/_mock/files/x/output.png"), "download");
        assert_eq!(op_of("GET", "/_mock/requests"), "admin");
    }

    #[test]
    fn rules_are_consumed_in_order() {
        let mut f = Faults {
            rules: vec![
                Rule {
                    op: "create:ai-image-upscaler".into(),
                    fault: Fault::Drop,
                    count: 1,
                },
                Rule {
                    op: "get".into(),
                    fault: Fault::Status { status: 503 },
                    count: 2,
                },
            ],
            ..Faults::default()
        };
        assert_eq!(f.pick("create", Some("photo-colorizer")), None);
        assert_eq!(
            f.pick("create", Some("ai-image-upscaler")),
            Some(Fault::Drop)
        );
        assert_eq!(f.pick("create", Some("ai-image-upscaler")), None);
        assert_eq!(f.pick("get", None), Some(Fault::Status { status: 503 }));
        assert_eq!(f.pick("get", None), Some(Fault::Status { status: 503 }));
        assert_eq!(f.pick("get", None), None);
        assert!(f.rules.is_empty());
    }
}
