//! Reading a tar-split file (`storage_store::tarsplit::TarSplitReader`) and reassembling a
//! tar from it (`reassemble`), on arbitrary bytes: a corrupt or hostile `.tar-split.gz` in a
//! store must give an error, not a crash or an unbounded allocation.
//!
//! Checked: no panic; the reader ends (every record or an error); reassembly reports the
//! bytes it wrote; its errors display.
//!
//! Input: one byte (bit 0: gzip the rest first, so that the JSON lines get through the
//! gzip path too), then the tar-split bytes. The layer's files are served from the input:
//! each name gets the bytes after the last `\n` of the input.

#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use storage_driver::{DriverResult, FileGetter};
use storage_fuzz::Counter;
use storage_store::tarsplit::{reassemble, TarSplitReader};

/// Every file has the same content.
struct SameContent<'a>(&'a [u8]);

impl FileGetter for SameContent<'_> {
    fn get(&mut self, _path: &[u8]) -> DriverResult<Box<dyn std::io::Read + '_>> {
        Ok(Box::new(self.0))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let gzipped;
    let input: &[u8] = if flags & 1 == 1 {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(body).expect("writing to memory");
        gzipped = encoder.finish().expect("writing to memory");
        &gzipped
    } else {
        body
    };
    for record in TarSplitReader::new(input) {
        match record {
            Ok(_) => {}
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        }
    }
    let content = match body.iter().rposition(|b| *b == b'\n') {
        Some(i) => &body[i + 1..],
        None => &[][..],
    };
    let mut out = Counter::default();
    match reassemble(input, &mut SameContent(content), &mut out) {
        Ok(n) => assert_eq!(n, out.0, "reassembly miscounted what it wrote"),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
