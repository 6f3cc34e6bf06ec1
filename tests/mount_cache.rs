//! `--cache-size`: the outputs kept on local disk are bounded; the others are fetched again
//! when opened, and every output stays listed with its size (docs/SEMANTICS.md, "Jobs").

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::drive::TestDrive;
use mhfs::mock::{Fault, Faults, MockConfig, Op, Rule};

/// Voice lines of 30 characters: the mock speaks each for 2 s, so every output (a WAV) has the
/// same size.
const LINES: [(&str, &str); 3] = [
    ("one", "the first line, read out aloud"),
    ("two", "the other line, read out aloud"),
    ("six", "the third line, read out aloud"),
];

fn output_size() -> u64 {
    mhfs::mock::media::wav(2.0, 0).len() as u64
}

fn mock() -> MockConfig {
    MockConfig {
        render_time: Duration::ZERO,
        ..MockConfig::default()
    }
}

/// Submits a voice line and waits until its output is downloaded.
fn speak(d: &TestDrive, name: &str, line: &str) {
    assert_eq!(line.chars().count(), 30);
    d.ok(&format!(
        "printf '%s' '{line}' > inbox/ai-voice-generator/{name}.txt"
    ));
    d.wait_status(name, &["complete"]);
}

/// The local file of each job's output in the state directory, by job name.
fn local(d: &TestDrive, job: &str) -> PathBuf {
    // Jobs are made one after the other: their ids follow LINES.
    let i = LINES.iter().position(|(n, _)| *n == job).unwrap() + 1;
    d.state().join(format!("jobs/{i}/out/output.wav"))
}

fn on_disk(d: &TestDrive) -> Vec<&'static str> {
    LINES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| local(d, n).exists())
        .collect()
}

/// `stat` of every output, in job folders and in `outputs/`: name, size, mtime.
fn listed(d: &TestDrive) -> String {
    d.ok("ls -l jobs/*/ outputs/ > /dev/null && stat -c '%n %s %Y' jobs/*/output.wav outputs/*")
}

#[test]
fn outputs_past_the_cache_size_are_evicted_and_fetched_again_on_open() {
    let size = output_size();
    // Room for two outputs, not three.
    let cap = (size * 5 / 2).to_string();
    let Some(mut d) = TestDrive::with_args(mock(), &["--cache-size", &cap]) else {
        return;
    };
    let (one, two, _) = (LINES[0], LINES[1], LINES[2]);
    speak(&d, one.0, one.1);
    let bytes = std::fs::read(d.path("jobs/one/output.wav")).unwrap();
    assert_eq!(bytes.len() as u64, size, "each output is {size} bytes");
    speak(&d, two.0, two.1);
    assert_eq!(on_disk(&d), ["one", "two"]);
    let before = listed(&d);
    speak(&d, LINES[2].0, LINES[2].1);
    // Three outputs do not fit: the least recently used one left the disk.
    assert_eq!(on_disk(&d), ["two", "six"]);

    // Every output is still listed, with its size and time, in its folder and in outputs/.
    let all = listed(&d);
    for line in before.lines() {
        assert!(
            all.contains(line),
            "{line:?} is no longer listed as it was:\n{all}"
        );
    }
    for (name, _) in LINES {
        assert!(
            all.contains(&format!("jobs/{name}/output.wav {size} ")),
            "{all}"
        );
        assert!(
            all.contains(&format!("outputs/{name}.wav {size} ")),
            "{all}"
        );
    }

    // Reading `two` makes it the most recently used: `six` goes next, not `two`.
    d.ok("cat jobs/two/output.wav > /dev/null");
    let (gets, downloads) = (d.count("get"), d.count("download"));
    let back = d.ok("cat outputs/one.wav | od -An -tx1 -v");
    let want: String = bytes.iter().map(|b| format!(" {b:02x}")).collect();
    assert_eq!(
        back.split_whitespace().collect::<Vec<_>>(),
        want.split_whitespace().collect::<Vec<_>>(),
        "the output fetched again has the bytes it had"
    );
    assert_eq!(d.count("get"), gets + 1, "one GET for a fresh URL");
    assert_eq!(d.count("download"), downloads + 1, "one download");
    assert_eq!(on_disk(&d), ["one", "two"]);
    assert_eq!(std::fs::read(local(&d, "one")).unwrap(), bytes);
    // Read again: from local disk, nothing asked of the API.
    d.ok("cat jobs/one/output.wav outputs/one.wav > /dev/null");
    assert_eq!(d.count("get"), gets + 1);
    assert_eq!(d.count("download"), downloads + 1);
    // Listed as before: same sizes and times, fetched or not.
    assert_eq!(listed(&d), all);

    // At the next mount, the outputs on disk are counted again and evicted down to the cap:
    // one output's room keeps the most recently used.
    d.unmount();
    d.extra = vec!["--cache-size".into(), (size * 3 / 2).to_string()];
    d.mount();
    assert_eq!(on_disk(&d), ["one"]);
    assert_eq!(listed(&d), all);
}

#[test]
fn two_opens_of_an_evicted_output_fetch_it_once() {
    let Some(d) = TestDrive::with_args(mock(), &["--cache-size", "1"]) else {
        return;
    };
    speak(&d, LINES[0].0, LINES[0].1);
    speak(&d, LINES[1].0, LINES[1].1);
    assert_eq!(on_disk(&d), ["two"]);
    // Slow answers: the second open comes while the first one's fetch is under way.
    d.mock.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let downloads = d.count("download");
    d.ok("cat jobs/one/output.wav > /dev/null & sleep 0.1; cat outputs/one.wav > /dev/null; wait");
    assert_eq!(d.count("download"), downloads + 1);
    assert_eq!(on_disk(&d), ["one"]);
}

#[test]
fn an_evicted_output_that_cannot_be_fetched_again_fails_with_eio() {
    let Some(d) = TestDrive::with_args(mock(), &["--cache-size", "1K"]) else {
        return;
    };
    speak(&d, LINES[0].0, LINES[0].1);
    speak(&d, LINES[1].0, LINES[1].1);
    assert_eq!(on_disk(&d), ["two"]);
    // The project is gone on Magic Hour.
    d.mock.set_faults(Faults {
        rules: vec![Rule {
            op: Op::Get.into(),
            fault: Fault::Status { status: 404 },
            count: 1,
        }],
        ..Faults::default()
    });
    let err = d.fails("cat jobs/one/output.wav");
    assert!(err.contains("Input/output error"), "{err}");
    assert_eq!(d.count("download"), 2, "nothing downloaded for it");
    let log = std::fs::read_to_string(d.path("activity.log")).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot be fetched again"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("jobs/one/output.wav") && lines[0].contains("no longer exists"),
        "{}",
        lines[0]
    );
    // Still listed with its size; it stays evicted.
    assert!(
        d.ok("stat -c %s jobs/one/output.wav")
            .starts_with(&output_size().to_string())
    );
    assert_eq!(on_disk(&d), ["two"]);
}

#[test]
fn without_a_cache_size_every_output_stays_on_disk() {
    let Some(d) = TestDrive::with_args(mock(), &[]) else {
        return;
    };
    for (name, line) in LINES {
        speak(&d, name, line);
    }
    assert_eq!(on_disk(&d), ["one", "two", "six"]);
}
