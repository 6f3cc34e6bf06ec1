//! The read side of the tree: attributes, lookups, listings, opening and reading. Served from
//! memory and local disk only.

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
        ttl: Duration,
    ) -> Attr {
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

    pub(super) fn ino_of(inner: &mut Inner, node: Node) -> u64 {
        if let Some(ino) = inner.inos.get(&node) {
            return *ino;
        }
        let ino = inner.next_ino;
        inner.next_ino += 1;
        inner.inos.insert(node.clone(), ino);
        inner.nodes.insert(ino, node);
        ino
    }

    pub(super) fn staged_attr(&self, ino: u64, path: &Path) -> FsResult<Attr> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| FsError::io(e, "stat"))?;
        let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
        Ok(self.attr(
            ino,
            kind,
            meta.len(),
            (meta.permissions().mode() & 0o7777) as u16,
            meta.modified().unwrap_or(self.started),
            if kind == Kind::Dir { DIR_TTL } else { FILE_TTL },
        ))
    }

    pub(super) fn job_file_content(&self, job: &Job, part: &Part) -> Option<Vec<u8>> {
        match part {
            Part::Status => Some(job.status_text().into_bytes()),
            Part::JobJson => job.project.as_ref().map(pretty),
            Part::Request => job.request.as_ref().map(pretty),
            Part::Error => job.error_text().map(String::into_bytes),
            Part::Output(_) | Part::Input(_) => None,
        }
    }

    /// The local file behind an output or a kept input, if it is shown.
    pub(super) fn job_local_file(&self, job: &Job, part: &Part) -> Option<PathBuf> {
        match part {
            Part::Output(name) => job
                .outputs
                .iter()
                .find(|o| &o.name == name && o.done && !o.removed)
                .map(|o| self.output_dir(job.id).join(&o.name)),
            Part::Input(i) => job
                .inputs
                .get(*i)
                .filter(|_| job.shows_inputs())
                .map(|f| f.path.clone())
                .filter(|p| p.exists()),
            _ => None,
        }
    }

    /// The part of a job folder with this name.
    pub(super) fn job_part(&self, job: &Job, name: &str) -> FsResult<Part> {
        self.job_parts(job)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p)
            .ok_or(FsError::quiet(libc::ENOENT))
    }

    /// The names in a job folder, in display order.
    pub(super) fn job_parts(&self, job: &Job) -> Vec<(String, Part)> {
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
        for o in job.outputs.iter().filter(|o| o.done && !o.removed) {
            parts.push((o.name.clone(), Part::Output(o.name.clone())));
        }
        if job.shows_inputs() {
            for (i, f) in job.inputs.iter().enumerate() {
                let name = f.name.rsplit('/').next().unwrap_or(&f.name).to_string();
                if f.path.exists() && !parts.iter().any(|(n, _)| *n == name) {
                    parts.push((name, Part::Input(i)));
                }
            }
        }
        parts
    }

    pub(super) fn job_part_attr(&self, ino: u64, job: &Job, part: &Part) -> FsResult<Attr> {
        if let Some(content) = self.job_file_content(job, part) {
            return Ok(self.attr(
                ino,
                Kind::File,
                content.len() as u64,
                0o444,
                job.updated,
                LIVE_TTL,
            ));
        }
        let path = self
            .job_local_file(job, part)
            .ok_or(FsError::quiet(libc::ENOENT))?;
        let meta = std::fs::metadata(&path).map_err(|e| FsError::io(e, "stat"))?;
        Ok(self.attr(
            ino,
            Kind::File,
            meta.len(),
            0o444,
            meta.modified().unwrap_or(job.updated),
            FILE_TTL,
        ))
    }

    pub fn getattr(&self, ino: u64) -> FsResult<Attr> {
        let dir = |ino, perm| self.attr(ino, Kind::Dir, 0, perm, self.started, DIR_TTL);
        match ino {
            ROOT | INBOX => return Ok(dir(ino, 0o755)),
            JOBS => return Ok(dir(ino, 0o755)),
            README => {
                return Ok(self.attr(
                    ino,
                    Kind::File,
                    self.readme.len() as u64,
                    0o444,
                    self.started,
                    DIR_TTL,
                ));
            }
            _ => {}
        }
        if tool_of_ino(ino).is_some() {
            return Ok(dir(ino, 0o777));
        }
        let inner = self.lock();
        if let Some(path) = inner.moved.get(&ino) {
            let path = path.clone();
            drop(inner);
            return self.staged_attr(ino, &path);
        }
        match inner.nodes.get(&ino).cloned() {
            Some(Node::Staged(rel)) => {
                drop(inner);
                self.staged_attr(ino, &self.inbox.join(rel))
            }
            Some(Node::Job(id)) => {
                let job = inner.jobs.get(&id).ok_or(FsError::quiet(libc::ENOENT))?;
                Ok(self.attr(ino, Kind::Dir, 0, 0o755, job.created, DIR_TTL))
            }
            Some(Node::JobFile(id, part)) => {
                let job = inner
                    .jobs
                    .get(&id)
                    .cloned()
                    .ok_or(FsError::quiet(libc::ENOENT))?;
                drop(inner);
                self.job_part_attr(ino, &job, &part)
            }
            None => Err(FsError::quiet(libc::ENOENT)),
        }
    }

    /// Where a directory inode lives in the staging area (`inbox/<tool>` or one of its folders).
    pub(super) fn staged_dir(
        &self,
        inner: &Inner,
        ino: u64,
    ) -> Option<(PathBuf, &'static Tool, bool)> {
        if let Some(t) = tool_of_ino(ino) {
            return Some((PathBuf::from(t.slug), t, false));
        }
        match inner.nodes.get(&ino) {
            Some(Node::Staged(rel)) if rel.components().count() == 2 => {
                let slug = rel.components().next()?.as_os_str().to_str()?;
                let tool = TOOLS.iter().find(|t| t.slug == slug)?;
                self.inbox
                    .join(rel)
                    .is_dir()
                    .then(|| (rel.clone(), tool, true))
            }
            _ => None,
        }
    }

    pub(super) fn job_by_name(inner: &Inner, name: &str) -> Option<JobId> {
        inner.jobs.values().find(|j| j.name == name).map(|j| j.id)
    }

    pub fn lookup(&self, parent: u64, name: &str) -> FsResult<Attr> {
        match parent {
            ROOT => {
                return match name {
                    "README.txt" => self.getattr(README),
                    "inbox" => self.getattr(INBOX),
                    "jobs" => self.getattr(JOBS),
                    _ => Err(FsError::quiet(libc::ENOENT)),
                };
            }
            INBOX => {
                return tool_index(name)
                    .map(|i| self.getattr(tool_ino(i)))
                    .unwrap_or(Err(FsError::quiet(libc::ENOENT)));
            }
            _ => {}
        }
        let mut inner = self.lock();
        if parent == JOBS {
            let Some(id) = Self::job_by_name(&inner, name) else {
                // A project id of a job made elsewhere: adopt it in the background (never a
                // network call here); it appears in jobs/ once found.
                if looks_like_project_id(name)
                    && !inner
                        .jobs
                        .values()
                        .any(|j| j.project_id.as_deref() == Some(name))
                    && let Some(h) = self.hooks.get()
                {
                    (h.adopt)(name.to_string());
                }
                return Err(FsError::quiet(libc::ENOENT));
            };
            let ino = Self::ino_of(&mut inner, Node::Job(id));
            drop(inner);
            return self.getattr(ino);
        }
        if let Some((dir, _, _)) = self.staged_dir(&inner, parent) {
            let rel = dir.join(name);
            // Only names that exist get an inode: misses (file managers probe a lot) cost nothing.
            let attr = self.staged_attr(0, &self.inbox.join(&rel))?;
            let ino = Self::ino_of(&mut inner, Node::Staged(rel));
            return Ok(Attr { ino, ..attr });
        }
        if let Some(Node::Job(id)) = inner.nodes.get(&parent).cloned() {
            let job = inner
                .jobs
                .get(&id)
                .cloned()
                .ok_or(FsError::quiet(libc::ENOENT))?;
            let part = self.job_part(&job, name)?;
            let ino = Self::ino_of(&mut inner, Node::JobFile(id, part.clone()));
            drop(inner);
            return self.job_part_attr(ino, &job, &part);
        }
        Err(FsError::quiet(libc::ENOENT))
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
            _ => {}
        }
        let mut inner = self.lock();
        if ino == JOBS {
            let jobs: Vec<(JobId, String)> = inner
                .jobs
                .values()
                .map(|j| (j.id, j.name.clone()))
                .collect();
            return Ok(jobs
                .into_iter()
                .map(|(id, name)| entry(Self::ino_of(&mut inner, Node::Job(id)), Kind::Dir, &name))
                .collect());
        }
        if let Some((dir, _, _)) = self.staged_dir(&inner, ino) {
            let listing =
                std::fs::read_dir(self.inbox.join(&dir)).map_err(|e| FsError::io(e, "readdir"))?;
            let mut out = Vec::new();
            for e in listing.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let kind = if e.file_type().is_ok_and(|t| t.is_dir()) {
                    Kind::Dir
                } else {
                    Kind::File
                };
                let child = Self::ino_of(&mut inner, Node::Staged(dir.join(&name)));
                out.push(entry(child, kind, &name));
            }
            return Ok(out);
        }
        if let Some(Node::Job(id)) = inner.nodes.get(&ino).cloned() {
            let job = inner
                .jobs
                .get(&id)
                .cloned()
                .ok_or(FsError::quiet(libc::ENOENT))?;
            return Ok(self
                .job_parts(&job)
                .into_iter()
                .map(|(name, part)| {
                    entry(
                        Self::ino_of(&mut inner, Node::JobFile(id, part)),
                        Kind::File,
                        &name,
                    )
                })
                .collect());
        }
        Err(FsError::quiet(libc::ENOTDIR))
    }

    /// The parent directory's inode of a node, for `..`.
    pub fn parent_of(&self, ino: u64) -> u64 {
        if matches!(ino, ROOT | README | INBOX | JOBS) {
            return ROOT;
        }
        if tool_of_ino(ino).is_some() {
            return INBOX;
        }
        let inner = self.lock();
        match inner.nodes.get(&ino) {
            Some(Node::Job(_)) => JOBS,
            Some(Node::JobFile(id, _)) => inner.inos.get(&Node::Job(*id)).copied().unwrap_or(JOBS),
            Some(Node::Staged(rel)) => {
                let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
                match parent.components().count() {
                    1 => tool_index(&parent.to_string_lossy())
                        .map(tool_ino)
                        .unwrap_or(INBOX),
                    _ => inner
                        .inos
                        .get(&Node::Staged(parent))
                        .copied()
                        .unwrap_or(INBOX),
                }
            }
            None => ROOT,
        }
    }

    // ---- open, read, write ----

    pub(super) fn new_handle(inner: &mut Inner, h: Handle) -> u64 {
        let fh = inner.next_fh;
        inner.next_fh += 1;
        inner.handles.insert(fh, h);
        fh
    }

    pub fn open(&self, ino: u64, write: bool, truncate: bool) -> FsResult<Opened> {
        if ino == README {
            if write {
                return Err(FsError::refuse(libc::EACCES, "README.txt is read-only"));
            }
            let mut inner = self.lock();
            let fh = Self::new_handle(&mut inner, Handle::Snapshot(Arc::new(self.readme.clone())));
            return Ok(Opened {
                fh,
                direct_io: false,
                backing: None,
            });
        }
        let mut inner = self.lock();
        match inner.nodes.get(&ino).cloned() {
            Some(Node::Staged(rel)) => {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(write)
                    .truncate(truncate && write)
                    .open(self.inbox.join(&rel))
                    .map_err(|e| FsError::io(e, "open"))?;
                if write {
                    let meta = inner.staged.entry(rel.clone()).or_default();
                    meta.writers += 1;
                    if truncate {
                        meta.written = true;
                    }
                    self.touch_folder(&mut inner, &rel);
                }
                let fh = Self::new_handle(
                    &mut inner,
                    Handle::Staged {
                        file: Arc::new(file),
                        rel,
                        write,
                    },
                );
                Ok(Opened {
                    fh,
                    direct_io: false,
                    backing: None,
                })
            }
            Some(Node::JobFile(id, part)) => {
                if write {
                    return Err(FsError::refuse(libc::EACCES, "job folders are read-only"));
                }
                let job = inner
                    .jobs
                    .get(&id)
                    .cloned()
                    .ok_or(FsError::quiet(libc::ENOENT))?;
                if let Some(content) = self.job_file_content(&job, &part) {
                    let fh = Self::new_handle(&mut inner, Handle::Snapshot(Arc::new(content)));
                    return Ok(Opened {
                        fh,
                        direct_io: true,
                        backing: None,
                    });
                }
                let path = self
                    .job_local_file(&job, &part)
                    .ok_or(FsError::quiet(libc::ENOENT))?;
                let file = Arc::new(File::open(&path).map_err(|e| FsError::io(e, "open"))?);
                let fh = Self::new_handle(&mut inner, Handle::Local(file.clone()));
                Ok(Opened {
                    fh,
                    direct_io: false,
                    backing: Some(file),
                })
            }
            _ if inner.moved.contains_key(&ino) => Err(FsError::quiet(libc::ENOENT)),
            _ => Err(FsError::quiet(libc::EISDIR)),
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
