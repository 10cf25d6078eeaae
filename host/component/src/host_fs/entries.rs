//! The `entries` interface: an entry created or finished with all its metadata in one call.

use storage_archive::fs::{self as afs, FsRead, FsWrite};
use wasmtime::component::Resource;

use super::convert::{error_to_wit, metadata_from_wit, sparse_map_from_wit};
use super::{FsResult, HostState, LentDir, LentInput};
use crate::bindings::storage::plugin::{entries, types};

impl entries::Host for HostState {
    fn set_metadata(
        &mut self,
        h: Resource<LentDir>,
        path: Vec<u8>,
        meta: entries::EntryMetadata,
    ) -> FsResult<()> {
        let dir = self.writable_dir(&h, &path)?;
        for (name, value) in &meta.xattrs {
            super::rules::check_xattr(&path, name, value, || {
                Ok(dir
                    .confined
                    .lstat(&path)
                    .map_err(error_to_wit)?
                    .is_some_and(|st| st.kind == afs::FileKind::Directory))
            })?;
        }
        dir.confined
            .set_metadata(&path, &metadata_from_wit(meta))
            .map_err(error_to_wit)
    }

    fn create_file_with_metadata(
        &mut self,
        h: Resource<LentDir>,
        path: Vec<u8>,
        create_mode: u32,
        len: u64,
        input: Resource<LentInput>,
        meta: entries::EntryMetadata,
    ) -> FsResult<()> {
        check_new_file_xattrs(&path, &meta)?;
        let meta = metadata_from_wit(meta);
        self.with_input(&h, &path, &input, |dir, reader| {
            dir.confined
                .create_file_with_metadata(&path, create_mode, len, reader, &meta)
                .map_err(error_to_wit)
        })
    }

    fn create_sparse_file_with_metadata(
        &mut self,
        h: Resource<LentDir>,
        path: Vec<u8>,
        create_mode: u32,
        layout: types::SparseMap,
        input: Resource<LentInput>,
        meta: entries::EntryMetadata,
    ) -> FsResult<()> {
        check_new_file_xattrs(&path, &meta)?;
        let meta = metadata_from_wit(meta);
        let map = sparse_map_from_wit(layout);
        self.with_input(&h, &path, &input, |dir, reader| {
            dir.confined
                .create_sparse_file_with_metadata(&path, create_mode, &map, reader, &meta)
                .map_err(error_to_wit)
        })
    }
}

/// The host's xattr rules for a new regular file's attributes (never a directory).
fn check_new_file_xattrs(path: &[u8], meta: &entries::EntryMetadata) -> FsResult<()> {
    for (name, value) in &meta.xattrs {
        super::rules::check_xattr(path, name, value, || Ok(false))?;
    }
    Ok(())
}
