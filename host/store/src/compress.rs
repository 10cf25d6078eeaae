//! Compression of layer blobs: detection by magic number, decompressing readers for the
//! five formats containers/storage recognises, and compressing writers for the three it
//! can produce (none, gzip, zstd).
//!
//! What can go wrong: the input is unreadable ([`CompressError::Io`]) or a caller asks
//! for a format this side only reads ([`CompressError::UnsupportedFormat`]).

use std::io::{self, Cursor, Read, Write};

/// Errors of compression and decompression set-up.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// Bzip2 and xz are read, never written (as upstream).
    #[error("unsupported compression format {0}")]
    UnsupportedFormat(Compression),
    /// Reading the first bytes or starting a codec failed.
    #[error("{context}: {}", storage_archive::error::os_error_text(source))]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// A compression format; the discriminants are the numbers `layers.json` stores in
/// `compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// An uncompressed tar.
    #[default]
    None = 0,
    /// bzip2.
    Bzip2 = 1,
    /// gzip (one or several members).
    Gzip = 2,
    /// xz.
    Xz = 3,
    /// zstd (one or several frames).
    Zstd = 4,
}

impl Compression {
    /// The number stored in `layers.json`.
    pub fn as_number(self) -> u8 {
        self as u8
    }

    /// The format stored as `n` in `layers.json`, if `n` names one.
    pub fn from_number(n: u64) -> Option<Self> {
        Some(match n {
            0 => Compression::None,
            1 => Compression::Bzip2,
            2 => Compression::Gzip,
            3 => Compression::Xz,
            4 => Compression::Zstd,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Bzip2 => "bzip2",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        })
    }
}

/// How many leading bytes [`detect`] looks at (the longest magic, xz's).
pub const MAGIC_LEN: usize = 6;

/// The compression of a blob starting with `header`, by upstream's magic numbers
/// (`pkg/archive.DetectCompression`); anything else is uncompressed.
pub fn detect(header: &[u8]) -> Compression {
    const MAGICS: [(&[u8], Compression); 4] = [
        (&[0x42, 0x5A, 0x68], Compression::Bzip2),
        (&[0x1F, 0x8B, 0x08], Compression::Gzip),
        (&[0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00], Compression::Xz),
        (&[0x28, 0xB5, 0x2F, 0xFD], Compression::Zstd),
    ];
    MAGICS
        .iter()
        .find(|(magic, _)| header.starts_with(magic))
        .map_or(Compression::None, |&(_, kind)| kind)
}

/// A reader that has had its first bytes read for detection and gives them back first.
pub type PeekedReader<R> = io::Chain<Cursor<Vec<u8>>, R>;

/// Reads the first bytes of `input` (up to [`MAGIC_LEN`], fewer only at end of input),
/// detects the compression, and returns a reader that yields the whole input, those
/// first bytes included.
pub fn sniff<R: Read>(mut input: R) -> Result<(Compression, PeekedReader<R>), CompressError> {
    let mut header = vec![0u8; MAGIC_LEN];
    let mut filled = 0;
    while filled < MAGIC_LEN {
        match input.read(&mut header[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(CompressError::Io {
                    context: "reading the start of the layer",
                    source,
                })
            }
        }
    }
    header.truncate(filled);
    let kind = detect(&header);
    Ok((kind, Cursor::new(header).chain(input)))
}

/// A reader yielding the decompressed content of `input`, compressed as `kind`.
/// Multi-member gzip, multi-frame zstd and concatenated bzip2/xz streams are read whole.
pub fn decompressor<'a, R: Read + 'a>(
    kind: Compression,
    input: R,
) -> Result<Box<dyn Read + 'a>, CompressError> {
    Ok(match kind {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(input)),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(input)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(input).map_err(|source| {
                CompressError::Io {
                    context: "starting the zstd decoder",
                    source,
                }
            })?)
        }
    })
}

/// A writer that compresses as `kind` into `out`. Call [`CompressWriter::finish`] to
/// write the trailer and get `out` back; dropping it unfinished loses the trailer.
pub struct CompressWriter<W: Write> {
    inner: WriterKind<W>,
}

enum WriterKind<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

/// A compressing writer for `kind`: none, gzip (default level, as Go's `gzip.NewWriter`)
/// or zstd (level 3). Bzip2 and xz are refused with "unsupported compression format".
pub fn compressor<W: Write>(kind: Compression, out: W) -> Result<CompressWriter<W>, CompressError> {
    let inner = match kind {
        Compression::None => WriterKind::Plain(out),
        Compression::Gzip => WriterKind::Gzip(flate2::write::GzEncoder::new(
            out,
            flate2::Compression::default(),
        )),
        Compression::Zstd => {
            WriterKind::Zstd(zstd::stream::write::Encoder::new(out, 3).map_err(|source| {
                CompressError::Io {
                    context: "starting the zstd encoder",
                    source,
                }
            })?)
        }
        Compression::Bzip2 | Compression::Xz => return Err(CompressError::UnsupportedFormat(kind)),
    };
    Ok(CompressWriter { inner })
}

impl<W: Write> CompressWriter<W> {
    /// Writes the compression trailer and returns the underlying writer.
    pub fn finish(self) -> io::Result<W> {
        match self.inner {
            WriterKind::Plain(mut w) => {
                w.flush()?;
                Ok(w)
            }
            WriterKind::Gzip(enc) => enc.finish(),
            WriterKind::Zstd(enc) => enc.finish(),
        }
    }
}

impl<W: Write> Write for CompressWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            WriterKind::Plain(w) => w.write(buf),
            WriterKind::Gzip(w) => w.write(buf),
            WriterKind::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            WriterKind::Plain(w) => w.flush(),
            WriterKind::Gzip(w) => w.flush(),
            WriterKind::Zstd(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..50_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    fn roundtrip(kind: Compression) {
        let data = sample();
        let mut w = compressor(kind, Vec::new()).expect("compressor");
        w.write_all(&data).expect("write");
        let blob = w.finish().expect("finish");
        let (found, reader) = sniff(&blob[..]).expect("sniff");
        assert_eq!(found, kind);
        let mut out = Vec::new();
        decompressor(found, reader)
            .expect("decompressor")
            .read_to_end(&mut out)
            .expect("read");
        assert_eq!(out, data);
    }

    #[test]
    fn writable_formats_roundtrip_through_detection() {
        roundtrip(Compression::None);
        roundtrip(Compression::Gzip);
        roundtrip(Compression::Zstd);
    }

    #[test]
    fn bzip2_and_xz_are_read_but_not_written() {
        let data = sample();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&data).expect("bz");
        let bz = bz.finish().expect("bz finish");
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&data).expect("xz");
        let xz = xz.finish().expect("xz finish");
        for (blob, kind) in [(bz, Compression::Bzip2), (xz, Compression::Xz)] {
            let (found, reader) = sniff(&blob[..]).expect("sniff");
            assert_eq!(found, kind);
            let mut out = Vec::new();
            decompressor(found, reader)
                .expect("dec")
                .read_to_end(&mut out)
                .expect("read");
            assert_eq!(out, data);
            let err = compressor(kind, Vec::new()).err().expect("refused");
            assert!(err.to_string().contains("unsupported compression format"));
        }
    }

    #[test]
    fn multi_member_gzip_is_read_whole() {
        let mut blob = Vec::new();
        for part in [&b"first "[..], b"second"] {
            let mut w = compressor(Compression::Gzip, Vec::new()).expect("gz");
            w.write_all(part).expect("write");
            blob.extend(w.finish().expect("finish"));
        }
        let (kind, reader) = sniff(&blob[..]).expect("sniff");
        let mut out = String::new();
        decompressor(kind, reader)
            .expect("dec")
            .read_to_string(&mut out)
            .expect("read");
        assert_eq!(out, "first second");
    }

    #[test]
    fn short_and_plain_inputs_keep_every_byte() {
        for input in [&b""[..], b"\x1f", b"\x1f\x8b", b"hello world"] {
            let (kind, mut reader) = sniff(input).expect("sniff");
            assert_eq!(kind, Compression::None);
            let mut out = Vec::new();
            reader.read_to_end(&mut out).expect("read");
            assert_eq!(out, input);
        }
        assert_eq!(detect(b"BZh91AY"), Compression::Bzip2);
        assert_eq!(Compression::from_number(4), Some(Compression::Zstd));
        assert_eq!(Compression::Gzip.as_number(), 2);
    }
}
