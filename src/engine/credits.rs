//! Credits are money: the account's balance (refreshed on a slow cadence and after creates), what this mount has been charged, and the budget that caps what the drive may
//! spend (persisted in the state directory as `budget.json`).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How often the balance is read from `GET /v1/account` by default.
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);

/// The budget as saved: its limit and what jobs created under it were expected to cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub limit: Option<i64>,
    #[serde(default)]
    pub spent: i64,
}

#[derive(Debug, Default)]
struct State {
    balance: Option<i64>,
    /// `credits_charged` of the creates of this mount, and how many.
    charged: i64,
    created: u64,
    budget: Budget,
    /// The budget comes from `--budget` (the config file's `budget` does not change it).
    pinned: bool,
}

#[derive(Debug)]
pub struct Credits {
    state: Mutex<State>,
    /// Held while a submission is checked against the budget and its price reserved, so two
    /// submissions at once cannot both fit in the same room.
    admitting: Mutex<()>,
    /// `budget.json` in the state directory (`None`: not persisted, for tests of the engine).
    path: Option<PathBuf>,
    /// Wakes jobs waiting for credits when the balance changes.
    pub changed: tokio::sync::Notify,
    pub refresh_every: Duration,
}

impl Default for Credits {
    fn default() -> Self {
        Credits::new(None, REFRESH_EVERY)
    }
}

/// Why a submission is refused: it would take the spending past the budget.
#[derive(Debug, Clone, PartialEq)]
pub struct OverBudget {
    pub price: i64,
    pub limit: i64,
    pub committed: i64,
}

impl OverBudget {
    pub fn by(&self) -> i64 {
        self.committed + self.price - self.limit
    }
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "it costs {} credits and would pass the budget of {} by {} ({} spent or reserved)",
            self.price,
            self.limit,
            self.by(),
            self.committed
        )
    }
}

impl Credits {
    /// Loads `budget.json` from `state_dir` if there is one.
    pub fn new(state_dir: Option<&std::path::Path>, refresh_every: Duration) -> Credits {
        let path = state_dir.map(|d| d.join("budget.json"));
        let budget = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<Budget>(&b).ok())
            .unwrap_or_default();
        Credits {
            state: Mutex::new(State {
                budget,
                ..State::default()
            }),
            admitting: Mutex::new(()),
            path,
            changed: tokio::sync::Notify::new(),
            refresh_every,
        }
    }

    /// Held across a submission's budget check and the reservation of its price.
    pub fn admit(&self) -> std::sync::MutexGuard<'_, ()> {
        self.admitting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, budget: &Budget) {
        let Some(path) = &self.path else { return };
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(budget).unwrap_or_default();
        if let Err(e) = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)) {
            log::error!("cannot save the budget to {}: {e}", path.display());
        }
    }

    /// Sets the budget: a new limit starts counting from zero (what was spent under another
    /// limit does not count); the same limit keeps its count. `pinned`: from the command line,
    /// which the config file does not override.
    pub fn set_budget(&self, limit: Option<i64>, pinned: bool) {
        let saved = {
            let mut s = self.lock();
            if s.pinned && !pinned {
                return;
            }
            s.pinned |= pinned;
            if s.budget.limit == limit {
                return;
            }
            s.budget = Budget { limit, spent: 0 };
            s.budget.clone()
        };
        match limit {
            Some(l) => log::info!("budget: this drive may spend {l} credits from now on"),
            None => log::info!("budget: none"),
        }
        self.save(&saved);
    }

    pub fn budget(&self) -> Budget {
        self.lock().budget.clone()
    }

    pub fn balance(&self) -> Option<i64> {
        self.lock().balance
    }

    /// What this mount has been charged (credits, creates).
    pub fn charged(&self) -> (i64, u64) {
        let s = self.lock();
        (s.charged, s.created)
    }

    pub fn set_balance(&self, balance: i64) {
        let changed = {
            let mut s = self.lock();
            let changed = s.balance != Some(balance);
            s.balance = Some(balance);
            changed
        };
        if changed {
            self.changed.notify_waiters();
        }
    }

    /// A create was accepted: `expected` counts against the budget, `charged` is the API's
    /// answer (also taken off the known balance until the next refresh).
    pub fn created(&self, expected: i64, charged: i64) {
        let saved = {
            let mut s = self.lock();
            s.charged += charged;
            s.created += 1;
            if let Some(b) = s.balance.as_mut() {
                *b -= charged;
            }
            if s.budget.limit.is_none() {
                return;
            }
            // What it really cost, if more than expected: the budget never under-counts.
            s.budget.spent += expected.max(charged);
            s.budget.clone()
        };
        self.save(&saved);
    }

    /// Whether a submission of `price` credits fits in the budget, with `reserved` credits of
    /// other jobs accepted but not created yet.
    pub fn check(&self, price: i64, reserved: i64) -> Result<(), OverBudget> {
        let s = self.lock();
        let Some(limit) = s.budget.limit else {
            return Ok(());
        };
        let committed = s.budget.spent + reserved;
        if committed + price > limit {
            return Err(OverBudget {
                price,
                limit,
                committed,
            });
        }
        Ok(())
    }

    /// The root's `credits` file.
    pub fn text(&self, reserved: i64) -> String {
        let s = self.lock();
        let mut out = match s.balance {
            Some(b) => format!("balance: {b} credits\n"),
            None => "balance: unknown (not read from Magic Hour yet)\n".to_string(),
        };
        out += &format!(
            "this mount: {} credits charged for {} jobs; {reserved} reserved for jobs not created yet\n",
            s.charged, s.created
        );
        match s.budget.limit {
            Some(l) => {
                out += &format!(
                    "budget: {l} credits; {} spent, {reserved} reserved, {} left\n",
                    s.budget.spent,
                    (l - s.budget.spent - reserved).max(0)
                )
            }
            None => out += "budget: none (mhfs mount --budget CREDITS sets one)\n",
        }
        out
    }

    /// `statfs` in credits: 1 block (1 KiB) = 1 credit. Total = balance + charged this mount,
    /// free = available = the balance (or what is left of the budget, if less). `None` until
    /// the balance is known.
    pub fn statfs(&self, reserved: i64) -> Option<(u64, u64)> {
        let s = self.lock();
        let balance = s.balance?.max(0);
        let mut avail = balance;
        if let Some(l) = s.budget.limit {
            avail = avail.min((l - s.budget.spent - reserved).max(0));
        }
        Some(((balance + s.charged.max(0)) as u64, avail as u64))
    }
}

/// Credits of jobs planned but not created yet (their expected prices), but `except`.
pub fn reserved(registry: &super::registry::Registry, except: Option<super::job::JobId>) -> i64 {
    use super::job::Stage;
    registry
        .select(|j| {
            (Some(j.id) != except
                && matches!(j.stage, Stage::Staged | Stage::Uploading | Stage::Creating))
            .then_some(j.expected_credits.unwrap_or(0))
        })
        .into_iter()
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_expected_prices_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let c = Credits::new(Some(dir.path()), REFRESH_EVERY);
        c.set_budget(Some(100), true);
        assert!(c.check(60, 0).is_ok());
        c.created(60, 60);
        let over = c.check(50, 0).unwrap_err();
        assert_eq!(over.by(), 10);
        assert!(c.check(40, 0).is_ok());
        assert!(c.check(40, 1).is_err());
        // Kept across mounts; a new limit counts from zero.
        let again = Credits::new(Some(dir.path()), REFRESH_EVERY);
        again.set_budget(Some(100), true);
        assert_eq!(again.budget().spent, 60);
        again.set_budget(Some(200), true);
        assert_eq!(again.budget().spent, 0);
        // The config file does not override --budget.
        again.set_budget(Some(5), false);
        assert_eq!(again.budget().limit, Some(200));
    }

    #[test]
    fn statfs_is_in_credits() {
        let c = Credits::default();
        assert_eq!(c.statfs(0), None);
        c.set_balance(1000);
        c.created(30, 30);
        assert_eq!(c.statfs(0), Some((1000, 970)));
        c.set_budget(Some(100), true);
        assert_eq!(c.statfs(10), Some((1000, 90)));
    }
}
