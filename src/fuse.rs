//! The FUSE adapter: kernel requests → the `fs` core's tree, opens and reads.
//!
//! Callbacks run on fuser's request threads and only look things up; opens and reads
//! go to a pool of worker threads that reply when done, so a cold decode of one file
//! never holds up a warm read of another. The callbacks that do more than a table
//! lookup, and every worker job, run under `catch_unwind`: a panic is logged and its
//! request answered with EIO (fuser sends EIO for a reply dropped unsent), and the
//! daemon keeps serving.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, KernelConfig, LockOwner, Notifier, OpenAccMode, OpenFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, WriteFlags,
};
use parking_lot::Mutex;

use crate::fs::{
    Changes, FileSystem, FsError, Ino, Node, NodeKind, OpenFile, Tree, Workers, guarded,
};

/// The kernel may keep attributes and entries long: a refresh that changes them tells
/// it (`invalidate`), and a changed recording is a new inode.
const TTL: Duration = Duration::from_secs(24 * 3600);
/// `st_blksize`: the I/O size `cp` and stdio use; large reads decode most efficiently.
const BLKSIZE: u32 = 1 << 20;

thread_local! {
    /// Each worker's reply buffer, kept from read to read: a new one per request (128 KiB,
    /// the daemon's mmap threshold) was mapped and faulted in page by page every time,
    /// about a fifth of the daemon's time when serving cached spans.
    static REPLY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Settings of the FUSE side of a mount.
#[derive(Debug, Clone)]
pub struct FuseOptions {
    /// Worker threads serving opens and reads.
    pub threads: usize,
    /// Owner of every node.
    pub uid: u32,
    pub gid: u32,
}

pub struct WavFs {
    shared: Arc<Shared>,
    workers: Workers,
}

struct Shared {
    fs: Arc<FileSystem>,
    opts: FuseOptions,
    handles: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_fh: AtomicU64,
}

/// The one translation of the core's errors into errnos.
fn errno(e: &FsError) -> Errno {
    match e {
        FsError::NotFound => Errno::ENOENT,
        FsError::IsDir => Errno::EISDIR,
        FsError::NotDir => Errno::ENOTDIR,
        FsError::Unservable { .. }
        | FsError::Changed { .. }
        | FsError::Layout { .. }
        | FsError::Codec { .. }
        | FsError::Internal => Errno::EIO,
    }
}

/// Tells the kernel to forget what it keeps of what a refresh changed: the entries of
/// names that now mean another inode or none, and the attributes of changed folders.
/// Names added need nothing: the kernel does not keep the misses of lookups we answer.
pub fn invalidate(notifier: &Notifier, changes: &Changes) {
    for (parent, name) in &changes.gone {
        // ENOENT: the kernel did not have it.
        if let Err(e) = notifier.inval_entry(INodeNo(*parent), OsStr::new(name)) {
            log::debug!("invalidating the entry {name:?} of inode {parent}: {e}");
        }
    }
    for &dir in &changes.dirs {
        if let Err(e) = notifier.inval_inode(INodeNo(dir), 0, 0) {
            log::debug!("invalidating inode {dir}: {e}");
        }
    }
}

impl WavFs {
    /// The FUSE file system over `fs`; starts the worker threads.
    pub fn new(fs: Arc<FileSystem>, opts: FuseOptions) -> std::io::Result<Self> {
        log::info!("{} FUSE worker threads", opts.threads);
        let workers = Workers::new(opts.threads)?;
        Ok(WavFs {
            shared: Arc::new(Shared {
                fs,
                opts,
                handles: Mutex::new(HashMap::new()),
                next_fh: AtomicU64::new(1),
            }),
            workers,
        })
    }

    /// Runs `f` on a worker thread.
    fn spawn(&self, what: &'static str, f: impl FnOnce(&Shared) + Send + 'static) {
        let shared = self.shared.clone();
        self.workers.spawn(what, move || f(&shared));
    }
}

impl Shared {
    fn tree(&self) -> Arc<Tree> {
        self.fs.tree()
    }

    fn attr(&self, ino: Ino, node: &Node) -> FileAttr {
        let (kind, perm, size, nlink) = match &node.kind {
            NodeKind::Dir { subdirs, .. } => (FileType::Directory, 0o555, 0, 2 + subdirs),
            NodeKind::File { file, .. } => {
                let size = file.as_ref().map_or(0, |f| f.layout.file_len());
                (FileType::RegularFile, 0o444, size, 1)
            }
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: node.mtime,
            kind,
            perm,
            nlink,
            uid: self.opts.uid,
            gid: self.opts.gid,
            rdev: 0,
            blksize: BLKSIZE,
            flags: 0,
        }
    }

    fn read(&self, handle: &OpenFile, offset: u64, size: u32, reply: ReplyData) {
        REPLY.with_borrow_mut(|out| {
            out.clear();
            match self.fs.read(handle, offset, u64::from(size), out) {
                Ok(()) => reply.data(out),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }
}

impl Filesystem for WavFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // The kernel offers its largest readahead; take all of it. More requests in
        // flight let readahead of several files proceed at once.
        if let Err(max) = config.set_max_readahead(u32::MAX) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.set_max_background(64);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        guarded("lookup", || {
            let s = &self.shared;
            let tree = s.tree();
            let found = name
                .to_str()
                .and_then(|n| tree.lookup(parent.0, n))
                .and_then(|ino| Some((ino, tree.get(ino)?)));
            match found {
                Some((ino, node)) => reply.entry(&TTL, &s.attr(ino, node), Generation(0)),
                None => reply.error(Errno::ENOENT),
            }
        })
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        guarded("getattr", || match self.shared.tree().get(ino.0) {
            Some(node) => reply.attr(&TTL, &self.shared.attr(ino.0, node)),
            None => reply.error(Errno::ENOENT),
        })
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        guarded("readdir", || {
            let tree = self.shared.tree();
            let Some(node) = tree.get(ino.0) else {
                return reply.error(Errno::ENOENT);
            };
            let NodeKind::Dir { children, .. } = &node.kind else {
                return reply.error(Errno::ENOTDIR);
            };
            // Entry k (0-based) of [".", "..", children...] carries offset k + 1, the
            // offset to continue from after it.
            let dots = [(ino.0, "."), (node.parent, "..")];
            let entries = dots
                .into_iter()
                .map(|(i, n)| (i, FileType::Directory, n))
                .chain(children.iter().filter_map(|&c| {
                    let child = tree.get(c)?;
                    let kind = match child.kind {
                        NodeKind::Dir { .. } => FileType::Directory,
                        NodeKind::File { .. } => FileType::RegularFile,
                    };
                    Some((c, kind, child.name.as_str()))
                }));
            for (k, (i, kind, name)) in entries.enumerate().skip(offset as usize) {
                if reply.add(INodeNo(i), k as u64 + 1, kind, name) {
                    break;
                }
            }
            reply.ok();
        })
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let ino = ino.0;
        match self.shared.tree().get(ino).map(|n| &n.kind) {
            Some(NodeKind::File { .. }) => {}
            Some(NodeKind::Dir { .. }) => return reply.error(Errno::EISDIR),
            None => return reply.error(Errno::ENOENT),
        }
        // Opening reads the recording's index and checkpoints: not on the request thread.
        self.spawn("open", move |s| match s.fs.open(ino) {
            Ok(file) => {
                let fh = s.next_fh.fetch_add(1, Ordering::Relaxed);
                s.handles.lock().insert(fh, Arc::new(file));
                // An inode's content never changes (a replaced recording is a new
                // inode): keep the page cache.
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
            }
            Err(e) => reply.error(errno(&e)),
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(handle) = self.shared.handles.lock().get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        self.spawn("read", move |s| s.read(&handle, offset, size, reply));
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.shared.handles.lock().remove(&fh.0);
        reply.ok();
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let t = self.shared.tree();
        let blocks = t.total_bytes().div_ceil(4096);
        reply.statfs(
            blocks,
            0,
            0,
            t.listed_count() as u64 + 1,
            0,
            4096,
            255,
            4096,
        );
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if self.shared.tree().get(ino.0).is_none() {
            reply.error(Errno::ENOENT)
        } else if mask.contains(AccessFlags::W_OK) {
            reply.error(Errno::EROFS)
        } else {
            reply.ok()
        }
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENODATA);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(0)
        } else {
            reply.data(&[])
        }
    }

    // Everything that would change the tree or a file: read-only file system.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }
}
