//! Sparse files in tar: where the data regions of a file with holes are, in each of the
//! formats real archives use (Go's `readOldGNUSparseMap`, `readGNUSparseMap0x1`,
//! `readGNUSparseMap1x0`, `validateSparseEntries`).
//!
//! - old GNU (type flag `S`, `tar --sparse --format=gnu`): four regions in the header block,
//!   more in 512-byte extension blocks that follow it;
//! - PAX 0.0 / 0.1 (`GNU.sparse.offset`/`numbytes` pairs, or `GNU.sparse.map`): in the
//!   extended header;
//! - PAX 1.0 (`GNU.sparse.major=1`, bsdtar and `tar --sparse --format=posix`): as decimal
//!   text at the start of the entry's data, padded to a block.
//!
//! In every format the stored data is the regions' bytes one after the other; the holes
//! between them (and after the last one, up to the real size) are zeros.

use super::header::{parse_numeric, BLOCK};
use crate::error::ArchiveError;

/// One data region of a sparse file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseRegion {
    /// Where the region starts in the file.
    pub offset: u64,
    /// How many bytes of data it holds.
    pub length: u64,
}

/// Where the data of a sparse file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseMap {
    /// The size of the file with its holes.
    pub real_size: u64,
    /// The data regions, in order, not overlapping, within `real_size`.
    pub regions: Vec<SparseRegion>,
}

impl SparseMap {
    /// The bytes the archive stores for the file: the regions' lengths added up.
    pub fn stored_size(&self) -> u64 {
        self.regions.iter().map(|r| r.length).sum()
    }
}

fn invalid(why: &str) -> ArchiveError {
    ArchiveError::InvalidHeader(format!("sparse map: {why}"))
}

/// Checks regions as Go's `validateSparseEntries` (and BSD tar) do, and turns them into a
/// map; `stored` is what the archive holds for the entry, which must be the regions' bytes.
pub fn validate(
    regions: &[(i64, i64)],
    real_size: i64,
    stored: u64,
) -> Result<SparseMap, ArchiveError> {
    if real_size < 0 {
        return Err(invalid("negative size"));
    }
    let mut out = Vec::with_capacity(regions.len());
    let mut previous_end = 0i64;
    for &(offset, length) in regions {
        if offset < 0 || length < 0 {
            return Err(invalid("negative region"));
        }
        let end = offset
            .checked_add(length)
            .ok_or_else(|| invalid("region overflows"))?;
        if end > real_size {
            return Err(invalid("region beyond the file's size"));
        }
        if previous_end > offset {
            return Err(invalid("regions overlap or are out of order"));
        }
        previous_end = end;
        // Both checked non-negative above.
        out.push(SparseRegion {
            offset: offset as u64,
            length: length as u64,
        });
    }
    let map = SparseMap {
        real_size: real_size as u64,
        regions: out,
    };
    if map.stored_size() != stored {
        return Err(invalid(&format!(
            "regions hold {} bytes, the archive stores {stored}",
            map.stored_size()
        )));
    }
    Ok(map)
}

/// Regions of an old-GNU sparse header block (bytes 386..482: four offset/length pairs) or
/// extension block (bytes 0..504: twenty-one pairs); returns them and whether another
/// extension block follows.
pub fn old_gnu_regions(
    block: &[u8; BLOCK],
    extension: bool,
) -> Result<(Vec<(i64, i64)>, bool), ArchiveError> {
    let (start, count, extended_at) = if extension {
        (0, 21, 504)
    } else {
        (386, 4, 482)
    };
    let mut regions = Vec::new();
    for i in 0..count {
        let at = start + i * 24;
        // The terminator GNU and BSD tar use: an empty offset field.
        if block[at] == 0 {
            break;
        }
        let offset = parse_numeric(&block[at..at + 12]);
        let length = parse_numeric(&block[at + 12..at + 24]);
        match (offset, length) {
            (Some(o), Some(l)) => regions.push((o, l)),
            _ => return Err(invalid("bad number in an old GNU sparse header")),
        }
    }
    Ok((regions, block[extended_at] != 0))
}

/// The real size of an old-GNU sparse entry (bytes 483..495 of its header block).
pub fn old_gnu_real_size(block: &[u8; BLOCK]) -> Result<i64, ArchiveError> {
    parse_numeric(&block[483..495]).ok_or_else(|| invalid("bad real size"))
}

/// Regions from a `GNU.sparse.map` value with `GNU.sparse.numblocks` entries (0.0, 0.1).
pub fn pax_0x_regions(
    map: &[u8],
    numblocks: Option<&[u8]>,
) -> Result<Vec<(i64, i64)>, ArchiveError> {
    let count: i64 = numblocks
        .and_then(|n| std::str::from_utf8(n).ok())
        .and_then(|n| n.parse().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| invalid("bad GNU.sparse.numblocks"))?;
    let fields: Vec<&[u8]> = if map.is_empty() {
        Vec::new()
    } else {
        map.split(|b| *b == b',').collect()
    };
    if fields.len() as i64 != count.saturating_mul(2) {
        return Err(invalid("GNU.sparse.map does not have numblocks entries"));
    }
    fields
        .chunks(2)
        .map(|pair| Ok((decimal(pair[0])?, decimal(pair[1])?)))
        .collect()
}

fn decimal(text: &[u8]) -> Result<i64, ArchiveError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| invalid("bad number"))
}

/// The PAX 1.0 map text, gathered block by block from the start of the entry's data.
#[derive(Debug, Default)]
pub struct Map1x0 {
    text: Vec<u8>,
    newlines: u64,
    /// The entry count, once its line is complete.
    count: Option<u64>,
}

/// Upper bound on a PAX 1.0 map: a hostile entry cannot make us buffer without limit
/// (Go bounds it by the entry's size; this is the same order as its special-file limit).
const MAX_MAP_1X0: usize = 16 << 20;

impl Map1x0 {
    /// Adds the next block; returns the regions once the map is complete.
    pub fn push_block(&mut self, block: &[u8]) -> Result<Option<Vec<(i64, i64)>>, ArchiveError> {
        if self.text.len() + block.len() > MAX_MAP_1X0 {
            return Err(invalid("PAX 1.0 sparse map too large"));
        }
        self.text.extend_from_slice(block);
        self.newlines += block.iter().filter(|b| **b == b'\n').count() as u64;
        if self.newlines == 0 {
            return Ok(None);
        }
        let count = match self.count {
            Some(count) => count,
            None => {
                let first = self.text.split(|b| *b == b'\n').next();
                let count = decimal(first.unwrap_or_default())?;
                let count = u64::try_from(count).map_err(|_| invalid("negative entry count"))?;
                self.count = Some(count);
                count
            }
        };
        if self.newlines < count.saturating_mul(2).saturating_add(1) {
            return Ok(None);
        }
        let mut lines = self.text.split(|b| *b == b'\n').skip(1);
        let mut regions = Vec::new();
        for _ in 0..count {
            let offset = decimal(lines.next().unwrap_or_default())?;
            let length = decimal(lines.next().unwrap_or_default())?;
            regions.push((offset, length));
        }
        Ok(Some(regions))
    }

    /// How many bytes of the entry's data the map took (whole blocks).
    pub fn len(&self) -> u64 {
        self.text.len() as u64
    }

    /// Whether no block was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_like_go() {
        let map = validate(&[(0, 10), (100, 5)], 200, 15).unwrap();
        assert_eq!(map.real_size, 200);
        assert_eq!(map.stored_size(), 15);
        assert!(validate(&[(0, 10), (5, 5)], 200, 15).is_err(), "overlap");
        assert!(validate(&[(100, 5), (0, 10)], 200, 15).is_err(), "order");
        assert!(validate(&[(0, 10), (195, 10)], 200, 20).is_err(), "beyond");
        assert!(validate(&[(-1, 10)], 200, 10).is_err(), "negative");
        assert!(
            validate(&[(i64::MAX, 10)], i64::MAX, 10).is_err(),
            "overflow"
        );
        assert!(validate(&[(0, 10)], 200, 11).is_err(), "stored bytes");
        assert!(
            validate(&[], 200, 0).unwrap().regions.is_empty(),
            "all hole"
        );
    }

    #[test]
    fn pax_1_0_map_spans_blocks() {
        // The map is written in one piece, padded at its end; make it cross a block.
        let mut text = b"3\n0\n10\n".to_vec();
        text.resize(BLOCK - 3, b'0');
        text.extend(b"4096\n10\n8192\n0\n");
        text.resize(2 * BLOCK, 0);
        let mut m = Map1x0::default();
        assert!(m.push_block(&text[..BLOCK]).unwrap().is_none());
        let regions = m.push_block(&text[BLOCK..]).unwrap().unwrap();
        assert_eq!(regions, vec![(0, 10), (4096, 10), (8192, 0)]);
        assert!(
            Map1x0::default().push_block(b"-1\n").is_err(),
            "negative count"
        );
        assert_eq!(m.len(), 2 * BLOCK as u64);
    }

    #[test]
    fn pax_0_x_map() {
        assert_eq!(
            pax_0x_regions(b"0,10,4096,5", Some(b"2")).unwrap(),
            vec![(0, 10), (4096, 5)]
        );
        assert!(pax_0x_regions(b"0,10", Some(b"2")).is_err());
        assert!(pax_0x_regions(b"", Some(b"0")).unwrap().is_empty());
        assert!(pax_0x_regions(b"0,1", None).is_err());
    }
}
