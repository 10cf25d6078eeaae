//! `check`'s content comparison (upstream's `checkDirectory`): the tree the archives of a
//! layer's chain say it should have, against the tree found when the layer is mounted.
//!
//! Differences are reported in upstream's notation: `-/path` (missing), `+/path`
//! (unexpected), `/path(size:5￫6,...)` (changed; upstream reports a changed non-directory
//! a second time as `+/path(...)`, and so does this). One conscious departure: directory
//! mtimes are not compared, since applying a child layer legitimately moves them (users
//! of upstream complain about exactly this false damage).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use storage_archive::{EntryKind, TarEntryHeader};
use storage_driver::idmap::IdMappings;

const TYPE_REG: u8 = b'0';
const TYPE_LINK: u8 = b'1';
const TYPE_SYMLINK: u8 = b'2';
const TYPE_CHAR: u8 = b'3';
const TYPE_BLOCK: u8 = b'4';
const TYPE_DIR: u8 = b'5';
const TYPE_FIFO: u8 = b'6';
const TYPE_GLOBAL: u8 = b'g';
const WHITEOUT_PREFIX: &str = ".wh.";
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";

/// What `check` remembers of one archive entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Header {
    /// Entry name as in the archive.
    pub name: String,
    /// Tar type flag.
    pub typeflag: u8,
    /// Owner.
    pub uid: i64,
    /// Group.
    pub gid: i64,
    /// Content size.
    pub size: i64,
    /// Mode bits as in the header.
    pub mode: u32,
    /// Modification time, whole seconds.
    pub mtime: i64,
    /// Hard-link target.
    pub linkname: String,
}

impl Header {
    /// The header of a tar entry as Go's reader presents it (PAX records, long names and
    /// sparse maps applied by the one parser). Every flag of a regular file (old-style NUL,
    /// contiguous `7`, old-GNU sparse `S`) is a regular file, as apply writes it.
    pub fn from_entry(entry: &TarEntryHeader) -> Header {
        let name = String::from_utf8_lossy(&entry.path).into_owned();
        let typeflag = match entry.kind {
            EntryKind::Regular => TYPE_REG,
            EntryKind::Directory => TYPE_DIR,
            _ => entry.typeflag,
        };
        // Go's `int`: IDs and sizes are signed there, and the parser keeps their bits.
        Header {
            typeflag,
            uid: entry.uid as i64,
            gid: entry.gid as i64,
            size: entry.size as i64,
            mode: entry.mode,
            mtime: entry.mtime.0,
            linkname: String::from_utf8_lossy(&entry.link_name).into_owned(),
            name,
        }
    }
}

/// Attributes compared for one tree node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Info {
    typeflag: u8,
    uid: i64,
    gid: i64,
    size: i64,
    mode: u32,
    mtime: i64,
}

/// A directory of the model, possibly the top.
#[derive(Debug, Clone)]
pub(super) struct Tree {
    dirs: BTreeMap<String, Tree>,
    files: BTreeMap<String, Info>,
    info: Info,
}

/// Go's `path.Clean`.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `path.Split`: the directory part keeps its trailing slash.
fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    }
}

impl Tree {
    fn new(info: Info) -> Tree {
        Tree {
            dirs: BTreeMap::new(),
            files: BTreeMap::new(),
            info,
        }
    }

    /// An empty top directory with upstream's defaults (root, 0555).
    pub fn empty() -> Tree {
        Tree::new(Info {
            typeflag: TYPE_DIR,
            uid: 0,
            gid: 0,
            size: 0,
            mode: 0o555,
            mtime: 0,
        })
    }

    fn add(&mut self, path: &str, mut info: Info) {
        let mut components: Vec<&str> = path.split('/').collect();
        if components.last() == Some(&"") {
            components.pop();
        }
        if components.first() == Some(&".") {
            components.remove(0);
        }
        if info.typeflag != TYPE_REG {
            info.size = 0;
        }
        match components.as_slice() {
            [] => {
                let typeflag = self.info.typeflag;
                self.info = Info { typeflag, ..info };
            }
            [name] => match info.typeflag {
                TYPE_DIR => {
                    self.files.remove(*name);
                    match self.dirs.get_mut(*name) {
                        Some(d) => d.info = info,
                        None => {
                            self.dirs.insert(name.to_string(), Tree::new(info));
                        }
                    }
                }
                TYPE_GLOBAL => {}
                _ => {
                    self.dirs.remove(*name);
                    self.files.insert(name.to_string(), info);
                }
            },
            [first, rest @ ..] => {
                let sub = self.dirs.entry(first.to_string()).or_insert_with(|| {
                    Tree::new(Info {
                        typeflag: TYPE_DIR,
                        ..info
                    })
                });
                sub.add(&rest.join("/"), info);
            }
        }
    }

    fn remove(&mut self, path: &str) {
        match path.split_once('/') {
            None => {
                self.dirs.remove(path);
                self.files.remove(path);
            }
            Some((parent, rest)) => {
                if let Some(sub) = self.dirs.get_mut(parent) {
                    sub.remove(rest);
                }
            }
        }
    }

    /// The attributes of a hard link's target, if the model has it as a non-directory.
    fn link_target(&self, linkname: &str) -> Option<Info> {
        let mut dir = self;
        for component in clean(linkname).split('/') {
            if component == "." || component == ".." || component.is_empty() {
                continue;
            }
            if let Some(sub) = dir.dirs.get(component) {
                dir = sub;
                continue;
            }
            return dir.files.get(component).copied();
        }
        None
    }

    /// Applies one archive entry (whiteouts remove, opaque markers reset a directory).
    fn header(&mut self, h: &Header) {
        let name = clean(&h.name);
        let (dir, base) = split(&name);
        let mut info = Info {
            typeflag: h.typeflag,
            uid: h.uid,
            gid: h.gid,
            size: h.size,
            mode: h.mode,
            mtime: h.mtime,
        };
        if let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX) {
            if base == WHITEOUT_OPAQUE {
                let dir = clean(dir);
                self.remove(&dir);
                self.add(
                    &dir,
                    Info {
                        typeflag: TYPE_DIR,
                        ..info
                    },
                );
            } else {
                self.remove(&clean(&format!("{dir}{hidden}")));
            }
            return;
        }
        if h.typeflag == TYPE_LINK {
            if let Some(target) = self.link_target(&h.linkname) {
                info = target;
            }
        }
        self.add(&name, info);
    }

    /// Applies the entries of one layer's archive: whiteouts before content in a
    /// directory, hard links after everything else.
    pub fn headers(&mut self, headers: &[Header]) {
        let mut sorted: Vec<&Header> = headers.iter().collect();
        sorted.sort_by_key(|h| {
            let (dir, file) = split(&h.name);
            let rank = if file == WHITEOUT_OPAQUE {
                0
            } else if file.starts_with(WHITEOUT_PREFIX) {
                1
            } else {
                2
            };
            (h.typeflag == TYPE_LINK, dir, rank)
        });
        for h in sorted {
            self.header(h);
        }
    }

    /// The tree under a mounted layer (symlinks not followed).
    pub fn scan(dir: &Path) -> Result<Tree, ScanError> {
        let mut tree = Tree::empty();
        let root = std::fs::symlink_metadata(dir).map_err(ScanError::io(dir))?;
        tree.add(".", info_of(&root)?);
        scan_into(&mut tree, dir, "")?;
        Ok(tree)
    }
}

/// Why the tree of a mounted layer could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum ScanError {
    /// A directory or an entry could not be read.
    #[error("{}: {}", path.display(), storage_archive::error::os_error_text(source))]
    Io {
        /// The directory or entry.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The layer holds a socket, which no archive can (Go's tar writer's words).
    #[error("archive/tar: sockets not supported")]
    Socket,
}

impl ScanError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ScanError + '_ {
        move |source| ScanError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn info_of(m: &std::fs::Metadata) -> Result<Info, ScanError> {
    let ft = m.file_type();
    use std::os::unix::fs::FileTypeExt;
    let typeflag = if ft.is_dir() {
        TYPE_DIR
    } else if ft.is_symlink() {
        TYPE_SYMLINK
    } else if ft.is_file() {
        TYPE_REG
    } else if ft.is_char_device() {
        TYPE_CHAR
    } else if ft.is_block_device() {
        TYPE_BLOCK
    } else if ft.is_fifo() {
        TYPE_FIFO
    } else {
        return Err(ScanError::Socket);
    };
    Ok(Info {
        typeflag,
        uid: i64::from(m.uid()),
        gid: i64::from(m.gid()),
        size: if typeflag == TYPE_REG {
            m.len() as i64
        } else {
            0
        },
        mode: m.mode() & 0o7777,
        mtime: m.mtime(),
    })
}

fn scan_into(tree: &mut Tree, dir: &Path, rel: &str) -> Result<(), ScanError> {
    let entries = std::fs::read_dir(dir).map_err(ScanError::io(dir))?;
    let mut names: Vec<std::ffi::OsString> = Vec::new();
    for entry in entries {
        names.push(entry.map_err(ScanError::io(dir))?.file_name());
    }
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let m = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Gone while walking: as upstream's walk, not an error.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(ScanError::Io { path, source }),
        };
        let child = format!("{rel}{}", name.to_string_lossy());
        tree.add(&child, info_of(&m)?);
        if m.is_dir() {
            scan_into(tree, &path, &format!("{child}/"))?;
        }
    }
    Ok(())
}

/// What `check` may overlook, from the store's options (upstream's `checkIgnore`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Ignore {
    /// Owners (`ignore_chown_errors=true`, `force_mask`).
    pub ownership: bool,
    /// Permissions and file types (`force_mask`).
    pub permissions: bool,
}

/// Go's `%x` of a signed number.
fn hex(v: i64) -> String {
    if v < 0 {
        format!("-0x{:x}", v.unsigned_abs())
    } else {
        format!("0x{v:x}")
    }
}

fn compare_info(a: Info, mut b: Info, idmap: Option<&IdMappings>, ignore: Ignore) -> String {
    let mut out: Vec<String> = Vec::new();
    if a.typeflag != b.typeflag && !ignore.permissions {
        out.push(format!("filetype:{}￫{}", a.typeflag, b.typeflag));
    }
    if let Some(map) = idmap {
        match map.to_container(b.uid as u32, b.gid as u32) {
            Some((u, g)) => {
                b.uid = i64::from(u);
                b.gid = i64::from(g);
            }
            None => return format!("host ID {} cannot be mapped to a container ID", b.uid),
        }
    }
    if a.uid != b.uid && !ignore.ownership {
        out.push(format!("uid:{}￫{}", a.uid, b.uid));
    }
    if a.gid != b.gid && !ignore.ownership {
        out.push(format!("gid:{}￫{}", a.gid, b.gid));
    }
    if a.size != b.size {
        out.push(format!("size:{}￫{}", a.size, b.size));
    }
    if a.mode & 0o777 != b.mode & 0o777 && !ignore.permissions {
        out.push(format!("mode:{:04o}￫{:04o}", a.mode, b.mode));
    }
    let both_dirs = a.typeflag == TYPE_DIR && b.typeflag == TYPE_DIR;
    if a.mtime != b.mtime && !both_dirs {
        out.push(format!("mtime:{}￫{}", hex(a.mtime), hex(b.mtime)));
    }
    out.join(",")
}

fn compare_sub(
    path: &str,
    a: &Tree,
    b: &Tree,
    idmap: Option<&IdMappings>,
    ignore: Ignore,
    out: &mut Vec<String>,
) {
    let empty = Tree::empty();
    for (name, adir) in &a.dirs {
        let sub = format!("{path}/{name}");
        match b.dirs.get(name) {
            None => {
                out.push(format!("-{sub}/"));
                compare_sub(&sub, adir, &empty, idmap, ignore, out);
            }
            Some(bdir) => {
                let attrs = compare_info(adir.info, bdir.info, idmap, ignore);
                if !attrs.is_empty() {
                    out.push(format!("{sub}({attrs})"));
                }
                compare_sub(&sub, adir, bdir, idmap, ignore, out);
            }
        }
    }
    for (name, bdir) in &b.dirs {
        if !a.dirs.contains_key(name) {
            let sub = format!("{path}/{name}");
            out.push(format!("+{sub}/"));
            compare_sub(&sub, &empty, bdir, idmap, ignore, out);
        }
    }
    for (name, afile) in &a.files {
        match b.files.get(name) {
            None => out.push(format!("-{path}/{name}")),
            Some(bfile) => {
                let attrs = compare_info(*afile, *bfile, idmap, ignore);
                if !attrs.is_empty() {
                    out.push(format!("{path}/{name}({attrs})"));
                }
            }
        }
    }
    for (name, bfile) in &b.files {
        match a.files.get(name) {
            None => out.push(format!("+{path}/{name}")),
            Some(afile) => {
                let attrs = compare_info(*afile, *bfile, idmap, ignore);
                if !attrs.is_empty() {
                    out.push(format!("+{path}/{name}({attrs})"));
                }
            }
        }
    }
}

/// Every difference between the expected tree `a` and the found tree `b`, sorted by path
/// (removals first), as upstream lists them.
pub(super) fn compare(
    a: &Tree,
    b: &Tree,
    idmap: Option<&IdMappings>,
    ignore: Ignore,
) -> Vec<String> {
    let mut out = Vec::new();
    compare_sub("", a, b, idmap, ignore, &mut out);
    out.sort_by(|x, y| {
        x.get(1..)
            .cmp(&y.get(1..))
            .then_with(|| (!x.starts_with('-')).cmp(&!y.starts_with('-')))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, typeflag: u8, size: i64, mode: u32) -> Header {
        Header {
            name: name.to_string(),
            typeflag,
            uid: 0,
            gid: 0,
            size,
            mode,
            mtime: 1_700_000_000,
            linkname: String::new(),
        }
    }

    #[test]
    fn go_path_helpers() {
        assert_eq!(clean("./a/"), "a");
        assert_eq!(clean("a/../b"), "b");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("/x/./y"), "/x/y");
        assert_eq!(split("a/b/c"), ("a/b/", "c"));
        assert_eq!(split("c"), ("", "c"));
    }

    #[test]
    fn whiteouts_and_opaque_dirs_shape_the_expected_tree() {
        let mut t = Tree::empty();
        t.headers(&[
            h("d/", TYPE_DIR, 0, 0o755),
            h("d/a", TYPE_REG, 3, 0o644),
            h("d/b", TYPE_REG, 3, 0o644),
            h("e/", TYPE_DIR, 0, 0o755),
            h("e/x", TYPE_REG, 1, 0o644),
        ]);
        t.headers(&[
            h("d/c", TYPE_REG, 1, 0o644),
            h("d/.wh.a", TYPE_REG, 0, 0),
            h("e/.wh..wh..opq", TYPE_REG, 0, 0o700),
            h("e/y", TYPE_REG, 2, 0o600),
        ]);
        assert_eq!(t.dirs["d"].files.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(t.dirs["e"].files.keys().collect::<Vec<_>>(), ["y"]);
        assert_eq!(t.dirs["e"].info.mode, 0o700);
    }

    #[test]
    fn differences_in_upstream_notation() {
        let mut a = Tree::empty();
        a.headers(&[
            h("d/", TYPE_DIR, 0, 0o755),
            h("d/a", TYPE_REG, 3, 0o644),
            h("gone", TYPE_REG, 3, 0o644),
        ]);
        let mut b = Tree::empty();
        b.headers(&[
            h("d/", TYPE_DIR, 0, 0o700),
            h("d/a", TYPE_REG, 4, 0o644),
            h("new/", TYPE_DIR, 0, 0o755),
            h("new/f", TYPE_REG, 1, 0o644),
        ]);
        assert_eq!(
            compare(&a, &b, None, Ignore::default()),
            vec![
                "+/d/a(size:3￫4)",
                "-/gone",
                "+/new/",
                "+/new/f",
                "/d(mode:0755￫0700)",
                "/d/a(size:3￫4)",
            ]
        );
        assert!(compare(&a, &a, None, Ignore::default()).is_empty());
    }

    #[test]
    fn hard_links_take_their_targets_attributes() {
        let mut a = Tree::empty();
        let mut link = h("l", TYPE_LINK, 0, 0o777);
        link.linkname = "f".to_string();
        a.headers(&[link, h("f", TYPE_REG, 5, 0o644)]);
        assert_eq!(a.files["l"], a.files["f"]);
    }

    #[test]
    fn a_scanned_directory_matches_its_archive() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        std::fs::write(dir.path().join("d/f"), b"abc").expect("write");
        let scanned = Tree::scan(dir.path()).expect("scan");
        let f = scanned.dirs["d"].files["f"];
        assert_eq!((f.typeflag, f.size), (TYPE_REG, 3));
        let mut expected = Tree::empty();
        let mut fh = h("d/f", TYPE_REG, 3, f.mode);
        fh.mtime = f.mtime;
        let dh = h("d/", TYPE_DIR, 0, scanned.dirs["d"].info.mode);
        expected.headers(&[dh, fh]);
        assert!(compare(&expected, &scanned, None, Ignore::default()).is_empty());
        std::fs::write(dir.path().join("extra"), b"").expect("write");
        let scanned = Tree::scan(dir.path()).expect("scan");
        assert_eq!(
            compare(&expected, &scanned, None, Ignore::default()),
            vec!["+/extra"]
        );
    }
}
