//! Mounting and unmounting overlay filesystems.
//!
//! Three ways, tried in this order:
//! - the new mount API (`fsopen`/`fsconfig`/`fsmount`/`move_mount`) with one `lowerdir+`
//!   per layer, which has no limit on the number of lowers but needs kernel ≥ 6.8;
//! - classic `mount(2)` with absolute paths, when the option string fits in a page;
//! - classic `mount(2)` from a child process whose working directory is the home, with
//!   the short relative `l/` paths, for long chains on older kernels.
//!
//! With a `mount_program` (fuse-overlayfs) the program is run instead. Every system call
//! goes through the driver's [`Syscalls`], so the option building here is unit-tested
//! against the recording double (`without_root` below).

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use storage_driver::syscalls::{
    MountAttrFlags, MountFlags, MountPropagationFlags, Syscalls, UnmountFlags,
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

/// Whether the kernel has the new mount API with overlay's `lowerdir+` (Linux ≥ 6.8): an
/// overlay filesystem context is opened and given one `lowerdir+`; older kernels refuse the
/// key with EINVAL, kernels without the API with ENOSYS. The driver asks once, at init.
pub fn new_api_available(sys: &dyn Syscalls) -> bool {
    sys.fsopen("overlay")
        .and_then(|fs| sys.fsconfig_set_string(fs.as_fd(), "lowerdir+", OsStr::new("/")))
        .is_ok()
}

/// Mounts `spec` with the kernel's overlay: through the new mount API when `new_api` (what
/// [`new_api_available`] said), else with `mount(2)`.
pub fn mount_overlay(sys: &dyn Syscalls, spec: &OverlaySpec, new_api: bool) -> io::Result<()> {
    if new_api {
        mount_new_api(sys, spec)
    } else {
        mount_classic(sys, spec)
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
pub fn mount_new_api(sys: &dyn Syscalls, spec: &OverlaySpec) -> io::Result<()> {
    let fs = sys.fsopen("overlay")?;
    let fs = fs.as_fd();
    sys.fsconfig_set_string(fs, "source", OsStr::new("overlay"))?;
    for lower in &spec.lowers {
        sys.fsconfig_set_string(fs, "lowerdir+", lower.as_os_str())?;
    }
    if let Some((upper, work)) = &spec.upper {
        sys.fsconfig_set_string(fs, "upperdir", upper.as_os_str())?;
        sys.fsconfig_set_string(fs, "workdir", work.as_os_str())?;
    }
    let (attrs, params) = split_options(&spec.options);
    for (key, value) in &params {
        match value {
            Some(v) => sys.fsconfig_set_string(fs, key, OsStr::new(v))?,
            None => sys.fsconfig_set_flag(fs, key)?,
        }
    }
    sys.fsconfig_create(fs)?;
    let mnt = sys.fsmount(fs, attrs)?;
    sys.move_mount(mnt.as_fd(), &spec.target)
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
pub fn mount_classic(sys: &dyn Syscalls, spec: &OverlaySpec) -> io::Result<()> {
    let (flags, data_options) = classic_flags(&spec.options);
    let spec = OverlaySpec {
        options: data_options,
        ..spec.clone()
    };
    let page = rustix::param::page_size();
    let absolute = spec.option_string(false);
    if absolute.len() < page {
        return sys.mount(
            "overlay",
            &spec.target,
            "overlay",
            flags,
            Some(OsStr::new(&absolute)),
        );
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
    sys.mount_in_dir(
        &spec.relative_base,
        "overlay",
        &spec.target,
        "overlay",
        flags,
        OsStr::new(&relative),
    )
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
pub fn unmount_target(sys: &dyn Syscalls, target: &Path) -> io::Result<()> {
    match sys.unmount(target, UnmountFlags::NOFOLLOW) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            sys.unmount(target, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW)
        }
        Err(e) => Err(e),
    }
}

/// Makes `dir` a private mount: bind-mounts it on itself first if it is not a mount point
/// (upstream's `mount.MakePrivate`).
pub fn make_private(sys: &dyn Syscalls, dir: &Path) -> io::Result<()> {
    if !sys.is_mount_point(dir)? {
        sys.bind_mount(dir, dir)?;
    }
    sys.set_propagation(dir, MountPropagationFlags::PRIVATE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage_driver::syscalls::LinuxSyscalls;

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
        if !rustix::process::geteuid().is_root() {
            eprintln!("this_kernel_has_lowerdir_plus: fsopen needs root; skipped");
            return;
        }
        // The machine this is developed on runs 6.18; keep the fast path proven.
        assert!(new_api_available(&LinuxSyscalls));
    }
}

#[cfg(test)]
#[path = "mount_tests.rs"]
mod without_root;
