//! The command line: `mhfs mount`, `mhfs mock`, `mhfs tools`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::api::ApiKey;
use crate::api::catalog::Overrides;
use crate::engine::EngineConfig;
use crate::mock::{Faults, MockConfig, MockServer, WebhookTarget};

#[derive(Parser, Debug)]
#[command(name = "mhfs", version, about = "Magic Hour as a drive")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Mount Magic Hour as a drive (foreground; Ctrl-C, SIGTERM or `umount` unmounts).
    Mount(MountArgs),
    /// Run the mock Magic Hour API as a standalone server.
    Mock(MockArgs),
    /// Print the tool catalogue as a Markdown table.
    Tools,
    /// List the jobs of a state directory and their states (works while mounted).
    Jobs(JobsArgs),
}

#[derive(Args, Debug)]
pub struct JobsArgs {
    /// A mount point of mhfs (its state directory is read from the running drive) or a state
    /// directory (default $XDG_STATE_HOME/mhfs).
    pub path: Option<PathBuf>,
    /// The state directory of the mount.
    #[arg(long, conflicts_with = "path")]
    pub state_dir: Option<PathBuf>,
    /// One JSON array: every job, and every inbox folder still waiting for an input.
    #[arg(long)]
    pub json: bool,
}

/// The hidden file at a mount's root that names its state directory (`mhfs jobs MOUNTPOINT`).
use crate::fs::core::STATE_FILE_NAME as STATE_FILE;

/// The state directory `mhfs jobs` reads: the one a mount point names, or the path itself.
fn jobs_state_dir(args: &JobsArgs) -> Result<PathBuf, String> {
    let Some(path) = args.state_dir.clone().or_else(|| args.path.clone()) else {
        return Ok(default_state_dir());
    };
    if path.join("jobs.db").exists() {
        return Ok(path);
    }
    match std::fs::read_to_string(path.join(STATE_FILE)) {
        Ok(dir) => Ok(PathBuf::from(dir.trim_end_matches('\n'))),
        Err(_) => Err(format!(
            "{}: neither an mhfs mount nor a state directory (no jobs.db)",
            path.display()
        )),
    }
}

/// Inbox folders that are not complete yet, with what each still needs.
fn waiting_folders(state: &std::path::Path) -> Vec<(String, &'static str, String)> {
    let mut out = Vec::new();
    for tool in crate::api::catalog::TOOLS {
        let dir = state.join("inbox").join(tool.slug);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut folders: Vec<_> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .collect();
        folders.sort_by_key(|e| e.file_name());
        for f in folders {
            let name = f.file_name().to_string_lossy().to_string();
            if crate::engine::names::is_scratch(&name) {
                continue;
            }
            let names: Vec<String> = std::fs::read_dir(f.path())
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter(|e| e.metadata().is_ok_and(|m| m.len() > 0))
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect();
            let needs = crate::engine::submit::folder_needs(tool, &names)
                .unwrap_or_else(|| "nothing: it is submitted once quiet".into());
            out.push((format!("inbox/{}/{name}", tool.slug), tool.slug, needs));
        }
    }
    out
}

/// `mhfs jobs`: one line per job (and per waiting inbox folder), for a terminal; or JSON.
pub fn run_jobs(args: JobsArgs) -> Result<(), String> {
    // `mhfs jobs | head`: a closed pipe ends the listing quietly, as for any Unix tool.
    // SAFETY: restoring the default action of a signal; no handler runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let dir = jobs_state_dir(&args)?;
    let db = dir.join("jobs.db");
    if !db.exists() {
        return Err(format!("no jobs in {} (no jobs.db)", dir.display()));
    }
    let store = crate::engine::store::Store::open(&db).map_err(|e| e.to_string())?;
    let jobs = store.all().map_err(|e| e.to_string())?;
    let waiting = waiting_folders(&dir);
    if args.json {
        let mut all: Vec<serde_json::Value> = jobs
            .iter()
            .map(|j| {
                let name = match &j.trashed {
                    Some(t) => format!("{}/files/{}", t.bin, t.name),
                    None => j.name.clone(),
                };
                serde_json::json!({
                    "name": name,
                    "tool": j.tool,
                    "status": j.status.as_str(),
                    "project_id": j.project_id,
                    "outputs": j.outputs.iter().filter(|o| o.done && !o.removed)
                        .map(|o| o.name.clone()).collect::<Vec<_>>(),
                    "error": j.error,
                    "expected_credits": j.expected_credits,
                    "credits_charged": j.credits_charged,
                })
            })
            .collect();
        all.extend(waiting.iter().map(|(folder, tool, needs)| {
            serde_json::json!({"name": folder, "tool": tool, "status": "waiting", "needs": needs})
        }));
        let text = serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "{:<24} {:<26} {:<12} {:<27} {:>7} {:>8} {:>8}  ERROR",
        "NAME", "TOOL", "STATUS", "PROJECT", "OUTPUTS", "EXPECTED", "CHARGED"
    );
    for (folder, tool, needs) in &waiting {
        println!(
            "{folder:<24} {tool:<26} {:<12} {:<27} {:>7} {:>8} {:>8}  needs {needs}",
            "waiting", "-", "-", "-", "-"
        );
    }
    let (mut expected, mut charged) = (0i64, 0i64);
    let credits = |c: Option<i64>| c.map_or_else(|| "-".to_string(), |c| c.to_string());
    for j in jobs {
        expected += j.expected_credits.unwrap_or(0);
        charged += j.credits_charged.unwrap_or(0);
        let done = j.outputs.iter().filter(|o| o.done && !o.removed).count();
        // A trashed job is named where it is shown.
        let name = match &j.trashed {
            Some(t) => format!("{}/files/{}", t.bin, t.name),
            None => j.name.clone(),
        };
        let error = j
            .error
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect::<String>();
        println!(
            "{:<24} {:<26} {:<12} {:<27} {:>7} {:>8} {:>8}  {error}",
            name,
            j.tool,
            j.status.as_str(),
            j.project_id.as_deref().unwrap_or("-"),
            format!("{done}/{}", j.outputs.len()),
            credits(j.expected_credits),
            credits(j.credits_charged),
        );
    }
    println!(
        "{:<24} {:<26} {:<12} {:<27} {:>7} {:>8} {:>8}",
        "TOTAL", "", "", "", "", expected, charged
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct MountArgs {
    /// An existing, empty folder to mount on.
    pub mountpoint: PathBuf,
    /// API base URL (default https://api.magichour.ai when a key is given).
    #[arg(long)]
    pub api_url: Option<String>,
    /// File holding the API key (otherwise MAGIC_HOUR_API_KEY). With neither a key nor an API
    /// URL, an embedded mock API serves and nothing is billed.
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Where jobs, staged inputs and outputs are kept (default $XDG_STATE_HOME/mhfs).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Let other users see the mount (each job is its submitter's: only they, the mount's owner
    /// and root may remove it; outputs are readable by the submitter and the owner's group).
    #[arg(long)]
    pub allow_other: bool,
    /// With --allow-other: let other users submit too. Off by default: what they submit is
    /// billed to this mount's API key.
    #[arg(long, requires = "allow_other")]
    pub allow_other_submit: bool,
    /// Let the kernel enforce the modes shown (FUSE default_permissions); mhfs enforces the
    /// same rules itself either way.
    #[arg(long)]
    pub default_permissions: bool,
    /// Log every step (debug level).
    #[arg(short, long)]
    pub debug: bool,
    /// First poll interval in seconds for every kind (default: 3 s for images and audio, 5 s
    /// for videos, backing off for long jobs).
    #[arg(long)]
    pub poll_interval: Option<f64>,
    /// Seconds an inbox folder must be quiet before it is submitted.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// Per-tool defaults over the built-in ones, a JSON object by tool slug, e.g.
    /// `{"ai-image-upscaler": {"scale_factor": 4}}` (default $XDG_CONFIG_HOME/mhfs/defaults.json
    /// when it exists).
    #[arg(long)]
    pub defaults: Option<PathBuf>,
    /// Render time of the embedded mock, in seconds.
    #[arg(long, default_value_t = 6.0)]
    pub mock_render_time: f64,
    /// Owner (uid) shown for every file of the mount (default: the user running mhfs).
    #[arg(long)]
    pub uid: Option<u32>,
    /// Group (gid) shown for every file of the mount.
    #[arg(long)]
    pub gid: Option<u32>,
    /// Write the log to this file instead of standard error.
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// Receive Magic Hour's webhook events on this address (register its public URL in the
    /// Developer Hub): jobs then move at once and polling becomes a slow safety net (60 s).
    #[arg(long, requires = "webhook_secret_file")]
    pub webhook_listen: Option<SocketAddr>,
    /// File holding the webhook's secret, to verify each event's signature.
    #[arg(long)]
    pub webhook_secret_file: Option<PathBuf>,
    /// Presets and budget: a JSON file, watched for changes (default
    /// $XDG_CONFIG_HOME/mhfs/config.json). See docs/SEMANTICS.md.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The most credits this drive may spend (the sum of the expected prices of the jobs it
    /// creates from now on); a submission that would pass it is refused at close with EDQUOT.
    #[arg(long)]
    pub budget: Option<i64>,
    /// Seconds between reads of the balance (GET /v1/account).
    #[arg(long, default_value_t = 60.0)]
    pub credits_refresh: f64,
    /// The most bytes of outputs kept on local disk (e.g. 20G; K, M, G, T are binary units):
    /// the most recently read stay, the others are fetched again when opened, and every output
    /// stays listed with its size. Default: no bound.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub cache_size: Option<u64>,
    /// Run in the background: return once mounted (log to --log-file, default
    /// <state-dir>/mhfs.log); `umount MOUNTPOINT` stops it.
    #[arg(long)]
    pub daemon: bool,
    /// Mount even on a folder that is not empty (its files are hidden while mounted).
    #[arg(long)]
    pub allow_non_empty: bool,
}

/// A size in bytes: a whole number, optionally followed by K, M, G or T (binary units: 1K is
/// 1024 bytes), with an optional `B`/`iB` (`20G`, `20GiB`, `512M`, `1000000`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: u64 = number.parse().map_err(|_| {
        format!("{text:?}: a size is a whole number of bytes, or with K, M, G or T")
    })?;
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit (use K, M, G or T, binary: 1K = 1024 bytes)"
            ));
        }
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?}: too large"))
}

/// A mount point must be an empty folder unless `--allow-non-empty`: what is in it would be
/// hidden under the drive.
pub fn check_mountpoint(args: &MountArgs) -> Result<(), String> {
    let p = &args.mountpoint;
    let mut entries = std::fs::read_dir(p).map_err(|e| format!("{}: {e}", p.display()))?;
    if !args.allow_non_empty && entries.next().is_some() {
        return Err(format!(
            "{} is not empty: its files would be hidden under the drive; use an empty folder \
             (or --allow-non-empty)",
            p.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_take_binary_units() {
        use super::parse_size;
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1000000"), Ok(1_000_000));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("20G"), Ok(20 << 30));
        assert_eq!(parse_size("20g"), Ok(20 << 30));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("20 GB"), Ok(20 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("3X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(
            super::unescape_mountinfo("/home/a/Magic\\040Hour"),
            "/home/a/Magic Hour"
        );
        assert_eq!(super::unescape_mountinfo("/plain"), "/plain");
    }
}

/// The environment variable naming the fd a `--daemon` child reports on: one line, `ok` once
/// mounted or the error that stopped it.
const READY_FD_ENV: &str = "MHFS_READY_FD";

/// The `--daemon` child's end of the readiness pipe, until it reports.
static READY: std::sync::Mutex<Option<std::fs::File>> = std::sync::Mutex::new(None);

/// In a `--daemon` child, takes the readiness pipe the parent passed. Call first thing, while the
/// process has a single thread (it changes the environment).
pub fn take_ready_pipe() {
    use std::os::fd::{FromRawFd, OwnedFd};
    let Some(fd) = std::env::var(READY_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    // SAFETY: called from main before the runtime or any other thread exists, so nothing reads
    // the environment concurrently. Removed so programs we start do not see a stale fd.
    unsafe { std::env::remove_var(READY_FD_ENV) };
    // Never take a standard stream or an fd that is not open.
    // SAFETY: F_GETFD only reads the flags of a descriptor number; a closed one gives -1.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return;
    }
    // Not inherited further by programs we start.
    // SAFETY: fd is open (checked above); setting FD_CLOEXEC touches nothing else.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: the parent opened this fd for us alone and nothing else in this process owns it.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    *READY.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
}

/// Tells a waiting `--daemon` parent how mounting went (once; later calls do nothing).
pub fn report_ready(result: Result<(), &str>) {
    use std::io::Write;
    let Some(mut pipe) = READY.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    let line = match result {
        Ok(()) => "ok".to_string(),
        Err(e) => e.replace('\n', " "),
    };
    if let Err(e) = writeln!(pipe, "{line}") {
        log::warn!("cannot tell the starting command how the mount went: {e}");
    }
}

/// Tells systemd (a `Type=notify` unit) how the service goes: `READY=1` once the mount answers,
/// `STOPPING=1` as it unmounts. sd_notify(3)'s protocol, without libsystemd: one datagram to the
/// Unix socket named by `NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`).
/// Does nothing when the variable is unset, as outside systemd.
pub fn sd_notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send_notify(&socket, state) {
        log::warn!("cannot tell systemd {state:?} on {socket:?}: {e}");
    }
}

fn send_notify(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let name = socket.as_bytes();
    let addr = match name.strip_prefix(b"@") {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(socket))?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// `--daemon`: starts this same command in the foreground as a detached child (its own session,
/// logging to a file), waits for it to report on a pipe that it is mounted, and returns.
pub fn daemonize(args: &MountArgs) -> Result<(), String> {
    use std::io::BufRead;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    crate::engine::registry::private_dir(&state_dir).map_err(|e| {
        format!(
            "cannot create the state directory {}: {e}",
            state_dir.display()
        )
    })?;
    let log = args
        .log_file
        .clone()
        .unwrap_or_else(|| state_dir.join("mhfs.log"));
    let mountpoint = std::fs::canonicalize(&args.mountpoint)
        .map_err(|e| format!("{}: {e}", args.mountpoint.display()))?;
    // FUSE would stack a second mount on the first: refuse that up front.
    if is_mounted(&mountpoint) {
        return Err(format!("{} is already an mhfs mount", mountpoint.display()));
    }
    check_mountpoint(args)?;
    let (reader, writer) =
        std::io::pipe().map_err(|e| format!("cannot create the readiness pipe: {e}"))?;
    // Both ends are close-on-exec. The write end must not be 0..2, which the child's stdio
    // redirection would overwrite, so it is duplicated to 3 or above.
    // SAFETY: F_DUPFD_CLOEXEC on an open fd returns a new fd we own, or -1.
    let fd = unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if fd == -1 {
        let e = std::io::Error::last_os_error();
        return Err(format!("cannot create the readiness pipe: {e}"));
    }
    drop(writer);
    // SAFETY: fd was just returned by fcntl and is owned by nothing else.
    let writer = unsafe { OwnedFd::from_raw_fd(fd) };
    let exe = std::env::current_exe().map_err(|e| format!("cannot find mhfs itself: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1).filter(|a| a != "--daemon"))
        .env(READY_FD_ENV, fd.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if args.log_file.is_none() {
        cmd.arg("--log-file").arg(&log);
    }
    // SAFETY: between fork and exec the child only calls setsid and fcntl, both
    // async-signal-safe, on its own copy of the descriptor table.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            // Keep the write end open across exec in the child only.
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))?;
    // Only the child holds the write end now: its exit ends the read.
    drop(writer);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(reader).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) if line.trim() == "ok" => {
            eprintln!(
                "mhfs: mounted on {} in the background (pid {}, log {}); `umount {}` stops it",
                mountpoint.display(),
                child.id(),
                log.display(),
                mountpoint.display()
            );
            Ok(())
        }
        Ok(line) if !line.trim().is_empty() => {
            Err(format!("{} (log {})", line.trim(), log.display()))
        }
        Ok(_) => {
            let status = child.wait().map_err(|e| e.to_string())?;
            Err(format!(
                "the daemon exited ({status}) without mounting; see {}",
                log.display()
            ))
        }
        Err(_) => Err(format!(
            "the mount did not come up in 30 s; see {}",
            log.display()
        )),
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a FUSE file system of ours is mounted on `path` (from /proc/self/mountinfo).
fn is_mounted(path: &std::path::Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let target = path.to_string_lossy();
    info.lines().any(|l| {
        let fields: Vec<String> = l.split(' ').map(unescape_mountinfo).collect();
        // "... <mount point> <options> ... - <fs type> <source> ...": ours is source "mhfs".
        let after = l.split(" - ").nth(1).unwrap_or("");
        fields.get(4).map(String::as_str) == Some(target.as_ref())
            && after.starts_with("fuse")
            && after.split(' ').nth(1) == Some("mhfs")
    })
}

const REAL_API: &str = "https://api.magichour.ai";

/// The state directory: `$XDG_STATE_HOME/mhfs`, else `~/.local/state/mhfs`.
fn default_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("mhfs")
}

fn read_key(args: &MountArgs) -> Result<Option<String>, String> {
    if let Some(file) = &args.api_key_file {
        let key = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the key file {}: {e}", file.display()))?;
        let key = key.trim().to_string();
        if key.is_empty() {
            return Err(format!("the key file {} is empty", file.display()));
        }
        return Ok(Some(key));
    }
    Ok(std::env::var("MAGIC_HOUR_API_KEY")
        .ok()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty()))
}

/// The defaults file: `--defaults`, else `$XDG_CONFIG_HOME/mhfs/defaults.json` if present.
fn read_defaults(args: &MountArgs) -> Result<Overrides, String> {
    let path = args.defaults.clone().or_else(|| {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(config.join("mhfs/defaults.json")).filter(|p| p.exists())
    });
    let Some(path) = path else {
        return Ok(Overrides::default());
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the defaults file {}: {e}", path.display()))?;
    Overrides::parse(&text).map_err(|e| format!("defaults file {}: {e}", path.display()))
}

pub async fn run_mount(args: MountArgs) -> Result<(), String> {
    let result = mount_until_stopped(args).await;
    if let Err(e) = &result {
        report_ready(Err(e));
    }
    result
}

/// Says something to the user once: on the terminal, or in the log file when there is one
/// (a `--daemon` child has no terminal).
fn banner(args: &MountArgs, text: &str) {
    if args.log_file.is_some() {
        log::info!("{}", text.replace("\nmhfs: ", " "));
    } else {
        eprintln!("mhfs: {text}");
    }
}

/// Checks the API key with one cheap call (GET /v1/account): a key the API refuses (401/403)
/// stops the mount with a clear message; an API that does not answer does not (jobs wait).
async fn check_key(api_url: &str, key: &str) -> Result<(), String> {
    let client = crate::api::Client::new(api_url, ApiKey::new(key)).map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(5), client.account()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if matches!(e.status(), Some(401 | 403)) => Err(format!(
            "the API key was refused by {api_url} ({e}): check MAGIC_HOUR_API_KEY or \
             --api-key-file (keys are made in the Developer Hub)"
        )),
        Ok(Err(e)) => {
            log::warn!(
                "could not check the API key at {api_url} ({e}); mounting anyway: jobs wait \
                 until the API answers"
            );
            Ok(())
        }
        Err(_) => {
            log::warn!(
                "{api_url} did not answer in 5 s; mounting anyway: jobs wait until it answers"
            );
            Ok(())
        }
    }
}

async fn mount_until_stopped(args: MountArgs) -> Result<(), String> {
    // Watch Ctrl-C and SIGTERM before mounting: a stop right after the mount comes up must
    // unmount cleanly too, not kill the process.
    use tokio::signal::unix::{SignalKind, signal};
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let defaults = read_defaults(&args)?;
    check_mountpoint(&args)?;
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    if let Some(warning) = crate::engine::registry::loose_state_dir(&state_dir) {
        log::warn!("{warning}");
    }
    crate::engine::registry::private_dir(&state_dir).map_err(|e| {
        format!(
            "cannot create the state directory {}: {e}",
            state_dir.display()
        )
    })?;
    let key = read_key(&args)?;
    let embedded = args.api_url.is_none() && key.is_none();
    // Webhooks: the given receiver, or (embedded mock) one on loopback the mock sends to.
    let webhook = match (&args.webhook_listen, &args.webhook_secret_file) {
        (Some(addr), Some(file)) => {
            let secret = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read the webhook secret {}: {e}", file.display()))?;
            crate::engine::webhook::check_secret(secret.trim().as_bytes())
                .map_err(|e| format!("{e} ({})", file.display()))?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen for webhooks on {addr}: {e}"))?;
            Some((listener, secret.trim().as_bytes().to_vec()))
        }
        _ if embedded => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("cannot listen for the mock's webhooks: {e}"))?;
            // 32 hex characters: well above the receiver's minimum length.
            let secret: [u8; 16] = rand::random();
            let secret = hex::encode(secret);
            Some((listener, secret.into_bytes()))
        }
        _ => None,
    };
    let mut mock = None;
    let (api_url, key) = match (&args.api_url, key) {
        (Some(url), key) => (url.clone(), key.unwrap_or_else(|| "mhfs-local".into())),
        (None, Some(key)) => (REAL_API.to_string(), key),
        (None, None) => {
            let server = MockServer::start_local(MockConfig {
                render_time: Duration::from_secs_f64(args.mock_render_time.max(0.0)),
                data_dir: Some(state_dir.join("mock")),
                webhook: webhook.as_ref().map(|(listener, secret)| WebhookTarget {
                    url: format!("http://{}/", listener.local_addr().expect("bound")),
                    secret: String::from_utf8_lossy(secret).into_owned(),
                }),
                ..MockConfig::default()
            })
            .await
            .map_err(|e| format!("cannot start the embedded mock: {e}"))?;
            let url = server.url();
            banner(
                &args,
                &format!(
                    "no API key: the embedded mock Magic Hour API serves at {url}. Nothing is billed.\n\
                     mhfs: set MAGIC_HOUR_API_KEY (or --api-key-file) to use the real service."
                ),
            );
            mock = Some(server);
            (url, "mhfs-mock".to_string())
        }
    };
    if mock.is_none() {
        check_key(&api_url, &key).await?;
    }
    let mounted = crate::fs::mount(crate::fs::MountOptions {
        mountpoint: args.mountpoint.clone(),
        api_url,
        api_key: ApiKey::new(key),
        state_dir,
        allow_other: args.allow_other,
        allow_other_submit: args.allow_other_submit,
        default_permissions: args.default_permissions,
        engine: EngineConfig {
            poll_base: args
                .poll_interval
                .map(|s| Duration::from_secs_f64(s.max(0.01))),
            // With webhooks, a job whose events arrive is polled only as a safety net.
            safety_net: webhook.as_ref().map(|_| Duration::from_secs(60)),
            defaults,
            cache_size: args.cache_size,
            ..EngineConfig::default()
        },
        settle: Duration::from_secs_f64(args.settle.max(0.0)),
        owner: match (args.uid, args.gid) {
            (None, None) => None,
            (uid, gid) => {
                let (u, g) = crate::fs::core::current_ids();
                Some((uid.unwrap_or(u), gid.unwrap_or(g)))
            }
        },
        config: args
            .config
            .clone()
            .or_else(crate::fs::presets::default_path),
        budget: args.budget,
        credits_refresh: Duration::from_secs_f64(args.credits_refresh.max(0.05)),
    })?;
    if let Some((listener, secret)) = webhook {
        if let Ok(addr) = listener.local_addr() {
            log::info!("webhook events are received on {addr}");
        }
        let engine = mounted.engine.clone();
        // The secret was checked before mounting, so this cannot fail.
        crate::engine::webhook::serve(listener, secret, Arc::new(move |e| engine.on_event(e)))?;
    }
    report_ready(Ok(()));
    sd_notify("READY=1");
    banner(
        &args,
        &format!(
            "mounted on {} ({} jobs); Ctrl-C or `umount {}` unmounts",
            args.mountpoint.display(),
            mounted.registry.len(),
            args.mountpoint.display()
        ),
    );
    let mut check = tokio::time::interval(Duration::from_millis(300));
    loop {
        tokio::select! {
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = check.tick() => if mounted.is_unmounted() { break },
        }
    }
    sd_notify("STOPPING=1");
    tokio::task::spawn_blocking(move || mounted.unmount())
        .await
        .map_err(|e| format!("unmount: {e}"))?;
    if let Some(mock) = mock {
        mock.stop().await;
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct MockArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Seconds from create to complete (a third queued, the rest rendering); 0 completes at the
    /// first poll.
    #[arg(long, default_value_t = 6.0)]
    pub render_time: f64,
    /// Credit balance; creates that cost more get 402 insufficient_credits.
    #[arg(long, default_value_t = 100_000)]
    pub credits: i64,
    /// Accept only this bearer token (otherwise any non-empty one).
    #[arg(long)]
    pub api_key: Option<String>,
    /// Lifetime of signed download URLs, in seconds.
    #[arg(long, default_value_t = 86_400)]
    pub url_lifetime: u64,
    /// Share (0..1) of API requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share (0..1) of API requests answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Retry-After of the 429 answers, in seconds.
    #[arg(long, default_value_t = 1)]
    pub retry_after: u64,
    /// Milliseconds added before every answer.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share (0..1) of answers whose connection is dropped in the middle of the body.
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Keep uploads and outputs here instead of a temporary folder.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Send signed job events (started, completed, errored) to this URL.
    #[arg(long, requires = "webhook_secret")]
    pub webhook_url: Option<String>,
    /// The secret webhook events are signed with.
    #[arg(long)]
    pub webhook_secret: Option<String>,
}

impl MockArgs {
    pub fn config(&self) -> MockConfig {
        MockConfig {
            render_time: Duration::from_secs_f64(self.render_time.max(0.0)),
            credits: self.credits,
            api_key: self.api_key.clone(),
            faults: Faults {
                error_rate: self.error_rate,
                throttle_rate: self.throttle_rate,
                retry_after_secs: self.retry_after,
                latency_ms: self.latency_ms,
                drop_rate: self.drop_rate,
                url_lifetime_secs: Some(self.url_lifetime),
                rules: vec![],
            },
            data_dir: self.data_dir.clone(),
            webhook: self
                .webhook_url
                .clone()
                .map(|url| crate::mock::WebhookTarget {
                    url,
                    secret: self.webhook_secret.clone().unwrap_or_default(),
                }),
        }
    }
}

/// Errors of the command line are one line of text for the user.
pub async fn run_mock(args: MockArgs) -> Result<(), String> {
    let server = MockServer::start(args.listen, args.config())
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    log::info!(
        "mock Magic Hour API on {} (render time {}s); admin: {}/_mock/requests, {}/_mock/faults",
        server.url(),
        args.render_time,
        server.url(),
        server.url()
    );
    use tokio::signal::unix::{SignalKind, signal};
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    println!("{}", server.url());
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    // Stopping drops the server's state, and with it its temporary folder.
    server.stop().await;
    Ok(())
}
