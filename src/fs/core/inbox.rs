//! The write side: staging files in the inbox, removing and renaming, and submitting what is
//! complete as new jobs.

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
            inner.staged.entry(rel.clone()).or_default().written = true;
            self.touch_folder(&mut inner, &rel);
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
        let mut inner = self.lock();
        let Some(Handle::Staged {
            rel, write: true, ..
        }) = inner.handles.remove(&fh)
        else {
            return;
        };
        let meta = inner.staged.entry(rel.clone()).or_default();
        meta.writers = meta.writers.saturating_sub(1);
        if meta.writers > 0 {
            return;
        }
        let written = std::mem::take(&mut meta.written);
        inner.staged.remove(&rel);
        self.touch_folder(&mut inner, &rel);
        if written && rel.components().count() == 2 {
            self.submit_file(&mut inner, &rel);
        }
    }

    pub(super) fn touch_folder(&self, inner: &mut Inner, rel: &Path) {
        if rel.components().count() >= 3 {
            let folder: PathBuf = rel.components().take(2).collect();
            inner.folders.insert(folder, Instant::now());
        }
    }

    // ---- creating things ----

    /// Checks a name for a tool's folder: scratch names always, otherwise what the tool takes.
    pub(super) fn check_name(tool: &Tool, dir: &Path, name: &str, in_folder: bool) -> FsResult<()> {
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
        let ino = Self::ino_of(&mut inner, Node::Staged(rel.clone()));
        inner.moved.remove(&ino);
        inner.staged.entry(rel.clone()).or_default().writers += 1;
        self.touch_folder(&mut inner, &rel);
        let fh = Self::new_handle(
            &mut inner,
            Handle::Staged {
                file: Arc::new(file),
                rel: rel.clone(),
                write: true,
            },
        );
        drop(inner);
        let attr = self.staged_attr(ino, &self.inbox.join(&rel))?;
        Ok((
            attr,
            Opened {
                fh,
                direct_io: false,
                backing: None,
            },
        ))
    }

    /// The refusal for writing where the drive takes nothing.
    pub(super) fn refuse_write(&self, inner: &Inner, parent: u64, name: &str) -> FsError {
        let in_jobs = parent == JOBS || matches!(inner.nodes.get(&parent), Some(Node::Job(_)));
        match parent {
            ROOT | INBOX => FsError::refuse(
                libc::EPERM,
                format!("cannot create {name:?} here: only inbox/<tool>/ takes files"),
            ),
            _ if in_jobs => FsError::refuse(
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
                std::fs::create_dir(self.inbox.join(&rel)).map_err(|e| FsError::io(e, "mkdir"))?;
                let _ =
                    std::os::unix::fs::chown(self.inbox.join(&rel), Some(owner.0), Some(owner.1));
                let _ = std::fs::set_permissions(
                    self.inbox.join(&rel),
                    std::fs::Permissions::from_mode(mode & 0o777),
                );
                inner.folders.insert(rel.clone(), Instant::now());
                let ino = Self::ino_of(&mut inner, Node::Staged(rel.clone()));
                drop(inner);
                self.staged_attr(ino, &self.inbox.join(rel))
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
            match (inner.nodes.get(&ino).cloned(), inner.moved.get(&ino)) {
                (_, Some(moved)) => {
                    // A submitted file: `mv`/`cp -p` set times and modes after closing. Harmless.
                    let moved = moved.clone();
                    drop(inner);
                    return self.staged_attr(ino, &moved);
                }
                (Some(Node::Staged(rel)), _) => {
                    // A change in a folder (even `touch`) restarts its settle interval.
                    self.touch_folder(&mut inner, &rel);
                    self.inbox.join(rel)
                }
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
        self.staged_attr(ino, &path)
    }

    // ---- removing and renaming ----

    pub fn unlink(&self, parent: u64, name: &str) -> FsResult<()> {
        let mut inner = self.lock();
        if let Some((dir, _, _)) = self.staged_dir(&inner, parent) {
            let rel = dir.join(name);
            std::fs::remove_file(self.inbox.join(&rel)).map_err(|e| FsError::io(e, "unlink"))?;
            if let Some(ino) = inner.inos.remove(&Node::Staged(rel.clone())) {
                inner.nodes.remove(&ino);
            }
            self.touch_folder(&mut inner, &rel);
            return Ok(());
        }
        let Some(Node::Job(id)) = inner.nodes.get(&parent).cloned() else {
            return Err(FsError::refuse(
                libc::EPERM,
                format!("cannot remove {name:?} here"),
            ));
        };
        let job = inner
            .jobs
            .get(&id)
            .cloned()
            .ok_or(FsError::quiet(libc::ENOENT))?;
        drop(inner);
        let part = self.job_part(&job, name)?;
        // Removing a file of a job drops the local copy; status and the JSON files stay (they
        // are views of the job, which only rmdir of its folder removes).
        match part {
            Part::Output(out) => {
                let _ = std::fs::remove_file(self.output_dir(id).join(&out));
                self.update(id, |j| {
                    if let Some(o) = j.outputs.iter_mut().find(|o| o.name == out) {
                        o.removed = true;
                    }
                });
            }
            Part::Input(i) => {
                let _ = std::fs::remove_file(&job.inputs[i].path);
            }
            _ => {}
        }
        Ok(())
    }

    pub fn rmdir(self: &Arc<Self>, parent: u64, name: &str) -> Rmdir {
        let inner = self.lock();
        if parent == JOBS {
            let Some(id) = Self::job_by_name(&inner, name) else {
                return Rmdir::Done(Err(FsError::quiet(libc::ENOENT)));
            };
            drop(inner);
            let Some(hooks) = self.hooks.get() else {
                return Rmdir::Done(Err(FsError::refuse(libc::EIO, "the engine is not running")));
            };
            let delete = (hooks.delete)(id);
            let name = name.to_string();
            return Rmdir::Pending(Box::pin(async move {
                delete.await.map_err(|e| {
                    let errno = match e {
                        ApiError::Local(_) => libc::EBUSY,
                        _ => libc::EIO,
                    };
                    FsError::refuse(errno, format!("rmdir jobs/{name}: the job stays: {e}"))
                })
            }));
        }
        if let Some((dir, _, false)) = self.staged_dir(&inner, parent) {
            let rel = dir.join(name);
            drop(inner);
            return Rmdir::Done(
                std::fs::remove_dir(self.inbox.join(&rel))
                    .map_err(|e| FsError::io(e, "rmdir"))
                    .map(|()| {
                        let mut inner = self.lock();
                        inner.folders.remove(&rel);
                        if let Some(ino) = inner.inos.remove(&Node::Staged(rel)) {
                            inner.nodes.remove(&ino);
                        }
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
        let mut inner = self.lock();
        if parent == JOBS && new_parent == JOBS {
            let id = Self::job_by_name(&inner, name).ok_or(FsError::quiet(libc::ENOENT))?;
            if name == new_name {
                return Ok(());
            }
            if Self::job_by_name(&inner, new_name).is_some() {
                return Err(FsError::refuse(
                    libc::EEXIST,
                    format!("jobs/{new_name} exists"),
                ));
            }
            if new_name.is_empty() || new_name.starts_with('.') {
                return Err(FsError::refuse(
                    libc::EINVAL,
                    format!("bad job name {new_name:?}"),
                ));
            }
            // Checked and renamed under one lock, so no new job can take the name meanwhile.
            let job = inner.jobs.get_mut(&id).expect("found above");
            job.name = new_name.to_string();
            if let Err(e) = self.store().save(job) {
                job.name = name.to_string();
                return Err(FsError::refuse(
                    libc::EIO,
                    format!("rename jobs/{name}: {e}"),
                ));
            }
            drop(inner);
            self.invalidate(Inval::Entry {
                parent: JOBS,
                name: name.to_string(),
            });
            log::info!("job {name}: renamed to {new_name}");
            return Ok(());
        }
        let from = self.staged_dir(&inner, parent);
        let to = self.staged_dir(&inner, new_parent);
        let (Some((from_dir, _, _)), Some((to_dir, tool, in_folder))) = (from, to) else {
            return Err(FsError::refuse(
                libc::EXDEV,
                format!("rename {name:?} -> {new_name:?}: only within inbox/ or within jobs/"),
            ));
        };
        let (src, dst) = (from_dir.join(name), to_dir.join(new_name));
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
        // The inode follows the file (and, for a folder, its children follow too).
        let moves: Vec<(Node, u64)> = inner
            .inos
            .iter()
            .filter_map(|(node, ino)| match node {
                Node::Staged(p) if p.starts_with(&src) => Some((node.clone(), *ino)),
                _ => None,
            })
            .collect();
        for (node, ino) in moves {
            let Node::Staged(p) = &node else { continue };
            let new_path = rebase(p, &src, &dst);
            inner.inos.remove(&node);
            if let Some(old) = inner.inos.insert(Node::Staged(new_path.clone()), ino) {
                inner.nodes.remove(&old);
            }
            inner.nodes.insert(ino, Node::Staged(new_path));
        }
        // Open files follow too: their writers and handles now live at the new name, so the
        // last close submits it there (GIO and editors rename before closing).
        let open: Vec<PathBuf> = inner
            .staged
            .keys()
            .filter(|p| p.starts_with(&src))
            .cloned()
            .collect();
        for p in open {
            let meta = inner.staged.remove(&p).expect("listed");
            // A target still open elsewhere keeps its writers too.
            let target = inner.staged.entry(rebase(&p, &src, &dst)).or_default();
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
        self.touch_folder(&mut inner, &src);
        self.touch_folder(&mut inner, &dst);
        // A hidden temp name renamed to a visible one is complete (rsync, editors, browsers).
        let open = inner.staged.get(&dst).is_some_and(|m| m.writers > 0);
        if !is_dir && !open && dst.components().count() == 2 {
            self.submit_file(&mut inner, &dst);
        }
        Ok(())
    }

    // ---- submission ----

    /// Records a project found on Magic Hour as a job named after its id, and starts polling it.
    pub fn adopt_project(&self, tool: &'static Tool, project_id: &str) -> Option<JobId> {
        let mut inner = self.lock();
        if inner
            .jobs
            .values()
            .any(|j| j.project_id.as_deref() == Some(project_id))
        {
            return None;
        }
        let name = job_name(project_id, |n| inner.jobs.values().any(|j| j.name == n));
        let mut job = Job::new(name, tool, "adopted");
        job.stage = Stage::Created;
        job.status = JobStatus::Queued;
        job.project_id = Some(project_id.to_string());
        if let Err(e) = self.store().insert(&mut job) {
            log::error!("adopting {project_id}: {e}");
            return None;
        }
        let id = job.id;
        log::info!(
            "jobs/{}: adopted {} project {project_id}",
            job.name,
            tool.slug
        );
        inner.jobs.insert(id, job);
        drop(inner);
        self.kick(id);
        Some(id)
    }

    pub(super) fn new_job(
        &self,
        inner: &mut Inner,
        tool: &'static Tool,
        name: &str,
        source: &str,
        path: &Path,
    ) -> Result<Job, String> {
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(path).ok().map(|m| (m.uid(), m.gid()));
        let job_name = job_name(name, |n| inner.jobs.values().any(|j| j.name == n));
        let mut job = Job::new(job_name, tool, source);
        job.owner = owner;
        let store = self.store();
        store.insert(&mut job).map_err(|e| e.to_string())?;
        Ok(job)
    }

    /// Moves a complete inbox file into a new job and starts it. Empty files and scratch names
    /// stay in the inbox.
    pub(super) fn submit_file(&self, inner: &mut Inner, rel: &Path) {
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let path = self.inbox.join(rel);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if is_scratch(&name) || size == 0 {
            return;
        }
        let Some(tool) = tool_of_rel(rel) else {
            return;
        };
        let source = match role_of(tool, &name) {
            Some(FileRole::Text) => "text",
            Some(FileRole::Json) => "json",
            Some(FileRole::Media(_)) => "file",
            None => return,
        };
        let mut job = match self.new_job(inner, tool, &name, source, &path) {
            Ok(j) => j,
            Err(e) => {
                log::error!("inbox/{}: cannot record the job: {e}", rel.display());
                return;
            }
        };
        let input_dir = self.input_dir(job.id);
        let kept = input_dir.join(&name);
        if let Err(e) =
            std::fs::create_dir_all(&input_dir).and_then(|()| std::fs::rename(&path, &kept))
        {
            log::error!("inbox/{}: cannot move into the job: {e}", rel.display());
            let _ = self.store().delete(job.id);
            return;
        }
        job.inputs.push(InputFile {
            name: name.clone(),
            path: kept.clone(),
            remote: None,
        });
        self.take_in(inner, job, rel, Some(kept));
    }

    /// Records a new job in memory, forgets its inbox entry, and starts it.
    pub(super) fn take_in(&self, inner: &mut Inner, job: Job, rel: &Path, kept: Option<PathBuf>) {
        if let Err(e) = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .save(&job)
        {
            log::error!("job {}: {e}", job.name);
        }
        log::info!(
            "inbox/{}: submitted as jobs/{} ({})",
            rel.display(),
            job.name,
            job.tool
        );
        if let Some(ino) = inner.inos.remove(&Node::Staged(rel.to_path_buf())) {
            inner.nodes.remove(&ino);
            if let Some(kept) = kept {
                inner.moved.insert(ino, kept);
            }
        }
        let id = job.id;
        inner.jobs.insert(id, job);
        let (parent, name) = (
            rel.parent().unwrap_or(Path::new("")),
            rel.file_name().unwrap_or_default(),
        );
        let parent_ino = match parent.components().count() {
            1 => tool_index(&parent.to_string_lossy()).map(tool_ino),
            _ => inner.inos.get(&Node::Staged(parent.to_path_buf())).copied(),
        };
        if let Some(parent_ino) = parent_ino {
            self.invalidate(Inval::Entry {
                parent: parent_ino,
                name: name.to_string_lossy().to_string(),
            });
        }
        self.kick(id);
    }

    /// Submits inbox folders that are complete, closed and quiet for the settle interval.
    /// Called about twice a second by a timer task.
    pub fn tick(&self) {
        let mut inner = self.lock();
        let due: Vec<PathBuf> = inner
            .folders
            .iter()
            .filter(|(_, changed)| changed.elapsed() >= self.cfg.settle)
            .map(|(rel, _)| rel.clone())
            .collect();
        for rel in due {
            if inner
                .staged
                .iter()
                .any(|(p, m)| p.starts_with(&rel) && m.writers > 0)
            {
                continue;
            }
            let folder_name = rel
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let path = self.inbox.join(&rel);
            if is_scratch(&folder_name) || !path.is_dir() {
                if !path.is_dir() {
                    inner.folders.remove(&rel);
                }
                continue;
            }
            let Some(tool) = tool_of_rel(&rel) else {
                continue;
            };
            let names: Vec<String> = std::fs::read_dir(&path)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| !is_scratch(n))
                .filter(|n| std::fs::metadata(path.join(n)).is_ok_and(|m| m.len() > 0))
                .collect();
            if names.is_empty() || !folder_ready(tool, &names) {
                continue;
            }
            inner.folders.remove(&rel);
            let mut job = match self.new_job(&mut inner, tool, &folder_name, "folder", &path) {
                Ok(j) => j,
                Err(e) => {
                    log::error!("inbox/{}: cannot record the job: {e}", rel.display());
                    continue;
                }
            };
            let input_dir = self.input_dir(job.id);
            if let Err(e) = std::fs::create_dir_all(self.job_dir(job.id))
                .and_then(|()| std::fs::rename(&path, &input_dir))
            {
                log::error!("inbox/{}: cannot move into the job: {e}", rel.display());
                let _ = self.store().delete(job.id);
                continue;
            }
            let mut sorted = names;
            sorted.sort();
            job.inputs = sorted
                .into_iter()
                .map(|n| InputFile {
                    name: format!("{folder_name}/{n}"),
                    path: input_dir.join(&n),
                    remote: None,
                })
                .collect();
            // Forget the folder's children too.
            let children: Vec<Node> = inner
                .inos
                .keys()
                .filter(|n| matches!(n, Node::Staged(p) if p.starts_with(&rel) && p != &rel))
                .cloned()
                .collect();
            for node in children {
                if let Some(ino) = inner.inos.remove(&node) {
                    inner.nodes.remove(&ino);
                }
            }
            self.take_in(&mut inner, job, &rel, None);
        }
    }
}
