//! `--cache-size`: the outputs kept on local disk are bounded. The most recently used ones stay
//! (an LRU of (job, output index) with their sizes); the others are deleted locally and fetched
//! again, with a fresh URL, when opened. Their job's record is unchanged, so they stay listed
//! with their recorded size and time.
//!
//! `OutputCache` is the bookkeeping alone (what to evict); the engine's side below deletes what
//! it says, builds it at mount from the files on disk, and fetches an output back.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lru::LruCache;

use super::Engine;
use super::job::JobId;
use super::limiter::Class;
use crate::api::ApiError;

/// One output: its job and its index in the job's outputs.
pub type Key = (JobId, usize);

/// How long an open of an evicted output waits for Magic Hour (unreachable, or a download cut
/// without progress) before it fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A refused download (an expired URL) is retried with a fresh URL this many times.
const REFUSALS: u32 = 3;

/// The outputs on local disk, least recently used first, and their byte total.
pub struct OutputCache {
    cap: u64,
    total: u64,
    lru: LruCache<Key, u64>,
}

impl OutputCache {
    pub fn new(cap: u64) -> OutputCache {
        OutputCache {
            cap,
            total: 0,
            lru: LruCache::unbounded(),
        }
    }

    /// Bytes of the outputs kept.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn len(&self) -> usize {
        self.lru.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lru.is_empty()
    }

    /// `key` is on disk with `size` bytes and was just used. Returns the outputs to evict to
    /// get back under the cap, least recently used first; never `key` itself (a single output
    /// larger than the cap stays until another one is used).
    pub fn touch(&mut self, key: Key, size: u64) -> Vec<Key> {
        if let Some(old) = self.lru.put(key, size) {
            self.total -= old;
        }
        self.total += size;
        let mut evicted = Vec::new();
        while self.total > self.cap {
            match self.lru.peek_lru() {
                Some((k, _)) if *k != key => {}
                _ => break,
            }
            if let Some((k, s)) = self.lru.pop_lru() {
                self.total -= s;
                evicted.push(k);
            }
        }
        evicted
    }

    /// A job's outputs leave (the job was deleted, and its files with it).
    pub fn forget_job(&mut self, id: JobId) {
        let keys: Vec<Key> = self
            .lru
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| k.0 == id)
            .collect();
        for k in keys {
            if let Some(s) = self.lru.pop(&k) {
                self.total -= s;
            }
        }
    }
}

/// Why an output could not be fetched again, said in one line with what to do.
fn cannot_fetch(place: &str, why: &str, fix: &str) -> String {
    format!(
        "{place}: not on local disk (evicted by --cache-size) and cannot be fetched again \
         from Magic Hour: {why}; {fix}"
    )
}

impl Engine {
    fn output_cache(&self) -> Option<std::sync::MutexGuard<'_, OutputCache>> {
        self.outputs.as_ref().map(|c| self.lock(c))
    }

    /// A job's output is on disk (just downloaded, fetched again, or opened): it becomes the
    /// most recently used, and the least recently used ones past the cap are deleted. Without
    /// `--cache-size`, nothing is tracked.
    pub fn output_used(&self, id: JobId, i: usize, file: &File) {
        use std::os::unix::fs::MetadataExt;
        let Some(mut cache) = self.output_cache() else {
            return;
        };
        // Evictions delete under this lock: a file unlinked by one since it was opened is
        // not counted again.
        let Ok(meta) = file.metadata() else { return };
        if meta.nlink() == 0 {
            return;
        }
        let evicted = cache.touch((id, i), meta.len());
        let unrecorded = self.evict(evicted);
        drop(cache);
        self.record_mtimes(unrecorded);
    }

    /// Deletes the local files of evicted outputs (under the cache's lock). Returns the times
    /// of those whose record had none, to be recorded once the lock is released.
    fn evict(&self, keys: Vec<Key>) -> Vec<(Key, SystemTime)> {
        let layout = self.registry.layout();
        let mut unrecorded = Vec::new();
        for (id, i) in keys {
            let Some((job, name, has_mtime)) = self
                .registry
                .with_job(id, |j| {
                    let o = j.outputs.get(i)?;
                    Some((j.name.clone(), o.name.clone(), o.mtime.is_some()))
                })
                .flatten()
            else {
                continue;
            };
            let path = layout.output(id, &name);
            let mtime = std::fs::metadata(&path).and_then(|m| m.modified());
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    log::info!(
                        "job {job}: {name} evicted from the local cache (fetched again when opened)"
                    );
                    if let (false, Ok(t)) = (has_mtime, mtime) {
                        unrecorded.push(((id, i), t));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => log::warn!("job {job}: cannot evict {name}: {e}"),
            }
        }
        unrecorded
    }

    /// Outputs downloaded before their time was recorded keep the time they had when evicted.
    fn record_mtimes(&self, times: Vec<(Key, SystemTime)>) {
        for ((id, i), t) in times {
            self.registry.update(id, |j| {
                if let Some(o) = j.outputs.get_mut(i) {
                    o.mtime.get_or_insert(t);
                }
            });
        }
    }

    /// A deleted job's outputs leave the cache.
    pub(super) fn forget_outputs(&self, id: JobId) {
        if let Some(mut cache) = self.output_cache() {
            cache.forget_job(id);
        }
    }

    /// At mount: the outputs on disk, least recently used first (by the file's access or
    /// modification time, whichever is later), and down to the cap.
    pub(super) fn load_output_cache(&self) {
        if self.outputs.is_none() {
            return;
        }
        let layout = self.registry.layout();
        let paths = self.registry.select(|j| {
            let v: Vec<(Key, std::path::PathBuf)> = j
                .outputs
                .iter()
                .enumerate()
                .filter(|(_, o)| o.done && !o.removed)
                .map(|(i, o)| ((j.id, i), layout.output(j.id, &o.name)))
                .collect();
            Some(v)
        });
        let mut found: Vec<(SystemTime, Key, u64)> = paths
            .into_iter()
            .flatten()
            .filter_map(|(key, path)| {
                let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                let used = meta.accessed().map_or(mtime, |a| a.max(mtime));
                Some((used, key, meta.len()))
            })
            .collect();
        found.sort_by_key(|(t, ..)| *t);
        let Some(mut cache) = self.output_cache() else {
            return;
        };
        let mut evicted = Vec::new();
        for (_, key, size) in found {
            evicted.extend(cache.touch(key, size));
        }
        let count = evicted.len();
        let unrecorded = self.evict(evicted);
        log::info!(
            "cache: {} outputs kept on local disk ({} bytes); {count} evicted to fit",
            cache.len(),
            cache.total()
        );
        drop(cache);
        self.record_mtimes(unrecorded);
    }

    fn fetch_lock(&self, key: Key) -> Arc<tokio::sync::Mutex<()>> {
        self.lock(&self.fetching).entry(key).or_default().clone()
    }

    /// Fetches again an output whose local file is gone (evicted by `--cache-size`): one GET
    /// of its project for a fresh URL, the download to a hidden part file (resumed when cut),
    /// renamed into place with its recorded time. Two opens at once fetch it once. Returns the
    /// file, open, or one line saying what could not be fetched, why, and what to do.
    /// `patience` bounds how long an unreachable Magic Hour is waited for.
    pub async fn fetch_output(
        &self,
        id: JobId,
        i: usize,
        patience: Option<Duration>,
    ) -> Result<File, String> {
        let lock = self.fetch_lock((id, i));
        let fetched = {
            let _held = lock.lock().await;
            self.fetch_locked(id, i, patience).await
        };
        drop(lock);
        self.lock(&self.fetching)
            .retain(|_, l| Arc::strong_count(l) > 1);
        fetched
    }

    async fn fetch_locked(
        &self,
        id: JobId,
        i: usize,
        patience: Option<Duration>,
    ) -> Result<File, String> {
        let layout = self.registry.layout();
        let Some((job, output)) = self
            .registry
            .with_job(id, |j| Some((j.clone(), j.outputs.get(i)?.clone())))
            .flatten()
        else {
            return Err(format!("job {id}: it no longer exists"));
        };
        let place = match &job.trashed {
            Some(t) => format!("{}/files/{}/{}", t.bin, t.name, output.name),
            None => format!("jobs/{}/{}", job.name, output.name),
        };
        let path = layout.output(id, &output.name);
        // Fetched by the open that held the lock before this one.
        if let Ok(file) = File::open(&path) {
            self.output_used(id, i, &file);
            return Ok(file);
        }
        let (Some(kind), Some(pid)) = (job.kind(), job.project_id.clone()) else {
            return Err(cannot_fetch(
                &place,
                "the job has no project on Magic Hour",
                "it cannot be read again",
            ));
        };
        let part = layout.partial_output(id, &output.name);
        let unreachable = |e: &ApiError| {
            cannot_fetch(
                &place,
                &format!(
                    "Magic Hour did not answer for {} s ({e})",
                    patience.unwrap_or(PATIENCE).as_secs()
                ),
                "open it again once Magic Hour answers (the file stays listed)",
            )
        };
        let (mut attempt, mut refused) = (0, 0);
        let mut progress = Instant::now();
        loop {
            let got = {
                let _permit = self.limiter.acquire(Class::Priority).await;
                let got = self.client.project(kind, &pid).await;
                self.answered(&got);
                got
            };
            let url = match got {
                Ok((project, _)) => match project.download_urls().get(i) {
                    Some(url) => url.clone(),
                    None => {
                        return Err(cannot_fetch(
                            &place,
                            &format!(
                                "Magic Hour no longer lists it (the project is {})",
                                project.status().as_str()
                            ),
                            "it cannot be read again",
                        ));
                    }
                },
                Err(ApiError::Refused { status: 404, .. }) => {
                    return Err(cannot_fetch(
                        &place,
                        "the project no longer exists on Magic Hour (404)",
                        &format!(
                            "it cannot be read again; remove the job (rm -r jobs/{})",
                            job.name
                        ),
                    ));
                }
                Err(e @ ApiError::Retryable { .. }) => {
                    attempt += 1;
                    self.pause(&e, attempt, progress, patience)
                        .await
                        .map_err(|()| unreachable(&e))?;
                    continue;
                }
                Err(e) => {
                    return Err(cannot_fetch(
                        &place,
                        &format!("Magic Hour refused to show its project ({e})"),
                        "check the API key, then open it again",
                    ));
                }
            };
            let had = part_len(&part).await;
            let downloaded = {
                let _permit = self.limiter.acquire(Class::Storage).await;
                self.client.download(&url, &part).await
            };
            match downloaded {
                Ok(size) => {
                    let file = self.keep(&part, &path, output.mtime).map_err(|e| {
                        cannot_fetch(
                            &place,
                            &format!("cannot write {}: {e}", path.display()),
                            "check the state directory's disk",
                        )
                    })?;
                    log::info!(
                        "job {}: fetched {} again ({size} bytes)",
                        job.name,
                        output.name
                    );
                    self.output_used(id, i, &file);
                    return Ok(file);
                }
                Err(e @ ApiError::Refused { .. }) => {
                    refused += 1;
                    if refused >= REFUSALS {
                        return Err(cannot_fetch(
                            &place,
                            &format!(
                                "its download was refused {refused} times with fresh URLs ({e})"
                            ),
                            "open it again later",
                        ));
                    }
                }
                Err(e @ ApiError::Retryable { .. }) => {
                    if part_len(&part).await > had {
                        progress = Instant::now();
                        attempt = 0;
                    }
                    attempt += 1;
                    self.pause(&e, attempt, progress, patience)
                        .await
                        .map_err(|()| unreachable(&e))?;
                }
                Err(e) => {
                    let _ = tokio::fs::remove_file(&part).await;
                    return Err(cannot_fetch(
                        &place,
                        &e.to_string(),
                        "open it again; if it keeps failing, see docs/TROUBLESHOOTING.md",
                    ));
                }
            }
        }
    }

    /// Waits before the next try, unless that would pass the patience (counted from the last
    /// progress): then `Err`.
    async fn pause(
        &self,
        e: &ApiError,
        attempt: u32,
        progress: Instant,
        patience: Option<Duration>,
    ) -> Result<(), ()> {
        let retry_after = match e {
            ApiError::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        };
        let delay = self.cfg.backoff.delay(attempt, retry_after);
        if let Some(limit) = patience
            && progress.elapsed() + delay > limit
        {
            return Err(());
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// The part file, complete, renamed into place with the output's recorded time; open.
    fn keep(
        &self,
        part: &std::path::Path,
        path: &std::path::Path,
        mtime: Option<SystemTime>,
    ) -> std::io::Result<File> {
        if let Some(t) = mtime {
            std::fs::OpenOptions::new()
                .write(true)
                .open(part)?
                .set_modified(t)?;
        }
        std::fs::rename(part, path)?;
        File::open(path)
    }
}

async fn part_len(part: &std::path::Path) -> u64 {
    tokio::fs::metadata(part).await.map_or(0, |m| m.len())
}

/// The outputs being fetched again, each behind its own lock.
pub(super) type Fetching = std::sync::Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_first_and_keeps_totals() {
        let mut c = OutputCache::new(100);
        assert!(c.touch((1, 0), 40).is_empty());
        assert!(c.touch((2, 0), 40).is_empty());
        assert_eq!(c.total(), 80);
        // Used again: (1, 0) is now the most recent, so (2, 0) goes first.
        assert!(c.touch((1, 0), 40).is_empty());
        assert_eq!(c.total(), 80);
        assert_eq!(c.touch((3, 0), 40), vec![(2, 0)]);
        assert_eq!(c.total(), 80);
        assert_eq!(c.len(), 2);
        // Several go at once, oldest first.
        assert_eq!(c.touch((4, 1), 100), vec![(1, 0), (3, 0)]);
        assert_eq!(c.total(), 100);
    }

    #[test]
    fn the_output_just_used_stays_even_over_the_cap() {
        let mut c = OutputCache::new(100);
        c.touch((1, 0), 30);
        assert_eq!(c.touch((2, 0), 500), vec![(1, 0)]);
        assert_eq!(c.total(), 500);
        assert_eq!(c.len(), 1);
        // Used again alone: still kept.
        assert!(c.touch((2, 0), 500).is_empty());
        // Until another one is used.
        assert_eq!(c.touch((3, 0), 10), vec![(2, 0)]);
        assert_eq!(c.total(), 10);
    }

    #[test]
    fn a_new_size_replaces_the_old_one_in_the_total() {
        let mut c = OutputCache::new(100);
        c.touch((1, 0), 30);
        c.touch((1, 0), 50);
        assert_eq!(c.total(), 50);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_deleted_job_leaves_the_cache() {
        let mut c = OutputCache::new(1000);
        c.touch((1, 0), 10);
        c.touch((1, 1), 20);
        c.touch((2, 0), 40);
        c.forget_job(1);
        assert_eq!(c.total(), 40);
        assert_eq!(c.len(), 1);
        assert_eq!(c.touch((3, 0), 960), Vec::<Key>::new());
        assert_eq!(c.touch((4, 0), 1), vec![(2, 0)]);
    }
}
