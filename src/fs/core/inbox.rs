//! The write side: staging files in the inbox, removing and renaming, and submitting what is
//! complete as new jobs. Submitting records the job durably, so it runs without the drive's
//! lock: the file or folder is marked `submitting` meanwhile, so nothing opens or changes it.

use super::*;

impl Drive {
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let (file, rel) = {
            let mut inner = self.lock();
            let (file, id, rel) = match inner.handles.get(&fh) {
                Some(Handle::Staged {
                    file,
                    id,
                    rel,
                    write: true,
                }) => (file.clone(), *id, rel.clone()),
                Some(Handle::Plain { file, write: true }) => {
                    let file = file.clone();
                    drop(inner);
                    file.write_all_at(data, offset)
                        .map_err(|e| FsError::io(e, "write"))?;
                    return Ok(data.len() as u32);
                }
                _ => return Err(FsError::quiet(libc::EBADF)),
            };
            if let Some(w) = inner.open.get_mut(&id) {
                w.written = true;
            }
            Self::touch_folder(&mut inner, &rel);
            (file, rel)
        };
        file.write_all_at(data, offset)
            .map_err(|e| FsError::io(e, &format!("write {}", rel.display())))?;
        Ok(data.len() as u32)
    }

    pub fn fsync(&self, fh: u64) -> FsResult<()> {
        let file = match self.lock().handles.get(&fh) {
            Some(Handle::Staged { file, .. }) | Some(Handle::Plain { file, .. }) => file.clone(),
            _ => return Ok(()),
        };
        file.sync_data().map_err(|e| FsError::io(e, "fsync"))
    }

    /// A close of an inbox file (close(2) returns this answer; release cannot fail): at the
    /// last writer's close of a complete file, its price is checked against the budget. A file
    /// that would take the spending past it is refused with EDQUOT, stays in the inbox, and is
    /// not submitted at release.
    pub fn flush(&self, fh: u64) -> FsResult<()> {
        let (id, rel) = {
            let inner = self.lock();
            let Some(Handle::Staged {
                id,
                rel,
                write: true,
                ..
            }) = inner.handles.get(&fh)
            else {
                return Ok(());
            };
            match inner.open.get(id) {
                Some(w) if w.writers == 1 && w.written && !w.gone && !w.refused => {}
                _ => return Ok(()),
            }
            (*id, rel.clone())
        };
        let Some(why) = self.over_budget(&rel) else {
            return Ok(());
        };
        if let Some(w) = self.lock().open.get_mut(&id) {
            w.refused = true;
        }
        Err(FsError::refuse(
            libc::EDQUOT,
            format!(
                "inbox/{}: not submitted, over the budget: {why}; the file stays in the inbox \
                 (raise --budget or the config's \"budget\", or remove it)",
                rel.display()
            ),
        ))
    }

    /// Why submitting the complete inbox file `rel` would pass the budget, if it would: its
    /// price (planned as the engine will, a media file's clip measured; a pipeline adds each
    /// later step at its parameters) on top of what was spent and what waits to be created.
    /// Read from local disk, without the drive's lock.
    pub(super) fn over_budget(&self, rel: &Path) -> Option<String> {
        let credits = self.credits.get()?;
        credits.budget().limit?;
        if rel.components().count() != 2 {
            return None;
        }
        let name = rel.file_name()?.to_string_lossy().to_string();
        if is_scratch(&name) {
            return None;
        }
        let path = self.inbox.join(rel);
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() > 0) {
            return None;
        }
        let tool = self.tool_of_rel(rel)?;
        let first = rel.components().next()?.as_os_str().to_str()?;
        let preset = self.presets.get(first);
        let params = preset
            .as_ref()
            .map(|p| &p.steps[0].params)
            .filter(|p| !p.is_null());
        let mut price =
            crate::engine::submit::estimate(tool, params, &self.cfg.defaults, &path, &name)?;
        for step in preset.iter().flat_map(|p| &p.steps[1..]) {
            price +=
                crate::engine::submit::step_estimate(step.tool, &step.params, &self.cfg.defaults);
        }
        let reserved = crate::engine::credits::reserved(&self.registry, None);
        credits.check(price, reserved).err().map(|o| o.to_string())
    }

    /// Last close after data was written: a visible, non-empty file of a tool's folder is
    /// complete and is submitted.
    pub fn release(&self, fh: u64) {
        let (rel, job) = {
            let mut inner = self.lock();
            if !inner.orphans.is_empty() {
                // Held by a handle other than this one: the orphan stays.
                let closing = match inner.handles.get(&fh) {
                    Some(Handle::Staged { file, .. }) => Some(file.clone()),
                    _ => None,
                };
                if let Some(closing) = closing {
                    inner
                        .orphans
                        .retain(|_, f| !Arc::ptr_eq(f, &closing) || Arc::strong_count(f) > 3);
                }
            }
            let Some(Handle::Staged {
                id, write: true, ..
            }) = inner.handles.remove(&fh)
            else {
                return;
            };
            let Some(w) = inner.open.get_mut(&id) else {
                return;
            };
            w.writers = w.writers.saturating_sub(1);
            if w.writers > 0 {
                return;
            }
            let w = inner.open.remove(&id).expect("found above");
            Self::touch_folder(&mut inner, &w.rel);
            // Still there under its name (not removed or replaced while open)?
            let here =
                std::fs::symlink_metadata(self.inbox.join(&w.rel)).is_ok_and(|m| file_id(&m) == id);
            if !w.written || w.gone || w.refused || !here {
                return;
            }
            let Some(job) = self.reserve_file(&mut inner, &w.rel) else {
                return;
            };
            (w.rel, job)
        };
        self.submit_file(&rel, job);
    }

    /// A writer opened an inbox file (`truncate`: its content is replaced, which counts as
    /// written).
    pub(super) fn start_writing(inner: &mut Inner, id: FileId, rel: &Path, truncate: bool) {
        let w = inner.open.entry(id).or_insert_with(|| Writing {
            writers: 0,
            written: false,
            rel: rel.to_path_buf(),
            gone: false,
            refused: false,
        });
        w.writers += 1;
        w.written |= truncate;
        w.rel = rel.to_path_buf();
        w.gone = false;
        Self::touch_folder(inner, rel);
    }

    /// The files open for writing at or under `rel` are no longer there (unlinked, or
    /// replaced by a rename).
    fn writers_gone(inner: &mut Inner, rel: &Path) {
        for w in inner.open.values_mut() {
            if w.rel.starts_with(rel) {
                w.gone = true;
            }
        }
    }

    /// Whether a file open for writing is at (or under) `rel`.
    pub(super) fn being_written(inner: &Inner, rel: &Path) -> bool {
        inner
            .open
            .values()
            .any(|w| !w.gone && w.writers > 0 && w.rel.starts_with(rel))
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
        if is_scratch(name) || role_of(tool, name).is_some() || tree::scratch_area(dir) {
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
        if let Some(Node::BinInfo(uid)) = self.node(&inner, parent) {
            drop(inner);
            return self.info_create(uid, name, mode);
        }
        let Some((dir, tool, in_folder)) = self.staged_dir(&inner, parent) else {
            return Err(self.refuse_write(&inner, parent, name));
        };
        Self::check_name(tool, &dir, name, in_folder)?;
        let rel = dir.join(name);
        // A file of that name is leaving the inbox right now (being recorded and moved into
        // its job, a matter of milliseconds): the new file waits for the name to be free.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Self::submitting(&inner, &rel) {
            if Instant::now() > deadline {
                return Err(FsError::refuse(
                    libc::EBUSY,
                    format!("inbox/{}: still being submitted; try again", rel.display()),
                ));
            }
            drop(inner);
            std::thread::sleep(Duration::from_millis(2));
            inner = self.lock();
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
        let id = file
            .metadata()
            .map(|m| file_id(&m))
            .map_err(|e| FsError::io(e, "create"))?;
        inner.writers.insert(id, owner);
        let ino = Self::staged_ino(&mut inner, &rel);
        Self::remember(&mut inner, ino);
        Self::start_writing(&mut inner, id, &rel, truncate);
        let fh = Self::new_handle(
            &mut inner,
            Handle::Staged {
                file: Arc::new(file),
                id,
                rel: rel.clone(),
                write: true,
            },
        );
        drop(inner);
        let attr = self.staged_attr(ino, &rel)?;
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
        if let Some(made) = self.trash_mkdir(parent, name) {
            return made;
        }
        let mut inner = self.lock();
        match self.staged_dir(&inner, parent) {
            Some((dir, _, in_folder)) if !in_folder || tree::scratch_area(&dir) => {
                let rel = dir.join(name);
                let path = self.inbox.join(&rel);
                std::fs::create_dir(&path).map_err(|e| FsError::io(e, "mkdir"))?;
                let _ = std::os::unix::fs::chown(&path, Some(owner.0), Some(owner.1));
                if let Ok(m) = std::fs::metadata(&path) {
                    inner.writers.insert(file_id(&m), owner);
                }
                let _ =
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777));
                inner.folders.insert(rel.clone(), Instant::now());
                let ino = Self::staged_ino(&mut inner, &rel);
                Self::remember(&mut inner, ino);
                drop(inner);
                self.staged_attr(ino, &rel)
            }
            Some((dir, _, _)) => Err(FsError::refuse(
                libc::EPERM,
                format!(
                    "inbox/{}: folders inside a submission folder are not taken",
                    dir.display()
                ),
            )),
            None if parent == INBOX => Err(FsError::refuse(
                libc::EPERM,
                format!("inbox/{name}: no such tool{}", tree::did_you_mean(name)),
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
        atime: Option<SystemTime>,
    ) -> FsResult<Attr> {
        // An open inbox file: changed through its descriptor (it may have been unlinked).
        let file = fh
            .and_then(|fh| self.handle_file(fh))
            .or_else(|| self.lock().orphans.get(&ino).cloned());
        if let Some(file) = file {
            let staged = match self.node(&self.lock(), ino) {
                Some(Node::Staged(rel)) => Some(rel),
                _ => None,
            };
            if let Some(rel) = &staged {
                Self::touch_folder(&mut self.lock(), rel);
            }
            if let Some(size) = size {
                file.set_len(size).map_err(|e| FsError::io(e, "truncate"))?;
            }
            if let Some(mode) = mode {
                file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(|e| FsError::io(e, "chmod"))?;
            }
            if let Some(times) = file_times(atime, mtime) {
                let _ = file.set_times(times);
            }
            let meta = file.metadata().map_err(|e| FsError::io(e, "fstat"))?;
            return Ok(self.meta_attr(ino, &meta, None));
        }
        let path = {
            let mut inner = self.lock();
            match self.node(&inner, ino) {
                // A submitted file: `mv`/`cp -p` set times and modes after closing. Harmless.
                Some(Node::Moved(path)) => {
                    drop(inner);
                    return self.moved_attr(ino, &path);
                }
                Some(Node::Staged(rel)) if !Self::submitting(&inner, &rel) => {
                    // A change in a folder (even `touch`) restarts its settle interval.
                    Self::touch_folder(&mut inner, &rel);
                    self.inbox.join(rel)
                }
                Some(Node::Staged(_)) => return Err(FsError::quiet(libc::ENOENT)),
                Some(Node::Info(path)) => path,
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
                })
                | Some(Handle::Plain { file, write: true }) => Some(file.clone()),
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
        if let Some(times) = file_times(atime, mtime) {
            let f = File::options()
                .write(true)
                .open(&path)
                .or_else(|_| File::open(&path));
            if let Ok(f) = f {
                let _ = f.set_times(times);
            }
        }
        let attr = self.disk_attr(ino, &path, None)?;
        Ok(Attr {
            ttl: LIVE_TTL,
            ..attr
        })
    }

    // ---- removing and renaming ----

    pub fn unlink(&self, parent: u64, name: &str) -> FsResult<()> {
        let mut inner = self.lock();
        if let Some((dir, _, _)) = self.staged_dir(&inner, parent) {
            let rel = dir.join(name);
            if Self::submitting(&inner, &rel) {
                return Err(FsError::quiet(libc::ENOENT));
            }
            let meta = std::fs::symlink_metadata(self.inbox.join(&rel));
            std::fs::remove_file(self.inbox.join(&rel)).map_err(|e| FsError::io(e, "unlink"))?;
            if let Ok(m) = meta {
                let id = file_id(&m);
                if !Self::is_open(&inner, id) {
                    inner.writers.remove(&id);
                }
                // Still open: its inode answers through its descriptor until the last close.
                let open = inner.handles.values().find_map(|h| match h {
                    Handle::Staged { file, id: i, .. } if *i == id => Some(file.clone()),
                    _ => None,
                });
                if let (Some(file), Some(&ino)) = (open, inner.inos.get(&rel)) {
                    inner.orphans.insert(ino, file);
                }
            }
            Self::drop_staged(&mut inner, &rel);
            Self::writers_gone(&mut inner, &rel);
            Self::touch_folder(&mut inner, &rel);
            return Ok(());
        }
        match self.node(&inner, parent) {
            Some(Node::Job(id)) => {
                drop(inner);
                self.unlink_job_file(id, name)
            }
            Some(Node::BinInfo(uid)) => {
                let path = self.info_path(uid, name);
                std::fs::remove_file(&path).map_err(|e| FsError::io(e, "unlink"))?;
                Self::drop_info(&mut inner, &path);
                Ok(())
            }
            _ => Err(FsError::refuse(
                libc::EPERM,
                format!("cannot remove {name:?} here"),
            )),
        }
    }

    pub fn rmdir(self: &Arc<Self>, parent: u64, name: &str) -> Rmdir {
        if let Some(id) = self.job_in(parent, name) {
            return self.remove_job(id);
        }
        let inner = self.lock();
        if let Some((dir, _, in_folder)) = self.staged_dir(&inner, parent)
            && (!in_folder || tree::scratch_area(&dir))
        {
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
        if let Some(done) = self.rename_trash(parent, name, new_parent, new_name) {
            return done;
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
        if is_dir && in_folder && !tree::scratch_area(&to_dir) {
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
        // Open files follow too: they now live at the new name, so the last close submits it
        // there (GIO and editors rename before closing). A file replaced at the target is gone.
        for w in inner.open.values_mut() {
            if w.rel.starts_with(&dst) && !w.rel.starts_with(&src) {
                w.gone = true;
            } else if w.rel.starts_with(&src) {
                w.rel = rebase(&w.rel, &src, &dst);
            }
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
        let open = Self::being_written(&inner, &dst);
        if !is_dir && !open {
            drop(inner);
            if let Some(why) = self.over_budget(&dst) {
                let line = format!(
                    "inbox/{}: not submitted, over the budget: {why}; the file stays in the inbox",
                    dst.display()
                );
                log::warn!("{line}");
                self.registry.activity().note(&line);
                return Ok(());
            }
            inner = self.lock();
        }
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
            .job_in(JOBS, name)
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
        let tool = self.tool_of_rel(rel)?;
        let source = match role_of(tool, &name)? {
            FileRole::Text => Source::Text,
            FileRole::Json => Source::Json,
            FileRole::Media(_) => Source::File,
        };
        inner.submitting.insert(rel.to_path_buf());
        // Its writer, from the FUSE request that wrote it (a file left from before a restart:
        // its owner on disk, which mhfs set to that writer).
        let owner = inner
            .writers
            .remove(&file_id(&meta))
            .unwrap_or((meta.uid(), meta.gid()));
        let mut job = self.registry.reserve(&name, tool, source, Some(owner));
        job.writers.insert(name, owner);
        self.apply_preset(&mut job, rel);
        Some(job)
    }

    /// Whether an inbox file is open for writing (by identity).
    fn is_open(inner: &Inner, id: FileId) -> bool {
        inner.open.get(&id).is_some_and(|w| w.writers > 0)
    }

    /// A writer opened an existing inbox file for writing: it is now its writer (the last
    /// writer's rights are the ones its JSON references are read with). Except root: a file
    /// server re-opens its clients' files as root (nfs-ganesha does, after creating them as the
    /// client), and the job stays the client's (its creator's, or after a restart its owner on
    /// disk).
    pub fn opened_by(&self, fh: u64, owner: (u32, u32)) {
        let mut inner = self.lock();
        if let Some(Handle::Staged {
            id, write: true, ..
        }) = inner.handles.get(&fh)
        {
            let id = *id;
            if owner.0 != 0 {
                inner.writers.insert(id, owner);
            }
        }
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
            crate::engine::registry::private_dir(&input_dir)
                .and_then(|()| std::fs::rename(self.inbox.join(rel), &kept))
                .and_then(|()| crate::engine::registry::set_mode(&kept, 0o600))
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
        let id = self.start_job(&rel.display().to_string(), job);
        self.forget_taken(rel, kept);
        self.kick(id);
    }

    /// Says a submission (log and activity.log) and shows its job whole.
    fn start_job(&self, what: &str, job: Job) -> JobId {
        let said = format!(
            "inbox/{what}: submitted as jobs/{} ({})",
            job.name, job.tool
        );
        log::info!("{said}");
        self.registry.activity().note(&said);
        let id = job.id;
        self.registry.publish(job);
        id
    }

    /// The inbox entries at and under `rel` are gone (submitted): forget their inodes and
    /// tell the kernel.
    fn forget_taken(&self, rel: &Path, kept: Option<PathBuf>) {
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
                1 => self.folder_ino(&parent.to_string_lossy()),
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
            if let Some(tool) = self.tool_of_rel(&rel)
                && let Some(media) = batch(tool, &names)
            {
                self.tick_batch(&rel, changed, tool, &names, media);
                continue;
            }
            let job = {
                let mut inner = self.lock();
                // Changed (or opened) while it was read: the next tick looks again.
                let still = inner.folders.get(&rel) == Some(&changed)
                    && !Self::being_written(&inner, &rel)
                    && !inner.submitting.contains(&rel);
                let tool = self.tool_of_rel(&rel);
                // The folder's maker (from the mkdir request; else its owner on disk).
                let owner = std::fs::metadata(self.inbox.join(&rel)).ok().map(|m| {
                    use std::os::unix::fs::MetadataExt;
                    inner
                        .writers
                        .get(&file_id(&m))
                        .copied()
                        .unwrap_or((m.uid(), m.gid()))
                });
                match tool {
                    Some(tool) if still => {
                        inner.folders.remove(&rel);
                        inner.submitting.insert(rel.clone());
                        let name = rel.file_name().unwrap_or_default().to_string_lossy();
                        let mut job = self.registry.reserve(&name, tool, Source::Folder, owner);
                        self.apply_preset(&mut job, &rel);
                        job
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
            let mut inner = self.lock();
            inner.folders.remove(rel);
            inner.waiting.remove(rel);
            return None;
        }
        if is_scratch(&folder_name) {
            return None;
        }
        let tool = self.tool_of_rel(rel)?;
        let names: Vec<String> = std::fs::read_dir(&path)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| !is_scratch(n))
            .filter(|n| std::fs::metadata(path.join(n)).is_ok_and(|m| m.len() > 0))
            .collect();
        if !names.is_empty() && folder_ready(tool, &names) {
            self.lock().waiting.remove(rel);
            return Some(names);
        }
        // Not complete: say what it still needs, once per change.
        if let Some(needs) = folder_needs(tool, &names) {
            let said = format!(
                "inbox/{}: waiting for {needs}: this tool takes {}",
                rel.display(),
                takes(tool)
            );
            let mut inner = self.lock();
            if inner.waiting.get(rel) != Some(&said) {
                inner.waiting.insert(rel.to_path_buf(), said.clone());
                drop(inner);
                log::info!("{said}");
                self.registry.activity().note(&said);
            }
        }
        None
    }

    /// A complete, quiet folder of a one-input tool holding several media files: one job per
    /// file, each named after its file; the folder's other files (params.json, a prompt) go
    /// with each.
    fn tick_batch(
        &self,
        rel: &Path,
        changed: Instant,
        tool: &'static Tool,
        names: &[String],
        media: Vec<String>,
    ) {
        let extras: Vec<String> = names
            .iter()
            .filter(|n| !media.contains(n))
            .cloned()
            .collect();
        let source = if extras.is_empty() {
            Source::File
        } else {
            Source::Folder
        };
        let jobs: Vec<(Job, String)> = {
            let mut inner = self.lock();
            let still = inner.folders.get(rel) == Some(&changed)
                && !Self::being_written(&inner, rel)
                && !inner.submitting.contains(rel);
            if !still {
                return;
            }
            // The folder's maker (from the mkdir request; else its owner on disk).
            let owner = std::fs::metadata(self.inbox.join(rel)).ok().map(|m| {
                use std::os::unix::fs::MetadataExt;
                inner
                    .writers
                    .get(&file_id(&m))
                    .copied()
                    .unwrap_or((m.uid(), m.gid()))
            });
            inner.folders.remove(rel);
            inner.waiting.remove(rel);
            inner.submitting.insert(rel.to_path_buf());
            media
                .into_iter()
                .map(|file| (self.registry.reserve(&file, tool, source, owner), file))
                .collect()
        };
        let folder = self.inbox.join(rel);
        let folder_name = rel
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let layout = self.registry.layout();
        let mut all_moved = true;
        let mut started = Vec::new();
        for (mut job, file) in jobs {
            let input_dir = layout.input_dir(job.id);
            // Each file's own writer (a params.json's references are read with its rights).
            {
                use std::os::unix::fs::MetadataExt;
                let inner = self.lock();
                for n in std::iter::once(&file).chain(&extras) {
                    if let Ok(m) = std::fs::metadata(folder.join(n)) {
                        let w = inner
                            .writers
                            .get(&file_id(&m))
                            .copied()
                            .unwrap_or((m.uid(), m.gid()));
                        let shown = if extras.is_empty() {
                            n.clone()
                        } else {
                            format!("{folder_name}/{n}")
                        };
                        job.writers.insert(shown, w);
                    }
                }
            }
            let moved = self.registry.record(&job).and_then(|()| {
                crate::engine::registry::private_dir(&input_dir)
                    .and_then(|()| std::fs::rename(folder.join(&file), input_dir.join(&file)))
                    .and_then(|()| {
                        extras.iter().try_for_each(|x| {
                            std::fs::copy(folder.join(x), input_dir.join(x)).map(|_| ())
                        })
                    })
                    .and_then(|()| private_tree(&input_dir))
                    .map_err(|e| format!("cannot move it into the job: {e}"))
            });
            if let Err(e) = moved {
                log::error!("inbox/{}/{file}: not submitted: {e}", rel.display());
                self.registry.discard(job.id);
                all_moved = false;
                continue;
            }
            let input = |n: &String, shown: String| InputFile {
                name: shown,
                path: input_dir.join(n),
                remote: None,
            };
            job.inputs = if extras.is_empty() {
                vec![input(&file, file.clone())]
            } else {
                std::iter::once(&file)
                    .chain(&extras)
                    .map(|n| input(n, format!("{folder_name}/{n}")))
                    .collect()
            };
            started.push(self.start_job(&format!("{}/{file}", rel.display()), job));
        }
        if all_moved {
            let _ = std::fs::remove_dir_all(&folder);
            self.forget_taken(rel, None);
        } else {
            let mut inner = self.lock();
            inner.submitting.remove(rel);
            inner.folders.insert(rel.to_path_buf(), Instant::now());
        }
        for id in started {
            self.kick(id);
        }
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
            crate::engine::registry::private_dir(&layout.job_dir(job.id))
                .and_then(|()| std::fs::rename(self.inbox.join(rel), &input_dir))
                .and_then(|()| private_tree(&input_dir))
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
        // Each file's own writer (a params.json dropped into a folder someone else made is
        // read with its writer's rights, not the folder's maker's).
        {
            use std::os::unix::fs::MetadataExt;
            let mut inner = self.lock();
            if let Ok(m) = std::fs::metadata(&input_dir) {
                inner.writers.remove(&file_id(&m));
            }
            for n in &names {
                if let Ok(m) = std::fs::metadata(input_dir.join(n)) {
                    let w = inner
                        .writers
                        .remove(&file_id(&m))
                        .unwrap_or((m.uid(), m.gid()));
                    job.writers.insert(format!("{folder_name}/{n}"), w);
                }
            }
        }
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

/// The media files of a folder that a one-input tool takes as a batch (one job each): `Some`
/// when the tool has a single input, not a list, and the folder holds two or more of them.
fn batch(tool: &Tool, names: &[String]) -> Option<Vec<String>> {
    let [input] = tool.inputs else {
        return None;
    };
    if input.list || tool.needs_folder() {
        return None;
    }
    let media: Vec<String> = names
        .iter()
        .filter(|n| matches!(role_of(tool, n), Some(FileRole::Media(_))))
        .cloned()
        .collect();
    (media.len() >= 2).then_some(media)
}

/// A submitted folder's files become mhfs's own, like everything in the state directory:
/// 0700 folders, 0600 files.
fn private_tree(dir: &Path) -> std::io::Result<()> {
    crate::engine::registry::set_mode(dir, 0o700)?;
    for e in std::fs::read_dir(dir)?.flatten() {
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        crate::engine::registry::set_mode(&e.path(), if is_dir { 0o700 } else { 0o600 })?;
    }
    Ok(())
}

/// The times a setattr sets (`None`: it sets neither). Both are kept apart: an NFS server's
/// exclusive create (ganesha's EXCLUSIVE4) stores its verifier in atime and mtime and reads both
/// back.
fn file_times(atime: Option<SystemTime>, mtime: Option<SystemTime>) -> Option<std::fs::FileTimes> {
    if atime.is_none() && mtime.is_none() {
        return None;
    }
    let mut times = std::fs::FileTimes::new();
    if let Some(a) = atime {
        times = times.set_accessed(a);
    }
    if let Some(m) = mtime {
        times = times.set_modified(m);
    }
    Some(times)
}
