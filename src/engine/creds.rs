//! Opening a local file with a user's rights: their uid, gid and supplementary groups, so the
//! kernel decides (search permission on every directory of the path, ACLs, everything), not a
//! re-implementation of mode bits.
//!
//! Linux credentials are per thread at the system-call level; glibc's `setgroups`/`setresuid`
//! wrappers change every thread of the process, so the raw system calls are used, on a
//! short-lived thread of their own that opens the file, hands the descriptor back and ends (its
//! credentials end with it).

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::path::Path;

/// A user's identity: who wrote a request through the drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

/// The user's name, for `getgrouplist`; `None` for a uid without a passwd entry.
fn user_name(uid: u32) -> Option<std::ffi::CString> {
    let mut buf = vec![0 as libc::c_char; 4096];
    loop {
        // SAFETY: zeroed passwd is a valid out-parameter; buf outlives the call and its
        // length is passed; result is written only by getpwuid_r.
        let (rc, found, name) = unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
            let name = (!result.is_null() && !pwd.pw_name.is_null())
                .then(|| CStr::from_ptr(pwd.pw_name).to_owned());
            (rc, !result.is_null(), name)
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        return if found { name } else { None };
    }
}

/// The user's groups: `gid` and every supplementary group of their name (`getgrouplist`).
pub fn groups_of(uid: u32, gid: u32) -> Vec<libc::gid_t> {
    let Some(name) = user_name(uid) else {
        return vec![gid];
    };
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let asked = n;
        // SAFETY: name is NUL-terminated; groups has room for `n` entries, which getgrouplist
        // updates to the number it needs.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n.max(0) as usize);
            return groups;
        }
        if n <= asked {
            n = asked * 2;
        }
        if n > 65536 {
            return vec![gid];
        }
    }
}

/// Whether this process can take on other users' rights (it runs as root).
fn privileged() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Opens `path` for reading as `caller` would: with their uid, gid and supplementary groups.
/// When mhfs runs as that user already, it is a plain open; when it runs as another unprivileged
/// user it cannot take on the caller's rights, so it refuses (`PermissionDenied`) rather than
/// read with its own.
/// Opens a file for reading without ever blocking on it: a FIFO or a device named by a request
/// opens at once (non-blocking) and is then refused as not a regular file.
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

pub fn open_as(path: &Path, caller: Caller) -> io::Result<File> {
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    if !privileged() {
        if caller.uid == me {
            return open_regular(path);
        }
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "mhfs runs as uid {me}, not root: it cannot open files with uid {}'s rights",
                caller.uid
            ),
        ));
    }
    let groups = groups_of(caller.uid, caller.gid);
    let path = path.to_path_buf();
    std::thread::scope(|s| {
        s.spawn(move || {
            become_for_files(caller, &groups)?;
            open_regular(&path)
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the thread opening the file panicked")))
    })
}

/// Takes on `caller`'s file-system rights on this thread only (raw system calls).
fn become_for_files(caller: Caller, groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: the raw system calls change this thread's credentials only; `groups` is valid
    // for its length.
    unsafe {
        if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::syscall(libc::SYS_setfsgid, caller.gid);
        libc::syscall(libc::SYS_setfsuid, caller.uid);
        // setfsuid/setfsgid answer the previous value; asking again with an invalid id
        // (-1 as u32) changes nothing and answers the current one.
        let fsuid = libc::syscall(libc::SYS_setfsuid, u32::MAX) as u32;
        let fsgid = libc::syscall(libc::SYS_setfsgid, u32::MAX) as u32;
        if fsuid != caller.uid || fsgid != caller.gid {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("cannot take on uid {} gid {}", caller.uid, caller.gid),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_users_rights_stay_on_their_thread() {
        if !privileged() {
            eprintln!("skipped: not root");
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("secret");
        std::fs::write(&secret, b"x").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        // A 0700 root folder: another user cannot search it (whatever the file's mode).
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let nobody = Caller {
            uid: 65534,
            gid: 65534,
        };
        let e = open_as(&secret, nobody).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(open_as(&secret, Caller { uid: 0, gid: 0 }).is_ok());
        // This thread is still root.
        assert!(File::open(&secret).is_ok());
        // SAFETY: setfsuid with an invalid id only reports the current one.
        let fsuid = unsafe { libc::syscall(libc::SYS_setfsuid, u32::MAX) };
        assert_eq!(fsuid as u32, 0);
    }
}
