//! `storage_host`: the store of container layers, images and containers, compatible on
//! disk with containers/storage, and the contract its graph drivers plug into.
//!
//! The modules are the nouns of the domain: [`store`] is the public entry point the CLI
//! calls; [`layers`], [`images`] and [`containers`] keep the JSON records; [`lock`] holds
//! the cross-process lock files; [`config`] reads `storage.toml`; [`driver`] is the
//! graph-driver trait and registry; [`confined`] is the directory handle every archive
//! operation goes through; [`tarsplit`] and [`compress`] re-create imported archives and
//! detect compression; [`oci`] moves images in and out as OCI image layouts, verifies them
//! and prunes what nothing references.

pub mod atomic;
#[cfg(feature = "components")]
pub mod component;
pub mod compress;
pub mod config;
pub mod confined;
pub mod containers;
pub mod dedup;
pub mod digest;
pub mod driver;
pub mod error;
pub mod gojson;
pub mod idmap;
pub mod images;
pub mod ingest;
pub mod layers;
pub mod lock;
pub mod log;
pub mod oci;
pub mod records;
pub mod store;
pub mod tarsplit;
#[cfg(test)]
mod test_reference;
