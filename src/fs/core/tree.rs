//! The read side of the tree: attributes, lookups, listings, opening and reading. Served from
//! memory and local disk only; job state is read from the registry without waiting for its
//! durable writes.

use super::*;

impl Drive {
    // ---- attributes ----

    pub(super) fn attr(
        &self,
        ino: u64,
        kind: Kind,
        size: u64,
        perm: u16,
        mtime: SystemTime,
    ) -> Attr {
        let ttl = match kind {
            Kind::Dir => DIR_TTL,
            Kind::File => FILE_TTL,
        };
        Attr {
            ino,
            kind,
            size,
            perm,
            mtime,
            atime: mtime,
            ctime: mtime,
            ttl,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
            direct: false,
        }
    }

    fn dir_attr(&self, ino: u64, perm: u16) -> Attr {
        self.attr(ino, Kind::Dir, 0, perm, self.started)
    }

    /// Attributes of a file on local disk (an inbox file, a kept input, an output).
    pub(super) fn disk_attr(&self, ino: u64, path: &Path, perm: Option<u16>) -> FsResult<Attr> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| FsError::io(e, "stat"))?;
        Ok(self.meta_attr(ino, &meta, perm))
    }

    /// Attributes from a local file's metadata: its size, times (atime and ctime included), and on a
    /// shared mount its owner (a staged file is its writer's).
    pub(super) fn meta_attr(&self, ino: u64, meta: &std::fs::Metadata, perm: Option<u16>) -> Attr {
        use std::os::unix::fs::MetadataExt;
        let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
        let mtime = meta.modified().unwrap_or(self.started);
        let ctime = SystemTime::UNIX_EPOCH
            + Duration::new(
                meta.ctime().max(0) as u64,
                meta.ctime_nsec().clamp(0, 999_999_999) as u32,
            );
        let mut a = self.attr(
            ino,
            kind,
            meta.len(),
            perm.unwrap_or((meta.permissions().mode() & 0o7777) as u16),
            mtime,
        );
        a.ctime = ctime;
        a.atime = meta.accessed().unwrap_or(mtime);
        if self.sharing().allow_other {
            (a.uid, a.gid) = (meta.uid(), meta.gid());
        }
        a
    }

    /// A submitted file's old inode: the file in its job, or, when that job is gone (a
    /// duplicate of another job, removed at once), a plain attribute, so `cp -p`'s and `mv`'s
    /// late setattr still succeed.
    pub(super) fn moved_attr(&self, ino: u64, path: &Path) -> FsResult<Attr> {
        match self.disk_attr(ino, path, None) {
            Err(_) if !path.exists() => Ok(self.attr(ino, Kind::File, 0, 0o644, self.started)),
            other => other,
        }
    }

    /// Attributes of an inbox file or folder. Never cached by the kernel: a file leaves the
    /// inbox the moment it is complete, and a cached entry would send the next `open` of that
    /// name to the file that left.
    pub(super) fn staged_attr(&self, ino: u64, rel: &Path) -> FsResult<Attr> {
        let attr = self.disk_attr(ino, &self.inbox.join(rel), None)?;
        Ok(Attr {
            ttl: LIVE_TTL,
            ..attr
        })
    }

    fn job_attr(&self, ino: u64, id: JobId, part: Option<Part>) -> FsResult<Attr> {
        enum Seen {
            Dir(SystemTime),
            Content(usize, SystemTime),
            /// A local file, and for an output what its record says (size, time), shown while
            /// the file is evicted from the local cache.
            Local(Option<PathBuf>, Option<(u64, SystemTime)>),
        }
        let layout = self.registry.layout();
        let (seen, (uid, gid), in_jobs) = self
            .registry
            .with_job(id, |job| {
                let seen = match part {
                    None => Seen::Dir(job.created),
                    Some(p) if !job_folder::shows(job, p) => Seen::Local(None, None),
                    Some(p) => match job_folder::content(job, p) {
                        Some(c) => Seen::Content(c.len(), job.updated),
                        None => Seen::Local(
                            job_folder::local_file(layout, job, p),
                            job_folder::recorded(job, p),
                        ),
                    },
                };
                (seen, self.job_owner(job), job.trashed.is_none())
            })
            .ok_or(FsError::quiet(libc::ENOENT))?;
        // Shared mount: the submitter's, readable by the mount's owner's group; kept inputs by
        // the submitter alone (access.rs).
        let shared = self.sharing().allow_other;
        let (dir_mode, file_mode) = if shared {
            (0o770, 0o440)
        } else {
            (0o755, 0o444)
        };
        let file_mode = match part {
            Some(Part::Input(_)) if shared => 0o400,
            _ => file_mode,
        };
        let attr = match seen {
            Seen::Dir(t) => self.attr(ino, Kind::Dir, 0, dir_mode, t),
            Seen::Content(len, t) => Attr {
                ttl: LIVE_TTL,
                direct: true,
                ..self.attr(ino, Kind::File, len as u64, file_mode, t)
            },
            Seen::Local(Some(path), recorded) => {
                match (self.disk_attr(ino, &path, Some(file_mode)), recorded) {
                    (Err(e), Some((size, t))) if e.errno == libc::ENOENT => {
                        self.attr(ino, Kind::File, size, file_mode, t)
                    }
                    (attr, _) => attr?,
                }
            }
            Seen::Local(None, _) => return Err(FsError::quiet(libc::ENOENT)),
        };
        // In jobs/, every change is pushed to the kernel (`invalidations`): the folder and
        // the entries that, once shown, stay (status, request.json, job.json, outputs) are
        // kept long. `error` and kept inputs go away when an unknown create is settled, and a
        // trashed job's entries live elsewhere: those keep the short TTLs.
        let lasting = matches!(
            part,
            None | Some(Part::Status | Part::Request | Part::JobJson | Part::Output(_))
        );
        // A shared mount checks each user's lookups (access.rs): the kernel must ask.
        let ttl = if in_jobs && lasting && !self.sharing().allow_other {
            JOB_TTL
        } else {
            attr.ttl
        };
        Ok(Attr {
            uid,
            gid,
            ttl,
            ..attr
        })
    }

    /// The file behind an open inbox (or `.trashinfo`) handle: it stays usable after its name
    /// is removed (POSIX), so `fstat`, `ftruncate`, reads and writes go to it, not to a path.
    pub(super) fn handle_file(&self, fh: u64) -> Option<Arc<File>> {
        match self.lock().handles.get(&fh) {
            Some(Handle::Staged { file, .. }) | Some(Handle::Plain { file, .. }) => {
                Some(file.clone())
            }
            _ => None,
        }
    }

    /// The content of `.mhfs-state`: the state directory, absolute, and a newline.
    fn state_file(&self) -> Vec<u8> {
        let root = self.registry.layout().root();
        let abs = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let mut s = abs.to_string_lossy().into_owned();
        s.push('\n');
        s.into_bytes()
    }

    /// `activity.log`: its real size, never cached, so `tail -f` sees it grow.
    /// The mode of the drive's own files about the account (`activity.log`, `credits`): on a
    /// mount other users see, they are the mount owner's alone (they name every user's
    /// submissions and the balance).
    fn owner_only(&self) -> u16 {
        if self.shared() { 0o400 } else { 0o444 }
    }

    fn activity_attr(&self) -> Attr {
        let path = self.registry.activity().path();
        let perm = self.owner_only();
        let attr = self
            .disk_attr(ACTIVITY, path, Some(perm))
            .unwrap_or_else(|_| self.attr(ACTIVITY, Kind::File, 0, perm, self.started));
        Attr {
            ttl: LIVE_TTL,
            direct: true,
            ..attr
        }
    }

    /// An entry of `outputs/`: the job's output file, while the job shows it (not trashed).
    fn flat_attr(&self, ino: u64, id: JobId, i: usize) -> FsResult<Attr> {
        let shown = self
            .registry
            .with_job(id, |job| job_folder::flat(job).iter().any(|(_, k)| *k == i))
            .unwrap_or(false);
        if !shown {
            return Err(FsError::quiet(libc::ENOENT));
        }
        // Its name follows the job's (a rename of the job renames it): not kept long.
        let attr = self.job_attr(ino, id, Some(Part::Output(i)))?;
        Ok(Attr {
            ttl: FILE_TTL,
            ..attr
        })
    }

    /// The entry of `outputs/` with this name.
    fn flat_named(&self, name: &str) -> Option<(JobId, usize)> {
        job_folder::flat_owner_candidates(name)
            .into_iter()
            .filter_map(|c| self.registry.by_name(c))
            .find_map(|id| {
                self.registry
                    .with_job(id, |job| {
                        job_folder::flat(job)
                            .into_iter()
                            .find(|(n, _)| n == name)
                            .map(|(_, i)| (id, i))
                    })
                    .flatten()
            })
    }

    /// `getattr` with the handle it came with (`fstat`): an open inbox file answers from its
    /// descriptor, even once unlinked.
    pub fn getattr_open(&self, ino: u64, fh: Option<u64>) -> FsResult<Attr> {
        let file = fh
            .and_then(|fh| self.handle_file(fh))
            .or_else(|| self.lock().orphans.get(&ino).cloned());
        if let Some(file) = file {
            let meta = file.metadata().map_err(|e| FsError::io(e, "fstat"))?;
            return Ok(self.meta_attr(ino, &meta, None));
        }
        self.getattr(ino)
    }

    pub fn getattr(&self, ino: u64) -> FsResult<Attr> {
        let node = self.node(&self.lock(), ino);
        match node.ok_or(FsError::quiet(libc::ENOENT))? {
            Node::Root | Node::Inbox => Ok(self.dir_attr(ino, 0o755)),
            // Shared: anyone may remove their own jobs (sticky), and submit only if allowed.
            Node::Jobs => Ok(self.dir_attr(
                ino,
                if self.sharing().allow_other {
                    0o1777
                } else {
                    0o755
                },
            )),
            Node::Tool(_) | Node::Preset(_) => Ok(self.dir_attr(
                ino,
                match self.sharing() {
                    Sharing {
                        allow_other: false, ..
                    } => 0o777,
                    Sharing {
                        others_submit: true,
                        ..
                    } => 0o1777,
                    _ => 0o755,
                },
            )),
            Node::Outputs => Ok(self.dir_attr(ino, 0o555)),
            Node::Activity => Ok(self.activity_attr()),
            Node::StateFile => Ok(Attr {
                ttl: DIR_TTL,
                ..self.attr(
                    ino,
                    Kind::File,
                    self.state_file().len() as u64,
                    0o444,
                    self.started,
                )
            }),
            Node::Flat(id, i) => self.flat_attr(ino, id, i),
            Node::Credits => Ok(Attr {
                ttl: LIVE_TTL,
                direct: true,
                ..self.attr(
                    ino,
                    Kind::File,
                    self.credits_text().len() as u64,
                    self.owner_only(),
                    SystemTime::now(),
                )
            }),
            Node::Readme => Ok(Attr {
                ttl: DIR_TTL,
                ..self.attr(
                    ino,
                    Kind::File,
                    self.readme.len() as u64,
                    0o444,
                    self.started,
                )
            }),
            Node::Staged(rel) => self.staged_attr(ino, &rel),
            Node::Moved(path) => self.moved_attr(ino, &path),
            Node::Job(id) => self.job_attr(ino, id, None),
            Node::JobFile(id, part) => self.job_attr(ino, id, Some(part)),
            node => self.trash_getattr(&node, ino),
        }
    }

    /// Where a directory inode lives in the staging area (`inbox/<tool>` or one of its folders):
    /// its path, its tool, and whether it is a submission folder. `None` while it is being
    /// submitted.
    pub(super) fn staged_dir(
        &self,
        inner: &Inner,
        ino: u64,
    ) -> Option<(PathBuf, &'static Tool, bool)> {
        match self.node(inner, ino)? {
            Node::Tool(t) => Some((PathBuf::from(t.slug), t, false)),
            Node::Preset(name) => {
                let tool = self.presets.get(&name)?.tool();
                Some((PathBuf::from(name), tool, false))
            }
            Node::Staged(rel) if rel.components().count() == 2 || scratch_area(&rel) => {
                let tool = self.tool_of_rel(&rel)?;
                let free = !Self::submitting(inner, &rel);
                (free && self.inbox.join(&rel).is_dir()).then_some((rel, tool, true))
            }
            _ => None,
        }
    }

    /// Whether an inbox path is (inside) something being submitted right now.
    pub(super) fn submitting(inner: &Inner, rel: &Path) -> bool {
        inner.submitting.iter().any(|p| rel.starts_with(p))
    }

    pub fn lookup(&self, parent: u64, name: &str) -> FsResult<Attr> {
        let missing = || Err(FsError::quiet(libc::ENOENT));
        match parent {
            ROOT => {
                return match name {
                    "README.txt" => self.getattr(README),
                    "inbox" => self.getattr(INBOX),
                    "jobs" => self.getattr(JOBS),
                    "activity.log" => self.getattr(ACTIVITY),
                    STATE_FILE_NAME => self.getattr(STATE_FILE),
                    "outputs" => self.getattr(OUTPUTS),
                    "credits" => self.getattr(CREDITS),
                    _ => match trash::bin_uid(name) {
                        Some(uid) => self.getattr(trash::bin_ino(uid)),
                        None => missing(),
                    },
                };
            }
            INBOX => {
                return match self.folder_ino(name) {
                    Some(ino) => self.getattr(ino),
                    None => Err(no_such_tool(name)),
                };
            }
            OUTPUTS => {
                return match self.flat_named(name) {
                    Some((id, i)) => match job_folder::flat_ino(id, i) {
                        Some(ino) => self.flat_attr(ino, id, i),
                        None => missing(),
                    },
                    None => missing(),
                };
            }
            JOBS => {
                let Some(id) = self.registry.by_name(name) else {
                    // A project id of a job made elsewhere: adopt it in the background (never a
                    // network call here); it appears in jobs/ once found.
                    if looks_like_project_id(name)
                        && self.registry.by_project(name).is_none()
                        && let Some(h) = self.hooks.get()
                    {
                        (h.adopt)(name.to_string());
                    }
                    return missing();
                };
                // A trashed job keeps its name (no new job takes it) but is not in jobs/.
                if self.job_in(JOBS, name).is_none() {
                    return missing();
                }
                return self.job_attr(job_folder::dir_ino(id), id, None);
            }
            _ => {}
        }
        if let Some(found) = self.trash_lookup(parent, name) {
            return found;
        }
        if parent >= job_folder::JOB_BASE {
            let Some((id, None)) = job_folder::decode(parent) else {
                return missing();
            };
            let part = self
                .registry
                .with_job(id, |job| job_folder::part_named(job, name))
                .flatten();
            let ino = part.and_then(|p| job_folder::part_ino(id, p));
            return match (part, ino) {
                (Some(p), Some(ino)) => self.job_attr(ino, id, Some(p)),
                _ => missing(),
            };
        }
        let mut inner = self.lock();
        let Some((dir, _, _)) = self.staged_dir(&inner, parent) else {
            return missing();
        };
        let rel = dir.join(name);
        if Self::submitting(&inner, &rel) {
            return missing();
        }
        // Only names that exist get an inode: misses (file managers probe a lot) cost nothing.
        let attr = self.staged_attr(0, &rel)?;
        let ino = Self::staged_ino(&mut inner, &rel);
        Self::remember(&mut inner, ino);
        Ok(Attr { ino, ..attr })
    }

    /// Whether the kernel may keep this folder's listing across opens: a job folder, each
    /// change of which is pushed to it (`Inval::Listing`; the kernel resets it by itself
    /// after its own changes there).
    pub fn keeps_listing(&self, ino: u64) -> bool {
        match job_folder::decode(ino) {
            // Kept inputs (a failed job's) come and go with files mhfs does not announce (a
            // pipeline step's input is the step before's output); a shared mount checks each
            // user's listing (access.rs), which a kept listing would skip.
            Some((id, None)) if !self.sharing().allow_other => self
                .registry
                .with_job(id, |j| !j.shows_inputs())
                .unwrap_or(false),
            _ => false,
        }
    }

    pub fn readdir(&self, ino: u64) -> FsResult<Vec<DirEntry>> {
        let entry = |ino, kind, name: &str| DirEntry {
            ino,
            kind,
            name: name.to_string(),
        };
        match ino {
            ROOT => {
                let mut root = vec![
                    entry(README, Kind::File, "README.txt"),
                    entry(INBOX, Kind::Dir, "inbox"),
                    entry(JOBS, Kind::Dir, "jobs"),
                    entry(OUTPUTS, Kind::Dir, "outputs"),
                    entry(ACTIVITY, Kind::File, "activity.log"),
                    entry(CREDITS, Kind::File, "credits"),
                ];
                root.extend(self.bins());
                return Ok(root);
            }
            INBOX => {
                let mut folders: Vec<DirEntry> = TOOLS
                    .iter()
                    .enumerate()
                    .map(|(i, t)| entry(tool_ino(i), Kind::Dir, t.slug))
                    .collect();
                folders.extend(
                    self.presets
                        .list()
                        .into_iter()
                        .map(|(ino, name)| entry(ino, Kind::Dir, &name)),
                );
                return Ok(folders);
            }
            OUTPUTS => {
                let mut all: Vec<DirEntry> = Vec::new();
                self.registry.select(|j| {
                    for (name, i) in job_folder::flat(j) {
                        if let Some(ino) = job_folder::flat_ino(j.id, i) {
                            all.push(entry(ino, Kind::File, &name));
                        }
                    }
                    None::<()>
                });
                // Two jobs' outputs may share a name (`a-2.png`: job a-2's only output, or job
                // a's second): the one a lookup finds is listed.
                let mut seen: HashMap<String, usize> = HashMap::new();
                for e in &all {
                    *seen.entry(e.name.clone()).or_default() += 1;
                }
                all.retain(|e| {
                    seen[&e.name] == 1
                        || self
                            .flat_named(&e.name)
                            .and_then(|(id, i)| job_folder::flat_ino(id, i))
                            == Some(e.ino)
                });
                return Ok(all);
            }
            JOBS => {
                return Ok(self.registry.select(|j| {
                    j.trashed
                        .is_none()
                        .then(|| entry(job_folder::dir_ino(j.id), Kind::Dir, &j.name))
                }));
            }
            _ => {}
        }
        if let Some(listed) = self.trash_readdir(ino) {
            return listed;
        }
        if ino >= job_folder::JOB_BASE {
            let Some((id, None)) = job_folder::decode(ino) else {
                return Err(FsError::quiet(libc::ENOTDIR));
            };
            let parts = self
                .registry
                .with_job(id, job_folder::parts)
                .ok_or(FsError::quiet(libc::ENOENT))?;
            return Ok(parts
                .into_iter()
                .filter_map(|(name, p)| {
                    job_folder::part_ino(id, p).map(|ino| entry(ino, Kind::File, &name))
                })
                .collect());
        }
        let dir = {
            let inner = self.lock();
            match self.staged_dir(&inner, ino) {
                Some((dir, _, _)) => dir,
                None if self.node(&inner, ino).is_some() => {
                    return Err(FsError::quiet(libc::ENOTDIR));
                }
                None => return Err(FsError::quiet(libc::ENOENT)),
            }
        };
        // The folder is read without the lock; inodes are handed out after.
        let mut found = Vec::new();
        for e in std::fs::read_dir(self.inbox.join(&dir))
            .map_err(|e| FsError::io(e, "readdir"))?
            .flatten()
        {
            let kind = if e.file_type().is_ok_and(|t| t.is_dir()) {
                Kind::Dir
            } else {
                Kind::File
            };
            found.push((e.file_name().to_string_lossy().to_string(), kind));
        }
        let mut inner = self.lock();
        let mut out = Vec::with_capacity(found.len());
        for (name, kind) in found {
            let rel = dir.join(&name);
            if !Self::submitting(&inner, &rel) {
                out.push(entry(Self::staged_ino(&mut inner, &rel), kind, &name));
            }
        }
        Ok(out)
    }

    /// The parent directory's inode of a node, for `..`.
    /// LOOKUP of "." (the inode itself) or ".." (its parent): what the kernel asks to rebuild a
    /// file handle of an NFS export whose inode it no longer caches. Counted as a lookup.
    pub fn lookup_dot(&self, ino: u64, dotdot: bool) -> FsResult<Attr> {
        let target = if dotdot { self.parent_of(ino) } else { ino };
        let attr = self.getattr(target)?;
        Self::remember(&mut self.lock(), target);
        Ok(attr)
    }

    pub fn parent_of(&self, ino: u64) -> u64 {
        let inner = self.lock();
        match self.node(&inner, ino) {
            Some(Node::Tool(_) | Node::Preset(_)) => INBOX,
            Some(
                node @ (Node::Job(_)
                | Node::Bin(_)
                | Node::BinFiles(_)
                | Node::BinInfo(_)
                | Node::BinExpunged(_)
                | Node::Info(_)),
            ) => {
                drop(inner);
                self.trash_parent(&node).unwrap_or(ROOT)
            }
            Some(Node::JobFile(id, _)) => job_folder::dir_ino(id),
            Some(Node::Flat(..)) => OUTPUTS,
            Some(Node::Staged(rel)) => {
                let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
                match parent.components().count() {
                    1 => self.folder_ino(&parent.to_string_lossy()).unwrap_or(INBOX),
                    _ => inner.inos.get(&parent).copied().unwrap_or(INBOX),
                }
            }
            _ => ROOT,
        }
    }

    // ---- open, read ----

    pub(super) fn new_handle(inner: &mut Inner, h: Handle) -> u64 {
        let fh = inner.next_fh;
        inner.next_fh += 1;
        inner.handles.insert(fh, h);
        fh
    }

    pub fn open(&self, ino: u64, write: bool, truncate: bool) -> FsResult<Opened> {
        let mut inner = self.lock();
        let opened = |fh, direct_io, backing: Option<Arc<File>>| Opened {
            fh,
            direct_io,
            // Only immutable local files (outputs, kept inputs) have a backing file.
            keep_cache: backing.is_some(),
            backing,
        };
        match self.node(&inner, ino) {
            Some(Node::Credits) => {
                if write {
                    return Err(FsError::refuse(libc::EACCES, "credits is read-only"));
                }
                drop(inner);
                let text = self.credits_text().into_bytes();
                let fh = Self::new_handle(&mut self.lock(), Handle::Snapshot(Arc::new(text)));
                Ok(opened(fh, true, None))
            }
            Some(Node::Readme) => {
                if write {
                    return Err(FsError::refuse(libc::EACCES, "README.txt is read-only"));
                }
                let fh =
                    Self::new_handle(&mut inner, Handle::Snapshot(Arc::new(self.readme.clone())));
                Ok(opened(fh, false, None))
            }
            Some(Node::Staged(rel)) => {
                if Self::submitting(&inner, &rel) {
                    return Err(FsError::quiet(libc::ENOENT));
                }
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(write)
                    .truncate(truncate && write)
                    .open(self.inbox.join(&rel))
                    .map_err(|e| FsError::io(e, "open"))?;
                let id = file
                    .metadata()
                    .map(|m| file_id(&m))
                    .map_err(|e| FsError::io(e, "open"))?;
                if write {
                    Self::start_writing(&mut inner, id, &rel, truncate);
                }
                let file = Arc::new(file);
                let fh = Self::new_handle(
                    &mut inner,
                    Handle::Staged {
                        file,
                        id,
                        rel,
                        write,
                    },
                );
                Ok(opened(fh, false, None))
            }
            Some(Node::StateFile) => {
                if write {
                    return Err(FsError::refuse(libc::EACCES, ".mhfs-state is read-only"));
                }
                let bytes = Arc::new(self.state_file());
                let fh = Self::new_handle(&mut inner, Handle::Snapshot(bytes));
                Ok(opened(fh, false, None))
            }
            Some(Node::Activity) => {
                if write {
                    return Err(FsError::refuse(libc::EACCES, "activity.log is read-only"));
                }
                let file = File::open(self.registry.activity().path())
                    .map_err(|e| FsError::io(e, "open activity.log"))?;
                let fh = Self::new_handle(&mut inner, Handle::Local(Arc::new(file)));
                // It grows: no page cache, every read sees the file as it is now.
                Ok(opened(fh, true, None))
            }
            Some(Node::Flat(id, i)) => {
                drop(inner);
                if write {
                    return Err(FsError::refuse(libc::EACCES, "outputs/ is read-only"));
                }
                self.flat_attr(ino, id, i)?;
                self.open(
                    job_folder::part_ino(id, Part::Output(i))
                        .ok_or(FsError::quiet(libc::ENOENT))?,
                    false,
                    false,
                )
            }
            Some(Node::JobFile(id, part)) => {
                drop(inner);
                if write {
                    return Err(FsError::refuse(libc::EACCES, "job folders are read-only"));
                }
                let layout = self.registry.layout();
                let (content, path) = self
                    .registry
                    .with_job(id, |job| {
                        if !job_folder::shows(job, part) {
                            return (None, None);
                        }
                        (
                            job_folder::content(job, part),
                            job_folder::local_file(layout, job, part),
                        )
                    })
                    .ok_or(FsError::quiet(libc::ENOENT))?;
                if let Some(content) = content {
                    let fh =
                        Self::new_handle(&mut self.lock(), Handle::Snapshot(Arc::new(content)));
                    return Ok(opened(fh, true, None));
                }
                let path = path.ok_or(FsError::quiet(libc::ENOENT))?;
                let file = File::open(&path).map_err(|e| FsError::io(e, "open"))?;
                if let (Part::Output(i), Some(h)) = (part, self.hooks.get()) {
                    (h.output_used)(id, i, &file);
                }
                Ok(self.open_local(file))
            }
            Some(Node::Info(path)) => {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(write)
                    .truncate(truncate && write)
                    .open(&path)
                    .map_err(|e| FsError::io(e, "open"))?;
                let file = Arc::new(file);
                let fh = Self::new_handle(&mut inner, Handle::Plain { file, write });
                Ok(opened(fh, false, None))
            }
            Some(Node::Moved(_)) | None => Err(FsError::quiet(libc::ENOENT)),
            Some(_) => Err(FsError::quiet(libc::EISDIR)),
        }
    }

    /// A handle on an immutable local file (an output, a kept input).
    fn open_local(&self, file: File) -> Opened {
        let file = Arc::new(file);
        let fh = Self::new_handle(&mut self.lock(), Handle::Local(file.clone()));
        Opened {
            fh,
            direct_io: false,
            keep_cache: true,
            backing: Some(file),
        }
    }

    /// `open`, where an output evicted from the local cache (`--cache-size`) is fetched again
    /// first: `Pending` until it is back (never on the calling thread), or EIO with one line
    /// saying which output could not be fetched, why, and what to do.
    pub fn open_or_fetch(self: &Arc<Self>, ino: u64, write: bool, truncate: bool) -> Open {
        // Opened as usual; only an output that is listed but whose file is gone is fetched.
        let (id, i) = match self.open(ino, write, truncate) {
            Err(e) if e.errno == libc::ENOENT && !write => match self.evicted_output(ino) {
                Some(key) => key,
                None => return Open::Done(Err(e)),
            },
            done => return Open::Done(done),
        };
        let Some(hooks) = self.hooks.get() else {
            return Open::Done(self.open(ino, write, truncate));
        };
        let fetch = (hooks.fetch_output)(id, i);
        let me = self.clone();
        Open::Pending(Box::pin(async move {
            let file = fetch
                .await
                .map_err(|line| FsError::refuse(libc::EIO, line))?;
            Ok(me.open_local(file))
        }))
    }

    /// The job and output index of an output this inode shows (in its job folder or in
    /// `outputs/`) whose local file is gone.
    fn evicted_output(&self, ino: u64) -> Option<(JobId, usize)> {
        let node = self.node(&self.lock(), ino)?;
        let (id, i, flat) = match node {
            Node::JobFile(id, Part::Output(i)) => (id, i, false),
            Node::Flat(id, i) => (id, i, true),
            _ => return None,
        };
        let layout = self.registry.layout();
        let path = self
            .registry
            .with_job(id, |job| {
                let shown = match flat {
                    true => job_folder::flat(job).iter().any(|(_, k)| *k == i),
                    false => job_folder::shows(job, Part::Output(i)),
                };
                shown
                    .then(|| job_folder::local_file(layout, job, Part::Output(i)))
                    .flatten()
            })
            .flatten()?;
        (!path.exists()).then_some((id, i))
    }

    pub fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        enum Src {
            Bytes(Arc<Vec<u8>>),
            File(Arc<File>),
        }
        let src = match self.lock().handles.get(&fh) {
            Some(Handle::Snapshot(b)) => Src::Bytes(b.clone()),
            Some(Handle::Staged { file, .. })
            | Some(Handle::Local(file))
            | Some(Handle::Plain { file, .. }) => Src::File(file.clone()),
            None => return Err(FsError::quiet(libc::EBADF)),
        };
        match src {
            Src::Bytes(b) => {
                let start = (offset as usize).min(b.len());
                let end = (start + size as usize).min(b.len());
                Ok(b[start..end].to_vec())
            }
            Src::File(f) => {
                let mut buf = vec![0; size as usize];
                let mut n = 0;
                while n < buf.len() {
                    match f.read_at(&mut buf[n..], offset + n as u64) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(FsError::io(e, "read")),
                    }
                }
                buf.truncate(n);
                Ok(buf)
            }
        }
    }
}

/// The refusal for a name of `inbox/` that is no tool: quiet for hidden and scratch names (file
/// managers probe those), otherwise it names the closest tool.
pub(super) fn no_such_tool(name: &str) -> FsError {
    if name.starts_with('.') || is_scratch(name) {
        return FsError::quiet(libc::ENOENT);
    }
    FsError::refuse(
        libc::ENOENT,
        format!("inbox/{name}: no such tool{}", did_you_mean(name)),
    )
}

/// `: did you mean <closest tool>?`, or a pointer to README.txt when nothing is close.
pub(super) fn did_you_mean(name: &str) -> String {
    let closest = crate::api::schema::closest(name, TOOLS.iter().map(|t| t.slug), 1);
    match closest.first() {
        Some(slug) => format!(": did you mean inbox/{slug}? (README.txt lists every tool)"),
        None => " (README.txt lists every tool)".to_string(),
    }
}

/// Whether an inbox path is inside a hidden folder of a tool's folder (`inbox/<tool>/.x/...`):
/// a scratch area, never submitted, where any name and nested folders are taken (editors,
/// build tools, and the POSIX suites of `scripts/posix-suites.sh` run there).
pub(super) fn scratch_area(rel: &Path) -> bool {
    rel.components()
        .nth(1)
        .and_then(|c| c.as_os_str().to_str())
        .is_some_and(is_scratch)
        && rel.components().count() >= 2
}
