//! End-to-end tests: the real `storage` binary on scratch stores with the overlay driver
//! (they mount, so they run as root), split by area. `compat` also runs Debian's Go
//! `containers-storage` when it is installed.

#![allow(clippy::unwrap_used)]

/// The driver [`harness::Scratch::new`] uses.
pub const DRIVER: &str = "overlay";

mod harness;

mod archive_component;
mod check;
mod compat;
mod concurrency;
mod containers;
mod copy;
mod corpus;
mod crash;
mod crash_points;
mod data;
mod dedup;
mod deep_chains;
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
mod quota;
mod ro_stores;
mod rootless;
mod skopeo;
mod soak;
mod upstream_compat;
