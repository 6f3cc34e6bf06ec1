//! One drive for a team: the mount re-exported over SMB by Debian's Samba (smbd on a loopback
//! port of its own, a local user made for the test), driven with smbclient.

mod common;

use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::drive::TestDrive;
use mhfs::mock::MockConfig;

/// Whether a program is installed (scripts/test-deps.sh installs samba and smbclient; CI must
/// have them).
fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: {program} is required (scripts/test-deps.sh)"
        );
        eprintln!("skipped: {program} is not installed (scripts/test-deps.sh)");
    }
    found
}

/// A local user for the SMB login, removed at the end.
struct LocalUser {
    name: String,
    uid: u32,
}

impl LocalUser {
    fn create() -> LocalUser {
        let name = format!("mhfs-smb{}", std::process::id() % 100_000);
        let _ = Command::new("userdel")
            .arg(&name)
            .stderr(Stdio::null())
            .status();
        let ok = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin"])
            .arg(&name)
            .status()
            .unwrap();
        assert!(ok.success(), "useradd {name}");
        let id = Command::new("id").arg("-u").arg(&name).output().unwrap();
        let uid = String::from_utf8_lossy(&id.stdout).trim().parse().unwrap();
        LocalUser { name, uid }
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// smbd serving the mount as share `mhfs` on 127.0.0.1:`port`, all its state under `dir`.
struct Smbd {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Smbd {
    fn start(dir: &Path, share: &Path, user: &LocalUser) -> Smbd {
        for sub in ["lock", "state", "cache", "pid", "private", "log"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        // A port nobody listens on (the kernel's pick, released at once).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display();
        let conf = format!(
            "[global]
  server role = standalone server
  smb ports = {port}
  bind interfaces only = yes
  interfaces = lo
  disable netbios = yes
  lock directory = {d}/lock
  state directory = {d}/state
  cache directory = {d}/cache
  pid directory = {d}/pid
  private dir = {d}/private
  passdb backend = tdbsam:{d}/private/passdb.tdb
  log file = {d}/log/smbd.log
  log level = 1
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  vfs objects =
[mhfs]
  path = {share}
  read only = no
  valid users = {user}
  vfs objects =
",
            share = share.display(),
            user = user.name,
        );
        std::fs::write(dir.join("smb.conf"), conf).unwrap();
        let mut passwd = Command::new("smbpasswd")
            .arg("-c")
            .arg(dir.join("smb.conf"))
            .args(["-a", "-s"])
            .arg(&user.name)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = passwd.stdin.take().unwrap();
            stdin.write_all(b"secret-pass\nsecret-pass\n").unwrap();
        }
        assert!(passwd.wait().unwrap().success(), "smbpasswd -a");
        // In a session of its own: smbd signals its whole process group when it stops.
        let child = Command::new("smbd")
            .args(["--foreground", "--no-process-group", "-s"])
            .arg(dir.join("smb.conf"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("smbd.out")).unwrap())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let smbd = Smbd {
            child,
            dir: dir.to_path_buf(),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "smbd did not listen on {port}:\n{}",
                std::fs::read_to_string(dir.join("smbd.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        smbd
    }

    /// smbclient's commands `cmds` on the share, run in the local folder `cwd`.
    fn client(&self, user: &LocalUser, cwd: &Path, cmds: &str) -> Output {
        Command::new("smbclient")
            .arg("//127.0.0.1/mhfs")
            .args(["-p", &self.port.to_string()])
            .args(["-U", &format!("{}%secret-pass", user.name)])
            .args(["-c", cmds])
            .current_dir(cwd)
            .output()
            .unwrap()
    }

    fn ok(&self, user: &LocalUser, cwd: &Path, cmds: &str) -> String {
        let out = self.client(user, cwd, cmds);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && !text.contains("NT_STATUS_"),
            "smbclient -c '{cmds}': {text}\n{}",
            std::fs::read_to_string(self.dir.join("log/smbd.log")).unwrap_or_default()
        );
        text
    }
}

impl Drop for Smbd {
    fn drop(&mut self) {
        // SAFETY: a plain kill(2) of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A photo put over SMB submits exactly once (Samba: create O_EXCL, chmod, write, utimens, close),
/// its output reads back over SMB byte for byte, Mac and Windows scratch files make no job, the
/// FUSE requests carry the SMB user's own uid, and `deltree` of a job is refused and keeps it.
#[test]
fn a_photo_put_over_smb_submits_once_and_its_output_reads_back() {
    if !have("smbd") || !have("smbclient") || !common::drive::fuse_available() {
        return;
    }
    // smbd does file operations as the logged-in user: without allow_other, FUSE refuses them.
    let Some(d) = TestDrive::with_args(
        MockConfig {
            render_time: Duration::ZERO,
            ..MockConfig::default()
        },
        &["--allow-other", "--allow-other-submit"],
    ) else {
        return;
    };
    let user = LocalUser::create();
    let smb_dir = d.dir.path().join("smb");
    let smbd = Smbd::start(&smb_dir, &d.mnt(), &user);
    let local = d.outside();
    let photo = common::sample(&local, "photo", mhfs::api::catalog::Media::Image);
    assert!(photo.ends_with("photo.png"));

    // Free space is the state directory's (clients check it before a copy; zero reads as full).
    let du = smbd.ok(&user, &local, "du");
    let available: u64 = du
        .split(" blocks available")
        .next()
        .and_then(|s| s.rsplit(". ").next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no free space in {du}"));
    assert!(available > 0, "{du}");

    smbd.ok(&user, &local, "cd inbox/ai-image-upscaler; put photo.png");
    assert_eq!(
        d.wait_status("photo", &["complete"]),
        "complete",
        "{}",
        d.log()
    );
    assert_eq!(d.count("create"), 1, "{}", d.log());

    smbd.ok(&user, &local, "get jobs/photo/output.png out.png");
    assert_eq!(
        std::fs::read(local.join("out.png")).unwrap(),
        std::fs::read(d.path("jobs/photo/output.png")).unwrap()
    );

    // What Mac and Windows clients leave behind stays in the inbox and makes no job.
    std::fs::write(local.join("._photo.png"), b"\x00\x05\x16\x07AppleDouble").unwrap();
    std::fs::write(local.join(".DS_Store"), b"\x00\x00\x00\x01Bud1").unwrap();
    smbd.ok(
        &user,
        &local,
        "cd inbox/ai-image-upscaler; put ._photo.png; put .DS_Store; put photo.png Thumbs.db; put photo.png desktop.ini",
    );
    std::thread::sleep(Duration::from_secs_f64(d.settle * 4.0));
    assert_eq!(d.count("create"), 1, "{}", d.log());
    assert_eq!(d.jobs(), ["photo"]);
    for n in ["._photo.png", ".DS_Store", "Thumbs.db", "desktop.ini"] {
        let path = d.path(&format!("inbox/ai-image-upscaler/{n}"));
        assert!(path.exists(), "{n} stays in the inbox as a scratch file");
        // The staged copy belongs to whoever created it through FUSE: the SMB user's own uid
        // (smbd switches to the logged-in user for file operations).
        let staged = d.state().join(format!("inbox/ai-image-upscaler/{n}"));
        assert_eq!(std::fs::metadata(&staged).unwrap().uid(), user.uid, "{n}");
    }

    // The job is the SMB user's (its submitter's, docs/SEMANTICS.md "Security"), so they may
    // delete it over SMB: one DELETE, and the job is gone.
    assert_eq!(
        std::fs::metadata(d.path("jobs/photo")).unwrap().uid(),
        user.uid,
        "the job is its submitter's"
    );
    let out = smbd.client(&user, &local, "deltree jobs/photo");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!said.contains("NT_STATUS_"), "{said}");
    assert_eq!(d.count("delete"), 1, "{said}");
    assert!(!d.path("jobs/photo").exists());
}
