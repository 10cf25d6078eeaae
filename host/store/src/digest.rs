//! sha256 digests and byte counts of streams as they are read, in the `sha256:<hex>` form
//! containers/storage records.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

/// A running sha256 and byte count.
#[derive(Clone, Default)]
pub struct Digester {
    hasher: Sha256,
    count: u64,
}

impl Digester {
    /// A digester that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.count += bytes.len() as u64;
    }

    /// How many bytes were added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest of what was added, as `sha256:<hex>`.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }
}

/// The `sha256:<hex>` digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let mut d = Digester::new();
    d.update(bytes);
    d.digest()
}

/// A reader that passes bytes through and adds every byte read to a [`Digester`].
pub struct DigestingReader<'a, R> {
    inner: R,
    digester: &'a mut Digester,
}

impl<'a, R: Read> DigestingReader<'a, R> {
    /// Reads `inner`, digesting into `digester`.
    pub fn new(inner: R, digester: &'a mut Digester) -> Self {
        DigestingReader { inner, digester }
    }
}

impl<R: Read> Read for DigestingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
}

/// Why a digest is not valid: go-digest's `Validate` errors, in its words (upstream prints
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not `algorithm:encoded`, or not lowercase hex.
    #[error("invalid checksum digest format")]
    Format,
    /// Hex of the wrong length for the algorithm.
    #[error("invalid checksum digest length")]
    Length,
    /// A well-formed digest of an algorithm go-digest does not know.
    #[error("unsupported digest algorithm")]
    Unsupported,
}

/// Checks a digest the way go-digest's `Validate` does: the algorithm before the first
/// `:`; an algorithm it does not know is [`DigestError::Unsupported`] when the digest is
/// well formed, else a bad format; then the length, then lowercase hex.
pub fn validate(d: &str) -> Result<(), DigestError> {
    let (algorithm, encoded) = match d.split_once(':') {
        Some((a, e)) if !a.is_empty() && !e.is_empty() => (a, e),
        _ => return Err(DigestError::Format),
    };
    let len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ if well_formed(algorithm, encoded) => return Err(DigestError::Unsupported),
        _ => return Err(DigestError::Format),
    };
    if encoded.len() != len {
        return Err(DigestError::Length);
    }
    if !encoded
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(DigestError::Format);
    }
    Ok(())
}

/// go-digest's `DigestRegexpAnchored`:
/// `^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`, by hand (one anchored pattern does not
/// need a regex engine).
fn well_formed(algorithm: &str, encoded: &str) -> bool {
    let lower_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let algorithm_ok = algorithm
        .split(['.', '+', '_', '-'])
        .all(|part| !part.is_empty() && part.chars().all(lower_alnum));
    let encoded_ok = encoded
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '=' | '_' | '-'));
    algorithm_ok && encoded_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_validation() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(validate(&good).is_ok());
        assert!(validate("sha256:abc").is_err());
        assert!(validate("nocolon").is_err());
        assert!(validate(&format!("md5:{}", "a".repeat(32))).is_err());
        assert!(validate(&format!("sha256:{}", "A".repeat(64))).is_err());
        // go-digest's messages, as upstream 1.60 prints them.
        let message = |d: &str| validate(d).expect_err("an invalid digest").to_string();
        assert_eq!(message("foo"), "invalid checksum digest format");
        assert_eq!(message("sha256:abc"), "invalid checksum digest length");
        assert_eq!(message("md5:abc"), "unsupported digest algorithm");
        assert_eq!(message("MD5:abc"), "invalid checksum digest format");
        assert_eq!(
            message(&format!("sha256:{}", "A".repeat(64))),
            "invalid checksum digest format"
        );
    }

    #[test]
    fn digests_match_known_values() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut d = Digester::new();
        let mut out = Vec::new();
        DigestingReader::new(&b"abc"[..], &mut d)
            .read_to_end(&mut out)
            .expect("read");
        assert_eq!(out, b"abc");
        assert_eq!(d.count(), 3);
        assert_eq!(
            d.digest(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
