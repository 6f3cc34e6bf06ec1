//! The read side of the tree: attributes, lookups, listings, opening and reading. Served from
//! memory and local disk only; job state is read from the registry without waiting for its
//! durable writes.

use super::*;

impl Drive {
    // ---- attributes ----

    fn attr(&self, ino: u64, kind: Kind, size: u64, perm: u16, mtime: SystemTime) -> Attr {
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
            ttl,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
        }
    }

    fn dir_attr(&self, ino: u64, perm: u16) -> Attr {
        self.attr(ino, Kind::Dir, 0, perm, self.started)
    }

    /// Attributes of a file on local disk (an inbox file, a kept input, an output).
    pub(super) fn disk_attr(&self, ino: u64, path: &Path, perm: Option<u16>) -> FsResult<Attr> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| FsError::io(e, "stat"))?;
        let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
        Ok(self.attr(
            ino,
            kind,
            meta.len(),
            perm.unwrap_or((meta.permissions().mode() & 0o7777) as u16),
            meta.modified().unwrap_or(self.started),
        ))
    }

    fn job_attr(&self, ino: u64, id: JobId, part: Option<Part>) -> FsResult<Attr> {
        enum Seen {
            Dir(SystemTime),
            Content(usize, SystemTime),
            Local(Option<PathBuf>),
        }
        let layout = self.registry.layout();
        let seen = self
            .registry
            .with_job(id, |job| match part {
                None => Seen::Dir(job.created),
                Some(p) if !job_folder::shows(job, p) => Seen::Local(None),
                Some(p) => match job_folder::content(job, p) {
                    Some(c) => Seen::Content(c.len(), job.updated),
                    None => Seen::Local(job_folder::local_file(layout, job, p)),
                },
            })
            .ok_or(FsError::quiet(libc::ENOENT))?;
        match seen {
            Seen::Dir(t) => Ok(self.attr(ino, Kind::Dir, 0, 0o755, t)),
            Seen::Content(len, t) => Ok(Attr {
                ttl: LIVE_TTL,
                ..self.attr(ino, Kind::File, len as u64, 0o444, t)
            }),
            Seen::Local(Some(path)) => self.disk_attr(ino, &path, Some(0o444)),
            Seen::Local(None) => Err(FsError::quiet(libc::ENOENT)),
        }
    }

    pub fn getattr(&self, ino: u64) -> FsResult<Attr> {
        let node = self.node(&self.lock(), ino);
        match node.ok_or(FsError::quiet(libc::ENOENT))? {
            Node::Root | Node::Inbox | Node::Jobs => Ok(self.dir_attr(ino, 0o755)),
            Node::Tool(_) => Ok(self.dir_attr(ino, 0o777)),
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
            Node::Staged(rel) => self.disk_attr(ino, &self.inbox.join(rel), None),
            Node::Moved(path) => self.disk_attr(ino, &path, None),
            Node::Job(id) => self.job_attr(ino, id, None),
            Node::JobFile(id, part) => self.job_attr(ino, id, Some(part)),
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
            Node::Staged(rel) if rel.components().count() == 2 => {
                let tool = tool_of_rel(&rel)?;
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
                    _ => missing(),
                };
            }
            INBOX => {
                return tool_index(name).map_or_else(missing, |i| self.getattr(tool_ino(i)));
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
                return self.job_attr(job_folder::dir_ino(id), id, None);
            }
            _ => {}
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
        let attr = self.disk_attr(0, &self.inbox.join(&rel), None)?;
        let ino = Self::staged_ino(&mut inner, &rel);
        Self::remember(&mut inner, ino);
        Ok(Attr { ino, ..attr })
    }

    pub fn readdir(&self, ino: u64) -> FsResult<Vec<DirEntry>> {
        let entry = |ino, kind, name: &str| DirEntry {
            ino,
            kind,
            name: name.to_string(),
        };
        match ino {
            ROOT => {
                return Ok(vec![
                    entry(README, Kind::File, "README.txt"),
                    entry(INBOX, Kind::Dir, "inbox"),
                    entry(JOBS, Kind::Dir, "jobs"),
                ]);
            }
            INBOX => {
                return Ok(TOOLS
                    .iter()
                    .enumerate()
                    .map(|(i, t)| entry(tool_ino(i), Kind::Dir, t.slug))
                    .collect());
            }
            JOBS => {
                return Ok(self
                    .registry
                    .names()
                    .into_iter()
                    .map(|(id, name)| entry(job_folder::dir_ino(id), Kind::Dir, &name))
                    .collect());
            }
            _ => {}
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
    pub fn parent_of(&self, ino: u64) -> u64 {
        let inner = self.lock();
        match self.node(&inner, ino) {
            Some(Node::Tool(_)) => INBOX,
            Some(Node::Job(_)) => JOBS,
            Some(Node::JobFile(id, _)) => job_folder::dir_ino(id),
            Some(Node::Staged(rel)) => {
                let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
                match parent.components().count() {
                    1 => tool_index(&parent.to_string_lossy()).map_or(INBOX, tool_ino),
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
                if write {
                    let meta = inner.open.entry(rel.clone()).or_default();
                    meta.writers += 1;
                    if truncate {
                        meta.written = true;
                    }
                    Self::touch_folder(&mut inner, &rel);
                }
                let file = Arc::new(file);
                let fh = Self::new_handle(&mut inner, Handle::Staged { file, rel, write });
                Ok(opened(fh, false, None))
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
                let file = Arc::new(File::open(&path).map_err(|e| FsError::io(e, "open"))?);
                let fh = Self::new_handle(&mut self.lock(), Handle::Local(file.clone()));
                Ok(opened(fh, false, Some(file)))
            }
            Some(Node::Moved(_)) | None => Err(FsError::quiet(libc::ENOENT)),
            Some(_) => Err(FsError::quiet(libc::EISDIR)),
        }
    }

    pub fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        enum Src {
            Bytes(Arc<Vec<u8>>),
            File(Arc<File>),
        }
        let src = match self.lock().handles.get(&fh) {
            Some(Handle::Snapshot(b)) => Src::Bytes(b.clone()),
            Some(Handle::Staged { file, .. }) | Some(Handle::Local(file)) => {
                Src::File(file.clone())
            }
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
