//! Who may do what on a mount other users see (`--allow-other`): the modes shown are the
//! modes enforced. Each call is checked here with the POSIX rules the kernel applies under
//! `default_permissions` (owner, group and other bits of the attributes shown, supplementary
//! groups, the sticky bit, root passes), so the answer is the same with `--default-permissions`
//! (the kernel decides first) or without it (this decides). A mount only its owner sees is not
//! checked (the kernel lets no one else in).
//!
//! What is shown (with `--allow-other`):
//! - the root, `inbox/`: the mount's owner's, 0755;
//! - `jobs/`: the mount's owner's, 01777 (sticky: a job can be removed or renamed only by its
//!   submitter, the mount's owner and root);
//! - `inbox/<tool>/`: 0755 (only the mount's owner submits: it spends their credits), 01777
//!   with `--allow-other-submit`;
//! - a job's folder: its submitter's, group the mount's owner's group, 0770; its files 0440;
//!   a failed job's kept inputs 0400 (its submitter alone reads them).

use super::*;

/// Who makes a request: uid, primary gid and supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// The mount's sharing options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sharing {
    /// `--allow-other`: other users see the mount (and the rules here apply).
    pub allow_other: bool,
    /// `--allow-other-submit`: other users may submit (spending the owner's credits).
    pub others_submit: bool,
}

/// What a request asks, for the check.
#[derive(Debug, Clone, Copy)]
pub enum Ask<'a> {
    /// Look up a name in a folder (search permission).
    Lookup(u64),
    /// Open a file (or list a folder) for reading and/or writing.
    Open {
        ino: u64,
        write: bool,
    },
    List(u64),
    /// Make a name in a folder.
    Make {
        parent: u64,
        name: &'a str,
    },
    /// Remove a name from a folder.
    Remove {
        parent: u64,
        name: &'a str,
    },
    /// Move a name from one folder to another.
    Rename {
        parent: u64,
        name: &'a str,
        new_parent: u64,
        new_name: &'a str,
    },
    /// Change a file's mode, owner or times (its owner only).
    Chmod(u64),
}

const R: u16 = 4;
const W: u16 = 2;
const X: u16 = 1;

impl Drive {
    /// Sets the mount's sharing options (once, before mounting; unset: not shared).
    pub fn set_sharing(&self, sharing: Sharing) {
        let _ = self.sharing.set(sharing);
    }

    /// Whether other users see the mount (and calls are checked).
    pub fn shared(&self) -> bool {
        self.sharing().allow_other
    }

    /// `chmod`, `chown`, `touch` (utimens): a job's folder and files keep theirs (`EPERM`);
    /// the drive's fixed folders ignore them; inbox files take them.
    pub fn may_change_attrs(
        &self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        times: bool,
    ) -> FsResult<()> {
        let node = self.node(&self.lock(), ino);
        let what = match (mode, uid.or(gid), times) {
            (Some(_), _, _) => "chmod",
            (_, Some(_), _) => "chown",
            _ => "touch",
        };
        let job = match node {
            Some(Node::Job(id) | Node::JobFile(id, _)) => id,
            _ => return Ok(()),
        };
        let name = self
            .registry
            .with_job(job, |j| j.name.clone())
            .unwrap_or_default();
        Err(FsError::refuse(
            libc::EPERM,
            format!(
                "{what} jobs/{name}: a job's folder and files keep their mode, owner and times"
            ),
        ))
    }

    /// `chown` of an inbox file or a trash's `.trashinfo`: only root gives a file away; its
    /// owner may give it to one of their groups (`who`: `None` for root).
    pub fn chown(
        &self,
        ino: u64,
        uid: Option<u32>,
        gid: Option<u32>,
        who: Option<&Who>,
    ) -> FsResult<()> {
        let path = match self.node(&self.lock(), ino) {
            Some(Node::Staged(rel)) => self.inbox.join(rel),
            Some(Node::Info(path)) => path,
            _ => return Ok(()),
        };
        if let Some(who) = who {
            let a = self.getattr(ino)?;
            let gives_away = uid.is_some_and(|u| u != a.uid);
            let foreign_group =
                gid.is_some_and(|g| g != a.gid && g != who.gid && !who.groups.contains(&g));
            if gives_away
                || a.uid != who.uid && (uid.is_some() || gid.is_some_and(|g| g != a.gid))
                || foreign_group
            {
                return Err(FsError::refuse(
                    libc::EPERM,
                    format!("uid {} may not chown inode {ino}", who.uid),
                ));
            }
        }
        std::os::unix::fs::lchown(&path, uid, gid).map_err(|e| FsError::io(e, "chown"))
    }

    pub(super) fn sharing(&self) -> Sharing {
        self.sharing.get().copied().unwrap_or_default()
    }

    /// Owner shown for a job: its submitter on a shared mount, else the mount's owner.
    pub(super) fn job_owner(&self, job: &Job) -> (u32, u32) {
        match job.owner {
            Some((uid, _)) if self.sharing().allow_other => (uid, self.cfg.gid),
            _ => (self.cfg.uid, self.cfg.gid),
        }
    }

    /// Whether `who` may do `ask`: `Ok`, or `EACCES`/`EPERM` with a line that says why.
    pub fn permit(&self, who: &Who, ask: Ask) -> FsResult<()> {
        if !self.sharing().allow_other || who.uid == 0 {
            return Ok(());
        }
        match ask {
            Ask::Lookup(dir) => self.need(who, dir, X, "look into"),
            Ask::List(dir) => self.need(who, dir, R, "list"),
            Ask::Open { ino, write } => self.need(who, ino, if write { W } else { R }, "open"),
            Ask::Make { parent, name } => {
                // The desktop trash: each user makes their own `.Trash-<uid>` at the root.
                if parent == ROOT && trash::bin_uid(name) == Some(who.uid) {
                    return Ok(());
                }
                if matches!(
                    self.node(&self.lock(), parent),
                    Some(Node::Tool(_) | Node::Preset(_))
                ) && !self.allowed(who, parent, W | X)
                {
                    return Err(FsError::refuse(
                        libc::EACCES,
                        format!(
                            "uid {} may not submit {name:?}: this mount spends uid {}'s credits \
                             (`mhfs mount --allow-other-submit` lets other users submit)",
                            who.uid, self.cfg.uid
                        ),
                    ));
                }
                self.need(who, parent, W | X, "create in")
            }
            Ask::Remove { parent, name } => self.may_unlink(who, parent, name, "remove"),
            Ask::Rename {
                parent,
                name,
                new_parent,
                new_name,
            } => {
                self.may_unlink(who, parent, name, "move")?;
                if self.child_owner(new_parent, new_name).is_some() {
                    self.may_unlink(who, new_parent, new_name, "replace")
                } else {
                    self.need(who, new_parent, W | X, "move into")
                }
            }
            Ask::Chmod(ino) => {
                let a = self.getattr(ino)?;
                if a.uid == who.uid {
                    Ok(())
                } else {
                    Err(FsError::refuse(
                        libc::EPERM,
                        format!(
                            "uid {} may not change the mode of inode {ino}: it is uid {}'s",
                            who.uid, a.uid
                        ),
                    ))
                }
            }
        }
    }

    /// The POSIX check of `bits` (r=4, w=2, x=1) on an inode's attributes as shown.
    fn allowed(&self, who: &Who, ino: u64, bits: u16) -> bool {
        let Ok(a) = self.getattr(ino) else {
            return true; // a miss is answered by the call itself
        };
        let class = if a.uid == who.uid {
            a.perm >> 6
        } else if a.gid == who.gid || who.groups.contains(&a.gid) {
            a.perm >> 3
        } else {
            a.perm
        };
        class & bits == bits
    }

    fn need(&self, who: &Who, ino: u64, bits: u16, what: &str) -> FsResult<()> {
        if self.allowed(who, ino, bits) {
            return Ok(());
        }
        let a = self.getattr(ino)?;
        Err(FsError::refuse(
            libc::EACCES,
            format!(
                "uid {} may not {what} inode {ino} (uid {}, gid {}, mode {:o})",
                who.uid, a.uid, a.gid, a.perm
            ),
        ))
    }

    /// Removing (or moving) a name: write and search on its folder, and in a sticky folder
    /// (`jobs/`) only the entry's owner, the folder's owner or root.
    fn may_unlink(&self, who: &Who, parent: u64, name: &str, what: &str) -> FsResult<()> {
        self.need(who, parent, W | X, what)?;
        let dir = self.getattr(parent)?;
        if dir.perm & 0o1000 == 0 || dir.uid == who.uid {
            return Ok(());
        }
        match self.child_owner(parent, name) {
            Some(owner) if owner != who.uid => Err(FsError::refuse(
                libc::EPERM,
                format!(
                    "uid {} may not {what} {name:?}: it is uid {owner}'s (only its submitter, \
                     the mount's owner and root may)",
                    who.uid
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The owner shown for a name in a folder, without taking a reference to it.
    fn child_owner(&self, parent: u64, name: &str) -> Option<u32> {
        if parent == JOBS
            || matches!(
                trash::decode_trash(parent),
                Some(Node::BinFiles(_) | Node::BinExpunged(_))
            )
        {
            let id = self.job_in(parent, name)?;
            return self.registry.with_job(id, |j| self.job_owner(j).0);
        }
        if let Some((id, None)) = job_folder::decode(parent) {
            return self.registry.with_job(id, |j| self.job_owner(j).0);
        }
        let inner = self.lock();
        let (dir, _, _) = self.staged_dir(&inner, parent)?;
        let meta = std::fs::symlink_metadata(self.inbox.join(dir).join(name)).ok()?;
        Some(std::os::unix::fs::MetadataExt::uid(&meta))
    }
}
