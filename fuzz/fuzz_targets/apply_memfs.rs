//! Applying a layer (`storage_archive::apply_layer`) onto an in-memory tree
//! (`storage_archive::memfs::MemFs` with the archive contract checked on every call).
//!
//! Checked: no panic; every path handed to the filesystem is clean; afterwards every node is
//! at a clean path below a directory (nothing outside the root); an error is an
//! `ArchiveError` that displays; on success the returned size is the sum of the entries'
//! size fields.
//!
//! Input: two bytes of apply options (whiteout format, rootless, forced mode, an ID
//! mapping, ignored chown errors, skipped device nodes, chown refused), then the tar; the
//! shape of the other tar targets, whose seeds (seeds/tar/) it shares.

#![no_main]

use libfuzzer_sys::fuzz_target;
use storage_archive::{apply_layer, ApplyOptions, IdMapping, IdRange, WhiteoutFormat};
use storage_fuzz::{base_tree, check_tree, CheckedFs};

fn options(a: u8, b: u8) -> ApplyOptions {
    let range = IdRange {
        container_id: 0,
        host_id: 100_000,
        size: 65_536,
    };
    ApplyOptions {
        whiteout_format: if a & 1 == 0 {
            WhiteoutFormat::Aufs
        } else {
            WhiteoutFormat::Overlay
        },
        rootless_overlay: a & 2 != 0,
        id_mapping: if a & 4 != 0 {
            IdMapping {
                uids: vec![range],
                gids: vec![range],
            }
        } else {
            IdMapping::default()
        },
        force_mask: (a & 8 != 0).then_some(0o700 | u32::from(b) << 3 & 0o7777),
        ignore_chown_errors: a & 16 != 0,
        skip_device_nodes: a & 32 != 0,
    }
}

/// The sum of the size fields, as `apply_layer` reports it, read independently.
fn size_sum(tar: &[u8]) -> Option<u64> {
    let mut reader = storage_archive::TarStreamReader::new(tar);
    let mut sum = 0u64;
    while let Some(entry) = reader.next_entry().ok()? {
        sum = sum.saturating_add(entry.size);
    }
    Some(sum)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (a, b, tar) = (data[0], data[1], &data[2..]);
    let opts = options(a, b);
    let mut fs = CheckedFs { inner: base_tree() };
    fs.inner.deny_chown = a & 64 != 0;
    // `MemFs` reads from a `dyn Read + 'static`.
    let mut input = std::io::Cursor::new(tar.to_vec());
    match apply_layer(&mut fs, &mut input, &opts) {
        Ok(size) => {
            assert_eq!(
                Some(size),
                size_sum(tar),
                "applied size is not the sum of sizes"
            );
        }
        Err(e) => {
            let _ = e.to_string();
            let _ = std::error::Error::source(&e).map(ToString::to_string);
        }
    }
    check_tree(&fs.inner);
});
