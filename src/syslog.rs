//! A `log` backend writing to syslog, for the detached mount daemon without `--log`.

use std::ffi::CString;

pub struct Syslog {
    level: log::LevelFilter,
}

impl Syslog {
    /// Installs the logger (identity `zarr-wavfs`, facility daemon, with the pid).
    pub fn init(level: log::LevelFilter) -> Result<(), log::SetLoggerError> {
        // SAFETY: the identity is a static C string, as openlog requires.
        unsafe { libc::openlog(c"zarr-wavfs".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
        log::set_boxed_logger(Box::new(Syslog { level }))?;
        log::set_max_level(level);
        Ok(())
    }
}

impl log::Log for Syslog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let prio = match r.level() {
            log::Level::Error => libc::LOG_ERR,
            log::Level::Warn => libc::LOG_WARNING,
            log::Level::Info => libc::LOG_INFO,
            _ => libc::LOG_DEBUG,
        };
        let text = format!("{}", r.args()).replace('\0', " ");
        if let Ok(msg) = CString::new(text) {
            // SAFETY: "%s" with one NUL-terminated argument.
            unsafe { libc::syslog(prio, c"%s".as_ptr(), msg.as_ptr()) };
        }
    }

    fn flush(&self) {}
}
