//! Live refresh (docs/LIVE_REFRESH.md): inotify watchers of the mount see the daemon's own
//! changes: a job appearing, its status changing, its outputs landing, and its removal.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::drive::TestDrive;
use mhfs::mock::MockConfig;

/// A watcher in the background, its output in a file.
struct Watcher {
    child: Child,
    out: std::path::PathBuf,
}

impl Watcher {
    fn start(cmd: &mut Command, out: &Path, ready: impl Fn(&str) -> bool) -> Watcher {
        let child = cmd
            .stdout(std::fs::File::create(out).unwrap())
            .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        let w = Watcher {
            child,
            out: out.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready(&w.err()) {
            assert!(Instant::now() < deadline, "watcher not ready: {}", w.err());
            std::thread::sleep(Duration::from_millis(20));
        }
        w
    }

    fn err(&self) -> String {
        std::fs::read_to_string(self.out.with_extension("err")).unwrap_or_default()
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until a line equal to `want` was printed.
    fn wait_for(&self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.lines().iter().any(|l| l == want) {
            assert!(
                Instant::now() < deadline,
                "no `{want}` in:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: {tool} is required (scripts/test-deps.sh)"
        );
        eprintln!("skipped: no {tool} (scripts/test-deps.sh installs it)");
    }
    found
}

/// A drive whose jobs render for a while, so that a watch on the new job folder is in place
/// before its status changes.
fn drive() -> Option<TestDrive> {
    TestDrive::with(MockConfig {
        render_time: Duration::from_millis(1500),
        ..MockConfig::default()
    })
}

#[test]
fn inotifywait_sees_jobs_appear_change_fill_and_go() {
    if !have("inotifywait") {
        return;
    }
    let Some(d) = drive() else { return };
    let jobs = d.path("jobs");
    let w = Watcher::start(
        Command::new("inotifywait")
            .args(["-m", "-r", "--format", "%e %w%f"])
            .arg(&jobs),
        &d.dir.path().join("inotify.txt"),
        |err| err.contains("Watches established"),
    );
    let j = jobs.display();
    d.ok("echo 'a cat' > inbox/ai-image-generator/cat.txt");
    // (a) the job folder appears.
    w.wait_for(&format!("CREATE,ISDIR {j}/cat"));
    // (c) its status changes while it renders, and when it completes.
    d.wait_status("cat", &["complete"]);
    w.wait_for(&format!("MODIFY {j}/cat/status"));
    // (b) its output lands.
    let outputs: Vec<String> = d
        .ok("ls jobs/cat")
        .lines()
        .filter(|n| n.starts_with("output"))
        .map(str::to_string)
        .collect();
    assert!(!outputs.is_empty(), "{}", d.ok("ls -la jobs/cat"));
    for o in &outputs {
        w.wait_for(&format!("CREATE {j}/cat/{o}"));
    }
    // (d) `rm -r` on the mount: one IN_DELETE (the kernel's own; the daemon adds none).
    d.ok("rm -r jobs/cat");
    w.wait_for(&format!("DELETE,ISDIR {j}/cat"));
    std::thread::sleep(Duration::from_millis(500));
    let lines = w.lines();
    eprintln!("inotifywait:\n{}", lines.join("\n"));
    let count = |want: &str| lines.iter().filter(|l| *l == want).count();
    assert_eq!(count(&format!("CREATE,ISDIR {j}/cat")), 1, "{lines:#?}");
    assert_eq!(count(&format!("DELETE,ISDIR {j}/cat")), 1, "{lines:#?}");
    for o in &outputs {
        assert_eq!(count(&format!("CREATE {j}/cat/{o}")), 1, "{lines:#?}");
    }
    // Replays are answered without side effects: nothing the daemon did shows as an error.
    assert!(!d.log().contains("ERROR"), "{}", d.log());
}

#[test]
fn gio_monitor_sees_jobs_appear_change_fill_and_go() {
    if !have("gio") {
        return;
    }
    let Some(d) = drive() else { return };
    let jobs = d.path("jobs");
    // The local monitor (inotify), no D-Bus session or gvfs needed.
    let gio = |dir: &Path, out: &str| {
        let mut cmd = Command::new("gio");
        cmd.env("GIO_USE_VFS", "local").arg("monitor").arg(dir);
        Watcher::start(&mut cmd, &d.dir.path().join(out), |_| true)
    };
    let top = gio(&jobs, "gio-jobs.txt");
    // gio prints nothing when ready: give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let j = jobs.display();
    d.ok("echo 'a cat' > inbox/ai-image-generator/cat.txt");
    top.wait_for(&format!("{j}: {j}/cat: created"));
    let job = gio(&jobs.join("cat"), "gio-cat.txt");
    std::thread::sleep(Duration::from_millis(300));
    d.wait_status("cat", &["complete"]);
    let c = jobs.join("cat");
    let c = c.display();
    job.wait_for(&format!("{c}: {c}/status: changed"));
    let outputs: Vec<String> = d
        .ok("ls jobs/cat")
        .lines()
        .filter(|n| n.starts_with("output"))
        .map(str::to_string)
        .collect();
    for o in &outputs {
        job.wait_for(&format!("{c}: {c}/{o}: created"));
    }
    d.ok("rm -r jobs/cat");
    top.wait_for(&format!("{j}: {j}/cat: deleted"));
    eprintln!("gio monitor jobs:\n{}", top.lines().join("\n"));
    eprintln!("gio monitor jobs/cat:\n{}", job.lines().join("\n"));
}
