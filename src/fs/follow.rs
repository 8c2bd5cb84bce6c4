//! Following the archive while it is mounted or served: a thread that refreshes the
//! tree (`FileSystem::refresh`) when the archive changes and tells the front end what
//! changed. A local archive's folders are watched with inotify, so a committed
//! recording (a directory renamed into its folder) shows within a moment; every
//! archive is also read again every `interval`, which is all a remote one has (and a
//! local file system whose changes inotify does not see, such as NFS written by
//! another machine).

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::filesystem::FileSystem;
use super::tree::Changes;

/// Changes that arrive together (an import writes several objects per commit) are
/// taken in one refresh: after an event, wait this long for the rest.
const SETTLE: Duration = Duration::from_millis(250);

/// The refresh interval given as `secs` seconds (`--refresh`, `-o refresh=`); 0 is
/// never.
pub fn refresh_interval(secs: &str) -> Result<Duration, String> {
    match secs.parse::<f64>() {
        Ok(s) if s >= 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("{secs}: expected seconds (0: never)")),
    }
}

/// Starts following the archive of `fs` unless its options say never: reads it again
/// when inotify reports a change in a local archive's folders, and every
/// `FsOptions::refresh` in any case; `on_change` gets what each refresh changed. A
/// failed refresh keeps the tree as it was and is logged. The thread holds `fs` only
/// while refreshing, and ends once the front end has dropped it.
pub fn follow(
    fs: Arc<FileSystem>,
    on_change: impl Fn(&Changes) + Send + 'static,
) -> std::io::Result<()> {
    let interval = fs.options().refresh;
    if interval.is_zero() {
        return Ok(());
    }
    let root = fs.archive().store().local_root().map(Path::to_path_buf);
    let fs: Weak<FileSystem> = Arc::downgrade(&fs);
    let local = root.is_some();
    std::thread::Builder::new()
        .name("zw-follow".into())
        .spawn(move || {
            let mut watch = root.and_then(|root| match Watch::new(root) {
                Ok(w) => Some(w),
                Err(e) => {
                    log::warn!(
                        "cannot watch the archive for changes ({e}); reading it again every \
                         {} s instead",
                        interval.as_secs_f64()
                    );
                    None
                }
            });
            loop {
                if let (Some(w), Some(fs)) = (&mut watch, fs.upgrade()) {
                    w.add(fs.tree().folders());
                }
                let due = Instant::now() + interval;
                match &mut watch {
                    Some(w) => w.wait_until(due),
                    None => std::thread::sleep(interval),
                }
                let Some(fs) = fs.upgrade() else {
                    return;
                };
                match fs.refresh() {
                    Ok(changes) if !changes.is_empty() => on_change(&changes),
                    Ok(_) => {}
                    Err(e) => log::error!("reading the archive again: {e}"),
                }
                if local {
                    // Recordings replaced or removed while this process had them
                    // open wait in the staging area; those it has closed now go.
                    crate::archive::writer::clean_stale_staging(fs.archive());
                }
            }
        })?;
    Ok(())
}

/// inotify watches on a local archive's folders.
struct Watch {
    fd: OwnedFd,
    root: std::path::PathBuf,
    watched: HashSet<String>,
}

impl Watch {
    fn new(root: std::path::PathBuf) -> std::io::Result<Watch> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Watch {
            // SAFETY: `fd` was just created and is owned here only.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            root,
            watched: HashSet::new(),
        })
    }

    /// Watches the folders at archive-relative `folders` not watched yet (a folder
    /// that went away drops its watch by itself).
    fn add<'a>(&mut self, folders: impl Iterator<Item = &'a str>) {
        const MASK: u32 = libc::IN_CREATE
            | libc::IN_DELETE
            | libc::IN_MOVED_FROM
            | libc::IN_MOVED_TO
            | libc::IN_DELETE_SELF
            | libc::IN_ONLYDIR;
        for rel in folders {
            if self.watched.contains(rel) {
                continue;
            }
            let path = if rel.is_empty() {
                self.root.clone()
            } else {
                self.root.join(rel)
            };
            let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
                continue;
            };
            // SAFETY: `c` is a valid NUL-terminated path; the result is checked.
            if unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), MASK) } < 0 {
                log::debug!(
                    "watching {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
                continue;
            }
            self.watched.insert(rel.to_string());
        }
    }

    /// Waits for a change (and `SETTLE` more for those that come with it) or `due`.
    fn wait_until(&mut self, due: Instant) {
        if self.wait(due.saturating_duration_since(Instant::now())) {
            std::thread::sleep(SETTLE);
            self.drain();
        }
    }

    /// Whether an event came within `timeout`; reads what is there.
    fn wait(&mut self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd; the result is checked.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 {
            self.drain();
            true
        } else {
            false
        }
    }

    /// Reads every pending event. Which folders they name does not matter: a refresh
    /// reads the whole tree. A folder deleted (`IN_IGNORED` follows) is watched again
    /// if it comes back, since the set of watched folders is rebuilt from the tree.
    fn drain(&mut self) {
        let mut buf = [0u8; 64 << 10];
        let mut ignored = false;
        loop {
            // SAFETY: the buffer is valid for its length; the result is checked.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            let mut at = 0;
            while at + std::mem::size_of::<libc::inotify_event>() <= n as usize {
                // SAFETY: the kernel writes whole events; the header is read unaligned.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                ignored |= ev.mask & libc::IN_IGNORED != 0;
                at += std::mem::size_of::<libc::inotify_event>() + ev.len as usize;
            }
        }
        if ignored {
            self.watched.clear();
        }
    }
}
