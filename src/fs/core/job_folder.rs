//! What a job's folder shows, and the inode numbers of its entries.
//!
//! Job inodes are computed, not stored: `JOB_BASE + id * SLOTS + slot`. Job ids are never
//! reused (the store's AUTOINCREMENT), so a number always means the same entry, costs no
//! memory, and stays the same across remounts.

use std::path::PathBuf;

use crate::engine::job::{Job, JobId};
use crate::engine::layout::Layout;

/// First job inode; everything below is the fixed tree or the inbox's table.
pub const JOB_BASE: u64 = 1 << 40;
const SLOTS: u64 = 1 << 12;
const OUTPUT_SLOT: u64 = 16;
const INPUT_SLOT: u64 = 2048;
/// Set on the inode of an output's entry in the flat `outputs/` folder: the same computed
/// number as the job folder's entry, marked (so nothing is stored per output).
const FLAT: u64 = 1 << 62;

/// The entries of a job folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Status,
    JobJson,
    Request,
    Error,
    /// The job's `outputs[i]`.
    Output(usize),
    /// The job's `inputs[i]`, shown when the job failed.
    Input(usize),
}

impl Part {
    fn slot(self) -> Option<u64> {
        Some(match self {
            Part::Status => 1,
            Part::JobJson => 2,
            Part::Request => 3,
            Part::Error => 4,
            Part::Output(i) => OUTPUT_SLOT.checked_add(i as u64)?,
            Part::Input(i) => INPUT_SLOT.checked_add(i as u64)?,
        })
        .filter(|&s| match self {
            Part::Output(_) => s < INPUT_SLOT,
            _ => s < SLOTS,
        })
    }

    fn from_slot(slot: u64) -> Option<Part> {
        Some(match slot {
            1 => Part::Status,
            2 => Part::JobJson,
            3 => Part::Request,
            4 => Part::Error,
            s if (OUTPUT_SLOT..INPUT_SLOT).contains(&s) => Part::Output((s - OUTPUT_SLOT) as usize),
            s if (INPUT_SLOT..SLOTS).contains(&s) => Part::Input((s - INPUT_SLOT) as usize),
            _ => return None,
        })
    }
}

/// The inode of a job's folder.
pub fn dir_ino(id: JobId) -> u64 {
    JOB_BASE + id as u64 * SLOTS
}

/// The inode of an entry of a job's folder (`None` past the last slot: not shown).
pub fn part_ino(id: JobId, part: Part) -> Option<u64> {
    part.slot().map(|s| dir_ino(id) + s)
}

/// What a job inode is: its folder (`None`) or one of its entries.
pub fn decode(ino: u64) -> Option<(JobId, Option<Part>)> {
    if ino & FLAT != 0 {
        return None;
    }
    let n = ino.checked_sub(JOB_BASE)?;
    let id = JobId::try_from(n / SLOTS).ok()?;
    match n % SLOTS {
        0 => Some((id, None)),
        slot => Part::from_slot(slot).map(|p| (id, Some(p))),
    }
}

/// The inode of a job's `outputs[i]` in the flat `outputs/` folder.
pub fn flat_ino(id: JobId, i: usize) -> Option<u64> {
    part_ino(id, Part::Output(i)).map(|n| n | FLAT)
}

/// What an inode of `outputs/` is: a job and the index of its output.
pub fn decode_flat(ino: u64) -> Option<(JobId, usize)> {
    if ino & FLAT == 0 {
        return None;
    }
    match decode(ino & !FLAT) {
        Some((id, Some(Part::Output(i)))) => Some((id, i)),
        _ => None,
    }
}

/// An output's name in `outputs/`: `output.png` of `holiday` is `holiday.png`, `output-2.png`
/// is `holiday-2.png` (any other name: `holiday-<name>`).
pub fn flat_name(job: &Job, output: &str) -> String {
    match output.strip_prefix("output") {
        Some(rest) if rest.starts_with(['.', '-']) || rest.is_empty() => {
            format!("{}{rest}", job.name)
        }
        _ => format!("{}-{output}", job.name),
    }
}

/// A job's finished outputs as `outputs/` shows them (none for a trashed job).
pub fn flat(job: &Job) -> Vec<(String, usize)> {
    if job.trashed.is_some() {
        return Vec::new();
    }
    parts(job)
        .into_iter()
        .filter_map(|(name, p)| match p {
            Part::Output(i) => Some((flat_name(job, &name), i)),
            _ => None,
        })
        .collect()
}

/// The job a name of `outputs/` may belong to: its stem, or its stem without `-N`.
pub fn flat_owner_candidates(name: &str) -> Vec<&str> {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let mut v = vec![stem];
    if let Some((base, _)) = stem.rsplit_once('-') {
        v.push(base);
    }
    v
}

/// The files whose content follows the job's state (for invalidation when it changes; the
/// folder itself is invalidated with its listing).
pub fn live_inos(id: JobId) -> impl Iterator<Item = u64> {
    [Part::Status, Part::JobJson, Part::Request, Part::Error]
        .into_iter()
        .filter_map(move |p| part_ino(id, p))
}

/// The names in a job folder, in display order.
pub fn parts(job: &Job) -> Vec<(String, Part)> {
    let mut parts = vec![("status".to_string(), Part::Status)];
    if job.request.is_some() {
        parts.push(("request.json".into(), Part::Request));
    }
    if job.project.is_some() {
        parts.push(("job.json".into(), Part::JobJson));
    }
    if job.error.is_some() {
        parts.push(("error".into(), Part::Error));
    }
    for (i, o) in job.outputs.iter().enumerate() {
        if o.done && !o.removed {
            parts.push((o.name.clone(), Part::Output(i)));
        }
    }
    if job.shows_inputs() {
        for (i, f) in job.inputs.iter().enumerate() {
            let name = f.name.rsplit('/').next().unwrap_or(&f.name).to_string();
            if f.path.exists() && !parts.iter().any(|(n, _)| *n == name) {
                parts.push((name, Part::Input(i)));
            }
        }
    }
    // Removed names stay hidden (their data is kept until the job's DELETE succeeds).
    parts.retain(|(n, p)| p.slot().is_some() && !job.hidden.contains(n));
    parts
}

/// The entry of a job folder with this name.
pub fn part_named(job: &Job, name: &str) -> Option<Part> {
    parts(job)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p)
}

/// Whether the job shows this entry now.
pub fn shows(job: &Job, part: Part) -> bool {
    parts(job).iter().any(|(_, p)| *p == part)
}

/// The content of an entry made from the job's state (`None` for local files).
pub fn content(job: &Job, part: Part) -> Option<Vec<u8>> {
    match part {
        Part::Status => Some(job.status_text().into_bytes()),
        Part::JobJson => job.project.as_ref().map(|j| j.pretty()),
        Part::Request => job.request.as_ref().map(|j| j.pretty()),
        Part::Error => job.error_text().map(String::into_bytes),
        Part::Output(_) | Part::Input(_) => None,
    }
}

/// The local file behind an output or a kept input, if it is shown.
pub fn local_file(layout: &Layout, job: &Job, part: Part) -> Option<PathBuf> {
    match part {
        Part::Output(i) => job
            .outputs
            .get(i)
            .filter(|o| o.done && !o.removed)
            .map(|o| layout.output(job.id, &o.name)),
        Part::Input(i) => job
            .inputs
            .get(i)
            .filter(|_| job.shows_inputs())
            .map(|f| f.path.clone())
            .filter(|p| p.exists()),
        _ => None,
    }
}

/// What an output's record says of its file (size, time): shown while the file is evicted
/// from the local cache (`--cache-size`). Recorded before the time was: the job's last change.
pub fn recorded(job: &Job, part: Part) -> Option<(u64, std::time::SystemTime)> {
    match part {
        Part::Output(i) => job
            .outputs
            .get(i)
            .map(|o| (o.size, o.mtime.unwrap_or(job.updated))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_round_trip() {
        for id in [1, 2, 77, 1 << 30] {
            assert_eq!(decode(dir_ino(id)), Some((id, None)));
            for p in [
                Part::Status,
                Part::JobJson,
                Part::Request,
                Part::Error,
                Part::Output(0),
                Part::Output(15),
                Part::Input(0),
                Part::Input(3),
            ] {
                let ino = part_ino(id, p).unwrap();
                assert!(ino >= JOB_BASE);
                assert_eq!(decode(ino), Some((id, Some(p))));
            }
        }
        assert_eq!(part_ino(1, Part::Output(5000)), None);
        assert_eq!(decode(JOB_BASE - 1), None);
        assert_eq!(decode(dir_ino(3) + 9), None);
        let flat = flat_ino(7, 2).unwrap();
        assert_eq!(decode_flat(flat), Some((7, 2)));
        assert_eq!(decode(flat), None);
        assert_eq!(decode_flat(part_ino(7, Part::Output(2)).unwrap()), None);
    }
}
