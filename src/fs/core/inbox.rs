//! The write side: staging files in the inbox, removing and renaming, and submitting what is
//! complete as new jobs. Submitting records the job durably, so it runs without the drive's
//! lock: the file or folder is marked `submitting` meanwhile, so nothing opens or changes it.

use super::*;

impl Drive {
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let (file, rel) = {
            let mut inner = self.lock();
            let (file, rel) = match inner.handles.get(&fh) {
                Some(Handle::Staged {
                    file,
                    rel,
                    write: true,
                }) => (file.clone(), rel.clone()),
                _ => return Err(FsError::quiet(libc::EBADF)),
            };
            inner.open.entry(rel.clone()).or_default().written = true;
            Self::touch_folder(&mut inner, &rel);
            (file, rel)
        };
        file.write_all_at(data, offset)
            .map_err(|e| FsError::io(e, &format!("write {}", rel.display())))?;
        Ok(data.len() as u32)
    }

    pub fn fsync(&self, fh: u64) -> FsResult<()> {
        let file = match self.lock().handles.get(&fh) {
            Some(Handle::Staged { file, .. }) => file.clone(),
            _ => return Ok(()),
        };
        file.sync_data().map_err(|e| FsError::io(e, "fsync"))
    }

    /// Last close after data was written: a visible, non-empty file of a tool's folder is
    /// complete and is submitted.
    pub fn release(&self, fh: u64) {
        let (rel, job) = {
            let mut inner = self.lock();
            let Some(Handle::Staged {
                rel, write: true, ..
            }) = inner.handles.remove(&fh)
            else {
                return;
            };
            let meta = inner.open.entry(rel.clone()).or_default();
            meta.writers = meta.writers.saturating_sub(1);
            if meta.writers > 0 {
                return;
            }
            let written = std::mem::take(&mut meta.written);
            inner.open.remove(&rel);
            Self::touch_folder(&mut inner, &rel);
            if !written {
                return;
            }
            let Some(job) = self.reserve_file(&mut inner, &rel) else {
                return;
            };
            (rel, job)
        };
        self.submit_file(&rel, job);
    }

    pub(super) fn touch_folder(inner: &mut Inner, rel: &Path) {
        if rel.components().count() >= 3 {
            let folder: PathBuf = rel.components().take(2).collect();
            inner.folders.insert(folder, Instant::now());
        }
    }

    // ---- creating things ----

    /// Checks a name for a tool's folder: scratch names always, otherwise what the tool takes.
    fn check_name(tool: &Tool, dir: &Path, name: &str, in_folder: bool) -> FsResult<()> {
        if is_scratch(name) || role_of(tool, name).is_some() {
            return Ok(());
        }
        let where_ = if in_folder {
            dir.display().to_string()
        } else {
            tool.slug.to_string()
        };
        Err(FsError::refuse(
            libc::EINVAL,
            format!(
                "inbox/{where_}: refused {name:?}: {} takes {}",
                tool.slug,
                accepted(tool)
            ),
        ))
    }

    pub fn create(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        truncate: bool,
        owner: (u32, u32),
    ) -> FsResult<(Attr, Opened)> {
        let mut inner = self.lock();
        let Some((dir, tool, in_folder)) = self.staged_dir(&inner, parent) else {
            return Err(self.refuse_write(&inner, parent, name));
        };
        Self::check_name(tool, &dir, name, in_folder)?;
        let rel = dir.join(name);
        if Self::submitting(&inner, &rel) {
            return Err(FsError::quiet(libc::EBUSY));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(truncate)
            .open(self.inbox.join(&rel))
            .map_err(|e| FsError::io(e, "create"))?;
        let _ = file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777));
        // The staged file belongs to whoever wrote it: local files its JSON names are read
        // only if that user may read them.
        let _ = std::os::unix::fs::fchown(&file, Some(owner.0), Some(owner.1));
        let ino = Self::staged_ino(&mut inner, &rel);
        Self::remember(&mut inner, ino);
        inner.open.entry(rel.clone()).or_default().writers += 1;
        Self::touch_folder(&mut inner, &rel);
        let fh = Self::new_handle(
            &mut inner,
            Handle::Staged {
                file: Arc::new(file),
                rel: rel.clone(),
                write: true,
            },
        );
        drop(inner);
        let attr = self.disk_attr(ino, &self.inbox.join(&rel), None)?;
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

    /// The refusal for writing where the drive takes nothing.
    fn refuse_write(&self, inner: &Inner, parent: u64, name: &str) -> FsError {
        match self.node(inner, parent) {
            Some(Node::Root | Node::Inbox) => FsError::refuse(
                libc::EPERM,
                format!("cannot create {name:?} here: only inbox/<tool>/ takes files"),
            ),
            Some(Node::Jobs | Node::Job(_)) => FsError::refuse(
                libc::EACCES,
                format!(
                    "cannot create {name:?}: jobs/ is read-only (drop files into inbox/<tool>/)"
                ),
            ),
            // A folder that was just submitted (its inode is gone).
            _ => FsError::quiet(libc::ENOENT),
        }
    }

    pub fn mkdir(&self, parent: u64, name: &str, mode: u32, owner: (u32, u32)) -> FsResult<Attr> {
        let mut inner = self.lock();
        match self.staged_dir(&inner, parent) {
            Some((dir, _, false)) => {
                let rel = dir.join(name);
                let path = self.inbox.join(&rel);
                std::fs::create_dir(&path).map_err(|e| FsError::io(e, "mkdir"))?;
                let _ = std::os::unix::fs::chown(&path, Some(owner.0), Some(owner.1));
                let _ =
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777));
                inner.folders.insert(rel.clone(), Instant::now());
                let ino = Self::staged_ino(&mut inner, &rel);
                Self::remember(&mut inner, ino);
                drop(inner);
                self.disk_attr(ino, &path, None)
            }
            Some((dir, _, true)) => Err(FsError::refuse(
                libc::EPERM,
                format!(
                    "inbox/{}: folders inside a submission folder are not taken",
                    dir.display()
                ),
            )),
            None if parent == INBOX => Err(FsError::refuse(
                libc::EPERM,
                format!("inbox/{name}: no such tool (README.txt lists them)"),
            )),
            None => Err(FsError::refuse(
                libc::EPERM,
                format!("mkdir {name:?}: only inbox/<tool>/ takes folders"),
            )),
        }
    }

    pub fn setattr(
        &self,
        ino: u64,
        fh: Option<u64>,
        size: Option<u64>,
        mode: Option<u32>,
        mtime: Option<SystemTime>,
    ) -> FsResult<Attr> {
        let path = {
            let mut inner = self.lock();
            match self.node(&inner, ino) {
                // A submitted file: `mv`/`cp -p` set times and modes after closing. Harmless.
                Some(Node::Moved(path)) => {
                    drop(inner);
                    return self.disk_attr(ino, &path, None);
                }
                Some(Node::Staged(rel)) if !Self::submitting(&inner, &rel) => {
                    // A change in a folder (even `touch`) restarts its settle interval.
                    Self::touch_folder(&mut inner, &rel);
                    self.inbox.join(rel)
                }
                Some(Node::Staged(_)) => return Err(FsError::quiet(libc::ENOENT)),
                _ => {
                    drop(inner);
                    if size.is_some() {
                        return Err(FsError::refuse(libc::EACCES, "job folders are read-only"));
                    }
                    return self.getattr(ino);
                }
            }
        };
        if let Some(size) = size {
            let file = fh.and_then(|fh| match self.lock().handles.get(&fh) {
                Some(Handle::Staged {
                    file, write: true, ..
                }) => Some(file.clone()),
                _ => None,
            });
            let result = match file {
                Some(f) => f.set_len(size),
                None => std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(size)),
            };
            result.map_err(|e| FsError::io(e, "truncate"))?;
        }
        if let Some(mode) = mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(|e| FsError::io(e, "chmod"))?;
        }
        if let Some(mtime) = mtime {
            let f = File::options()
                .write(true)
                .open(&path)
                .or_else(|_| File::open(&path));
            if let Ok(f) = f {
                let _ = f.set_modified(mtime);
            }
        }
        self.disk_attr(ino, &path, None)
    }

    // ---- removing and renaming ----

    pub fn unlink(&self, parent: u64, name: &str) -> FsResult<()> {
        let mut inner = self.lock();
        if let Some((dir, _, _)) = self.staged_dir(&inner, parent) {
            let rel = dir.join(name);
            if Self::submitting(&inner, &rel) {
                return Err(FsError::quiet(libc::ENOENT));
            }
            std::fs::remove_file(self.inbox.join(&rel)).map_err(|e| FsError::io(e, "unlink"))?;
            Self::drop_staged(&mut inner, &rel);
            Self::touch_folder(&mut inner, &rel);
            return Ok(());
        }
        let Some(Node::Job(id)) = self.node(&inner, parent) else {
            return Err(FsError::refuse(
                libc::EPERM,
                format!("cannot remove {name:?} here"),
            ));
        };
        drop(inner);
        let layout = self.registry.layout();
        let (part, path) = self
            .registry
            .with_job(id, |job| {
                let part = job_folder::part_named(job, name);
                (
                    part,
                    part.and_then(|p| job_folder::local_file(layout, job, p)),
                )
            })
            .ok_or(FsError::quiet(libc::ENOENT))?;
        // Removing a file of a job drops the local copy; status and the JSON files stay (they
        // are views of the job, which only rmdir of its folder removes).
        match (part.ok_or(FsError::quiet(libc::ENOENT))?, path) {
            (Part::Output(i), path) => {
                if let Some(path) = path {
                    let _ = std::fs::remove_file(path);
                }
                self.registry.update(id, |j| {
                    if let Some(o) = j.outputs.get_mut(i) {
                        o.removed = true;
                    }
                });
            }
            (Part::Input(_), Some(path)) => {
                let _ = std::fs::remove_file(path);
            }
            _ => {}
        }
        Ok(())
    }

    pub fn rmdir(self: &Arc<Self>, parent: u64, name: &str) -> Rmdir {
        if parent == JOBS {
            let Some(id) = self.registry.by_name(name) else {
                return Rmdir::Done(Err(FsError::quiet(libc::ENOENT)));
            };
            let Some(hooks) = self.hooks.get() else {
                return Rmdir::Done(Err(FsError::refuse(libc::EIO, "the engine is not running")));
            };
            let delete = (hooks.delete)(id);
            let name = name.to_string();
            return Rmdir::Pending(Box::pin(async move {
                delete.await.map_err(|e| {
                    FsError::refuse(e.errno(), format!("rmdir jobs/{name}: the job stays: {e}"))
                })
            }));
        }
        let inner = self.lock();
        if let Some((dir, _, false)) = self.staged_dir(&inner, parent) {
            let rel = dir.join(name);
            if Self::submitting(&inner, &rel) {
                return Rmdir::Done(Err(FsError::quiet(libc::ENOENT)));
            }
            drop(inner);
            return Rmdir::Done(
                std::fs::remove_dir(self.inbox.join(&rel))
                    .map_err(|e| FsError::io(e, "rmdir"))
                    .map(|()| {
                        let mut inner = self.lock();
                        inner.folders.remove(&rel);
                        Self::drop_staged(&mut inner, &rel);
                    }),
            );
        }
        Rmdir::Done(Err(FsError::refuse(
            libc::EPERM,
            format!("cannot remove {name:?} here"),
        )))
    }

    /// Renames within `jobs/` (a local rename) or within `inbox/` (where a hidden temp name
    /// becoming visible completes the file). `noreplace`: fail if the target exists.
    pub fn rename(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        noreplace: bool,
    ) -> FsResult<()> {
        if parent == JOBS && new_parent == JOBS {
            return self.rename_job(name, new_name);
        }
        let mut inner = self.lock();
        let from = self.staged_dir(&inner, parent);
        let to = self.staged_dir(&inner, new_parent);
        let (Some((from_dir, _, _)), Some((to_dir, tool, in_folder))) = (from, to) else {
            return Err(FsError::refuse(
                libc::EXDEV,
                format!("rename {name:?} -> {new_name:?}: only within inbox/ or within jobs/"),
            ));
        };
        let (src, dst) = (from_dir.join(name), to_dir.join(new_name));
        if Self::submitting(&inner, &src) || Self::submitting(&inner, &dst) {
            return Err(FsError::quiet(libc::ENOENT));
        }
        if noreplace && self.inbox.join(&dst).symlink_metadata().is_ok() {
            return Err(FsError::quiet(libc::EEXIST));
        }
        let is_dir = self.inbox.join(&src).is_dir();
        if is_dir && in_folder {
            return Err(FsError::refuse(
                libc::EPERM,
                format!(
                    "inbox/{}: folders inside a submission folder are not taken",
                    to_dir.display()
                ),
            ));
        }
        if !is_dir {
            Self::check_name(tool, &to_dir, new_name, in_folder)?;
        }
        std::fs::rename(self.inbox.join(&src), self.inbox.join(&dst))
            .map_err(|e| FsError::io(e, "rename"))?;
        // The inode follows the file (and, for a folder, its children follow too); a replaced
        // target's inode is gone.
        Self::drop_staged(&mut inner, &dst);
        let moves: Vec<(PathBuf, u64)> = inner
            .inos
            .iter()
            .filter(|(p, _)| p.starts_with(&src))
            .map(|(p, ino)| (p.clone(), *ino))
            .collect();
        for (p, ino) in moves {
            let new_path = rebase(&p, &src, &dst);
            inner.inos.remove(&p);
            inner.inos.insert(new_path.clone(), ino);
            if let Some(c) = inner.staged.get_mut(&ino) {
                c.path = new_path;
            }
        }
        // Open files follow too: their writers and handles now live at the new name, so the
        // last close submits it there (GIO and editors rename before closing).
        let open: Vec<PathBuf> = inner
            .open
            .keys()
            .filter(|p| p.starts_with(&src))
            .cloned()
            .collect();
        for p in open {
            let meta = inner.open.remove(&p).expect("listed");
            // A target still open elsewhere keeps its writers too.
            let target = inner.open.entry(rebase(&p, &src, &dst)).or_default();
            target.writers += meta.writers;
            target.written |= meta.written;
        }
        for h in inner.handles.values_mut() {
            if let Handle::Staged { rel, .. } = h
                && rel.starts_with(&src)
            {
                *rel = rebase(rel, &src, &dst);
            }
        }
        if is_dir {
            inner.folders.remove(&src);
            inner.folders.insert(dst.clone(), Instant::now());
        }
        Self::touch_folder(&mut inner, &src);
        Self::touch_folder(&mut inner, &dst);
        // A hidden temp name renamed to a visible one is complete (rsync, editors, browsers).
        let open = inner.open.get(&dst).is_some_and(|m| m.writers > 0);
        if !is_dir
            && !open
            && let Some(job) = self.reserve_file(&mut inner, &dst)
        {
            drop(inner);
            self.submit_file(&dst, job);
        }
        Ok(())
    }

    fn rename_job(&self, name: &str, new_name: &str) -> FsResult<()> {
        let id = self
            .registry
            .by_name(name)
            .ok_or(FsError::quiet(libc::ENOENT))?;
        if name == new_name {
            return Ok(());
        }
        if new_name.is_empty() || new_name.starts_with('.') {
            return Err(FsError::refuse(
                libc::EINVAL,
                format!("bad job name {new_name:?}"),
            ));
        }
        use crate::engine::registry::RenameError;
        self.registry.rename(id, new_name).map_err(|e| match e {
            RenameError::NotFound => FsError::quiet(libc::ENOENT),
            RenameError::Exists(_) => FsError::refuse(libc::EEXIST, e.to_string()),
            RenameError::Store(_) => FsError::refuse(libc::EIO, format!("rename jobs/{name}: {e}")),
        })
    }

    // ---- submission ----
    //
    // In two halves. Under the lock, in one instant: the inbox stops showing the file (it is
    // marked `submitting`) and `jobs/` shows its job (reserved in the registry, in memory).
    // Then, without the lock: the job is made durable, the file moved into it, and it starts.

    /// Whether a closed inbox file is complete and to be submitted: a visible, non-empty file
    /// of a type its tool takes, directly in the tool's folder. If so, its job, shown at once.
    fn reserve_file(&self, inner: &mut Inner, rel: &Path) -> Option<Job> {
        use std::os::unix::fs::MetadataExt;
        if rel.components().count() != 2 || Self::submitting(inner, rel) {
            return None;
        }
        let name = rel.file_name()?.to_string_lossy().to_string();
        if is_scratch(&name) {
            return None;
        }
        let meta = std::fs::metadata(self.inbox.join(rel)).ok()?;
        if !meta.is_file() || meta.len() == 0 {
            return None;
        }
        let tool = tool_of_rel(rel)?;
        let source = match role_of(tool, &name)? {
            FileRole::Text => Source::Text,
            FileRole::Json => Source::Json,
            FileRole::Media(_) => Source::File,
        };
        inner.submitting.insert(rel.to_path_buf());
        let owner = Some((meta.uid(), meta.gid()));
        Some(self.registry.reserve(&name, tool, source, owner))
    }

    /// Records a reserved file job, moves the file into it, and starts it.
    fn submit_file(&self, rel: &Path, mut job: Job) {
        let name = rel
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let input_dir = self.registry.layout().input_dir(job.id);
        let kept = input_dir.join(&name);
        let moved = self.registry.record(&job).and_then(|()| {
            std::fs::create_dir_all(&input_dir)
                .and_then(|()| std::fs::rename(self.inbox.join(rel), &kept))
                .map_err(|e| format!("cannot move it into the job: {e}"))
        });
        if let Err(e) = moved {
            log::error!("inbox/{}: not submitted: {e}", rel.display());
            self.registry.discard(job.id);
            self.lock().submitting.remove(rel);
            return;
        }
        job.inputs.push(InputFile {
            name,
            path: kept.clone(),
            remote: None,
        });
        self.take_in(rel, job, Some(kept));
    }

    /// Ends a submission: saves the job with its inputs, forgets the inbox entries, and starts
    /// the job. `kept`: for a single file, where it went (its old inode keeps pointing there,
    /// for `mv`'s and `cp -p`'s late setattr).
    fn take_in(&self, rel: &Path, job: Job, kept: Option<PathBuf>) {
        log::info!(
            "inbox/{}: submitted as jobs/{} ({})",
            rel.display(),
            job.name,
            job.tool
        );
        let id = job.id;
        self.registry.publish(job);
        let parent_ino = {
            let mut inner = self.lock();
            inner.submitting.remove(rel);
            let gone: Vec<PathBuf> = inner
                .inos
                .keys()
                .filter(|p| p.starts_with(rel))
                .cloned()
                .collect();
            for p in gone {
                if let Some((ino, lookups)) = Self::drop_staged(&mut inner, &p)
                    && let Some(path) = kept.clone()
                    && lookups > 0
                {
                    inner.moved.insert(ino, Counted { path, lookups });
                }
            }
            let parent = rel.parent().unwrap_or(Path::new(""));
            match parent.components().count() {
                1 => tool_index(&parent.to_string_lossy()).map(tool_ino),
                _ => inner.inos.get(parent).copied(),
            }
        };
        if let Some(parent) = parent_ino {
            let name = rel.file_name().unwrap_or_default();
            self.invalidate(Inval::Entry {
                parent,
                name: name.to_string_lossy().to_string(),
            });
        }
        self.kick(id);
    }

    /// Submits inbox folders that are complete, closed and quiet for the settle interval.
    /// Called a few times a second by a timer task. Folders are read without the lock.
    pub fn tick(&self) {
        let quiet: Vec<(PathBuf, Instant)> = {
            let inner = self.lock();
            inner
                .folders
                .iter()
                .filter(|(_, changed)| changed.elapsed() >= self.cfg.settle)
                .filter(|(rel, _)| !inner.submitting.contains(*rel))
                .map(|(rel, changed)| (rel.clone(), *changed))
                .collect()
        };
        for (rel, changed) in quiet {
            let Some(names) = self.ready_folder(&rel) else {
                continue;
            };
            let job = {
                let mut inner = self.lock();
                // Changed (or opened) while it was read: the next tick looks again.
                let still = inner.folders.get(&rel) == Some(&changed)
                    && !inner.open.keys().any(|p| p.starts_with(&rel))
                    && !inner.submitting.contains(&rel);
                let tool = tool_of_rel(&rel);
                let owner = std::fs::metadata(self.inbox.join(&rel))
                    .ok()
                    .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                    .zip(
                        std::fs::metadata(self.inbox.join(&rel))
                            .ok()
                            .map(|m| std::os::unix::fs::MetadataExt::gid(&m)),
                    );
                match tool {
                    Some(tool) if still => {
                        inner.folders.remove(&rel);
                        inner.submitting.insert(rel.clone());
                        let name = rel.file_name().unwrap_or_default().to_string_lossy();
                        self.registry.reserve(&name, tool, Source::Folder, owner)
                    }
                    _ => continue,
                }
            };
            self.submit_folder(&rel, job, names);
        }
    }

    /// The input files of an inbox folder if it is complete (every required input there, not
    /// a scratch name). A folder gone is forgotten.
    fn ready_folder(&self, rel: &Path) -> Option<Vec<String>> {
        let folder_name = rel.file_name()?.to_string_lossy().to_string();
        let path = self.inbox.join(rel);
        if !path.is_dir() {
            self.lock().folders.remove(rel);
            return None;
        }
        if is_scratch(&folder_name) {
            return None;
        }
        let tool = tool_of_rel(rel)?;
        let names: Vec<String> = std::fs::read_dir(&path)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| !is_scratch(n))
            .filter(|n| std::fs::metadata(path.join(n)).is_ok_and(|m| m.len() > 0))
            .collect();
        (!names.is_empty() && folder_ready(tool, &names)).then_some(names)
    }

    /// Records a reserved folder job, moves the folder into it, and starts it.
    fn submit_folder(&self, rel: &Path, mut job: Job, mut names: Vec<String>) {
        let folder_name = rel
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let layout = self.registry.layout();
        let input_dir = layout.input_dir(job.id);
        let moved = self.registry.record(&job).and_then(|()| {
            std::fs::create_dir_all(layout.job_dir(job.id))
                .and_then(|()| std::fs::rename(self.inbox.join(rel), &input_dir))
                .map_err(|e| format!("cannot move it into the job: {e}"))
        });
        if let Err(e) = moved {
            log::error!("inbox/{}: not submitted: {e}", rel.display());
            self.registry.discard(job.id);
            let mut inner = self.lock();
            inner.submitting.remove(rel);
            inner.folders.insert(rel.to_path_buf(), Instant::now());
            return;
        }
        names.sort();
        job.inputs = names
            .into_iter()
            .map(|n| InputFile {
                name: format!("{folder_name}/{n}"),
                path: input_dir.join(&n),
                remote: None,
            })
            .collect();
        self.take_in(rel, job, None);
    }
}
