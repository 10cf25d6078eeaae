//! Property tests: for any archive the generator makes, tar-split disassembly and reassembly
//! give it back byte for byte, and the one parser accounts for every byte of it.
//!
//! The generator makes entries of every kind (files of random contents and sizes, 0 and
//! multiples of 512 included, directories, symbolic and hard links, fifos, devices, PAX
//! global headers, sparse files in PAX 1.0 and old-GNU form), names that need PAX or GNU
//! long-name records or are not UTF-8, PAX xattrs, IDs too big for the header fields, and
//! ends the archive with both end blocks and junk after them, one block, or none.

use std::collections::HashMap;

use proptest::collection::vec;
use proptest::prelude::*;
use std::io::Read;

use storage_archive::{ParsedTar, TarStreamReader};
use storage_driver::parsed_tar::{Outline, ParsedTarStream, Piece, SharedParsedTar};

use super::test_tar::{header, TestTar};
use super::tests::MemFiles;
use super::{disassemble, reassemble, Disassembler, TarSplitEntry, TarSplitReader};

/// How an entry's name reaches the reader.
#[derive(Debug, Clone, Copy)]
enum NameForm {
    /// In the header block.
    Header,
    /// In a PAX `path` record (the block has a placeholder).
    Pax,
    /// In a GNU long-name (`L`) header.
    Gnu,
}

#[derive(Debug, Clone)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    HardLink(Vec<u8>),
    Fifo,
    Device {
        block: bool,
        major: u64,
        minor: u64,
    },
    /// Regions as (hole before, data).
    SparsePax1 {
        regions: Vec<(u64, Vec<u8>)>,
        tail: u64,
    },
    SparseOldGnu {
        regions: Vec<(u64, Vec<u8>)>,
        tail: u64,
    },
    Global(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Entry {
    /// The name after the entry's unique prefix.
    name: Vec<u8>,
    form: NameForm,
    kind: Kind,
    owner: (u64, u64),
    /// Owners carried in PAX records, beyond the header fields.
    big_owner: Option<(u64, u64)>,
    xattrs: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone)]
enum End {
    Missing,
    OneBlock,
    /// Both end blocks, then junk.
    TwoBlocks(Vec<u8>),
}

fn contents() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(0usize),
        1usize..1200,
        (1usize..4).prop_map(|blocks| blocks * 512),
    ]
    .prop_flat_map(|len| vec(any::<u8>(), len))
}

/// Name bytes: anything but NUL and `/` (so names stay one unique component), not always
/// UTF-8.
fn name(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
    vec(1u8..=255, len).prop_map(|mut n| {
        n.iter_mut().filter(|b| **b == b'/').for_each(|b| *b = b'_');
        n
    })
}

fn regions(count: std::ops::Range<usize>) -> impl Strategy<Value = Vec<(u64, Vec<u8>)>> {
    vec((0u64..2000, vec(any::<u8>(), 0..700)), count)
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => contents().prop_map(Kind::File),
        1 => Just(Kind::Dir),
        1 => name(1..60).prop_map(Kind::Symlink),
        1 => name(1..60).prop_map(Kind::HardLink),
        1 => Just(Kind::Fifo),
        1 => (any::<bool>(), 0u64..4096, 0u64..4096)
            .prop_map(|(block, major, minor)| Kind::Device { block, major, minor }),
        1 => (regions(0..8), 0u64..3000)
            .prop_map(|(regions, tail)| Kind::SparsePax1 { regions, tail }),
        1 => (regions(0..30), 0u64..3000)
            .prop_map(|(regions, tail)| Kind::SparseOldGnu { regions, tail }),
        1 => vec(b'a'..=b'z', 0..40).prop_map(Kind::Global),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    let form = prop_oneof![
        3 => Just(NameForm::Header),
        1 => Just(NameForm::Pax),
        1 => Just(NameForm::Gnu),
    ];
    (form, kind(), (0u64..0o7777777, 0u64..0o7777777))
        .prop_flat_map(|(form, kind, owner)| {
            let long = !matches!(form, NameForm::Header);
            let name = if long { name(100..300) } else { name(0..60) };
            let big = prop_oneof![
                3 => Just(None),
                1 => (0o10000000u64..=u64::from(u32::MAX), 0o10000000u64..=u64::from(u32::MAX))
                    .prop_map(Some),
            ];
            let xattrs = vec(
                (
                    "[a-z]{1,8}".prop_map(|k| format!("user.{k}")),
                    vec(any::<u8>(), 0..40),
                ),
                0..3,
            );
            (Just(form), Just(kind), Just(owner), name, big, xattrs)
        })
        .prop_map(|(form, kind, owner, name, big_owner, xattrs)| Entry {
            name,
            form,
            kind,
            owner,
            big_owner,
            xattrs,
        })
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        Just(End::Missing),
        Just(End::OneBlock),
        vec(any::<u8>(), 0..700).prop_map(End::TwoBlocks),
    ]
}

/// A sparse file laid out: its regions where they are, its size, its content.
struct Sparse<'a> {
    placed: Vec<(u64, &'a [u8])>,
    real_size: u64,
    /// Zeros, with the regions' data where they are.
    content: Vec<u8>,
}

fn expand(regions: &[(u64, Vec<u8>)], tail: u64) -> Sparse<'_> {
    let mut placed = Vec::new();
    let mut content = Vec::new();
    for (hole, data) in regions {
        content.resize(content.len() + *hole as usize, 0);
        placed.push((content.len() as u64, &data[..]));
        content.extend_from_slice(data);
    }
    content.resize(content.len() + tail as usize, 0);
    Sparse {
        placed,
        real_size: content.len() as u64,
        content,
    }
}

/// The archive of `entries`, and the files of the layer it makes, by the names tar-split
/// records.
fn build(entries: &[Entry], end: &End) -> (Vec<u8>, MemFiles) {
    let mut t = TestTar::default();
    let mut files = MemFiles(HashMap::new());
    for (i, e) in entries.iter().enumerate() {
        let mut full = format!("e{i}_").into_bytes();
        full.extend_from_slice(&e.name);
        match &e.kind {
            Kind::SparsePax1 { regions, tail } => {
                let sparse = expand(regions, *tail);
                t.sparse_pax1(&full, sparse.real_size, &sparse.placed);
                files.0.insert(full, sparse.content);
                continue;
            }
            Kind::SparseOldGnu { regions, tail } => {
                let sparse = expand(regions, *tail);
                full.truncate(99);
                t.sparse_old_gnu(&full, sparse.real_size, &sparse.placed);
                files.0.insert(full, sparse.content);
                continue;
            }
            Kind::Global(comment) => {
                t.global_pax(&[("path", &full), ("comment", comment)]);
                continue;
            }
            _ => {}
        }
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        if let NameForm::Pax = e.form {
            records.push(("path".into(), full.clone()));
        }
        if let Some((uid, gid)) = e.big_owner {
            records.push(("uid".into(), uid.to_string().into_bytes()));
            records.push(("gid".into(), gid.to_string().into_bytes()));
        }
        for (key, value) in &e.xattrs {
            records.push((format!("SCHILY.xattr.{key}"), value.clone()));
        }
        if !records.is_empty() {
            let borrowed: Vec<(&str, &[u8])> = records
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            t.pax(&borrowed);
        }
        if let NameForm::Gnu = e.form {
            t.gnu_long_name(&full);
        }
        let in_block = match e.form {
            NameForm::Header => full.clone(),
            NameForm::Pax | NameForm::Gnu => format!("placeholder{i}").into_bytes(),
        };
        let gnu = matches!(e.form, NameForm::Gnu);
        let (typeflag, link, data): (u8, &[u8], &[u8]) = match &e.kind {
            Kind::File(data) => (b'0', b"", data),
            Kind::Dir => (b'5', b"", b""),
            Kind::Symlink(target) => (b'2', target, b""),
            Kind::HardLink(target) => (b'1', target, b""),
            Kind::Fifo => (b'6', b"", b""),
            Kind::Device {
                block,
                major,
                minor,
            } => {
                t.device(&in_block, if *block { b'4' } else { b'3' }, *major, *minor);
                continue;
            }
            Kind::SparsePax1 { .. } | Kind::SparseOldGnu { .. } | Kind::Global(_) => continue,
        };
        let h = header(&in_block, typeflag, data.len() as u64, e.owner, link, gnu);
        t.raw(&h);
        t.raw(data);
        t.raw(&vec![0u8; (512 - data.len() % 512) % 512]);
        if !data.is_empty() {
            files.0.insert(full, data.to_vec());
        }
    }
    match end {
        End::Missing => {}
        End::OneBlock => {
            t.raw(&[0u8; 512]);
        }
        End::TwoBlocks(junk) => {
            t.end().raw(junk);
        }
    }
    (t.bytes, files)
}

fn records(tarsplit: &[u8]) -> Vec<TarSplitEntry> {
    TarSplitReader::new(tarsplit)
        .collect::<super::Result<Vec<_>>>()
        .expect("a tar-split just written reads back")
}

// 256 cases each (proptest's default; PROPTEST_CASES=N for a longer run).
proptest! {
    #[test]
    fn disassembly_then_reassembly_is_byte_identical(
        entries in vec(entry(), 0..10),
        end in end(),
        pieces in vec(1usize..2000, 1..20),
    ) {
        let (tar, mut files) = build(&entries, &end);

        let mut tarsplit = Vec::new();
        let (_, read) = disassemble(&tar[..], &mut tarsplit).expect("disassemble");
        prop_assert_eq!(read, tar.len() as u64);
        let mut out = Vec::new();
        let written = reassemble(&tarsplit[..], &mut files, &mut out).expect("reassemble");
        prop_assert_eq!(written, tar.len() as u64);
        prop_assert!(out == tar, "reassembled tar differs");

        // The same records whatever pieces the stream comes in.
        let mut fed = Disassembler::new(Vec::new());
        let mut rest = &tar[..];
        for size in pieces.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at((*size).min(rest.len()));
            fed.feed(now).expect("feed");
            rest = later;
        }
        let (fed, _) = fed.finish().expect("finish");
        prop_assert_eq!(records(&fed), records(&tarsplit));
    }

    #[test]
    fn the_parser_accounts_for_every_byte(
        entries in vec(entry(), 0..10),
        end in end(),
    ) {
        let (tar, _) = build(&entries, &end);
        let mut reader = TarStreamReader::new(&tar[..]).with_raw_accounting();
        // Raw bytes and payload, in stream order, then what follows the archive.
        let mut seen = Vec::new();
        let (mut raw, mut payload) = (0usize, 0usize);
        let mut buf = [0u8; 1000];
        while reader.next_entry().expect("entry").is_some() {
            let headers = reader.take_raw();
            raw += headers.len();
            seen.extend_from_slice(&headers);
            loop {
                let n = reader.read_payload(&mut buf).expect("payload");
                if n == 0 {
                    break;
                }
                payload += n;
                seen.extend_from_slice(&buf[..n]);
            }
        }
        let last = reader.take_raw();
        raw += last.len();
        seen.extend_from_slice(&last);
        let after = reader.into_inner();
        prop_assert_eq!(raw + payload + after.len(), tar.len());
        seen.extend_from_slice(after);
        prop_assert!(seen == tar, "raw and payload bytes are not the archive");
        // Only junk after the two end blocks is left to the caller.
        match end {
            End::TwoBlocks(junk) => prop_assert_eq!(after, &junk[..]),
            End::Missing | End::OneBlock => prop_assert!(after.is_empty()),
        }
    }

    #[test]
    fn the_outline_is_the_stream_with_the_parsers_headers(
        entries in vec(entry(), 0..10),
        end in end(),
        pieces in vec(1usize..2000, 1..20),
    ) {
        let (tar, _) = build(&entries, &end);
        // What the one parser reads, entry by entry: each header and its payload.
        let mut expected = Vec::new();
        let mut reader = TarStreamReader::new(&tar[..]);
        while let Some(header) = reader.next_entry().expect("entry") {
            let mut payload = vec![0u8; reader.payload_remaining() as usize];
            let mut filled = 0;
            while filled < payload.len() {
                filled += reader.read_payload(&mut payload[filled..]).expect("payload");
            }
            expected.push((header, payload));
        }

        // The same tar fed in pieces and outlined, as an import hands it on.
        let (outlines, received) = std::sync::mpsc::channel();
        let mut disassembler = Disassembler::new(Vec::new());
        let mut rest = &tar[..];
        for size in pieces.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at((*size).min(rest.len()));
            let mut cut = Vec::new();
            disassembler.feed_outlined(now, &mut cut).expect("feed");
            // The byte pieces cover the chunk, in order.
            let mut at = 0;
            for piece in &cut {
                if let Piece::Raw(r) | Piece::Payload(r) = piece {
                    prop_assert_eq!(r.start, at);
                    at = r.end;
                }
            }
            prop_assert_eq!(at, now.len());
            outlines.send(Outline { chunk: std::sync::Arc::new(now.to_vec()), pieces: cut }).expect("send");
            rest = later;
        }
        if !disassembler.ended() {
            outlines.send(Outline { chunk: Default::default(), pieces: vec![Piece::End] }).expect("send");
        }
        disassembler.finish().expect("finish");
        drop(outlines);
        let stream = SharedParsedTar::new(ParsedTarStream::new(received));

        // Read as entries: the parser's headers and payloads.
        let mut entries_read = Vec::new();
        let mut parsed = stream.clone();
        while let Some(header) = parsed.next_header().expect("header") {
            let mut payload = vec![0u8; header.stored_size() as usize];
            parsed.read_exact(&mut payload).expect("payload");
            entries_read.push((header, payload));
        }
        prop_assert_eq!(entries_read, expected);
        // Read on as bytes: what follows the archive.
        let mut after = Vec::new();
        parsed.read_to_end(&mut after).expect("rest");
        prop_assert_eq!(stream.delivered(), tar.len() as u64);
        match end {
            End::TwoBlocks(junk) => prop_assert_eq!(after, junk),
            End::Missing | End::OneBlock => prop_assert!(after.is_empty()),
        }
    }
}
