//! `storage_store`: the store of container layers, images and containers, compatible on
//! disk with containers/storage. Its graph drivers plug in through `storage_driver`.
//!
//! The modules are the nouns of the domain: [`store`] is the public entry point the CLI
//! calls; [`layers`], [`images`] and [`containers`] keep the JSON records; [`lock`] holds
//! the cross-process lock files; [`config`] reads `storage.toml`; [`ingest`] imports a
//! layer blob; [`store_dir`] holds the store's directories open; [`tarsplit`] and [`compress`] re-create imported archives and detect
//! compression; [`oci`] moves images in and out as OCI image layouts, verifies them and
//! prunes what nothing references.

pub mod atomic;
pub mod compress;
pub mod config;
pub mod containers;
pub mod crash_point;
pub mod digest;
pub mod error;
pub mod gojson;
pub mod gostr;
pub mod images;
pub mod ingest;
pub mod layers;
pub mod lock;
pub mod oci;
pub mod records;
pub mod store;
pub mod store_dir;
pub mod tarsplit;
