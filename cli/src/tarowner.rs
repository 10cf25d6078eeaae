//! A tar stream filter that sets the owner of every entry (`copy --chown`): the archive
//! writer and reader of the host have no owner override, and rewriting the two header
//! fields in passing keeps the copy streaming.
//!
//! Only ustar/GNU header fields are rewritten; PAX `uid`/`gid` records (written only for
//! IDs above 2097151) would still win, so such IDs are refused by [`OwnerRewriter::new`].

use std::io::{self, Read};

const BLOCK: usize = 512;
const UID_FIELD: std::ops::Range<usize> = 108..116;
const GID_FIELD: std::ops::Range<usize> = 116..124;
const SIZE_FIELD: std::ops::Range<usize> = 124..136;
const CHECKSUM_FIELD: std::ops::Range<usize> = 148..156;
/// Largest ID a 7-digit octal header field holds.
pub const MAX_HEADER_ID: u32 = 0o7777777;

/// Reads a tar stream from `inner`, with every header's uid and gid replaced.
pub struct OwnerRewriter<R> {
    inner: R,
    uid: u32,
    gid: u32,
    /// Data blocks left in the current entry before the next header.
    data_blocks_left: u64,
    /// The current block (rewritten when it is a header), and how much of it was handed out.
    block: [u8; BLOCK],
    served: usize,
    filled: usize,
}

impl<R: Read> OwnerRewriter<R> {
    /// A filter setting every entry's owner to `uid:gid`; `None` when either does not fit
    /// a header field.
    pub fn new(inner: R, uid: u32, gid: u32) -> Option<Self> {
        (uid <= MAX_HEADER_ID && gid <= MAX_HEADER_ID).then_some(OwnerRewriter {
            inner,
            uid,
            gid,
            data_blocks_left: 0,
            block: [0; BLOCK],
            served: 0,
            filled: 0,
        })
    }

    /// Reads the next block; returns false at a clean end of stream.
    fn next_block(&mut self) -> io::Result<bool> {
        let mut got = 0;
        while got < BLOCK {
            let n = self.inner.read(&mut self.block[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        self.served = 0;
        self.filled = got;
        if got == 0 {
            return Ok(false);
        }
        if got < BLOCK {
            // A short tail: pass it on unchanged and let the reader judge it.
            return Ok(true);
        }
        if self.data_blocks_left > 0 {
            self.data_blocks_left -= 1;
        } else if self.block.iter().any(|b| *b != 0) {
            let size = parse_octal(&self.block[SIZE_FIELD]);
            self.data_blocks_left = size.div_ceil(BLOCK as u64);
            write_octal(&mut self.block[UID_FIELD], self.uid);
            write_octal(&mut self.block[GID_FIELD], self.gid);
            let sum = checksum(&self.block);
            // Six octal digits, NUL, space: the layout Go and GNU tar write.
            let digits = format!("{sum:06o}\0 ");
            self.block[CHECKSUM_FIELD].copy_from_slice(digits.as_bytes());
        }
        Ok(true)
    }
}

impl<R: Read> Read for OwnerRewriter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.served == self.filled && !self.next_block()? {
            return Ok(0);
        }
        let n = buf.len().min(self.filled - self.served);
        buf[..n].copy_from_slice(&self.block[self.served..self.served + n]);
        self.served += n;
        Ok(n)
    }
}

/// Parses an octal header number (NUL/space padded); base-256 sizes are read too.
fn parse_octal(field: &[u8]) -> u64 {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        return field[1..]
            .iter()
            .fold(u64::from(field[0] & 0x7f), |acc, b| {
                (acc << 8) | u64::from(*b)
            });
    }
    field
        .iter()
        .skip_while(|b| **b == b' ' || **b == 0)
        .take_while(|b| (b'0'..=b'7').contains(*b))
        .fold(0, |acc, b| acc * 8 + u64::from(b - b'0'))
}

/// Writes `value` as zero-padded octal followed by a NUL, filling `field`.
fn write_octal(field: &mut [u8], value: u32) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}\0");
    field.copy_from_slice(text.as_bytes());
}

/// The header checksum: the byte sum with the checksum field taken as spaces.
fn checksum(block: &[u8; BLOCK]) -> u32 {
    block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if CHECKSUM_FIELD.contains(&i) {
                u32::from(b' ')
            } else {
                u32::from(*b)
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data, uid) in [("a", &b"hello"[..], 5u64), ("dir/b", &[7u8; 1500][..], 6)] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(uid);
            h.set_gid(uid + 1);
            b.append_data(&mut h, name, data).expect("append");
        }
        b.into_inner().expect("finish")
    }

    #[test]
    fn rewrites_owner_and_keeps_content() {
        let input = archive();
        let mut out = Vec::new();
        OwnerRewriter::new(&input[..], 1000, 2000)
            .expect("fits")
            .read_to_end(&mut out)
            .expect("reads");
        assert_eq!(out.len(), input.len());
        let mut a = tar::Archive::new(&out[..]);
        let mut seen = Vec::new();
        for entry in a.entries().expect("entries") {
            let mut e = entry.expect("entry");
            let h = e.header().clone();
            assert_eq!((h.uid().expect("uid"), h.gid().expect("gid")), (1000, 2000));
            // The tar crate verifies checksums while reading.
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("data");
            seen.push((e.path().expect("path").display().to_string(), data.len()));
        }
        assert_eq!(seen, [("a".to_string(), 5), ("dir/b".to_string(), 1500)]);
    }

    #[test]
    fn refuses_ids_beyond_header_fields() {
        assert!(OwnerRewriter::new(&b""[..], MAX_HEADER_ID + 1, 0).is_none());
    }

    #[test]
    fn octal_fields() {
        assert_eq!(parse_octal(b"0000644\0"), 0o644);
        assert_eq!(parse_octal(b"   12 \0"), 0o12);
        let mut f = [0u8; 8];
        write_octal(&mut f, 0o755);
        assert_eq!(&f, b"0000755\0");
    }
}
