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

#[cfg(test)]
mod tests {
    use super::*;

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
