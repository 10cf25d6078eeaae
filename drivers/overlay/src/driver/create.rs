//! Creating a layer's directories: `diff`, `work`, `merged`, its short link, and `lower`
//! (the chain of its parent's lowers) or `empty`, with the owner and mode upstream gives
//! them and, with a quota, a project of its own.

use std::os::unix::fs::MetadataExt;

use storage_driver::cleanup::log_failure;
use storage_driver::{CreateOpts, DriverError, DriverResult, GraphDriver};

use super::{ensure_dir, mkdir, OverlayDriver};
use crate::layout::{is_plain_name, LINK_DIR};
use crate::quota::Quota;

impl OverlayDriver {
    /// Creates the directories and links of a new layer.
    /// Image layers go to the split image store when there is one. With `quota`, the
    /// layer directory gets a project of its own with these limits before anything is
    /// created in it, so `diff/` and `work/` (between which overlay renames) share it.
    pub(super) fn create_layer(
        &self,
        id: &str,
        parent: Option<&str>,
        opts: &CreateOpts,
        image_layer: bool,
        quota: Option<Quota>,
    ) -> DriverResult<()> {
        if !is_plain_name(id) {
            return Err(DriverError::InvalidLayerId(id.to_string()));
        }
        if self.layout.writable_dir(id).is_some() {
            // Debris of an interrupted create: upstream removes it and starts over.
            self.remove(id)?;
        }
        let base = match (image_layer, self.layout.image_home()) {
            (true, Some(image_home)) => image_home.to_path_buf(),
            _ => self.layout.home().to_path_buf(),
        };
        let dir = base.join(id);
        let mappings = if opts.id_mappings.is_identity() {
            &self.id_mappings
        } else {
            &opts.id_mappings
        };
        let mut owner = mappings.to_host(0, 0).ok_or(DriverError::UnmappedRoot)?;
        // Upstream's defaultPerms; applying a layer sets the real root permissions.
        let mut diff_mode = 0o555;
        let parent_dir = match parent {
            Some(p) => {
                let pdir = self.layout.dir(p)?;
                let meta = std::fs::metadata(pdir.join("diff"))
                    .map_err(|e| DriverError::io(format!("stat of layer {p}"), e))?;
                owner = (meta.uid(), meta.gid());
                diff_mode = meta.mode() & 0o7777;
                Some(pdir)
            }
            None => None,
        };
        if let Some(mask) = self.options.force_mask {
            diff_mode = mask;
        }
        ensure_dir(&base.join(LINK_DIR), 0o755)?;
        mkdir(self.syscalls(), &dir, 0o700, Some(owner))?;
        let result = (|| {
            if let (Some(control), Some(quota)) = (&self.quota, quota) {
                control.set_quota(&dir, quota)?;
            }
            mkdir(self.syscalls(), &dir.join("diff"), diff_mode, Some(owner))?;
            self.layout.create_link(&base, id)?;
            mkdir(self.syscalls(), &dir.join("work"), 0o700, Some(owner))?;
            mkdir(self.syscalls(), &dir.join("merged"), 0o700, Some(owner))?;
            match (parent, parent_dir) {
                (Some(p), Some(_)) => {
                    // No depth limit here, as upstream: a chain deeper than `MAX_DEPTH`
                    // is refused when it is mounted (`mount_spec`).
                    let lowers = self.layout.lowers_for_child(p)?;
                    let lower_file = dir.join("lower");
                    std::fs::write(&lower_file, lowers.join(":")).map_err(|e| {
                        DriverError::io(format!("writing {}", lower_file.display()), e)
                    })?;
                }
                _ => mkdir(self.syscalls(), &dir.join("empty"), 0o700, Some(owner))?,
            }
            Ok(())
        })();
        if result.is_err() {
            // The create's error is the one to report; what stays is debris the next
            // create of this ID removes first.
            log_failure(
                format_args!("removing the debris of layer {id}"),
                self.remove(id),
            );
        }
        result
    }
}
