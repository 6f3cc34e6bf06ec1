//! `mhfs mount` as a user starts it with no key and no API URL: the embedded mock.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_embedded_mock_serves_without_a_key_and_says_so() {
    if !common::drive::fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&mnt).unwrap();
    let log = dir.path().join("mhfs.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mhfs"))
        .arg("mount")
        .arg(&mnt)
        .arg("--state-dir")
        .arg(&state)
        .args(["--mock-render-time", "0", "--poll-interval", "0.05"])
        .env_remove("MAGIC_HOUR_API_KEY")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !mnt.join("README.txt").exists() {
        assert!(Instant::now() < deadline, "mount did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(
        mnt.join("inbox/ai-image-generator/moon.txt"),
        "a moon over the sea",
    )
    .unwrap();
    let status = mnt.join("jobs/moon/status");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&status).unwrap_or_default() != "complete\n" {
        assert!(Instant::now() < deadline, "the job did not complete");
        std::thread::sleep(Duration::from_millis(30));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let said = std::fs::read_to_string(&log).unwrap();
    assert_eq!(said.matches("Nothing is billed").count(), 1, "{said}");
    // The mock keeps its projects in the state directory, so they survive a remount.
    assert!(state.join("mock").is_dir());
}
