//! Writing tar-split: the records packed as Go's `jsonPacker` packs them.

use std::io::Write;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::seen::SeenPaths;
use crate::store_dir::StoreDir;

use super::{io_err, Result, TarSplitEntry};

/// Writes tar-split records: gzip (fastest level, as upstream's pgzip `BestSpeed`) of
/// JSON lines, rejecting repeated paths as Go's `jsonPacker` does.
///
/// The paths seen are kept in bounded memory, the older ones in a spill file (`seen.rs`),
/// where Go keeps every cleaned path as a string in a map.
pub struct TarSplitWriter<W: Write> {
    out: flate2::write::GzEncoder<W>,
    position: u64,
    seen: SeenPaths,
    line: Vec<u8>,
}

impl<W: Write> TarSplitWriter<W> {
    /// A writer packing into `out`, spilling the paths it has seen into the system's
    /// temporary directory if the archive has many.
    pub fn new(out: W) -> Self {
        Self::with_spill_dir(out, None)
    }

    /// A writer packing into `out`, spilling the paths it has seen into an unnamed file in
    /// `spill_dir` (the system's temporary directory if `None`) if the archive has many.
    pub fn with_spill_dir(out: W, spill_dir: Option<Arc<StoreDir>>) -> Self {
        TarSplitWriter {
            out: flate2::write::GzEncoder::new(out, flate2::Compression::fast()),
            position: 0,
            seen: SeenPaths::new(spill_dir),
            line: Vec::new(),
        }
    }

    /// Appends one record.
    pub fn add(&mut self, entry: &TarSplitEntry) -> Result<()> {
        if let TarSplitEntry::File { name, .. } = entry {
            self.seen.insert(&clean_path(name), name)?;
        }
        self.line.clear();
        encode_line(&mut self.line, entry, self.position);
        self.out
            .write_all(&self.line)
            .map_err(io_err("writing tar-split"))?;
        self.position += 1;
        Ok(())
    }

    /// Appends a raw segment.
    pub fn add_segment(&mut self, bytes: &[u8]) -> Result<()> {
        self.add(&TarSplitEntry::Segment(bytes.to_vec()))
    }

    /// How many records were written.
    pub fn records(&self) -> u64 {
        self.position
    }

    /// Refuses a path recorded twice that the bounded check has not seen yet, writes the gzip
    /// trailer and returns the underlying writer.
    pub fn finish(self) -> Result<W> {
        self.seen.finish()?;
        self.out.finish().map_err(io_err("finishing tar-split"))
    }
}

/// Encodes one record as Go's `json.Encoder` encodes `storage.Entry`, newline included:
/// fields in struct order, `name`/`name_raw`/`size` omitted when empty, `payload` null
/// when absent.
fn encode_line(out: &mut Vec<u8>, entry: &TarSplitEntry, position: u64) {
    match entry {
        TarSplitEntry::Segment(bytes) => {
            out.extend_from_slice(b"{\"type\":2,\"payload\":\"");
            out.extend_from_slice(BASE64.encode(bytes).as_bytes());
            out.extend_from_slice(b"\"");
        }
        TarSplitEntry::File { name, size, crc } => {
            out.extend_from_slice(b"{\"type\":1");
            if !name.is_empty() {
                match std::str::from_utf8(name) {
                    Ok(text) => {
                        out.extend_from_slice(b",\"name\":");
                        crate::gojson::write_string(out, text);
                    }
                    Err(_) => {
                        out.extend_from_slice(b",\"name_raw\":\"");
                        out.extend_from_slice(BASE64.encode(name).as_bytes());
                        out.push(b'"');
                    }
                }
            }
            if *size != 0 {
                out.extend_from_slice(format!(",\"size\":{size}").as_bytes());
            }
            match crc {
                Some(crc) => {
                    out.extend_from_slice(b",\"payload\":\"");
                    out.extend_from_slice(BASE64.encode(crc).as_bytes());
                    out.push(b'"');
                }
                None => out.extend_from_slice(b",\"payload\":null"),
            }
        }
    }
    out.extend_from_slice(format!(",\"position\":{position}}}\n").as_bytes());
}

/// Go's `filepath.Clean` on bytes, which the packer uses to detect repeated paths.
fn clean_path(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path[0] == b'/';
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.last().is_some_and(|p| *p != b"..") {
                    parts.pop();
                } else if !rooted {
                    parts.push(part);
                }
            }
            _ => parts.push(part),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    if rooted {
        out.push(b'/');
    }
    out.extend_from_slice(&parts.join(&b'/'));
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_match_go_encoding() {
        let mut line = Vec::new();
        let file = TarSplitEntry::File {
            name: b"d/<q\"&>\x01\\\n".to_vec(),
            size: 3,
            crc: Some([0, 0, 0, 0, 0, 0, 0, 1]),
        };
        encode_line(&mut line, &file, 7);
        assert_eq!(
            String::from_utf8(line.clone()).expect("utf8"),
            "{\"type\":1,\"name\":\"d/\\u003cq\\\"\\u0026\\u003e\\u0001\\\\\\n\",\"size\":3,\"payload\":\"AAAAAAAAAAE=\",\"position\":7}\n"
        );
        line.clear();
        let raw = TarSplitEntry::File {
            name: b"caf\xe9".to_vec(),
            size: 0,
            crc: None,
        };
        encode_line(&mut line, &raw, 0);
        assert_eq!(
            line,
            b"{\"type\":1,\"name_raw\":\"Y2Fm6Q==\",\"payload\":null,\"position\":0}\n"
        );
        line.clear();
        encode_line(&mut line, &TarSplitEntry::Segment(Vec::new()), 2);
        assert_eq!(line, b"{\"type\":2,\"payload\":\"\",\"position\":2}\n");
    }

    #[test]
    fn paths_clean_like_go() {
        for (input, cleaned) in [
            ("", "."),
            ("./", "."),
            ("./a/b/", "a/b"),
            ("a//b/../c", "a/c"),
            ("/../x", "/x"),
            ("../../x", "../../x"),
            ("a/..", "."),
        ] {
            assert_eq!(clean_path(input.as_bytes()), cleaned.as_bytes(), "{input}");
        }
    }
}
