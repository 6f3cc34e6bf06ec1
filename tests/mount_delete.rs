//! Deleting without losing paid work, and the desktop trash (docs/SEMANTICS.md, "Removing jobs"
//! and "The trash"), on a real mount with real programs (`mv`, `rm`, `gio trash`), asserting on
//! the mock's own record of the requests it received.

mod common;

use std::time::{Duration, Instant};

use common::drive::TestDrive;
use mhfs::api::catalog::Media;
use mhfs::mock::{Fault, Faults, MockConfig, Op, Rule};

fn drop_photo(d: &TestDrive, tool: &str, stem: &str) {
    let photo = common::sample(&d.outside(), stem, Media::Image);
    d.ok(&format!("cp {} inbox/{tool}/", photo.display()));
}

/// A drive whose jobs render for `secs` seconds.
fn slow(secs: u64) -> Option<TestDrive> {
    TestDrive::with(MockConfig {
        render_time: Duration::from_secs(secs),
        ..MockConfig::default()
    })
}

/// `gio` with its own home trash (never the machine's) and, for `--restore`, `--list` and
/// `--empty` (which go through gvfs's trash backend), its own session bus.
fn gio(d: &TestDrive, args: &str) -> String {
    let home = d.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // gio's output goes to a file, and nothing of the session keeps the test's pipe open: a
    // gvfs daemon outliving the session must not hold up the test (and none waits forever).
    let out = d.dir.path().join("gio.out");
    d.ok(&format!(
        "export HOME={h} XDG_DATA_HOME={h}; timeout 60 dbus-run-session -- sh -c 'gio trash {args} >{o}; sleep 1' </dev/null >/dev/null 2>&1",
        h = home.display(),
        o = out.display()
    ));
    std::fs::read_to_string(&out).unwrap_or_default()
}

/// Held for a test's life by every test that uses a trash: `gio trash --empty` empties the
/// trash of every mount gvfs sees, other tests' drives included.
fn trash_lock() -> std::fs::File {
    let f = std::fs::File::create(std::env::temp_dir().join("mhfs-trash-tests.lock")).unwrap();
    f.lock().unwrap();
    f
}

fn wait_count(d: &TestDrive, op: &str, n: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while d.count(op) < n {
        assert!(
            Instant::now() < deadline,
            "{} {op} requests, wanted {n}\n{}",
            d.count(op),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn mv_out_of_an_unfinished_job_fails_and_deletes_nothing() {
    let Some(d) = slow(30) else { return };
    drop_photo(&d, "photo-colorizer", "busy");
    d.wait_status("busy", &["queued", "rendering"]);
    let keep = d.outside().join("keep");
    std::fs::create_dir_all(&keep).unwrap();
    let err = d.fails(&format!("mv jobs/busy {}/", keep.display()));
    assert!(err.contains("busy"), "{err}");
    assert!(d.log().contains("jobs/busy is still"), "one line says why");
    // Nothing removed, nothing deleted: the job is whole and goes on.
    assert_eq!(d.jobs(), ["busy"]);
    let listed = d.ok("ls jobs/busy");
    assert!(
        listed.contains("request.json\n") && listed.contains("status\n"),
        "{listed}"
    );
    assert!(d.fails("rm jobs/busy/status").contains("busy"));
    assert!(d.fails("rmdir jobs/busy").contains("busy"));
    assert_eq!(d.count("delete"), 0);
}

#[test]
fn mv_out_of_a_finished_job_takes_every_file_then_deletes_it_once() {
    let Some(d) = TestDrive::start() else { return };
    drop_photo(&d, "photo-colorizer", "done");
    d.wait_status("done", &["complete"]);
    let output = std::fs::read(d.path("jobs/done/output.png")).unwrap();
    let keep = d.outside().join("keep");
    std::fs::create_dir_all(&keep).unwrap();
    d.ok(&format!("mv jobs/done {}/", keep.display()));
    let mut names: Vec<String> = std::fs::read_dir(keep.join("done"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["job.json", "output.png", "request.json", "status"]);
    assert_eq!(std::fs::read(keep.join("done/output.png")).unwrap(), output);
    assert_eq!(
        std::fs::read_to_string(keep.join("done/status")).unwrap(),
        "complete\n"
    );
    assert!(d.jobs().is_empty());
    assert_eq!(d.count("delete"), 1);
}

#[test]
fn rmdir_of_a_job_with_files_listed_is_enotempty() {
    let Some(d) = TestDrive::start() else { return };
    drop_photo(&d, "photo-colorizer", "full");
    d.wait_status("full", &["complete"]);
    let err = d.fails("rmdir jobs/full");
    assert!(err.contains("Directory not empty"), "{err}");
    // Removing some files is not enough.
    d.ok("rm jobs/full/output.png jobs/full/status");
    assert_eq!(d.ok("ls jobs/full"), "job.json\nrequest.json\n");
    let err = d.fails("rmdir jobs/full");
    assert!(err.contains("Directory not empty"), "{err}");
    assert_eq!(d.count("delete"), 0);
    assert_eq!(d.jobs(), ["full"]);
}

#[test]
fn a_refused_delete_brings_every_file_back() {
    let Some(d) = TestDrive::start() else { return };
    drop_photo(&d, "photo-colorizer", "paid");
    d.wait_status("paid", &["complete"]);
    let output = std::fs::read(d.path("jobs/paid/output.png")).unwrap();
    d.mock.set_faults(Faults {
        rules: vec![Rule {
            op: Op::Delete.into(),
            fault: Fault::Status { status: 422 },
            count: 1,
        }],
        ..Faults::default()
    });
    let err = d.fails("rm -r jobs/paid");
    assert!(err.contains("Input/output error"), "{err}");
    assert!(d.log().contains("the job stays, with all its files"));
    assert_eq!(d.count("delete"), 1);
    // Whole again: every file listed and readable.
    assert_eq!(
        d.ok("ls jobs/paid"),
        "job.json\noutput.png\nrequest.json\nstatus\n"
    );
    assert_eq!(
        std::fs::read(d.path("jobs/paid/output.png")).unwrap(),
        output
    );
    assert_eq!(d.ok("cat jobs/paid/status"), "complete\n");
}

#[test]
fn gio_trash_then_restore_sends_nothing() {
    let _trash = trash_lock();
    let Some(d) = TestDrive::start() else { return };
    drop_photo(&d, "photo-colorizer", "undo");
    d.wait_status("undo", &["complete"]);
    d.ok("timeout 60 gio trash </dev/null >/dev/null 2>&1 jobs/undo");
    assert!(d.jobs().is_empty());
    assert_eq!(
        d.ok("ls -A"),
        ".Trash-0\nREADME.txt\nactivity.log\ncredits\ninbox\njobs\noutputs\n"
    );
    // A trashed job's outputs leave outputs/ too, and come back with it.
    assert_eq!(d.ok("ls outputs"), "");
    assert_eq!(d.ok("ls .Trash-0/files"), "undo\n");
    assert_eq!(
        d.ok("ls .Trash-0/files/undo"),
        "job.json\noutput.png\nrequest.json\nstatus\n"
    );
    let info = d.ok("cat .Trash-0/info/undo.trashinfo");
    assert!(info.contains("Path=jobs/undo"), "{info}");
    // Restore with gio (gvfs), then trash again and restore with mv.
    let listed = gio(&d, "--list");
    let uri = listed.split('\t').next().unwrap().trim();
    assert!(uri.starts_with("trash:///"), "{listed}");
    gio(&d, &format!("--restore \"{uri}\""));
    assert_eq!(d.jobs(), ["undo"]);
    assert_eq!(d.ok("ls outputs"), "undo.png\n");
    assert_eq!(d.ok("ls .Trash-0/files"), "");
    d.ok("timeout 60 gio trash </dev/null >/dev/null 2>&1 jobs/undo && mv .Trash-0/files/undo jobs/undo");
    assert_eq!(d.jobs(), ["undo"]);
    assert_eq!(d.ok("cat jobs/undo/status"), "complete\n");
    assert_eq!(d.count("delete"), 0);
    assert_eq!(d.count("create"), 1);
}

#[test]
fn gio_trash_empty_sends_one_delete() {
    let _trash = trash_lock();
    let Some(d) = TestDrive::start() else { return };
    drop_photo(&d, "photo-colorizer", "bin");
    d.wait_status("bin", &["complete"]);
    d.ok("timeout 60 gio trash </dev/null >/dev/null 2>&1 jobs/bin");
    assert_eq!(d.count("delete"), 0);
    gio(&d, "--empty");
    wait_count(&d, "delete", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.count("delete"), 1);
    assert_eq!(d.ok("ls .Trash-0/files"), "");
    assert!(d.jobs().is_empty());
}

#[test]
fn rm_r_in_the_trash_sends_one_delete() {
    let _trash = trash_lock();
    let Some(d) = TestDrive::start() else { return };
    drop_photo(&d, "photo-colorizer", "gone");
    d.wait_status("gone", &["complete"]);
    d.ok("mkdir -p .Trash-0/files .Trash-0/info && mv jobs/gone .Trash-0/files/");
    d.ok("rm -r .Trash-0/files/gone");
    assert_eq!(d.count("delete"), 1);
    assert_eq!(d.ok("ls .Trash-0/files"), "");
    assert!(
        std::fs::read_dir(d.state().join("jobs"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn an_unfinished_job_emptied_from_the_trash_is_deleted_once_it_ends() {
    let _trash = trash_lock();
    let Some(d) = slow(3) else { return };
    drop_photo(&d, "photo-colorizer", "late");
    d.wait_status("late", &["queued", "rendering"]);
    // It can be trashed while it runs, and its work goes on there.
    d.ok("timeout 60 gio trash </dev/null >/dev/null 2>&1 jobs/late");
    assert!(d.jobs().is_empty());
    d.ok("rm -r .Trash-0/files/late");
    assert_eq!(d.ok("ls .Trash-0/files"), "");
    assert_eq!(d.count("delete"), 0, "not before it ends");
    wait_count(&d, "delete", 1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.count("delete"), 1);
    assert_eq!(d.count("create"), 1);
    assert!(d.log().contains("job late: deleted"), "{}", d.log());
}

#[test]
fn hidden_files_and_the_trash_survive_a_remount() {
    let _trash = trash_lock();
    let Some(mut d) = TestDrive::start() else {
        return;
    };
    drop_photo(&d, "photo-colorizer", "a");
    drop_photo(&d, "photo-colorizer", "b");
    d.wait_status("a", &["complete"]);
    d.wait_status("b", &["complete"]);
    d.ok("rm jobs/a/output.png && timeout 60 gio trash </dev/null >/dev/null 2>&1 jobs/b");
    d.unmount();
    d.mount();
    assert_eq!(d.jobs(), ["a"]);
    assert_eq!(d.ok("ls jobs/a"), "job.json\nrequest.json\nstatus\n");
    assert_eq!(d.ok("ls .Trash-0/files"), "b\n");
    assert!(
        d.ok("cat .Trash-0/info/b.trashinfo")
            .contains("Path=jobs/b")
    );
    // A new job does not take a trashed job's name, so restoring it never collides. (Another
    // photo named b: the same bytes again would be the same intent, not submitted again.)
    let other = d.outside().join("again");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("b.png"),
        mhfs::mock::media::draw("another b", 8, 64, 48),
    )
    .unwrap();
    d.ok(&format!(
        "cp {} inbox/photo-colorizer/",
        other.join("b.png").display()
    ));
    d.wait_status("b-2", &["complete"]);
    d.ok("mv .Trash-0/files/b jobs/b");
    assert_eq!(d.jobs(), ["a", "b", "b-2"]);
    assert!(d.fails("mv -T jobs/b-2 jobs/a").contains("exists"));
    assert_eq!(d.count("delete"), 0);
}

#[test]
fn emptying_the_trash_of_a_job_not_created_yet_stops_its_create() {
    let _trash = trash_lock();
    // Uploads wait out an API that keeps answering 503: the job stays before its create.
    let Some(d) = TestDrive::with(MockConfig {
        render_time: Duration::ZERO,
        faults: Faults {
            rules: vec![Rule {
                op: Op::UploadUrls.into(),
                fault: Fault::Status { status: 503 },
                count: 100_000,
            }],
            ..Faults::default()
        },
        ..MockConfig::default()
    }) else {
        return;
    };
    drop_photo(&d, "photo-colorizer", "never");
    d.wait_status("never", &["uploading"]);
    d.ok("mkdir -p .Trash-0/files && mv jobs/never .Trash-0/files/");
    d.ok("rm -r .Trash-0/files/never");
    assert_eq!(d.ok("ls .Trash-0/files"), "");
    // The API recovers: nothing is created, nothing is deleted (there was no project).
    d.mock.set_faults(Faults::default());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(d.count("create"), 0);
    assert_eq!(d.count("delete"), 0);
    assert!(d.jobs().is_empty());
}

#[test]
fn an_emptied_unfinished_job_is_deleted_after_a_remount_too() {
    let _trash = trash_lock();
    let Some(mut d) = slow(3) else { return };
    drop_photo(&d, "photo-colorizer", "later");
    d.wait_status("later", &["queued", "rendering"]);
    d.ok("mkdir -p .Trash-0/files && mv jobs/later .Trash-0/files/");
    d.ok("rm -r .Trash-0/files/later");
    d.unmount();
    assert_eq!(d.count("delete"), 0);
    d.mount();
    assert_eq!(d.ok("ls .Trash-0/files"), "");
    wait_count(&d, "delete", 1, Duration::from_secs(20));
    assert_eq!(d.count("create"), 1);
    assert!(d.jobs().is_empty());
}

/// A refusal for the next DELETE.
fn refuse_next_delete(d: &TestDrive) {
    d.mock.set_faults(Faults {
        rules: vec![Rule {
            op: Op::Delete.into(),
            fault: Fault::Status { status: 422 },
            count: 1,
        }],
        ..Faults::default()
    });
}

#[test]
fn a_refused_delete_while_emptying_the_trash_puts_the_job_back_whole() {
    let _trash = trash_lock();
    let Some(d) = TestDrive::start() else { return };
    drop_photo(&d, "photo-colorizer", "stays");
    d.wait_status("stays", &["complete"]);
    d.ok("timeout 60 gio trash </dev/null >/dev/null 2>&1 jobs/stays");
    refuse_next_delete(&d);
    // gvfs moves it to expunged/, removes its files, then the folder: refused, it comes back.
    gio(&d, "--empty");
    wait_count(&d, "delete", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.ok("ls .Trash-0/files"), "stays\n");
    assert_eq!(
        d.ok("ls .Trash-0/files/stays"),
        "job.json\noutput.png\nrequest.json\nstatus\n"
    );
    // Once Magic Hour agrees, rm -r empties it.
    d.ok("rm -r .Trash-0/files/stays");
    assert_eq!(d.count("delete"), 2);
    assert_eq!(d.ok("ls .Trash-0/files"), "");
}

#[test]
fn a_refused_delete_of_an_emptied_unfinished_job_puts_it_back_in_the_trash() {
    let _trash = trash_lock();
    let Some(d) = slow(2) else { return };
    drop_photo(&d, "photo-colorizer", "back");
    d.wait_status("back", &["queued", "rendering"]);
    d.ok("mkdir -p .Trash-0/files && mv jobs/back .Trash-0/files/");
    refuse_next_delete(&d);
    d.ok("rm -r .Trash-0/files/back");
    wait_count(&d, "delete", 1, Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.ok("ls .Trash-0/files") != "back\n" {
        assert!(
            Instant::now() < deadline,
            "not back in the trash\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.ok("cat .Trash-0/files/back/status"), "complete\n");
    assert!(d.ok("ls .Trash-0/files/back").contains("output.png"));
    assert!(d.log().contains("back in the trash"));
}
