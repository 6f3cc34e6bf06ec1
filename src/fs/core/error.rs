//! A refused file-system call: the errno the caller sees, the one line that says why, and how
//! loud that line is. Making one has no side effect: the FUSE adapter logs it, once, with the
//! operation's name.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsError {
    pub errno: i32,
    /// `None` for the quiet, expected misses (a lookup of a name that does not exist).
    pub message: Option<String>,
    pub level: log::Level,
}

impl FsError {
    /// An expected miss: logged at debug level only (file managers probe constantly).
    pub fn quiet(errno: i32) -> FsError {
        FsError {
            errno,
            message: None,
            level: log::Level::Debug,
        }
    }

    /// A refusal the user should hear about.
    pub fn refuse(errno: i32, message: impl Into<String>) -> FsError {
        FsError {
            errno,
            message: Some(message.into()),
            level: log::Level::Warn,
        }
    }

    /// A local I/O error while doing `what`; a missing file is an expected miss.
    pub fn io(e: std::io::Error, what: &str) -> FsError {
        let errno = e.raw_os_error().unwrap_or(libc::EIO);
        if errno == libc::ENOENT {
            FsError::quiet(errno)
        } else {
            FsError::refuse(errno, format!("{what}: {e}"))
        }
    }
}

pub type FsResult<T> = Result<T, FsError>;
