//! A tar stream filter that sets the owner of every entry (`copy --chown`): the archive
//! writer and reader of the host have no owner override, and rewriting the owner fields in
//! passing keeps the copy streaming.
//!
//! The stream is read by the project's one tar parser, which says which bytes are headers:
//! of the raw bytes before an entry's payload (padding, PAX and GNU long-name headers and
//! their records, old-GNU sparse extension blocks, a PAX 1.0 sparse map), only the entry's
//! own header block gets the new uid and gid, and the `uid`/`gid` records of its PAX headers,
//! which would win over the block's fields, get them too. Payload passes through untouched.
//! IDs must fit the header's octal fields (up to 2097151): [`OwnerRewriter::new`] refuses
//! others.

use std::io::{self, Read};

use storage_archive::tar_parser::header::{decode_block, BLOCK};
use storage_archive::tar_parser::{padding_of, EntryKind, Need, TarParser};

const UID_FIELD: std::ops::Range<usize> = 108..116;
const GID_FIELD: std::ops::Range<usize> = 116..124;
const SIZE_FIELD: std::ops::Range<usize> = 124..136;
const CHECKSUM_FIELD: std::ops::Range<usize> = 148..156;
/// Largest ID a 7-digit octal header field holds.
pub const MAX_HEADER_ID: u32 = 0o7777777;
/// Upper bound of the headers held back before one entry; only a chain of metadata headers
/// reaches it (the limit tar-split sets on the same bytes).
const MAX_HEADER_GROUP: usize = 16 << 20;

/// Reads a tar stream from `inner`, with every entry's uid and gid replaced.
pub struct OwnerRewriter<R> {
    inner: R,
    uid: u32,
    gid: u32,
    parser: TarParser,
    /// The raw bytes before the next entry's payload, held until the parser has the entry.
    group: Vec<u8>,
    /// Where in `group` each header block starts.
    headers: Vec<usize>,
    /// Bytes ready to hand out, and how many of them were.
    out: Vec<u8>,
    served: usize,
    /// After the end of the archive: the rest passes through as it is.
    ended: bool,
}

impl<R: Read> OwnerRewriter<R> {
    /// A filter setting every entry's owner to `uid:gid`; `None` when either does not fit
    /// a header field.
    pub fn new(inner: R, uid: u32, gid: u32) -> Option<Self> {
        (uid <= MAX_HEADER_ID && gid <= MAX_HEADER_ID).then(|| OwnerRewriter {
            inner,
            uid,
            gid,
            parser: TarParser::new(),
            group: Vec::new(),
            headers: Vec::new(),
            out: Vec::new(),
            served: 0,
            ended: false,
        })
    }

    /// Reads the next raw bytes the parser asks for into the group; when they complete an
    /// entry's headers, or end the archive, the group becomes output.
    fn next_raw(&mut self, len: usize) -> io::Result<()> {
        let start = self.group.len();
        if start + len > MAX_HEADER_GROUP {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "too many metadata headers before a tar entry",
            ));
        }
        let header_next = self.parser.header_next();
        self.group.resize(start + len, 0);
        let got = read_full(&mut self.inner, &mut self.group[start..])?;
        self.group.truncate(start + got);
        if header_next && got == len {
            self.headers.push(start + len - BLOCK);
        }
        let entry = self
            .parser
            .push_raw(&self.group[start..])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        match entry {
            Some(entry) => {
                let group = std::mem::take(&mut self.group);
                // A global header is no entry's: its records are not an owner.
                self.out = if entry.kind == EntryKind::PaxGlobal {
                    group
                } else {
                    self.rewrite_group(&group)
                };
                self.headers.clear();
            }
            None if self.parser.is_done() => {
                self.out = std::mem::take(&mut self.group);
                self.ended = true;
            }
            None => {}
        }
        Ok(())
    }

    /// The headers of one entry (`group`) with its owner rewritten: the `uid`/`gid` records
    /// of its PAX headers and the fields of its own header block, the last one.
    fn rewrite_group(&self, group: &[u8]) -> Vec<u8> {
        let Some((&own, metadata)) = self.headers.split_last() else {
            return group.to_vec();
        };
        let mut out = Vec::with_capacity(group.len() + BLOCK);
        // Bytes of `group` already in `out` or replaced.
        let mut done = 0;
        for &at in metadata {
            let Some((block, data)) = self.rewritten_pax(group, at) else {
                continue;
            };
            out.extend_from_slice(&group[done..at]);
            out.extend_from_slice(&block);
            out.extend_from_slice(&data);
            out.resize(out.len() + padding_of(data.len() as u64), 0);
            // The old records, and their padding, which came with the next header.
            let old = declared_size(&group[at..at + BLOCK]);
            done = at + BLOCK + old + padding_of(old as u64);
        }
        out.extend_from_slice(&group[done..own]);
        let mut block = [0u8; BLOCK];
        block.copy_from_slice(&group[own..own + BLOCK]);
        write_octal(&mut block[UID_FIELD], u64::from(self.uid));
        write_octal(&mut block[GID_FIELD], u64::from(self.gid));
        set_checksum(&mut block);
        out.extend_from_slice(&block);
        out.extend_from_slice(&group[own + BLOCK..]);
        out
    }

    /// For a PAX extended header at `at` in `group` whose records name an owner: the header
    /// block with its new size and the records with the new owner.
    fn rewritten_pax(&self, group: &[u8], at: usize) -> Option<([u8; BLOCK], Vec<u8>)> {
        let mut block = [0u8; BLOCK];
        block.copy_from_slice(group.get(at..at + BLOCK)?);
        if decode_block(&block).ok()?.typeflag != b'x' {
            return None;
        }
        let start = at + BLOCK;
        let data = group.get(start..start + declared_size(&block))?;
        let records = owner_records(data, self.uid, self.gid)?;
        write_octal(&mut block[SIZE_FIELD], records.len() as u64);
        set_checksum(&mut block);
        Some((block, records))
    }
}

impl<R: Read> Read for OwnerRewriter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.served < self.out.len() {
                let n = buf.len().min(self.out.len() - self.served);
                buf[..n].copy_from_slice(&self.out[self.served..self.served + n]);
                self.served += n;
                return Ok(n);
            }
            self.out.clear();
            self.served = 0;
            if self.ended {
                return self.inner.read(buf);
            }
            match self.parser.need() {
                Need::Payload(remaining) => {
                    let want = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
                    // Cut short at the end of the input: the reader downstream says so.
                    let n = self.inner.read(&mut buf[..want])?;
                    self.parser.consume_payload(n as u64);
                    return Ok(n);
                }
                Need::Raw { len, .. } => self.next_raw(len)?,
                Need::Done => {
                    self.out = std::mem::take(&mut self.group);
                    self.ended = true;
                }
            }
        }
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(inner: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match inner.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The size field of a header block the parser accepted.
fn declared_size(block: &[u8]) -> usize {
    <&[u8; BLOCK]>::try_from(block)
        .ok()
        .and_then(|b| decode_block(b).ok())
        .and_then(|h| usize::try_from(h.size).ok())
        .unwrap_or(0)
}

/// PAX records (`"<len> <key>=<value>\n"`, as the parser accepted them) with the values of
/// `uid` and `gid` replaced; `None` when they have neither. Other records are kept byte for
/// byte.
fn owner_records(mut data: &[u8], uid: u32, gid: u32) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut changed = false;
    while !data.is_empty() {
        let record = data.iter().position(|b| *b == b' ').and_then(|space| {
            let len: usize = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
            (len > space && len <= data.len()).then_some((len, space))
        });
        let Some((len, space)) = record else {
            // Not a record (the parser would have refused it): kept as it is.
            out.extend_from_slice(data);
            break;
        };
        let key = data[space + 1..len].split(|b| *b == b'=').next();
        match key {
            Some(b"uid") => out.extend_from_slice(&pax_record("uid", uid)),
            Some(b"gid") => out.extend_from_slice(&pax_record("gid", gid)),
            _ => out.extend_from_slice(&data[..len]),
        }
        changed |= matches!(key, Some(b"uid" | b"gid"));
        data = &data[len..];
    }
    changed.then_some(out)
}

/// One PAX record, its length counting itself.
fn pax_record(key: &str, value: u32) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}").len() + body.len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

/// Writes `value` as zero-padded octal followed by a NUL, filling `field`.
fn write_octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}\0");
    field.copy_from_slice(text.as_bytes());
}

/// Sets the header checksum: the byte sum with the checksum field taken as spaces, written as
/// six octal digits, NUL, space (the layout Go and GNU tar write).
fn set_checksum(block: &mut [u8; BLOCK]) {
    block[CHECKSUM_FIELD].copy_from_slice(b"        ");
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    block[CHECKSUM_FIELD].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn rewritten(input: &[u8], uid: u32, gid: u32) -> Vec<u8> {
        let mut out = Vec::new();
        OwnerRewriter::new(input, uid, gid)
            .expect("fits")
            .read_to_end(&mut out)
            .expect("reads");
        out
    }

    /// Owner, name and content of every entry, read back with the one parser.
    fn entries(tar: &[u8]) -> Vec<(u64, u64, Vec<u8>, Vec<u8>)> {
        let mut reader = storage_archive::TarStreamReader::new(tar);
        let mut seen = Vec::new();
        while let Some(e) = reader.next_entry().expect("entry") {
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = reader.read_payload(&mut buf).expect("payload");
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
            }
            seen.push((e.uid, e.gid, e.path, data));
        }
        seen
    }

    /// Where each entry's own header block is, found by the `tar` crate (an independent
    /// reader).
    fn own_headers(tar: &[u8]) -> Vec<usize> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .expect("entries")
            .map(|e| e.expect("entry").raw_header_position() as usize)
            .collect()
    }

    /// Every entry has the new owner; nothing else changed but the uid, gid and checksum
    /// fields of the entries' own header blocks.
    fn assert_only_owners_changed(input: &[u8], uid: u32, gid: u32) {
        let out = rewritten(input, uid, gid);
        assert_eq!(out.len(), input.len());
        let own = own_headers(input);
        for (i, (a, b)) in input.iter().zip(&out).enumerate() {
            if a != b {
                let field = own
                    .iter()
                    .find(|h| (**h..**h + BLOCK).contains(&i))
                    .map(|h| i - h);
                assert!(
                    field.is_some_and(|f| UID_FIELD.contains(&f)
                        || GID_FIELD.contains(&f)
                        || CHECKSUM_FIELD.contains(&f)),
                    "byte {i} changed outside an entry's owner fields (headers at {own:?})"
                );
            }
        }
        let before = entries(input);
        let after = entries(&out);
        assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            assert_eq!((a.0, a.1), (u64::from(uid), u64::from(gid)), "{:?}", a.2);
            assert_eq!((&a.2, &a.3), (&b.2, &b.3), "name and content kept");
        }
    }

    fn gnu_tar(dir: &Path, args: &[&str]) -> Vec<u8> {
        let out = Command::new("tar")
            .args(args)
            .arg("-C")
            .arg(dir)
            .args(["-cf", "-", "."])
            .output()
            .expect("GNU tar runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A tree with what puts raw bytes between an entry's headers and its payload: a long
    /// name, and a sparse file of many regions (old-GNU extension blocks, a PAX 1.0 map
    /// longer than a header's owner fields).
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = dir.path().join("d".repeat(120)).join("n".repeat(120));
        std::fs::create_dir_all(long.parent().expect("parent")).expect("mkdir");
        std::fs::write(&long, vec![7u8; 1500]).expect("write");
        let sparse = std::fs::File::create(dir.path().join("sparse")).expect("create");
        sparse.set_len(40 << 20).expect("truncate");
        for i in 0..30u64 {
            std::os::unix::fs::FileExt::write_at(&sparse, b"data", i << 20).expect("write");
        }
        std::fs::write(dir.path().join("plain"), b"hello").expect("write");
        dir
    }

    #[test]
    fn only_each_entrys_own_header_changes() {
        let dir = tree();
        for args in [
            &["--format=gnu", "--sparse"][..],
            &["--format=posix", "--sparse", "--sparse-version=1.0"][..],
            &["--format=posix", "--sparse", "--sparse-version=0.1"][..],
            &["--format=ustar"][..],
        ] {
            let mut args = args.to_vec();
            if args[0] == "--format=ustar" {
                // ustar has no long names of that length: the plain files only.
                let small = tempfile::tempdir().expect("tempdir");
                std::fs::write(small.path().join("plain"), b"hello").expect("write");
                assert_only_owners_changed(&gnu_tar(small.path(), &args), 1000, 2000);
                continue;
            }
            args.push("--owner=5");
            args.push("--group=6");
            let input = gnu_tar(dir.path(), &args);
            assert_only_owners_changed(&input, 1000, 2000);
            // GNU tar reads the owners back too.
            let out = rewritten(&input, 1000, 2000);
            let mut tar = Command::new("tar")
                .args(["--numeric-owner", "-tvf", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("GNU tar runs");
            std::io::Write::write_all(&mut tar.stdin.take().expect("stdin"), &out).expect("feed");
            let listing = tar.wait_with_output().expect("listing");
            assert!(listing.status.success(), "{args:?}");
            let text = String::from_utf8_lossy(&listing.stdout);
            assert_eq!(text.lines().count(), 5, "{text}");
            assert!(text.lines().all(|l| l.contains(" 1000/2000 ")), "{text}");
        }
    }

    #[test]
    fn pax_owner_records_are_rewritten_too() {
        // IDs above the octal fields go to PAX records, which win over the fields.
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("uid", &b"3000000"[..]), ("gid", &b"3000001"[..])])
            .expect("pax");
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "big", &b"abc"[..]).expect("append");
        b.append_pax_extensions([("uid", &b"5"[..]), ("SCHILY.xattr.user.k", &b"v"[..])])
            .expect("pax");
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "short-record", &b""[..])
            .expect("append");
        let input = b.into_inner().expect("finish");
        let out = rewritten(&input, 1000, 2000);
        let seen = entries(&out);
        assert_eq!(seen.len(), 2);
        for (uid, gid, name, _) in &seen {
            assert_eq!(
                (*uid, *gid),
                (1000, 2000),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        assert_eq!(seen[0].3, b"abc");
        // The xattr record is kept.
        let mut reader = storage_archive::TarStreamReader::new(&out[..]);
        reader.next_entry().expect("first").expect("entry");
        let second = reader.next_entry().expect("second").expect("entry");
        assert_eq!(second.xattrs, [("user.k".to_string(), b"v".to_vec())]);
    }

    #[test]
    fn global_headers_and_trailing_bytes_pass_unchanged() {
        let mut b = tar::Builder::new(Vec::new());
        let mut g = tar::Header::new_ustar();
        let records = b"17 comment=hello\n";
        g.set_entry_type(tar::EntryType::XGlobalHeader);
        g.set_size(records.len() as u64);
        g.set_uid(9);
        g.set_cksum();
        b.append_data(&mut g, "pax_global_header", &records[..])
            .expect("global");
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_uid(5);
        h.set_cksum();
        b.append_data(&mut h, "a", &b"hello"[..]).expect("append");
        let mut input = b.into_inner().expect("finish");
        input.extend_from_slice(b"trailing junk");
        let out = rewritten(&input, 1000, 2000);
        assert_eq!(out.len(), input.len());
        assert_eq!(
            out[..BLOCK],
            input[..BLOCK],
            "the global header is no entry's"
        );
        assert_eq!(out[out.len() - 13..], *b"trailing junk");
        assert_eq!(entries(&out)[1].0, 1000);
    }

    #[test]
    fn damaged_archives_are_refused() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "a", &b"hello"[..]).expect("append");
        let mut input = b.into_inner().expect("finish");
        input[148] ^= 1;
        let mut out = Vec::new();
        let err = OwnerRewriter::new(&input[..], 1, 1)
            .expect("fits")
            .read_to_end(&mut out)
            .expect_err("bad checksum");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn refuses_ids_beyond_header_fields() {
        assert!(OwnerRewriter::new(&b""[..], MAX_HEADER_ID + 1, 0).is_none());
        assert!(OwnerRewriter::new(&b""[..], 0, MAX_HEADER_ID + 1).is_none());
    }

    #[test]
    fn records_and_fields() {
        assert_eq!(pax_record("uid", 1000), b"12 uid=1000\n");
        assert_eq!(pax_record("gid", 5), b"8 gid=5\n");
        assert_eq!(
            owner_records(b"11 uid=777\n13 path=abcd\n", 5, 6).expect("changed"),
            b"8 uid=5\n13 path=abcd\n"
        );
        assert!(owner_records(b"13 path=abcd\n", 5, 6).is_none());
        let mut f = [0u8; 8];
        write_octal(&mut f, 0o755);
        assert_eq!(&f, b"0000755\0");
    }
}
