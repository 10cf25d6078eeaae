//! The end-to-end suite again on the vfs driver (the built-in vfs component), plus the tests
//! of driver components through the binary ([`vfs`]). Left out: `compat` (compares with Go on
//! overlay) and `archive_component` (the overlay driver's archive options).

#![allow(clippy::unwrap_used)]

/// The driver [`harness::Scratch::new`] uses.
pub const DRIVER: &str = "vfs";

mod harness;

mod check;
mod concurrency;
mod containers;
mod copy;
mod corpus;
mod crash;
mod crash_points;
mod data;
mod dedup;
mod diff;
mod errors;
mod faults;
mod hostile;
mod idmaps;
mod images;
mod layers;
mod mixed_go;
mod mounts;
mod names;
mod oci;
mod on_disk;
mod parsing;
mod podman;
mod power_loss;
mod ro_stores;
mod skopeo;
mod soak;
mod upstream_compat;
mod vfs;
