//! mhfs as a service: systemd's readiness protocol (`Type=notify`) and the mount(8) helper
//! `contrib/mount.mhfs` that /etc/fstab lines go through.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Spawns `mhfs mount` on the embedded mock with `NOTIFY_SOCKET` set to `notify`.
fn spawn_notified(dir: &Path, notify: &str) -> std::process::Child {
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    Command::new(env!("CARGO_BIN_EXE_mhfs"))
        .arg("mount")
        .arg(&mnt)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--mock-render-time", "0"])
        .env_remove("MAGIC_HOUR_API_KEY")
        .env("NOTIFY_SOCKET", notify)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("mhfs.log")).unwrap())
        .spawn()
        .unwrap()
}

fn receive(sock: &UnixDatagram, dir: &Path) -> String {
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).unwrap_or_else(|e| {
        panic!(
            "no notification: {e}\n{}",
            std::fs::read_to_string(dir.join("mhfs.log")).unwrap_or_default()
        )
    });
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "mhfs did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// READY=1 arrives once the mount answers, STOPPING=1 at SIGTERM; on a socket path and on an
/// abstract name (`@...`), as systemd may pass either.
#[test]
fn systemd_hears_ready_once_the_mount_answers_and_stopping_at_sigterm() {
    if !common::drive::fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let abstract_name = format!("mhfs-test-notify-{}", std::process::id());
    let sockets = [
        (
            UnixDatagram::bind(&path).unwrap(),
            path.to_string_lossy().into_owned(),
        ),
        (
            UnixDatagram::bind_addr(
                &SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap(),
            )
            .unwrap(),
            format!("@{abstract_name}"),
        ),
    ];
    for (i, (sock, name)) in sockets.iter().enumerate() {
        let run = dir.path().join(format!("run{i}"));
        std::fs::create_dir_all(&run).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut child = spawn_notified(&run, name);
        let ready = receive(sock, &run);
        assert_eq!(ready, "READY=1", "{name}");
        // Ready means the mount answers now, not a moment later.
        assert!(
            run.join("mnt/README.txt").exists(),
            "{name}: READY before the mount answers"
        );
        // SAFETY: a plain kill(2) of our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert_eq!(receive(sock, &run), "STOPPING=1", "{name}");
        assert!(wait_exit(&mut child).success(), "{name}: unclean exit");
        assert!(
            !run.join("mnt/README.txt").exists(),
            "{name}: still mounted"
        );
    }
}

/// The fstab path: mount(8) runs `mount.mhfs <source> <mountpoint> -o <options>`; the helper
/// maps mhfs's options to flags, ignores generic ones, returns once mounted, and `umount`
/// stops the daemon it started.
#[test]
fn the_mount_helper_takes_fstab_options_and_umount_stops_it() {
    if !common::drive::fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&mnt).unwrap();
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/mount.mhfs");
    let opts = format!(
        "defaults,_netdev,nofail,rw,x-systemd.automount,state_dir={},mock_render_time=0,poll_interval=0.05,settle=0.3,allow_other",
        state.display()
    );

    // -f (fake) shows the translation and mounts nothing.
    let fake = Command::new(&helper)
        .arg("mhfs#team")
        .arg(&mnt)
        .args(["-f", "-o", &opts])
        .env("MHFS_BIN", env!("CARGO_BIN_EXE_mhfs"))
        .output()
        .unwrap();
    assert!(fake.status.success());
    let shown = String::from_utf8_lossy(&fake.stderr);
    assert!(
        shown.contains(&format!(
            "mount --daemon --state-dir {} --mock-render-time 0 --poll-interval 0.05 --settle 0.3 --allow-other {}",
            state.display(),
            mnt.display()
        )),
        "{shown}"
    );
    assert!(!mnt.join("README.txt").exists());

    // An option mhfs does not know is refused (mount's -s, sloppy, lets it pass).
    let bad = Command::new(&helper)
        .arg("none")
        .arg(&mnt)
        .args(["-o", "colour=blue"])
        .env("MHFS_BIN", env!("CARGO_BIN_EXE_mhfs"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown option colour=blue"));

    let out = Command::new(&helper)
        .arg("none")
        .arg(&mnt)
        .args(["-o", &opts])
        .env("MHFS_BIN", env!("CARGO_BIN_EXE_mhfs"))
        .env_remove("MAGIC_HOUR_API_KEY")
        .output()
        .unwrap();
    let log = || std::fs::read_to_string(state.join("mhfs.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        log()
    );
    // Returned once mounted: the tree answers at once.
    assert!(mnt.join("README.txt").exists(), "{}", log());
    let said = String::from_utf8_lossy(&out.stderr);
    let pid: i32 = said
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {said}"));
    // The options took effect: allow_other is in the mount, and a photo makes a job.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mountinfo
        .lines()
        .find(|l| l.contains(&*mnt.to_string_lossy()))
        .expect("in mountinfo");
    assert!(line.contains("allow_other"), "{line}");
    let photo = common::sample(dir.path(), "photo", mhfs::api::catalog::Media::Image);
    std::fs::copy(&photo, mnt.join("inbox/ai-image-upscaler/photo.png")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(mnt.join("jobs/photo/status"))
        .ok()
        .as_deref()
        != Some("complete\n")
    {
        assert!(Instant::now() < deadline, "job did not complete\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }

    let umount = Command::new("umount").arg(&mnt).status().unwrap();
    assert!(umount.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
    {
        assert!(
            Instant::now() < deadline,
            "mhfs (pid {pid}) still runs after umount\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!mnt.join("README.txt").exists());
    assert!(log().contains("unmounted"), "{}", log());
}
