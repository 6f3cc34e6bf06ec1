//! Real programs through the mount: each way of writing a file submits exactly once, and
//! scratch files never submit (docs/SEMANTICS.md, "Submitting").

mod common;

use std::time::Duration;

use common::drive::{TestDrive, peak_rss};
use mhfs::api::catalog::Media;

const UPSCALER: &str = "inbox/ai-image-upscaler";

#[test]
fn cp_submits_exactly_once() {
    let Some(d) = TestDrive::start() else { return };
    let photo = common::sample(&d.outside(), "holiday", Media::Image);
    d.ok(&format!("cp {} {UPSCALER}/", photo.display()));
    // The file left the inbox the moment it was complete; the job is there.
    assert_eq!(d.ok(&format!("ls {UPSCALER}")), "");
    assert_eq!(d.jobs(), ["holiday"]);
    d.wait_status("holiday", &["complete"]);
    assert_eq!(d.count("create"), 1);
    assert_eq!(d.count("upload"), 1);
    // A second drop of the same name with other bytes is a second job, named apart.
    let other = d.outside().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let other = other.join("holiday.png");
    std::fs::write(
        &other,
        mhfs::mock::media::draw("another holiday", 7, 64, 48),
    )
    .unwrap();
    d.ok(&format!("cp {} {UPSCALER}/", other.display()));
    d.wait_status("holiday-2", &["complete"]);
    assert_eq!(d.count("create"), 2);
}

#[test]
fn shell_redirection_submits_a_prompt_once() {
    let Some(d) = TestDrive::start() else { return };
    d.ok("echo 'a lighthouse at dawn' > inbox/ai-image-generator/lighthouse.txt");
    d.wait_status("lighthouse", &["complete"]);
    let request = d.ok("cat jobs/lighthouse/request.json");
    assert!(request.contains("a lighthouse at dawn"), "{request}");
    assert_eq!(d.count("create"), 1);
}

#[test]
fn mv_from_another_file_system_submits_once() {
    let Some(d) = TestDrive::start() else { return };
    let photo = common::sample(&d.outside(), "moved", Media::Image);
    d.ok(&format!("mv {} inbox/photo-colorizer/", photo.display()));
    assert!(!photo.exists());
    d.wait_status("moved", &["complete"]);
    assert_eq!(d.count("create"), 1);
}

#[test]
fn cp_p_keeps_working_after_the_file_left_the_inbox() {
    let Some(d) = TestDrive::start() else { return };
    let photo = common::sample(&d.outside(), "kept", Media::Image);
    d.ok(&format!("cp -p {} inbox/photo-colorizer/", photo.display()));
    d.wait_status("kept", &["complete"]);
    assert_eq!(d.count("create"), 1);
    // Other bytes: the same ones again would be the same intent, not submitted twice.
    let other = common::sample(&d.outside(), "other", Media::Image);
    d.ok(&format!(
        "cp -a {} inbox/photo-colorizer/all.png",
        other.display()
    ));
    d.wait_status("all", &["complete"]);
    assert_eq!(d.count("create"), 2);
}

#[test]
fn cp_r_of_a_folder_submits_once_after_it_settles() {
    let Some(d) = TestDrive::start() else { return };
    let folder = d.outside().join("me");
    std::fs::create_dir_all(&folder).unwrap();
    common::sample(&folder, "face", Media::Image);
    common::sample(&folder, "clip", Media::Video);
    std::fs::write(folder.join("params.json"), r#"{"end_seconds": 0.75}"#).unwrap();
    d.ok(&format!("cp -r {} inbox/face-swap/", folder.display()));
    d.wait_status("me", &["complete"]);
    assert_eq!(d.ok("ls inbox/face-swap"), "");
    let request = d.ok("cat jobs/me/request.json");
    assert!(request.contains("\"end_seconds\": 0.75"), "{request}");
    assert!(request.contains("\"video_source\": \"file\""), "{request}");
    assert_eq!(d.count("create"), 1);
    assert_eq!(d.count("upload"), 2);
}

#[test]
fn rsync_temp_then_rename_submits_once() {
    let Some(d) = TestDrive::start() else { return };
    let photo = common::sample(&d.outside(), "synced", Media::Image);
    d.ok(&format!(
        "rsync {} inbox/ai-image-upscaler/",
        photo.display()
    ));
    d.wait_status("synced", &["complete"]);
    assert_eq!(d.jobs(), ["synced"]);
    assert_eq!(d.count("create"), 1);
    // rsync -a also sets times and modes (on its temp file, before the rename).
    let other = common::sample(&d.outside(), "archived", Media::Image);
    d.ok(&format!(
        "rsync -a {} inbox/ai-image-upscaler/",
        other.display()
    ));
    d.wait_status("archived", &["complete"]);
    assert_eq!(d.count("create"), 2);
}

#[test]
fn touch_leaves_an_empty_file_and_submits_nothing() {
    let Some(d) = TestDrive::start() else { return };
    d.ok(&format!("touch {UPSCALER}/x.png"));
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(d.ok(&format!("ls {UPSCALER}")), "x.png\n");
    assert_eq!(d.ok(&format!("stat -c %s {UPSCALER}/x.png")), "0\n");
    assert!(d.jobs().is_empty());
    assert_eq!(d.count("create"), 0);
    // Writing data into it later is a submission.
    let photo = common::sample(&d.outside(), "x", Media::Image);
    d.ok(&format!("cat {} > {UPSCALER}/x.png", photo.display()));
    d.wait_status("x", &["complete"]);
    assert_eq!(d.count("create"), 1);
}

#[test]
fn scratch_names_never_submit() {
    let Some(d) = TestDrive::start() else { return };
    let dir = "inbox/ai-image-generator";
    for name in [
        ".hidden.txt",
        "notes.txt~",
        ".x.txt.swp",
        "4913",
        "draft.tmp",
        "a.txt.part",
        "b.txt.crdownload",
    ] {
        d.ok(&format!("echo 'not yet' > '{dir}/{name}'"));
    }
    // Scratch files are ordinary files: readable, writable, removable.
    assert_eq!(d.ok(&format!("cat {dir}/.hidden.txt")), "not yet\n");
    d.ok(&format!("echo more >> {dir}/draft.tmp && rm {dir}/4913"));
    assert_eq!(d.ok(&format!("cat {dir}/draft.tmp")), "not yet\nmore\n");
    std::thread::sleep(Duration::from_millis(600));
    assert!(d.jobs().is_empty());
    assert_eq!(d.count("create"), 0);
}

#[test]
fn vim_writes_one_job_and_its_swap_files_none() {
    let Some(d) = TestDrive::start() else { return };
    if !common::have("vim") {
        return;
    }
    // vim makes .poem.txt.swp and probes with 4913 before writing poem.txt.
    d.ok("vim -es -u NONE -i NONE -c 'normal iroses are red' -c 'wq' inbox/ai-image-generator/poem.txt");
    d.wait_status("poem", &["complete"]);
    assert_eq!(d.jobs(), ["poem"]);
    assert_eq!(d.count("create"), 1);
}

/// Seek, rewrite, truncate and read back, on a staged file, checked against a model.
#[test]
fn random_writes_read_back_on_staged_files() {
    let Some(d) = TestDrive::start() else { return };
    let script = r#"
import os, random, sys
random.seed(7)
path = sys.argv[1]
model = bytearray()
with open(path, "w+b") as f:
    for _ in range(400):
        op = random.random()
        if op < 0.7:
            off = random.randrange(0, len(model) + 5000)
            data = os.urandom(random.randrange(1, 9000))
            f.seek(off); f.write(data)
            if off > len(model): model.extend(b"\0" * (off - len(model)))
            model[off:off + len(data)] = data
        elif op < 0.85:
            n = random.randrange(0, len(model) + 1)
            f.truncate(n); del model[n:]
        else:
            off = random.randrange(0, len(model) + 1)
            f.seek(off); got = f.read(random.randrange(1, 20000))
            assert got == bytes(model[off:off + len(got)]) and len(got) == min(len(model) - off, len(got)), "read mismatch"
    f.flush()
with open(path, "rb") as f:
    assert f.read() == bytes(model), "final content differs"
print(len(model))
"#;
    let py = d.outside().join("rw.py");
    std::fs::write(&py, script).unwrap();
    let size = d.ok(&format!(
        "python3 {} inbox/ai-image-upscaler/.scratch.bin",
        py.display()
    ));
    assert!(size.trim().parse::<u64>().unwrap() > 0);
    assert_eq!(d.count("create"), 0);
}

/// A 1 GiB input goes through staging and up with the daemon's memory far below its size.
#[test]
fn a_gigabyte_input_streams_with_small_memory() {
    let Some(d) = TestDrive::start() else { return };
    let big = d.outside().join("big.mp4");
    // A real MP4 head so the file is a video, padded to 1 GiB.
    std::fs::write(&big, mhfs::mock::media::mp4(1.0, 64, 64, 1)).unwrap();
    d.ok(&format!("truncate -s 1G {}", big.display()));
    d.ok(&format!(
        "cp --sparse=never {} inbox/ai-video-upscaler/",
        big.display()
    ));
    d.wait_status("big", &["complete"]);
    let out = std::fs::metadata(d.path("jobs/big/output.mp4")).unwrap();
    assert_eq!(
        out.len(),
        1 << 30,
        "the output is the input's bytes, downloaded whole"
    );
    let rss = peak_rss(d.pid());
    assert!(
        rss < 200 << 20,
        "peak RSS {} MiB for a 1 GiB file",
        rss >> 20
    );
    eprintln!(
        "peak RSS of mhfs: {} MiB for a 1 GiB input and output",
        rss >> 20
    );
}

#[test]
fn an_incomplete_folder_waits_in_the_inbox() {
    let Some(d) = TestDrive::start() else { return };
    d.ok("mkdir inbox/lip-sync/talk");
    let voice = common::sample(&d.outside(), "audio", Media::Audio);
    d.ok(&format!("cp {} inbox/lip-sync/talk/", voice.display()));
    std::thread::sleep(Duration::from_millis(1000));
    assert!(d.jobs().is_empty(), "no video yet: nothing is submitted");
    assert_eq!(d.ok("ls inbox/lip-sync/talk"), "audio.wav\n");
    // Folders inside a submission folder are refused.
    let err = d.fails("mkdir inbox/lip-sync/talk/deeper");
    assert!(err.contains("Operation not permitted"), "{err}");
    let clip = common::sample(&d.outside(), "video", Media::Video);
    d.ok(&format!("cp {} inbox/lip-sync/talk/", clip.display()));
    d.wait_status("talk", &["complete"]);
    assert_eq!(d.count("create"), 1);
}

/// GIO and editors write a temp file and rename it over the target before closing it: the
/// last close submits it under its new name.
#[test]
fn a_temp_file_renamed_while_open_submits_at_its_last_close() {
    let Some(d) = TestDrive::start() else { return };
    let script = r#"
import os, sys, time
d = sys.argv[1]
f = open(os.path.join(d, ".goutputstream-ABC123"), "w")
f.write("a lighthouse at dusk\n"); f.flush()
os.rename(os.path.join(d, ".goutputstream-ABC123"), os.path.join(d, "dusk.txt"))
time.sleep(0.3)
assert not os.path.exists("jobs/dusk"), "submitted while still open"
f.close()
"#;
    let py = d.outside().join("gio.py");
    std::fs::write(&py, script).unwrap();
    d.ok(&format!(
        "python3 {} inbox/ai-image-generator",
        py.display()
    ));
    d.wait_status("dusk", &["complete"]);
    assert!(
        d.ok("cat jobs/dusk/request.json")
            .contains("a lighthouse at dusk")
    );
    assert_eq!(d.count("create"), 1);
}

/// A folder left in the inbox by a stop may hold a cut file: after a restart it waits for its
/// next change before it is submitted.
#[test]
fn a_folder_from_before_a_crash_waits_for_its_next_change() {
    let Some(mut d) = TestDrive::start() else {
        return;
    };
    d.unmount();
    d.settle = 30.0;
    d.mount();
    d.ok("mkdir inbox/head-swap/pair");
    let head = common::sample(&d.outside(), "head", Media::Image);
    let body = common::sample(&d.outside(), "body", Media::Image);
    d.ok(&format!(
        "cp {} {} inbox/head-swap/pair/",
        head.display(),
        body.display()
    ));
    d.kill();
    d.settle = 0.3;
    d.mount();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(d.jobs().is_empty(), "submitted without a new change");
    assert_eq!(d.ok("ls inbox/head-swap/pair"), "body.png\nhead.png\n");
    d.ok("touch inbox/head-swap/pair/head.png");
    d.wait_status("pair", &["complete"]);
    assert_eq!(d.count("create"), 1);
}
