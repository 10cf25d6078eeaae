//! The overlay mount a layer gets: its lowers (the ancestors' diff directories through the
//! `l/` short links, moved-aside uppers after the diff they came from), its upper and work
//! directories unless it is mounted read-only, and the options (`mountopt` or the caller's,
//! the SELinux label, `userxattr` without root, `volatile`). [`crate::mount`] turns the
//! result into system calls.

use std::path::{Path, PathBuf};

use storage_driver::{DriverError, DriverResult, MountOpts};

use crate::driver::{ensure_dir, OverlayDriver, MAX_DEPTH};
use crate::layout::Layout;
use crate::mount::OverlaySpec;

impl OverlayDriver {
    /// Describes the overlay mount of layer `id`.
    pub(crate) fn mount_spec(
        &self,
        id: &str,
        dir: &Path,
        opts: &MountOpts,
    ) -> DriverResult<OverlaySpec> {
        let read_only = opts.options.iter().any(|o| o == "ro") || self.layout().is_read_only(dir);
        let mut options: Vec<String> = if opts.options.is_empty() {
            self.options().mount_options.clone()
        } else {
            opts.options
                .iter()
                .filter(|o| *o != "ro")
                .cloned()
                .collect()
        };
        if !opts.mount_label.is_empty() && selinux_enabled() {
            options.push(format!("context=\"{}\"", opts.mount_label));
        }
        // Only the kernel's overlay reads `userxattr`; a mount program (fuse-overlayfs) keeps
        // its own metadata and warns about the option, so upstream passes it only to the
        // kernel.
        if self.rootless() && self.options().mount_program.is_none() {
            options.push("userxattr".to_string());
        }
        if opts.volatile && !read_only && self.supports_volatile() {
            options.push("volatile".to_string());
        }
        let mut relative_links: Vec<PathBuf> = Layout::read_lower_file(dir)
            .map_err(|e| DriverError::io(format!("reading lower of layer {id}"), e))?
            .into_iter()
            .map(PathBuf::from)
            .collect();
        // Upstream's limit, where upstream enforces it: a layer may be created on any
        // chain, and one with more than `MAX_DEPTH` lowers fails to mount.
        if relative_links.len() > MAX_DEPTH {
            return Err(DriverError::BadOption("max depth exceeded".to_string()));
        }
        let links = self.layout().lower_dirs(dir)?;
        // Links of read-only stores cannot be named relative to our home.
        if links.iter().any(|l| !l.starts_with(self.layout().home())) {
            relative_links = links.clone();
        }
        // Upper directories moved aside by a change of ID mapping (`diff1`, ...) come
        // right after the diff they were moved from, the layer's own first, as upstream
        // mounts them; a lower's are reached through its link (`l/ABC/../diff1`).
        let mut lowers = Vec::new();
        let mut relative_lowers = Vec::new();
        for extra in crate::idmap_update::own_extra_diffs(dir) {
            relative_lowers.push(
                extra
                    .strip_prefix(self.layout().home())
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|_| extra.clone()),
            );
            lowers.push(extra);
        }
        for (link, relative) in links.into_iter().zip(relative_links) {
            let extras = crate::idmap_update::own_extra_diffs(&link.join(".."));
            lowers.push(link.clone());
            relative_lowers.push(relative.clone());
            for extra in extras {
                // `own_extra_diffs` named them `<link>/../diffN`; keep that form.
                if let Some(name) = extra.file_name() {
                    relative_lowers.push(relative.join("..").join(name));
                }
                lowers.push(extra);
            }
        }
        if lowers.is_empty() {
            let empty = dir.join("empty");
            ensure_dir(&empty, 0o700)?;
            lowers.push(empty.clone());
            relative_lowers.push(
                empty
                    .strip_prefix(self.layout().home())
                    .map(Path::to_path_buf)
                    .unwrap_or(empty),
            );
        }
        let diff = dir.join("diff");
        let upper = if read_only {
            let rel = diff
                .strip_prefix(self.layout().home())
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| diff.clone());
            lowers.insert(0, diff);
            relative_lowers.insert(0, rel);
            None
        } else {
            Some((diff, dir.join("work")))
        };
        Ok(OverlaySpec {
            lowers,
            relative_lowers,
            relative_base: self.layout().home().to_path_buf(),
            upper,
            options,
            target: self.layout().merged_dir(id, dir),
        })
    }
}

/// Whether SELinux is enabled, so mount labels mean something to the kernel.
fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}
