//! An in-memory tree implementing the filesystem traits, for tests of the archive logic without
//! root or a real filesystem. Paths are looked up lexically (no symlink resolution in parents)
//! and `rename` does not move children: enough for the logic under test, which never relies on
//! either.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use crate::fs::{
    DirEntry, FileKind, FileStat, FsError, FsErrorKind, FsRead, FsResult, FsWrite, Timestamp,
};

/// One inode.
#[derive(Debug, Clone)]
pub struct Node {
    /// Status (size kept in sync with `data` for files).
    pub stat: FileStat,
    /// File contents.
    pub data: Vec<u8>,
    /// Symlink target.
    pub target: Vec<u8>,
    /// Extended attributes.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// The tree: paths → inode numbers → nodes.
#[derive(Debug, Clone)]
pub struct MemFs {
    /// Path (cleaned, "" = root) to inode.
    pub paths: BTreeMap<Vec<u8>, u64>,
    /// Inodes.
    pub nodes: BTreeMap<u64, Node>,
    next_ino: u64,
    /// Device number reported for every node.
    pub dev: u64,
    /// When set, lchown fails with `PermissionDenied`.
    pub deny_chown: bool,
}

fn not_found(path: &[u8]) -> FsError {
    FsError::new(
        FsErrorKind::NotFound,
        format!("{} not found", String::from_utf8_lossy(path)),
    )
}

fn parent_of(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => &path[..i],
        None => b"",
    }
}

impl MemFs {
    /// An empty tree on device `dev`, with inode numbers starting at `first_ino`.
    pub fn new(dev: u64, first_ino: u64) -> Self {
        let mut fs = MemFs {
            paths: BTreeMap::new(),
            nodes: BTreeMap::new(),
            next_ino: first_ino,
            dev,
            deny_chown: false,
        };
        let ino = fs.alloc(FileKind::Directory, 0o755);
        fs.paths.insert(Vec::new(), ino);
        fs
    }

    fn alloc(&mut self, kind: FileKind, mode: u32) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                stat: FileStat {
                    kind,
                    mode: mode & 0o7777,
                    uid: 0,
                    gid: 0,
                    size: 0,
                    blocks: 0,
                    mtime: Timestamp::default(),
                    atime: Timestamp::default(),
                    dev: self.dev,
                    ino,
                    nlink: 1,
                    rdev_major: 0,
                    rdev_minor: 0,
                },
                data: Vec::new(),
                target: Vec::new(),
                xattrs: BTreeMap::new(),
            },
        );
        ino
    }

    /// The node at `path`.
    pub fn node(&self, path: &[u8]) -> Option<&Node> {
        self.paths.get(path).and_then(|ino| self.nodes.get(ino))
    }

    fn node_mut(&mut self, path: &[u8]) -> FsResult<&mut Node> {
        let ino = *self.paths.get(path).ok_or_else(|| not_found(path))?;
        self.nodes.get_mut(&ino).ok_or_else(|| not_found(path))
    }

    /// Creates a node at `path` whose parent must be an existing directory.
    fn create(&mut self, path: &[u8], kind: FileKind, mode: u32) -> FsResult<u64> {
        if self.paths.contains_key(path) {
            return Err(FsError::new(FsErrorKind::AlreadyExists, "exists"));
        }
        match self.node(parent_of(path)) {
            None => return Err(not_found(path)),
            Some(p) if p.stat.kind != FileKind::Directory => {
                return Err(FsError::new(FsErrorKind::NotADirectory, "parent not a dir"))
            }
            Some(_) => {}
        }
        let ino = self.alloc(kind, mode);
        self.paths.insert(path.to_vec(), ino);
        Ok(ino)
    }

    /// Puts a regular file with contents (test setup helper).
    pub fn put_file(&mut self, path: &[u8], data: &[u8], mtime: i64) {
        let ino = self
            .create(path, FileKind::Regular, 0o644)
            .expect("put_file");
        let node = self.nodes.get_mut(&ino).expect("node");
        node.data = data.to_vec();
        node.stat.size = data.len() as u64;
        node.stat.mtime = Timestamp {
            secs: mtime,
            nanos: 0,
        };
    }

    /// Puts a directory (test setup helper).
    pub fn put_dir(&mut self, path: &[u8], mtime: i64) {
        let ino = self
            .create(path, FileKind::Directory, 0o755)
            .expect("put_dir");
        self.nodes.get_mut(&ino).expect("node").stat.mtime = Timestamp {
            secs: mtime,
            nanos: 0,
        };
    }

    fn children(&self, dir: &[u8]) -> Vec<Vec<u8>> {
        self.paths
            .keys()
            .filter(|p| !p.is_empty() && p.as_slice() != dir && parent_of(p) == dir)
            .cloned()
            .collect()
    }

    fn unlink(&mut self, path: &[u8]) {
        if let Some(ino) = self.paths.remove(path) {
            let gone = match self.nodes.get_mut(&ino) {
                Some(node) => {
                    node.stat.nlink = node.stat.nlink.saturating_sub(1);
                    node.stat.nlink == 0
                }
                None => false,
            };
            if gone {
                self.nodes.remove(&ino);
            }
        }
    }
}

impl FsRead for MemFs {
    type Output = dyn Write;

    fn lstat(&mut self, path: &[u8]) -> FsResult<Option<FileStat>> {
        Ok(self.node(path).map(|n| n.stat.clone()))
    }

    fn read_dir(&mut self, path: &[u8]) -> FsResult<Vec<DirEntry>> {
        if self.node(path).map(|n| n.stat.kind) != Some(FileKind::Directory) {
            return Err(not_found(path));
        }
        Ok(self
            .children(path)
            .into_iter()
            .filter_map(|p| {
                let node = self.node(&p)?;
                let name = p[p.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1)..].to_vec();
                Some(DirEntry {
                    name,
                    kind: node.stat.kind,
                    ino: node.stat.ino,
                })
            })
            .collect())
    }

    fn readlink(&mut self, path: &[u8]) -> FsResult<Vec<u8>> {
        self.node(path)
            .map(|n| n.target.clone())
            .ok_or_else(|| not_found(path))
    }

    fn read_file(&mut self, path: &[u8], offset: u64, buf: &mut [u8]) -> FsResult<usize> {
        let node = self.node(path).ok_or_else(|| not_found(path))?;
        let start = (offset as usize).min(node.data.len());
        let n = buf.len().min(node.data.len() - start);
        buf[..n].copy_from_slice(&node.data[start..start + n]);
        Ok(n)
    }

    fn copy_file_to_output(
        &mut self,
        path: &[u8],
        len: u64,
        out: &mut Self::Output,
    ) -> FsResult<()> {
        let node = self.node(path).ok_or_else(|| not_found(path))?;
        if (node.data.len() as u64) < len {
            return Err(FsError::new(FsErrorKind::UnexpectedEof, "short file"));
        }
        out.write_all(&node.data[..len as usize])
            .map_err(|e| FsError::new(FsErrorKind::Other, e.to_string()))
    }

    fn get_xattr(&mut self, path: &[u8], name: &str) -> FsResult<Option<Vec<u8>>> {
        let node = self.node(path).ok_or_else(|| not_found(path))?;
        Ok(node.xattrs.get(name).cloned())
    }

    fn list_xattrs(&mut self, path: &[u8]) -> FsResult<Vec<String>> {
        let node = self.node(path).ok_or_else(|| not_found(path))?;
        Ok(node.xattrs.keys().cloned().collect())
    }
}

impl FsWrite for MemFs {
    type Input = dyn Read;

    fn mkdir(&mut self, path: &[u8], mode: u32) -> FsResult<()> {
        self.create(path, FileKind::Directory, mode).map(|_| ())
    }

    fn write_file_from_input(
        &mut self,
        path: &[u8],
        mode: u32,
        len: u64,
        input: &mut Self::Input,
    ) -> FsResult<()> {
        let ino = self.create(path, FileKind::Regular, mode)?;
        let mut data = Vec::new();
        input
            .take(len)
            .read_to_end(&mut data)
            .map_err(|e| FsError::new(FsErrorKind::Other, e.to_string()))?;
        if data.len() as u64 != len {
            return Err(FsError::new(FsErrorKind::UnexpectedEof, "short input"));
        }
        let node = self.nodes.get_mut(&ino).ok_or_else(|| not_found(path))?;
        node.stat.size = len;
        node.data = data;
        Ok(())
    }

    fn create_sparse_file_with_metadata(
        &mut self,
        path: &[u8],
        create_mode: u32,
        map: &crate::fs::SparseMap,
        input: &mut Self::Input,
        meta: &crate::fs::EntryMetadata,
    ) -> FsResult<()> {
        let ino = self.create(path, FileKind::Regular, create_mode)?;
        let size = usize::try_from(map.real_size)
            .map_err(|_| FsError::new(FsErrorKind::Other, "too large for memory"))?;
        let mut data = vec![0u8; size];
        let mut allocated = 0u64;
        for region in &map.regions {
            let start = region.offset as usize;
            let end = start + region.length as usize;
            input
                .read_exact(&mut data[start..end])
                .map_err(|_| FsError::new(FsErrorKind::UnexpectedEof, "short input"))?;
            allocated += region.length;
        }
        let node = self.nodes.get_mut(&ino).ok_or_else(|| not_found(path))?;
        node.stat.size = map.real_size;
        // Only the data regions take room: how a test sees the holes kept.
        node.stat.blocks = allocated.div_ceil(512);
        node.data = data;
        self.set_metadata(path, meta)
    }

    fn symlink(&mut self, target: &[u8], path: &[u8]) -> FsResult<()> {
        let ino = self.create(path, FileKind::Symlink, 0o777)?;
        let node = self.nodes.get_mut(&ino).ok_or_else(|| not_found(path))?;
        node.target = target.to_vec();
        node.stat.size = target.len() as u64;
        Ok(())
    }

    fn hardlink(&mut self, target: &[u8], path: &[u8]) -> FsResult<()> {
        let ino = *self.paths.get(target).ok_or_else(|| not_found(target))?;
        if self.paths.contains_key(path) {
            return Err(FsError::new(FsErrorKind::AlreadyExists, "exists"));
        }
        self.paths.insert(path.to_vec(), ino);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.stat.nlink += 1;
        }
        Ok(())
    }

    fn mknod(
        &mut self,
        path: &[u8],
        kind: FileKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> FsResult<()> {
        let ino = self.create(path, kind, mode)?;
        let node = self.nodes.get_mut(&ino).ok_or_else(|| not_found(path))?;
        node.stat.rdev_major = major;
        node.stat.rdev_minor = minor;
        Ok(())
    }

    fn mkfifo(&mut self, path: &[u8], mode: u32) -> FsResult<()> {
        self.create(path, FileKind::Fifo, mode).map(|_| ())
    }

    fn lchown(&mut self, path: &[u8], uid: u32, gid: u32) -> FsResult<()> {
        if self.deny_chown {
            return Err(FsError::new(FsErrorKind::PermissionDenied, "chown denied"));
        }
        let node = self.node_mut(path)?;
        node.stat.uid = uid;
        node.stat.gid = gid;
        Ok(())
    }

    fn chmod(&mut self, path: &[u8], mode: u32) -> FsResult<()> {
        self.node_mut(path)?.stat.mode = mode & 0o7777;
        Ok(())
    }

    fn set_xattr(&mut self, path: &[u8], name: &str, value: &[u8]) -> FsResult<()> {
        self.node_mut(path)?
            .xattrs
            .insert(name.to_string(), value.to_vec());
        Ok(())
    }

    fn remove_xattr(&mut self, path: &[u8], name: &str) -> FsResult<()> {
        self.node_mut(path)?.xattrs.remove(name);
        Ok(())
    }

    fn set_times(&mut self, path: &[u8], atime: Timestamp, mtime: Timestamp) -> FsResult<()> {
        let node = self.node_mut(path)?;
        node.stat.atime = atime;
        node.stat.mtime = mtime;
        Ok(())
    }

    fn remove(&mut self, path: &[u8]) -> FsResult<()> {
        if !self.paths.contains_key(path) {
            return Err(not_found(path));
        }
        if !self.children(path).is_empty() {
            return Err(FsError::new(FsErrorKind::NotEmpty, "not empty"));
        }
        self.unlink(path);
        Ok(())
    }

    fn remove_all(&mut self, path: &[u8]) -> FsResult<()> {
        for child in self.children(path) {
            self.remove_all(&child)?;
        }
        self.unlink(path);
        Ok(())
    }

    fn rename(&mut self, from: &[u8], to: &[u8]) -> FsResult<()> {
        let ino = self.paths.remove(from).ok_or_else(|| not_found(from))?;
        self.paths.insert(to.to_vec(), ino);
        Ok(())
    }
}
