//! A hostile archive component for the host's tests. Its `apply-diff` reads the input as a
//! command: `oom` allocates without bound, `loop` never returns, `escape` tries to reach
//! outside the lent directory in every way the filesystem interface allows and reports what
//! each attempt returned (as a `refused` error whose message lists `name=result` lines);
//! `copy` exercises the host's `copy-tree` and `open-dir` the same way.

/// Bindings generated from `wit/`.
#[allow(missing_docs, clippy::all, unsafe_op_in_unsafe_fn)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "archive-plugin",
        path: "../../../wit",
    });
}

use bindings::exports::storage::plugin::archive::Guest;
use bindings::storage::plugin::archive_types::{
    ApplyOptions, ArchiveError, Change, DiffOptions, EntryProblem, OverlayOptions,
};
use bindings::storage::plugin::filesystem::Directory;
use bindings::storage::plugin::streams::{InputStream, OutputStream};
use bindings::storage::plugin::types::{FsError, IdMapping, Timestamp};

/// The hostile component.
pub struct Hostile;

bindings::export!(Hostile with_types_in bindings);

fn unsupported() -> ArchiveError {
    ArchiveError::Unsupported(EntryProblem {
        path: Vec::new(),
        reason: "hostile test guest".into(),
    })
}

fn outcome<T>(r: Result<T, FsError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{:?}", e.kind),
    }
}

/// Every escape attempt; `outside` is the absolute path of a directory beside the lent one.
fn escape(dir: &Directory, outside: &[u8]) -> Vec<String> {
    let mut report = Vec::new();
    let mut note = |name: &str, result: String| report.push(format!("{name}={result}"));
    let abs = |rest: &[u8]| [outside, rest].concat();
    let t = Timestamp { secs: 1, nanos: 0 };

    note(
        "mkdir-dotdot",
        outcome(dir.mkdir(b"../outside/pwned", 0o755)),
    );
    note("mkdir-abs", outcome(dir.mkdir(&abs(b"/pwned"), 0o755)));
    note(
        "create-dotdot",
        outcome(dir.create_file(b"../outside/pwned", 0o644, b"x")),
    );
    note(
        "create-abs",
        outcome(dir.create_file(&abs(b"/pwned"), 0o644, b"x")),
    );
    note(
        "read-dotdot",
        outcome(dir.read_file(b"../outside/secret", 0, 100)),
    );
    note("read-abs", outcome(dir.read_file(&abs(b"/secret"), 0, 100)));
    // Symlinks planted by the guest, then used as parents or as final components.
    note(
        "symlink-rel",
        outcome(dir.symlink(b"../outside", b"rel-link")),
    );
    note("symlink-abs", outcome(dir.symlink(outside, b"abs-link")));
    note(
        "symlink-file",
        outcome(dir.symlink(&abs(b"/secret"), b"secret-link")),
    );
    note(
        "create-via-rel",
        outcome(dir.create_file(b"rel-link/pwned", 0o644, b"x")),
    );
    note(
        "create-via-abs",
        outcome(dir.create_file(b"abs-link/pwned", 0o644, b"x")),
    );
    note(
        "mkdir-via-abs",
        outcome(dir.mkdir(b"abs-link/pwned-dir", 0o755)),
    );
    note(
        "read-via-abs",
        outcome(dir.read_file(b"abs-link/secret", 0, 100)),
    );
    note(
        "read-via-link",
        outcome(dir.read_file(b"secret-link", 0, 100)),
    );
    note("chmod-link", outcome(dir.chmod(b"secret-link", 0o777)));
    note("times-link", outcome(dir.set_times(b"secret-link", t, t)));
    note(
        "chown-link",
        outcome(dir.lchown(b"secret-link", 4242, 4242)),
    );
    note(
        "xattr-link",
        outcome(dir.set_xattr(b"secret-link", "user.pwned", b"x")),
    );
    note("open-dir-link", outcome(dir.open_dir(b"abs-link")));
    note(
        "hardlink-abs",
        outcome(dir.hardlink(&abs(b"/secret"), b"stolen")),
    );
    note(
        "hardlink-via-link",
        outcome(dir.hardlink(b"abs-link/secret", b"stolen2")),
    );
    note(
        "rename-out",
        outcome(dir.rename(b"rel-link", b"../outside/moved")),
    );
    note(
        "remove-all-via-link",
        outcome(dir.remove_all(b"abs-link/secret")),
    );
    // `..` and `.` as the last component name the parent of the lent directory.
    note("chmod-dotdot", outcome(dir.chmod(b"..", 0o777)));
    note("times-dotdot", outcome(dir.set_times(b"..", t, t)));
    note("chown-dotdot", outcome(dir.lchown(b"..", 4242, 4242)));
    note(
        "xattr-dotdot",
        outcome(dir.set_xattr(b"..", "user.pwned", b"x")),
    );
    note("chmod-sub-dotdot", outcome(dir.chmod(b"sub/..", 0o777)));
    note("remove-all-dotdot", outcome(dir.remove_all(b"..")));
    note("remove-all-root", outcome(dir.remove_all(b"")));
    note("open-dir-dotdot", outcome(dir.open_dir(b"..")));
    note("lstat-dotdot", outcome(dir.lstat(b"..")));
    report
}

impl Guest for Hostile {
    fn apply_diff(
        dir: &Directory,
        input: &InputStream,
        _options: ApplyOptions,
    ) -> Result<u64, ArchiveError> {
        let command = input
            .read(4096)
            .map_err(|e| ArchiveError::Stream(e.message))?;
        match command.split(|b| *b == b' ').next().unwrap_or_default() {
            b"oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    // Touch every page so nothing is optimised away.
                    hoard.push(vec![0xa5; 1 << 20]);
                    if hoard.len() == usize::MAX {
                        return Ok(hoard.len() as u64);
                    }
                }
            }
            b"loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            b"copy" => {
                let mut report = Vec::new();
                report.push(format!(
                    "copy={}",
                    outcome(dir.copy_tree(b"src", dir, b"dst"))
                ));
                let sub = dir.open_dir(b"sub");
                report.push(format!(
                    "open-sub={}",
                    outcome(sub.as_ref().map(|_| ()).map_err(Clone::clone))
                ));
                if let Ok(sub) = &sub {
                    report.push(format!(
                        "copy-into-sub={}",
                        outcome(dir.copy_tree(b"src", sub, b"copied"))
                    ));
                    report.push(format!(
                        "copy-sub-dotdot={}",
                        outcome(sub.copy_tree(b"..", dir, b"up"))
                    ));
                }
                report.push(format!(
                    "copy-dotdot={}",
                    outcome(dir.copy_tree(b"..", dir, b"x"))
                ));
                report.push(format!(
                    "copy-to-dotdot={}",
                    outcome(dir.copy_tree(b"src", dir, b"../x"))
                ));
                // Handles are host file descriptors: hoarding them must hit a limit.
                let hoard: Vec<Directory> =
                    (0..1000).map_while(|_| dir.open_dir(b"sub").ok()).collect();
                report.push(format!("open-many={}", hoard.len()));
                drop(hoard);
                report.push(format!("open-after-drop={}", outcome(dir.open_dir(b"sub"))));
                Err(ArchiveError::Refused(EntryProblem {
                    path: Vec::new(),
                    reason: report.join("\n"),
                }))
            }
            b"escape" => {
                let outside = command.get(7..).unwrap_or_default();
                Err(ArchiveError::Refused(EntryProblem {
                    path: Vec::new(),
                    reason: escape(dir, outside).join("\n"),
                }))
            }
            _ => Err(unsupported()),
        }
    }

    fn write_tree(_: &Directory, _: &OutputStream, _: DiffOptions) -> Result<(), ArchiveError> {
        Err(unsupported())
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

    fn overlay_diff(
        _: &Directory,
        _: Vec<Directory>,
        _: &OutputStream,
        _: DiffOptions,
        _: OverlayOptions,
    ) -> Result<(), ArchiveError> {
        Err(unsupported())
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
