//! One drive for a team over NFS: the mount re-exported by nfs-ganesha (FSAL VFS, NFSv4 only, on
//! a loopback port of its own), driven with libnfs's userspace client (`nfs-cp`, `nfs-ls`, and
//! tests/nfs/nfs-as.py for a given user and for `rm -r`): no kernel NFS client or server needed.

mod common;

use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::drive::TestDrive;
use mhfs::mock::MockConfig;

/// Skips the test with `why`, except under CI, which must run it (scripts/test-deps.sh).
fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI: {why} (scripts/test-deps.sh)"
    );
    eprintln!("skipped: {why} (scripts/test-deps.sh)");
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// ganesha.nfsd in the foreground, exporting `share` as `/mhfs` on 127.0.0.1:`port`, its
/// configuration, log and recovery state under `dir`. Stopped (its process group) on drop.
struct Ganesha {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Ganesha {
    fn start(dir: &Path, share: &Path) -> Result<Ganesha, String> {
        std::fs::create_dir_all(dir.join("recovery")).unwrap();
        // A port nobody listens on (the kernel's pick, released at once).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = format!(
            "NFS_CORE_PARAM {{
  Protocols = 4;
  NFS_Port = {port};
  Bind_addr = 127.0.0.1;
  Enable_NLM = false;
  Enable_RQUOTA = false;
}}
# ganesha keeps a file's descriptor open after the client's CLOSE (its fd cache), and the drive
# submits an inbox file when its last writer closes: without this the photo waits for the cache
# reaper, which by default leaves descriptors alone below half the system's limit.
MDCACHE {{
  FD_LWMark_Percent = 0;
  LRU_Run_Interval = 1;
}}
NFSv4 {{
  Graceless = true;
  RecoveryRoot = {d}/recovery;
}}
EXPORT {{
  Export_Id = 1;
  Path = {share};
  Pseudo = /mhfs;
  Access_Type = RW;
  Squash = No_Root_Squash;
  SecType = sys;
  Protocols = 4;
  Transports = TCP;
  FSAL {{ Name = VFS; }}
}}
",
            d = dir.display(),
            share = share.display(),
        );
        std::fs::write(dir.join("ganesha.conf"), conf).unwrap();
        // In a process group of its own, so that stopping it reaches all of it.
        let child = Command::new("ganesha.nfsd")
            .arg("-F")
            .arg("-f")
            .arg(dir.join("ganesha.conf"))
            .arg("-L")
            .arg(dir.join("ganesha.log"))
            .arg("-p")
            .arg(dir.join("ganesha.pid"))
            .args(["-N", "NIV_INFO"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("ganesha.out")).unwrap())
            .stderr(std::fs::File::create(dir.join("ganesha.err")).unwrap())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("ganesha.nfsd: {e}"))?;
        let mut g = Ganesha {
            child,
            dir: dir.to_path_buf(),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = g.child.try_wait() {
                return Err(format!("ganesha.nfsd exited ({status}):\n{}", g.log()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "ganesha.nfsd did not listen on {port}:\n{}",
                    g.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(g)
    }

    fn log(&self) -> String {
        ["ganesha.log", "ganesha.out", "ganesha.err"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn url(&self, rel: &str) -> String {
        format!("nfs://127.0.0.1/mhfs/{rel}?nfsport={}&version=4", self.port)
    }

    /// A libnfs tool with `args` (URLs made with `url`), run in `cwd`; must succeed.
    fn ok(&self, cwd: &Path, tool: &str, args: &[&str]) -> Output {
        let out = Command::new(tool)
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        out
    }

    /// tests/nfs/nfs-as.py as user `uid` (AUTH_SYS `uid`:`uid`; ganesha does the file operations
    /// with those credentials, so FUSE sees that user), with `args`, run in `cwd`.
    fn as_user(&self, uid: u32, cwd: &Path, args: &[&str]) -> Output {
        Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nfs/nfs-as.py"))
            .arg(uid.to_string())
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap()
    }
}

impl Drop for Ganesha {
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: kill(2) of the process group of our own child (its own group, made at spawn).
        unsafe { libc::kill(-group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                // SAFETY: as above.
                unsafe { libc::kill(-group, libc::SIGKILL) };
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A drive on the mock (jobs render at once) re-exported by its own ganesha; `None` (the test
/// skipped, or failed under CI) where FUSE, ganesha, libnfs-utils or python3 is missing.
fn drive_over_nfs() -> Option<(TestDrive, Ganesha)> {
    if !common::drive::fuse_available() {
        return None;
    }
    for program in ["ganesha.nfsd", "nfs-cp", "nfs-ls", "python3"] {
        if !have(program) {
            skip(&format!("{program} is not installed"));
            return None;
        }
    }
    // ganesha does file operations with the client's credentials: allow_other, as deployed.
    let d = TestDrive::with_args(
        MockConfig {
            render_time: Duration::ZERO,
            ..MockConfig::default()
        },
        &["--allow-other", "--allow-other-submit"],
    )?;
    match Ganesha::start(&d.dir.path().join("ganesha"), &d.mnt()) {
        Ok(nfs) => Some((d, nfs)),
        Err(why) => {
            skip(&format!("ganesha cannot start: {why}"));
            None
        }
    }
}

/// A photo copied in over NFS with libnfs's `nfs-cp` submits exactly once: ganesha creates it
/// with EXCLUSIVE4 and stores the create verifier in the file's atime and mtime, which the
/// inbox keeps apart and reports back. Its output reads back over NFS byte for byte, and
/// `nfs-ls` lists `jobs/`. (Deleting a job over NFS: the next test.)
#[test]
fn a_photo_copied_in_over_nfs_submits_once_and_its_output_reads_back() {
    let Some((d, nfs)) = drive_over_nfs() else {
        return;
    };
    let local = d.outside();
    let photo = common::sample(&local, "photo", mhfs::api::catalog::Media::Image);
    assert!(photo.ends_with("photo.png"));

    nfs.ok(
        &local,
        "nfs-cp",
        &["photo.png", &nfs.url("inbox/ai-image-upscaler/photo.png")],
    );
    assert_eq!(
        d.wait_status("photo", &["complete"]),
        "complete",
        "{}\n{}",
        d.log(),
        nfs.log()
    );
    assert_eq!(d.count("create"), 1, "{}", d.log());
    // The mock decodes the input to upscale it: the job completes only with the whole photo.
    // And ganesha read its create verifier back from the staged file's atime and mtime at the
    // first try (logged at INFO when it had to retry).
    assert!(
        !nfs.log().contains("Verifier was not stored correctly"),
        "{}",
        nfs.log()
    );

    nfs.ok(
        &local,
        "nfs-cp",
        &[&nfs.url("jobs/photo/output.png"), "out.png"],
    );
    assert_eq!(
        std::fs::read(local.join("out.png")).unwrap(),
        std::fs::read(d.path("jobs/photo/output.png")).unwrap()
    );

    let listed = nfs.ok(&local, "nfs-ls", &[&nfs.url("jobs")]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.ends_with(" photo") || l == "photo"),
        "nfs-ls jobs/: {listed}"
    );
    assert_eq!(d.count("create"), 1, "{}", d.log());
    drop(nfs);
}

/// A job submitted over NFS is its submitter's: another NFS user's `rm -r` of it is refused and
/// sends nothing, and the submitter's own `rm -r` (tests/nfs/nfs-as.py: libnfs's REMOVE and
/// RMDIR) sends one DELETE and the folder is gone, locally and over NFS.
#[test]
fn a_job_is_deleted_over_nfs_by_its_submitter_alone() {
    let Some((d, nfs)) = drive_over_nfs() else {
        return;
    };
    let local = d.outside();
    common::sample(&local, "photo", mhfs::api::catalog::Media::Image);
    // Two users with no account here: NFS's AUTH_SYS carries bare numbers.
    let (alice, bob) = (61_001, 61_002);

    let put = nfs.as_user(
        alice,
        &local,
        &[
            "put",
            "photo.png",
            &nfs.url("inbox/ai-image-upscaler/photo.png"),
        ],
    );
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    assert_eq!(
        d.wait_status("photo", &["complete"]),
        "complete",
        "{}",
        d.log()
    );
    assert_eq!(
        std::fs::metadata(d.path("jobs/photo")).unwrap().uid(),
        alice,
        "the job is its submitter's\n{}",
        d.log()
    );

    let refused = nfs.as_user(bob, &local, &["rm", &nfs.url("jobs/photo")]);
    // jobs/ is sticky and the folder alice's: the REMOVE is refused with EPERM.
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("NFS4ERR_PERM"),
        "bob may not remove alice's job: {said}"
    );
    assert_eq!(d.count("delete"), 0, "{}", d.log());
    assert!(d.path("jobs/photo/output.png").exists());

    let removed = nfs.as_user(alice, &local, &["rm", &nfs.url("jobs/photo")]);
    assert!(
        removed.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&removed.stderr),
        d.log(),
        nfs.log()
    );
    assert_eq!(d.count("delete"), 1, "{}", d.log());
    assert_eq!(d.count("create"), 1, "{}", d.log());
    assert!(!d.path("jobs/photo").exists());
    let listed = nfs.ok(&local, "nfs-ls", &[&nfs.url("jobs")]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        !listed
            .lines()
            .any(|l| l.ends_with(" photo") || l == "photo"),
        "nfs-ls jobs/: {listed}"
    );
    drop(nfs);
}
