//! `activity.log`: what the drive did and refused, one line each, newest last, where the user
//! looks (the root of the mount). Kept in the state directory (`<state>/activity.log`, mode
//! 0600), append-only, so `tail -f` follows it; bounded: past `LIMIT` bytes the oldest half is
//! dropped (the one moment the file shrinks).
//!
//! Lines come from three places, each logged once: the FUSE adapter's refusals (`refused()` in
//! fs/fuse.rs), the inbox (submissions, waiting folders) and the jobs' state changes
//! (`Activity::job_changed`, fed by the registry's change listener), plus the engine's notices
//! (duplicates, an API that makes jobs wait).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use super::job::{JobId, JobStatus, Source};
use super::registry::{Change, Registry};

/// Past this size the oldest half of the log is dropped.
pub const LIMIT: u64 = 1 << 20;

type Hook = Box<dyn Fn() + Send + Sync>;

/// The same line again within this time is not repeated (a `mkdir` refused at its lookup and
/// at the mkdir itself says one thing once).
const REPEAT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Default)]
struct Writer {
    file: Option<File>,
    last: Option<(String, std::time::Instant)>,
}

pub struct Activity {
    path: PathBuf,
    file: Mutex<Writer>,
    /// Called after each line (the mount's live refresh raises IN_MODIFY for it).
    appended: OnceLock<Hook>,
    /// Each job's status as last written, so that each change is one line.
    seen: Mutex<HashMap<JobId, JobStatus>>,
}

impl Activity {
    pub fn open(path: &Path) -> Activity {
        Activity {
            path: path.to_path_buf(),
            // Made at once (empty), so that `tail -f` can start before the first line.
            file: Mutex::new(Writer {
                file: append_handle(path),
                last: None,
            }),
            appended: OnceLock::new(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its size now (what `getattr` reports).
    pub fn size(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    pub fn on_append(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.appended.set(Box::new(f));
    }

    /// Appends one line, stamped with the local time.
    pub fn note(&self, line: &str) {
        let line = line.replace('\n', " ");
        {
            let mut w = self.file.lock().unwrap_or_else(|p| p.into_inner());
            if w.last
                .as_ref()
                .is_some_and(|(l, t)| *l == line && t.elapsed() < REPEAT)
            {
                return;
            }
            if w.file.is_none() {
                w.file = append_handle(&self.path);
            }
            let text = format!("{}  {line}\n", local_now());
            let Some(f) = w.file.as_mut() else { return };
            if f.write_all(text.as_bytes()).is_err() {
                w.file = None;
                return;
            }
            if f.metadata().is_ok_and(|m| m.len() > LIMIT) {
                self.trim();
                w.file = append_handle(&self.path);
            }
            w.last = Some((line, std::time::Instant::now()));
        }
        if let Some(f) = self.appended.get() {
            f();
        }
    }

    /// Keeps the newest half, from a line start (a new file renamed over the old one: readers
    /// holding the old one keep it whole).
    fn trim(&self) {
        let Ok(data) = std::fs::read(&self.path) else {
            return;
        };
        let cut = data.len().saturating_sub((LIMIT / 2) as usize);
        let start = data[cut..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(data.len(), |i| cut + i + 1);
        let tmp = self.path.with_extension("log.tmp");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&data[start..]));
        if written.is_ok() {
            let _ = std::fs::rename(&tmp, &self.path);
        }
    }

    /// One line per job state change: new, each status, complete (with its outputs) and error
    /// (with why). Called by the registry's change listener, outside the registry's locks.
    pub fn job_changed(&self, registry: &Registry, change: &Change) {
        let id = match change {
            Change::Added { id, .. } | Change::Updated(id) => *id,
            Change::Removed { id, .. } => {
                self.seen_lock().remove(id);
                return;
            }
            Change::Renamed { .. } => return,
        };
        // Read in place (no copy of the job at every poll): only a new status makes a line.
        let line = registry
            .with_job(id, |job| {
                if job.trashed.is_some() {
                    return None;
                }
                let before = self.seen_lock().insert(id, job.status);
                if before == Some(job.status) {
                    return None;
                }
                // A new job from the inbox is announced by the inbox ("submitted as"); one
                // adopted from elsewhere here.
                if matches!(change, Change::Added { .. }) && job.source != Source::Adopted {
                    return None;
                }
                Some(match job.status {
                    JobStatus::Complete => {
                        let outs: Vec<String> = job
                            .outputs
                            .iter()
                            .filter(|o| o.done && !o.removed)
                            .map(|o| format!("jobs/{}/{}", job.name, o.name))
                            .collect();
                        format!("jobs/{}: complete: {}", job.name, outs.join(", "))
                    }
                    JobStatus::Error => format!(
                        "jobs/{}: error: {}",
                        job.name,
                        job.error.as_deref().unwrap_or("(no message)")
                    ),
                    s if before.is_none() => format!(
                        "jobs/{}: adopted {} project {}: {}",
                        job.name,
                        job.tool,
                        job.project_id.as_deref().unwrap_or("?"),
                        s.as_str()
                    ),
                    s => format!("jobs/{}: {}", job.name, s.as_str()),
                })
            })
            .flatten();
        let Some(line) = line else { return };
        self.note(&line);
    }

    /// Jobs already there at the start are not announced again.
    pub fn know(&self, registry: &Registry) {
        let mut seen = self.seen_lock();
        for job in registry.jobs() {
            seen.insert(job.id, job.status);
        }
    }

    fn seen_lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, JobStatus>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn append_handle(path: &Path) -> Option<File> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .ok()
}

/// The local time, `2026-01-31 17:04:05`.
pub fn local_now() -> String {
    // SAFETY: time(NULL) reads the clock only; localtime_r writes only into `tm`.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return String::from("????-??-?? ??:??:??");
        }
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_append_and_the_log_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let a = Activity::open(&dir.path().join("activity.log"));
        a.note("first");
        a.note("second\nline");
        a.note("second\nline");
        let text = std::fs::read_to_string(a.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with("  first"), "{text}");
        assert!(lines[1].ends_with("  second line"), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(a.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let long = "x".repeat(1000);
        for i in 0..2000 {
            a.note(&format!("{i:04}{long}"));
        }
        assert!(a.size() <= LIMIT, "{}", a.size());
        let text = std::fs::read_to_string(a.path()).unwrap();
        assert!(text.lines().all(|l| l.ends_with(&long)));
    }
}
