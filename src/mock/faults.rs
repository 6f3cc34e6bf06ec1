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
    /// In JSON: an operation name (see [`op_of`]), `create:<slug>`, or `*` for any API request.
    pub op: RuleOp,
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
    /// Act, then answer this status with a plain-text body, as a gateway in front of the API
    /// does when it gives up waiting (a 504): the client cannot know whether the work was done.
    Gateway { status: u16 },
    /// Act, then cut the answer's body in the middle: for a create, the project exists and is
    /// billed but the client cannot know.
    Drop,
}

/// The operation a request is, for the record and the rules. Serialized as the names the HTTP
/// admin API has always used (`upload-urls`, `get`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    UploadUrls,
    Upload,
    Download,
    Account,
    Get,
    Delete,
    Create,
    /// `/_mock/...` administration: never faulted nor recorded.
    Admin,
    Other,
}

impl Op {
    pub const ALL: [Op; 9] = [
        Op::UploadUrls,
        Op::Upload,
        Op::Download,
        Op::Account,
        Op::Get,
        Op::Delete,
        Op::Create,
        Op::Admin,
        Op::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::UploadUrls => "upload-urls",
            Op::Upload => "upload",
            Op::Download => "download",
            Op::Account => "account",
            Op::Get => "get",
            Op::Delete => "delete",
            Op::Create => "create",
            Op::Admin => "admin",
            Op::Other => "other",
        }
    }

    /// Whether faults may apply: admin calls never fail.
    pub fn is_faultable(self) -> bool {
        self != Op::Admin
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Op {
    type Err = String;
    fn from_str(s: &str) -> Result<Op, String> {
        Op::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| format!("unknown operation {s:?}"))
    }
}

/// Which requests a rule matches. In JSON a string, as before: `*`, `<op>` or `create:<slug>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RuleOp {
    /// Any API request.
    Any,
    Op(Op),
    /// A create of this tool slug.
    Create(String),
}

impl From<Op> for RuleOp {
    fn from(op: Op) -> RuleOp {
        RuleOp::Op(op)
    }
}

impl TryFrom<String> for RuleOp {
    type Error = String;
    fn try_from(s: String) -> Result<RuleOp, String> {
        if s == "*" {
            return Ok(RuleOp::Any);
        }
        // Only creates have a slug: another `op:slug` could never match, so it is refused.
        if let Some(slug) = s.strip_prefix("create:") {
            return Ok(RuleOp::Create(slug.to_string()));
        }
        s.parse().map(RuleOp::Op)
    }
}

impl From<RuleOp> for String {
    fn from(r: RuleOp) -> String {
        match r {
            RuleOp::Any => "*".into(),
            RuleOp::Op(op) => op.as_str().into(),
            RuleOp::Create(slug) => format!("create:{slug}"),
        }
    }
}

impl RuleOp {
    pub fn matches(&self, op: Op, slug: Option<&str>) -> bool {
        match self {
            RuleOp::Any => true,
            RuleOp::Op(o) => *o == op,
            RuleOp::Create(s) => op == Op::Create && slug == Some(s.as_str()),
        }
    }
}

/// The operation of a request, from its method and path.
pub fn op_of(method: &str, path: &str) -> Op {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        ("POST", ["v1", "files", "upload-urls"]) => Op::UploadUrls,
        ("PUT", ["_mock", "upload", ..]) => Op::Upload,
        ("GET", ["_mock", "files", ..]) => Op::Download,
        ("GET", ["v1", "account"]) => Op::Account,
        ("GET", ["v1", "face-detection", _]) => Op::Get,
        ("GET", ["v1", kind, _]) if kind.ends_with("-projects") => Op::Get,
        ("DELETE", ["v1", _, _]) => Op::Delete,
        ("POST", ["v1", _]) => Op::Create,
        (_, ["_mock", ..]) => Op::Admin,
        _ => Op::Other,
    }
}

impl Faults {
    /// Picks the fault for one request, consuming a matching rule first.
    pub fn pick(&mut self, op: Op, slug: Option<&str>) -> Option<Fault> {
        let found = self
            .rules
            .iter()
            .position(|r| r.count > 0 && r.op.matches(op, slug));
        if let Some(i) = found {
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
        assert_eq!(op_of("POST", "/v1/ai-image-upscaler"), Op::Create);
        assert_eq!(op_of("GET", "/v1/image-projects/abc"), Op::Get);
        assert_eq!(op_of("GET", "/v1/face-detection/abc"), Op::Get);
        assert_eq!(op_of("DELETE", "/v1/video-projects/abc"), Op::Delete);
        assert_eq!(op_of("POST", "/v1/files/upload-urls"), Op::UploadUrls);
        assert_eq!(op_of("PUT", "/_mock/upload/api-assets/x/y.png"), Op::Upload);
        assert_eq!(op_of("GET", "/_mock/files/x/output.png"), Op::Download);
        assert_eq!(op_of("GET", "/_mock/requests"), Op::Admin);
    }

    #[test]
    fn ops_serialize_as_their_old_names() {
        for op in Op::ALL {
            assert_eq!(serde_json::to_value(op).unwrap(), op.as_str());
            assert_eq!(op.as_str().parse::<Op>(), Ok(op));
        }
        for name in ["*", "get", "upload-urls", "create:ai-image-upscaler"] {
            let rule: RuleOp = serde_json::from_value(name.into()).unwrap();
            assert_eq!(serde_json::to_value(&rule).unwrap(), name);
        }
        assert!(serde_json::from_value::<RuleOp>("gte".into()).is_err());
    }

    #[test]
    fn rules_are_consumed_in_order() {
        let mut f = Faults {
            rules: vec![
                Rule {
                    op: RuleOp::Create("ai-image-upscaler".into()),
                    fault: Fault::Drop,
                    count: 1,
                },
                Rule {
                    op: Op::Get.into(),
                    fault: Fault::Status { status: 503 },
                    count: 2,
                },
            ],
            ..Faults::default()
        };
        assert_eq!(f.pick(Op::Create, Some("photo-colorizer")), None);
        assert_eq!(
            f.pick(Op::Create, Some("ai-image-upscaler")),
            Some(Fault::Drop)
        );
        assert_eq!(f.pick(Op::Create, Some("ai-image-upscaler")), None);
        assert_eq!(f.pick(Op::Get, None), Some(Fault::Status { status: 503 }));
        assert_eq!(f.pick(Op::Get, None), Some(Fault::Status { status: 503 }));
        assert_eq!(f.pick(Op::Get, None), None);
        assert!(f.rules.is_empty());
    }
}
