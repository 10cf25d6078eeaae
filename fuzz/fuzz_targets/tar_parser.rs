//! The tar header parser (`storage_archive::tar_parser::TarParser`, PAX, GNU long names, the
//! three sparse formats) driven as its module documentation says, and the pull reader over
//! it (`TarStreamReader`) with raw accounting and short reads.
//!
//! Checked: no panic; the parser never asks for more than one metadata record at once; after
//! input that ended short it is done; raw bytes plus payload are exactly the input consumed,
//! for both drivers; an entry's announced payload is its stored size; both drivers see the
//! same entries, the same outcome and the same raw bytes.
//!
//! Input: two bytes of reader settings (the seed of the short reads and whether to read every
//! payload; the largest read), then the tar. The three tar targets read the same shape, so
//! they share the seeds in seeds/tar/.

#![no_main]

use libfuzzer_sys::fuzz_target;
use storage_archive::tar_parser::{Need, TarEntryHeader, TarParser, MAX_SPECIAL_FILE_SIZE};
use storage_archive::TarStreamReader;
use storage_fuzz::ChunkedReader;

/// The most the parser may ask for at once: one metadata record (padding and a header block
/// are less).
const MAX_NEED: usize = MAX_SPECIAL_FILE_SIZE as usize;

struct Outcome {
    entries: Vec<TarEntryHeader>,
    raw: Vec<u8>,
    ok: bool,
    consumed: usize,
}

fn check_entry(entry: &TarEntryHeader, announced: u64) {
    assert_eq!(
        announced,
        entry.stored_size(),
        "payload announced differs from the entry's stored size: {entry:?}"
    );
    if let Some(map) = &entry.sparse {
        let mut end = 0u64;
        for r in &map.regions {
            assert!(r.offset >= end, "sparse regions out of order: {map:?}");
            end = r
                .offset
                .checked_add(r.length)
                .expect("region end overflows");
            assert!(
                end <= map.real_size,
                "sparse region beyond the size: {map:?}"
            );
        }
        assert_eq!(
            entry.size, map.real_size,
            "sparse entry size is not its real size"
        );
    }
}

/// The sans-I/O driver: exactly the bytes asked for, payload passed over in one step.
fn drive_parser(tar: &[u8]) -> Outcome {
    let mut parser = TarParser::new();
    let mut pos = 0usize;
    let mut raw = Vec::new();
    let mut payload = 0usize;
    let mut entries = Vec::new();
    let ok = loop {
        match parser.need() {
            Need::Done => break true,
            Need::Raw { len, .. } => {
                assert!(len > 0 && len <= MAX_NEED, "parser asked for {len} bytes");
                let take = len.min(tar.len() - pos);
                let bytes = &tar[pos..pos + take];
                pos += take;
                raw.extend_from_slice(bytes);
                match parser.push_raw(bytes) {
                    Ok(Some(entry)) => {
                        check_entry(&entry, parser.payload_remaining());
                        entries.push(entry);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = e.to_string();
                        assert!(parser.is_done(), "a parser that failed goes on");
                        break false;
                    }
                }
                if take < len {
                    assert!(parser.is_done(), "short input did not end the archive");
                }
            }
            Need::Payload(n) => {
                assert!(n > 0, "a payload of 0 bytes announced");
                assert_eq!(n, parser.payload_remaining());
                let take = usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .min(tar.len() - pos);
                if take == 0 {
                    break false; // the input ended inside the payload
                }
                parser.consume_payload(take as u64);
                pos += take;
                payload += take;
            }
        }
    };
    assert_eq!(raw.len() + payload, pos, "parser accounting");
    Outcome {
        entries,
        raw,
        ok,
        consumed: pos,
    }
}

/// The pull reader with raw accounting over short reads (of at most `max_read` bytes);
/// `read_all` reads every payload, otherwise only a part of each (the reader skips the rest,
/// keeping it as raw).
fn drive_reader(tar: &[u8], seed: u64, max_read: usize, read_all: bool) -> Outcome {
    let mut reader =
        TarStreamReader::new(ChunkedReader::new(tar, seed, max_read)).with_raw_accounting();
    let mut raw = Vec::new();
    let mut payload = 0usize;
    let mut entries = Vec::new();
    let mut buf = [0u8; 1000];
    let ok = 'entries: loop {
        match reader.next_entry() {
            Ok(None) => break true,
            Ok(Some(entry)) => {
                check_entry(&entry, reader.payload_remaining());
                let want = if read_all {
                    u64::MAX
                } else {
                    entry.stored_size() / 2
                };
                entries.push(entry);
                let mut got = 0u64;
                while got < want {
                    match reader.read_payload(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            got += n as u64;
                            payload += n;
                        }
                        Err(e) => {
                            let _ = e.to_string();
                            raw.extend(reader.take_raw());
                            break 'entries false;
                        }
                    }
                }
            }
            Err(e) => {
                let _ = e.to_string();
                break false;
            }
        }
        raw.extend(reader.take_raw());
    };
    raw.extend(reader.take_raw());
    let consumed = reader.into_inner().position;
    assert_eq!(raw.len() + payload, consumed, "reader accounting");
    Outcome {
        entries,
        raw,
        ok,
        consumed,
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (settings, max_read, tar) = (data[0], 1 + usize::from(data[1]) * 8, &data[2..]);
    let sans = drive_parser(tar);
    let pulled = drive_reader(tar, u64::from(settings), max_read, settings & 1 == 0);
    assert_eq!(
        (sans.ok, sans.entries.len()),
        (pulled.ok, pulled.entries.len()),
        "the two drivers disagree on the outcome"
    );
    assert_eq!(
        sans.entries, pulled.entries,
        "the two drivers disagree on the entries"
    );
    if settings & 1 == 0 {
        // Reading every payload, the reader keeps exactly what the parser was given.
        assert_eq!(sans.consumed, pulled.consumed);
        assert!(sans.raw == pulled.raw, "raw bytes differ");
    }
});
