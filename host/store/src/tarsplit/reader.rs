//! Reading tar-split: the records of a stored `.tar-split.gz`, in order.

use std::io::{self, Read};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::{Result, TarSplitEntry, TarSplitError};

#[derive(serde::Deserialize)]
struct JsonEntry {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_raw: Option<String>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    payload: Option<String>,
}

/// Reads the records of a tar-split stream, in order: gzip of JSON lines as stored on
/// disk, or the JSON lines already decompressed (told apart by the gzip magic).
pub struct TarSplitReader<R: Read> {
    lines: io::BufReader<MaybeGzip<R>>,
    /// The current JSON line (reused).
    line: Vec<u8>,
}

/// The tar-split bytes, gunzipped when they are gzip.
enum MaybeGzip<R: Read> {
    Gzip(Box<flate2::read::MultiGzDecoder<crate::compress::PeekedReader<R>>>),
    Plain(crate::compress::PeekedReader<R>),
    Failed(Option<io::Error>),
}

impl<R: Read> Read for MaybeGzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MaybeGzip::Gzip(r) => r.read(buf),
            MaybeGzip::Plain(r) => r.read(buf),
            MaybeGzip::Failed(err) => Err(err
                .take()
                .unwrap_or_else(|| io::Error::other("reading tar-split failed"))),
        }
    }
}

impl<R: Read> TarSplitReader<R> {
    /// A reader of the tar-split in `input` (gzip-compressed or not).
    pub fn new(input: R) -> Self {
        use crate::compress::{sniff, CompressError, Compression};
        let source = match sniff(input) {
            Ok((Compression::Gzip, peeked)) => {
                MaybeGzip::Gzip(Box::new(flate2::read::MultiGzDecoder::new(peeked)))
            }
            Ok((_, peeked)) => MaybeGzip::Plain(peeked),
            Err(CompressError::Io { source, .. }) => MaybeGzip::Failed(Some(source)),
            Err(other) => MaybeGzip::Failed(Some(io::Error::other(other))),
        };
        // tar-split is one JSON record per line (Go's `json.Encoder`): each line is parsed from
        // a slice, several times faster than serde_json's byte-at-a-time `io::Read` parsing.
        TarSplitReader {
            lines: io::BufReader::with_capacity(64 * 1024, source),
            line: Vec::with_capacity(1024),
        }
    }

    /// The next record, `None` at the end.
    pub fn next_entry(&mut self) -> Result<Option<TarSplitEntry>> {
        use io::BufRead;
        let raw: JsonEntry = loop {
            self.line.clear();
            let n = self
                .lines
                .read_until(b'\n', &mut self.line)
                .map_err(TarSplitError::Unreadable)?;
            if n == 0 {
                return Ok(None);
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            break serde_json::from_slice(&self.line).map_err(TarSplitError::Json)?;
        };
        let decode = |field: &'static str, text: &str| {
            BASE64
                .decode(text)
                .map_err(|source| TarSplitError::Base64 { field, source })
        };
        let payload = raw
            .payload
            .as_deref()
            .map(|p| decode("payload", p))
            .transpose()?;
        match raw.kind {
            2 => Ok(Some(TarSplitEntry::Segment(payload.unwrap_or_default()))),
            1 => {
                let name = match (&raw.name_raw, raw.name) {
                    (Some(name_raw), _) if !name_raw.is_empty() => decode("name_raw", name_raw)?,
                    (_, name) => name.unwrap_or_default().into_bytes(),
                };
                let crc = match payload {
                    None => None,
                    Some(p) => Some(<[u8; 8]>::try_from(p.as_slice()).map_err(|_| {
                        TarSplitError::Corrupt(format!(
                            "checksum of {:?} is {} bytes, not 8",
                            String::from_utf8_lossy(&name),
                            p.len()
                        ))
                    })?),
                };
                Ok(Some(TarSplitEntry::File {
                    name,
                    size: raw.size.unwrap_or(0),
                    crc,
                }))
            }
            other => Err(TarSplitError::Corrupt(format!(
                "unknown entry type {other}"
            ))),
        }
    }
}

impl<R: Read> Iterator for TarSplitReader<R> {
    type Item = Result<TarSplitEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().transpose()
    }
}
