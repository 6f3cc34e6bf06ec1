//! A seeded, randomized run of what users do (drops, prompts, temp-then-rename, removals,
//! renames) against a mock that throttles and fails at random. Invariants: every job ends, no
//! create is ever repeated, every finished output decodes. A failure prints its seed; failures
//! found this way become named tests.

mod common;

use std::time::{Duration, Instant};

use common::drive::TestDrive;
use mhfs::api::catalog::Media;
use mhfs::mock::{Faults, MockConfig, Op};

/// A small deterministic generator (xorshift), so a failing seed replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_workload_keeps_the_invariants() {
    let seed = std::env::var("MHFS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_u64);
    eprintln!("seed {seed} (set MHFS_SEED to replay)");
    let config = MockConfig {
        render_time: Duration::from_millis(300),
        ..MockConfig::default()
    };
    let Some(d) = TestDrive::with(config) else {
        return;
    };
    d.mock.set_faults(Faults {
        error_rate: 0.05,
        throttle_rate: 0.1,
        retry_after_secs: 0,
        ..Faults::default()
    });
    let mut rng = Rng(seed | 1);
    let mut submitted = 0u64;
    let mut removed = 0u64;
    for step in 0..40 {
        match rng.below(6) {
            0 | 1 => {
                let tool = [
                    "photo-colorizer",
                    "ai-image-upscaler",
                    "image-background-remover",
                ][rng.below(3) as usize];
                // Each submission is its own photo: the same bytes twice would be one intent.
                let photo = common::sample(&d.outside(), &format!("p{step}"), Media::Image);
                d.ok(&format!("cp {} inbox/{tool}/p{step}.png", photo.display()));
                submitted += 1;
            }
            2 => {
                d.ok(&format!(
                    "echo 'prompt {step}' > inbox/ai-image-generator/t{step}.txt"
                ));
                submitted += 1;
            }
            3 => {
                // rsync-like: a hidden temp written, then renamed visible.
                let photo = common::sample(&d.outside(), &format!("r{step}"), Media::Image);
                d.ok(&format!(
                    "cp {} inbox/photo-colorizer/.r{step}.tmp && mv inbox/photo-colorizer/.r{step}.tmp inbox/photo-colorizer/r{step}.png",
                    photo.display()
                ));
                submitted += 1;
            }
            4 => {
                let jobs = d.jobs();
                if !jobs.is_empty() {
                    let job = &jobs[rng.below(jobs.len() as u64) as usize];
                    // May be refused (a create in flight, or the API failing): the job then stays.
                    if d.sh(&format!("rm -r jobs/{job}")).status.success() {
                        removed += 1;
                    }
                }
            }
            _ => {
                let jobs = d.jobs();
                if !jobs.is_empty() {
                    let job = &jobs[rng.below(jobs.len() as u64) as usize];
                    d.ok(&format!("mv jobs/{job} jobs/{job}-m{step}"));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(rng.below(80)));
    }
    // Every job ends.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending: Vec<(String, String)> = d
            .jobs()
            .into_iter()
            .filter_map(|j| d.status(&j).map(|s| (j, s)))
            .filter(|(_, s)| !["complete", "error", "canceled"].contains(&s.as_str()))
            .collect();
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed}: jobs never ended: {pending:?}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let jobs = d.jobs();
    assert_eq!(
        jobs.len() as u64 + removed,
        submitted,
        "seed {seed}: one job per submission"
    );
    // No create repeated: each submission's body carries its own name; none was created twice.
    let mut created = std::collections::HashMap::new();
    for r in d
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.op == Op::Create && r.status == 200)
    {
        let name = r.body["name"].as_str().unwrap_or_default().to_string();
        *created.entry(name).or_insert(0) += 1;
    }
    for (name, n) in &created {
        assert_eq!(*n, 1, "seed {seed}: {name} was created {n} times");
    }
    assert!(created.len() as u64 <= submitted);
    for job in &jobs {
        let dir = d.path(&format!("jobs/{job}"));
        match d.status(job).unwrap().as_str() {
            "complete" => {
                for out in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()) {
                    if out
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("output")
                    {
                        mhfs::mock::media::check_image(&std::fs::read(&out).unwrap())
                            .unwrap_or_else(|e| panic!("seed {seed}: {}: {e}", out.display()));
                    }
                }
            }
            _ => {
                // Only an ambiguous 500 to a create may fail a job here, and it says so.
                let error = std::fs::read_to_string(dir.join("error")).unwrap();
                assert!(
                    error.starts_with("unknown_outcome: "),
                    "seed {seed}: {job}: {error}"
                );
            }
        }
    }
}
