//! Round trips and the records of the tar-split parts together.

use std::collections::HashMap;
use std::io::{Read, Write};

use crc_fast::CrcAlgorithm;
use storage_driver::{DriverError, FileGetter};

use super::test_tar::{header, varied, TestTar};
use super::*;

/// Files of a layer held in memory, served by raw name.
#[derive(Default)]
pub(super) struct MemFiles(pub(super) HashMap<Vec<u8>, Vec<u8>>);

impl FileGetter for MemFiles {
    fn get(&mut self, path: &[u8]) -> storage_driver::DriverResult<Box<dyn Read + '_>> {
        match self.0.get(path) {
            Some(data) => Ok(Box::new(&data[..])),
            None => Err(DriverError::LayerNotFound(
                String::from_utf8_lossy(path).into_owned(),
            )),
        }
    }
}

/// The file contents of a tar, by the names tar-split records (read back with the
/// `tar` crate, an independent parser).
fn files_of(tar_bytes: &[u8]) -> MemFiles {
    let mut files = MemFiles::default();
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = entry.path_bytes().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("content");
        files.0.insert(name, data);
    }
    files
}

fn entries_of(tarsplit: &[u8]) -> Vec<TarSplitEntry> {
    TarSplitReader::new(tarsplit)
        .collect::<Result<Vec<_>>>()
        .expect("read back")
}

fn split(tar_bytes: &[u8]) -> (Vec<u8>, IdSets) {
    let mut out = Vec::new();
    let (ids, read) = disassemble(tar_bytes, &mut out).expect("disassemble");
    assert_eq!(read, tar_bytes.len() as u64);
    (out, ids)
}

fn reassembled(tarsplit: &[u8], files: &mut MemFiles) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let n = reassemble(tarsplit, files, &mut out)?;
    assert_eq!(n, out.len() as u64);
    Ok(out)
}

#[test]
fn varied_tar_reassembles_byte_for_byte() {
    let mut t = varied();
    t.raw(b"trailing junk after the end");
    let (ts, ids) = split(&t.bytes);
    let mut files = files_of(&t.bytes);
    assert_eq!(reassembled(&ts, &mut files).expect("reassemble"), t.bytes);
    assert_eq!(ids.uids, vec![0, 5, 1000, 70000]);
    assert_eq!(ids.gids, vec![0, 6, 1001, 70001]);
}

#[test]
fn segments_are_cut_where_go_cuts_them() {
    let mut t = TestTar::default();
    t.file(b"a", b"12345", (0, 0))
        .dir(b"d/", (0, 0))
        .end()
        .raw(b"junk");
    let (ts, _) = split(&t.bytes);
    let entries = entries_of(&ts);
    let a_header = t.bytes[..512].to_vec();
    let mut pad_and_d = vec![0u8; 507];
    pad_and_d.extend_from_slice(&t.bytes[1024..1536]);
    let crc = crc_fast::checksum(CrcAlgorithm::Crc64GoIso, b"12345").to_be_bytes();
    assert_eq!(
        entries,
        vec![
            TarSplitEntry::Segment(a_header),
            TarSplitEntry::File {
                name: b"a".to_vec(),
                size: 5,
                crc: Some(crc)
            },
            TarSplitEntry::Segment(pad_and_d),
            TarSplitEntry::File {
                name: b"d/".to_vec(),
                size: 0,
                crc: None
            },
            TarSplitEntry::Segment(vec![0u8; 1024]),
            TarSplitEntry::Segment(b"junk".to_vec()),
        ]
    );
}

#[test]
fn feeding_byte_by_byte_records_the_same() {
    let mut t = varied();
    t.raw(&[0u8; 3000]);
    let (whole, ids) = split(&t.bytes);
    let mut piecewise = Disassembler::new(Vec::new());
    for byte in &t.bytes {
        piecewise.feed(std::slice::from_ref(byte)).expect("feed");
    }
    let (out, ids2) = piecewise.finish().expect("finish");
    assert_eq!(entries_of(&whole), entries_of(&out));
    assert_eq!(ids, ids2);
}

#[test]
fn large_trailing_data_is_chunked() {
    let mut t = TestTar::default();
    t.file(b"f", b"x", (0, 0)).end();
    let junk_len = TRAILING_CHUNK * 2 + 10;
    t.raw(&vec![0xAB; junk_len]);
    let (ts, _) = split(&t.bytes);
    let sizes: Vec<usize> = entries_of(&ts)
        .iter()
        .filter_map(|e| match e {
            TarSplitEntry::Segment(s) => Some(s.len()),
            _ => None,
        })
        .collect();
    assert_eq!(
        sizes,
        vec![512, 511 + 1024, TRAILING_CHUNK, TRAILING_CHUNK, 10]
    );
    let mut files = files_of(&t.bytes);
    assert_eq!(reassembled(&ts, &mut files).expect("reassemble"), t.bytes);
}

#[test]
fn tampered_file_fails_the_checksum() {
    let t = varied();
    let (ts, _) = split(&t.bytes);
    let mut files = files_of(&t.bytes);
    files.0.insert(b"d/a".to_vec(), b"HELLO\n".to_vec());
    let err = reassembled(&ts, &mut files).expect_err("tampered");
    assert_eq!(
        err.to_string(),
        "file integrity checksum failed for \"d/a\""
    );
}

#[test]
fn missing_file_is_reported_with_its_name() {
    let t = varied();
    let (ts, _) = split(&t.bytes);
    let mut files = files_of(&t.bytes);
    files.0.remove(&b"d/block"[..]);
    let err = reassembled(&ts, &mut files).expect_err("missing");
    assert!(matches!(err, TarSplitError::File { ref name, .. } if name == "d/block"));
}

#[test]
fn repeated_paths_are_refused() {
    let mut t = TestTar::default();
    t.file(b"./a/b", b"1", (0, 0))
        .file(b"a//b/", b"2", (0, 0))
        .end();
    let err = disassemble(&t.bytes[..], Vec::new()).expect_err("duplicate");
    assert!(matches!(err, TarSplitError::DuplicatePath(ref p) if p == "a//b/"));
}

#[test]
fn truncated_and_malformed_tars_are_refused() {
    let t = varied();
    for cut in [100, 600, 1027] {
        let err = disassemble(&t.bytes[..cut], Vec::new()).expect_err("truncated");
        assert!(
            matches!(err, TarSplitError::UnexpectedEof),
            "cut {cut}: {err}"
        );
    }
    let mut bad = header(b"f", b'0', 0, (0, 0), b"", false);
    bad[148] = b'7';
    let err = disassemble(&bad[..], Vec::new()).expect_err("checksum");
    assert!(matches!(err, TarSplitError::InvalidHeader(_)));
    let mut zero_then_data = vec![0u8; 512];
    zero_then_data.extend_from_slice(&header(b"f", b'0', 0, (0, 0), b"", false));
    let err = disassemble(&zero_then_data[..], Vec::new()).expect_err("zero block");
    assert!(matches!(err, TarSplitError::InvalidHeader(_)));
    // An old-GNU sparse entry is recorded (Go's fork crashes on it), an `S` header that
    // is not GNU is not one.
    let sparse = header(b"s", b'S', 0, (0, 0), b"", true);
    disassemble(&sparse[..], Vec::new()).expect("an empty old-GNU sparse file");
    let not_gnu = header(b"s", b'S', 0, (0, 0), b"", false);
    let err = disassemble(&not_gnu[..], Vec::new()).expect_err("sparse");
    assert!(matches!(err, TarSplitError::InvalidHeader(_)), "{err}");
}

#[test]
fn tar_without_end_blocks_still_reassembles() {
    let mut t = TestTar::default();
    t.file(b"f", b"abc", (0, 0));
    let (ts, _) = split(&t.bytes);
    let mut files = files_of(&t.bytes);
    assert_eq!(reassembled(&ts, &mut files).expect("reassemble"), t.bytes);
}

#[test]
fn mutated_tars_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let base = varied().bytes;
    for _ in 0..3000 {
        let mut t = base.clone();
        for _ in 0..rng.random_range(1..6) {
            let at = rng.random_range(0..t.len());
            t[at] = rng.random();
        }
        let cut = rng.random_range(0..=t.len());
        // Errors are fine; panics and hangs are not. What is accepted accounts for
        // no more bytes than it was given.
        let mut ts = Vec::new();
        if disassemble(&t[..cut], &mut ts).is_ok() {
            let segments: usize = entries_of(&ts)
                .iter()
                .map(|e| match e {
                    TarSplitEntry::Segment(s) => s.len(),
                    TarSplitEntry::File { .. } => 0,
                })
                .sum();
            assert!(segments <= cut);
        }
    }
}

#[test]
fn decompressed_tarsplit_is_read_too() {
    let t = varied();
    let (ts, _) = split(&t.bytes);
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(&ts[..])
        .read_to_end(&mut plain)
        .expect("gunzip");
    assert_eq!(entries_of(&plain), entries_of(&ts));
    let mut files = files_of(&t.bytes);
    assert_eq!(
        reassembled(&plain, &mut files).expect("reassemble"),
        t.bytes
    );
}

#[test]
fn corrupt_tarsplit_is_reported() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"{\"type\":9,\"payload\":null,\"position\":0}\n")
        .expect("write");
    let data = gz.finish().expect("finish");
    let err = TarSplitReader::new(&data[..])
        .next()
        .expect("one")
        .expect_err("bad type");
    assert!(matches!(err, TarSplitError::Corrupt(_)));
}
