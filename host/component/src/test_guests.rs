//! The WebAssembly components the tests load: the test guests (`host/guests/`) and the vfs
//! driver, built on first use by a nested cargo (not by the build script: a release never
//! compiles them), once per test process.

use std::path::Path;
use std::sync::OnceLock;

use storage_wasm_build::ComponentCrate;

const CRATES: &[ComponentCrate] = &[
    ComponentCrate {
        package: "storage-test-guest-hostile",
        file: "storage_test_guest_hostile.wasm",
    },
    ComponentCrate {
        package: "storage-test-guest-fs-importer",
        file: "storage_test_guest_fs_importer.wasm",
    },
    ComponentCrate {
        package: "storage-test-guest-example-driver",
        file: "storage_test_guest_example_driver.wasm",
    },
    ComponentCrate {
        package: "storage-test-guest-hostile-driver",
        file: "storage_test_guest_hostile_driver.wasm",
    },
    ComponentCrate {
        package: "storage-vfs-component",
        file: "storage_vfs_component.wasm",
    },
];

/// The bytes of the component built from `package` (one of [`CRATES`]); panics (a test
/// failure) when it cannot be built.
pub fn wasm(package: &str) -> &'static [u8] {
    static BUILT: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let paths =
            storage_wasm_build::build(&root, CRATES, &storage_wasm_build::target_dir_for_tests())
                .unwrap_or_else(|e| panic!("{e}"));
        CRATES
            .iter()
            .zip(paths)
            .map(|(c, path)| {
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                (c.package, bytes)
            })
            .collect()
    });
    built
        .iter()
        .find(|(p, _)| *p == package)
        .map(|(_, bytes)| bytes.as_slice())
        .unwrap_or_else(|| panic!("{package} is not a test component"))
}

/// `tar` handed on as an import hands it ([`storage_driver::parsed_tar`]), with every byte
/// that is not payload zeroed: whoever parsed the bytes would find two zero blocks, an empty
/// archive, so what gets applied can only come from the headers.
pub fn blank_outlined(tar: &[u8]) -> storage_driver::parsed_tar::SharedParsedTar {
    use std::sync::Arc;
    use storage_driver::parsed_tar::{Outline, ParsedTarStream, Piece, SharedParsedTar};
    let mut reader = storage_archive::TarStreamReader::new(tar).with_raw_accounting();
    let mut bytes = Vec::new();
    let mut pieces = Vec::new();
    let blank = |bytes: &mut Vec<u8>, pieces: &mut Vec<Piece>, len: usize| {
        pieces.push(Piece::Raw(bytes.len()..bytes.len() + len));
        bytes.resize(bytes.len() + len, 0);
    };
    while let Some(header) = reader.next_entry().expect("a well-formed test tar") {
        let raw = reader.take_raw().len();
        blank(&mut bytes, &mut pieces, raw);
        pieces.push(Piece::Header(Box::new(header)));
        let start = bytes.len();
        let mut buf = [0u8; 4096];
        loop {
            let n = reader
                .read_payload(&mut buf)
                .expect("a well-formed test tar");
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&buf[..n]);
        }
        pieces.push(Piece::Payload(start..bytes.len()));
    }
    let end = reader.take_raw().len();
    blank(&mut bytes, &mut pieces, end);
    pieces.push(Piece::End);
    let (outlines, receiver) = std::sync::mpsc::sync_channel(1);
    outlines
        .send(Outline {
            chunk: Arc::new(bytes),
            pieces,
        })
        .expect("the receiver is here");
    SharedParsedTar::new(ParsedTarStream::new(receiver))
}
