//! `zarr-wavfs mount`: mount options, detaching, signals and the FUSE session's life.
//!
//! Order matters: the arguments (paths, options) are checked before the fork; the
//! archive is read after it, because the Zarr library may start threads and a forked
//! process keeps only the forking thread. Right after the fork, signals are blocked so
//! every later thread inherits the mask and one thread can `sigwait`. The parent
//! returns only when the child reports the mount ready through a pipe, or prints the
//! error the child sent and exits non-zero.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::{Config, MountOption, Session, SessionACL};
use thiserror::Error;

use std::time::Duration;

use crate::archive::{Archive, ArchiveError};
use crate::fs::Tree;
use crate::fs::{FileSystem, FsOptions};
use crate::fuse::{FuseOptions, WavFs};
use crate::store::{Address, StoreOptions};
use crate::wav::SampleFormat;
use crate::wav_file::{DEFAULT_TIME_EXPANSION_ABOVE, TimeExpansion};

#[derive(Debug, Error)]
pub enum MountError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MountError {
    let what = what.into();
    move |source| MountError::Io { what, source }
}

/// What `mount` was asked to do.
#[derive(Debug, Clone)]
pub struct MountArgs {
    pub archive: Address,
    /// Store settings from the command line; `-o` options may add to them.
    pub store: StoreOptions,
    pub mountpoint: PathBuf,
    pub foreground: bool,
    /// `-o` arguments, each a comma-separated list.
    pub options: Vec<String>,
    pub cache_bytes: usize,
    pub threads: usize,
    /// Served sample format; None: each recording's own.
    pub format: Option<SampleFormat>,
    pub time_expansion: Option<TimeExpansion>,
    /// See `FsOptions::refresh`.
    pub refresh: Duration,
}

/// Options after parsing: the FUSE configuration plus our own settings.
#[derive(Debug)]
pub struct Options {
    pub config: Config,
    pub store: StoreOptions,
    pub cache_bytes: usize,
    pub threads: usize,
    /// Served sample format; None: each recording's own.
    pub format: Option<SampleFormat>,
    pub time_expansion: Option<TimeExpansion>,
    pub refresh: Duration,
}

/// `value` for an option that fuser hands to fusermount3, which splits its option list
/// at commas not escaped by `\\`: so an archive named `a,rw` stays one `fsname`. fuser
/// calls fusermount3 for `auto_unmount` and when it may not mount(2) itself (not
/// root); otherwise the value goes to mount(2) as it is.
fn fusermount_value(value: &str, auto_unmount: bool) -> String {
    if !auto_unmount && is_root() {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == ',' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Parses `-o` options over the defaults in `args`: `ro` (always), `auto_unmount`
/// (unless `noauto_unmount`), `default_permissions`, `nodev`, `nosuid`,
/// `fsname=ARCHIVE`, `subtype=zarr-wavfs`. Our own settings may also be given as
/// `cache_size=`, `format=`, `threads=`, `time_expansion=N`, `time_expansion_above=HZ`,
/// `refresh=SECS`, `log=` (for /etc/fstab), and the store's
/// `endpoint=`, `region=`, `profile=`, `no_sign_request`, `virtual_hosted`,
/// `timeout=SECS`; options that only mean something to mount(8) are ignored.
pub fn parse_options(args: &MountArgs, archive: &Address) -> Result<Options, MountError> {
    let mut o = Options {
        config: Config::default(),
        store: args.store.clone(),
        cache_bytes: args.cache_bytes,
        threads: args.threads,
        format: args.format,
        time_expansion: args.time_expansion,
        refresh: args.refresh,
    };
    let mut fsname = archive.to_string();
    let mut subtype = "zarr-wavfs".to_string();
    let mut auto_unmount = true;
    let mut acl = None;
    let mut extra = Vec::new();
    let (mut te_factor, mut te_above) = (None, None);
    let usage = |m: String| Err(MountError::Usage(m));
    for opt in args.options.iter().flat_map(|s| s.split(',')) {
        if o.store.remote.apply_mount_option(opt) {
            continue;
        }
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        match (key, value) {
            ("" | "ro" | "default_permissions" | "defaults", None) => {}
            ("rw", None) => log::warn!("ignoring -o rw: zarr-wavfs mounts are read-only"),
            ("auto" | "noauto" | "user" | "users" | "nouser" | "_netdev" | "nofail", None) => {}
            (k, _) if k.starts_with("x-") || k == "comment" => {}
            ("allow_other", None) => acl = Some(SessionACL::All),
            ("allow_root", None) => acl = Some(SessionACL::RootAndOwner),
            ("auto_unmount", None) => auto_unmount = true,
            ("noauto_unmount", None) => auto_unmount = false,
            ("fsname", Some(v)) => fsname = v.to_string(),
            ("subtype", Some(v)) => subtype = v.to_string(),
            ("cache_size", Some(v)) => {
                o.cache_bytes = parse_size(v)
                    .map_err(|e| MountError::Usage(format!("-o cache_size={v}: {e}")))?
            }
            ("timeout", Some(v)) => match v.parse::<f64>() {
                Ok(t) if t > 0.0 && t.is_finite() => o.store.timeout = Duration::from_secs_f64(t),
                _ => return usage(format!("-o timeout={v}: expected seconds")),
            },
            ("refresh", Some(v)) => {
                o.refresh = crate::fs::refresh_interval(v)
                    .map_err(|e| MountError::Usage(format!("-o refresh={e}")))?
            }
            ("threads", Some(v)) => match v.parse() {
                Ok(n) if n > 0 => o.threads = n,
                _ => return usage(format!("-o threads={v}: expected a positive number")),
            },
            ("format", Some(v)) => {
                o.format =
                    Some(SampleFormat::parse(v).ok_or_else(|| {
                        MountError::Usage(format!("-o format={v}: unknown format"))
                    })?)
            }
            ("time_expansion", Some(v)) => match v.parse::<u32>() {
                Ok(n) if n >= 2 => te_factor = Some(n),
                _ => {
                    return usage(format!(
                        "-o time_expansion={v}: expected a factor of 2 or more"
                    ));
                }
            },
            ("time_expansion_above", Some(v)) => match v.parse::<u32>() {
                Ok(hz) => te_above = Some(hz),
                _ => {
                    return usage(format!(
                        "-o time_expansion_above={v}: expected a rate in Hz"
                    ));
                }
            },
            // Where the daemon logs is set up by the CLI before mounting.
            ("log", Some(_)) => {}
            // Always nodev,nosuid: the files are audio. mount(8) passes dev,suid by
            // default, so they are accepted and ignored.
            ("dev" | "suid" | "nodev" | "nosuid", None) => {}
            (flag, None) => {
                let (o, opposite) = match flag {
                    "exec" => (MountOption::Exec, MountOption::NoExec),
                    "noexec" => (MountOption::NoExec, MountOption::Exec),
                    "atime" => (MountOption::Atime, MountOption::NoAtime),
                    "noatime" => (MountOption::NoAtime, MountOption::Atime),
                    "sync" => (MountOption::Sync, MountOption::Async),
                    "async" => (MountOption::Async, MountOption::Sync),
                    "dirsync" => (MountOption::DirSync, MountOption::DirSync),
                    _ => return usage(format!("unknown mount option \"{opt}\"")),
                };
                // the last of two opposite options wins, as with mount(8)
                extra.retain(|e| *e != o && *e != opposite);
                extra.push(o);
            }
            _ => return usage(format!("unknown mount option \"{opt}\"")),
        }
    }
    // fusermount3 implements auto_unmount only together with allow_other (fuser then
    // admits root and the owner itself), which a non-root user may ask for only when
    // /etc/fuse.conf has `user_allow_other`.
    let root = is_root();
    if auto_unmount && acl.is_none() && !root && !fuse_conf_allows_other() {
        log::warn!(
            "mounting without auto_unmount (it needs user_allow_other in /etc/fuse.conf): \
             if the daemon is killed, run `fusermount3 -u MOUNTPOINT`"
        );
        auto_unmount = false;
    }
    o.config.acl = acl.unwrap_or(if auto_unmount {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    });
    let mut mount_options = vec![
        MountOption::RO,
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::FSName(fusermount_value(&fsname, auto_unmount)),
        MountOption::Subtype(fusermount_value(&subtype, auto_unmount)),
    ];
    if auto_unmount {
        mount_options.push(MountOption::AutoUnmount);
    }
    mount_options.extend(extra);
    o.config.mount_options = mount_options;
    // Two request threads are plenty: they only look up and queue; workers decode.
    o.config.n_threads = Some(2);
    o.config.clone_fd = true;
    if let Some(factor) = te_factor.or(o.time_expansion.map(|t| t.factor)) {
        let above = te_above
            .or(o.time_expansion.map(|t| t.above))
            .unwrap_or(DEFAULT_TIME_EXPANSION_ABOVE);
        o.time_expansion = Some(TimeExpansion { factor, above });
    }
    Ok(o)
}

fn fuse_conf_allows_other() -> bool {
    std::fs::read_to_string("/etc/fuse.conf")
        .map(|s| s.lines().any(|l| l.trim() == "user_allow_other"))
        .unwrap_or(false)
}

/// Parses `256MiB`, `1G`, `512k`, `1000000` (binary multiples for k/M/G/T with or
/// without `iB`).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("bad size \"{s}\" (e.g. 256MiB)")),
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("bad size \"{s}\" (e.g. 256MiB)"))
}

/// Mounts and serves until unmounted (foreground), or until the detached daemon has
/// the mount ready (background; the daemon serves on in a child process).
pub fn mount(args: &MountArgs) -> Result<(), MountError> {
    let archive = match &args.archive {
        Address::Local(p) => {
            Address::Local(std::fs::canonicalize(p).map_err(io_err(format!("{}", p.display())))?)
        }
        remote => remote.clone(),
    };
    let mountpoint = args.mountpoint.as_path();
    let md = std::fs::metadata(mountpoint).map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::ENOTCONN) {
            format!(
                " (a stale mount: run `fusermount3 -u {}`)",
                mountpoint.display()
            )
        } else {
            String::new()
        };
        MountError::Usage(format!("mount point {}: {e}{hint}", mountpoint.display()))
    })?;
    if !md.is_dir() {
        return Err(MountError::Usage(format!(
            "mount point {} is not a directory",
            mountpoint.display()
        )));
    }
    let mountpoint = std::fs::canonicalize(mountpoint)
        .map_err(io_err(format!("mount point {}", mountpoint.display())))?;
    // A second daemon on a live FUSE mount would hide the first one's files and take
    // over the mount point's name; stacking is never what was meant.
    if let Some(what) = mounted_at(&mountpoint) {
        return Err(MountError::Usage(format!(
            "mount point {} is already a mount point ({what}): unmount it first \
             (`fusermount3 -u {}`) or mount elsewhere",
            mountpoint.display(),
            mountpoint.display()
        )));
    }
    let opts = parse_options(args, &archive)?;
    // Fork before anything that may start threads (the Zarr library may start rayon's
    // pool): a forked child has only the forking thread.
    let mut ready = if args.foreground {
        None
    } else {
        match detach()? {
            Detached::Parent(status) => return wait_for_child(status),
            Detached::Child(pipe) => Some(pipe),
        }
    };
    let result = block_signals().and_then(|signals| {
        crate::engine::fixed_mmap_threshold();
        let archive = Archive::open_at(&archive, &opts.store)?;
        let tree = Tree::build(&archive, opts.format, opts.time_expansion)?;
        let fs = FileSystem::new(
            archive,
            tree,
            FsOptions {
                format: opts.format,
                time_expansion: opts.time_expansion,
                cache_bytes: opts.cache_bytes,
                refresh: opts.refresh,
            },
        );
        let fuse_opts = FuseOptions {
            threads: opts.threads,
            uid: unsafe { libc::geteuid() },
            gid: unsafe { libc::getegid() },
        };
        serve(
            fs,
            fuse_opts,
            &opts.config,
            &mountpoint,
            signals,
            &mut ready,
        )
    });
    if let Err(e) = &result {
        log::error!("{e}");
        if let Some(pipe) = ready.as_mut() {
            // The waiting parent prints it; the child only exits.
            let _ = writeln!(pipe, "{e}");
            std::process::exit(2);
        }
    }
    result
}

enum Detached {
    /// In the parent: the read end of the child's status pipe.
    Parent(std::fs::File),
    /// In the daemon: the write end.
    Child(std::fs::File),
}

/// Forks; the child starts a new session, away from the terminal.
fn detach() -> Result<Detached, MountError> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io_err("pipe")(std::io::Error::last_os_error()));
    }
    // SAFETY: the fds were just created and are owned here only.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other thread exists yet (see the module doc).
    match unsafe { libc::fork() } {
        -1 => Err(io_err("fork")(std::io::Error::last_os_error())),
        0 => {
            drop(r);
            // A new session without a terminal, and no hold on the caller's directory
            // (every path was made absolute before).
            unsafe { libc::setsid() };
            let _ = std::env::set_current_dir("/");
            Ok(Detached::Child(w.into()))
        }
        _ => {
            drop(w);
            Ok(Detached::Parent(r.into()))
        }
    }
}

/// The parent's side: the child writes `ok` once mounted, or an error message.
fn wait_for_child(mut status: std::fs::File) -> Result<(), MountError> {
    let mut msg = String::new();
    let _ = status.read_to_string(&mut msg);
    match msg.trim() {
        "ok" => Ok(()),
        "" => Err(MountError::Usage(
            "the daemon exited before the mount was ready (see its log)".into(),
        )),
        m => Err(MountError::Usage(m.to_string())),
    }
}

/// Mounts, tells a waiting parent (`ready`), and serves until unmounted.
fn serve(
    fs: FileSystem,
    fuse_opts: FuseOptions,
    config: &Config,
    mountpoint: &Path,
    signals: libc::sigset_t,
    ready: &mut Option<std::fs::File>,
) -> Result<(), MountError> {
    let store = fs.archive().store().clone();
    let fs = Arc::new(fs);
    let wav_fs = WavFs::new(fs.clone(), fuse_opts).map_err(io_err("starting worker threads"))?;
    let mut session = Session::new(wav_fs, mountpoint, config)
        .map_err(io_err(format!("mounting on {}", mountpoint.display())))?;
    let notifier = session.notifier();
    crate::fs::follow(fs, move |changes| {
        crate::fuse::invalidate(&notifier, changes)
    })
    .map_err(io_err("starting the thread that follows the archive"))?;
    // Our mount, by the kernel's id for it, which stays the same wherever the mount
    // point is moved (a parent directory renamed). None only if the mount table does
    // not show it; then the signal thread unmounts the path, as libfuse does.
    let own = match mountinfo() {
        Ok(table) => table
            .into_iter()
            .rfind(|m| m.mount_point == mountpoint && m.fstype.starts_with("fuse")),
        Err(e) => {
            log::warn!("/proc/self/mountinfo: {e}");
            None
        }
    };
    let mut unmounter = session.unmount_callable();
    let mp = mountpoint.to_path_buf();
    std::thread::Builder::new()
        .name("zw-signals".into())
        .spawn(move || {
            let mut first = true;
            loop {
                let mut sig = 0;
                // SAFETY: `signals` is an initialised set; sigwait only writes `sig`.
                if unsafe { libc::sigwait(&signals, &mut sig) } != 0 {
                    continue;
                }
                if !first {
                    log::warn!("signal {sig} again: exiting without waiting for open files");
                    std::process::exit(1);
                }
                first = false;
                // fuser unmounts by path (`SessionUnmounter`, `Session::unmount` and
                // `BackgroundSession::umount_and_join` all end in umount(2) or
                // `fusermount3 -u` of the path given at mount time, or close
                // fusermount3's auto_unmount socket, after which fusermount3 unmounts
                // that path if what is there no longer answers). Once the mount point's
                // parent is renamed, that path may hold another daemon's mount. So the
                // mount is found by its id in the mount table, wherever it is now, and
                // that mount is detached (`unmount_own`). fuser's unmounter is used only
                // when the mount table never showed our mount.
                let Some(own) = &own else {
                    log::info!("signal {sig}: unmounting {}", mp.display());
                    if let Err(e) = unmounter.unmount() {
                        log::debug!("plain unmount of {}: {e}", mp.display());
                    }
                    if let Err(e) = lazy_unmount(&mp) {
                        log::error!("unmounting {}: {e}", mp.display());
                    }
                    continue;
                };
                log::info!("signal {sig}: unmounting (mounted on {})", mp.display());
                if let Err(e) = unmount_own(own.id) {
                    log::error!(
                        "unmounting {} (mount {}): {e}; run `fusermount3 -u -z` on where it is now",
                        mp.display(),
                        own.id
                    );
                }
            }
        })
        .map_err(io_err("starting the signal thread"))?;
    log::info!("mounted on {}", mountpoint.display());
    if let Some(mut pipe) = ready.take() {
        let _ = writeln!(pipe, "ok");
        drop(pipe);
        detach_stdio();
    }
    session
        .run()
        .map_err(io_err(format!("serving {}", mountpoint.display())))?;
    log::info!(
        "unmounted {} ({} requests to the store)",
        mountpoint.display(),
        store.requests()
    );
    Ok(())
}

/// One line of `/proc/self/mountinfo` (proc(5)), the fields we use.
#[derive(Debug, Clone, PartialEq)]
struct MountInfo {
    /// The kernel's id of the mount: unique while it exists, kept when it moves.
    id: u64,
    /// Where it is mounted now.
    mount_point: PathBuf,
    fstype: String,
    source: String,
}

fn mountinfo() -> std::io::Result<Vec<MountInfo>> {
    Ok(parse_mountinfo(&std::fs::read("/proc/self/mountinfo")?))
}

/// The lines of a mount table: `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL…] -
/// FSTYPE SOURCE SUPER_OPTIONS`, space, tab, newline and backslash in paths written
/// as `\ooo` (octal).
fn parse_mountinfo(text: &[u8]) -> Vec<MountInfo> {
    use std::os::unix::ffi::OsStringExt;
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == b"-") else {
            continue;
        };
        if dash < 6 || fields.len() < dash + 3 {
            continue;
        }
        let Some(id) = std::str::from_utf8(fields[0])
            .ok()
            .and_then(|s| s.parse().ok())
        else {
            continue;
        };
        let text = |b: &[u8]| String::from_utf8_lossy(&unescape_octal(b)).into_owned();
        out.push(MountInfo {
            id,
            mount_point: PathBuf::from(std::ffi::OsString::from_vec(unescape_octal(fields[4]))),
            fstype: text(fields[dash + 1]),
            source: text(fields[dash + 2]),
        });
    }
    out
}

fn unescape_octal(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let digits = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match digits {
            Some(d) if b[i] == b'\\' => {
                out.push(
                    d.iter()
                        .fold(0u8, |v, c| v.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// The FUSE file system mounted at `mp` (its type and source), if any. Other mounts
/// are fine to mount over (a directory that is itself a bind mount or a volume); a
/// FUSE daemon's would be hidden, still running.
fn mounted_at(mp: &Path) -> Option<String> {
    mountinfo()
        .ok()?
        .into_iter()
        .rfind(|m| m.mount_point == mp)
        .filter(|m| m.fstype.starts_with("fuse"))
        .map(|m| format!("{} {}", m.fstype, m.source))
}

/// The mount `id` of `fd`, from `/proc/self/fdinfo` (Linux 3.15 and later).
fn mount_id_of(fd: &std::fs::File) -> std::io::Result<u64> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
    info.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other("no mnt_id in /proc/self/fdinfo"))
}

/// Detaches the mount with id `id`, wherever it is now, and no other: it is looked up
/// in the mount table, its mount point opened (`O_PATH`, which sends the file system
/// nothing) and the descriptor checked to be on that very mount (not on one mounted
/// over it since). Root then detaches the mount through the descriptor itself
/// (`umount2` of `/proc/self/fd/N` resolves to that mount, whatever its path has
/// become); a user, who must go through fusermount3 and its path, passes the path just
/// checked (fusermount3 resolves it again: a rename in that instant is not covered).
fn unmount_own(id: u64) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(m) = mountinfo()?.into_iter().find(|m| m.id == id) else {
        log::info!("mount {id} is already gone");
        return Ok(());
    };
    let fd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(&m.mount_point)?;
    let at = mount_id_of(&fd)?;
    if at != id {
        return Err(std::io::Error::other(format!(
            "{} is covered by another mount ({at}); not unmounting that",
            m.mount_point.display()
        )));
    }
    log::info!("detaching mount {id} at {}", m.mount_point.display());
    if is_root() {
        let c = std::ffi::CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
        // SAFETY: a NUL-terminated path and a valid flag.
        let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        let e = std::io::Error::last_os_error();
        // The descriptor holds the detached mount: closed now, so it can go.
        drop(fd);
        return if rc == 0 || e.raw_os_error() == Some(libc::EINVAL) {
            Ok(())
        } else {
            Err(e)
        };
    }
    drop(fd);
    lazy_unmount(&m.mount_point)
}

/// Detaches the mount at `mp` (`umount -l`): the session loop then ends as soon as no
/// file of the mount is open.
fn lazy_unmount(mp: &Path) -> std::io::Result<()> {
    if is_root() {
        let c = std::ffi::CString::new(mp.as_os_str().as_encoded_bytes())?;
        // SAFETY: a NUL-terminated path and a valid flag.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        // EINVAL: not mounted any more, which is what we wanted.
        return if e.raw_os_error() == Some(libc::EINVAL) {
            Ok(())
        } else {
            Err(e)
        };
    }
    let status = std::process::Command::new("fusermount3")
        .args(["-u", "-q", "-z", "--"])
        .arg(mp)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "fusermount3 -u -z: {status}"
        )))
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and so in every thread it
/// starts) and returns the set for `sigwait`.
fn block_signals() -> Result<libc::sigset_t, MountError> {
    // SAFETY: plain libc signal-set calls on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io_err("blocking signals")(
                std::io::Error::from_raw_os_error(rc),
            ));
        }
        Ok(set)
    }
}

/// Points stdin, stdout and stderr of the detached daemon at /dev/null (its log goes
/// to the `--log` file or syslog).
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which this process owns.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(opts: &[&str]) -> MountArgs {
        MountArgs {
            archive: Address::Local("/a".into()),
            store: StoreOptions::default(),
            mountpoint: "/m".into(),
            foreground: true,
            options: opts.iter().map(|s| s.to_string()).collect(),
            cache_bytes: 1 << 28,
            threads: 8,
            format: None,
            time_expansion: None,
            refresh: Duration::from_secs(30),
        }
    }

    #[test]
    fn defaults_are_read_only_and_named() {
        let o = parse_options(&args(&[]), &Address::Local("/srv/archive".into())).unwrap();
        let m = &o.config.mount_options;
        assert!(m.contains(&MountOption::RO));
        assert!(m.contains(&MountOption::FSName("/srv/archive".into())));
        assert!(m.contains(&MountOption::Subtype("zarr-wavfs".into())));
        if is_root() {
            assert!(m.contains(&MountOption::AutoUnmount));
            assert_eq!(o.config.acl, SessionACL::RootAndOwner);
        }
    }

    #[test]
    fn options_parse_and_bad_ones_are_refused() {
        let o = parse_options(
            &args(&[
                "allow_other,noatime",
                "cache_size=64MiB,format=f32,threads=3",
            ]),
            &Address::Local("/a".into()),
        )
        .unwrap();
        assert_eq!(o.config.acl, SessionACL::All);
        assert!(o.config.mount_options.contains(&MountOption::NoAtime));
        assert_eq!(o.cache_bytes, 64 << 20);
        assert_eq!(o.format, Some(SampleFormat::F32));
        assert_eq!(o.threads, 3);
        assert_eq!(o.time_expansion, None);
        let a = Address::Local("/a".into());
        let te = |opts: &[&str]| parse_options(&args(opts), &a).map(|o| o.time_expansion);
        assert_eq!(
            te(&["time_expansion=10"]).unwrap(),
            Some(TimeExpansion {
                factor: 10,
                above: DEFAULT_TIME_EXPANSION_ABOVE
            })
        );
        assert_eq!(
            te(&["time_expansion_above=50000,time_expansion=8"]).unwrap(),
            Some(TimeExpansion {
                factor: 8,
                above: 50_000
            })
        );
        assert_eq!(te(&["time_expansion_above=50000"]).unwrap(), None);
        for bad in [
            "time_expansion=1",
            "time_expansion=x",
            "time_expansion_above=-3",
        ] {
            assert!(te(&[bad]).is_err(), "{bad}");
        }
        let o = parse_options(
            &args(&["noauto_unmount,rw,defaults,nofail"]),
            &Address::Local("/a".into()),
        )
        .unwrap();
        assert!(!o.config.mount_options.contains(&MountOption::AutoUnmount));
        assert!(o.config.mount_options.contains(&MountOption::RO));
        for bad in ["bogus", "threads=0", "format=u8", "cache_size=lots"] {
            let e = parse_options(&args(&[bad]), &Address::Local("/a".into())).unwrap_err();
            assert!(
                e.to_string().contains(bad.split('=').next().unwrap()),
                "{e}"
            );
        }
    }

    #[test]
    fn mountinfo_lines_parse_with_escaped_paths() {
        let table = b"36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw\n\
            61 36 0:52 / /tmp/a\\040b\\134c\\012d rw,nosuid,nodev shared:7 master:2 - fuse.zarr-wavfs /x\\054y ro,user_id=0\n\
            garbage line\n";
        let t = parse_mountinfo(table);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].id, 36);
        assert_eq!(t[0].mount_point, Path::new("/mnt/parent"));
        assert_eq!(
            (t[0].fstype.as_str(), t[0].source.as_str()),
            ("ext3", "/dev/root")
        );
        assert_eq!(t[1].id, 61);
        assert_eq!(t[1].mount_point, Path::new("/tmp/a b\\c\nd"));
        assert_eq!(t[1].fstype, "fuse.zarr-wavfs");
        assert_eq!(t[1].source, "/x,y");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
    }
}
