//! A model-based test of the FUSE-free core: `mhfs::fs::core::Drive` is driven directly (no
//! `/dev/fuse`, no mount, no engine) by random sequences of what the kernel sends for user
//! actions in the inbox, and after every step it is compared with a small reference model of
//! README.md "Submitting" and docs/SEMANTICS.md: what each tool folder lists, which jobs exist
//! (names, tools, sources, inputs, in creation order), and the errno of every refusal.
//!
//! The alphabet is small on purpose (three tools, eight names, two folders) so names collide,
//! files are replaced, and job names need their `-2`, `-3`. Proptest shrinks a failure to a
//! minimal op sequence; the named tests at the end are the basics, deterministic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use mhfs::engine::job::Source;
use mhfs::engine::registry::Registry;
use mhfs::fs::core::{Drive, DriveConfig, INBOX, JOBS, Kind, ROOT, Rmdir};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

// ---- the alphabet ----

const UPSCALER: &str = "ai-image-upscaler";
const GENERATOR: &str = "ai-image-generator";
const HEAD_SWAP: &str = "head-swap";
const TOOLS: [&str; 3] = [UPSCALER, GENERATOR, HEAD_SWAP];
/// File names dropped directly into a tool's folder: media, a prompt, an rsync-like hidden
/// temp, an editor backup, a refused type and vim's probe.
const NAMES: [&str; 8] = [
    "a.png",
    "b.png",
    "a.jpg",
    "p.txt",
    ".a.png.tmp",
    "a.png~",
    "x.exe",
    "4913",
];
/// Submission folders of `head-swap` (`a` collides with the stem of `a.png`).
const FOLDERS: [&str; 2] = ["a", "f"];
const PARTS: [&str; 2] = ["body.png", "head.png"];

/// Scratch names of the alphabet (README: hidden, `*~`, `*.tmp`, `4913`, ...), written out by
/// hand rather than taken from the drive's own `is_scratch`.
fn scratch(name: &str) -> bool {
    matches!(name, ".a.png.tmp" | "a.png~" | "4913")
}

/// Whether `tool`'s folder takes `name`: scratch always; otherwise the tool's media types and,
/// when it takes a text, `.txt` (upscaler: image + optional prompt; generator: prompt only;
/// head-swap: images only).
fn accepts(tool: &str, name: &str) -> bool {
    if scratch(name) {
        return true;
    }
    let image = name.ends_with(".png") || name.ends_with(".jpg");
    let text = name.ends_with(".txt");
    match tool {
        UPSCALER => image || text,
        GENERATOR => text,
        HEAD_SWAP => image,
        _ => false,
    }
}

fn stem(name: &str) -> &str {
    match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

// ---- the reference model ----

/// Where a staged file is: `inbox/<tool>/<name>` or `inbox/head-swap/<folder>/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Loc {
    tool: &'static str,
    folder: Option<&'static str>,
    name: &'static str,
}

impl Loc {
    fn top(tool: &'static str, name: &'static str) -> Loc {
        Loc {
            tool,
            folder: None,
            name,
        }
    }

    fn part(folder: &'static str, name: &'static str) -> Loc {
        Loc {
            tool: HEAD_SWAP,
            folder: Some(folder),
            name,
        }
    }
}

/// Writers open on a file and whether data was written since the first of them opened it.
#[derive(Debug, Default, Clone, Copy)]
struct Meta {
    writers: u32,
    written: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    File,
    Text,
    Folder,
}

#[derive(Debug, Clone)]
struct ModelJob {
    name: String,
    tool: &'static str,
    source: Src,
    inputs: Vec<String>,
    /// Jobs of one `tick` are made in no particular order: their ids are compared as a set.
    batch: usize,
}

/// An open writer: the path it counts at (it follows renames) and the file it writes (a
/// replaced or removed file lives on while it is open).
#[derive(Debug, Clone, Copy)]
struct ModelHandle {
    loc: Loc,
    file: usize,
}

#[derive(Debug, Default)]
struct Model {
    /// The inbox's files: path -> file id.
    files: BTreeMap<Loc, usize>,
    /// Size of each file ever made, by id.
    sizes: Vec<u64>,
    /// Open writers by file (a removed or replaced file lives on while it is open).
    open: HashMap<usize, Meta>,
    folders: BTreeSet<&'static str>,
    jobs: Vec<ModelJob>,
    batches: usize,
}

type Errno = i32;

impl Model {
    fn unique(&self, stem: &str) -> String {
        let taken = |n: &str| self.jobs.iter().any(|j| j.name == n);
        if !taken(stem) {
            return stem.to_string();
        }
        (2..)
            .map(|n| format!("{stem}-{n}"))
            .find(|n| !taken(n))
            .expect("a free suffix")
    }

    fn push_job(&mut self, name: &str, tool: &'static str, source: Src, inputs: Vec<String>) {
        let name = self.unique(stem(name));
        self.batches += 1;
        let batch = self.batches;
        self.jobs.push(ModelJob {
            name,
            tool,
            source,
            inputs,
            batch,
        });
    }

    /// `creat(O_TRUNC)`: a new file, or the existing one truncated (then it counts as written).
    fn create(&mut self, loc: Loc) -> Result<ModelHandle, Errno> {
        if let Some(f) = loc.folder
            && !self.folders.contains(f)
        {
            return Err(libc::ENOENT);
        }
        if let Some(&file) = self.files.get(&loc) {
            let meta = self.open.entry(file).or_default();
            meta.writers += 1;
            meta.written = true;
            self.sizes[file] = 0;
            return Ok(ModelHandle { loc, file });
        }
        if !accepts(loc.tool, loc.name) {
            return Err(libc::EINVAL);
        }
        let file = self.sizes.len();
        self.sizes.push(0);
        self.files.insert(loc, file);
        self.open.entry(file).or_default().writers += 1;
        Ok(ModelHandle { loc, file })
    }

    /// `open(O_WRONLY)` of an existing file: one more writer, nothing written yet.
    fn append(&mut self, loc: Loc) -> ModelHandle {
        let file = self.files[&loc];
        self.open.entry(file).or_default().writers += 1;
        ModelHandle { loc, file }
    }

    fn truncate(&mut self, loc: Loc) {
        self.sizes[self.files[&loc]] = 0;
    }

    fn write(&mut self, h: ModelHandle, len: u64) {
        self.sizes[h.file] += len;
        self.open.entry(h.file).or_default().written = true;
    }

    fn release(&mut self, h: ModelHandle) {
        let meta = self.open.entry(h.file).or_default();
        meta.writers = meta.writers.saturating_sub(1);
        if meta.writers > 0 {
            return;
        }
        let written = meta.written;
        self.open.remove(&h.file);
        // Submitted where it is now, if it is still linked (not removed or replaced).
        if written && let Some(loc) = self.loc_of(h.file).filter(|l| l.folder.is_none()) {
            self.complete(loc);
        }
    }

    /// Where a file is linked now, if anywhere.
    fn loc_of(&self, file: usize) -> Option<Loc> {
        self.files
            .iter()
            .find(|(_, f)| **f == file)
            .map(|(l, _)| *l)
    }

    fn being_written(&self, file: usize) -> bool {
        self.open.get(&file).is_some_and(|m| m.writers > 0)
    }

    /// A file is complete: visible and non-empty, it leaves the inbox as a job.
    fn complete(&mut self, loc: Loc) {
        let Some(&file) = self.files.get(&loc) else {
            return;
        };
        if scratch(loc.name) || self.sizes[file] == 0 {
            return;
        }
        self.files.remove(&loc);
        let source = if loc.name.ends_with(".txt") {
            Src::Text
        } else {
            Src::File
        };
        self.push_job(loc.name, loc.tool, source, vec![loc.name.to_string()]);
    }

    fn rename(
        &mut self,
        tool: &'static str,
        from: &'static str,
        to: &'static str,
    ) -> Result<(), Errno> {
        let (src, dst) = (Loc::top(tool, from), Loc::top(tool, to));
        let file = *self.files.get(&src).ok_or(libc::ENOENT)?;
        if !accepts(tool, to) {
            return Err(libc::EINVAL);
        }
        self.files.remove(&src);
        // A file at the target is replaced (it lives on only while open).
        self.files.insert(dst, file);
        if !self.being_written(file) {
            self.complete(dst);
        }
        Ok(())
    }

    fn unlink(&mut self, loc: Loc) -> Result<(), Errno> {
        if let Some(f) = loc.folder
            && !self.folders.contains(f)
        {
            return Err(libc::ENOENT);
        }
        self.files.remove(&loc).map(|_| ()).ok_or(libc::ENOENT)
    }

    fn mkdir(&mut self, folder: &'static str) -> Result<(), Errno> {
        if !self.folders.insert(folder) {
            return Err(libc::EEXIST);
        }
        Ok(())
    }

    fn rmdir(&mut self, folder: &'static str) -> Result<(), Errno> {
        if !self.folders.contains(folder) {
            return Err(libc::ENOENT);
        }
        if self.files.keys().any(|l| l.folder == Some(folder)) {
            return Err(libc::ENOTEMPTY);
        }
        self.folders.remove(folder);
        Ok(())
    }

    /// Folders with both parts non-empty and nothing open in them are submitted (the settle
    /// time is zero here).
    fn tick(&mut self) {
        self.batches += 1;
        let batch = self.batches;
        let due: Vec<&'static str> = self
            .folders
            .iter()
            .copied()
            .filter(|f| {
                !self.open.iter().any(|(&file, m)| {
                    m.writers > 0 && self.loc_of(file).is_some_and(|l| l.folder == Some(*f))
                })
            })
            .filter(|f| {
                PARTS.iter().all(|p| {
                    self.files
                        .get(&Loc::part(f, p))
                        .is_some_and(|&file| self.sizes[file] > 0)
                })
            })
            .collect();
        for f in due {
            self.folders.remove(f);
            self.files.retain(|l, _| l.folder != Some(f));
            let name = self.unique(f);
            self.jobs.push(ModelJob {
                name,
                tool: HEAD_SWAP,
                source: Src::Folder,
                inputs: PARTS.iter().map(|p| format!("{f}/{p}")).collect(),
                batch,
            });
        }
    }

    /// What `inbox/<tool>/` lists.
    fn listing(&self, tool: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter(|l| l.tool == tool && l.folder.is_none())
            .map(|l| l.name.to_string())
            .collect();
        if tool == HEAD_SWAP {
            names.extend(self.folders.iter().map(|f| f.to_string()));
        }
        names.sort();
        names
    }

    fn folder_listing(&self, folder: &str) -> Vec<String> {
        self.files
            .keys()
            .filter(|l| l.folder == Some(folder))
            .map(|l| l.name.to_string())
            .collect()
    }
}

// ---- the ops ----

#[derive(Debug, Clone)]
enum Op {
    /// `open(O_CREAT|O_TRUNC|O_WRONLY)` of `inbox/<tool>/<name>`; the writer stays open.
    Create(&'static str, &'static str),
    /// Appends `len` bytes through open writer number `n` (modulo how many are open).
    Write(usize, u64),
    /// Closes open writer number `n`.
    Release(usize),
    /// `mv inbox/<tool>/<from> inbox/<tool>/<to>` (never `from == to`: the kernel answers that
    /// itself without asking the file system).
    Rename(&'static str, &'static str, &'static str),
    /// A rename of the `n`-th file of the inbox (modulo how many there are) to `to`: the
    /// `Rename` above rarely finds its source.
    RenameExisting(usize, &'static str),
    Unlink(&'static str, &'static str),
    /// `open(O_WRONLY)` without truncating (`>>`) of the `n`-th file of the inbox (modulo how
    /// many there are, folders' files included); the writer stays open.
    AppendExisting(usize),
    /// `truncate -s 0` (a setattr without a handle) of the `n`-th file of the inbox.
    TruncateExisting(usize),
    /// `mkdir inbox/head-swap/<folder>`.
    Mkdir(&'static str),
    /// `open(O_CREAT|O_TRUNC)` of `inbox/head-swap/<folder>/<part>`.
    CreateInFolder(&'static str, &'static str),
    UnlinkInFolder(&'static str, &'static str),
    Rmdir(&'static str),
    Tick,
    /// The kernel forgets every inode it was given, with its count.
    ForgetAll,
}

fn op() -> impl Strategy<Value = Op> {
    let tool = || proptest::sample::select(TOOLS.to_vec());
    let name = || proptest::sample::select(NAMES.to_vec());
    let folder = || proptest::sample::select(FOLDERS.to_vec());
    let part = || proptest::sample::select(PARTS.to_vec());
    prop_oneof![
        4 => (tool(), name()).prop_map(|(t, n)| Op::Create(t, n)),
        5 => (0..8usize, 0..64u64).prop_map(|(h, len)| Op::Write(h, len)),
        4 => (0..8usize).prop_map(Op::Release),
        3 => (0..8usize, name()).prop_map(|(n, to)| Op::RenameExisting(n, to)),
        1 => (tool(), name(), name())
            .prop_filter("the kernel answers a rename onto itself", |(_, a, b)| a != b)
            .prop_map(|(t, a, b)| Op::Rename(t, a, b)),
        1 => (tool(), name()).prop_map(|(t, n)| Op::Unlink(t, n)),
        2 => (0..8usize).prop_map(Op::AppendExisting),
        1 => (0..8usize).prop_map(Op::TruncateExisting),
        2 => folder().prop_map(Op::Mkdir),
        4 => (folder(), part()).prop_map(|(f, p)| Op::CreateInFolder(f, p)),
        1 => (folder(), part()).prop_map(|(f, p)| Op::UnlinkInFolder(f, p)),
        1 => folder().prop_map(Op::Rmdir),
        2 => Just(Op::Tick),
        1 => Just(Op::ForgetAll),
    ]
}

// ---- the harness: the drive, the model, and what the kernel would hold ----

struct Harness {
    registry: Arc<Registry>,
    drive: Arc<Drive>,
    model: Model,
    /// Open writers: the drive's handle and the model's.
    handles: Vec<(u64, ModelHandle)>,
    /// References the kernel holds on inodes it was given (lookup, create, mkdir replies).
    lookups: HashMap<u64, u64>,
    owner: (u32, u32),
    /// Last, so it is removed after the registry is closed.
    _dir: tempfile::TempDir,
}

fn state_dir() -> tempfile::TempDir {
    // tmpfs when there is one: the registry syncs every job it records.
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("a temporary directory")
}

fn drive_with(settle: Duration) -> (tempfile::TempDir, Arc<Registry>, Arc<Drive>) {
    let dir = state_dir();
    let registry = Registry::open(dir.path()).expect("registry");
    let (uid, gid) = mhfs::fs::core::current_ids();
    let drive = Drive::new(
        registry.clone(),
        DriveConfig {
            defaults: Default::default(),
            settle,
            uid,
            gid,
        },
    );
    (dir, registry, drive)
}

fn names_of(entries: Vec<mhfs::fs::core::DirEntry>) -> Vec<String> {
    let mut names: Vec<String> = entries.into_iter().map(|e| e.name).collect();
    names.sort();
    names
}

impl Harness {
    fn new() -> Harness {
        let (dir, registry, drive) = drive_with(Duration::ZERO);
        Harness {
            _dir: dir,
            registry,
            drive,
            model: Model::default(),
            handles: Vec::new(),
            lookups: HashMap::new(),
            owner: mhfs::fs::core::current_ids(),
        }
    }

    fn tool_ino(&self, tool: &str) -> u64 {
        self.drive.lookup(INBOX, tool).expect("a tool folder").ino
    }

    /// A lookup, as the kernel makes it: a found inode is referenced once more.
    fn lookup(&mut self, parent: u64, name: &str) -> Result<mhfs::fs::core::Attr, Errno> {
        let attr = self.drive.lookup(parent, name).map_err(|e| e.errno)?;
        *self.lookups.entry(attr.ino).or_default() += 1;
        Ok(attr)
    }

    fn folder_ino(&mut self, folder: &str) -> Result<u64, Errno> {
        let hs = self.tool_ino(HEAD_SWAP);
        Ok(self.lookup(hs, folder)?.ino)
    }

    /// `open(O_CREAT|O_TRUNC)`: the kernel looks the name up, then opens it or creates it.
    fn create(&mut self, parent: u64, name: &str) -> Result<u64, Errno> {
        match self.lookup(parent, name) {
            Ok(attr) => Ok(self
                .drive
                .open(attr.ino, true, true)
                .map_err(|e| e.errno)?
                .fh),
            Err(libc::ENOENT) => {
                let (attr, opened) = self
                    .drive
                    .create(parent, name, 0o644, true, self.owner)
                    .map_err(|e| e.errno)?;
                *self.lookups.entry(attr.ino).or_default() += 1;
                Ok(opened.fh)
            }
            Err(e) => Err(e),
        }
    }

    fn forget_all(&mut self) {
        for (ino, n) in std::mem::take(&mut self.lookups) {
            self.drive.forget(ino, n);
        }
    }

    /// Applies one op to the drive and the model; their answers must agree.
    fn apply(&mut self, op: &Op) {
        let (drive, model): (Result<(), Errno>, Result<(), Errno>) = match *op {
            Op::Create(tool, name) => {
                let parent = self.tool_ino(tool);
                let d = self.create(parent, name);
                let m = self.model.create(Loc::top(tool, name));
                self.opened(d, m)
            }
            Op::CreateInFolder(folder, name) => {
                let d = self
                    .folder_ino(folder)
                    .and_then(|parent| self.create(parent, name));
                let m = self.model.create(Loc::part(folder, name));
                self.opened(d, m)
            }
            Op::Write(n, len) => {
                if self.handles.is_empty() {
                    return;
                }
                let (fh, h) = self.handles[n % self.handles.len()];
                let offset = self.model.sizes[h.file];
                let data = vec![b'x'; len as usize];
                let d = self.drive.write(fh, offset, &data).map(|n| {
                    assert_eq!(n as u64, len, "a short write");
                });
                self.model.write(h, len);
                let back = self.drive.read(fh, 0, 1 << 16).expect("read back").len();
                assert_eq!(
                    back as u64, self.model.sizes[h.file],
                    "read back through {fh}"
                );
                (d.map_err(|e| e.errno), Ok(()))
            }
            Op::Release(n) => {
                if self.handles.is_empty() {
                    return;
                }
                let (fh, h) = self.handles.remove(n % self.handles.len());
                self.drive.release(fh);
                self.model.release(h);
                (Ok(()), Ok(()))
            }
            Op::Rename(tool, from, to) => {
                let parent = self.tool_ino(tool);
                // The kernel looks both names up first; a missing source never reaches us.
                let d = self.lookup(parent, from).and_then(|_| {
                    let _ = self.lookup(parent, to);
                    self.drive
                        .rename(parent, from, parent, to, false)
                        .map_err(|e| e.errno)
                });
                let m = self.model.rename(tool, from, to);
                if m.is_ok() {
                    for (_, h) in &mut self.handles {
                        if h.loc == Loc::top(tool, from) {
                            h.loc = Loc::top(tool, to);
                        }
                    }
                }
                (d, m)
            }
            Op::RenameExisting(n, to) => {
                let files: Vec<Loc> = self
                    .model
                    .files
                    .keys()
                    .filter(|l| l.folder.is_none())
                    .copied()
                    .collect();
                if files.is_empty() {
                    return;
                }
                let from = files[n % files.len()];
                if from.name != to {
                    self.apply(&Op::Rename(from.tool, from.name, to));
                }
                return;
            }
            Op::AppendExisting(n) | Op::TruncateExisting(n) => {
                let files: Vec<Loc> = self.model.files.keys().copied().collect();
                if files.is_empty() {
                    return;
                }
                let loc = files[n % files.len()];
                let parent = match loc.folder {
                    None => self.tool_ino(loc.tool),
                    Some(f) => self.folder_ino(f).expect("the model's folder"),
                };
                let ino = self.lookup(parent, loc.name).expect("the model's file").ino;
                if let Op::AppendExisting(_) = op {
                    let d = self.drive.open(ino, true, false).map(|o| o.fh);
                    let m = self.model.append(loc);
                    self.opened(d.map_err(|e| e.errno), Ok(m))
                } else {
                    let d = self.drive.setattr(ino, None, Some(0), None, None, None);
                    self.model.truncate(loc);
                    (d.map(|_| ()).map_err(|e| e.errno), Ok(()))
                }
            }
            Op::Unlink(tool, name) => {
                let parent = self.tool_ino(tool);
                let d = self.drive.unlink(parent, name).map_err(|e| e.errno);
                (d, self.model.unlink(Loc::top(tool, name)))
            }
            Op::UnlinkInFolder(folder, name) => {
                let d = self
                    .folder_ino(folder)
                    .and_then(|parent| self.drive.unlink(parent, name).map_err(|e| e.errno));
                (d, self.model.unlink(Loc::part(folder, name)))
            }
            Op::Mkdir(folder) => {
                let parent = self.tool_ino(HEAD_SWAP);
                let d = self
                    .drive
                    .mkdir(parent, folder, 0o755, self.owner)
                    .map(|attr| *self.lookups.entry(attr.ino).or_default() += 1)
                    .map_err(|e| e.errno);
                (d, self.model.mkdir(folder))
            }
            Op::Rmdir(folder) => {
                let parent = self.tool_ino(HEAD_SWAP);
                let d = match self.drive.rmdir(parent, folder) {
                    Rmdir::Done(r) => r.map_err(|e| e.errno),
                    Rmdir::Pending(_) => panic!("rmdir of an inbox folder waits"),
                };
                (d, self.model.rmdir(folder))
            }
            Op::Tick => {
                self.drive.tick();
                self.model.tick();
                (Ok(()), Ok(()))
            }
            Op::ForgetAll => {
                self.forget_all();
                (Ok(()), Ok(()))
            }
        };
        assert_eq!(
            drive, model,
            "{op:?}: the drive answered {drive:?}, the model {model:?}"
        );
    }

    fn opened(
        &mut self,
        d: Result<u64, Errno>,
        m: Result<ModelHandle, Errno>,
    ) -> (Result<(), Errno>, Result<(), Errno>) {
        if let (Ok(fh), Ok(h)) = (&d, &m) {
            self.handles.push((*fh, *h));
        } else if let Ok(fh) = d {
            // Keep the drive's writer count right even though the test fails below.
            self.drive.release(fh);
        }
        (d.map(|_| ()), m.map(|_| ()))
    }

    /// Everything observable agrees with the model.
    fn check(&mut self, step: &str) {
        for tool in TOOLS {
            let ino = self.tool_ino(tool);
            let listed = names_of(self.drive.readdir(ino).expect("readdir"));
            assert_eq!(listed, self.model.listing(tool), "{step}: inbox/{tool}/");
            let files: Vec<(Loc, usize)> = self
                .model
                .files
                .iter()
                .filter(|(l, _)| l.tool == tool && l.folder.is_none())
                .map(|(l, f)| (*l, *f))
                .collect();
            for (loc, file) in files {
                let attr = self.lookup(ino, loc.name).expect("a listed file");
                assert_eq!(attr.kind, Kind::File, "{step}: {loc:?}");
                assert_eq!(attr.size, self.model.sizes[file], "{step}: size of {loc:?}");
            }
        }
        for folder in FOLDERS {
            match self.folder_ino(folder) {
                Ok(ino) => {
                    assert!(
                        self.model.folders.contains(folder),
                        "{step}: {folder}/ is there"
                    );
                    let listed = names_of(self.drive.readdir(ino).expect("readdir"));
                    assert_eq!(
                        listed,
                        self.model.folder_listing(folder),
                        "{step}: {folder}/"
                    );
                }
                Err(e) => {
                    assert_eq!(e, libc::ENOENT, "{step}: lookup {folder}");
                    assert!(
                        !self.model.folders.contains(folder),
                        "{step}: {folder}/ is gone"
                    );
                }
            }
        }
        self.check_jobs(step);
        // The drive holds an inode for a path that exists or one the kernel still references.
        let paths = self.model.files.len() + self.model.folders.len();
        let count = self.drive.inode_count();
        assert!(
            count <= paths + self.lookups.len(),
            "{step}: {count} inodes for {paths} paths and {} referenced",
            self.lookups.len()
        );
    }

    fn check_jobs(&self, step: &str) {
        let mut names: Vec<String> = self.registry.names().into_iter().map(|(_, n)| n).collect();
        let mut jobs = self.registry.jobs();
        jobs.sort_by_key(|j| j.id);
        let want = &self.model.jobs;
        let want_names: Vec<&str> = want.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            names.len(),
            want.len(),
            "{step}: jobs {names:?}, want {want_names:?}"
        );
        // Ids within one batch (one tick) come in no particular order: compare them sorted.
        let mut want_sorted: Vec<String> = want.iter().map(|j| j.name.clone()).collect();
        let mut jobs_sorted: Vec<usize> = (0..jobs.len()).collect();
        let mut i = 0;
        while i < want.len() {
            let end = (i..want.len())
                .find(|&k| want[k].batch != want[i].batch)
                .unwrap_or(want.len());
            names[i..end].sort();
            want_sorted[i..end].sort();
            jobs_sorted[i..end].sort_by_key(|&k| jobs[k].name.clone());
            i = end;
        }
        assert_eq!(names, want_sorted, "{step}: jobs/ in creation order");
        let mut model_sorted: Vec<&ModelJob> = want.iter().collect();
        let mut i = 0;
        while i < want.len() {
            let end = (i..want.len())
                .find(|&k| want[k].batch != want[i].batch)
                .unwrap_or(want.len());
            model_sorted[i..end].sort_by_key(|j| j.name.clone());
            i = end;
        }
        for (k, m) in jobs_sorted.into_iter().zip(model_sorted) {
            let job = &jobs[k];
            assert_eq!(job.name, m.name, "{step}");
            assert_eq!(job.tool, m.tool, "{step}: tool of jobs/{}", job.name);
            let source = match job.source {
                Source::File => Some(Src::File),
                Source::Text => Some(Src::Text),
                Source::Folder => Some(Src::Folder),
                _ => None,
            };
            assert_eq!(
                source,
                Some(m.source),
                "{step}: source of jobs/{}",
                job.name
            );
            let inputs: Vec<&str> = job.inputs.iter().map(|i| i.name.as_str()).collect();
            assert_eq!(inputs, m.inputs, "{step}: inputs of jobs/{}", job.name);
            for input in &job.inputs {
                assert!(
                    input.path.is_file(),
                    "{step}: {} is kept",
                    input.path.display()
                );
            }
        }
        let listed = names_of(self.drive.readdir(JOBS).expect("readdir jobs"));
        let mut registered: Vec<String> = want.iter().map(|j| j.name.clone()).collect();
        registered.sort();
        assert_eq!(listed, registered, "{step}: ls jobs/");
    }

    /// Closes everything, submits what is due, removes what is left and forgets every inode:
    /// the drive then holds none.
    fn wind_down(&mut self) {
        while !self.handles.is_empty() {
            self.apply(&Op::Release(0));
        }
        self.check("after closing every writer");
        self.apply(&Op::Tick);
        self.check("after the last tick");
        for folder in FOLDERS {
            for part in PARTS {
                let _ = self.model.unlink(Loc::part(folder, part));
                if let Ok(parent) = self.folder_ino(folder) {
                    let _ = self.drive.unlink(parent, part);
                }
            }
            self.apply(&Op::Rmdir(folder));
        }
        for tool in TOOLS {
            for name in NAMES {
                self.apply(&Op::Unlink(tool, name));
            }
        }
        self.check("after removing everything");
        self.forget_all();
        assert_eq!(
            self.drive.inode_count(),
            0,
            "inodes left after everything was forgotten"
        );
    }
}

fn run(ops: &[Op]) {
    let mut h = Harness::new();
    h.check("at the start");
    for (i, op) in ops.iter().enumerate() {
        h.apply(op);
        h.check(&format!("step {i} {op:?}"));
    }
    h.wind_down();
}

proptest! {
    #![proptest_config(Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(256),
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    })]

    #[test]
    fn the_drive_follows_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(&ops);
    }
}

// ---- the basics, by name ----

fn tool_ino(drive: &Drive, tool: &str) -> u64 {
    drive.lookup(INBOX, tool).unwrap().ino
}

/// Creates `name` under `parent`, writes `data` and closes it.
fn drop_file(drive: &Drive, parent: u64, name: &str, data: &[u8]) {
    let (_, opened) = drive
        .create(parent, name, 0o644, true, mhfs::fs::core::current_ids())
        .unwrap();
    drive.write(opened.fh, 0, data).unwrap();
    drive.release(opened.fh);
}

fn listing(drive: &Drive, ino: u64) -> Vec<String> {
    names_of(drive.readdir(ino).unwrap())
}

fn job_names(registry: &Registry) -> Vec<String> {
    registry.names().into_iter().map(|(_, n)| n).collect()
}

#[test]
fn a_complete_file_gives_one_job() {
    let (_dir, registry, drive) = drive_with(Duration::ZERO);
    let up = tool_ino(&drive, UPSCALER);
    drop_file(&drive, up, "a.png", b"png");
    assert_eq!(listing(&drive, up), Vec::<String>::new());
    assert_eq!(job_names(&registry), ["a"]);
    let job = &registry.jobs()[0];
    assert_eq!(job.tool, UPSCALER);
    assert!(matches!(job.source, Source::File));
    assert_eq!(job.inputs.len(), 1);
    assert_eq!(job.inputs[0].name, "a.png");
    assert_eq!(std::fs::read(&job.inputs[0].path).unwrap(), b"png");
    // The same name again is a second job, named uniquely.
    drop_file(&drive, up, "a.png", b"png");
    drop_file(&drive, up, "a.jpg", b"jpg");
    assert_eq!(job_names(&registry), ["a", "a-2", "a-3"]);
}

#[test]
fn a_hidden_temp_renamed_to_a_visible_name_submits() {
    let (_dir, registry, drive) = drive_with(Duration::ZERO);
    let up = tool_ino(&drive, UPSCALER);
    drop_file(&drive, up, ".a.png.tmp", b"png");
    assert_eq!(listing(&drive, up), [".a.png.tmp"]);
    assert!(job_names(&registry).is_empty());
    drive.rename(up, ".a.png.tmp", up, "a.png", false).unwrap();
    assert_eq!(listing(&drive, up), Vec::<String>::new());
    assert_eq!(job_names(&registry), ["a"]);
    assert_eq!(registry.jobs()[0].inputs[0].name, "a.png");

    // Renamed while still open: the last close submits it under the new name.
    let (_, opened) = drive
        .create(up, ".b.png.tmp", 0o644, true, mhfs::fs::core::current_ids())
        .unwrap();
    drive.write(opened.fh, 0, b"png").unwrap();
    drive.rename(up, ".b.png.tmp", up, "b.png", false).unwrap();
    assert_eq!(listing(&drive, up), ["b.png"]);
    drive.release(opened.fh);
    assert_eq!(job_names(&registry), ["a", "b"]);
}

#[test]
fn a_folder_submits_after_the_settle_time() {
    let settle = Duration::from_millis(200);
    let (_dir, registry, drive) = drive_with(settle);
    let hs = tool_ino(&drive, HEAD_SWAP);
    let owner = mhfs::fs::core::current_ids();
    let folder = drive.mkdir(hs, "f", 0o755, owner).unwrap().ino;
    drop_file(&drive, folder, "body.png", b"body");
    std::thread::sleep(settle);
    drive.tick();
    // A folder that misses an input waits, however long it is quiet.
    assert!(job_names(&registry).is_empty());
    drop_file(&drive, folder, "head.png", b"head");
    drive.tick();
    // Complete, but not quiet yet.
    assert!(job_names(&registry).is_empty());
    assert_eq!(listing(&drive, hs), ["f"]);
    std::thread::sleep(settle);
    drive.tick();
    assert_eq!(job_names(&registry), ["f"]);
    assert_eq!(listing(&drive, hs), Vec::<String>::new());
    let job = &registry.jobs()[0];
    assert!(matches!(job.source, Source::Folder));
    let inputs: Vec<&str> = job.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(inputs, ["f/body.png", "f/head.png"]);
}

#[test]
fn scratch_names_never_submit() {
    let (_dir, registry, drive) = drive_with(Duration::ZERO);
    let up = tool_ino(&drive, UPSCALER);
    let scratch = [
        ".a.png.tmp",
        "a.png~",
        "4913",
        ".a.png.swp",
        "a.png.part",
        "a.png.crdownload",
        "a.tmp",
    ];
    for name in scratch {
        drop_file(&drive, up, name, name.as_bytes());
    }
    // An empty visible file (`touch`) stays too.
    let (_, opened) = drive
        .create(up, "b.png", 0o644, true, mhfs::fs::core::current_ids())
        .unwrap();
    drive.release(opened.fh);
    drive.tick();
    assert!(job_names(&registry).is_empty());
    let mut want: Vec<String> = scratch.iter().map(|s| s.to_string()).collect();
    want.push("b.png".into());
    want.sort();
    assert_eq!(listing(&drive, up), want);
    // They stay ordinary files: read back, rewritten, removed.
    for name in scratch {
        let ino = drive.lookup(up, name).unwrap().ino;
        let fh = drive.open(ino, true, false).unwrap().fh;
        assert_eq!(drive.read(fh, 0, 100).unwrap(), name.as_bytes());
        drive.write(fh, 0, b"again").unwrap();
        drive.release(fh);
        drive.unlink(up, name).unwrap();
    }
    assert!(job_names(&registry).is_empty());
    assert_eq!(listing(&drive, up), ["b.png"]);
}

#[test]
fn each_refusal_gives_its_errno() {
    let (_dir, registry, drive) = drive_with(Duration::ZERO);
    let owner = mhfs::fs::core::current_ids();
    let errno = |r: mhfs::fs::core::FsResult<()>| r.map_err(|e| e.errno).err();
    let create = |parent, name: &str| {
        errno(
            drive
                .create(parent, name, 0o644, true, owner)
                .map(|(_, o)| drive.release(o.fh)),
        )
    };
    let (up, gen_, hs) = (
        tool_ino(&drive, UPSCALER),
        tool_ino(&drive, GENERATOR),
        tool_ino(&drive, HEAD_SWAP),
    );
    // A type the tool does not take: EINVAL at create, and at a rename onto such a name.
    assert_eq!(create(up, "x.exe"), Some(libc::EINVAL));
    assert_eq!(create(gen_, "a.png"), Some(libc::EINVAL));
    assert_eq!(create(hs, "p.txt"), Some(libc::EINVAL));
    assert_eq!(create(up, "a.png~"), None);
    assert_eq!(
        errno(drive.rename(up, "a.png~", up, "x.exe", false)),
        Some(libc::EINVAL)
    );
    // Writing where the drive takes nothing.
    assert_eq!(create(INBOX, "a.png"), Some(libc::EPERM));
    assert_eq!(create(ROOT, "a.png"), Some(libc::EPERM));
    assert_eq!(create(JOBS, "a.png"), Some(libc::EACCES));
    let mkdir = |parent, name: &str| errno(drive.mkdir(parent, name, 0o755, owner).map(|_| ()));
    assert_eq!(mkdir(INBOX, "no-such-tool"), Some(libc::EPERM));
    assert_eq!(mkdir(JOBS, "x"), Some(libc::EPERM));
    assert_eq!(mkdir(ROOT, "x"), Some(libc::EPERM));
    assert_eq!(mkdir(hs, "f"), None);
    assert_eq!(mkdir(hs, "f"), Some(libc::EEXIST));
    let folder = drive.lookup(hs, "f").unwrap().ino;
    assert_eq!(mkdir(folder, "deeper"), Some(libc::EPERM));
    // Misses.
    let lookup = |parent, name: &str| errno(drive.lookup(parent, name).map(|_| ()));
    assert_eq!(lookup(up, "missing.png"), Some(libc::ENOENT));
    assert_eq!(lookup(INBOX, "no-such-tool"), Some(libc::ENOENT));
    assert_eq!(lookup(JOBS, "nothing"), Some(libc::ENOENT));
    assert_eq!(errno(drive.unlink(up, "missing.png")), Some(libc::ENOENT));
    // rename(RENAME_NOREPLACE) onto an existing name.
    assert_eq!(create(up, "4913"), None);
    assert_eq!(
        errno(drive.rename(up, "4913", up, "a.png~", true)),
        Some(libc::EEXIST)
    );
    // A folder with a file in it is not removed.
    drop_file(&drive, folder, "body.png", b"body");
    let rmdir = |name: &str| match drive.rmdir(hs, name) {
        Rmdir::Done(r) => errno(r),
        Rmdir::Pending(_) => panic!("rmdir of an inbox folder waits"),
    };
    assert_eq!(rmdir("f"), Some(libc::ENOTEMPTY));
    assert_eq!(rmdir("g"), Some(libc::ENOENT));
    assert!(job_names(&registry).is_empty());
}

#[test]
fn forgotten_inodes_are_dropped() {
    let (_dir, registry, drive) = drive_with(Duration::ZERO);
    let up = tool_ino(&drive, UPSCALER);
    let owner = mhfs::fs::core::current_ids();
    assert_eq!(drive.inode_count(), 0);
    // A scratch file: created (one reference) and looked up (two).
    let (attr, opened) = drive.create(up, "4913", 0o644, true, owner).unwrap();
    drive.release(opened.fh);
    assert_eq!(drive.lookup(up, "4913").unwrap().ino, attr.ino);
    assert_eq!(drive.inode_count(), 1);
    drive.forget(attr.ino, 1);
    assert_eq!(drive.inode_count(), 1, "one reference is left");
    drive.forget(attr.ino, 1);
    assert_eq!(drive.inode_count(), 0);
    // The file is still there, under a new inode.
    assert_ne!(drive.lookup(up, "4913").unwrap().ino, attr.ino);
    drive.unlink(up, "4913").unwrap();
    assert_eq!(
        drive.inode_count(),
        0,
        "a removed file's inode goes with it"
    );

    // A submitted file's inode lives on (for `mv`'s late setattr) until it is forgotten.
    let (attr, opened) = drive.create(up, "a.png", 0o644, true, owner).unwrap();
    drive.write(opened.fh, 0, b"png").unwrap();
    drive.release(opened.fh);
    assert_eq!(job_names(&registry), ["a"]);
    assert_eq!(drive.inode_count(), 1);
    assert!(
        drive
            .setattr(attr.ino, None, None, None, None, None)
            .is_ok()
    );
    drive.forget(attr.ino, 1);
    assert_eq!(drive.inode_count(), 0);

    // Listing alone gives inodes no reference; removing the files drops them.
    drop_file(&drive, up, "a.png~", b"x");
    drop_file(&drive, up, ".a.png.tmp", b"x");
    let created: Vec<u64> = listing(&drive, up)
        .iter()
        .map(|n| drive.lookup(up, n).unwrap().ino)
        .collect();
    for ino in created {
        drive.forget(ino, 2);
    }
    assert_eq!(drive.inode_count(), 0);
    listing(&drive, up);
    assert_eq!(drive.inode_count(), 2);
    drive.unlink(up, "a.png~").unwrap();
    drive.unlink(up, ".a.png.tmp").unwrap();
    assert_eq!(drive.inode_count(), 0);
}

// ---- writers are counted per file, not per name (regressions the model found) ----
//
// A writer of a file that was removed or replaced while open no longer counts at its old name.
// SEMANTICS.md: "At its last close after data was written (release with no other writer open),
// a visible, non-empty file ... is submitted", and a folder once "no file in it is open".

#[test]
fn a_new_file_at_the_name_of_a_removed_open_file_submits_at_its_own_last_close() {
    let (_dir, registry, drive) = drive_with(Duration::ZERO);
    let up = tool_ino(&drive, UPSCALER);
    let owner = mhfs::fs::core::current_ids();
    // A program keeps a.png open; the user removes it and drops a new a.png.
    let (_, old) = drive.create(up, "a.png", 0o644, true, owner).unwrap();
    drive.unlink(up, "a.png").unwrap();
    drop_file(&drive, up, "a.png", b"png");
    assert_eq!(
        job_names(&registry),
        ["a"],
        "the new a.png was closed by its only writer"
    );
    drive.release(old.fh);
}

#[test]
fn a_temp_renamed_over_an_open_file_submits() {
    let (_dir, registry, drive) = drive_with(Duration::ZERO);
    let up = tool_ino(&drive, UPSCALER);
    let owner = mhfs::fs::core::current_ids();
    let (_, old) = drive.create(up, "a.png", 0o644, true, owner).unwrap();
    drop_file(&drive, up, ".a.png.tmp", b"png");
    drive.rename(up, ".a.png.tmp", up, "a.png", false).unwrap();
    let at_rename = job_names(&registry);
    // Worse than late: nothing was written through the replaced file's writer, so its last
    // close submits nothing either, and the new a.png stays in the inbox.
    drive.release(old.fh);
    assert_eq!(
        job_names(&registry),
        ["a"],
        "submitted at last, after the old writer closed"
    );
    assert_eq!(
        at_rename,
        ["a"],
        "the renamed file is complete and not open"
    );
}

#[test]
fn a_folder_submits_while_a_removed_file_of_it_is_still_open() {
    let (_dir, registry, drive) = drive_with(Duration::ZERO);
    let hs = tool_ino(&drive, HEAD_SWAP);
    let owner = mhfs::fs::core::current_ids();
    let folder = drive.mkdir(hs, "f", 0o755, owner).unwrap().ino;
    let (_, old) = drive
        .create(folder, "head.png", 0o644, true, owner)
        .unwrap();
    drive.unlink(folder, "head.png").unwrap();
    drop_file(&drive, folder, "head.png", b"head");
    drop_file(&drive, folder, "body.png", b"body");
    drive.tick();
    assert_eq!(job_names(&registry), ["f"], "no file in f/ is open");
    drive.release(old.fh);
}
