//! Go's `%q` for strings (`strconv.Quote`), as upstream's messages and `changes` quote names
//! and paths; and, re-exported from the archive crate, OS errors in Go's words.
//!
//! Go decides what to escape with `unicode.IsPrint` (letters, marks, numbers, punctuation,
//! symbols and the ASCII space). Rust's std has no general-category table and pulling a
//! Unicode crate in for one command did not seem worth it, so non-ASCII characters are
//! judged by the categories that are not printable: controls, separators other than the
//! ASCII space, format characters, private use and noncharacters. Unassigned code points
//! are the one difference left (Go escapes them, this prints them).

pub use storage_archive::error::os_error_text;

/// Quotes `s` as Go's `strconv.Quote` does.
pub fn quote(s: &str) -> String {
    quote_bytes(s.as_bytes())
}

/// Quotes raw bytes as Go's `strconv.Quote` does for a string holding them: invalid UTF-8
/// bytes become `\xNN`.
pub fn quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                push_escaped(&mut out, valid);
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                // The prefix was just checked to be valid UTF-8.
                push_escaped(&mut out, std::str::from_utf8(valid).unwrap_or_default());
                let bad = e.error_len().unwrap_or(after.len()).max(1);
                for b in &after[..bad] {
                    out.push_str(&format!("\\x{b:02x}"));
                }
                rest = &after[bad..];
            }
        }
    }
    out.push('"');
    out
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if is_print(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
}

/// Go's `strconv.IsPrint`, approximated as described in the module documentation.
fn is_print(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    const NOT_PRINT: &[(u32, u32)] = &[
        (0x00ad, 0x00ad),    // soft hyphen (Cf)
        (0x0600, 0x0605),    // Arabic number signs (Cf)
        (0x061c, 0x061c),    // Arabic letter mark (Cf)
        (0x06dd, 0x06dd),    // (Cf)
        (0x070f, 0x070f),    // (Cf)
        (0x180e, 0x180e),    // Mongolian vowel separator (Cf)
        (0x200b, 0x200f),    // zero-width space, joiners, marks (Cf)
        (0x2028, 0x202e),    // line/paragraph separators, bidi embeddings
        (0x2060, 0x206f),    // word joiner, invisible operators, bidi isolates (Cf)
        (0xd800, 0xdfff),    // surrogates
        (0xe000, 0xf8ff),    // private use
        (0xfdd0, 0xfdef),    // noncharacters
        (0xfeff, 0xfeff),    // byte order mark (Cf)
        (0xfff9, 0xfffb),    // interlinear annotation (Cf)
        (0xfffe, 0xffff),    // noncharacters
        (0x110bd, 0x110bd),  // (Cf)
        (0x1d173, 0x1d17a),  // musical formatting (Cf)
        (0xe0001, 0xe007f),  // tags (Cf)
        (0xf0000, 0x10ffff), // private use planes
    ];
    !NOT_PRINT.iter().any(|&(lo, hi)| (lo..=hi).contains(&u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_just_quoted() {
        assert_eq!(quote("/etc/passwd"), "\"/etc/passwd\"");
        assert_eq!(quote("/a b"), "\"/a b\"");
    }

    #[test]
    fn escapes_like_go() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("\n\t\r\u{7}\u{8}\u{c}\u{b}"), r#""\n\t\r\a\b\f\v""#);
        assert_eq!(quote("\u{0}\u{1b}\u{7f}"), r#""\x00\x1b\x7f""#);
        assert_eq!(quote("\u{a0}\u{200b}\u{feff}"), r#""\u00a0\u200b\ufeff""#);
        assert_eq!(quote("\u{f0000}"), r#""\U000f0000""#);
    }

    #[test]
    fn printable_unicode_stays() {
        assert_eq!(quote("/héllo/日本/🎉"), "\"/héllo/日本/🎉\"");
    }

    #[test]
    fn invalid_utf8_bytes_are_hex() {
        assert_eq!(quote_bytes(b"/a\xffb\xc3"), r#""/a\xffb\xc3""#);
    }
}
