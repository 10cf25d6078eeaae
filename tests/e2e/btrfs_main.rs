//! The end-to-end suite again on the native btrfs driver, on a loop-mounted btrfs made by the
//! test process (see `harness::loop_btrfs`), plus the btrfs-specific tests ([`btrfs`]). The
//! same modules as `e2e-vfs` without `vfs` (the vfs component's own layout and plugins); left
//! out as there: `compat` (compares with Go on overlay) and `archive_component` (overlay's
//! archive options).

#![allow(clippy::unwrap_used)]

/// The driver [`harness::Scratch::new`] uses.
pub const DRIVER: &str = "btrfs";

mod harness;

mod btrfs;
mod check;
mod concurrency;
mod containers;
mod copy;
mod corpus;
mod crash;
mod data;
mod dedup;
mod diff;
mod errors;
mod hostile;
mod idmaps;
mod images;
mod layers;
mod mounts;
mod names;
mod oci;
mod on_disk;
mod parsing;
mod podman;
mod ro_stores;
mod skopeo;
mod upstream_compat;
