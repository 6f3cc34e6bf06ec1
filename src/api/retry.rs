//! Retries with capped, jittered exponential backoff that honours Retry-After.

use std::future::Future;
use std::time::Duration;

use rand::RngExt;

use super::error::ApiError;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            max_attempts: 6,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// Delay before retry number `attempt` (1 = first retry): "full jitter" over
    /// `min(cap, base * 2^(attempt-1))`, but never shorter than the server's Retry-After.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.cap);
        let jittered = exp.mul_f64(rand::rng().random_range(0.5..=1.0));
        match retry_after {
            Some(ra) => jittered.max(ra),
            None => jittered,
        }
    }
}

/// Runs `op` until it succeeds, fails with a non-retryable error, or attempts run out.
/// Only `ApiError::Retryable` is retried: a refusal or an unknown outcome comes back at once.
pub async fn retry<T, F, Fut>(backoff: Backoff, mut op: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(ApiError::Retryable {
                retry_after,
                reason,
                ..
            }) if attempt < backoff.max_attempts => {
                let delay = backoff.delay(attempt, retry_after);
                log::debug!("retry {attempt} in {delay:?}: {reason}");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> Backoff {
        Backoff {
            max_attempts: 4,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
        }
    }

    #[test]
    fn delay_is_capped_and_honours_retry_after() {
        let b = fast();
        for attempt in 1..30 {
            assert!(b.delay(attempt, None) <= Duration::from_millis(5));
        }
        assert!(b.delay(1, Some(Duration::from_millis(40))) >= Duration::from_millis(40));
    }

    #[tokio::test]
    async fn retries_only_retryable_errors() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, _> = retry(fast(), || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                Err(ApiError::Retryable {
                    status: Some(503),
                    retry_after: None,
                    reason: "busy".into(),
                })
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);

        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry(fast(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ApiError::UnknownOutcome {
                reason: "cut".into(),
            })
        })
        .await;
        assert!(matches!(r, Err(ApiError::UnknownOutcome { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry(fast(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ApiError::Retryable {
                status: None,
                retry_after: None,
                reason: "down".into(),
            })
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}
