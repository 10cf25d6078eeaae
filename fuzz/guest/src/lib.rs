//! The test guest of the `host_calls` fuzz target: an archive component that does what a
//! script tells it, so that the fuzzer chooses which host functions a guest calls and with
//! what arguments (paths that climb out, absolute paths, symlinks planted on the way, huge
//! lengths, odd modes, device numbers, sparse layouts, handles opened and dropped).
//!
//! `apply-diff` reads the script from its input stream: first a line with the absolute path
//! of a directory outside the lent one (so that scripts can name it), then operations; the
//! bytes a `write-file-from-input` takes come from the same stream. It fails with a
//! `refused` error whose reason is everything the host gave back (file contents, link
//! targets, names, xattr values), so that the fuzz target can check that nothing from
//! outside got through. `overlay-diff` reads the script from `user-names` (UID 0: the script,
//! UID 1: the outside path), gets the upper directory, the lowers (owned handles, which the
//! script may drop) and an output stream, and writes what it was given back to the output.
//!
//! The script: each operation is one byte (low 5 bits: what; high 3 bits: which directory
//! handle), then its arguments; see [`Runner::step`].

/// Bindings generated from `wit/`.
#[allow(missing_docs, clippy::all, unsafe_op_in_unsafe_fn)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "archive-plugin",
        path: "../../wit",
    });
}

use bindings::exports::storage::plugin::archive::Guest;
use bindings::storage::plugin::archive_types::{
    ApplyOptions, ArchiveError, Change, DiffOptions, EntryProblem, OverlayOptions,
};
use bindings::storage::plugin::entries::{self, EntryMetadata};
use bindings::storage::plugin::filesystem::Directory;
use bindings::storage::plugin::streams::{InputStream, OutputStream};
use bindings::storage::plugin::types::{FileKind, IdMapping, SparseMap, SparseRegion, Timestamp};

/// The script guest.
pub struct ScriptGuest;

bindings::export!(ScriptGuest with_types_in bindings);

/// Where the script comes from.
enum Source<'a> {
    /// The input stream, read in small pieces so that file data taken by the host's fast
    /// paths interleaves with the operations.
    Stream {
        input: &'a InputStream,
        buf: Vec<u8>,
        at: usize,
        ended: bool,
    },
    /// A byte string.
    Slice(&'a [u8]),
}

impl Source<'_> {
    fn byte(&mut self) -> Option<u8> {
        match self {
            Source::Stream {
                input,
                buf,
                at,
                ended,
            } => {
                if *at == buf.len() {
                    if *ended {
                        return None;
                    }
                    *buf = input.read(64).unwrap_or_default();
                    *at = 0;
                    if buf.is_empty() {
                        *ended = true;
                        return None;
                    }
                }
                *at += 1;
                Some(buf[*at - 1])
            }
            Source::Slice(s) => {
                let (&b, rest) = s.split_first()?;
                *s = rest;
                Some(b)
            }
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map_while(|_| self.byte()).collect()
    }
}

/// Paths worth naming: inside, through planted links, out by `..` and by absolute paths,
/// malformed.
const PATHS: &[&[u8]] = &[
    b"",
    b"a",
    b"a/b",
    b"a/b/c",
    b"f",
    b"a/f",
    b"sub",
    b"sub/f",
    b"link-out",
    b"link-out/secret",
    b"link-out/new",
    b"link-abs",
    b"link-abs/secret",
    b"link-root",
    b"link-root/etc/passwd",
    b"secret-link",
    b"..",
    b"../canary",
    b"../canary/secret",
    b"../canary/new",
    b"/",
    b"/etc/passwd",
    b".",
    b"./a",
    b"a/..",
    b"a/../..",
    b"a//b",
    b"a/",
    b"fifo",
    b"dev",
    b"hl",
    b"x\0y",
    b"..a",
    b"...",
    b"sub/..",
    b"sub/../..",
];

const XATTRS: &[&str] = &[
    "user.a",
    "user.containers.override_stat",
    "trusted.overlay.opaque",
    "trusted.overlay.redirect",
    "security.capability",
    "system.posix_acl_access",
    "",
    "user.",
    "bogus",
];

const U32S: &[u32] = &[
    0,
    0o644,
    0o755,
    0o777,
    0o7777,
    0o1777,
    0o4755,
    0o170777,
    1000,
    65534,
    100_000,
    u32::MAX,
];

const U64S: &[u64] = &[
    0,
    1,
    511,
    512,
    4096,
    1 << 20,
    (1 << 20) + 1,
    1 << 31,
    1 << 40,
    i64::MAX as u64,
    u64::MAX / 2,
    u64::MAX,
];

/// Most bytes kept of what the host gave back.
const MAX_SEEN: usize = 1 << 16;

struct Runner<'a> {
    src: Source<'a>,
    dirs: Vec<&'a Directory>,
    opened: Vec<Directory>,
    input: Option<&'a InputStream>,
    out: Option<&'a OutputStream>,
    outside: Vec<u8>,
    seen: Vec<u8>,
}

impl Runner<'_> {
    fn see(&mut self, bytes: &[u8]) {
        let room = MAX_SEEN.saturating_sub(self.seen.len());
        self.seen.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn path(&mut self) -> Vec<u8> {
        let b = self.src.byte().unwrap_or(0);
        match b {
            0..=0xBF => PATHS[b as usize % PATHS.len()].to_vec(),
            0xC0..=0xCF => {
                let mut p = self.outside.clone();
                p.extend_from_slice([&b"/secret"[..], b"/new", b"", b"/.."][b as usize % 4]);
                p
            }
            0xD0..=0xDF => {
                let mut p = self.path();
                p.push(b'/');
                p.extend(self.path());
                p
            }
            0xE0..=0xEF => {
                let n = 1usize << (b & 0x0F).min(13);
                b"a/".iter().copied().cycle().take(n).collect()
            }
            _ => {
                let n = usize::from(self.src.byte().unwrap_or(0));
                self.src.bytes(n)
            }
        }
    }

    fn u32(&mut self) -> u32 {
        let b = self.src.byte().unwrap_or(0);
        if b < 0xF0 {
            U32S[b as usize % U32S.len()]
        } else {
            let v = self.src.bytes(4);
            v.iter().fold(0u32, |acc, x| acc << 8 | u32::from(*x))
        }
    }

    fn u64(&mut self) -> u64 {
        let b = self.src.byte().unwrap_or(0);
        if b < 0xF0 {
            U64S[b as usize % U64S.len()]
        } else {
            let v = self.src.bytes(8);
            v.iter().fold(0u64, |acc, x| acc << 8 | u64::from(*x))
        }
    }

    fn timestamp(&mut self) -> Timestamp {
        Timestamp {
            secs: self.u64() as i64,
            nanos: self.u32(),
        }
    }

    fn kind(&mut self) -> FileKind {
        match self.src.byte().unwrap_or(0) % 7 {
            0 => FileKind::Regular,
            1 => FileKind::Directory,
            2 => FileKind::Symlink,
            3 => FileKind::CharDevice,
            4 => FileKind::BlockDevice,
            5 => FileKind::Fifo,
            _ => FileKind::Socket,
        }
    }

    fn xattr(&mut self) -> String {
        let b = self.src.byte().unwrap_or(0);
        if b < 0xF0 {
            XATTRS[b as usize % XATTRS.len()].to_string()
        } else {
            let n = usize::from(self.src.byte().unwrap_or(0));
            String::from_utf8_lossy(&self.src.bytes(n)).into_owned()
        }
    }

    fn small_bytes(&mut self) -> Vec<u8> {
        let n = usize::from(self.src.byte().unwrap_or(0) % 64);
        self.src.bytes(n)
    }

    fn meta(&mut self) -> EntryMetadata {
        let xattrs = (0..self.src.byte().unwrap_or(0) % 3)
            .map(|_| (self.xattr(), self.small_bytes()))
            .collect();
        let flags = self.src.byte().unwrap_or(0);
        EntryMetadata {
            uid: self.u32(),
            gid: self.u32(),
            ignore_chown_errors: flags & 1 != 0,
            xattrs,
            mode: (flags & 2 != 0).then(|| self.u32()),
            atime: self.timestamp(),
            mtime: self.timestamp(),
        }
    }

    fn layout(&mut self) -> SparseMap {
        let real_size = self.u64();
        let regions = (0..self.src.byte().unwrap_or(0) % 5)
            .map(|_| SparseRegion {
                offset: self.u64(),
                length: self.u64(),
            })
            .collect();
        SparseMap { real_size, regions }
    }

    fn dir(&self, which: u8) -> &Directory {
        let all = self.dirs.len() + self.opened.len();
        let i = usize::from(which) % all;
        if i < self.dirs.len() {
            self.dirs[i]
        } else {
            &self.opened[i - self.dirs.len()]
        }
    }

    /// Runs one operation; `false` at the end of the script.
    fn step(&mut self) -> bool {
        let Some(op) = self.src.byte() else {
            return false;
        };
        let which = op >> 5;
        match op & 0x1F {
            0 => {
                let p = self.path();
                let _ = self.dir(which).lstat(&p);
            }
            1 => {
                let p = self.path();
                if let Ok(entries) = self.dir(which).read_dir(&p) {
                    for e in entries {
                        self.see(&e.name);
                    }
                }
            }
            2 => {
                let p = self.path();
                if let Ok(target) = self.dir(which).readlink(&p) {
                    self.see(&target);
                }
            }
            3 => {
                let (p, offset, len) = (self.path(), self.u64(), self.u64());
                if let Ok(data) = self.dir(which).read_file(&p, offset, len) {
                    self.see(&data);
                }
            }
            4 => {
                let (p, name) = (self.path(), self.xattr());
                if let Ok(Some(value)) = self.dir(which).get_xattr(&p, &name) {
                    self.see(&value);
                }
            }
            5 => {
                let p = self.path();
                if let Ok(names) = self.dir(which).list_xattrs(&p) {
                    for n in names {
                        self.see(n.as_bytes());
                    }
                }
            }
            6 => {
                let (p, mode) = (self.path(), self.u32());
                let _ = self.dir(which).mkdir(&p, mode);
            }
            7 => {
                let (p, mode, len) = (self.path(), self.u32(), self.u64());
                if let Some(input) = self.input {
                    let _ = self.dir(which).write_file_from_input(&p, mode, len, input);
                }
            }
            8 => {
                let (target, p) = (self.path(), self.path());
                let _ = self.dir(which).symlink(&target, &p);
            }
            9 => {
                let (target, p) = (self.path(), self.path());
                let _ = self.dir(which).hardlink(&target, &p);
            }
            10 => {
                let (p, kind, mode) = (self.path(), self.kind(), self.u32());
                let (major, minor) = (self.u32(), self.u32());
                let _ = self.dir(which).mknod(&p, kind, mode, major, minor);
            }
            11 => {
                let (p, mode) = (self.path(), self.u32());
                let _ = self.dir(which).mkfifo(&p, mode);
            }
            12 => {
                let (p, uid, gid) = (self.path(), self.u32(), self.u32());
                let _ = self.dir(which).lchown(&p, uid, gid);
            }
            13 => {
                let (p, mode) = (self.path(), self.u32());
                let _ = self.dir(which).chmod(&p, mode);
            }
            14 => {
                let (p, name, value) = (self.path(), self.xattr(), self.small_bytes());
                let _ = self.dir(which).set_xattr(&p, &name, &value);
            }
            15 => {
                let (p, name) = (self.path(), self.xattr());
                let _ = self.dir(which).remove_xattr(&p, &name);
            }
            16 => {
                let (p, atime, mtime) = (self.path(), self.timestamp(), self.timestamp());
                let _ = self.dir(which).set_times(&p, atime, mtime);
            }
            17 => {
                let p = self.path();
                let _ = self.dir(which).remove(&p);
            }
            18 => {
                let p = self.path();
                let _ = self.dir(which).remove_all(&p);
            }
            19 => {
                let (from, to) = (self.path(), self.path());
                let _ = self.dir(which).rename(&from, &to);
            }
            20 => {
                let p = self.path();
                if self.opened.len() < 16 {
                    if let Ok(d) = self.dir(which).open_dir(&p) {
                        self.opened.push(d);
                    }
                }
            }
            21 => {
                let (p, mode, contents) = (self.path(), self.u32(), self.small_bytes());
                let _ = self.dir(which).create_file(&p, mode, &contents);
            }
            22 => {
                let (from, dest, to) = (self.path(), self.src.byte().unwrap_or(0), self.path());
                let _ = self.dir(which).copy_tree(&from, self.dir(dest), &to);
            }
            23 => {
                let (p, meta) = (self.path(), self.meta());
                let _ = entries::set_metadata(self.dir(which), &p, &meta);
            }
            24 => {
                let (p, mode, len, meta) = (self.path(), self.u32(), self.u64(), self.meta());
                if let Some(input) = self.input {
                    let _ = entries::create_file_with_metadata(
                        self.dir(which),
                        &p,
                        mode,
                        len,
                        input,
                        &meta,
                    );
                }
            }
            25 => {
                let (p, mode, layout, meta) = (self.path(), self.u32(), self.layout(), self.meta());
                if let Some(input) = self.input {
                    let _ = entries::create_sparse_file_with_metadata(
                        self.dir(which),
                        &p,
                        mode,
                        &layout,
                        input,
                        &meta,
                    );
                }
            }
            26 => {
                let max = self.u64();
                if let Some(input) = self.input {
                    let _ = input.read(max);
                }
            }
            27 => {
                if !self.opened.is_empty() {
                    let i = usize::from(which) % self.opened.len();
                    drop(self.opened.remove(i));
                }
            }
            28 => {
                let (p, len) = (self.path(), self.u64());
                if let Some(out) = self.out {
                    let _ = self.dir(which).copy_file_to_output(&p, len, out);
                }
            }
            29 => {
                let (p, offset, len) = (self.path(), self.u64(), self.u64());
                if let Some(out) = self.out {
                    let _ = self.dir(which).copy_range_to_output(&p, offset, len, out);
                }
            }
            30 => {
                let bytes = self.small_bytes();
                if let Some(out) = self.out {
                    let _ = out.write(&bytes);
                }
            }
            _ => {
                // Both fast paths of the input at once: a file from the stream, then a read.
                let (p, len) = (self.path(), self.u64());
                if let Some(input) = self.input {
                    let _ = self.dir(which).write_file_from_input(&p, 0o644, len, input);
                    let _ = input.read(len);
                }
            }
        }
        true
    }

    fn run(&mut self) -> u64 {
        let mut steps = 0;
        while self.step() {
            steps += 1;
        }
        steps
    }
}

fn unsupported() -> ArchiveError {
    ArchiveError::Unsupported(EntryProblem {
        path: Vec::new(),
        reason: "script test guest".into(),
    })
}

impl Guest for ScriptGuest {
    fn apply_diff(
        dir: &Directory,
        input: &InputStream,
        _options: ApplyOptions,
    ) -> Result<u64, ArchiveError> {
        let mut src = Source::Stream {
            input,
            buf: Vec::new(),
            at: 0,
            ended: false,
        };
        let mut outside = Vec::new();
        while let Some(b) = src.byte() {
            if b == b'\n' {
                break;
            }
            outside.push(b);
        }
        let mut runner = Runner {
            src,
            dirs: vec![dir],
            opened: Vec::new(),
            input: Some(input),
            out: None,
            outside,
            seen: Vec::new(),
        };
        let steps = runner.run();
        drop(runner.opened);
        Err(ArchiveError::Refused(EntryProblem {
            path: steps.to_string().into_bytes(),
            reason: String::from_utf8_lossy(&runner.seen).into_owned(),
        }))
    }

    fn diff(
        _: &Directory,
        _: Option<&Directory>,
        _: IdMapping,
        _: &OutputStream,
        _: DiffOptions,
    ) -> Result<(), ArchiveError> {
        Err(unsupported())
    }

    fn write_tree(_: &Directory, _: &OutputStream, _: DiffOptions) -> Result<(), ArchiveError> {
        Err(unsupported())
    }

    fn overlay_diff(
        upper: &Directory,
        lowers: Vec<Directory>,
        out: &OutputStream,
        options: DiffOptions,
        _: OverlayOptions,
    ) -> Result<(), ArchiveError> {
        let field = |uid: u32| {
            options
                .user_names
                .iter()
                .find(|(u, _)| *u == uid)
                .map(|(_, v)| v.as_slice())
                .unwrap_or_default()
        };
        let mut runner = Runner {
            src: Source::Slice(field(0)),
            dirs: vec![upper],
            // The lent lowers are handles like those the script opens (and may drop).
            opened: lowers,
            input: None,
            out: Some(out),
            outside: field(1).to_vec(),
            seen: Vec::new(),
        };
        runner.run();
        drop(runner.opened);
        let _ = out.write(&runner.seen);
        Ok(())
    }

    fn changes(
        _: &Directory,
        _: Option<&Directory>,
        _: IdMapping,
        _: IdMapping,
    ) -> Result<Vec<Change>, ArchiveError> {
        Err(unsupported())
    }

    fn overlay_changes(
        _: &Directory,
        _: Vec<Directory>,
        _: OverlayOptions,
    ) -> Result<Vec<Change>, ArchiveError> {
        Err(unsupported())
    }

    fn diff_size(
        _: &Directory,
        _: Option<&Directory>,
        _: IdMapping,
        _: IdMapping,
    ) -> Result<u64, ArchiveError> {
        Err(unsupported())
    }

    fn tree_size(_: &Directory) -> Result<u64, ArchiveError> {
        Err(unsupported())
    }
}
