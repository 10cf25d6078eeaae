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
        if !fragment
            .bytes()
            .any(|b| matches!(b, b'<' | b'>' | b'&' | 0xE2))
        {
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

/// Serializes `value` the way Go's `json.Marshal` would (compact, Go escapes).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    // Serializing our records into memory cannot fail: every map key is a string.
    if value.serialize(&mut ser).is_err() {
        return b"null".to_vec();
    }
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
