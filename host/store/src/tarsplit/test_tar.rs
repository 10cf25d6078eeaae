//! Tars built block by block for the tests.

/// A tar being built.
#[derive(Default)]
pub(crate) struct TestTar {
    pub(crate) bytes: Vec<u8>,
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    field[..width].copy_from_slice(digits.as_bytes());
    field[width] = 0;
}

/// A USTAR (or, with `gnu`, GNU) header block with a valid checksum.
pub(crate) fn header(
    name: &[u8],
    typeflag: u8,
    size: u64,
    owner: (u64, u64),
    link: &[u8],
    gnu: bool,
) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[..name.len()].copy_from_slice(name);
    let mode = if typeflag == b'5' { 0o755 } else { 0o644 };
    octal(&mut b[100..108], mode);
    octal(&mut b[108..116], owner.0);
    octal(&mut b[116..124], owner.1);
    octal(&mut b[124..136], size);
    octal(&mut b[136..148], 1_700_000_000);
    b[156] = typeflag;
    b[157..157 + link.len()].copy_from_slice(link);
    if gnu {
        b[257..265].copy_from_slice(b"ustar  \0");
    } else {
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
    }
    b[265..269].copy_from_slice(b"root");
    b[297..301].copy_from_slice(b"root");
    checksum(&mut b);
    b
}

/// Sets a header block's checksum (six octal digits, NUL, space, as Go and GNU tar write).
pub(crate) fn checksum(b: &mut [u8; 512]) {
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    let digits = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(digits.as_bytes());
}

impl TestTar {
    fn content(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, pad));
    }

    /// A regular file.
    pub(crate) fn file(&mut self, name: &[u8], data: &[u8], owner: (u64, u64)) -> &mut Self {
        let h = header(name, b'0', data.len() as u64, owner, b"", false);
        self.bytes.extend_from_slice(&h);
        self.content(data);
        self
    }

    /// A directory.
    pub(crate) fn dir(&mut self, name: &[u8], owner: (u64, u64)) -> &mut Self {
        let h = header(name, b'5', 0, owner, b"", false);
        self.bytes.extend_from_slice(&h);
        self
    }

    /// A hard link (`typeflag` b'1') or symlink (b'2') to `target`.
    pub(crate) fn link(&mut self, name: &[u8], typeflag: u8, target: &[u8]) -> &mut Self {
        let h = header(name, typeflag, 0, (0, 0), target, false);
        self.bytes.extend_from_slice(&h);
        self
    }

    /// A PAX extended header applying to the next entry.
    pub(crate) fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            let body = key.len() + value.len() + 3;
            let mut len = body + 1;
            while format!("{len}").len() + body != len {
                len += 1;
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let h = header(
            b"PaxHeaders.0/x",
            b'x',
            data.len() as u64,
            (0, 0),
            b"",
            false,
        );
        self.bytes.extend_from_slice(&h);
        self.content(&data);
        self
    }

    /// A PAX global header (an entry of its own for tar-split).
    pub(crate) fn global_pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let start = self.bytes.len();
        self.pax(records);
        let mut h: [u8; 512] = self.bytes[start..start + 512].try_into().expect("block");
        let size = u64::from_str_radix(std::str::from_utf8(&h[124..135]).expect("octal"), 8)
            .expect("size");
        h = header(b"pax_global_header", b'g', size, (0, 0), b"", false);
        self.bytes[start..start + 512].copy_from_slice(&h);
        self
    }

    /// A GNU long-name header naming the next entry.
    pub(crate) fn gnu_long_name(&mut self, name: &[u8]) -> &mut Self {
        let mut data = name.to_vec();
        data.push(0);
        let h = header(b"././@LongLink", b'L', data.len() as u64, (0, 0), b"", true);
        self.bytes.extend_from_slice(&h);
        self.content(&data);
        self
    }

    /// A character (`typeflag` b'3') or block (b'4') device.
    pub(crate) fn device(
        &mut self,
        name: &[u8],
        typeflag: u8,
        major: u64,
        minor: u64,
    ) -> &mut Self {
        let mut h = header(name, typeflag, 0, (0, 0), b"", false);
        octal(&mut h[329..337], major);
        octal(&mut h[337..345], minor);
        checksum(&mut h);
        self.bytes.extend_from_slice(&h);
        self
    }

    /// A sparse file in PAX 1.0 form (GNU tar's `--sparse-version=1.0`): the real name and
    /// size in PAX records, the map as text blocks at the start of the data, then the data of
    /// each region (`regions` are offset and data, in order, within `real_size`).
    pub(crate) fn sparse_pax1(
        &mut self,
        name: &[u8],
        real_size: u64,
        regions: &[(u64, &[u8])],
    ) -> &mut Self {
        let size = real_size.to_string();
        self.pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", name),
            ("GNU.sparse.realsize", size.as_bytes()),
        ]);
        let mut map = format!("{}\n", regions.len());
        for (offset, data) in regions {
            map.push_str(&format!("{offset}\n{}\n", data.len()));
        }
        let mut payload = map.into_bytes();
        payload.resize(payload.len().div_ceil(512) * 512, 0);
        for (_, data) in regions {
            payload.extend_from_slice(data);
        }
        let h = header(
            b"GNUSparseFile.0/sparse",
            b'0',
            payload.len() as u64,
            (0, 0),
            b"",
            false,
        );
        self.bytes.extend_from_slice(&h);
        self.content(&payload);
        self
    }

    /// A sparse file in old-GNU form (type `S`, `tar --sparse --format=gnu`): four regions in
    /// the header, the others in extension blocks of 21, then the data of each region.
    pub(crate) fn sparse_old_gnu(
        &mut self,
        name: &[u8],
        real_size: u64,
        regions: &[(u64, &[u8])],
    ) -> &mut Self {
        let stored: usize = regions.iter().map(|(_, d)| d.len()).sum();
        let mut h = header(name, b'S', stored as u64, (0, 0), b"", true);
        let (first, rest) = regions.split_at(regions.len().min(4));
        for (i, (offset, data)) in first.iter().enumerate() {
            octal(&mut h[386 + i * 24..398 + i * 24], *offset);
            octal(&mut h[398 + i * 24..410 + i * 24], data.len() as u64);
        }
        h[482] = u8::from(!rest.is_empty());
        octal(&mut h[483..495], real_size);
        checksum(&mut h);
        self.bytes.extend_from_slice(&h);
        let chunks: Vec<_> = rest.chunks(21).collect();
        for (n, chunk) in chunks.iter().enumerate() {
            let mut b = [0u8; 512];
            for (i, (offset, data)) in chunk.iter().enumerate() {
                octal(&mut b[i * 24..12 + i * 24], *offset);
                octal(&mut b[12 + i * 24..24 + i * 24], data.len() as u64);
            }
            b[504] = u8::from(n + 1 < chunks.len());
            self.bytes.extend_from_slice(&b);
        }
        let data: Vec<u8> = regions
            .iter()
            .flat_map(|(_, d)| d.iter().copied())
            .collect();
        self.content(&data);
        self
    }

    /// The two end-of-archive blocks.
    pub(crate) fn end(&mut self) -> &mut Self {
        self.bytes.extend(std::iter::repeat_n(0u8, 1024));
        self
    }

    /// Raw bytes (junk after the end, say).
    pub(crate) fn raw(&mut self, data: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(data);
        self
    }
}

/// The archive of many kinds the tests share: nested dirs, files with padding and
/// without, links, PAX long names and xattrs, a GNU long name, a whiteout owned by
/// an ID that must not be logged, names that are not UTF-8 or need JSON escapes.
pub(crate) fn varied() -> TestTar {
    let long = format!("d/{}", "n".repeat(150));
    let gnu_long = format!("d/{}", "g".repeat(120));
    let mut t = TestTar::default();
    t.dir(b"d/", (0, 0))
        .file(b"d/a", b"hello\n", (1000, 1001))
        .file(b"d/block", &[7u8; 512], (0, 0))
        .file(b"d/empty", b"", (0, 0))
        .link(b"d/hard", b'1', b"d/a")
        .link(b"d/sym", b'2', b"a")
        .pax(&[("path", long.as_bytes()), ("SCHILY.xattr.user.k", b"v\0x")])
        .file(b"placeholder", &[b'x'; 700], (5, 6))
        .gnu_long_name(gnu_long.as_bytes())
        .file(b"shortened", b"gnu", (0, 0))
        .file(b"d/.wh.gone", b"", (4242, 4343))
        .file(b"d/caf\xe9", b"latin1", (0, 0))
        .file(b"d/<q\"&>\x01", b"esc", (0, 0))
        .pax(&[("uid", b"70000"), ("gid", b"70001")])
        .file(b"d/bigid", b"z", (0, 0))
        .end();
    t
}
