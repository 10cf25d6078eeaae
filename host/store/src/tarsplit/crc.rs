//! The CRC-64 tar-split records of each file's content (Go's `crc64.MakeTable(crc64.ISO)`).

use crc_fast::{CrcAlgorithm, Digest as Crc64Digest};

/// A new digest of the CRC tar-split stores for file contents (Go's
/// `crc64.MakeTable(crc64.ISO)`). Every byte of every imported or re-created file goes through
/// it, so it is `crc-fast`'s carry-less-multiply (PCLMULQDQ) implementation, many times the
/// speed of a table-driven one.
pub(super) fn crc64() -> Crc64Digest {
    Crc64Digest::new(CrcAlgorithm::Crc64GoIso)
}

/// The CRC-64 of a file's content, able to count a run of zeros without reading them (a hole
/// of a sparse file may be terabytes: hashing them byte by byte would be a denial of service).
pub(super) struct FileCrc {
    digest: Crc64Digest,
}

/// `xorout` of CRC-64/GO-ISO: the digest's state is the checksum with it applied.
const CRC64_XOROUT: u64 = u64::MAX;

/// Holes up to this size are hashed as a buffer of zeros; longer ones are combined.
const ZEROS_BUFFER: u64 = 64 * 1024;

impl FileCrc {
    pub(super) fn new() -> Self {
        FileCrc { digest: crc64() }
    }

    pub(super) fn update(&mut self, data: &[u8]) {
        self.digest.update(data);
    }

    pub(super) fn finalize(&self) -> u64 {
        self.digest.finalize()
    }

    /// Appends `n` zero bytes.
    pub(super) fn zeros(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        if n <= ZEROS_BUFFER {
            static ZEROS: [u8; ZEROS_BUFFER as usize] = [0; ZEROS_BUFFER as usize];
            // Bounded by ZEROS_BUFFER just above.
            self.digest.update(&ZEROS[..n as usize]);
            return;
        }
        let combined = crc_fast::checksum_combine(
            CrcAlgorithm::Crc64GoIso,
            self.digest.finalize(),
            crc64_of_zeros(n),
            n,
        );
        self.digest =
            Crc64Digest::new_with_init_state(CrcAlgorithm::Crc64GoIso, combined ^ CRC64_XOROUT);
    }
}

/// The CRC-64 of `n` zero bytes, by doubling: O(log n) combinations.
fn crc64_of_zeros(n: u64) -> u64 {
    let alg = CrcAlgorithm::Crc64GoIso;
    let mut result: Option<(u64, u64)> = None;
    let (mut power, mut power_len) = (crc_fast::checksum(alg, &[0]), 1u64);
    let mut rest = n;
    while rest > 0 {
        if rest & 1 == 1 {
            result = Some(match result {
                None => (power, power_len),
                Some((crc, len)) => (
                    crc_fast::checksum_combine(alg, crc, power, power_len),
                    len + power_len,
                ),
            });
        }
        rest >>= 1;
        if rest > 0 {
            power = crc_fast::checksum_combine(alg, power, power, power_len);
            power_len *= 2;
        }
    }
    result.map_or_else(|| crc_fast::checksum(alg, &[]), |(crc, _)| crc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast CRC is Go's `crc64.ISO` checksum, as the table-driven reference computes it,
    /// over lengths that exercise its SIMD folding, its tail and split updates.
    #[test]
    fn crc64_matches_the_reference_go_iso_checksum() {
        let reference = ::crc::Crc::<u64>::new(&::crc::CRC_64_GO_ISO);
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 15, 16, 17, 127, 128, 255, 256, 4096, 65_537, 70_000] {
            let mut digest = crc64();
            let (a, b) = data[..len].split_at(len / 3);
            digest.update(a);
            digest.update(b);
            assert_eq!(digest.finalize(), reference.checksum(&data[..len]), "{len}");
        }
    }
}
