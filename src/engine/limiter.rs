//! How fast the drive talks to the API, shaped by the API's own answers.
//!
//! - A rate that adapts: until the first busy answer it grows by a share of itself per good
//!   answer (a slow start, as TCP's), so a large batch reaches the ceiling within about a second
//!   of good answers; after, by one request a second per good answer. It shrinks by 30 % (at
//!   most once a second, so a burst of failures counts once) when the API says it is overloaded
//!   (429, 502, 503, 504), between a floor and a documented ceiling; a Retry-After pauses every
//!   request until it has passed. A 500 is a server bug, not load: it is retried but does not
//!   slow the rest.
//! - Priorities: calls for jobs already created (polls, URL refreshes, deletes) go before new
//!   creates, so in a large batch outputs start arriving at once. A create waits while a
//!   priority call is waiting, but never more than `CREATE_MAX_DEFER`, so creates never starve.
//! - File transfers (uploads, downloads) have slots of their own: long transfers never hold up
//!   polls. A download talks to storage alone (a signed URL), so the API's rate does not pace
//!   it.
//! - The API's health: when it answers again after failures, every job waiting out an outage
//!   wakes at once instead of sleeping out its backoff.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, SemaphorePermit};

/// Requests per second the drive never exceeds, whatever the answers.
pub const CEILING: f64 = 200.0;
/// Requests per second the rate never drops below (so a recovery is noticed).
pub const FLOOR: f64 = 1.0;
const START: f64 = 20.0;
const CREATE_MAX_DEFER: Duration = Duration::from_secs(1);
/// During an outage, how often one waiting request tries the API.
const PROBE_EVERY: Duration = Duration::from_secs(2);
const SLOW_START_GROWTH: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Polls, URL refreshes, deletes, lookups: work of jobs that exist.
    Priority,
    /// A create: new work, which bills.
    Create,
    /// An upload (its URL is asked of the API), or a transfer that may refresh its URL.
    Transfer,
    /// A transfer with storage alone (a download from its signed URL): a transfer slot, but
    /// not counted against the API's rate.
    Storage,
}

/// What an answer says about the API's load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    Good,
    /// Overloaded (429, 502, 503, 504), with the server's Retry-After if it gave one.
    Busy(Option<Duration>),
    /// Answered with an error that says nothing about load (a 500): retried, pace unchanged.
    Failed,
    /// No connection at all.
    Down,
}

struct Pace {
    rate: f64,
    next: Instant,
    paused_until: Option<Instant>,
    last_decrease: Option<Instant>,
    /// No busy answer yet: the rate grows by `SLOW_START_GROWTH` of itself per good answer.
    slow_start: bool,
}

const DECREASE: f64 = 0.7;
const DECREASE_EVERY: Duration = Duration::from_secs(1);

pub struct Limiter {
    calls: Semaphore,
    transfers: Semaphore,
    pace: Mutex<Pace>,
    ceiling: f64,
    /// Priority calls waiting for a slot or their turn.
    priority_waiting: AtomicUsize,
    priority_idle: Notify,
    /// Notified when the API answers well after it did not.
    recovered: Notify,
    failing: std::sync::atomic::AtomicBool,
    /// When the next probe of a failing API may go.
    next_probe: Mutex<Instant>,
}

struct PriorityWaiting<'a>(&'a Limiter);

impl<'a> PriorityWaiting<'a> {
    fn new(l: &'a Limiter) -> Self {
        l.priority_waiting.fetch_add(1, Ordering::SeqCst);
        PriorityWaiting(l)
    }
}

impl Drop for PriorityWaiting<'_> {
    fn drop(&mut self) {
        if self.0.priority_waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.priority_idle.notify_waiters();
        }
    }
}

pub struct Permit<'a> {
    _slot: SemaphorePermit<'a>,
}

impl Limiter {
    /// `in_flight`: requests at once per kind (calls, transfers); `ceiling`: requests per second.
    pub fn new(in_flight: usize, ceiling: f64) -> Limiter {
        let ceiling = ceiling.clamp(FLOOR, CEILING);
        Limiter {
            calls: Semaphore::new(in_flight.max(1)),
            transfers: Semaphore::new(in_flight.max(1)),
            pace: Mutex::new(Pace {
                rate: START.min(ceiling),
                next: Instant::now(),
                paused_until: None,
                last_decrease: None,
                slow_start: true,
            }),
            ceiling,
            priority_waiting: AtomicUsize::new(0),
            priority_idle: Notify::new(),
            recovered: Notify::new(),
            failing: Default::default(),
            next_probe: Mutex::new(Instant::now()),
        }
    }

    /// Waits for a slot of this class and for its turn in the pace.
    pub async fn acquire(&self, class: Class) -> Permit<'_> {
        let slot = match class {
            Class::Priority => {
                // Counted while waiting, uncounted however the wait ends (even if the caller
                // gives up on it), so creates are never held back by a wait that is gone.
                let _waiting = PriorityWaiting::new(self);
                let slot = self.calls.acquire().await;
                self.paced().await;
                return Permit {
                    _slot: slot.expect("never closed"),
                };
            }
            Class::Create => {
                let deadline = Instant::now() + CREATE_MAX_DEFER;
                while self.priority_waiting.load(Ordering::SeqCst) > 0 {
                    let idle = self.priority_idle.notified();
                    if self.priority_waiting.load(Ordering::SeqCst) == 0 {
                        break;
                    }
                    if tokio::time::timeout_at(deadline.into(), idle)
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                self.calls.acquire().await
            }
            Class::Transfer => self.transfers.acquire().await,
            // Storage alone, not the API: a transfer slot, not paced against the API's rate.
            Class::Storage => {
                return Permit {
                    _slot: self.transfers.acquire().await.expect("never closed"),
                };
            }
        };
        self.paced().await;
        Permit {
            _slot: slot.expect("never closed"),
        }
    }

    async fn paced(&self) {
        let at = {
            let mut p = self.pace.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let earliest = p.paused_until.filter(|&t| t > now).unwrap_or(now);
            let at = p.next.max(earliest);
            p.next = at + Duration::from_secs_f64(1.0 / p.rate);
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }

    /// Tells the limiter how an answer went: additive increase, multiplicative decrease.
    pub fn answered(&self, answer: Answer) {
        let mut p = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        match answer {
            Answer::Good => {
                let step = if p.slow_start {
                    p.rate * SLOW_START_GROWTH
                } else {
                    1.0
                };
                p.rate = (p.rate + step.max(1.0)).min(self.ceiling);
                drop(p);
                if self.failing.swap(false, Ordering::SeqCst) {
                    self.recovered.notify_waiters();
                }
            }
            Answer::Busy(retry_after) => {
                let now = Instant::now();
                p.slow_start = false;
                if p.last_decrease.is_none_or(|t| now - t >= DECREASE_EVERY) {
                    p.rate = (p.rate * DECREASE).max(FLOOR);
                    p.last_decrease = Some(now);
                }
                if let Some(ra) = retry_after {
                    let until = Instant::now() + ra;
                    p.paused_until = Some(p.paused_until.map_or(until, |t| t.max(until)));
                }
                self.failing.store(true, Ordering::SeqCst);
            }
            Answer::Failed | Answer::Down => {
                self.failing.store(true, Ordering::SeqCst);
            }
        }
    }

    /// The current rate, requests per second.
    pub fn rate(&self) -> f64 {
        self.pace.lock().unwrap_or_else(|e| e.into_inner()).rate
    }

    /// Sleeps `delay`, or less if the API recovers meanwhile. While it is failing, one waiter
    /// at a time is let through every `PROBE_EVERY` to try again: when that probe is answered,
    /// every waiter wakes, so jobs go on within seconds of a recovery, however long their
    /// backoff had grown, without each of them knocking on a down API.
    /// `outage`: the API was unreachable or overloaded (no connection, 502-504); otherwise it
    /// answered with an error (a 500, a 429), and the wait is the full backoff.
    pub async fn wait_out(&self, delay: Duration, outage: bool) {
        if !outage {
            tokio::time::sleep(delay).await;
            return;
        }
        let end = Instant::now() + delay;
        loop {
            let recovered = self.recovered.notified();
            let now = Instant::now();
            if now >= end {
                return;
            }
            let probe_at = {
                let mut next = self.next_probe.lock().unwrap_or_else(|e| e.into_inner());
                if *next <= now {
                    *next = now + PROBE_EVERY;
                    return;
                }
                *next
            };
            tokio::select! {
                _ = tokio::time::sleep_until(end.min(probe_at).into()) => {}
                _ = recovered => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_grows_on_good_answers_and_shrinks_once_a_second_when_busy() {
        let l = Limiter::new(4, 50.0);
        let start = l.rate();
        for _ in 0..100 {
            l.answered(Answer::Good);
        }
        assert_eq!(l.rate(), 50.0, "capped at the ceiling");
        l.answered(Answer::Busy(None));
        assert_eq!(l.rate(), 35.0);
        // A burst of overload answers within the second counts once.
        for _ in 0..20 {
            l.answered(Answer::Busy(None));
        }
        assert_eq!(l.rate(), 35.0);
        // A server bug is not load.
        l.answered(Answer::Failed);
        assert_eq!(l.rate(), 35.0);
        l.pace.lock().unwrap().last_decrease = Some(Instant::now() - DECREASE_EVERY);
        l.answered(Answer::Busy(None));
        assert!((l.rate() - 24.5).abs() < 1e-9);
        for _ in 0..20 {
            l.pace.lock().unwrap().last_decrease = None;
            l.answered(Answer::Busy(None));
        }
        assert_eq!(l.rate(), FLOOR);
        assert!(start > FLOOR);
        // After a busy answer the rate grows by one per good answer.
        l.answered(Answer::Good);
        assert_eq!(l.rate(), FLOOR + 1.0);
    }

    #[test]
    fn a_slow_start_reaches_the_ceiling_within_about_fifty_answers() {
        let l = Limiter::new(4, CEILING);
        for _ in 0..50 {
            l.answered(Answer::Good);
        }
        assert_eq!(l.rate(), CEILING);
    }

    #[tokio::test]
    async fn retry_after_pauses_every_request() {
        let l = Limiter::new(4, 100.0);
        l.answered(Answer::Busy(Some(Duration::from_millis(300))));
        let t = Instant::now();
        let _p = l.acquire(Class::Priority).await;
        assert!(t.elapsed() >= Duration::from_millis(280));
    }

    #[tokio::test]
    async fn a_recovery_ends_every_wait_at_once() {
        let l = std::sync::Arc::new(Limiter::new(4, 100.0));
        l.answered(Answer::Down);
        let waiting = {
            let l = l.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                l.wait_out(Duration::from_secs(30), true).await;
                t.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        l.answered(Answer::Good);
        let waited = waiting.await.unwrap();
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }

    #[tokio::test]
    async fn creates_wait_for_priority_calls_but_not_forever() {
        let l = std::sync::Arc::new(Limiter::new(1, CEILING));
        // The only call slot is taken; a priority call queues for it, then a create.
        let held = l.acquire(Class::Priority).await;
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let p = {
            let (l, order) = (l.clone(), order.clone());
            tokio::spawn(async move {
                let _p = l.acquire(Class::Priority).await;
                order.lock().unwrap().push("priority");
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let c = {
            let (l, order) = (l.clone(), order.clone());
            tokio::spawn(async move {
                let _p = l.acquire(Class::Create).await;
                order.lock().unwrap().push("create");
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        p.await.unwrap();
        c.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["priority", "create"]);
    }
}
