//! A power-loss simulator for the daemon's storage.
//!
//! [`Recorder`] is a [`StorageHook`]: installed in a daemon, it journals every write, length
//! change and fsync of the database file, every create, append, fsync, rename, directory
//! creation, directory fsync and removal of the instance files, and every `syncfs`, in the order they happen,
//! together with the acknowledgements the test's clients received. The live daemon runs on
//! real files as usual; the journal alone then tells what the disk would hold had the power
//! gone at any point of the run.
//!
//! [`crash_images`] replays the journal through a model of a disk with a volatile cache:
//!
//! * the database file: writes reach the platter only through an fsync; at a power loss the
//!   writes since the last fsync are lost ([`Variant::Lost`]), all but the last reached
//!   it and the last is torn in half ([`Variant::Torn`]), or only every other one reached
//!   it ([`Variant::Scattered`]);
//! * files: an append is durable once the file is fsync'ed; a name (created, renamed,
//!   removed) is durable once its directory is fsync'ed;
//! * a flush of the file system (`syncfs`) makes every pending write durable: the database
//!   file's, every file's data and every name. [`Variant::Lost`] keeps only what
//!   was made durable; [`Variant::Torn`] keeps every name as the process last saw it, with
//!   each file's unsynced tail half there (the rename-before-data hazard of some file
//!   systems), or every other unsynced write there ([`Variant::Scattered`]: a cache
//!   written back out of order).
//!
//! A new database is made under a side name and renamed into place (`DbCreated`); before
//! that, the image has no database file at all.
//!
//! A power loss is simulated just before each fsync of the run (and at its end): every
//! write issued before it may be lost, none after it happened. An acknowledgement journaled
//! before that point must survive.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use zenedge::storage_hook::{StorageHook, StorageOp, Verdict};

/// What a client had acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Item {
    /// An HL7 message answered AA, by MSH-10.
    Hl7(String),
    /// A C-STORE answered Success, by SOP Instance UID.
    Instance(String),
}

#[derive(Debug, Clone)]
enum Rec {
    DbWrite {
        offset: u64,
        data: Vec<u8>,
    },
    DbSetLen(u64),
    DbSync,
    DbCreated,
    Create(PathBuf),
    Append(PathBuf, Vec<u8>),
    FileSync(PathBuf),
    Rename(PathBuf, PathBuf),
    CreateDir(PathBuf),
    DirSync(PathBuf),
    Remove(PathBuf),
    /// `syncfs`: every pending write of the file system made durable.
    FsSync,
    Ack(Item),
}

impl Rec {
    fn is_sync(&self) -> bool {
        matches!(self, Rec::DbSync | Rec::FileSync(_) | Rec::DirSync(_) | Rec::FsSync)
    }
}

/// Syncs the recorded daemon leaves out (tests of the simulation itself).
#[derive(Debug, Default, Clone, Copy)]
pub struct Omit {
    pub db_sync: bool,
    pub file_sync: bool,
    pub dir_sync: bool,
    /// The flush of the whole file system (`syncfs`) of shared flushes.
    pub fs_sync: bool,
}

/// The durable state a recording starts from: a database file and a tree of files, all on
/// the platter (a fresh state directory is [`Image::default`]).
#[derive(Debug, Clone, Default)]
pub struct Image {
    /// The database file; `None` before the daemon created it.
    pub db: Option<Vec<u8>>,
    /// Directories relative to the state directory (parents before children).
    pub dirs: BTreeSet<PathBuf>,
    /// Files relative to the state directory.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
}

/// The journal of one run; see the module documentation.
#[derive(Debug)]
pub struct Recorder {
    state_dir: PathBuf,
    base: Image,
    omit: Omit,
    journal: Mutex<Vec<Rec>>,
}

impl Recorder {
    pub fn new(state_dir: &Path, base: Image, omit: Omit) -> Recorder {
        Recorder { state_dir: state_dir.to_owned(), base, omit, journal: Mutex::default() }
    }

    /// Journals an acknowledgement the client just received.
    pub fn ack(&self, item: Item) {
        self.push(Rec::Ack(item));
    }

    /// Makes what a process killed a moment ago would leave under the state directory: the
    /// missing directories of `rel` (and, with `data`, the file `rel` itself, its data
    /// fsync'ed), all with names not yet durable. Journaled like the daemon's own writes.
    pub fn leftover(&self, rel: &Path, data: Option<&[u8]>) {
        let dir = if data.is_some() { rel.parent().unwrap() } else { rel };
        let mut missing: Vec<&Path> = dir.ancestors().filter(|a| !self.state_dir.join(a).exists()).collect();
        missing.reverse();
        for d in missing {
            std::fs::create_dir(self.state_dir.join(d)).unwrap();
            self.push(Rec::CreateDir(d.to_owned()));
        }
        if let Some(data) = data {
            std::fs::write(self.state_dir.join(rel), data).unwrap();
            self.push(Rec::Create(rel.to_owned()));
            self.push(Rec::Append(rel.to_owned(), data.to_vec()));
            self.push(Rec::FileSync(rel.to_owned()));
        }
    }

    pub fn syncs(&self) -> usize {
        self.lock().iter().filter(|r| r.is_sync()).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rec>> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, rec: Rec) {
        self.lock().push(rec);
    }

    fn rel(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.state_dir)
            .unwrap_or_else(|_| panic!("{} is outside the state directory", path.display()))
            .to_owned()
    }
}

impl StorageHook for Recorder {
    fn before(&self, op: StorageOp<'_>) -> io::Result<Verdict> {
        let (rec, omitted) = match op {
            StorageOp::DbWrite { offset, data } => (Rec::DbWrite { offset, data: data.to_vec() }, false),
            StorageOp::DbSetLen { len } => (Rec::DbSetLen(len), false),
            StorageOp::DbSync => (Rec::DbSync, self.omit.db_sync),
            StorageOp::DbCreated => (Rec::DbCreated, false),
            StorageOp::FileCreate { path } => (Rec::Create(self.rel(path)), false),
            StorageOp::FileAppend { path, data } => (Rec::Append(self.rel(path), data.to_vec()), false),
            StorageOp::FileSync { path } => (Rec::FileSync(self.rel(path)), self.omit.file_sync),
            StorageOp::Rename { from, to } => (Rec::Rename(self.rel(from), self.rel(to)), false),
            StorageOp::CreateDir { path } => (Rec::CreateDir(self.rel(path)), false),
            StorageOp::DirSync { path } => (Rec::DirSync(self.rel(path)), self.omit.dir_sync),
            StorageOp::Remove { path } => (Rec::Remove(self.rel(path)), false),
            StorageOp::FsSync { .. } => (Rec::FsSync, self.omit.fs_sync),
        };
        if omitted {
            return Ok(Verdict::Skip);
        }
        self.push(rec);
        Ok(Verdict::Proceed)
    }
}

/// What survives a power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Only what was fsync'ed.
    Lost,
    /// Everything written, the last database write torn in half and each file's unsynced
    /// tail half there.
    Torn,
    /// The disk wrote back its cache out of order: every other unsynced database write is
    /// there (the first, third, ...), the rest lost; names as the process last saw them,
    /// files as synced.
    Scattered,
}

const VARIANTS: [Variant; 3] = [Variant::Lost, Variant::Torn, Variant::Scattered];

/// A simulated power loss: the disk as it would be found afterwards, and what the clients
/// had been told was stored by then.
#[derive(Debug)]
pub struct CrashImage {
    /// The journal position the power went at (the sync about to happen there did not).
    pub at: usize,
    pub variant: Variant,
    pub image: Image,
    pub acked: BTreeSet<Item>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(usize),
    Dir,
}

#[derive(Debug, Clone, Default)]
struct Dir {
    durable: BTreeMap<OsString, Node>,
    volatile: BTreeMap<OsString, Node>,
}

#[derive(Debug, Clone, Default)]
struct Inode {
    durable: Vec<u8>,
    volatile: Vec<u8>,
}

/// The disk model, advanced one journal record at a time.
#[derive(Debug)]
struct Disk {
    db: Vec<u8>,
    /// The database file exists under its name.
    db_present: bool,
    db_pending: Vec<Rec>,
    inodes: Vec<Inode>,
    dirs: HashMap<PathBuf, Dir>,
    acked: BTreeSet<Item>,
}

fn split(path: &Path) -> (PathBuf, OsString) {
    let parent = path.parent().unwrap_or(Path::new("")).to_owned();
    (parent, path.file_name().expect("a named path").to_owned())
}

fn apply_db(db: &mut Vec<u8>, rec: &Rec, torn: bool) {
    match rec {
        Rec::DbWrite { offset, data } => {
            let data = if torn { &data[..data.len() / 2] } else { &data[..] };
            let end = *offset as usize + data.len();
            if db.len() < end {
                db.resize(end, 0);
            }
            db[*offset as usize..end].copy_from_slice(data);
        }
        Rec::DbSetLen(len) => db.resize(*len as usize, 0),
        _ => unreachable!("not a database record"),
    }
}

impl Disk {
    fn new(base: &Image) -> Disk {
        let mut disk = Disk {
            db: base.db.clone().unwrap_or_default(),
            db_present: base.db.is_some(),
            db_pending: Vec::new(),
            inodes: Vec::new(),
            dirs: HashMap::new(),
            acked: BTreeSet::new(),
        };
        disk.dirs.insert(PathBuf::new(), Dir::default());
        for dir in &base.dirs {
            disk.link(dir, Node::Dir, true);
            disk.dirs.entry(dir.clone()).or_default();
        }
        for (path, data) in &base.files {
            disk.inodes.push(Inode { durable: data.clone(), volatile: data.clone() });
            disk.link(path, Node::File(disk.inodes.len() - 1), true);
        }
        disk
    }

    fn link(&mut self, path: &Path, node: Node, durable: bool) {
        let (parent, name) = split(path);
        let dir = self.dirs.get_mut(&parent).unwrap_or_else(|| panic!("no directory {}", parent.display()));
        dir.volatile.insert(name.clone(), node);
        if durable {
            dir.durable.insert(name, node);
        }
    }

    fn unlink(&mut self, path: &Path) -> Node {
        let (parent, name) = split(path);
        let dir = self.dirs.get_mut(&parent).unwrap_or_else(|| panic!("no directory {}", parent.display()));
        dir.volatile.remove(&name).unwrap_or_else(|| panic!("no entry {}", path.display()))
    }

    fn inode(&mut self, path: &Path) -> &mut Inode {
        let (parent, name) = split(path);
        match self.dirs[&parent].volatile.get(&name) {
            Some(Node::File(i)) => &mut self.inodes[*i],
            other => panic!("{} is not a file: {other:?}", path.display()),
        }
    }

    fn apply(&mut self, rec: &Rec) {
        match rec {
            Rec::DbWrite { .. } | Rec::DbSetLen(_) => self.db_pending.push(rec.clone()),
            Rec::DbSync | Rec::DbCreated => {
                for rec in std::mem::take(&mut self.db_pending) {
                    apply_db(&mut self.db, &rec, false);
                }
                self.db_present |= matches!(rec, Rec::DbCreated);
            }
            Rec::Create(path) => {
                self.inodes.push(Inode::default());
                self.link(path, Node::File(self.inodes.len() - 1), false);
            }
            Rec::Append(path, data) => self.inode(path).volatile.extend_from_slice(data),
            Rec::FileSync(path) => {
                let inode = self.inode(path);
                inode.durable = inode.volatile.clone();
            }
            Rec::Rename(from, to) => {
                let node = self.unlink(from);
                self.link(to, node, false);
            }
            Rec::CreateDir(path) => {
                let (parent, name) = split(path);
                if !self.dirs[&parent].volatile.contains_key(&name) {
                    self.link(path, Node::Dir, false);
                }
                self.dirs.entry(path.clone()).or_default();
            }
            Rec::DirSync(path) => {
                let dir = self.dirs.get_mut(path).unwrap_or_else(|| panic!("no directory {}", path.display()));
                dir.durable = dir.volatile.clone();
            }
            Rec::Remove(path) => {
                self.unlink(path);
            }
            Rec::FsSync => {
                for rec in std::mem::take(&mut self.db_pending) {
                    apply_db(&mut self.db, &rec, false);
                }
                for inode in &mut self.inodes {
                    inode.durable = inode.volatile.clone();
                }
                for dir in self.dirs.values_mut() {
                    dir.durable = dir.volatile.clone();
                }
            }
            Rec::Ack(item) => {
                self.acked.insert(item.clone());
            }
        }
    }

    fn image(&self, variant: Variant) -> Image {
        let mut db = self.db.clone();
        match variant {
            Variant::Lost => {}
            Variant::Torn => {
                let last_write = self.db_pending.iter().rposition(|r| matches!(r, Rec::DbWrite { .. }));
                for (i, rec) in self.db_pending.iter().enumerate() {
                    apply_db(&mut db, rec, Some(i) == last_write);
                }
            }
            Variant::Scattered => {
                for rec in self.db_pending.iter().step_by(2) {
                    apply_db(&mut db, rec, false);
                }
            }
        }
        let mut image = Image { db: self.db_present.then_some(db), ..Image::default() };
        self.walk(Path::new(""), variant, &mut image);
        image
    }

    fn walk(&self, dir: &Path, variant: Variant, image: &mut Image) {
        let entries = match variant {
            Variant::Lost => &self.dirs[dir].durable,
            Variant::Torn | Variant::Scattered => &self.dirs[dir].volatile,
        };
        for (name, node) in entries {
            let path = dir.join(name);
            match node {
                Node::Dir => {
                    image.dirs.insert(path.clone());
                    self.walk(&path, variant, image);
                }
                Node::File(i) => {
                    let inode = &self.inodes[*i];
                    let data = match variant {
                        Variant::Lost | Variant::Scattered => inode.durable.clone(),
                        Variant::Torn => {
                            let synced = inode.durable.len().min(inode.volatile.len());
                            inode.volatile[..synced + (inode.volatile.len() - synced) / 2].to_vec()
                        }
                    };
                    image.files.insert(path, data);
                }
            }
        }
    }
}

/// Every power loss of the run, in every variant: just before each fsync, and at the end.
/// `every` thins them out (1 = all).
pub fn crash_images(recorder: &Recorder, every: usize) -> Vec<CrashImage> {
    let journal = recorder.lock().clone();
    let mut disk = Disk::new(&recorder.base);
    let mut out = Vec::new();
    let mut syncs = 0;
    for (at, rec) in journal.iter().enumerate() {
        if rec.is_sync() {
            if syncs % every == 0 {
                for variant in VARIANTS {
                    out.push(CrashImage { at, variant, image: disk.image(variant), acked: disk.acked.clone() });
                }
            }
            syncs += 1;
        }
        disk.apply(rec);
    }
    for variant in VARIANTS {
        out.push(CrashImage { at: journal.len(), variant, image: disk.image(variant), acked: disk.acked.clone() });
    }
    out
}

impl Image {
    /// Writes the image as a state directory: `db_name` holds the database file.
    pub fn materialize(&self, state_dir: &Path, db_name: &str) {
        std::fs::create_dir_all(state_dir).unwrap();
        if let Some(db) = &self.db {
            std::fs::write(state_dir.join(db_name), db).unwrap();
        }
        for dir in &self.dirs {
            std::fs::create_dir_all(state_dir.join(dir)).unwrap();
        }
        for (path, data) in &self.files {
            std::fs::write(state_dir.join(path), data).unwrap();
        }
    }
}
