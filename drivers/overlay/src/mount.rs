//! Mounting and unmounting overlay filesystems.
//!
//! Three ways, tried in this order:
//! - the new mount API (`fsopen`/`fsconfig`/`fsmount`/`move_mount`) with one `lowerdir+`
//!   per layer, which has no limit on the number of lowers but needs kernel ≥ 6.8;
//! - classic `mount(2)` with absolute paths, when the option string fits in a page;
//! - classic `mount(2)` from a child process whose working directory is the home, with
//!   the short relative `l/` paths, for long chains on older kernels.
//!
//! With a `mount_program` (fuse-overlayfs) the program is run instead.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use rustix::fd::AsFd;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount, unmount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

/// What to mount at one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlaySpec {
    /// Lower directories, uppermost first, as absolute paths.
    pub lowers: Vec<PathBuf>,
    /// The same lowers relative to `relative_base`, for the short classic form.
    pub relative_lowers: Vec<PathBuf>,
    /// The directory the relative lowers are relative to (the driver home).
    pub relative_base: PathBuf,
    /// Upper and work directories; `None` for a read-only mount.
    pub upper: Option<(PathBuf, PathBuf)>,
    /// Extra options (`key` or `key=value`), for example from `mountopt`.
    pub options: Vec<String>,
    /// Where to mount.
    pub target: PathBuf,
}

impl OverlaySpec {
    /// The classic comma-separated option string, with absolute or relative lowers.
    pub fn option_string(&self, relative: bool) -> String {
        let lowers = if relative {
            &self.relative_lowers
        } else {
            &self.lowers
        };
        let joined: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let mut parts = vec![format!("lowerdir={}", joined.join(":"))];
        if let Some((upper, work)) = &self.upper {
            parts.push(format!("upperdir={}", upper.display()));
            parts.push(format!("workdir={}", work.display()));
        }
        parts.extend(self.options.iter().cloned());
        parts.join(",")
    }
}

/// Whether the kernel has the new mount API with overlay's `lowerdir+` (Linux ≥ 6.8).
/// Asked once per process: an overlay filesystem context is opened and given one
/// `lowerdir+`; older kernels refuse the key with EINVAL, kernels without the API with
/// ENOSYS.
pub fn new_api_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
            .and_then(|fs| fsconfig_set_string(fs.as_fd(), "lowerdir+", "/"))
            .is_ok()
    })
}

/// Mounts `spec` with the kernel's overlay, using the new mount API when available.
pub fn mount_overlay(spec: &OverlaySpec) -> io::Result<()> {
    if new_api_available() {
        mount_new_api(spec)
    } else {
        mount_classic(spec)
    }
}

/// Splits extra options into mount attributes (for `fsmount`) and filesystem parameters.
fn split_options(options: &[String]) -> (MountAttrFlags, Vec<(String, Option<String>)>) {
    let mut attrs = MountAttrFlags::empty();
    let mut params = Vec::new();
    for option in options {
        match option.as_str() {
            "ro" => attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY,
            "nodev" => attrs |= MountAttrFlags::MOUNT_ATTR_NODEV,
            "nosuid" => attrs |= MountAttrFlags::MOUNT_ATTR_NOSUID,
            "noexec" => attrs |= MountAttrFlags::MOUNT_ATTR_NOEXEC,
            "noatime" => attrs |= MountAttrFlags::MOUNT_ATTR_NOATIME,
            "relatime" => attrs |= MountAttrFlags::MOUNT_ATTR_RELATIME,
            "rw" | "dev" | "suid" | "exec" => {}
            other => match other.split_once('=') {
                // Quotes protect commas (SELinux labels) in a classic option string;
                // fsconfig takes the value alone.
                Some((k, v)) => params.push((k.to_string(), Some(unquote(v).to_string()))),
                None => params.push((other.to_string(), None)),
            },
        }
    }
    (attrs, params)
}

/// `"value"` → `value`.
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Mounts through `fsopen`/`fsconfig`/`fsmount`/`move_mount`, one `lowerdir+` per layer.
pub fn mount_new_api(spec: &OverlaySpec) -> io::Result<()> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(fs.as_fd(), "source", "overlay")?;
    for lower in &spec.lowers {
        fsconfig_set_string(fs.as_fd(), "lowerdir+", lower.as_os_str().as_bytes())?;
    }
    if let Some((upper, work)) = &spec.upper {
        fsconfig_set_string(fs.as_fd(), "upperdir", upper.as_os_str().as_bytes())?;
        fsconfig_set_string(fs.as_fd(), "workdir", work.as_os_str().as_bytes())?;
    }
    let (attrs, params) = split_options(&spec.options);
    for (key, value) in &params {
        match value {
            Some(v) => fsconfig_set_string(fs.as_fd(), key.as_str(), v.as_str())?,
            None => fsconfig_set_flag(fs.as_fd(), key.as_str())?,
        }
    }
    fsconfig_create(fs.as_fd())?;
    let mnt = fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    move_mount(
        mnt.as_fd(),
        c"",
        rustix::fs::CWD,
        spec.target.as_os_str().as_bytes(),
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

/// Splits extra options into `mount(2)` flags and the data string's own options.
fn classic_flags(options: &[String]) -> (MountFlags, Vec<String>) {
    let mut flags = MountFlags::empty();
    let mut data = Vec::new();
    for option in options {
        match option.as_str() {
            "ro" => flags |= MountFlags::RDONLY,
            "nodev" => flags |= MountFlags::NODEV,
            "nosuid" => flags |= MountFlags::NOSUID,
            "noexec" => flags |= MountFlags::NOEXEC,
            "noatime" => flags |= MountFlags::NOATIME,
            "relatime" => flags |= MountFlags::RELATIME,
            "rw" | "dev" | "suid" | "exec" => {}
            other => data.push(other.to_string()),
        }
    }
    (flags, data)
}

/// Mounts with `mount(2)`: absolute paths when the options fit in a page, else the short
/// relative paths from a child process working in the home.
pub fn mount_classic(spec: &OverlaySpec) -> io::Result<()> {
    let (flags, data_options) = classic_flags(&spec.options);
    let spec = OverlaySpec {
        options: data_options,
        ..spec.clone()
    };
    let page = rustix::param::page_size();
    let absolute = spec.option_string(false);
    if absolute.len() < page {
        let data = to_cstring(absolute.as_bytes())?;
        return rustix::mount::mount(
            "overlay",
            spec.target.as_path(),
            "overlay",
            flags,
            Some(data.as_c_str()),
        )
        .map_err(io::Error::from);
    }
    let relative = spec.option_string(true);
    if relative.len() >= page {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "too many lower layers for a classic overlay mount ({} bytes of options)",
                relative.len()
            ),
        ));
    }
    mount_from_dir(
        &spec.relative_base,
        &spec.target,
        flags,
        relative.as_bytes(),
    )
}

fn to_cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Runs `mount(2)` in a forked child whose working directory is `base`, so relative
/// paths in `data` resolve there; the parent's working directory, shared by every
/// thread, is never changed.
fn mount_from_dir(base: &Path, target: &Path, flags: MountFlags, data: &[u8]) -> io::Result<()> {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::ForkResult;

    // Everything the child needs is allocated before fork: after fork in a threaded
    // process only async-signal-safe calls are allowed.
    let base = to_cstring(base.as_os_str().as_bytes())?;
    let target = to_cstring(target.as_os_str().as_bytes())?;
    let data = to_cstring(data)?;
    // SAFETY: the child only calls chdir, mount and _exit, all async-signal-safe system
    // calls on pre-allocated C strings; it never returns into Rust code.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        ForkResult::Child => {
            let code = match rustix::process::chdir(base.as_c_str()) {
                Err(e) => e.raw_os_error(),
                Ok(()) => match rustix::mount::mount(
                    c"overlay",
                    target.as_c_str(),
                    c"overlay",
                    flags,
                    Some(data.as_c_str()),
                ) {
                    Ok(()) => 0,
                    Err(e) => e.raw_os_error(),
                },
            };
            // SAFETY: _exit ends the child without running the parent's destructors.
            unsafe { libc::_exit(code.clamp(0, 255)) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).map_err(io::Error::from)? {
            WaitStatus::Exited(_, 0) => Ok(()),
            WaitStatus::Exited(_, errno) => Err(io::Error::from_raw_os_error(errno)),
            other => Err(io::Error::other(format!("mount helper ended: {other:?}"))),
        },
    }
}

/// Mounts with a FUSE program: `PROG -o <options> <target>`.
pub fn mount_with_program(program: &Path, spec: &OverlaySpec) -> io::Result<()> {
    let output = Command::new(program)
        .arg("-o")
        .arg(spec.option_string(false))
        .arg(&spec.target)
        .output()?;
    if output.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{} failed ({}): {}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}

/// Unmounts `target`; a target that is not mounted is not an error, and a busy one is
/// detached lazily.
pub fn unmount_target(target: &Path) -> io::Result<()> {
    match unmount(target, UnmountFlags::NOFOLLOW) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOENT => Ok(()),
        Err(e) if e == rustix::io::Errno::BUSY => {
            unmount(target, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW).map_err(io::Error::from)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether `path` is a mount point, from `/proc/self/mountinfo`.
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let wanted = path.as_os_str().as_bytes();
    Ok(info.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .is_some_and(|mp| unescape_mountinfo(mp) == wanted)
    }))
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
pub(crate) fn unescape_mountinfo(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(v) = u8::try_from(value) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Makes `dir` a private mount: bind-mounts it on itself first if it is not a mount
/// point (upstream's `mount.MakePrivate`).
pub fn make_private(dir: &Path) -> io::Result<()> {
    if !is_mount_point(dir)? {
        rustix::mount::mount_bind(dir, dir)?;
    }
    rustix::mount::mount_change(dir, rustix::mount::MountPropagationFlags::PRIVATE)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_strings() {
        let spec = OverlaySpec {
            lowers: vec!["/h/l/A".into(), "/h/l/B".into()],
            relative_lowers: vec!["l/A".into(), "l/B".into()],
            relative_base: "/h".into(),
            upper: Some(("/h/x/diff".into(), "/h/x/work".into())),
            options: vec!["nodev".into()],
            target: "/h/x/merged".into(),
        };
        assert_eq!(
            spec.option_string(false),
            "lowerdir=/h/l/A:/h/l/B,upperdir=/h/x/diff,workdir=/h/x/work,nodev"
        );
        assert!(spec.option_string(true).starts_with("lowerdir=l/A:l/B,"));
    }

    #[test]
    fn options_split_into_flags_and_params() {
        let opts: Vec<String> = [
            "nodev",
            "metacopy=on",
            "userxattr",
            "ro",
            "context=\"a:b:c:s0:c1,c2\"",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (attrs, params) = split_options(&opts);
        assert_eq!(
            attrs,
            MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_RDONLY
        );
        assert_eq!(
            params,
            vec![
                ("metacopy".to_string(), Some("on".to_string())),
                ("userxattr".to_string(), None),
                ("context".to_string(), Some("a:b:c:s0:c1,c2".to_string()))
            ]
        );
        let (flags, data) = classic_flags(&opts);
        assert_eq!(flags, MountFlags::NODEV | MountFlags::RDONLY);
        assert_eq!(data[..2], ["metacopy=on", "userxattr"]);
    }

    #[test]
    fn this_kernel_has_lowerdir_plus() {
        // The machine this is developed on runs 6.18; keep the fast path proven.
        assert!(new_api_available());
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), b"/a b".to_vec());
        assert_eq!(unescape_mountinfo("/plain"), b"/plain".to_vec());
    }
}
