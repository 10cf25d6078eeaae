//! `cargo xtask`: project tasks that are not a build.
//!
//! - `cargo xtask man [--out DIR]`: the man pages, `storage(1)` and `storage-COMMAND(1)`, in
//!   `target/man/` by default.
//! - `cargo xtask completions [--out DIR]`: the bash, zsh and fish completions, in
//!   `target/completions/` by default.
//! - `cargo xtask install [--prefix DIR] [--destdir DIR]`: installs `target/release/storage`
//!   (build it first: `cargo build --release -p storage-cli`), the man pages and the
//!   completions under PREFIX (default /usr/local), staged below DESTDIR if given.
//!
//! Pages and completions are made from the command table of the `storage-cli` library, so
//! they list what the binary accepts, and nothing else.

mod completions;
mod man;
mod model;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

const USAGE: &str = "usage: cargo xtask man [--out DIR]
       cargo xtask completions [--out DIR]
       cargo xtask install [--prefix DIR] [--destdir DIR]";

fn main() {
    if let Err(e) = run(std::env::args().skip(1).collect()) {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let Some((task, rest)) = args.split_first() else {
        bail!("no task given\n{USAGE}");
    };
    let options = Options::parse(rest)?;
    match task.as_str() {
        "man" => {
            let dir = options.out.unwrap_or_else(|| target_dir().join("man"));
            write_all(&dir, &man::pages())?;
            println!("man pages in {}", dir.display());
        }
        "completions" => {
            let dir = options
                .out
                .unwrap_or_else(|| target_dir().join("completions"));
            write_all(&dir, &completions::scripts())?;
            println!("completions in {}", dir.display());
        }
        "install" => install(&options)?,
        "help" | "--help" | "-h" => println!("{USAGE}"),
        other => bail!("unknown task {other:?}\n{USAGE}"),
    }
    Ok(())
}

/// The options the tasks take.
#[derive(Debug, Default)]
struct Options {
    out: Option<PathBuf>,
    prefix: Option<PathBuf>,
    destdir: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (arg.as_str(), None),
            };
            let slot = match name {
                "--out" => &mut options.out,
                "--prefix" => &mut options.prefix,
                "--destdir" => &mut options.destdir,
                _ => bail!("unknown option {arg:?}\n{USAGE}"),
            };
            let value = match inline {
                Some(v) => v,
                None => args
                    .next()
                    .with_context(|| format!("{name} needs a value"))?
                    .clone(),
            };
            *slot = Some(PathBuf::from(value));
        }
        Ok(options)
    }
}

/// The workspace's root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, or `target/` in the workspace.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// Writes every file into `dir`, replacing what it held: a command that left the table must
/// not leave its page behind.
fn write_all(dir: &Path, files: &[(String, String)]) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, contents) in files {
        let path = dir.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Where each kind of file goes below the prefix.
struct Layout {
    bin: PathBuf,
    man1: PathBuf,
    bash: PathBuf,
    zsh: PathBuf,
    fish: PathBuf,
}

impl Layout {
    /// The standard places under `prefix`, below `destdir` when staging for a package.
    fn new(prefix: &Path, destdir: Option<&Path>) -> Layout {
        let root = match destdir {
            // DESTDIR is prepended to the absolute prefix, as `make install` does.
            Some(d) => d.join(prefix.strip_prefix("/").unwrap_or(prefix)),
            None => prefix.to_path_buf(),
        };
        let share = root.join("share");
        Layout {
            bin: root.join("bin"),
            man1: share.join("man/man1"),
            bash: share.join("bash-completion/completions"),
            zsh: share.join("zsh/site-functions"),
            fish: share.join("fish/vendor_completions.d"),
        }
    }
}

fn install(options: &Options) -> Result<()> {
    let prefix = options
        .prefix
        .clone()
        .unwrap_or_else(|| PathBuf::from("/usr/local"));
    if !prefix.is_absolute() {
        bail!(
            "--prefix must be an absolute path, not {}",
            prefix.display()
        );
    }
    let binary = target_dir().join("release").join(storage_cli::PROGRAM);
    if !binary.is_file() {
        bail!(
            "{} is missing: build it first with `cargo build --release -p storage-cli`",
            binary.display()
        );
    }
    let layout = Layout::new(&prefix, options.destdir.as_deref());
    copy_file(&binary, &layout.bin.join(storage_cli::PROGRAM), 0o755)?;
    for (name, contents) in man::pages() {
        write_file(&layout.man1.join(name), &contents)?;
    }
    for (name, contents) in completions::scripts() {
        let dir = if name.ends_with(".fish") {
            &layout.fish
        } else if name.starts_with('_') {
            &layout.zsh
        } else {
            &layout.bash
        };
        write_file(&dir.join(name), &contents)?;
    }
    println!(
        "installed {} with its man pages and bash, zsh and fish completions under {}",
        storage_cli::PROGRAM,
        options
            .destdir
            .as_ref()
            .map(|d| d.join(prefix.strip_prefix("/").unwrap_or(&prefix)))
            .unwrap_or(prefix)
            .display()
    );
    Ok(())
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(())
}

/// Installs a data file, mode 0644.
fn write_file(path: &Path, contents: &str) -> Result<()> {
    create_parent(path)?;
    replace(path, |tmp| {
        std::fs::write(tmp, contents)?;
        set_mode(tmp, 0o644)
    })
}

/// Installs a copy of `from` with `mode`.
fn copy_file(from: &Path, to: &Path, mode: u32) -> Result<()> {
    create_parent(to)?;
    replace(to, |tmp| {
        std::fs::copy(from, tmp)?;
        set_mode(tmp, mode)
    })
    .with_context(|| format!("copying {}", from.display()))
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Writes `path` through a temporary file beside it and a rename, so that a running
/// `storage` being replaced is not written into (ETXTBSY) and nothing half-written is left.
fn replace(path: &Path, fill: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.xtask-tmp", name.to_string_lossy()));
    let result = fill(&tmp).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("installing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_the_standard_one() {
        let l = Layout::new(Path::new("/usr/local"), None);
        assert_eq!(l.bin, Path::new("/usr/local/bin"));
        assert_eq!(l.man1, Path::new("/usr/local/share/man/man1"));
        assert_eq!(
            l.bash,
            Path::new("/usr/local/share/bash-completion/completions")
        );
        assert_eq!(l.zsh, Path::new("/usr/local/share/zsh/site-functions"));
        assert_eq!(
            l.fish,
            Path::new("/usr/local/share/fish/vendor_completions.d")
        );
        let l = Layout::new(Path::new("/usr"), Some(Path::new("/tmp/stage")));
        assert_eq!(l.bin, Path::new("/tmp/stage/usr/bin"));
    }

    #[test]
    fn options_take_both_forms() {
        let args: Vec<String> = ["--prefix", "/opt", "--destdir=/tmp/d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = Options::parse(&args).expect("parses");
        assert_eq!(o.prefix.as_deref(), Some(Path::new("/opt")));
        assert_eq!(o.destdir.as_deref(), Some(Path::new("/tmp/d")));
        assert!(Options::parse(&["--bogus".to_string()]).is_err());
        assert!(Options::parse(&["--out".to_string()]).is_err());
    }

    #[test]
    fn write_all_replaces_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("man");
        write_all(&out, &[("old.1".into(), "x".into())]).expect("writes");
        write_all(&out, &[("new.1".into(), "y".into())]).expect("writes");
        assert!(!out.join("old.1").exists());
        assert_eq!(
            std::fs::read_to_string(out.join("new.1")).expect("reads"),
            "y"
        );
    }
}
