//! Where the drive keeps its things in the state directory, defined once:
//!
//! ```text
//! <state>/jobs.db            the job registry (SQLite)
//! <state>/activity.log       what the drive did and refused (the mount's activity.log)
//! <state>/mhfs.lock          held while mounted: one mount per state directory
//! <state>/inbox/<tool>/...   files being written into the inbox (scratch files too)
//! <state>/jobs/<id>/input/   a job's dropped inputs (and copies of local files its JSON names)
//! <state>/jobs/<id>/out/     its downloaded outputs (`.<name>.part` while downloading)
//! <state>/trash/.Trash-<uid>/ the desktop trash of the mount: `info/` holds the `.trashinfo`
//!                            files as written; `files/` only marks that it exists (trashed
//!                            jobs are listed there from the registry)
//! ```

use std::path::{Path, PathBuf};

use super::job::JobId;

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(state_dir: &Path) -> Layout {
        Layout {
            root: state_dir.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn db(&self) -> PathBuf {
        self.root.join("jobs.db")
    }

    /// `activity.log`, shown at the root of the mount.
    pub fn activity(&self) -> PathBuf {
        self.root.join("activity.log")
    }

    pub fn lock(&self) -> PathBuf {
        self.root.join("mhfs.lock")
    }

    pub fn inbox(&self) -> PathBuf {
        self.root.join("inbox")
    }

    pub fn jobs(&self) -> PathBuf {
        self.root.join("jobs")
    }

    pub fn job_dir(&self, id: JobId) -> PathBuf {
        self.jobs().join(id.to_string())
    }

    pub fn input_dir(&self, id: JobId) -> PathBuf {
        self.job_dir(id).join("input")
    }

    pub fn output_dir(&self, id: JobId) -> PathBuf {
        self.job_dir(id).join("out")
    }

    /// The mount's trash folders (`.Trash-<uid>`).
    pub fn trash(&self) -> PathBuf {
        self.root.join("trash")
    }

    /// One trash folder: `bin` is its name at the mount's root (`.Trash-1000`).
    pub fn trash_bin(&self, bin: &str) -> PathBuf {
        self.trash().join(bin)
    }

    /// A downloaded output, once renamed into place.
    pub fn output(&self, id: JobId, name: &str) -> PathBuf {
        self.output_dir(id).join(name)
    }

    /// Where an output is written while it downloads: hidden, never shown.
    pub fn partial_output(&self, id: JobId, name: &str) -> PathBuf {
        self.output_dir(id).join(format!(".{name}.part"))
    }
}
