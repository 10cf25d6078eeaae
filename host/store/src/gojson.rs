//! JSON output byte-compatible with Go's `encoding/json`, and Go's time format.
//!
//! Scripts compare our `-j` output and our JSON files with the Go implementation's, so the
//! escaping has to be Go's: besides what serde_json escapes, Go writes `<`, `>`, `&`,
//! U+2028 and U+2029 as `\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029` (HTML safety).

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};

/// serde_json's compact formatter with Go's extra escapes.
#[derive(Debug, Default, Clone, Copy)]
pub struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        // Almost no fragment has anything Go escapes more: one pass over the bytes (0xE2
        // leads U+2028 and U+2029 in UTF-8) instead of decoding every character, which
        // was most of the cost of saving a store of many records.
        if !needs_go_escape(fragment.as_bytes()) {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape: Option<&[u8]> = match c {
                '<' => Some(b"\\u003c"),
                '>' => Some(b"\\u003e"),
                '&' => Some(b"\\u0026"),
                '\u{2028}' => Some(b"\\u2028"),
                '\u{2029}' => Some(b"\\u2029"),
                _ => None,
            };
            if let Some(escape) = escape {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                writer.write_all(escape)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W>(&mut self, writer: &mut W, char_escape: CharEscape) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        // Go 1.22+ (which upstream 1.60 is built with) writes \b and \f in short form like
        // serde_json; listed in full so a reader sees every escape in one place.
        let bytes: &[u8] = match char_escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"\\/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let s = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(byte >> 4) as usize],
                    HEX[(byte & 0xf) as usize],
                ];
                return writer.write_all(&s);
            }
        };
        writer.write_all(bytes)
    }
}

/// Whether `bytes` hold anything Go escapes beyond serde_json: `<`, `>`, `&`, or 0xE2, the
/// first byte of U+2028 and U+2029 (and of other characters, which the slow path keeps).
fn needs_go_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Eight bytes at a time: a byte of `w` equals `b` where `w ^ (b * ONES)` has a zero
    // byte, and `(x - ONES) & !x & HIGHS` is nonzero exactly when `x` has one. A block of
    // four words is checked without an early exit. About 4 GB/s here, eight times a
    // byte-by-byte check, which was the largest part of saving a store of many records.
    fn zero_byte(x: u64) -> u64 {
        x.wrapping_sub(ONES) & !x & HIGHS
    }
    fn special_in(w: u64) -> u64 {
        [b'<', b'>', b'&', 0xE2]
            .iter()
            .fold(0, |hit, &b| hit | zero_byte(w ^ (ONES * u64::from(b))))
    }
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        let hit = block.chunks_exact(8).fold(0, |hit, word| {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            hit | special_in(u64::from_le_bytes(w))
        });
        if hit != 0 {
            return true;
        }
    }
    blocks
        .remainder()
        .iter()
        .any(|&b| matches!(b, b'<' | b'>' | b'&' | 0xE2))
}

/// Appends `value` to `out` the way Go's `json.Marshal` would write it.
///
/// It is first written with serde_json's own compact formatter, which escapes exactly as
/// Go does but for `<`, `>`, `&`, U+2028 and U+2029: when the output has none of those
/// bytes (they can only come from strings), it is Go's. Otherwise it is written again
/// with [`GoFormatter`]. One check of the whole output costs far less than one per string
/// (keys and IDs are short strings, and a store's files hold hundreds of thousands).
pub fn append<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let len = out.len();
    // Serializing our records into memory cannot fail: every map key is a string.
    if value
        .serialize(&mut serde_json::Serializer::new(&mut *out))
        .is_ok()
        && !needs_go_escape(&out[len..])
    {
        return;
    }
    out.truncate(len);
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, GoFormatter);
    if value.serialize(&mut ser).is_err() {
        out.truncate(len);
        out.extend_from_slice(b"null");
    }
}

/// Serializes `value` the way Go's `json.Marshal` would (compact, Go escapes).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    append(&mut out, value);
    out
}

/// Appends `text` as a JSON string the way Go's `json.Marshal` writes one.
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    let mut ser = serde_json::Serializer::with_formatter(out, GoFormatter);
    // Writing a string into memory cannot fail.
    let _ = text.serialize(&mut ser);
}

/// Serializes `value` the way Go's `json.Marshal` would, as a string.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    String::from_utf8_lossy(&to_vec(value)).into_owned()
}

/// Serializes a list the way Go serializes a slice that may be nil: an empty list is
/// `null` (upstream's `layers -j` and `images -j` on an empty store print `null`).
pub fn nil_slice_to_string<T: Serialize>(items: &[T]) -> String {
    if items.is_empty() {
        "null".to_string()
    } else {
        to_string(items)
    }
}

/// Formats a time as Go's `time.RFC3339Nano` in UTC: fraction with trailing zeros
/// trimmed (none at all when zero), then `Z`.
pub fn format_rfc3339_nano(t: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::Timelike;
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// The current time in Go's RFC3339Nano UTC form.
pub fn now_rfc3339_nano() -> String {
    format_rfc3339_nano(chrono::Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn escapes_like_go() {
        let s = "a<b>&c\u{2028}\u{2029}\"\\\n\t\u{1}\u{8}\u{c}é";
        assert_eq!(
            to_string(s),
            r#""a\u003cb\u003e\u0026c\u2028\u2029\"\\\n\t\u0001\b\fé""#
        );
        // Other characters whose UTF-8 starts with 0xE2 stay as they are.
        assert_eq!(
            to_string("\u{2027}\u{2030}€<"),
            "\"\u{2027}\u{2030}€\\u003c\""
        );
        assert_eq!(to_string("plain"), "\"plain\"");
        // Long strings go through the block check: a special byte in any block or in the
        // tail is found.
        let long = "x".repeat(100);
        for at in [0, 31, 32, 63, 64, 95, 99] {
            let mut s = long.clone();
            s.replace_range(at..at + 1, "<");
            let mut want = long.clone();
            want.replace_range(at..at + 1, "\\u003c");
            assert_eq!(to_string(&s), format!("\"{want}\""), "at {at}");
        }
        assert_eq!(to_string(&long), format!("\"{long}\""));
    }

    #[test]
    fn the_fast_path_escapes_as_go_does() {
        // Nothing of Go's extra escapes: serde_json's formatter writes it, with Go's
        // escapes of quotes, backslashes and control characters.
        let s = "a\"\\\n\r\t\u{1}\u{8}\u{c}\u{1f}\u{7f}é\u{2027}";
        let want = "\"a\\\"\\\\\\n\\r\\t\\u0001\\b\\f\\u001f\u{7f}é\u{2027}\"";
        assert_eq!(to_string(s), want);
        let mut slow = Vec::new();
        s.serialize(&mut serde_json::Serializer::with_formatter(
            &mut slow,
            GoFormatter,
        ))
        .expect("serialize");
        assert_eq!(slow, want.as_bytes(), "both paths agree");
        // A record with one special character anywhere is written entirely Go's way.
        let record = serde_json::json!({"a": "plain\n", "b": ["x", "y>z"]});
        assert_eq!(
            to_string(&record),
            r#"{"a":"plain\n","b":["x","y\u003ez"]}"#
        );
    }

    #[test]
    fn every_special_byte_is_found_at_every_place() {
        for len in [1, 7, 8, 31, 32, 33, 64, 100] {
            for at in 0..len {
                for special in [b'<', b'>', b'&', 0xE2] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    assert!(needs_go_escape(&bytes), "{special:#x} at {at} of {len}");
                }
                // Neighbours of the special bytes are not special.
                let mut bytes = vec![b'a'; len];
                bytes[at] = [b';', b'=', b'?', b'%', b'\'', 0xE1, 0xE3, 0x80][at % 8];
                assert!(!needs_go_escape(&bytes), "at {at} of {len}");
            }
        }
        assert!(!needs_go_escape(b""));
    }

    #[test]
    fn append_writes_after_what_is_there() {
        let mut out = b"[".to_vec();
        append(&mut out, &vec!["a&b"]);
        assert_eq!(out, br#"[["a\u0026b"]"#);
    }

    #[test]
    fn nil_slices_print_null() {
        let empty: Vec<String> = Vec::new();
        assert_eq!(nil_slice_to_string(&empty), "null");
        assert_eq!(nil_slice_to_string(&["x".to_string()]), r#"["x"]"#);
    }

    #[test]
    fn time_trims_fraction() {
        let base = chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, 0, 11, 25)
            .single();
        let Some(base) = base else { panic!("bad date") };
        assert_eq!(format_rfc3339_nano(base), "2026-11-23T00:11:25Z");
        let t = base + chrono::Duration::nanoseconds(302_344_015);
        assert_eq!(format_rfc3339_nano(t), "2026-11-23T00:11:25.302344015Z");
        let t = base + chrono::Duration::nanoseconds(300_000_000);
        assert_eq!(format_rfc3339_nano(t), "2026-11-23T00:11:25.3Z");
    }
}
