//! The paths a tar-split has recorded, to refuse one that repeats as Go's `jsonPacker` does
//! (`duplicates of file paths not supported`), in memory that does not grow with the archive.
//!
//! Go keeps every cleaned path in a map; a million-entry layer then holds a million strings.
//! Here the latest [`WINDOW`] paths (fewer when their names pass 2 MiB) are kept in memory (a
//! 128-bit hash each, see [`storage_archive::path_hash`], and the entry's name for the
//! message) and a repeat among them is refused at once. When the window fills it is sorted by hash and written as one run
//! to a spill file, an unnamed temporary file in the directory the store stages the layer in
//! (so it lives on the store's filesystem and vanishes with the process); [`SeenPaths::finish`]
//! then merges the runs and refuses the first hash found twice. An archive of fewer entries
//! than the window (nearly every real layer) never spills. No crate does this external
//! duplicate check over byte strings, so it is written here.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use storage_archive::path_hash;

use crate::records::FastHash;
use crate::store_dir::StoreDir;

use super::{io_err, Result, TarSplitError};

/// Paths kept in memory before they are spilled as one run.
pub(super) const WINDOW: usize = 1 << 14;
/// Bytes of names kept in memory before they are spilled (a name may be up to 1 MiB long).
const WINDOW_NAME_BYTES: usize = 2 << 20;
/// Read buffer shared among the runs when they are merged.
const MERGE_BUFFERS: usize = 1 << 20;

/// The paths recorded so far (see the module docs).
pub(super) struct SeenPaths {
    window: usize,
    /// Hashes of the window's paths (already hashes: a cheap hasher spreads them).
    index: HashSet<u128, FastHash>,
    /// The window's entries: hash and the span of its name in `names`.
    entries: Vec<(u128, usize, usize)>,
    names: Vec<u8>,
    /// Where the spill file is made; `None`: the system's temporary directory.
    spill_dir: Option<Arc<StoreDir>>,
    spill: Option<Spill>,
}

/// The spill file and the runs written to it (offset and length in bytes).
struct Spill {
    file: File,
    runs: Vec<(u64, u64)>,
    end: u64,
}

impl SeenPaths {
    /// An empty record spilling into `spill_dir` (the system's temporary directory if `None`).
    pub(super) fn new(spill_dir: Option<Arc<StoreDir>>) -> Self {
        Self::with_window(spill_dir, WINDOW)
    }

    fn with_window(spill_dir: Option<Arc<StoreDir>>, window: usize) -> Self {
        SeenPaths {
            window: window.max(1),
            index: HashSet::with_hasher(FastHash),
            entries: Vec::new(),
            names: Vec::new(),
            spill_dir,
            spill: None,
        }
    }

    /// Notes the entry `name` (cleaned: `cleaned`); refuses it if the window holds it already.
    pub(super) fn insert(&mut self, cleaned: &[u8], name: &[u8]) -> Result<()> {
        let hash = path_hash(cleaned);
        if !self.index.insert(hash) {
            return Err(duplicate(name));
        }
        let start = self.names.len();
        self.names.extend_from_slice(name);
        self.entries.push((hash, start, name.len()));
        if self.entries.len() >= self.window || self.names.len() >= WINDOW_NAME_BYTES {
            self.spill_window()?;
        }
        Ok(())
    }

    /// Writes the window, sorted by hash, as one run and empties it.
    fn spill_window(&mut self) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let spill = match &mut self.spill {
            Some(spill) => spill,
            None => {
                let file = match &self.spill_dir {
                    Some(dir) => dir.temp_file(),
                    None => tempfile::tempfile(),
                }
                .map_err(io_err("making the tar-split path spill file"))?;
                self.spill.insert(Spill {
                    file,
                    runs: Vec::new(),
                    end: 0,
                })
            }
        };
        self.entries.sort_unstable_by_key(|&(hash, _, _)| hash);
        let start = spill.end;
        let mut out = BufWriter::new(Positioned {
            file: &spill.file,
            at: start,
        });
        for &(hash, from, len) in &self.entries {
            let len32 = u32::try_from(len).map_err(|_| {
                TarSplitError::InvalidHeader(format!("an entry name of {len} bytes"))
            })?;
            out.write_all(&hash.to_le_bytes())
                .and_then(|()| out.write_all(&len32.to_le_bytes()))
                .and_then(|()| out.write_all(&self.names[from..from + len]))
                .map_err(io_err("writing the tar-split path spill file"))?;
        }
        let end = out
            .into_inner()
            .map_err(|e| TarSplitError::Io {
                context: "writing the tar-split path spill file",
                source: e.into_error(),
            })?
            .at;
        spill.runs.push((start, end - start));
        spill.end = end;
        self.index.clear();
        self.entries.clear();
        self.names.clear();
        Ok(())
    }

    /// Refuses a path recorded in two different windows: merges the runs by hash. The merge
    /// holds a hash and a buffer a run, never a name: one is read back only to be reported.
    pub(super) fn finish(mut self) -> Result<()> {
        if self.spill.is_none() {
            return Ok(()); // one window, checked as it filled
        }
        self.spill_window()?;
        let Some(spill) = &self.spill else {
            return Ok(());
        };
        let capacity = (MERGE_BUFFERS / spill.runs.len()).clamp(4096, 64 * 1024);
        let mut runs: Vec<Run<'_>> = spill
            .runs
            .iter()
            .map(|&(start, len)| Run {
                reader: BufReader::with_capacity(
                    capacity,
                    Positioned {
                        file: &spill.file,
                        at: start,
                    }
                    .take_to(start + len),
                ),
                at: start,
            })
            .collect();
        let mut heap = BinaryHeap::new();
        for (i, run) in runs.iter_mut().enumerate() {
            if let Some((hash, name)) = run.next_record()? {
                heap.push(Reverse((hash, i, name)));
            }
        }
        let mut last: Option<u128> = None;
        while let Some(Reverse((hash, i, name))) = heap.pop() {
            if last == Some(hash) {
                let (at, len) = name;
                let mut name = vec![0u8; len];
                spill
                    .file
                    .read_exact_at(&mut name, at)
                    .map_err(io_err("reading the tar-split path spill file"))?;
                return Err(duplicate(&name));
            }
            last = Some(hash);
            if let Some((hash, name)) = runs[i].next_record()? {
                heap.push(Reverse((hash, i, name)));
            }
        }
        Ok(())
    }
}

fn duplicate(name: &[u8]) -> TarSplitError {
    TarSplitError::DuplicatePath(String::from_utf8_lossy(name).into_owned())
}

/// One run being merged: its reader and the file offset of its next record.
struct Run<'a> {
    reader: BufReader<io::Take<Positioned<'a>>>,
    at: u64,
}

impl Run<'_> {
    /// The next record: its hash and where its name is in the file (offset, length); the
    /// name itself is skipped.
    fn next_record(&mut self) -> Result<Option<(u128, (u64, usize))>> {
        let read_err = io_err("reading the tar-split path spill file");
        if self.reader.fill_buf().map_err(read_err)?.is_empty() {
            return Ok(None);
        }
        let mut hash = [0u8; 16];
        let mut len = [0u8; 4];
        self.reader.read_exact(&mut hash).map_err(read_err)?;
        self.reader.read_exact(&mut len).map_err(read_err)?;
        let len = u32::from_le_bytes(len);
        let skipped = io::copy(
            &mut (&mut self.reader).take(u64::from(len)),
            &mut io::sink(),
        )
        .map_err(read_err)?;
        if skipped != u64::from(len) {
            return Err(read_err(io::ErrorKind::UnexpectedEof.into()));
        }
        let name_at = self.at + 20;
        self.at = name_at + u64::from(len);
        Ok(Some((u128::from_le_bytes(hash), (name_at, len as usize))))
    }
}

/// Reads and writes one file at its own offset (`pread`/`pwrite`), so that every run has a
/// reader of its own over one descriptor; reads stop at `end`.
struct Positioned<'a> {
    file: &'a File,
    at: u64,
}

impl<'a> Positioned<'a> {
    fn take_to(self, end: u64) -> io::Take<Positioned<'a>> {
        let at = self.at;
        self.take(end - at)
    }
}

impl Read for Positioned<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl Write for Positioned<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn dup_name(err: TarSplitError) -> String {
        match err {
            TarSplitError::DuplicatePath(name) => name,
            other => panic!("not a duplicate: {other}"),
        }
    }

    #[test]
    fn a_repeat_in_the_window_is_refused_at_once() {
        let mut seen = SeenPaths::with_window(None, 8);
        seen.insert(b"a", b"a").unwrap();
        seen.insert(b"b", b"./b").unwrap();
        assert_eq!(dup_name(seen.insert(b"a", b"a/").unwrap_err()), "a/");
    }

    #[test]
    fn a_repeat_across_spilled_runs_is_refused_at_the_end_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let handle = Arc::new(StoreDir::open(dir.path()).unwrap());
        let mut seen = SeenPaths::with_window(Some(handle), 4);
        for i in 0..10 {
            seen.insert(format!("f{i}").as_bytes(), format!("f{i}").as_bytes())
                .unwrap();
        }
        seen.insert(b"f3", b"./f3").unwrap(); // f3 was spilled: not seen yet
        assert_eq!(
            dup_name(seen.finish().unwrap_err()).trim_start_matches("./"),
            "f3"
        );
        // The spill file has no name: nothing is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn distinct_paths_over_many_runs_pass() {
        let mut seen = SeenPaths::with_window(None, 7);
        for i in 0..1000 {
            let name = format!("dir/{i}/name-{}", "x".repeat(i % 50));
            seen.insert(name.as_bytes(), name.as_bytes()).unwrap();
        }
        seen.finish().unwrap();
    }

    /// Long names spill by their bytes, not only by their count.
    #[test]
    fn long_names_spill_the_window_early() {
        let mut seen = SeenPaths::with_window(None, 1000);
        let long = |i: usize| format!("{i:06}{}", "n".repeat(1 << 20));
        for i in 0..5 {
            seen.insert(long(i).as_bytes(), long(i).as_bytes()).unwrap();
        }
        assert!(seen.names.len() < WINDOW_NAME_BYTES);
        assert_eq!(seen.spill.as_ref().map(|s| s.runs.len()), Some(2));
        seen.insert(long(1).as_bytes(), long(1).as_bytes()).unwrap();
        assert_eq!(dup_name(seen.finish().unwrap_err()), long(1));
    }

    #[test]
    fn the_last_window_is_merged_with_the_runs() {
        let mut seen = SeenPaths::with_window(None, 3);
        for name in ["a", "b", "c", "d"] {
            seen.insert(name.as_bytes(), name.as_bytes()).unwrap();
        }
        seen.insert(b"b", b"b").unwrap(); // "b" is in the spilled run, "d" and "b" in memory
        assert_eq!(dup_name(seen.finish().unwrap_err()), "b");
    }
}
