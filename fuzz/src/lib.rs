//! What the fuzz targets share: a checking filesystem over `storage_archive::memfs`, a reader
//! that hands out its bytes in short reads, and the files of a tar as a `FileGetter`.
//!
//! Everything here calls public APIs only, so that the targets follow the crates when they
//! are split or moved.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use storage_archive::fs::{
    DirEntry, EntryMetadata, FileKind, FileStat, FsError, FsErrorKind, FsRead, FsResult, FsWrite,
    SparseMap, Timestamp,
};
use storage_archive::memfs::MemFs;
use storage_archive::TarStreamReader;
use storage_driver::{DriverError, DriverResult, FileGetter};

/// Largest sparse file the harness keeps in memory (its holes are real zeros in `MemFs`).
pub const MAX_SPARSE_FILE: u64 = 16 << 20;

/// Whether `path` is what the archive logic promises the filesystem: relative, `/`-separated,
/// no empty, `.` or `..` component, no trailing `/` (the empty path is the root).
pub fn is_clean(path: &[u8]) -> bool {
    path.is_empty()
        || path
            .split(|b| *b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// A tiny deterministic generator (xorshift) for chunk sizes and choices derived from a seed
/// taken from the fuzz input.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `1..=max`.
    pub fn size(&mut self, max: usize) -> usize {
        1 + (self.next_u64() % max.max(1) as u64) as usize
    }
}

/// A reader over a byte slice that returns short reads of pseudo-random sizes, as pipes and
/// decompressors do, and remembers how far it got.
pub struct ChunkedReader<'a> {
    data: &'a [u8],
    /// Bytes handed out so far.
    pub position: usize,
    rng: Rng,
    max_chunk: usize,
}

impl<'a> ChunkedReader<'a> {
    /// Reads of 1 to `max_chunk` bytes (whole reads when `max_chunk` is 0).
    pub fn new(data: &'a [u8], seed: u64, max_chunk: usize) -> Self {
        ChunkedReader {
            data,
            position: 0,
            rng: Rng::new(seed),
            max_chunk,
        }
    }
}

impl Read for ChunkedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.data.len() - self.position;
        let mut n = buf.len().min(left);
        if self.max_chunk > 0 {
            n = n.min(self.rng.size(self.max_chunk));
        }
        buf[..n].copy_from_slice(&self.data[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

/// `MemFs` behind the archive traits with the contract checked on every call: each path the
/// archive logic passes must be clean ([`is_clean`]); sparse files larger than
/// [`MAX_SPARSE_FILE`] are refused with a filesystem error (a real filesystem keeps the holes,
/// `MemFs` would allocate them).
pub struct CheckedFs {
    /// The tree.
    pub inner: MemFs,
}

fn check(op: &str, path: &[u8]) {
    assert!(
        is_clean(path),
        "the archive logic passed an unclean path to {op}: {:?}",
        String::from_utf8_lossy(path)
    );
}

impl FsRead for CheckedFs {
    type Output = dyn Write;

    fn lstat(&mut self, path: &[u8]) -> FsResult<Option<FileStat>> {
        check("lstat", path);
        self.inner.lstat(path)
    }

    fn read_dir(&mut self, path: &[u8]) -> FsResult<Vec<DirEntry>> {
        check("read_dir", path);
        self.inner.read_dir(path)
    }

    fn readlink(&mut self, path: &[u8]) -> FsResult<Vec<u8>> {
        check("readlink", path);
        self.inner.readlink(path)
    }

    fn read_file(&mut self, path: &[u8], offset: u64, buf: &mut [u8]) -> FsResult<usize> {
        check("read_file", path);
        self.inner.read_file(path, offset, buf)
    }

    fn copy_file_to_output(
        &mut self,
        path: &[u8],
        len: u64,
        out: &mut Self::Output,
    ) -> FsResult<()> {
        check("copy_file_to_output", path);
        self.inner.copy_file_to_output(path, len, out)
    }

    fn get_xattr(&mut self, path: &[u8], name: &str) -> FsResult<Option<Vec<u8>>> {
        check("get_xattr", path);
        self.inner.get_xattr(path, name)
    }

    fn list_xattrs(&mut self, path: &[u8]) -> FsResult<Vec<String>> {
        check("list_xattrs", path);
        self.inner.list_xattrs(path)
    }
}

impl FsWrite for CheckedFs {
    type Input = dyn Read;

    fn mkdir(&mut self, path: &[u8], mode: u32) -> FsResult<()> {
        check("mkdir", path);
        self.inner.mkdir(path, mode)
    }

    fn write_file_from_input(
        &mut self,
        path: &[u8],
        mode: u32,
        len: u64,
        input: &mut Self::Input,
    ) -> FsResult<()> {
        check("write_file_from_input", path);
        self.inner.write_file_from_input(path, mode, len, input)
    }

    fn symlink(&mut self, target: &[u8], path: &[u8]) -> FsResult<()> {
        check("symlink", path);
        self.inner.symlink(target, path)
    }

    fn hardlink(&mut self, target: &[u8], path: &[u8]) -> FsResult<()> {
        check("hardlink (target)", target);
        check("hardlink", path);
        self.inner.hardlink(target, path)
    }

    fn mknod(
        &mut self,
        path: &[u8],
        kind: FileKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> FsResult<()> {
        check("mknod", path);
        self.inner.mknod(path, kind, mode, major, minor)
    }

    fn mkfifo(&mut self, path: &[u8], mode: u32) -> FsResult<()> {
        check("mkfifo", path);
        self.inner.mkfifo(path, mode)
    }

    fn lchown(&mut self, path: &[u8], uid: u32, gid: u32) -> FsResult<()> {
        check("lchown", path);
        self.inner.lchown(path, uid, gid)
    }

    fn chmod(&mut self, path: &[u8], mode: u32) -> FsResult<()> {
        check("chmod", path);
        self.inner.chmod(path, mode)
    }

    fn set_xattr(&mut self, path: &[u8], name: &str, value: &[u8]) -> FsResult<()> {
        check("set_xattr", path);
        self.inner.set_xattr(path, name, value)
    }

    fn remove_xattr(&mut self, path: &[u8], name: &str) -> FsResult<()> {
        check("remove_xattr", path);
        self.inner.remove_xattr(path, name)
    }

    fn set_times(&mut self, path: &[u8], atime: Timestamp, mtime: Timestamp) -> FsResult<()> {
        check("set_times", path);
        self.inner.set_times(path, atime, mtime)
    }

    fn remove(&mut self, path: &[u8]) -> FsResult<()> {
        check("remove", path);
        assert!(!path.is_empty(), "the archive logic removed the root");
        self.inner.remove(path)
    }

    fn remove_all(&mut self, path: &[u8]) -> FsResult<()> {
        check("remove_all", path);
        assert!(!path.is_empty(), "the archive logic removed the whole tree");
        self.inner.remove_all(path)
    }

    fn set_metadata(&mut self, path: &[u8], meta: &EntryMetadata) -> FsResult<()> {
        check("set_metadata", path);
        self.inner.set_metadata(path, meta)
    }

    fn create_sparse_file_with_metadata(
        &mut self,
        path: &[u8],
        create_mode: u32,
        map: &SparseMap,
        input: &mut Self::Input,
        meta: &EntryMetadata,
    ) -> FsResult<()> {
        check("create_sparse_file_with_metadata", path);
        let mut end = 0;
        for region in &map.regions {
            assert!(
                region.offset >= end
                    && region
                        .offset
                        .checked_add(region.length)
                        .is_some_and(|e| e <= map.real_size),
                "sparse map out of order or beyond the real size: {map:?}"
            );
            end = region.offset + region.length;
        }
        if map.real_size > MAX_SPARSE_FILE {
            return Err(FsError::new(
                FsErrorKind::Other,
                "sparse file too large for the fuzz harness",
            ));
        }
        self.inner
            .create_sparse_file_with_metadata(path, create_mode, map, input, meta)
    }

    fn rename(&mut self, from: &[u8], to: &[u8]) -> FsResult<()> {
        check("rename (from)", from);
        check("rename", to);
        self.inner.rename(from, to)
    }
}

/// Checks what a tree must look like after anything the archive logic did to it: every path
/// clean, below an existing directory, and naming an existing node.
pub fn check_tree(fs: &MemFs) {
    for (path, ino) in &fs.paths {
        assert!(
            is_clean(path),
            "a node outside the root or at an unclean path: {:?}",
            String::from_utf8_lossy(path)
        );
        assert!(fs.nodes.contains_key(ino), "path to a missing node");
        if !path.is_empty() {
            let parent = storage_archive::paths::parent(path);
            let kind = fs.node(parent).map(|n| n.stat.kind);
            assert_eq!(
                kind,
                Some(FileKind::Directory),
                "{:?} is not below a directory",
                String::from_utf8_lossy(path)
            );
        }
    }
    assert_eq!(
        fs.node(b"").map(|n| n.stat.kind),
        Some(FileKind::Directory),
        "the root is no longer a directory"
    );
}

/// A small tree to apply layers onto, so that whiteouts, replacements and paths through
/// symlinks meet something: directories, a file, a hard link, symlinks leading up and out.
pub fn base_tree() -> MemFs {
    let mut fs = MemFs::new(1, 10);
    fs.put_dir(b"etc", 1);
    fs.put_file(b"etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 1);
    fs.put_dir(b"usr", 1);
    fs.put_dir(b"usr/bin", 1);
    fs.put_file(b"usr/bin/sh", b"\x7fELF", 1);
    let links: [(&[u8], &[u8]); 4] = [
        (b"/etc", b"abs"),
        (b"../../..", b"up"),
        (b"usr/bin", b"bin"),
        (b"/", b"root"),
    ];
    for (target, path) in links {
        fs.symlink(target, path).expect("symlink in a fresh tree");
    }
    fs.hardlink(b"usr/bin/sh", b"usr/bin/ash")
        .expect("hard link in a fresh tree");
    fs
}

/// The content of each entry of a tar by its name as stored, as its extraction would hold it
/// (a sparse file with its holes as zeros); `None` when the tar does not parse to its end or
/// a sparse file is over [`MAX_SPARSE_FILE`].
pub fn tar_files(tar: &[u8]) -> Option<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut reader = TarStreamReader::new(tar);
    let mut files = BTreeMap::new();
    while let Some(entry) = reader.next_entry().ok()? {
        let mut stored = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = reader.read_payload(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            stored.extend_from_slice(&buf[..n]);
        }
        let content = match &entry.sparse {
            None => stored,
            Some(map) => {
                if map.real_size > MAX_SPARSE_FILE {
                    return None;
                }
                let mut content = vec![0u8; map.real_size as usize];
                let mut at = 0usize;
                for region in &map.regions {
                    let (start, len) = (region.offset as usize, region.length as usize);
                    content[start..start + len].copy_from_slice(&stored[at..at + len]);
                    at += len;
                }
                content
            }
        };
        files.insert(entry.path, content);
    }
    Some(files)
}

/// Serves files from a map, as a driver serves them from a layer.
pub struct MapGetter(pub BTreeMap<Vec<u8>, Vec<u8>>);

impl FileGetter for MapGetter {
    fn get(&mut self, path: &[u8]) -> DriverResult<Box<dyn Read + '_>> {
        match self.0.get(path) {
            Some(content) => Ok(Box::new(&content[..])),
            None => Err(DriverError::io(
                "fuzz getter",
                io::Error::from(io::ErrorKind::NotFound),
            )),
        }
    }
}

/// Serves files from a tree an archive was applied to, by their cleaned names.
pub struct MemFsGetter<'a>(pub &'a MemFs);

impl FileGetter for MemFsGetter<'_> {
    fn get(&mut self, path: &[u8]) -> DriverResult<Box<dyn Read + '_>> {
        let missing = || DriverError::io("fuzz getter", io::Error::from(io::ErrorKind::NotFound));
        let clean = storage_archive::paths::clean_entry_path(path).map_err(|_| missing())?;
        let node = self.0.node(&clean).ok_or_else(missing)?;
        if node.stat.kind != FileKind::Regular {
            return Err(missing());
        }
        Ok(Box::new(&node.data[..]))
    }
}

/// A writer that only counts.
#[derive(Default)]
pub struct Counter(pub u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
