//! The official Python SDK (`magic-hour==0.90.0`) runs `generate()` against `mhfs mock` (the
//! real binary, on a free port) for eight tools and downloads real outputs.
//!
//! Needs the SDK's virtualenv, made by `scripts/sdk-venv.sh` (the README's test command runs
//! it). Without it the test is skipped with a message, except under CI, where it fails.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use mhfs::api::catalog::{Media, tool};
use serde_json::Value;

fn sdk_python() -> Option<PathBuf> {
    let path = std::env::var_os("MHFS_SDK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/sdk-venv/bin/python")
        });
    path.exists().then_some(path)
}

struct Mock(std::process::Child);

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn official_sdk_generate_against_mhfs_mock() {
    let Some(python) = sdk_python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: the SDK virtualenv is missing (run scripts/sdk-venv.sh)"
        );
        eprintln!("skipped: no SDK virtualenv at target/sdk-venv (run scripts/sdk-venv.sh)");
        return;
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_mhfs"))
        .args(["mock", "--listen", "127.0.0.1:0", "--render-time", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let _mock = Mock(child);
    let url = url.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "mock printed {url:?}");

    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    let outputs = dir.path().join("out");
    std::fs::create_dir_all(&inputs).unwrap();
    for (stem, media) in [
        ("photo", Media::Image),
        ("face", Media::Image),
        ("clip", Media::Video),
        ("voice", Media::Audio),
    ] {
        common::sample(&inputs, stem, media);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/generate.py");
    let out = Command::new(python)
        .arg(script)
        .args([&url, inputs.to_str().unwrap(), outputs.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut tools = 0;
    for line in stdout.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let slug = r["tool"].as_str().unwrap();
        assert_eq!(r["status"], "complete", "{line}");
        let paths = r["downloaded_paths"].as_array().unwrap();
        assert!(!paths.is_empty(), "{slug} downloaded nothing");
        for p in paths {
            common::check_output(tool(slug).unwrap(), &PathBuf::from(p.as_str().unwrap()));
        }
        tools += 1;
    }
    assert_eq!(tools, 8);

    // The mock's record shows exactly the calls made: one create per tool.
    let record = get_json(&format!("{url}/_mock/requests"));
    assert_eq!(record["counts"]["create"], 8, "{}", record["counts"]);
    for slug in [
        "ai-image-upscaler",
        "face-swap",
        "lip-sync",
        "ai-voice-generator",
    ] {
        assert_eq!(record["counts"][format!("create:{slug}")], 1);
    }
    // Uploads: photo (upscaler, background remover, face-swap-photo, image-to-video), face
    // (face-swap-photo, face-swap), clip (face-swap, lip-sync), voice (lip-sync).
    assert_eq!(record["counts"]["upload"], 9);
}

/// A blocking GET of JSON, so this test needs no async runtime of its own.
fn get_json(url: &str) -> Value {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
}
