//! tar-split end to end: `storage_store::tarsplit::Disassembler` fed the tar in pieces, then
//! `reassemble` with the files served from the tar itself and from what `apply_layer`
//! extracted of it.
//!
//! Checked: no panic; the records do not depend on how the tar was cut into pieces
//! (`Disassembler` in pieces and `disassemble` agree); the outline an import hands on
//! (`feed_outlined`) covers every byte fed, in order, and its headers are the one parser's
//! (all of them when the disassembly succeeded, a prefix when it failed, at most one end);
//! when the disassembly succeeded, the
//! tar parses to its end, and reassembly from its own files gives it back byte for byte;
//! reassembly from the extracted tree gives it back byte for byte or fails on a file (one
//! removed or changed by a later entry, as in Go), never otherwise.
//!
//! Input: two bytes, the seed of the piece sizes and the largest piece, then the tar (the
//! shape of the other tar targets, whose seeds it shares).

#![no_main]

use libfuzzer_sys::fuzz_target;
use storage_archive::{apply_layer, ApplyOptions, TarEntryHeader, TarStreamReader};
use storage_driver::parsed_tar::Piece;
use storage_fuzz::{base_tree, tar_files, CheckedFs, MapGetter, MemFsGetter, Rng};
use storage_store::tarsplit::{
    disassemble, reassemble, Disassembler, TarSplitEntry, TarSplitError, TarSplitReader,
};

fn records(tarsplit: &[u8]) -> Vec<TarSplitEntry> {
    TarSplitReader::new(tarsplit)
        .collect::<Result<_, _>>()
        .expect("a tar-split just written reads back")
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (seed, max_piece, tar) = (data[0], 1 + usize::from(data[1]) * 8, &data[2..]);
    let mut rng = Rng::new(u64::from(seed));
    let mut disassembler = Disassembler::new(Vec::new());
    let mut rest = tar;
    let mut fed = Ok(());
    let mut outlined: Vec<TarEntryHeader> = Vec::new();
    let mut ends = 0;
    while !rest.is_empty() && fed.is_ok() {
        let n = rng.size(max_piece).min(rest.len());
        let start = disassembler.position();
        let mut cut = Vec::new();
        fed = disassembler.feed_outlined(&rest[..n], &mut cut);
        // The byte pieces cover what was taken in, in order.
        let taken = usize::try_from(disassembler.position() - start).expect("a piece's length");
        let mut at = 0;
        for piece in cut {
            match piece {
                Piece::Raw(r) | Piece::Payload(r) => {
                    assert_eq!(r.start, at, "outline pieces leave a gap or overlap");
                    at = r.end;
                }
                Piece::Header(h) => outlined.push(*h),
                Piece::End => ends += 1,
                Piece::Refused(_) => panic!("the disassembler outlines no refusal"),
            }
        }
        assert_eq!(at, taken, "the outline does not cover the bytes taken in");
        assert!(fed.is_err() || taken == n, "bytes fed but not taken in");
        rest = &rest[n..];
    }
    assert!(ends <= 1, "more than one end");
    let pieces = fed.and_then(|()| disassembler.finish());
    // The outline's headers are the parser's, as far as the disassembly went.
    let mut parsed = Vec::new();
    let mut reader = TarStreamReader::new(tar);
    while let Ok(Some(header)) = reader.next_entry() {
        parsed.push(header);
    }
    if pieces.is_ok() {
        assert!(
            outlined == parsed,
            "the outline's headers are not the parser's"
        );
    } else {
        assert!(
            parsed.starts_with(&outlined),
            "the outline's headers are not a prefix of the parser's"
        );
    }

    let mut whole = Vec::new();
    let tarsplit = match (pieces, disassemble(tar, &mut whole)) {
        (Ok((tarsplit, ids)), Ok((whole_ids, n))) => {
            assert_eq!(n, tar.len() as u64);
            assert_eq!(ids, whole_ids, "owner sets depend on the pieces");
            tarsplit
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string(), "errors depend on the pieces");
            return;
        }
        (a, b) => panic!(
            "the outcome depends on the pieces: {:?} / {:?}",
            a.map(|_| ()),
            b.map(|_| ())
        ),
    };
    assert_eq!(
        records(&tarsplit),
        records(&whole),
        "records depend on the pieces"
    );

    // From the tar's own files: byte for byte.
    let Some(files) = tar_files(tar) else {
        // Only a sparse file too large for memory stops this.
        return;
    };
    let mut out = Vec::new();
    let written = reassemble(&tarsplit[..], &mut MapGetter(files), &mut out)
        .unwrap_or_else(|e| panic!("reassembly from the tar's own files failed: {e}"));
    assert_eq!(written, out.len() as u64);
    assert!(out == tar, "reassembly differs from the tar");

    // From the tree the tar was applied to.
    let mut fs = CheckedFs { inner: base_tree() };
    // `MemFs` reads from a `dyn Read + 'static`.
    let mut input = std::io::Cursor::new(tar.to_vec());
    if apply_layer(&mut fs, &mut input, &ApplyOptions::default()).is_err() {
        return;
    }
    let mut out = Vec::new();
    match reassemble(&tarsplit[..], &mut MemFsGetter(&fs.inner), &mut out) {
        Ok(_) => assert!(out == tar, "reassembly from the applied tree differs"),
        Err(TarSplitError::File { .. } | TarSplitError::ChecksumMismatch(_)) => {}
        Err(e) => panic!("reassembly from the applied tree failed otherwise: {e}"),
    }
});
