//! Other users and hostile input, through a real `--allow-other` mount, with a second,
//! unprivileged user made for the test (`useradd`, removed at the end).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::drive::TestDrive;
use mhfs::mock::MockConfig;

/// A throw-away user: made with `useradd`, removed (with its home) when dropped.
struct User {
    name: String,
    uid: u32,
}

impl User {
    fn new() -> User {
        let name = format!("mhfst{}", std::process::id() % 1_000_000);
        let _ = Command::new("userdel").arg("-r").arg(&name).output();
        let made = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", &name])
            .output()
            .unwrap();
        assert!(made.status.success(), "useradd: {made:?}");
        let id = Command::new("id").args(["-u", &name]).output().unwrap();
        let uid = String::from_utf8_lossy(&id.stdout).trim().parse().unwrap();
        User { name, uid }
    }

    /// Runs `cmd` as this user, in `dir`.
    fn sh(&self, dir: &Path, cmd: &str) -> Output {
        Command::new("runuser")
            .args(["-u", &self.name, "--", "sh", "-c", cmd])
            .current_dir(dir)
            .output()
            .unwrap()
    }

    fn ok(&self, d: &TestDrive, cmd: &str) -> String {
        let out = self.sh(&d.mnt(), cmd);
        assert!(
            out.status.success(),
            "`{cmd}` as {} failed: {}\n{}",
            self.name,
            String::from_utf8_lossy(&out.stderr),
            d.log()
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn fails(&self, d: &TestDrive, cmd: &str) -> String {
        let out = self.sh(&d.mnt(), cmd);
        assert!(
            !out.status.success(),
            "`{cmd}` as {} should have failed",
            self.name
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg("-r").arg(&self.name).output();
    }
}

/// A shared mount (`--allow-other` and `extra`) that the test user can reach.
fn shared(extra: &[&str]) -> Option<TestDrive> {
    let mut args = vec!["--allow-other"];
    args.extend_from_slice(extra);
    let d = TestDrive::with_args(
        MockConfig {
            render_time: Duration::ZERO,
            ..MockConfig::default()
        },
        &args,
    )?;
    // The test's temp folder is 0700: let the other user reach the mount point (not the state
    // directory, which mhfs keeps 0700 itself).
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    Some(d)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_reference_the_writer_cannot_read_fails_the_job_and_uploads_nothing() {
    let Some(d) = shared(&["--allow-other-submit"]) else {
        return;
    };
    let user = User::new();
    // A world-readable picture in a folder only root may enter.
    let private = d.outside().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let pic = common::sample(&private, "secret", mhfs::api::catalog::Media::Image);
    std::fs::set_permissions(&pic, std::fs::Permissions::from_mode(0o644)).unwrap();
    let body = format!(
        r#"{{"assets": {{"image_file_path": "{}"}}}}"#,
        pic.display()
    );
    user.ok(
        &d,
        &format!("printf '%s' '{body}' > inbox/ai-image-upscaler/steal.json"),
    );
    d.wait_status("steal", &["error"]);
    let error = d.ok("cat jobs/steal/error");
    assert!(
        error.starts_with("unreadable_reference") && error.contains("permission denied"),
        "{error}"
    );
    assert_eq!(d.count("upload-urls"), 0, "nothing uploaded");
    assert_eq!(d.count("create"), 0, "nothing created");
    // The job is the writer's; its kept input readable by them alone.
    let job = std::fs::metadata(d.path("jobs/steal")).unwrap();
    assert_eq!(job.uid(), user.uid);
    assert_eq!(mode(&d.path("jobs/steal/steal.json")), 0o400);
    // The same reference written by root (who may read it) is taken.
    d.ok(&format!(
        "printf '%s' '{body}' > inbox/ai-image-upscaler/mine.json"
    ));
    d.wait_status("mine", &["complete"]);
}

#[test]
fn another_users_job_cannot_be_removed_renamed_or_trashed() {
    let Some(d) = shared(&["--allow-other-submit"]) else {
        return;
    };
    let user = User::new();
    d.ok("echo 'a lighthouse' > inbox/ai-image-generator/roots.txt");
    d.wait_status("roots", &["complete"]);
    assert_eq!(std::fs::metadata(d.path("jobs/roots")).unwrap().uid(), 0);
    assert_eq!(mode(&d.path("jobs")), 0o1777);
    // Others may not read it (0770, the mount owner's group), remove, rename or trash it.
    user.fails(&d, "cat jobs/roots/status");
    // Nor list it or look into it, even right after its owner did: on a shared mount the
    // kernel keeps no job entry or listing that would skip the check.
    d.ok("ls jobs/roots && stat jobs/roots/status");
    user.fails(&d, "ls jobs/roots");
    user.fails(&d, "stat jobs/roots/status");
    let err = user.fails(&d, "rm -rf jobs/roots");
    assert!(
        err.contains("Permission denied") || err.contains("Operation not permitted"),
        "{err}"
    );
    let err = user.fails(&d, "mv jobs/roots jobs/mine");
    assert!(err.contains("Operation not permitted"), "{err}");
    user.fails(&d, "mkdir .Trash-0");
    user.ok(&d, &format!("mkdir -p .Trash-{}/files", user.uid));
    let err = user.fails(&d, &format!("mv jobs/roots .Trash-{}/files/x", user.uid));
    assert!(err.contains("Operation not permitted"), "{err}");
    assert_eq!(d.status("roots").as_deref(), Some("complete"));
    assert_eq!(d.count("delete"), 0);
    assert!(d.log().contains("may not"), "a log line says why");
    // Their own job is theirs to read and remove.
    user.ok(&d, "echo 'a boat' > inbox/ai-image-generator/theirs.txt");
    d.wait_status("theirs", &["complete"]);
    assert_eq!(
        std::fs::metadata(d.path("jobs/theirs")).unwrap().uid(),
        user.uid
    );
    assert_eq!(user.ok(&d, "cat jobs/theirs/status"), "complete\n");
    user.ok(&d, "rm -r jobs/theirs");
    assert_eq!(d.count("delete"), 1);
    // The mount's owner (root here) may remove anyone's.
    d.ok("rm -r jobs/roots");
}

#[test]
fn the_activity_log_and_the_balance_are_the_owners_on_a_shared_mount() {
    let Some(d) = shared(&["--allow-other-submit"]) else {
        return;
    };
    let user = User::new();
    d.ok("echo 'a lighthouse' > inbox/ai-image-generator/roots.txt");
    d.wait_status("roots", &["complete"]);
    // They name every user's submissions and the account's balance: the owner's alone.
    assert_eq!(mode(&d.path("activity.log")), 0o400);
    assert_eq!(mode(&d.path("credits")), 0o400);
    user.fails(&d, "cat activity.log");
    user.fails(&d, "cat credits");
    assert!(d.ok("cat activity.log").contains("roots"));
}

#[test]
fn other_users_may_not_submit_without_allow_other_submit() {
    let Some(d) = shared(&[]) else { return };
    let user = User::new();
    assert_eq!(mode(&d.path("inbox/ai-image-generator")), 0o755);
    let err = user.fails(&d, "echo 'free art' > inbox/ai-image-generator/x.txt");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(d.log().contains("--allow-other-submit"), "{}", d.log());
    // They can still look.
    user.ok(&d, "cat README.txt >/dev/null && ls inbox jobs");
    assert_eq!(d.count("create"), 0);
}

#[test]
fn the_kernel_enforces_the_same_modes_with_default_permissions() {
    let Some(d) = shared(&["--default-permissions"]) else {
        return;
    };
    let user = User::new();
    d.ok("echo 'a lighthouse' > inbox/ai-image-generator/roots.txt");
    d.wait_status("roots", &["complete"]);
    user.fails(&d, "echo x > inbox/ai-image-generator/x.txt");
    user.fails(&d, "cat jobs/roots/status");
    let err = user.fails(&d, "mv jobs/roots jobs/mine");
    assert!(err.contains("Operation not permitted"), "{err}");
    assert_eq!(d.status("roots").as_deref(), Some("complete"));
}

#[test]
fn the_state_directory_is_private() {
    let Some(d) = shared(&["--allow-other-submit"]) else {
        return;
    };
    let user = User::new();
    user.ok(&d, "echo 'a boat' > inbox/ai-image-generator/b.txt");
    d.wait_status("b", &["complete"]);
    let state = d.state();
    assert_eq!(mode(&state), 0o700);
    let out = user.sh(&d.outside(), &format!("ls {}", state.display()));
    assert!(!out.status.success());
    // Nothing in it is readable by group or others.
    fn walk(p: &Path, loose: &mut Vec<String>) {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.permissions().mode() & 0o077 != 0
                && !e.file_name().to_string_lossy().ends_with(".log")
            {
                loose.push(format!(
                    "{} {:o}",
                    e.path().display(),
                    m.permissions().mode()
                ));
            }
            if m.is_dir() {
                walk(&e.path(), loose);
            }
        }
    }
    let mut loose = Vec::new();
    walk(&state, &mut loose);
    assert!(loose.is_empty(), "{loose:#?}");
}

#[test]
fn a_loose_state_directory_gets_one_warning() {
    let Some(mut d) = shared(&[]) else { return };
    d.unmount();
    std::fs::set_permissions(d.state(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d.mount();
    let warnings = d
        .log()
        .lines()
        .filter(|l| l.contains("has mode 755"))
        .count();
    assert_eq!(warnings, 1, "{}", d.log());
}

#[test]
fn control_characters_in_names_are_einval() {
    let Some(d) = TestDrive::start() else { return };
    let err = d.fails("touch \"$(printf 'inbox/ai-image-generator/a\\nb.txt')\"");
    assert!(err.contains("Invalid argument"), "{err}");
    let err = d.fails("mkdir \"$(printf 'inbox/face-swap/a\\tb')\"");
    assert!(err.contains("Invalid argument"), "{err}");
    d.ok("touch inbox/ai-image-generator/.ok~");
    let err = d
        .fails("mv inbox/ai-image-generator/.ok~ \"$(printf 'inbox/ai-image-generator/.x\\033')\"");
    // mv reads EINVAL from rename as "a subdirectory of itself".
    assert!(
        err.contains("Invalid argument") || err.contains("subdirectory of itself"),
        "{err}"
    );
    assert!(d.log().contains("control characters"), "{}", d.log());
    let err = d.fails("touch \"$(printf 'inbox/ai-image-generator/\\377.txt')\"");
    assert!(err.contains("Invalid argument"), "{err}");
    assert!(d.log().contains("must be UTF-8"), "{}", d.log());
}

#[test]
fn links_symlinks_and_device_files_are_refused_with_a_log_line() {
    let Some(d) = TestDrive::start() else { return };
    d.ok("touch inbox/ai-image-generator/.a");
    let err = d.fails("ln inbox/ai-image-generator/.a inbox/ai-image-generator/.b");
    assert!(err.contains("Operation not permitted"), "{err}");
    let err = d.fails("ln -s /etc/passwd inbox/ai-image-generator/.c");
    assert!(err.contains("Operation not permitted"), "{err}");
    let err = d.fails("mkfifo inbox/ai-image-generator/.d");
    assert!(err.contains("Operation not permitted"), "{err}");
    let log = d.log();
    for what in ["hard links", "symbolic links", "special files"] {
        assert!(log.contains(what), "{what}: {log}");
    }
}

#[test]
fn chmod_chown_and_touch_of_job_files_are_eperm() {
    let Some(d) = TestDrive::start() else { return };
    d.ok("echo 'x' > inbox/ai-image-generator/x.txt");
    d.wait_status("x", &["complete"]);
    for cmd in [
        "chmod 666 jobs/x/status",
        "chown 1:1 jobs/x/status",
        "touch -c jobs/x/status",
        "chmod 777 jobs/x",
    ] {
        let err = d.fails(cmd);
        assert!(err.contains("Operation not permitted"), "{cmd}: {err}");
    }
    assert!(d.log().contains("keep their mode"), "{}", d.log());
}

#[test]
fn an_unlinked_open_scratch_file_stays_usable() {
    let Some(d) = TestDrive::start() else { return };
    // Python: open, unlink, write, read back, fstat, ftruncate.
    let script = r#"
import os
p = 'inbox/ai-image-generator/.scratch'
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
os.write(fd, b'hello ')
os.unlink(p)
os.write(fd, b'world')
assert os.pread(fd, 11, 0) == b'hello world', os.pread(fd, 11, 0)
assert os.fstat(fd).st_size == 11
os.ftruncate(fd, 5)
assert os.fstat(fd).st_size == 5
os.close(fd)
assert not os.path.exists(p)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(d.mnt())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn chmod_of_a_scratch_file_updates_its_ctime() {
    let Some(d) = TestDrive::start() else { return };
    let p = d.path("inbox/ai-image-generator/.c");
    std::fs::write(&p, b"x").unwrap();
    let before = std::fs::metadata(&p).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let after = std::fs::metadata(&p).unwrap();
    assert_eq!(after.permissions().mode() & 0o777, 0o600);
    assert!(after.ctime() > before.ctime(), "ctime moves on chmod");
    assert_eq!(after.mtime(), before.mtime(), "mtime does not");
}

#[test]
fn hidden_folders_of_the_inbox_are_scratch_areas() {
    let Some(d) = TestDrive::start() else { return };
    d.ok("mkdir -p inbox/ai-image-upscaler/.posix/a/b");
    d.ok("echo x > inbox/ai-image-upscaler/.posix/a/b/any-name.bin");
    d.ok("echo y > inbox/ai-image-upscaler/.posix/photo.png");
    std::thread::sleep(Duration::from_millis(800));
    assert!(d.jobs().is_empty(), "nothing submitted: {:?}", d.jobs());
    assert_eq!(
        d.ok("cat inbox/ai-image-upscaler/.posix/a/b/any-name.bin"),
        "x\n"
    );
    d.ok("rm -r inbox/ai-image-upscaler/.posix");
}

#[test]
fn statfs_reports_the_staging_disk() {
    let Some(d) = TestDrive::start() else { return };
    let out = d.ok("stat -f -c '%b %a %S' .");
    let n: Vec<u64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert!(n[0] > 0 && n[1] > 0 && n[2] > 0, "{out}");
}
