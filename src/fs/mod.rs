//! The mounted drive: the FUSE-free core (`core/`), the thin fuser adapter (`fuse.rs`), and
//! `mount`, which wires them to the engine.

pub mod core;
pub(crate) mod fuse;
pub mod presets;
pub mod readme;
pub mod refresh;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::api::{ApiKey, Client};
use crate::engine::registry::Registry;
use crate::engine::{Engine, EngineConfig};
use core::{Drive, DriveConfig, Hooks};

pub struct MountOptions {
    pub mountpoint: PathBuf,
    pub api_url: String,
    pub api_key: ApiKey,
    pub state_dir: PathBuf,
    pub allow_other: bool,
    /// With `allow_other`: other users may submit too (they spend the owner's credits).
    pub allow_other_submit: bool,
    /// The kernel enforces the modes shown (FUSE `default_permissions`); mhfs enforces the
    /// same rules itself either way.
    pub default_permissions: bool,
    pub engine: EngineConfig,
    /// Quiet time before a complete inbox folder is submitted.
    pub settle: Duration,
    /// Owner shown for every file (default: the user running mhfs).
    pub owner: Option<(u32, u32)>,
    /// The config file (presets, budget), watched for changes; `None`: none.
    pub config: Option<PathBuf>,
    /// `--budget`: what this drive may spend, over the config file's.
    pub budget: Option<i64>,
    /// How often the balance is read (`GET /v1/account`).
    pub credits_refresh: Duration,
}

/// A mounted drive. `unmount` (or dropping it) unmounts and stops the engine.
pub struct Mounted {
    pub drive: Arc<Drive>,
    pub engine: Arc<Engine>,
    pub registry: Arc<Registry>,
    session: Option<fuser::BackgroundSession>,
    ticker: tokio::task::JoinHandle<()>,
    watcher: Option<tokio::task::JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    invalidator: Option<std::thread::JoinHandle<()>>,
    mountpoint: PathBuf,
}

/// Mounts the drive. Must be called within a tokio runtime, whose tasks run the engine.
pub fn mount(mut opts: MountOptions) -> Result<Mounted, String> {
    let (uid, gid) = opts.owner.unwrap_or_else(core::current_ids);
    let registry = Registry::open(&opts.state_dir)?;
    let credits = Arc::new(crate::engine::credits::Credits::new(
        Some(&opts.state_dir),
        opts.credits_refresh,
    ));
    if opts.budget.is_some() {
        credits.set_budget(opts.budget, true);
    }
    opts.engine.credits = credits.clone();
    let drive = Drive::new(
        registry.clone(),
        DriveConfig {
            defaults: opts.engine.defaults.clone(),
            settle: opts.settle,
            uid,
            gid,
        },
    );
    drive.set_credits(credits.clone());
    // The config's presets are in force before the mount answers.
    let mut seen = None;
    match &opts.config {
        Some(path) => {
            seen = presets::stamp(path);
            load_config(&drive, &credits, path);
        }
        None if opts.budget.is_none() => credits.set_budget(None, false),
        None => {}
    }
    drive.set_sharing(core::Sharing {
        allow_other: opts.allow_other,
        others_submit: opts.allow_other && opts.allow_other_submit,
    });
    let client = Client::new(&opts.api_url, opts.api_key).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Handle::current();
    let engine = Engine::new(client, registry.clone(), opts.engine);

    // Invalidations go to the kernel from a thread of their own, and stop once unmounting
    // begins.
    let stopping = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let send = {
        let tx = std::sync::Mutex::new(tx);
        let quiet = stopping.clone();
        Arc::new(move |inval| {
            if !quiet.load(Ordering::Relaxed) {
                let _ = tx.lock().unwrap_or_else(|p| p.into_inner()).send(inval);
            }
        })
    };
    let to_kernel = send.clone();
    // Live refresh: the registry's changes are also replayed on the mount by a thread of their
    // own, so that inotify watchers see them (refresh.rs).
    let (refresh_tx, refresh_rx) = std::sync::mpsc::channel();
    let refresh_tx = std::sync::Mutex::new(refresh_tx);
    let refresh_tx = Arc::new(refresh_tx);
    let refresh_quiet = stopping.clone();
    let (listening, job_tx) = (registry.clone(), refresh_tx.clone());
    registry.activity().know(&registry);
    registry.on_change(move |change| {
        core::invalidations(change)
            .into_iter()
            .for_each(|i| to_kernel(i));
        listening.activity().job_changed(&listening, change);
        if !refresh_quiet.load(Ordering::Relaxed) {
            let _ = job_tx
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .send(refresh::Replay::Job(change.clone()));
        }
    });
    // activity.log grows: its readers (`tail -f` through inotify) hear IN_MODIFY. One pending
    // announcement at a time covers any number of lines.
    let pending = Arc::new(AtomicBool::new(false));
    let (log_quiet, log_pending) = (stopping.clone(), pending.clone());
    registry.activity().on_append(move || {
        if !log_quiet.load(Ordering::Relaxed) && !log_pending.swap(true, Ordering::AcqRel) {
            let _ = refresh_tx
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .send(refresh::Replay::Activity);
        }
    });
    let refresh = refresh::Refresh::new();
    let (kick, delete, adopt) = (engine.clone(), engine.clone(), engine.clone());
    let (used, fetch) = (engine.clone(), engine.clone());
    drive.set_hooks(Hooks {
        kick: Box::new(move |id| kick.kick(id)),
        delete: Box::new(move |id| {
            let engine = delete.clone();
            Box::pin(async move { engine.delete(id).await })
        }),
        adopt: Box::new(move |project_id| adopt.adopt(project_id)),
        output_used: Box::new(move |id, i, file| used.output_used(id, i, file)),
        fetch_output: Box::new(move |id, i| {
            let engine = fetch.clone();
            Box::pin(async move {
                let patience = Some(crate::engine::output_cache::PATIENCE);
                engine.fetch_output(id, i, patience).await
            })
        }),
        invalidate: Box::new(move |inval| send(inval)),
    });

    // Resume before the mount answers: a create found in flight from the last run is marked
    // unknown before any new job can exist.
    engine.resume();
    let mut options = vec![
        fuser::MountOption::FSName("mhfs".into()),
        fuser::MountOption::Subtype("mhfs".into()),
        fuser::MountOption::NoAtime,
    ];
    if opts.allow_other {
        options.push(fuser::MountOption::CUSTOM("allow_other".into()));
    }
    if opts.default_permissions {
        options.push(fuser::MountOption::DefaultPermissions);
    }
    let mut config = fuser::Config::default();
    config.mount_options = options;
    config.acl = if opts.allow_other {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    config.n_threads = Some(4);
    let session = fuser::spawn_mount(
        fuse::Fuse::new(drive.clone(), runtime.clone(), refresh.clone()),
        &opts.mountpoint,
        &config,
    )
    .map_err(|e| format!("cannot mount {}: {e}", opts.mountpoint.display()))?;
    let invalidator = fuse::spawn_invalidator(session.notifier(), rx);
    // Ends with the registry (its sender); not joined.
    let _ = refresh.spawn(
        opts.mountpoint.clone(),
        drive.clone(),
        registry.clone(),
        session.notifier(),
        refresh_rx,
        pending,
    );
    engine.watch_credits();
    let watcher = opts.config.clone().map(|path| {
        let (drive, credits) = (drive.clone(), credits.clone());
        runtime.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                let now = presets::stamp(&path);
                if now != seen {
                    seen = now;
                    load_config(&drive, &credits, &path);
                }
            }
        })
    });
    let ticking = drive.clone();
    let ticker = runtime.spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(250));
        for n in 0u64.. {
            every.tick().await;
            ticking.tick();
            if n % 40 == 0 {
                return_freed_memory();
            }
        }
    });
    log::debug!(
        "mounted {} ({} jobs; API {})",
        opts.mountpoint.display(),
        registry.len(),
        opts.api_url
    );
    Ok(Mounted {
        drive,
        engine,
        registry,
        session: Some(session),
        ticker,
        watcher,
        stopping,
        invalidator: Some(invalidator),
        mountpoint: opts.mountpoint,
    })
}

/// Gives the memory freed since the last call back to the system, every 10 s. glibc keeps
/// what a burst frees (loading the store, listing 10,000 jobs) inside its heap; at 10,000 jobs
/// that was a third of the daemon's RSS (BENCHMARKS.md, row 8). A few milliseconds each time.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages of the allocator's own heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Reads the config file and puts it in force: its presets (each bad one reported in the log
/// and left out) and its budget (unless `--budget` gave one). A file that is missing has no
/// presets; one that is not JSON leaves what was in force.
fn load_config(drive: &Drive, credits: &crate::engine::credits::Credits, path: &std::path::Path) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            drive.set_presets(Default::default());
            credits.set_budget(None, false);
            return;
        }
        Err(e) => {
            log::warn!("config {}: cannot read it: {e}", path.display());
            return;
        }
    };
    match presets::parse(&text) {
        Ok(config) => {
            for e in &config.errors {
                let line = format!("config {}: {e}; left out", path.display());
                log::warn!("{line}");
                drive.registry().activity().note(&line);
            }
            drive.set_presets(config.presets);
            credits.set_budget(config.budget, false);
            log::info!("config {}: read", path.display());
        }
        Err(e) => {
            let line = format!(
                "config {}: not valid JSON ({e}); the presets in force stay",
                path.display()
            );
            log::warn!("{line}");
            drive.registry().activity().note(&line);
        }
    }
}

impl Mounted {
    /// Whether the kernel side ended (someone ran `umount`).
    pub fn is_unmounted(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.guard.is_finished())
    }

    /// Unmounts and joins. Jobs keep their persisted state; their tasks end with the runtime
    /// and resume at the next mount.
    pub fn unmount(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // Creates in flight finish (their outcome is then known); no new one starts.
        self.registry.stop_creates(Duration::from_secs(20));
        self.stopping.store(true, Ordering::Relaxed);
        self.ticker.abort();
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        if let Some(session) = self.session.take() {
            if session.guard.is_finished() {
                // Someone ran `umount`: the kernel side is gone. Unmounting again fails with
                // EINVAL; done here, that answer is ours to ignore (dropping the session would
                // log it as "Unmount failed").
                let _ = session.umount_and_join();
            } else if let Err(e) = session.umount_and_join() {
                log::warn!("unmount {}: {e}", self.mountpoint.display());
            }
        }
        // The invalidator ends with the drive's sender; don't wait for it.
        drop(self.invalidator.take());
        log::info!("unmounted {}", self.mountpoint.display());
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.session.is_some() {
            self.stop();
        }
    }
}
