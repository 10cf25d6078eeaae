//! The host side of the `types`, `streams` and `filesystem` interfaces: what a guest can touch.
//!
//! A lent directory is a [`ConfinedDir`]: every path the guest names is resolved beneath it
//! (`openat2` with `RESOLVE_IN_ROOT`, the last component never followed), so `../`, absolute
//! paths and symlinks planted by the guest cannot reach outside. The methods that mirror the
//! archive traits delegate to it one to one; the driver extras below resolve the same way.
//!
//! One module per interface: `directory` (the `filesystem` directory resource), `entries`
//! (creating an entry with its metadata in one call), `streams` (the lent input and output),
//! `tar_headers` (the entries of an input the host parsed already),
//! `homes` (the other driver homes a driver component may ask for); `convert` maps the
//! archive crate's types and errors to and from their WIT form.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use wasmtime::component::{Resource, ResourceTable};

use crate::bindings::storage::plugin::types;
use crate::limits::PluginLimiter;
use storage_driver::confined::ConfinedDir;
use storage_driver::parsed_tar::SharedParsedTar;

mod convert;
mod directory;
mod entries;
mod homes;
mod rules;
mod streams;
mod tar_headers;

pub(crate) use convert::io_error;
pub use convert::{error_from_wit, error_to_wit};
use convert::{missing, other_error};

/// A stream the host reads file contents from (the layer tar).
pub type InputReader = dyn Read + Send;
/// A stream the host writes tar bytes to.
pub type OutputWriter = dyn Write + Send;

type Confined = ConfinedDir<InputReader, OutputWriter>;

/// What a Store holds: the guest's resources and its limiter.
pub struct HostState {
    /// Lent directories and streams, by handle.
    pub table: ResourceTable,
    /// Memory limit of the guest.
    pub limiter: PluginLimiter,
    /// Directories the guest opened itself (`open-dir`) and still holds: each holds two file
    /// descriptors of the host, so their number is bounded.
    opened_dirs: usize,
    /// The other driver homes a driver component may ask for (`homes` interface).
    pub homes: DriverHomes,
    /// What the guest wrote to its stderr and stdout ([`crate::wasi`]).
    pub guest_output: crate::wasi::GuestOutput,
}

/// The driver homes of a store beyond the driver's own (upstream's `store.go`, additional image
/// stores).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverHomes {
    /// `<imagestore>/<driver>` of a split store: lent writable.
    pub image_home: Option<PathBuf>,
    /// `<store>/<driver>` of each additional read-only image store that exists: lent
    /// read-only.
    pub read_only_homes: Vec<PathBuf>,
}

/// How many directories a guest may hold open through `open-dir` at once.
pub const MAX_OPENED_DIRS: usize = 256;

/// A directory lent to the guest.
pub struct LentDir {
    confined: Confined,
    /// The same directory as an `O_PATH` handle, for the driver extras.
    root: OwnedFd,
    display: PathBuf,
    /// Opened by the guest through `open-dir` (counted against [`MAX_OPENED_DIRS`]).
    opened_by_guest: bool,
    /// Lent for reading only (a read-only image store's home): every change is refused.
    read_only: bool,
}

impl LentDir {
    /// Opens `path` to lend it.
    pub fn open(path: &Path) -> io::Result<Self> {
        let root = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Self::from_fd(root, path.to_path_buf())
    }

    /// Lends the directory `root` (already resolved); the confined handle is opened through
    /// the fd itself, so nothing is looked up by path again.
    fn from_fd(root: OwnedFd, display: PathBuf) -> io::Result<Self> {
        let proc = PathBuf::from(format!("/proc/self/fd/{}", root.as_raw_fd()));
        let confined = ConfinedDir::open(&proc)?;
        Ok(LentDir {
            confined,
            root,
            display,
            opened_by_guest: false,
            read_only: false,
        })
    }

    /// Opens `path` to lend it for reading only.
    pub fn open_read_only(path: &Path) -> io::Result<Self> {
        let mut dir = Self::open(path)?;
        dir.read_only = true;
        Ok(dir)
    }

    /// Replaces the confined handle by a fresh one on the same directory, forgetting what it
    /// cached (after the tree changed beneath it).
    fn reopen_confined(&mut self) -> io::Result<()> {
        let proc = PathBuf::from(format!("/proc/self/fd/{}", self.root.as_raw_fd()));
        self.confined = ConfinedDir::open(&proc)?;
        Ok(())
    }

    /// The same directory lent again (to another component's Store for one call), with the
    /// same read-only rule; a fresh confined handle, sharing nothing cached.
    pub(crate) fn lend_again(&self) -> io::Result<Self> {
        let root = rustix::io::fcntl_dupfd_cloexec(&self.root, 0)?;
        let mut dir = Self::from_fd(root, self.display.clone())?;
        dir.read_only = self.read_only;
        Ok(dir)
    }

    /// The directory, for messages.
    pub fn path(&self) -> &Path {
        &self.display
    }

    /// Opens `path` beneath the root with `flags`, never following the last component.
    pub(crate) fn open_beneath(
        &self,
        path: &[u8],
        flags: OFlags,
        mode: u32,
    ) -> Result<OwnedFd, types::FsError> {
        storage_driver::confined::open_beneath(&self.root, path, flags, mode).map_err(error_to_wit)
    }
}

/// The layer tar, or any input, lent to the guest.
pub struct LentInput {
    /// `None` only while a host fast path is copying from it.
    reader: Option<Box<InputReader>>,
    /// The same stream with its headers parsed, when it is an import's (`tar-headers`).
    parsed: Option<SharedParsedTar>,
}

impl LentInput {
    /// Lends `reader`.
    pub fn new(reader: Box<InputReader>) -> Self {
        LentInput {
            reader: Some(reader),
            parsed: None,
        }
    }

    /// Lends a tar whose headers were parsed: the guest may read its bytes or its entries.
    pub fn parsed(tar: SharedParsedTar) -> Self {
        LentInput {
            reader: Some(Box::new(tar.clone())),
            parsed: Some(tar),
        }
    }

    /// The parsed form of the stream, if it has one (to lend along with the reader).
    pub(crate) fn parsed_tar(&self) -> Option<SharedParsedTar> {
        self.parsed.clone()
    }

    /// Lends `reader` with the parsed form `parsed` of the same stream, if any.
    pub(crate) fn with_parsed(reader: Box<InputReader>, parsed: Option<SharedParsedTar>) -> Self {
        LentInput {
            reader: Some(reader),
            parsed,
        }
    }

    /// Takes the reader back after the call.
    pub fn into_reader(self) -> Option<Box<InputReader>> {
        self.reader
    }

    /// Lends the reader to another Store for one call ([`LentInput::give_back`] after).
    pub(crate) fn take_reader(&mut self) -> Option<Box<InputReader>> {
        self.reader.take()
    }

    /// Puts back what [`LentInput::take_reader`] took.
    pub(crate) fn give_back(&mut self, reader: Box<InputReader>) {
        self.reader = Some(reader);
    }
}

/// The output tar, or any output, lent to the guest.
pub struct LentOutput {
    /// `None` only while a host fast path is copying into it.
    writer: Option<Box<OutputWriter>>,
}

impl LentOutput {
    /// Lends `writer`.
    pub fn new(writer: Box<OutputWriter>) -> Self {
        LentOutput {
            writer: Some(writer),
        }
    }

    /// Takes the writer back after the call.
    pub fn into_writer(self) -> Option<Box<OutputWriter>> {
        self.writer
    }

    /// Lends the writer to another Store for one call ([`LentOutput::give_back`] after).
    pub(crate) fn take_writer(&mut self) -> Option<Box<OutputWriter>> {
        self.writer.take()
    }

    /// Puts back what [`LentOutput::take_writer`] took.
    pub(crate) fn give_back(&mut self, writer: Box<OutputWriter>) {
        self.writer = Some(writer);
    }
}
type FsResult<T> = Result<T, types::FsError>;

/// Refuses a path the archive traits never produce: absolute, or with an empty, `.` or `..`
/// component, or a NUL byte. The confined directory resolves parents beneath itself, but the
/// last component goes to `*at` calls as is, and `..` there would name the parent of the lent
/// directory: the guest is not trusted to have cleaned its paths.
pub fn check_path(path: &[u8]) -> FsResult<()> {
    if path.is_empty() {
        return Ok(());
    }
    let bad = path.contains(&0)
        || path
            .split(|b| *b == b'/')
            .any(|c| c.is_empty() || c == b"." || c == b"..");
    if bad {
        return Err(types::FsError {
            kind: types::FsErrorKind::PathEscape,
            errno: 0,
            message: format!(
                "path {:?} is not a clean relative path",
                String::from_utf8_lossy(path)
            ),
        });
    }
    Ok(())
}

impl HostState {
    /// A state with an empty table.
    pub fn new(limiter: PluginLimiter) -> Self {
        HostState {
            table: ResourceTable::new(),
            limiter,
            opened_dirs: 0,
            homes: DriverHomes::default(),
            guest_output: crate::wasi::GuestOutput::default(),
        }
    }

    /// The lent directory of `handle` for a change at `path`: refused in a read-only one.
    fn writable_dir(&mut self, handle: &Resource<LentDir>, path: &[u8]) -> FsResult<&mut LentDir> {
        let d = self.dir(handle, path)?;
        if d.read_only {
            return Err(types::FsError {
                kind: types::FsErrorKind::PermissionDenied,
                errno: rustix::io::Errno::ROFS.raw_os_error(),
                message: format!("{} is lent read-only", d.display.display()),
            });
        }
        Ok(d)
    }

    /// Lends `path` (read-only when asked) as a new handle.
    fn lend(&mut self, path: &Path, read_only: bool) -> FsResult<Resource<LentDir>> {
        let dir = if read_only {
            LentDir::open_read_only(path)
        } else {
            LentDir::open(path)
        }
        .map_err(|e| io_error(e, &format!("open {}", path.display())))?;
        self.table
            .push(dir)
            .map_err(|e| other_error(format!("too many handles: {e}")))
    }

    /// The lent directory of `handle`, after checking the `path` about to be used in it.
    fn dir(&mut self, handle: &Resource<LentDir>, path: &[u8]) -> FsResult<&mut LentDir> {
        check_path(path)?;
        self.table.get_mut(handle).map_err(missing)
    }

    /// Runs `f` with the writable directory (after checking `path`) and the reader of an
    /// input stream, both taken from the table (the reader is put back afterwards, whatever
    /// `f` returns).
    fn with_input<T>(
        &mut self,
        dir: &Resource<LentDir>,
        path: &[u8],
        input: &Resource<LentInput>,
        f: impl FnOnce(&mut LentDir, &mut InputReader) -> FsResult<T>,
    ) -> FsResult<T> {
        let mut reader = self
            .table
            .get_mut(input)
            .map_err(missing)?
            .reader
            .take()
            .ok_or_else(|| other_error("input stream busy"))?;
        let result = match self.writable_dir(dir, path) {
            Ok(d) => f(d, &mut *reader),
            Err(e) => Err(e),
        };
        if let Ok(i) = self.table.get_mut(input) {
            i.reader = Some(reader);
        }
        result
    }

    /// Runs `f` with the directory and the writer of an output stream, both taken from the
    /// table (the writer is put back afterwards, whatever `f` returns).
    fn with_output<T>(
        &mut self,
        dir: &Resource<LentDir>,
        out: &Resource<LentOutput>,
        f: impl FnOnce(&mut LentDir, &mut OutputWriter) -> FsResult<T>,
    ) -> FsResult<T> {
        let mut writer = self
            .table
            .get_mut(out)
            .map_err(missing)?
            .writer
            .take()
            .ok_or_else(|| other_error("output stream busy"))?;
        let result = match self.table.get_mut(dir) {
            Ok(d) => f(d, &mut *writer),
            Err(e) => Err(missing(e)),
        };
        if let Ok(o) = self.table.get_mut(out) {
            o.writer = Some(writer);
        }
        result
    }
}

impl types::Host for HostState {}

impl crate::bindings::storage::plugin::archive_types::Host for HostState {}

impl crate::bindings::storage::plugin::filesystem::Host for HostState {}

#[cfg(test)]
mod read_only_tests {
    use super::*;
    use crate::bindings::driver::storage::plugin::homes::Host as _;
    use crate::bindings::storage::plugin::filesystem::HostDirectory as _;

    fn state(homes: DriverHomes) -> HostState {
        let mut state = HostState::new(PluginLimiter::new(&Default::default()));
        state.homes = homes;
        state
    }

    #[test]
    fn read_only_homes_refuse_every_change_and_allow_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ro, image) = (dir.path().join("ro"), dir.path().join("image"));
        for d in [&ro, &image] {
            std::fs::create_dir_all(d.join("dir/layer")).expect("mkdir");
        }
        std::fs::write(ro.join("dir/layer/f"), b"ro").expect("write");
        let mut st = state(DriverHomes {
            image_home: Some(image.clone()),
            read_only_homes: vec![ro.clone(), dir.path().join("missing")],
        });
        let homes = st.read_only_homes();
        assert_eq!(homes.len(), 1, "a home that cannot be opened is left out");
        let h = Resource::<LentDir>::new_own(homes[0].rep());
        let read = st
            .read_file(
                Resource::new_borrow(h.rep()),
                b"dir/layer/f".to_vec(),
                0,
                10,
            )
            .expect("reads are allowed");
        assert_eq!(read, b"ro");
        let refused = [
            st.mkdir(Resource::new_borrow(h.rep()), b"dir/new".to_vec(), 0o755),
            st.remove_all(Resource::new_borrow(h.rep()), b"dir/layer".to_vec()),
            st.lchown(Resource::new_borrow(h.rep()), b"dir/layer/f".to_vec(), 1, 1),
            st.create_file(
                Resource::new_borrow(h.rep()),
                b"dir/x".to_vec(),
                0o644,
                b"x".to_vec(),
            ),
        ];
        for r in refused {
            let e = r.expect_err("refused");
            assert_eq!(
                e.kind,
                types::FsErrorKind::PermissionDenied,
                "{}",
                e.message
            );
        }
        // A directory opened beneath a read-only one is read-only too.
        let sub = st
            .open_dir(Resource::new_borrow(h.rep()), b"dir".to_vec())
            .expect("open-dir");
        assert!(st
            .mkdir(Resource::new_borrow(sub.rep()), b"new".to_vec(), 0o755)
            .is_err());
        assert!(ro.join("dir/layer/f").exists() && !ro.join("dir/new").exists());
        // The image store's home is lent writable.
        let image_home = st.image_home().expect("image home");
        st.mkdir(
            Resource::new_borrow(image_home.rep()),
            b"dir/made".to_vec(),
            0o755,
        )
        .expect("writable");
        assert!(image.join("dir/made").is_dir());
    }
}
