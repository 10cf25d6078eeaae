//! Decoding one 512-byte tar header block the way Go's `archive/tar` does (its `readHeader`
//! and `parser`): format detection by checksum and magic, numeric fields in octal or
//! base-256, the USTAR/STAR prefix joined to the name, GNU access times.
//!
//! Bytes in, fields out; no I/O. The rest of an entry's header (PAX records, GNU long names,
//! sparse maps) is merged by the parser in the parent module.

use crate::error::ArchiveError;

/// Size of a tar block.
pub const BLOCK: usize = 512;

/// Which header layout a block has (Go's `getFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockFormat {
    /// Pre-POSIX: no owner names, no device numbers, no prefix.
    V7,
    /// POSIX ustar (and PAX, which is ustar with extended headers).
    Ustar,
    /// Schily's star: ustar with access and change times, a shorter prefix.
    Star,
    /// GNU tar's own layout (`ustar  \0`): times and sparse maps where ustar has the prefix.
    Gnu,
}

/// The fields of one header block, before PAX records and GNU long names are applied.
#[derive(Debug, Clone)]
pub struct RawHeader {
    /// The layout of the block.
    pub format: BlockFormat,
    /// The type flag byte.
    pub typeflag: u8,
    /// The name with the ustar/star prefix joined.
    pub name: Vec<u8>,
    /// The link name field.
    pub link_name: Vec<u8>,
    /// The size field (for sparse entries, the stored bytes).
    pub size: i64,
    /// The mode field.
    pub mode: i64,
    /// The owner fields.
    pub uid: i64,
    /// The group field.
    pub gid: i64,
    /// Modification time, whole seconds.
    pub mtime: i64,
    /// Access time, when the layout carries a non-empty one.
    pub atime: Option<i64>,
    /// Owner name (not in V7 headers).
    pub uname: Vec<u8>,
    /// Group name (not in V7 headers).
    pub gname: Vec<u8>,
    /// Device numbers (not in V7 headers).
    pub dev_major: i64,
    /// Device minor number.
    pub dev_minor: i64,
}

/// Whether a block is all zeros (one half of the end-of-archive marker).
pub fn is_zero_block(block: &[u8]) -> bool {
    block.iter().all(|b| *b == 0)
}

/// Detects the layout of `block` after checking its checksum (Go's `getFormat`); a bad
/// checksum is an invalid header.
pub fn block_format(block: &[u8; BLOCK]) -> Result<BlockFormat, ArchiveError> {
    let stored = parse_octal(&block[148..156]).ok_or_else(|| bad_checksum(block))?;
    let (unsigned, signed) = checksums(block);
    if stored != unsigned && stored != signed {
        return Err(bad_checksum(block));
    }
    let magic = &block[257..263];
    let version = &block[263..265];
    Ok(if magic == b"ustar\0" && &block[508..512] == b"tar\0" {
        BlockFormat::Star
    } else if magic == b"ustar\0" {
        BlockFormat::Ustar
    } else if magic == b"ustar " && version == b" \0" {
        BlockFormat::Gnu
    } else {
        BlockFormat::V7
    })
}

fn bad_checksum(block: &[u8; BLOCK]) -> ArchiveError {
    let (unsigned, _) = checksums(block);
    ArchiveError::InvalidHeader(match parse_octal(&block[148..156]) {
        Some(stored) => {
            format!("checksum mismatch (header says {stored:o}, computed {unsigned:o})")
        }
        None => "not a tar header (its checksum field is not a number)".to_string(),
    })
}

/// The unsigned and signed sums of the block with the checksum field read as spaces.
fn checksums(block: &[u8; BLOCK]) -> (i64, i64) {
    let mut unsigned = 0i64;
    let mut signed = 0i64;
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    (unsigned, signed)
}

/// Decodes a header block (Go's `readHeader` after the zero-block check).
pub fn decode_block(block: &[u8; BLOCK]) -> Result<RawHeader, ArchiveError> {
    let format = block_format(block)?;
    let field = |name: &'static str, range: std::ops::Range<usize>| {
        parse_numeric(&block[range.clone()]).ok_or_else(|| {
            ArchiveError::InvalidHeader(format!(
                "{name} field {:?}",
                String::from_utf8_lossy(&block[range])
            ))
        })
    };
    let mut header = RawHeader {
        format,
        typeflag: block[156],
        name: c_string(&block[0..100]).to_vec(),
        link_name: c_string(&block[157..257]).to_vec(),
        size: field("size", 124..136)?,
        mode: field("mode", 100..108)?,
        uid: field("uid", 108..116)?,
        gid: field("gid", 116..124)?,
        mtime: field("mtime", 136..148)?,
        atime: None,
        uname: Vec::new(),
        gname: Vec::new(),
        dev_major: 0,
        dev_minor: 0,
    };
    if format == BlockFormat::V7 {
        return Ok(header);
    }
    header.uname = c_string(&block[265..297]).to_vec();
    header.gname = c_string(&block[297..329]).to_vec();
    header.dev_major = field("devmajor", 329..337)?;
    header.dev_minor = field("devminor", 337..345)?;
    let prefix: Vec<u8> = match format {
        BlockFormat::Ustar => c_string(&block[345..500]).to_vec(),
        BlockFormat::Star => {
            let atime = field("atime", 476..488)?;
            header.atime = Some(atime);
            c_string(&block[345..476]).to_vec()
        }
        BlockFormat::Gnu => {
            // Go before 1.8 wrote a ustar prefix into GNU headers; when the time fields do
            // not parse and the prefix looks like text, Go reads them as a prefix.
            let atime = if block[345] != 0 {
                parse_numeric(&block[345..357]).map(Some)
            } else {
                Some(None)
            };
            let ctime_ok = block[357] == 0 || parse_numeric(&block[357..369]).is_some();
            match (atime, ctime_ok) {
                (Some(atime), true) => {
                    header.atime = atime;
                    Vec::new()
                }
                _ => {
                    let prefix = c_string(&block[345..500]);
                    if prefix.is_ascii() {
                        prefix.to_vec()
                    } else {
                        Vec::new()
                    }
                }
            }
        }
        BlockFormat::V7 => Vec::new(),
    };
    if !prefix.is_empty() {
        let mut joined = prefix;
        joined.push(b'/');
        joined.extend_from_slice(&header.name);
        header.name = joined;
    }
    Ok(header)
}

/// Go's `parseNumeric`: base-256 (two's complement) when the high bit of the first byte is
/// set, else octal.
pub fn parse_numeric(field: &[u8]) -> Option<i64> {
    let Some(&first) = field.first() else {
        return Some(0);
    };
    if first & 0x80 == 0 {
        return parse_octal(field);
    }
    let inv: u8 = if first & 0x40 != 0 { 0xff } else { 0 };
    let mut x: u64 = 0;
    for (i, &c) in field.iter().enumerate() {
        let mut c = c ^ inv;
        if i == 0 {
            c &= 0x7f;
        }
        if x >> 56 > 0 {
            return None;
        }
        x = (x << 8) | u64::from(c);
    }
    if x >> 63 > 0 {
        return None;
    }
    // The high bit is clear: the cast keeps the value.
    let value = x as i64;
    Some(if inv == 0xff { !value } else { value })
}

/// Go's `parseOctal`: spaces and NULs trimmed at both ends, then the bytes before a NUL,
/// parsed as an unsigned octal number; an empty field is 0.
pub fn parse_octal(field: &[u8]) -> Option<i64> {
    let pad = |b: &u8| *b == b' ' || *b == 0;
    let start = field.iter().position(|b| !pad(b)).unwrap_or(field.len());
    let end = field.iter().rposition(|b| !pad(b)).map_or(start, |e| e + 1);
    let digits = c_string(&field[start..end]);
    if digits.is_empty() {
        return Some(0);
    }
    let text = std::str::from_utf8(digits).ok()?;
    // Go parses as uint64 and converts: values above i64::MAX wrap, as there.
    u64::from_str_radix(text, 8).ok().map(|v| v as i64)
}

/// The bytes before the first NUL (Go's `parseString`).
pub fn c_string(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|b| *b == 0) {
        Some(n) => &bytes[..n],
        None => bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_with(edit: impl FnOnce(&mut [u8; BLOCK])) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[..4].copy_from_slice(b"name");
        b[100..108].copy_from_slice(b"0000644\0");
        b[124..136].copy_from_slice(b"00000000005\0");
        b[156] = b'0';
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        edit(&mut b);
        b[148..156].copy_from_slice(b"        ");
        let sum: u32 = b.iter().map(|x| u32::from(*x)).sum();
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        b
    }

    #[test]
    fn numeric_fields_like_go() {
        assert_eq!(parse_numeric(b"0000644\0"), Some(0o644));
        assert_eq!(parse_numeric(b"  17 \0"), Some(0o17));
        assert_eq!(parse_numeric(b"\0\0\0"), Some(0));
        assert_eq!(parse_numeric(b""), Some(0));
        assert!(parse_numeric(b"08").is_none());
        // Base-256: 2^32 and -1.
        assert_eq!(
            parse_numeric(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
            Some(1 << 32)
        );
        assert_eq!(parse_numeric(&[0xff; 8]), Some(-1));
        assert!(parse_numeric(&[0x80, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
    }

    #[test]
    fn ustar_prefix_is_joined() {
        let b = block_with(|b| b[345..348].copy_from_slice(b"pre"));
        let h = decode_block(&b).unwrap();
        assert_eq!(h.format, BlockFormat::Ustar);
        assert_eq!(h.name, b"pre/name");
        assert_eq!((h.size, h.mode), (5, 0o644));
    }

    #[test]
    fn gnu_headers_carry_times_not_a_prefix() {
        let b = block_with(|b| {
            b[257..263].copy_from_slice(b"ustar ");
            b[263..265].copy_from_slice(b" \0");
            b[345..357].copy_from_slice(b"00000000012\0");
        });
        let h = decode_block(&b).unwrap();
        assert_eq!(h.format, BlockFormat::Gnu);
        assert_eq!(h.name, b"name");
        assert_eq!(h.atime, Some(0o12));
    }

    #[test]
    fn v7_headers_have_no_names_or_devices() {
        let b = block_with(|b| {
            b[257..265].fill(0);
            b[265..269].copy_from_slice(b"root");
        });
        let h = decode_block(&b).unwrap();
        assert_eq!(h.format, BlockFormat::V7);
        assert!(h.uname.is_empty());
    }

    #[test]
    fn a_bad_checksum_is_an_invalid_header() {
        let mut b = block_with(|_| {});
        b[0] = b'x';
        assert!(matches!(
            decode_block(&b),
            Err(ArchiveError::InvalidHeader(m)) if m.contains("checksum")
        ));
    }
}
