//! PAX extended header records (`"%d %s=%s\n"`), parsed as Go's `parsePAX` does: by the
//! length prefix (values may hold newlines and NULs), GNU sparse 0.0 offset/size pairs
//! folded into one `GNU.sparse.map` record, later records replacing earlier ones.

use crate::error::ArchiveError;

/// Key of the GNU sparse map (0.1, and 0.0 after folding).
pub const GNU_SPARSE_MAP: &[u8] = b"GNU.sparse.map";
const GNU_SPARSE_OFFSET: &[u8] = b"GNU.sparse.offset";
const GNU_SPARSE_NUMBYTES: &[u8] = b"GNU.sparse.numbytes";

/// The records of one extended header, in order of first appearance; a key appears once,
/// with its last value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaxRecords(Vec<(Vec<u8>, Vec<u8>)>);

impl PaxRecords {
    /// The value of `key`, if present.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// Sets `key`, replacing an earlier value in place.
    pub fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Every record, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn malformed(why: &str) -> ArchiveError {
    ArchiveError::InvalidHeader(format!("malformed PAX record: {why}"))
}

/// Parses the data of a PAX header. Anything Go's `parsePAXRecord` refuses is refused
/// (trailing NULs included: Go refuses them too).
pub fn parse_records(mut data: &[u8]) -> Result<PaxRecords, ArchiveError> {
    let mut records = PaxRecords::default();
    let mut sparse_map: Vec<Vec<u8>> = Vec::new();
    while !data.is_empty() {
        let space = data
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| malformed("no length"))?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed("bad length"))?;
        if len < 5 || len > data.len() || len <= space + 1 || data[len - 1] != b'\n' {
            return Err(malformed("length out of range"));
        }
        let record = &data[space + 1..len - 1];
        data = &data[len..];
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(|| malformed("no '='"))?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        // Go's validPAXRecord.
        let names = [&b"path"[..], b"linkpath", b"uname", b"gname"];
        if key.is_empty()
            || (names.contains(&key) && value.contains(&0))
            || (!names.contains(&key) && key.contains(&0))
        {
            return Err(malformed("NUL in a name"));
        }
        if key == GNU_SPARSE_OFFSET || key == GNU_SPARSE_NUMBYTES {
            // GNU sparse 0.0: alternating offset and size records.
            let expect_offset = sparse_map.len().is_multiple_of(2);
            if expect_offset != (key == GNU_SPARSE_OFFSET) || value.contains(&b',') {
                return Err(malformed("GNU sparse 0.0 records out of order"));
            }
            sparse_map.push(value.to_vec());
        } else {
            records.insert(key.to_vec(), value.to_vec());
        }
    }
    if !sparse_map.is_empty() {
        records.insert(GNU_SPARSE_MAP.to_vec(), sparse_map.join(&b","[..]));
    }
    Ok(records)
}

/// Parses a PAX time `secs[.frac]` into normalised (seconds, nanoseconds), as Go's
/// `parsePAXTime`.
pub fn parse_time(value: &[u8]) -> Result<(i64, u32), ArchiveError> {
    let bad = || {
        ArchiveError::InvalidHeader(format!("bad PAX time {:?}", String::from_utf8_lossy(value)))
    };
    let text = std::str::from_utf8(value).map_err(|_| bad())?;
    let (secs_text, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs_text.parse().map_err(|_| bad())?;
    if frac.is_empty() {
        return Ok((secs, 0));
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: u32 = digits.parse().map_err(|_| bad())?;
    if secs_text.starts_with('-') && nanos > 0 {
        Ok((secs.checked_sub(1).ok_or_else(bad)?, 1_000_000_000 - nanos))
    } else {
        Ok((secs, nanos))
    }
}

/// Parses a decimal PAX number (Go's `strconv.ParseInt(v, 10, 64)`).
pub fn parse_int(key: &str, value: &[u8]) -> Result<i64, ArchiveError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            ArchiveError::InvalidHeader(format!(
                "bad PAX {key} {:?}",
                String::from_utf8_lossy(value)
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: &[u8]) -> Vec<u8> {
        let body_len = key.len() + value.len() + 3;
        let mut len = body_len + 1;
        while len.to_string().len() + body_len != len {
            len = len.to_string().len() + body_len;
        }
        let mut out = format!("{len} {key}=").into_bytes();
        out.extend_from_slice(value);
        out.push(b'\n');
        out
    }

    #[test]
    fn values_may_hold_newlines_and_later_records_win() {
        let mut data = record("SCHILY.xattr.user.a", b"x\ny\0z");
        data.extend(record("path", b"first"));
        data.extend(record("path", b"second"));
        let r = parse_records(&data).unwrap();
        assert_eq!(r.get(b"SCHILY.xattr.user.a"), Some(&b"x\ny\0z"[..]));
        assert_eq!(r.get(b"path"), Some(&b"second"[..]));
    }

    #[test]
    fn gnu_sparse_0_0_pairs_become_a_map() {
        let mut data = record("GNU.sparse.offset", b"0");
        data.extend(record("GNU.sparse.numbytes", b"10"));
        data.extend(record("GNU.sparse.offset", b"4096"));
        data.extend(record("GNU.sparse.numbytes", b"5"));
        let r = parse_records(&data).unwrap();
        assert_eq!(r.get(GNU_SPARSE_MAP), Some(&b"0,10,4096,5"[..]));
        let mut bad = record("GNU.sparse.numbytes", b"10");
        bad.extend(record("GNU.sparse.offset", b"0"));
        assert!(parse_records(&bad).is_err());
    }

    #[test]
    fn what_go_refuses_is_refused() {
        assert!(parse_records(b"5 a=\n\0\0").is_err(), "trailing NULs");
        assert!(parse_records(b"10 path=a\0\n").is_err(), "NUL in a path");
        let ok = parse_records(b"20 SCHILY.xattr.a=\0\n").unwrap();
        assert_eq!(ok.get(b"SCHILY.xattr.a"), Some(&b"\0"[..]));
        assert!(parse_records(b"4 a=\n").is_err(), "too short");
        assert!(parse_records(b"99 a=b\n").is_err(), "too long");
        assert!(parse_records(b"6 ab\n\n").is_err(), "no =");
    }

    #[test]
    fn times_like_go() {
        assert_eq!(
            parse_time(b"1700000000.25").unwrap(),
            (1_700_000_000, 250_000_000)
        );
        assert_eq!(parse_time(b"-1.5").unwrap(), (-2, 500_000_000));
        assert_eq!(parse_time(b"5").unwrap(), (5, 0));
        assert_eq!(parse_time(b"5.1234567891").unwrap(), (5, 123_456_789));
        assert!(parse_time(b"5.x").is_err());
        assert!(parse_time(b"-9223372036854775808.5").is_err());
    }
}
