//! Removing jobs without losing paid work, and the desktop trash (freedesktop trash spec on a
//! mount: `<mount>/.Trash-<uid>/{files,info}`).
//!
//! `rm` of a job's file only hides it; `rmdir` of a job whose files are all hidden sends the
//! DELETE, and a DELETE that fails shows every file again. A job that has not finished cannot
//! be removed from `jobs/` (EBUSY), but it can be trashed: trashing and restoring are local
//! renames; emptying the trash is the same removal as in `jobs/`, except that an unfinished
//! job is deleted once it ends.

use super::*;
use crate::engine::job::Trashed;

/// Trash inodes: `TRASH_BASE + uid * 4 + {0: .Trash-<uid>, 1: files, 2: info, 3: expunged}`.
/// Between the inbox's counter (which never gets near) and the job inodes.
const TRASH_BASE: u64 = 1 << 39;

/// What a trash inode is.
pub(super) fn decode_trash(ino: u64) -> Option<Node> {
    if !(TRASH_BASE..job_folder::JOB_BASE).contains(&ino) {
        return None;
    }
    let n = ino - TRASH_BASE;
    let uid = u32::try_from(n / 4).ok()?;
    match n % 4 {
        0 => Some(Node::Bin(uid)),
        1 => Some(Node::BinFiles(uid)),
        2 => Some(Node::BinInfo(uid)),
        _ => Some(Node::BinExpunged(uid)),
    }
}

pub(super) fn bin_ino(uid: u32) -> u64 {
    TRASH_BASE + uid as u64 * 4
}

fn files_ino(uid: u32) -> u64 {
    bin_ino(uid) + 1
}

fn info_ino(uid: u32) -> u64 {
    bin_ino(uid) + 2
}

fn expunged_ino(uid: u32) -> u64 {
    bin_ino(uid) + 3
}

/// The folders a trash may hold: gvfs empties a trash by moving each item into `expunged/`
/// first, then removing it there.
const SUBDIRS: [&str; 3] = ["files", "info", "expunged"];

fn sub_ino(uid: u32, sub: &str) -> Option<u64> {
    match sub {
        "files" => Some(files_ino(uid)),
        "info" => Some(info_ino(uid)),
        "expunged" => Some(expunged_ino(uid)),
        _ => None,
    }
}

/// A trash folder that holds jobs: `(uid, expunged)`.
fn job_bin(node: Option<Node>) -> Option<(u32, bool)> {
    match node? {
        Node::BinFiles(uid) => Some((uid, false)),
        Node::BinExpunged(uid) => Some((uid, true)),
        _ => None,
    }
}

/// The uid of a trash folder's name: exactly `.Trash-<digits>`.
pub(super) fn bin_uid(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(".Trash-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let uid: u32 = digits.parse().ok()?;
    // One spelling per uid (no `.Trash-007`), so a name and an inode match one to one.
    (uid.to_string() == digits).then_some(uid)
}

fn bin_name(uid: u32) -> String {
    format!(".Trash-{uid}")
}

/// Where a job is shown, for messages: `jobs/x` or `.Trash-0/files/x`.
fn place(job: &Job) -> String {
    match &job.trashed {
        Some(Trashed {
            bin,
            expunged: Some(e),
            ..
        }) => format!("{bin}/expunged/{e}"),
        Some(t) => format!("{}/files/{}", t.bin, t.name),
        None => format!("jobs/{}", job.name),
    }
}

/// A trashed job's name in `files/` (`expunged: false`) or in `expunged/`.
fn name_in(t: &Trashed, expunged: bool) -> Option<&str> {
    match (expunged, &t.expunged) {
        (false, None) => Some(&t.name),
        (true, Some(e)) => Some(e),
        _ => None,
    }
}

fn busy(job: &Job) -> FsError {
    FsError::refuse(
        libc::EBUSY,
        format!(
            "{} is still {}; it can be removed once complete or failed, or trashed now",
            place(job),
            job.status.as_str()
        ),
    )
}

impl Drive {
    /// The job shown as `name` in the folder `parent` (`jobs/` or a trash's `files/`).
    pub(super) fn job_in(&self, parent: u64, name: &str) -> Option<JobId> {
        if parent == JOBS {
            let id = self.registry.by_name(name)?;
            return self
                .registry
                .with_job(id, |j| j.trashed.is_none())
                .filter(|&shown| shown)
                .map(|_| id);
        }
        let (uid, expunged) = job_bin(decode_trash(parent))?;
        self.trashed_in(uid, expunged)
            .into_iter()
            .find(|(_, n)| n == name)
            .map(|(id, _)| id)
    }

    /// The jobs a trash's `files/` (or `expunged/`) lists: id and name there.
    fn trashed_in(&self, uid: u32, expunged: bool) -> Vec<(JobId, String)> {
        let bin = bin_name(uid);
        self.registry.select(|j| {
            let t = j.trashed.as_ref().filter(|t| t.bin == bin)?;
            let name = name_in(t, expunged).filter(|_| !j.delete_when_done)?;
            Some((j.id, name.to_string()))
        })
    }

    fn bin_exists(&self, uid: u32, sub: Option<&str>) -> bool {
        let mut path = self.registry.layout().trash_bin(&bin_name(uid));
        if let Some(sub) = sub {
            path.push(sub);
        }
        path.is_dir()
    }

    pub(super) fn info_path(&self, uid: u32, name: &str) -> PathBuf {
        self.registry
            .layout()
            .trash_bin(&bin_name(uid))
            .join("info")
            .join(name)
    }

    /// The inode of a file of a trash's `info/`, made on first sight.
    fn info_file_ino(inner: &mut Inner, path: &Path) -> u64 {
        if let Some(ino) = inner.info_inos.get(path) {
            return *ino;
        }
        let ino = inner.next_ino;
        inner.next_ino += 1;
        inner.info_inos.insert(path.to_path_buf(), ino);
        inner.info.insert(
            ino,
            Counted {
                path: path.to_path_buf(),
                lookups: 0,
            },
        );
        ino
    }

    pub(super) fn drop_info(inner: &mut Inner, path: &Path) {
        if let Some(ino) = inner.info_inos.remove(path) {
            inner.info.remove(&ino);
        }
    }

    // ---- the read side ----

    /// Attributes of a trash folder: owned by its uid, private (as the spec asks, and as
    /// `gio trash` checks before using it).
    pub(super) fn trash_dir_attr(&self, uid: u32, ino: u64, sub: Option<&str>) -> FsResult<Attr> {
        if !self.bin_exists(uid, sub) {
            return Err(FsError::quiet(libc::ENOENT));
        }
        let mut attr = self.attr(ino, Kind::Dir, 0, 0o700, self.started);
        attr.uid = uid;
        Ok(attr)
    }

    pub(super) fn trash_getattr(&self, node: &Node, ino: u64) -> FsResult<Attr> {
        match node {
            Node::Bin(uid) => self.trash_dir_attr(*uid, ino, None),
            Node::BinFiles(uid) => self.trash_dir_attr(*uid, ino, Some("files")),
            Node::BinInfo(uid) => self.trash_dir_attr(*uid, ino, Some("info")),
            Node::BinExpunged(uid) => self.trash_dir_attr(*uid, ino, Some("expunged")),
            Node::Info(path) => self.disk_attr(ino, path, None),
            _ => Err(FsError::quiet(libc::ENOENT)),
        }
    }

    /// Lookups under a trash folder (`None`: `parent` is not one).
    pub(super) fn trash_lookup(&self, parent: u64, name: &str) -> Option<FsResult<Attr>> {
        let missing = Err(FsError::quiet(libc::ENOENT));
        Some(match decode_trash(parent)? {
            Node::Bin(uid) => match sub_ino(uid, name) {
                Some(ino) => self.trash_dir_attr(uid, ino, Some(name)),
                None => missing,
            },
            Node::BinFiles(_) | Node::BinExpunged(_) => match self.job_in(parent, name) {
                Some(id) => self.getattr(job_folder::dir_ino(id)),
                None => missing,
            },
            Node::BinInfo(uid) => {
                let path = self.info_path(uid, name);
                self.disk_attr(0, &path, None).map(|attr| {
                    let mut inner = self.lock();
                    let ino = Self::info_file_ino(&mut inner, &path);
                    if let Some(c) = inner.info.get_mut(&ino) {
                        c.lookups += 1;
                    }
                    Attr { ino, ..attr }
                })
            }
            _ => missing,
        })
    }

    /// The trash folders at the root.
    pub(super) fn bins(&self) -> Vec<DirEntry> {
        let mut out: Vec<DirEntry> = std::fs::read_dir(self.registry.layout().trash())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                let uid = bin_uid(&name)?;
                Some(DirEntry {
                    ino: bin_ino(uid),
                    kind: Kind::Dir,
                    name,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Listings under a trash folder (`None`: `ino` is not one).
    pub(super) fn trash_readdir(&self, ino: u64) -> Option<FsResult<Vec<DirEntry>>> {
        let entry = |ino, kind, name: &str| DirEntry {
            ino,
            kind,
            name: name.to_string(),
        };
        Some(match decode_trash(ino)? {
            Node::Bin(uid) => Ok(SUBDIRS
                .into_iter()
                .filter(|s| self.bin_exists(uid, Some(s)))
                .filter_map(|s| Some(entry(sub_ino(uid, s)?, Kind::Dir, s)))
                .collect()),
            Node::BinFiles(uid) | Node::BinExpunged(uid) => Ok(self
                .trashed_in(uid, matches!(decode_trash(ino), Some(Node::BinExpunged(_))))
                .into_iter()
                .map(|(id, name)| entry(job_folder::dir_ino(id), Kind::Dir, &name))
                .collect()),
            Node::BinInfo(uid) => {
                let dir = self.info_path(uid, "");
                let names: Vec<String> = match std::fs::read_dir(&dir) {
                    Ok(rd) => rd
                        .flatten()
                        .filter_map(|e| e.file_name().to_str().map(String::from))
                        .collect(),
                    Err(e) => return Some(Err(FsError::io(e, "readdir"))),
                };
                let mut inner = self.lock();
                Ok(names
                    .into_iter()
                    .map(|n| {
                        let ino = Self::info_file_ino(&mut inner, &dir.join(&n));
                        entry(ino, Kind::File, &n)
                    })
                    .collect())
            }
            _ => return None,
        })
    }

    /// The parent of a trash inode, or of a job (in `jobs/` or in a trash).
    pub(super) fn trash_parent(&self, node: &Node) -> Option<u64> {
        match node {
            Node::Bin(_) => Some(ROOT),
            Node::BinFiles(uid) | Node::BinInfo(uid) | Node::BinExpunged(uid) => {
                Some(bin_ino(*uid))
            }
            Node::Info(path) => path
                .parent()
                .and_then(Path::parent)
                .and_then(Path::file_name)
                .and_then(|n| n.to_str())
                .and_then(bin_uid)
                .map(info_ino),
            Node::Job(id) => self.registry.with_job(*id, |j| match &j.trashed {
                Some(t) => bin_uid(&t.bin).map_or(ROOT, |uid| match t.expunged {
                    Some(_) => expunged_ino(uid),
                    None => files_ino(uid),
                }),
                None => JOBS,
            }),
            _ => None,
        }
    }

    // ---- the write side ----

    /// `mkdir .Trash-<uid>` at the root, and `files`, `info`, `expunged` inside it; `None`:
    /// not here.
    pub(super) fn trash_mkdir(&self, parent: u64, name: &str) -> Option<FsResult<Attr>> {
        let (uid, sub, ino) = match (parent, decode_trash(parent)) {
            (ROOT, _) => {
                let uid = bin_uid(name)?;
                (uid, None, bin_ino(uid))
            }
            (_, Some(Node::Bin(uid))) => (uid, Some(name), sub_ino(uid, name)?),
            _ => return None,
        };
        let mut path = self.registry.layout().trash_bin(&bin_name(uid));
        if let Some(sub) = sub {
            if !path.is_dir() {
                return Some(Err(FsError::quiet(libc::ENOENT)));
            }
            path.push(sub);
        } else if let Err(e) = crate::engine::registry::private_dir(&self.registry.layout().trash())
        {
            return Some(Err(FsError::io(e, "mkdir")));
        }
        Some(
            std::fs::create_dir(&path)
                .map_err(|e| FsError::io(e, "mkdir"))
                .and_then(|()| self.trash_dir_attr(uid, ino, sub)),
        )
    }

    /// `create` in a trash's `info/`: an ordinary local file.
    pub(super) fn info_create(&self, uid: u32, name: &str, mode: u32) -> FsResult<(Attr, Opened)> {
        let path = self.info_path(uid, name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| FsError::io(e, "create"))?;
        let _ = file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777));
        let mut inner = self.lock();
        let ino = Self::info_file_ino(&mut inner, &path);
        if let Some(c) = inner.info.get_mut(&ino) {
            c.lookups += 1;
        }
        let fh = Self::new_handle(
            &mut inner,
            Handle::Plain {
                file: Arc::new(file),
                write: true,
            },
        );
        drop(inner);
        let attr = self.disk_attr(ino, &path, None)?;
        Ok((
            attr,
            Opened {
                fh,
                direct_io: false,
                backing: None,
                keep_cache: false,
            },
        ))
    }

    /// `rm` of a file in a job folder: hidden, its data kept until the job's DELETE succeeds.
    /// In `jobs/`, an unfinished job keeps its files (EBUSY): `rm -r` then stops before the
    /// DELETE. In the trash, emptying may start before it ends.
    pub(super) fn unlink_job_file(&self, id: JobId, name: &str) -> FsResult<()> {
        let refusal = self
            .registry
            .with_job(id, |job| {
                if job_folder::part_named(job, name).is_none() {
                    Some(FsError::quiet(libc::ENOENT))
                } else if job.is_active() && job.trashed.is_none() {
                    Some(busy(job))
                } else {
                    None
                }
            })
            .ok_or(FsError::quiet(libc::ENOENT))?;
        if let Some(e) = refusal {
            return Err(e);
        }
        self.registry.update(id, |j| {
            j.hidden.insert(name.to_string());
        });
        Ok(())
    }

    /// `rmdir` of a job folder (in `jobs/` or in the trash).
    pub(super) fn remove_job(self: &Arc<Self>, id: JobId) -> Rmdir {
        enum Plan {
            Refused(FsError),
            Later,
            Delete(String),
        }
        let plan = self.registry.with_job(id, |job| {
            let shown = job_folder::parts(job);
            if job.is_active() && job.trashed.is_none() {
                Plan::Refused(busy(job))
            } else if !shown.is_empty() {
                let names: Vec<&str> = shown.iter().map(|(n, _)| n.as_str()).collect();
                Plan::Refused(FsError::refuse(
                    libc::ENOTEMPTY,
                    format!(
                        "{} still holds {} (rm -r removes its files first)",
                        place(job),
                        names.join(", ")
                    ),
                ))
            } else if job.is_active() && job.project_id.is_some() {
                // A project exists (or its create is in flight): delete it once it ends.
                Plan::Later
            } else {
                // Not created yet (staged, uploading, waiting to send): deleting it now stops
                // its create, so nothing is ever billed for it.
                Plan::Delete(place(job))
            }
        });
        let place = match plan {
            None => return Rmdir::Done(Err(FsError::quiet(libc::ENOENT))),
            Some(Plan::Refused(e)) => return Rmdir::Done(Err(e)),
            Some(Plan::Delete(place)) => place,
            Some(Plan::Later) => {
                // Decided under the registry's lock: either the engine sees the mark when the
                // job ends, or the job ended first and is deleted now (never both).
                let mut later = None;
                self.registry.update(id, |j| {
                    if j.is_active() {
                        j.delete_when_done = true;
                        later = Some(place(j));
                    }
                });
                match later {
                    Some(place) => {
                        log::info!(
                            "{place}: emptied from the trash while still running; it is deleted \
                             on Magic Hour once it ends"
                        );
                        return Rmdir::Done(Ok(()));
                    }
                    None => match self.registry.with_job(id, place) {
                        Some(place) => place,
                        None => return Rmdir::Done(Ok(())),
                    },
                }
            }
        };
        let Some(hooks) = self.hooks.get() else {
            return Rmdir::Done(Err(FsError::refuse(libc::EIO, "the engine is not running")));
        };
        let delete = (hooks.delete)(id);
        let registry = self.registry.clone();
        Rmdir::Pending(Box::pin(async move {
            delete.await.map_err(|e| {
                // Not deleted: every file comes back, the job is whole again (an expunged one
                // back in the trash's files/).
                registry.update(id, |j| {
                    j.hidden.clear();
                    if let Some(t) = j.trashed.as_mut() {
                        t.expunged = None;
                    }
                });
                FsError::refuse(
                    e.errno(),
                    format!("rmdir {place}: not deleted on Magic Hour ({e}); the job stays, with all its files"),
                )
            })
        }))
    }

    /// Renames that involve a trash (`None`: none does). Trashing and restoring are local:
    /// no API call.
    pub(super) fn rename_trash(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
    ) -> Option<FsResult<()>> {
        let from = decode_trash(parent);
        let to = decode_trash(new_parent);
        if from.is_none() && to.is_none() {
            return None;
        }
        Some(match (from, to) {
            (Some(Node::BinInfo(a)), Some(Node::BinInfo(b))) => {
                let (src, dst) = (self.info_path(a, name), self.info_path(b, new_name));
                std::fs::rename(&src, &dst)
                    .map_err(|e| FsError::io(e, "rename"))
                    .map(|()| {
                        let mut inner = self.lock();
                        Self::drop_info(&mut inner, &dst);
                        if let Some(ino) = inner.info_inos.remove(&src) {
                            inner.info_inos.insert(dst.clone(), ino);
                            if let Some(c) = inner.info.get_mut(&ino) {
                                c.path = dst;
                            }
                        }
                    })
            }
            (None, Some(Node::BinFiles(uid))) if parent == JOBS => {
                self.trash_job(name, uid, new_name)
            }
            (Some(Node::BinFiles(uid)), None) if new_parent == JOBS => {
                self.restore_job(uid, name, new_name)
            }
            (from, to) if job_bin(from.clone()).is_some() && job_bin(to.clone()).is_some() => {
                self.move_in_trash(parent, name, new_parent, new_name)
            }
            _ => Err(FsError::refuse(
                libc::EXDEV,
                format!("rename {name:?} -> {new_name:?}: the trash takes jobs only"),
            )),
        })
    }

    fn trash_job(&self, name: &str, uid: u32, new_name: &str) -> FsResult<()> {
        let id = self
            .job_in(JOBS, name)
            .ok_or(FsError::quiet(libc::ENOENT))?;
        self.set_trashed(id, uid, false, new_name)?;
        log::info!(
            "jobs/{name}: moved to the trash as {}/files/{new_name} (nothing sent to Magic Hour)",
            bin_name(uid)
        );
        self.invalidate(Inval::Entry {
            parent: JOBS,
            name: name.to_string(),
        });
        Ok(())
    }

    /// Within a trash or between trashes: `files/` to `expunged/` (gvfs emptying it), or a
    /// new name.
    fn move_in_trash(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
    ) -> FsResult<()> {
        let id = self
            .job_in(parent, name)
            .ok_or(FsError::quiet(libc::ENOENT))?;
        let (uid, expunged) =
            job_bin(decode_trash(new_parent)).ok_or(FsError::quiet(libc::ENOENT))?;
        self.set_trashed(id, uid, expunged, new_name)
    }

    /// Puts a job in the trash `uid` as `new_name` (in `files/`, or in `expunged/`), unless
    /// that name is taken there.
    fn set_trashed(&self, id: JobId, uid: u32, expunged: bool, new_name: &str) -> FsResult<()> {
        let sub = if expunged { "expunged" } else { "files" };
        if !self.bin_exists(uid, Some(sub)) {
            return Err(FsError::quiet(libc::ENOENT));
        }
        if self
            .trashed_in(uid, expunged)
            .iter()
            .any(|(other, n)| n == new_name && *other != id)
        {
            return Err(FsError::refuse(
                libc::EEXIST,
                format!("{}/{sub}/{new_name} exists", bin_name(uid)),
            ));
        }
        let bin = bin_name(uid);
        self.registry
            .update(id, |j| {
                let name = match (&j.trashed, expunged) {
                    // Expunging keeps the name it had in files/, to come back under it.
                    (Some(t), true) if t.bin == bin => t.name.clone(),
                    _ => new_name.to_string(),
                };
                j.trashed = Some(Trashed {
                    bin,
                    name,
                    expunged: expunged.then(|| new_name.to_string()),
                });
            })
            .map(|_| ())
            .ok_or(FsError::quiet(libc::ENOENT))
    }

    /// `.Trash-<uid>/files/x -> jobs/y`: back under `jobs/` (renamed if `y` is another name).
    fn restore_job(&self, uid: u32, name: &str, new_name: &str) -> FsResult<()> {
        let id = self
            .job_in(files_ino(uid), name)
            .ok_or(FsError::quiet(libc::ENOENT))?;
        let job_name = self
            .registry
            .with_job(id, |j| j.name.clone())
            .ok_or(FsError::quiet(libc::ENOENT))?;
        if job_name != new_name {
            // The job keeps its name while trashed (no new job takes it); restoring under
            // another one is a rename, refused (EEXIST) if that name is taken.
            if self.registry.by_name(new_name).is_some() {
                return Err(FsError::refuse(
                    libc::EEXIST,
                    format!("jobs/{new_name} exists"),
                ));
            }
            use crate::engine::registry::RenameError;
            self.registry.rename(id, new_name).map_err(|e| match e {
                RenameError::NotFound => FsError::quiet(libc::ENOENT),
                RenameError::Exists(_) => FsError::refuse(libc::EEXIST, e.to_string()),
                RenameError::Store(_) => FsError::refuse(libc::EIO, e.to_string()),
            })?;
        }
        self.registry.update(id, |j| j.trashed = None);
        log::info!(
            "{}/files/{name}: restored to jobs/{new_name}",
            bin_name(uid)
        );
        self.invalidate(Inval::Entry {
            parent: files_ino(uid),
            name: name.to_string(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dot_trash_dash_digits_names_a_trash() {
        assert_eq!(bin_uid(".Trash-0"), Some(0));
        assert_eq!(bin_uid(".Trash-1000"), Some(1000));
        for bad in [
            ".Trash",
            ".Trash-",
            ".Trash-x",
            ".Trash-007",
            ".Trash--1",
            "Trash-1",
        ] {
            assert_eq!(bin_uid(bad), None, "{bad}");
        }
        for uid in [0, 1000, u32::MAX] {
            assert!(matches!(decode_trash(bin_ino(uid)), Some(Node::Bin(u)) if u == uid));
            assert!(matches!(decode_trash(files_ino(uid)), Some(Node::BinFiles(u)) if u == uid));
            assert!(matches!(decode_trash(info_ino(uid)), Some(Node::BinInfo(u)) if u == uid));
            assert!(
                matches!(decode_trash(expunged_ino(uid)), Some(Node::BinExpunged(u)) if u == uid)
            );
            assert!(expunged_ino(uid) < job_folder::JOB_BASE);
        }
        assert!(decode_trash(job_folder::JOB_BASE).is_none());
    }
}
