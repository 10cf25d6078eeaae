//! Writing tar headers the way Go's `archive/tar` Writer does with an unspecified format: USTAR
//! when the entry fits (long names split into prefix/name), PAX (`PaxHeaders.0/<name>` records,
//! keys sorted) when it does not or when xattrs are present; modification time rounded to the
//! second, no atime/ctime. Hand-written rather than `tar::Builder` so the bytes follow Go's
//! choices (PAX record naming and ordering, checksum layout, mode with file-type bits).

use std::io::Write;

use crate::error::ArchiveError;

const BLOCK: usize = 512;
/// Largest value of an 8-byte octal field (uid, gid, mode).
const MAX_OCTAL_8: u64 = 0o7777777;
/// Largest value of a 12-byte octal field (size, mtime).
const MAX_OCTAL_12: u64 = 0o77777777777;

/// One header to write; `size` bytes of payload must follow for regular files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutHeader {
    /// Entry name (directories end with `/`).
    pub name: Vec<u8>,
    /// Link target for hard and symbolic links.
    pub link_name: Vec<u8>,
    /// Type flag (`b'0'`, `b'5'`, ...).
    pub typeflag: u8,
    /// Mode including file-type bits, as containers/storage writes it.
    pub mode: u32,
    /// Owner (container IDs).
    pub uid: u32,
    /// Group (container IDs).
    pub gid: u32,
    /// Payload size (0 for everything but regular files).
    pub size: u64,
    /// Modification time, already rounded to the second.
    pub mtime: i64,
    /// Device numbers (devices only).
    pub dev_major: u32,
    /// Device minor number.
    pub dev_minor: u32,
    /// Extended attributes, written as `SCHILY.xattr.<name>`.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Owner name (empty: none).
    pub uname: Vec<u8>,
    /// Group name (empty: none).
    pub gname: Vec<u8>,
}

/// Rounds (secs, nanos) to the nearest second, half up, as Go's `Time.Round(time.Second)`.
pub fn round_to_second(secs: i64, nanos: u32) -> i64 {
    if nanos >= 500_000_000 {
        secs.saturating_add(1)
    } else {
        secs
    }
}

/// Writes `header` (and the PAX record before it when needed) to `out`.
pub fn write_header<W: Write + ?Sized>(
    out: &mut W,
    header: &OutHeader,
) -> Result<(), ArchiveError> {
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    let ascii = |b: &[u8]| b.iter().all(|c| c.is_ascii());
    if header.link_name.len() > 100 || !ascii(&header.link_name) {
        pax.push(("linkpath".into(), header.link_name.clone()));
    }
    if u64::from(header.uid) > MAX_OCTAL_8 {
        pax.push(("uid".into(), header.uid.to_string().into_bytes()));
    }
    if u64::from(header.gid) > MAX_OCTAL_8 {
        pax.push(("gid".into(), header.gid.to_string().into_bytes()));
    }
    if header.size > MAX_OCTAL_12 {
        pax.push(("size".into(), header.size.to_string().into_bytes()));
    }
    let mtime_fits = (0..=MAX_OCTAL_12 as i64).contains(&header.mtime);
    if !mtime_fits {
        pax.push(("mtime".into(), header.mtime.to_string().into_bytes()));
    }
    for (name, value) in &header.xattrs {
        pax.push((format!("SCHILY.xattr.{name}"), value.clone()));
    }
    let name_fits = header.name.len() <= 100 && ascii(&header.name);
    // USTAR splits a long name into prefix/name; once PAX is in use Go records the whole name
    // as `path` instead and leaves the (truncated) name in the name field.
    let ustar_split = if name_fits {
        Some((Vec::new(), header.name.clone()))
    } else if pax.is_empty() && ascii(&header.name) {
        split_ustar_path(&header.name)
    } else {
        None
    };
    let (prefix, name) = match ustar_split {
        Some(split) => split,
        None => {
            pax.push(("path".into(), header.name.clone()));
            (Vec::new(), header.name.clone())
        }
    };
    if !pax.is_empty() {
        pax.sort_by(|a, b| a.0.cmp(&b.0));
        let mut data = Vec::new();
        for (key, value) in &pax {
            data.extend_from_slice(&pax_record(key, value));
        }
        // Go: path.Join(path.Split(name)) with "PaxHeaders.0" between dir and file.
        let (dir, file) = match header.name.iter().rposition(|b| *b == b'/') {
            Some(i) => (&header.name[..=i], &header.name[i + 1..]),
            None => (&b""[..], &header.name[..]),
        };
        let mut pax_name = dir.to_vec();
        pax_name.extend_from_slice(b"PaxHeaders.0");
        if !file.is_empty() {
            pax_name.push(b'/');
            pax_name.extend_from_slice(file);
        }
        let mut pax_name = to_ascii(&pax_name);
        pax_name.truncate(100);
        while pax_name.last() == Some(&b'/') {
            pax_name.pop();
        }
        let block = build_block(&BlockFields {
            name: &pax_name,
            prefix: b"",
            mode: 0,
            uid: 0,
            gid: 0,
            size: data.len() as u64,
            mtime: 0,
            typeflag: b'x',
            link_name: b"",
            dev: None,
            names: (b"", b""),
        });
        write_all(out, &block)?;
        write_all(out, &data)?;
        write_padding(out, data.len() as u64)?;
    }
    let block = build_block(&BlockFields {
        name: &to_ascii(&name),
        prefix: &prefix,
        mode: u64::from(header.mode),
        uid: u64::from(header.uid).min(MAX_OCTAL_8),
        gid: u64::from(header.gid).min(MAX_OCTAL_8),
        size: header.size.min(MAX_OCTAL_12),
        mtime: if mtime_fits { header.mtime as u64 } else { 0 },
        typeflag: header.typeflag,
        link_name: &to_ascii(&header.link_name),
        dev: Some((header.dev_major, header.dev_minor)),
        names: (&header.uname, &header.gname),
    });
    write_all(out, &block)
}

/// Writes the zero padding after a payload of `len` bytes.
pub fn write_padding<W: Write + ?Sized>(out: &mut W, len: u64) -> Result<(), ArchiveError> {
    let pad = (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64;
    write_all(out, &[0u8; BLOCK][..pad as usize])
}

/// Writes the two zero blocks that end an archive.
pub fn write_trailer<W: Write + ?Sized>(out: &mut W) -> Result<(), ArchiveError> {
    write_all(out, &[0u8; 2 * BLOCK])
}

fn write_all<W: Write + ?Sized>(out: &mut W, data: &[u8]) -> Result<(), ArchiveError> {
    out.write_all(data).map_err(ArchiveError::Stream)
}

struct BlockFields<'a> {
    name: &'a [u8],
    prefix: &'a [u8],
    mode: u64,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    link_name: &'a [u8],
    /// Device numbers; `None` leaves the fields empty, as Go does for PAX record headers.
    dev: Option<(u32, u32)>,
    names: (&'a [u8], &'a [u8]),
}

fn build_block(f: &BlockFields<'_>) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    put_str(&mut b[0..100], f.name);
    put_octal(&mut b[100..108], f.mode);
    put_octal(&mut b[108..116], f.uid);
    put_octal(&mut b[116..124], f.gid);
    put_octal(&mut b[124..136], f.size);
    put_octal(&mut b[136..148], f.mtime);
    b[156] = f.typeflag;
    put_str(&mut b[157..257], f.link_name);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    put_str(&mut b[265..297], f.names.0);
    put_str(&mut b[297..329], f.names.1);
    if let Some((major, minor)) = f.dev {
        put_octal(&mut b[329..337], u64::from(major));
        put_octal(&mut b[337..345], u64::from(minor));
    }
    put_str(&mut b[345..500], f.prefix);
    // Checksum as Go writes it: six octal digits, NUL, space.
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|c| u32::from(*c)).sum();
    put_octal(&mut b[148..155], u64::from(sum));
    b
}

/// Go's `formatString`: copy, truncated, NUL-terminated when shorter.
fn put_str(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
    if n < field.len() {
        field[n] = 0;
    }
}

/// Go's `formatOctal`: zero-padded to the field width minus one, then NUL.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = format!("{value:o}");
    let width = field.len() - 1;
    let text = if digits.len() < width {
        format!("{}{}", "0".repeat(width - digits.len()), digits)
    } else {
        digits
    };
    put_str(field, text.as_bytes());
}

/// Go's `splitUSTARPath`: a prefix of at most 155 bytes and a name of at most 100, split at a `/`.
fn split_ustar_path(name: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let length = name.len();
    if length <= 100 || length > 155 + 1 + 100 {
        return None;
    }
    let limit = length.min(155 + 1);
    // The last '/' before the limit, excluding the final byte.
    let search = &name[..limit.min(length - 1)];
    let i = search.iter().rposition(|b| *b == b'/')?;
    let (prefix, rest) = (&name[..i], &name[i + 1..]);
    if prefix.is_empty() || rest.len() > 100 || rest.is_empty() {
        return None;
    }
    Some((prefix.to_vec(), rest.to_vec()))
}

/// One PAX record `"<len> <key>=<value>\n"` where len counts itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + body.to_string().len();
    if len.to_string().len() + body != len {
        len = body + len.to_string().len();
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

fn to_ascii(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(u8::is_ascii).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar_stream::{EntryKind, TarStreamReader};

    #[test]
    fn round_trips_through_the_reader() {
        let long = format!("{}/{}", "a".repeat(130), "b".repeat(90));
        let very_long = "c".repeat(300);
        let mut out = Vec::new();
        let headers = vec![
            OutHeader {
                name: b"dir/".to_vec(),
                typeflag: b'5',
                mode: 0o40755,
                mtime: 1_700_000_000,
                ..Default::default()
            },
            OutHeader {
                name: long.clone().into_bytes(),
                typeflag: b'0',
                mode: 0o100644,
                uid: 1000,
                gid: 7,
                size: 3,
                mtime: 5,
                ..Default::default()
            },
            OutHeader {
                name: very_long.clone().into_bytes(),
                typeflag: b'2',
                link_name: b"t".repeat(150),
                xattrs: vec![("user.k".into(), b"v\n1".to_vec())],
                ..Default::default()
            },
        ];
        for h in &headers {
            write_header(&mut out, h).unwrap();
            if h.size > 0 {
                out.extend_from_slice(b"xyz");
                write_padding(&mut out, h.size).unwrap();
            }
        }
        write_trailer(&mut out).unwrap();
        // The tar crate agrees on the checksums and layout.
        let mut archive = tar::Archive::new(&out[..]);
        assert_eq!(archive.entries().unwrap().count(), 3);

        let mut r = TarStreamReader::new(&out[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(
            (e.path.as_slice(), e.kind),
            (&b"dir/"[..], EntryKind::Directory)
        );
        assert_eq!(e.mode, 0o40755);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.path, long.as_bytes());
        assert_eq!((e.uid, e.gid, e.size), (1000, 7, 3));
        assert!(e.pax_records.is_empty(), "a splittable name stays USTAR");
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.path, very_long.as_bytes());
        assert_eq!(e.link_name, b"t".repeat(150));
        assert_eq!(e.xattrs, vec![("user.k".to_string(), b"v\n1".to_vec())]);
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn big_ids_go_to_pax() {
        let mut out = Vec::new();
        let h = OutHeader {
            name: b"f".to_vec(),
            typeflag: b'0',
            uid: 10_000_000,
            gid: 3,
            ..Default::default()
        };
        write_header(&mut out, &h).unwrap();
        write_trailer(&mut out).unwrap();
        assert_eq!(&out[..15], b"PaxHeaders.0/f\0");
        let mut r = TarStreamReader::new(&out[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(
            (e.path.as_slice(), e.uid, e.gid),
            (&b"f"[..], 10_000_000, 3)
        );
    }

    #[test]
    fn pax_record_lengths() {
        assert_eq!(pax_record("path", b"abc"), b"12 path=abc\n");
        let r = pax_record("k", &[b'x'; 95]);
        assert_eq!(r.len(), 102);
        assert!(r.starts_with(b"102 k="));
    }

    #[test]
    fn rounding() {
        assert_eq!(round_to_second(10, 499_999_999), 10);
        assert_eq!(round_to_second(10, 500_000_000), 11);
    }
}
