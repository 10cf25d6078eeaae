//! Lock files shared with containers/storage (upstream's `pkg/lockfile`): fcntl whole-file record
//! locks plus a 64-byte "last write" token that tells readers whether to reload.
//!
//! fcntl locks belong to the process, not to the file descriptor's user: two handles of one
//! process on the same file never block each other, and closing any descriptor of the file
//! drops the process's lock. So every path is opened once per process (a registry keeps
//! one shared entry per path) and an in-process reader/writer state decides who may hold
//! it, as upstream's `lockfile` package does with its RWMutex.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use rustix::fs::OFlags;
use storage_driver::syscalls::{set_record_lock_wait, RecordLock};

use crate::store_dir::StoreDir;

/// Length of the last-write token at the start of every lock file.
pub const TOKEN_LEN: usize = 64;

/// A last-write token.
pub type Token = [u8; TOKEN_LEN];

/// How a lock is held within the process.
#[derive(Debug, Default)]
struct Holders {
    readers: usize,
    writer: bool,
}

/// The one per-process entry of a lock file.
#[derive(Debug)]
struct SharedLock {
    file: File,
    holders: Mutex<Holders>,
    changed: Condvar,
}

/// A lock file as the registry knows it: its directory's device and inode, and its name.
type LockKey = (u64, u64, String);

fn registry() -> &'static Mutex<HashMap<LockKey, Arc<SharedLock>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<LockKey, Arc<SharedLock>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// A lock file, opened read-write (or read-only for read-only stores).
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    shared: Arc<SharedLock>,
    read_only: bool,
    /// The token seen at our last lock or written by our last write.
    last_seen: Mutex<Option<Token>>,
}

impl LockFile {
    /// Opens (creating it and its parent directory, 0700, when writable) the lock file.
    pub fn open(path: &Path, read_only: bool) -> io::Result<LockFile> {
        let (parent, name) = crate::store_dir::split_path(path)?;
        let dir = if read_only {
            StoreDir::open(parent)?
        } else {
            StoreDir::create(parent)?
        };
        Self::open_in(&dir, name, read_only)
    }

    /// Opens (creating it, 0644, when writable) the lock file `name` of `dir`.
    pub fn open_in(dir: &StoreDir, name: &str, read_only: bool) -> io::Result<LockFile> {
        // Two spellings of one file must share one entry, or the process would take the
        // fcntl lock "twice" without excluding itself: the entry is the directory's identity
        // and the name.
        let (dev, ino) = dir.identity()?;
        let key = (dev, ino, name.to_string());
        let mut reg = registry().lock().unwrap_or_else(PoisonError::into_inner);
        let shared = match reg.get(&key) {
            Some(shared) => Arc::clone(shared),
            None => {
                let file = if read_only {
                    dir.open_file(name, OFlags::RDONLY, 0)?
                } else {
                    dir.open_file(name, OFlags::RDWR | OFlags::CREATE, 0o644)?
                };
                let shared = Arc::new(SharedLock {
                    file,
                    holders: Mutex::default(),
                    changed: Condvar::new(),
                });
                reg.insert(key, Arc::clone(&shared));
                shared
            }
        };
        Ok(LockFile {
            path: dir.path_of(name),
            shared,
            read_only,
            last_seen: Mutex::new(None),
        })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the lock was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Takes the lock shared; released when the guard drops.
    pub fn lock_shared(&self) -> io::Result<LockGuard<'_>> {
        let mut holders = self.holders();
        while holders.writer {
            holders = self
                .shared
                .changed
                .wait(holders)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if holders.readers == 0 {
            fcntl_lock(&self.shared.file, RecordLock::Read)?;
        }
        holders.readers += 1;
        Ok(LockGuard {
            lock: self,
            exclusive: false,
        })
    }

    /// Takes the lock exclusively; released when the guard drops.
    pub fn lock_exclusive(&self) -> io::Result<LockGuard<'_>> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{}: read-only lock cannot be taken for writing",
                    self.path.display()
                ),
            ));
        }
        let mut holders = self.holders();
        while holders.writer || holders.readers > 0 {
            holders = self
                .shared
                .changed
                .wait(holders)
                .unwrap_or_else(PoisonError::into_inner);
        }
        fcntl_lock(&self.shared.file, RecordLock::Write)?;
        holders.writer = true;
        Ok(LockGuard {
            lock: self,
            exclusive: true,
        })
    }

    fn holders(&self) -> std::sync::MutexGuard<'_, Holders> {
        self.shared
            .holders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn unlock(&self, exclusive: bool) {
        let mut holders = self.holders();
        if exclusive {
            holders.writer = false;
        } else {
            holders.readers = holders.readers.saturating_sub(1);
        }
        if !holders.writer && holders.readers == 0 {
            // Unlocking cannot fail on a valid descriptor; nothing useful to do if it did.
            let _ = fcntl_lock(&self.shared.file, RecordLock::Unlock);
        }
        self.shared.changed.notify_all();
    }

    /// Reads the current token from the file (all zeros when shorter).
    pub fn current_token(&self) -> io::Result<Token> {
        let mut token = [0u8; TOKEN_LEN];
        let mut read = 0;
        while read < TOKEN_LEN {
            match self.shared.file.read_at(&mut token[read..], read as u64) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(token)
    }

    /// Whether someone wrote since we last looked (always true the first time); remembers
    /// the current token. Call with the lock held.
    pub fn modified(&self) -> io::Result<bool> {
        let token = self.current_token()?;
        let mut last = self
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let modified = last.as_ref() != Some(&token);
        *last = Some(token);
        Ok(modified)
    }

    /// Records that we are about to write the files this lock protects: writes a fresh
    /// token, so every other holder reloads. Call with the lock held exclusively.
    pub fn record_write(&self) -> io::Result<()> {
        let token = new_token();
        self.shared.file.write_all_at(&token, 0)?;
        *self
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(token);
        Ok(())
    }
}

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct LockGuard<'a> {
    lock: &'a LockFile,
    exclusive: bool,
}

impl LockGuard<'_> {
    /// Whether the lock is held exclusively.
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.lock.unlock(self.exclusive);
    }
}

/// A new token: time in ns, per-process counter, PID, random bytes (upstream's layout).
fn new_token() -> Token {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut token = [0u8; TOKEN_LEN];
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    token[0..8].copy_from_slice(&nanos.to_le_bytes());
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    token[8..16].copy_from_slice(&counter.to_le_bytes());
    token[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    rand::fill(&mut token[20..]);
    token
}

/// Takes, changes or drops the process's whole-file record lock, waiting for other
/// processes; an interrupted wait is retried every 10 ms as upstream does.
fn fcntl_lock(file: &File, kind: RecordLock) -> io::Result<()> {
    use std::os::fd::AsFd;
    loop {
        match set_record_lock_wait(file.as_fd(), kind) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Instant;

    const CHILD_ENV: &str = "STORAGE_LOCK_TEST_CHILD";

    /// Run as a child process: takes the lock named in the environment exclusively,
    /// prints "locked", holds it for a while.
    #[test]
    fn child_holds_lock() {
        let Ok(path) = std::env::var(CHILD_ENV) else {
            return;
        };
        let lock = LockFile::open(Path::new(&path), false).expect("open");
        let _guard = lock.lock_exclusive().expect("lock");
        lock.record_write().expect("record");
        std::fs::write(format!("{path}.ready"), b"1").expect("ready");
        std::thread::sleep(Duration::from_millis(700));
    }

    #[test]
    fn another_process_blocks_us() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/test.lock");
        let exe = std::env::current_exe().expect("exe");
        let mut child = Command::new(exe)
            .args(["--exact", "lock::tests::child_holds_lock", "--nocapture"])
            .env(CHILD_ENV, &path)
            .spawn()
            .expect("spawn");
        let ready = PathBuf::from(format!("{}.ready", path.display()));
        let start = Instant::now();
        while !ready.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "child never locked"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let lock = LockFile::open(&path, false).expect("open");
        let waited = Instant::now();
        let guard = lock.lock_shared().expect("lock");
        assert!(
            waited.elapsed() >= Duration::from_millis(200),
            "lock was not held by the child"
        );
        // The child recorded a write: we see a token with its PID.
        let token = lock.current_token().expect("token");
        assert_eq!(&token[16..20], &child.id().to_le_bytes());
        drop(guard);
        assert!(child.wait().expect("wait").success());
    }

    #[test]
    fn token_changes_are_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.lock");
        let a = LockFile::open(&path, false).expect("open");
        let b = LockFile::open(&path, false).expect("open");
        {
            let _g = a.lock_shared().expect("lock");
            assert!(a.modified().expect("modified"), "first look always loads");
            assert!(!a.modified().expect("modified"));
        }
        {
            let _g = b.lock_exclusive().expect("lock");
            b.record_write().expect("write");
            assert!(
                !b.modified().expect("modified"),
                "own write is not a change"
            );
        }
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 64);
        let _g = a.lock_shared().expect("lock");
        assert!(a.modified().expect("modified"));
    }

    #[test]
    fn threads_exclude_each_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.lock");
        let inside = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                let inside = Arc::clone(&inside);
                std::thread::spawn(move || {
                    let lock = LockFile::open(&path, false).expect("open");
                    for _ in 0..20 {
                        let _g = lock.lock_exclusive().expect("lock");
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        std::thread::sleep(Duration::from_micros(200));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("join");
        }
    }
}
