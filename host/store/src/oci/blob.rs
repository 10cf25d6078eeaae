//! Blobs of a layout read by digest, with their size and digest checked while they
//! stream: a blob that is short, long or not what its digest says fails the read that
//! reaches its end (or goes past its size), so nothing built from it is kept.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::layout::check_digest;
use super::{OciError, Progress, Result};

use crate::digest::Digester;

/// The largest manifest, index or config read whole into memory.
pub const MAX_DOCUMENT_SIZE: u64 = 16 << 20;

/// The blobs of one layout directory.
#[derive(Debug, Clone)]
pub struct BlobReader {
    dir: PathBuf,
}

impl BlobReader {
    /// Blobs under `<dir>/blobs/`.
    pub fn new(dir: &Path) -> Self {
        BlobReader {
            dir: dir.to_path_buf(),
        }
    }

    /// `<dir>/blobs/<alg>/<hex>` (the digest is checked first, so the path stays there).
    pub fn path(&self, digest: &str) -> Result<PathBuf> {
        let (alg, hex) = check_digest(digest)?;
        Ok(self.dir.join("blobs").join(alg).join(hex))
    }

    /// Opens a blob as a stream that fails unless it has exactly `size` bytes and `digest`.
    pub fn open(&self, digest: &str, size: u64) -> Result<VerifyingReader<std::fs::File>> {
        let path = self.path(digest)?;
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(OciError::MissingBlob(digest.to_string()))
            }
            Err(e) => return Err(OciError::io("opening", path, e)),
        };
        VerifyingReader::new(file, digest, size)
    }

    /// Reads a small blob (manifest, index, config) whole, checked.
    pub fn read(&self, digest: &str, size: u64) -> Result<Vec<u8>> {
        if size > MAX_DOCUMENT_SIZE {
            return Err(OciError::Inconsistent(format!(
                "blob {digest} is {size} bytes, too large for a manifest or config"
            )));
        }
        let mut reader = self.open(digest, size)?;
        let mut data = Vec::with_capacity(size as usize);
        reader
            .read_to_end(&mut data)
            .map_err(|e| reader.explain(e))?;
        Ok(data)
    }
}

/// A reader that passes a blob through, counting and digesting it, and fails with
/// `InvalidData` as soon as it has more bytes than its size, or at its end when it has
/// fewer or another digest. [`VerifyingReader::explain`] turns that failure back into the
/// precise [`OciError`].
pub struct VerifyingReader<R> {
    inner: R,
    expected_digest: String,
    expected_size: u64,
    digester: Digester,
    failure: Option<OciError>,
    verified: bool,
}

impl<R: Read> VerifyingReader<R> {
    /// Checks `inner` against `digest` (which must be a valid sha256 digest) and `size`.
    pub fn new(inner: R, digest: &str, size: u64) -> Result<Self> {
        let (alg, _) = check_digest(digest)?;
        if alg != "sha256" {
            return Err(OciError::InvalidDigest(format!(
                "{digest} (only sha256 blobs are supported)"
            )));
        }
        Ok(VerifyingReader {
            inner,
            expected_digest: digest.to_string(),
            expected_size: size,
            digester: Digester::new(),
            failure: None,
            verified: false,
        })
    }

    /// Whether the whole blob was read and found right.
    pub fn verified(&self) -> bool {
        self.verified
    }

    /// The blob's own failure (short, long, other digest), if reading found one.
    pub fn take_failure(&mut self) -> Option<OciError> {
        self.failure.take()
    }

    /// Reads whatever is left, so the blob is checked to its end.
    pub fn finish(&mut self) -> Result<()> {
        io::copy(self, &mut io::sink()).map_err(|e| self.explain(e))?;
        Ok(())
    }

    /// The precise error behind an I/O error this reader returned (or the I/O error as
    /// such, when it came from the file).
    pub fn explain(&mut self, e: io::Error) -> OciError {
        match self.failure.take() {
            Some(f) => f,
            None => OciError::io("reading blob", self.expected_digest.clone(), e),
        }
    }

    fn fail(&mut self, failure: OciError) -> io::Error {
        let e = io::Error::new(io::ErrorKind::InvalidData, failure.to_string());
        self.failure = Some(failure);
        e
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(f) = &self.failure {
            return Err(io::Error::new(io::ErrorKind::InvalidData, f.to_string()));
        }
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        let count = self.digester.count();
        if count > self.expected_size {
            let failure = OciError::SizeMismatch {
                digest: self.expected_digest.clone(),
                expected: self.expected_size,
                actual: count,
            };
            return Err(self.fail(failure));
        }
        if n == 0 && !buf.is_empty() && !self.verified {
            if count != self.expected_size {
                let failure = OciError::SizeMismatch {
                    digest: self.expected_digest.clone(),
                    expected: self.expected_size,
                    actual: count,
                };
                return Err(self.fail(failure));
            }
            let actual = self.digester.digest();
            if actual != self.expected_digest {
                let failure = OciError::DigestMismatch {
                    expected: self.expected_digest.clone(),
                    actual,
                };
                return Err(self.fail(failure));
            }
            self.verified = true;
        }
        Ok(n)
    }
}

/// A reader that tells a [`Progress`] how many bytes went through.
pub struct ProgressReader<'a, R> {
    inner: R,
    progress: &'a mut dyn Progress,
}

impl<'a, R: Read> ProgressReader<'a, R> {
    /// Reports what is read from `inner` to `progress`.
    pub fn new(inner: R, progress: &'a mut dyn Progress) -> Self {
        ProgressReader { inner, progress }
    }
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_digest;

    fn read_all(data: &[u8], digest: &str, size: u64) -> Result<Vec<u8>> {
        let mut r = VerifyingReader::new(data, digest, size)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| r.explain(e))?;
        assert!(r.verified());
        Ok(out)
    }

    #[test]
    fn a_right_blob_reads_through() {
        let data = b"hello blob";
        let out = read_all(data, &sha256_digest(data), data.len() as u64).expect("read");
        assert_eq!(out, data);
    }

    #[test]
    fn short_long_and_wrong_blobs_fail() {
        let data = b"hello blob";
        let digest = sha256_digest(data);
        let e = read_all(data, &digest, 11).expect_err("short");
        assert!(
            matches!(
                e,
                OciError::SizeMismatch {
                    actual: 10,
                    expected: 11,
                    ..
                }
            ),
            "{e}"
        );
        let e = read_all(data, &digest, 4).expect_err("long");
        assert!(
            matches!(e, OciError::SizeMismatch { expected: 4, .. }),
            "{e}"
        );
        let other = sha256_digest(b"other");
        let e = read_all(data, &other, 10).expect_err("digest");
        assert_eq!(e.to_string(), format!("blob {other} has digest {digest}"));
        assert!(VerifyingReader::new(&data[..], "sha256:zz", 1).is_err());
    }

    #[test]
    fn blobs_are_found_by_digest_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = BlobReader::new(dir.path());
        let data = b"{}";
        let digest = sha256_digest(data);
        let e = blobs.read(&digest, 2).expect_err("missing");
        assert_eq!(e.to_string(), format!("blob {digest} is missing"));
        let path = blobs.path(&digest).expect("path");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, data).expect("write");
        assert_eq!(blobs.read(&digest, 2).expect("read"), data);
        std::fs::write(&path, b"{ }").expect("corrupt");
        assert!(matches!(
            blobs.read(&digest, 3),
            Err(OciError::DigestMismatch { .. })
        ));
        assert!(blobs.path("sha256:../x").is_err());
    }
}
