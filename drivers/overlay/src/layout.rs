//! The overlay driver's files on disk (upstream's `drivers/overlay/overlay.go`):
//! `<home>/<id>/{diff,link,lower,work, merged,empty}` and `<home>/l/<short id>` → `../<id>/diff`.
//!
//! The short links exist so that a classic `mount(2)` option string naming many lower
//! layers fits in one page; `lower` lists them nearest parent first. Layers of read-only
//! image stores live in `<store>/overlay/` with the same layout and are found there when
//! the home does not have them.

use std::io;
use std::os::unix::fs::{symlink, DirBuilderExt};
use std::path::{Path, PathBuf};

use rand::Rng;
use storage_driver::{DriverError, DriverResult};

/// Name of the directory of short links.
pub const LINK_DIR: &str = "l";
/// Length of a short link name (upstream's `idLength`).
pub const SHORT_ID_LEN: usize = 26;
/// Alphabet of short ids: upstream takes the first 26 characters of the standard base32
/// encoding of random bytes, so only these characters ever appear.
const SHORT_ID_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A random short id for `l/`.
pub fn generate_short_id() -> String {
    let mut rng = rand::rng();
    (0..SHORT_ID_LEN)
        .map(|_| char::from(SHORT_ID_ALPHABET[rng.random_range(0..SHORT_ID_ALPHABET.len())]))
        .collect()
}

/// Whether `name` can be a layer id or short id: one plain path component.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// Paths of one driver home, of the split image store's home, and of the read-only
/// stores behind them.
#[derive(Debug, Clone)]
pub struct Layout {
    home: PathBuf,
    /// `<image store>/overlay` when the store is split (`--image-store`): image layers
    /// (created with `create`) live there, container layers in the home.
    image_home: Option<PathBuf>,
    /// `<store>/overlay` of each read-only image store, searched in order.
    read_only_homes: Vec<PathBuf>,
}

impl Layout {
    /// The layout of `home`, with the split image store's home and the homes of
    /// read-only image stores behind it.
    pub fn new(home: PathBuf, image_home: Option<PathBuf>, read_only_homes: Vec<PathBuf>) -> Self {
        Layout {
            home,
            image_home,
            read_only_homes,
        }
    }

    /// The split image store's home, if the store is split.
    pub fn image_home(&self) -> Option<&Path> {
        self.image_home.as_deref()
    }

    /// The homes this driver writes to: the home, then the image store's home.
    fn writable_homes(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.home).chain(self.image_home.as_ref())
    }

    /// Every home searched for layers, writable ones first.
    fn all_homes(&self) -> impl Iterator<Item = &PathBuf> {
        self.writable_homes().chain(&self.read_only_homes)
    }

    /// The directory of layer `id` in a home this driver writes to, if it exists there
    /// (even half-created).
    pub fn writable_dir(&self, id: &str) -> Option<PathBuf> {
        if !is_plain_name(id) {
            return None;
        }
        self.writable_homes()
            .map(|h| h.join(id))
            .find(|d| std::fs::symlink_metadata(d).is_ok())
    }

    /// The `l/` directory that holds the short link of the layer in `dir`.
    pub fn link_dir_of(dir: &Path) -> PathBuf {
        dir.parent().unwrap_or(dir).join(LINK_DIR)
    }

    /// The driver home.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `<home>/l`.
    pub fn link_dir(&self) -> PathBuf {
        self.home.join(LINK_DIR)
    }

    /// The directory of layer `id` in the home (whether it exists or not).
    pub fn own_dir(&self, id: &str) -> PathBuf {
        self.home.join(id)
    }

    /// The directory of layer `id`: in the home, else in the first read-only store that
    /// has it. `None` if no one has it or the id is not a plain name.
    pub fn find_dir(&self, id: &str) -> Option<PathBuf> {
        if !is_plain_name(id) {
            return None;
        }
        self.all_homes()
            .map(|h| h.join(id))
            .find(|d| d.join("diff").is_dir())
    }

    /// Where layer `id` is mounted: `<dir>/merged` for layers of the home, and
    /// `<home>/<id>/merged` for layers of read-only stores, whose directories we must not
    /// write to.
    pub fn merged_dir(&self, id: &str, dir: &Path) -> PathBuf {
        if self.is_read_only(dir) {
            self.home.join(id).join("merged")
        } else {
            dir.join("merged")
        }
    }

    /// Like [`Layout::find_dir`], but an error naming the layer when it is missing.
    pub fn dir(&self, id: &str) -> DriverResult<PathBuf> {
        self.find_dir(id)
            .ok_or_else(|| DriverError::LayerNotFound(id.to_string()))
    }

    /// Whether layer `id` lives in a read-only store rather than the home.
    pub fn is_read_only(&self, dir: &Path) -> bool {
        !self.writable_homes().any(|h| dir.starts_with(h))
    }

    /// Reads the short id of the layer in `dir` (`link`, no newline).
    pub fn read_link_file(dir: &Path) -> io::Result<String> {
        let text = std::fs::read_to_string(dir.join("link"))?;
        let link = text.trim().to_string();
        if !is_plain_name(&link) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad link file in {}", dir.display()),
            ));
        }
        Ok(link)
    }

    /// Reads the `lower` file of the layer in `dir`: `l/<short>` entries, nearest parent
    /// first. Empty for parentless layers.
    pub fn read_lower_file(dir: &Path) -> io::Result<Vec<String>> {
        match std::fs::read_to_string(dir.join("lower")) {
            Ok(text) => Ok(text
                .trim()
                .split(':')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The `lower` entries a child of `parent` gets: the parent's own link, then the
    /// parent's lowers.
    pub fn lowers_for_child(&self, parent: &str) -> DriverResult<Vec<String>> {
        let parent_dir = self.dir(parent)?;
        let link = match Self::read_link_file(&parent_dir) {
            Ok(link) => link,
            Err(_) => {
                self.repair_links()?;
                Self::read_link_file(&parent_dir)
                    .map_err(|e| DriverError::io(format!("reading link of layer {parent}"), e))?
            }
        };
        let mut lowers = vec![format!("{LINK_DIR}/{link}")];
        lowers.extend(
            Self::read_lower_file(&parent_dir)
                .map_err(|e| DriverError::io(format!("reading lower of layer {parent}"), e))?,
        );
        Ok(lowers)
    }

    /// Resolves one `lower` entry (`l/<short>`) to the absolute link path in the home or
    /// in a read-only store. `None` if no one has that link.
    pub fn resolve_lower(&self, entry: &str) -> Option<PathBuf> {
        let short = entry.strip_prefix("l/")?;
        if !is_plain_name(short) {
            return None;
        }
        self.all_homes()
            .map(|h| h.join(LINK_DIR).join(short))
            .find(|p| p.is_dir())
    }

    /// The absolute lower directories (short-link paths) of the layer in `dir`, nearest
    /// parent first, repairing missing links once if some do not resolve.
    pub fn lower_dirs(&self, dir: &Path) -> DriverResult<Vec<PathBuf>> {
        let entries = Self::read_lower_file(dir)
            .map_err(|e| DriverError::io(format!("reading {}/lower", dir.display()), e))?;
        let resolve_all = |entries: &[String]| -> Option<Vec<PathBuf>> {
            entries.iter().map(|e| self.resolve_lower(e)).collect()
        };
        if let Some(dirs) = resolve_all(&entries) {
            return Ok(dirs);
        }
        self.repair_links()?;
        entries
            .iter()
            .map(|e| {
                self.resolve_lower(e).ok_or_else(|| {
                    DriverError::io(
                        format!("lower layer {e} of {} is missing", dir.display()),
                        io::Error::from(io::ErrorKind::NotFound),
                    )
                })
            })
            .collect()
    }

    /// The diff directories of every lower of the layer in `dir`, nearest parent first,
    /// resolved through the short links.
    pub fn lower_diff_dirs(&self, dir: &Path) -> DriverResult<Vec<PathBuf>> {
        self.lower_dirs(dir)?
            .into_iter()
            .map(|link| {
                std::fs::canonicalize(&link)
                    .map_err(|e| DriverError::io(format!("resolving {}", link.display()), e))
            })
            .collect()
    }

    /// Creates the short link of the layer `id` living in `base` (a writable home) and
    /// writes its `link` file.
    pub fn create_link(&self, base: &Path, id: &str) -> DriverResult<String> {
        let short = generate_short_id();
        let link_path = base.join(LINK_DIR).join(&short);
        symlink(Path::new("..").join(id).join("diff"), &link_path)
            .map_err(|e| DriverError::io(format!("creating {}", link_path.display()), e))?;
        let link_file = base.join(id).join("link");
        if let Err(e) = std::fs::write(&link_file, &short) {
            // Without the `link` file, removing the layer could not find its short link.
            let _ = std::fs::remove_file(&link_path);
            return Err(DriverError::io(
                format!("writing {}", link_file.display()),
                e,
            ));
        }
        Ok(short)
    }

    /// Repairs the home's short links by scanning every layer directory (upstream's
    /// `recreateSymlinks`): a missing `link` file gets a new short id, a missing `l/`
    /// link is recreated, and links in `l/` that point nowhere are removed.
    pub fn repair_links(&self) -> DriverResult<()> {
        for home in self.writable_homes() {
            Self::repair_links_in(home)?;
        }
        Ok(())
    }

    /// [`Layout::repair_links`] for one home.
    fn repair_links_in(home: &Path) -> DriverResult<()> {
        let ctx = |what: &str, p: &Path| format!("{what} {}", p.display());
        let link_dir = home.join(LINK_DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&link_dir)
            .map_err(|e| DriverError::io(ctx("creating", &link_dir), e))?;
        for id in Self::layer_ids_in(home)? {
            let dir = home.join(&id);
            let short = match Self::read_link_file(&dir) {
                Ok(short) => short,
                Err(_) => {
                    let short = generate_short_id();
                    std::fs::write(dir.join("link"), &short)
                        .map_err(|e| DriverError::io(ctx("writing link in", &dir), e))?;
                    short
                }
            };
            let link_path = link_dir.join(&short);
            if std::fs::symlink_metadata(&link_path).is_err() {
                symlink(Path::new("..").join(&id).join("diff"), &link_path)
                    .map_err(|e| DriverError::io(ctx("creating", &link_path), e))?;
            }
        }
        let entries = std::fs::read_dir(&link_dir)
            .map_err(|e| DriverError::io(ctx("reading", &link_dir), e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            // A link whose layer is gone would otherwise shadow nothing forever.
            if std::fs::metadata(&path).is_err() {
                // One that stays is tried again at the next repair.
                storage_driver::cleanup::log_failure(
                    format_args!("removing the dangling link {}", path.display()),
                    std::fs::remove_file(&path),
                );
            }
        }
        Ok(())
    }

    /// Every layer id in the homes this driver writes to, sorted.
    pub fn layer_ids(&self) -> DriverResult<Vec<String>> {
        let mut ids = Vec::new();
        for home in self.writable_homes() {
            ids.extend(Self::layer_ids_in(home)?);
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Layer ids in one home (directories other than `l`, with a `diff/`).
    fn layer_ids_in(home: &Path) -> DriverResult<Vec<String>> {
        let entries = match std::fs::read_dir(home) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(DriverError::io(format!("reading {}", home.display()), e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| DriverError::io(format!("reading {}", home.display()), e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name == LINK_DIR || !entry.path().join("diff").is_dir() {
                continue;
            }
            ids.push(name);
        }
        ids.sort();
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_look_like_upstream() {
        let a = generate_short_id();
        assert_eq!(a.len(), SHORT_ID_LEN);
        assert!(a.bytes().all(|c| SHORT_ID_ALPHABET.contains(&c)));
        assert_ne!(a, generate_short_id());
    }

    #[test]
    fn plain_names() {
        assert!(is_plain_name("abc"));
        assert!(!is_plain_name(".."));
        assert!(!is_plain_name("a/b"));
        assert!(!is_plain_name(""));
    }

    #[test]
    fn lower_file_parsing() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Layout::read_lower_file(dir.path())
            .expect("missing is empty")
            .is_empty());
        std::fs::write(dir.path().join("lower"), "l/AAA:l/BBB").expect("write");
        assert_eq!(
            Layout::read_lower_file(dir.path()).expect("read"),
            vec!["l/AAA", "l/BBB"]
        );
    }
}
