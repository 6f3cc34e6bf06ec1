//! A real mount for tests: the `mhfs` binary as a child process (as users run it), against an
//! in-process mock whose request record the tests assert on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mhfs::mock::{MockConfig, MockServer};

pub struct TestDrive {
    pub rt: tokio::runtime::Runtime,
    pub mock: MockServer,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub settle: f64,
    /// `--poll-interval` in seconds.
    pub poll: f64,
    /// More `mhfs mount` options.
    pub extra: Vec<String>,
}

/// `None` (the test is skipped with a message) where FUSE is missing, except under CI.
pub fn fuse_available() -> bool {
    let ok = Path::new("/dev/fuse").exists() && unsafe { libc::geteuid() } == 0;
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: /dev/fuse (and root) are required for mounted tests"
        );
        eprintln!("skipped: no /dev/fuse or not root");
    }
    ok
}

impl TestDrive {
    pub fn start() -> Option<TestDrive> {
        TestDrive::with(MockConfig {
            render_time: Duration::ZERO,
            ..MockConfig::default()
        })
    }

    pub fn with(config: MockConfig) -> Option<TestDrive> {
        TestDrive::with_args(config, &[])
    }

    pub fn with_args(config: MockConfig, extra: &[&str]) -> Option<TestDrive> {
        if !fuse_available() {
            return None;
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mock = rt.block_on(MockServer::start_local(config)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("mnt")).unwrap();
        let mut d = TestDrive {
            rt,
            mock,
            dir,
            child: None,
            settle: 0.3,
            poll: 0.05,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        d.mount();
        Some(d)
    }

    pub fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A scratch folder outside the mount (another file system would be better, but /tmp is
    /// what there is; `mv` tests use it as the "other" side).
    pub fn outside(&self) -> PathBuf {
        let p = self.dir.path().join("outside");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt().join(rel)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Mounts with `mhfs mount` and waits until the tree answers.
    pub fn mount(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(env!("CARGO_BIN_EXE_mhfs"))
            .arg("mount")
            .arg(self.mnt())
            .args(["--api-url", &self.mock.url(), "--state-dir"])
            .arg(self.state())
            .args([
                "--poll-interval",
                &self.poll.to_string(),
                "--settle",
                &self.settle.to_string(),
            ])
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("mhfs.log")).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.path("README.txt").exists() {
            assert!(
                Instant::now() < deadline,
                "mount did not come up:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Unmounts the way a user does (SIGTERM) and checks the process ends cleanly.
    pub fn unmount(&mut self) {
        let pid = self.pid() as i32;
        self.stop_with(|| unsafe {
            libc::kill(pid, libc::SIGTERM);
        });
    }

    /// Stops the mount with `how` (a signal, `umount`, ...) and checks mhfs exits cleanly.
    pub fn stop_with(&mut self, how: impl FnOnce()) {
        how();
        let mut child = self.child.take().expect("mounted");
        let status = wait_timeout(&mut child, Duration::from_secs(15));
        assert!(
            status.is_some_and(|s| s.success()),
            "mhfs did not exit cleanly: {status:?}\n{}",
            self.log()
        );
    }

    /// `kill -9`, then clear the dead mount as a user would.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("mounted");
        child.kill().unwrap();
        child.wait().unwrap();
        let _ = Command::new("umount").arg("-l").arg(self.mnt()).status();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mhfs.log")).unwrap_or_default()
    }

    /// Runs a shell command in the mount.
    pub fn sh(&self, cmd: &str) -> Output {
        Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(self.mnt())
            .output()
            .unwrap()
    }

    /// Runs a shell command that must succeed; returns its stdout.
    pub fn ok(&self, cmd: &str) -> String {
        let out = self.sh(cmd);
        assert!(
            out.status.success(),
            "`{cmd}` failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The errno-ish message of a command that must fail.
    pub fn fails(&self, cmd: &str) -> String {
        let out = self.sh(cmd);
        assert!(!out.status.success(), "`{cmd}` should have failed");
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    pub fn status(&self, job: &str) -> Option<String> {
        std::fs::read_to_string(self.path(&format!("jobs/{job}/status")))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Waits for a job's status to be one of `want`, through the mount.
    pub fn wait_status(&self, job: &str, want: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = self.status(job);
            if let Some(s) = &now
                && want.contains(&s.as_str())
            {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "jobs/{job}: status {now:?}, wanted {want:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    pub fn jobs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path("jobs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }

    pub fn count(&self, op: &str) -> u64 {
        self.mock.count(op)
    }
}

impl Drop for TestDrive {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            if wait_timeout(&mut child, Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
                let _ = Command::new("umount").arg("-l").arg(self.mnt()).status();
            }
        }
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Peak resident memory of a process, in bytes (VmHWM).
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}
