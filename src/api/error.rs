//! What can go wrong talking to the API, sorted by what the caller may do about it.

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The API answered 4xx (not 429): the request is wrong and repeating it will not help.
    #[error("{status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// Nothing was done and trying again later may work: 429, 5xx, or no connection.
    #[error("retryable: {reason}")]
    Retryable {
        status: Option<u16>,
        retry_after: Option<Duration>,
        reason: String,
    },
    /// A create was sent but its answer was lost: the project may or may not exist (and be
    /// billed). Never retried automatically.
    #[error("outcome unknown: {reason}")]
    UnknownOutcome { reason: String },
    /// A local problem: a file that cannot be read or written, an answer that does not parse.
    #[error("{0}")]
    Local(String),
}

impl ApiError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApiError::Retryable { .. })
    }

    /// HTTP status of a refusal, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Refused { status, .. } => Some(*status),
            ApiError::Retryable { status, .. } => *status,
            _ => None,
        }
    }

    /// The errno a file-system call answers with when this error ends it: the one place API
    /// errors become errnos.
    pub fn errno(&self) -> i32 {
        match self {
            ApiError::Refused {
                status: 401 | 403, ..
            } => libc::EACCES,
            ApiError::Refused { status: 404, .. } => libc::ENOENT,
            ApiError::Refused { status: 402, .. } => libc::EDQUOT,
            ApiError::Retryable { .. } => libc::EAGAIN,
            ApiError::Refused { .. } | ApiError::UnknownOutcome { .. } | ApiError::Local(_) => {
                libc::EIO
            }
        }
    }

    /// `code: message`, the form an `error` file holds.
    pub fn code_and_message(&self) -> (String, String) {
        match self {
            ApiError::Refused { code, message, .. } => (code.clone(), message.clone()),
            ApiError::Retryable { reason, .. } => ("unavailable".into(), reason.clone()),
            ApiError::UnknownOutcome { reason } => ("unknown_outcome".into(), reason.clone()),
            ApiError::Local(m) => ("local_error".into(), m.clone()),
        }
    }
}

/// The code the newest spec sends for each refusal status (spec/API.md §10), used when a body has none.
pub fn default_code(status: u16) -> &'static str {
    match status {
        400 => "invalid_request",
        401 => "unauthorized",
        402 => "insufficient_credits",
        403 => "forbidden",
        404 => "not_found",
        422 => "unprocessable_entity",
        429 => "too_many_requests",
        500 => "internal_server_error",
        502 => "bad_gateway",
        503 => "service_unavailable",
        _ => "http_error",
    }
}
