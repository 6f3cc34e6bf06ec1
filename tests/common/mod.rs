//! Helpers shared by the integration tests: sample input files and output checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use mhfs::api::catalog::{Media, Output, Tool};
use mhfs::mock::media;

/// Writes a small valid sample file of `media` named `<stem>.<ext>` into `dir`.
pub fn sample(dir: &Path, stem: &str, media: Media) -> PathBuf {
    let (ext, bytes) = match media {
        Media::Image => ("png", media::draw(stem, 7, 64, 48)),
        Media::Video => ("mp4", media::mp4(1.0, 64, 64, 7)),
        Media::Audio => ("wav", media::wav(0.5, 7)),
    };
    let path = dir.join(format!("{stem}.{ext}"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Asserts a downloaded output decodes as what the tool advertises.
pub fn check_output(tool: &Tool, path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let ext = path.extension().unwrap().to_string_lossy().to_string();
    let result = match (tool.output, ext.as_str()) {
        (Output::Image { .. } | Output::FaceCrops, "png" | "jpg") => {
            media::check_image(&bytes).map(|_| ())
        }
        (Output::Animation, "gif") => media::check_gif(&bytes).map(|_| ()),
        (Output::Animation | Output::Video, "mp4") => media::check_mp4(&bytes).map(|_| ()),
        (Output::Audio, "wav") => media::check_wav(&bytes).map(|_| ()),
        (out, _) => panic!("{}: unexpected output {name} for {out:?}", tool.slug),
    };
    if let Err(e) = result {
        panic!("{}: output {name} does not decode: {e}", tool.slug);
    }
}

/// Whether a program the test drives is installed; under CI it must be (the test script
/// installs it), elsewhere the test is skipped with a message.
pub fn have(program: &str) -> bool {
    let found = std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: {program} is required"
        );
        eprintln!("skipped: no {program}");
    }
    found
}

pub mod drive;
pub mod engine;
