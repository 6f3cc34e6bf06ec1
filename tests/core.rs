//! The FUSE-free core driven directly, in process: no kernel mount, no root. What needs the
//! kernel (real programs, passthrough, signals) is in the mount_* tests.

use std::sync::Arc;
use std::time::Duration;

use mhfs::api::catalog::tool;
use mhfs::engine::job::{InputFile, JobStatus, Source};
use mhfs::engine::registry::Registry;
use mhfs::fs::core::{Drive, DriveConfig, INBOX, JOBS, Kind, ROOT};

struct Core {
    _dir: tempfile::TempDir,
    registry: Arc<Registry>,
    drive: Arc<Drive>,
}

fn core() -> Core {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let drive = Drive::new(
        registry.clone(),
        DriveConfig {
            defaults: Default::default(),
            settle: Duration::ZERO,
            uid: 1000,
            gid: 1000,
        },
    );
    Core {
        _dir: dir,
        registry,
        drive,
    }
}

impl Core {
    fn tool_dir(&self, slug: &str) -> u64 {
        self.drive.lookup(INBOX, slug).unwrap().ino
    }

    /// Writes a file into a tool's folder and closes it, as `cp` does.
    fn drop_file(&self, slug: &str, name: &str, bytes: &[u8]) {
        let dir = self.tool_dir(slug);
        let (_, opened) = self.drive.create(dir, name, 0o644, true, (0, 0)).unwrap();
        self.drive.write(opened.fh, 0, bytes).unwrap();
        self.drive.release(opened.fh);
    }

    fn names(&self, ino: u64) -> Vec<String> {
        let mut v: Vec<String> = self
            .drive
            .readdir(ino)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        v.sort();
        v
    }

    fn read_all(&self, ino: u64) -> String {
        let opened = self.drive.open(ino, false, false).unwrap();
        let bytes = self.drive.read(opened.fh, 0, 1 << 20).unwrap();
        self.drive.release(opened.fh);
        String::from_utf8(bytes).unwrap()
    }
}

#[test]
fn the_root_holds_readme_inbox_and_jobs() {
    let c = core();
    assert_eq!(
        c.names(ROOT),
        [
            "README.txt",
            "activity.log",
            "credits",
            "inbox",
            "jobs",
            "outputs"
        ]
    );
    let readme = c.drive.lookup(ROOT, "README.txt").unwrap();
    assert!(c.read_all(readme.ino).contains("ai-image-upscaler"));
    let tools = c.names(INBOX);
    assert!(tools.contains(&"face-swap".to_string()));
    assert_eq!(tools.len(), mhfs::api::catalog::TOOLS.len());
    assert_eq!(c.drive.getattr(JOBS).unwrap().kind, Kind::Dir);
    // Every file shows the configured owner.
    assert_eq!(c.drive.getattr(JOBS).unwrap().uid, 1000);
}

#[test]
fn rename_noreplace_refuses_an_existing_target() {
    let c = core();
    let dir = c.tool_dir("ai-image-upscaler");
    for name in [".a.tmp", ".b.tmp"] {
        let (_, o) = c.drive.create(dir, name, 0o644, true, (0, 0)).unwrap();
        c.drive.write(o.fh, 0, b"x").unwrap();
        c.drive.release(o.fh);
    }
    let e = c
        .drive
        .rename(dir, ".a.tmp", dir, ".b.tmp", true)
        .unwrap_err();
    assert_eq!(e.errno, libc::EEXIST);
    // Without the flag, the target is replaced, as on any disk.
    c.drive.rename(dir, ".a.tmp", dir, ".b.tmp", false).unwrap();
    assert_eq!(c.names(dir), [".b.tmp"]);
}

#[test]
fn job_files_are_snapshots_sized_exactly() {
    let c = core();
    c.drop_file("ai-image-generator", "cat.txt", b"a cat");
    let id = c.registry.by_name("cat").unwrap();
    let job = c.drive.lookup(JOBS, "cat").unwrap();
    let status = c.drive.lookup(job.ino, "status").unwrap();
    assert_eq!(status.size, "uploading\n".len() as u64);
    // Kept by the kernel: every change is pushed to it, attributes and the folder's listing.
    assert!(status.ttl > Duration::ZERO);
    let pushed = mhfs::fs::core::invalidations(&mhfs::engine::registry::Change::Updated(id));
    assert!(pushed.contains(&mhfs::fs::core::Inval::Inode(status.ino)));
    assert!(pushed.contains(&mhfs::fs::core::Inval::Listing(job.ino)));
    assert!(c.drive.keeps_listing(job.ino));
    assert!(!c.drive.keeps_listing(JOBS));
    let opened = c.drive.open(status.ino, false, false).unwrap();
    assert!(opened.direct_io);
    c.registry.update(id, |j| j.status = JobStatus::Downloading);
    // The open handle keeps its snapshot; a new stat has the new size.
    assert_eq!(
        c.drive.read(opened.fh, 0, 100).unwrap(),
        b"uploading\n".to_vec()
    );
    assert_eq!(
        c.drive.getattr(status.ino).unwrap().size,
        "downloading\n".len() as u64
    );
    c.drive.release(opened.fh);
}

#[test]
fn a_deleted_jobs_entries_are_gone_and_nothing_is_kept_for_them() {
    let c = core();
    c.drop_file("ai-image-generator", "dog.txt", b"a dog");
    let job = c.drive.lookup(JOBS, "dog").unwrap();
    let status = c.drive.lookup(job.ino, "status").unwrap();
    let before = c.drive.inode_count();
    c.registry.remove(c.registry.by_name("dog").unwrap());
    assert_eq!(c.drive.getattr(job.ino).unwrap_err().errno, libc::ENOENT);
    assert_eq!(c.drive.getattr(status.ino).unwrap_err().errno, libc::ENOENT);
    assert!(c.names(JOBS).is_empty());
    assert!(c.drive.inode_count() <= before);
}

#[test]
fn inode_tables_stay_bounded_however_many_files_pass_through() {
    let c = core();
    let dir = c.tool_dir("ai-image-generator");
    for i in 0..300 {
        let name = format!("p{i}.txt");
        let (attr, o) = c.drive.create(dir, &name, 0o644, true, (0, 0)).unwrap();
        c.drive.write(o.fh, 0, b"a prompt").unwrap();
        c.drive.release(o.fh);
        // The kernel drops its reference, as it does once the entry is invalidated.
        c.drive.forget(attr.ino, 1);
        // Scratch files come and go too.
        let (attr, o) = c
            .drive
            .create(dir, ".scratch", 0o644, true, (0, 0))
            .unwrap();
        c.drive.release(o.fh);
        c.drive.unlink(dir, ".scratch").unwrap();
        c.drive.forget(attr.ino, 1);
    }
    assert_eq!(c.registry.len(), 300);
    for name in c.names(JOBS) {
        let job = c.drive.lookup(JOBS, &name).unwrap();
        c.drive.lookup(job.ino, "status").unwrap();
    }
    assert_eq!(c.drive.inode_count(), 0, "jobs cost no inode entries");
}

#[test]
fn a_job_is_shown_with_its_inputs_when_it_fails() {
    let c = core();
    c.drop_file("ai-image-generator", "bad.txt", b"x");
    let id = c.registry.by_name("bad").unwrap();
    let job = c.drive.lookup(JOBS, "bad").unwrap();
    assert_eq!(c.names(job.ino), ["status"]);
    c.registry.update(id, |j| {
        j.fail(
            mhfs::engine::job::Stage::Failed,
            "invalid_request",
            "bad prompt",
        )
    });
    assert_eq!(c.names(job.ino), ["bad.txt", "error", "status"]);
    let error = c.drive.lookup(job.ino, "error").unwrap();
    assert_eq!(c.read_all(error.ino), "invalid_request: bad prompt\n");
    let kept = c.drive.lookup(job.ino, "bad.txt").unwrap();
    assert_eq!(c.read_all(kept.ino), "x");
}

#[test]
fn jobs_made_by_the_registry_appear_at_once() {
    let c = core();
    let t = tool("ai-image-upscaler").unwrap();
    let mut job = c.registry.reserve("x.png", t, Source::File, None);
    assert_eq!(c.names(JOBS), ["x"], "shown before it is durable");
    c.registry.record(&job).unwrap();
    job.inputs.push(InputFile {
        name: "x.png".into(),
        path: "/nonexistent".into(),
        remote: None,
    });
    c.registry.publish(job);
    assert_eq!(c.names(JOBS), ["x"]);
}
