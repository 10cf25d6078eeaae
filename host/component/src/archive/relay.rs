//! The `archive` interface a driver component imports: each call is relayed to a fresh
//! instance of the built-in archive component (its own Store and limits), with the
//! directories and streams the driver passed lent again to it, so the archive rules and code
//! are the host's, whichever driver asks. What the driver lent read-only stays read-only; the
//! streams go back to the driver when the call ends.

use wasmtime::component::Resource;

use super::{builtin, ArchiveComponent, Call};
use crate::bindings::driver::storage::plugin::archive as driver_archive;
use crate::bindings::storage::plugin::{archive_types, types};
use crate::error::ComponentError;
use crate::host_fs::{HostState, LentDir, LentInput, LentOutput};

type ArchiveResult<T> = Result<T, archive_types::ArchiveError>;

/// An error of the relay itself (the archive component could not run, a handle was not
/// there) as the driver sees it: a filesystem error of the `archive` operation, one line.
fn relay_error(op: &str, message: String) -> archive_types::ArchiveError {
    archive_types::ArchiveError::Fs(archive_types::FsOperationError {
        op: op.to_string(),
        path: Vec::new(),
        error: types::FsError {
            kind: types::FsErrorKind::Other,
            errno: 0,
            message,
        },
    })
}

/// A stopped archive component, or one that could not start, as a relay error.
fn component_error(op: &str, e: ComponentError) -> archive_types::ArchiveError {
    relay_error(op, crate::graph_driver::one_line(&e.to_string()))
}

/// A fresh instance of the shared built-in archive component.
fn start(op: &'static str) -> ArchiveResult<Call<'static>> {
    let archive: &'static ArchiveComponent = builtin().map_err(|e| component_error(op, e))?;
    archive.start().map_err(|e| component_error(op, e))
}

impl HostState {
    /// The driver's directory `handle`, lent again to the archive instance of `call`.
    fn relay_dir(
        &mut self,
        op: &str,
        call: &mut Call<'_>,
        handle: &Resource<LentDir>,
    ) -> ArchiveResult<Resource<LentDir>> {
        let dir = self
            .table
            .get(handle)
            .map_err(|e| relay_error(op, format!("directory handle: {e}")))?
            .lend_again()
            .map_err(|e| relay_error(op, format!("lend directory again: {e}")))?;
        call.push(dir).map_err(|e| component_error(op, e))
    }

    /// The reader of the driver's input `handle`, moved to the archive instance.
    fn relay_input(
        &mut self,
        op: &str,
        call: &mut Call<'_>,
        handle: &Resource<LentInput>,
    ) -> ArchiveResult<Resource<LentInput>> {
        let lent = self
            .table
            .get_mut(handle)
            .map_err(|e| relay_error(op, format!("input handle: {e}")))?;
        let parsed = lent.parsed_tar();
        let reader = lent
            .take_reader()
            .ok_or_else(|| relay_error(op, "input stream in use".into()))?;
        call.push(LentInput::with_parsed(reader, parsed))
            .map_err(|e| component_error(op, e))
    }

    /// The writer of the driver's output `handle`, moved to the archive instance.
    fn relay_output(
        &mut self,
        op: &str,
        call: &mut Call<'_>,
        handle: &Resource<LentOutput>,
    ) -> ArchiveResult<Resource<LentOutput>> {
        let writer = self
            .table
            .get_mut(handle)
            .map_err(|e| relay_error(op, format!("output handle: {e}")))?
            .take_writer()
            .ok_or_else(|| relay_error(op, "output stream in use".into()))?;
        call.push(LentOutput::new(writer))
            .map_err(|e| component_error(op, e))
    }

    /// Gives the reader back to the driver's input `handle` (after the archive call).
    fn input_back(&mut self, call: &mut Call<'_>, rep: u32, handle: &Resource<LentInput>) {
        if let (Some(reader), Ok(lent)) = (call.reclaim_input(rep), self.table.get_mut(handle)) {
            lent.give_back(reader);
        }
    }

    /// Gives the writer back to the driver's output `handle` (after the archive call).
    fn output_back(&mut self, call: &mut Call<'_>, rep: u32, handle: &Resource<LentOutput>) {
        if let (Some(writer), Ok(lent)) = (call.reclaim_output(rep), self.table.get_mut(handle)) {
            lent.give_back(writer);
        }
    }

    /// The optional parent of a naive diff, lent again.
    fn relay_parent(
        &mut self,
        op: &str,
        call: &mut Call<'_>,
        parent: Option<&Resource<LentDir>>,
    ) -> ArchiveResult<Option<Resource<LentDir>>> {
        parent.map(|p| self.relay_dir(op, call, p)).transpose()
    }

    /// Overlay lowers the driver gave up (owned handles): lent again, then dropped from the
    /// driver's table.
    fn relay_lowers(
        &mut self,
        op: &str,
        call: &mut Call<'_>,
        lowers: Vec<Resource<LentDir>>,
    ) -> ArchiveResult<Vec<Resource<LentDir>>> {
        let mut relayed = Vec::with_capacity(lowers.len());
        let mut failed = None;
        for lower in lowers {
            if failed.is_none() {
                match self.relay_dir(op, call, &lower) {
                    Ok(dir) => relayed.push(dir),
                    Err(e) => failed = Some(e),
                }
            }
            // The handle was the driver's to give: it is gone after the call either way.
            drop(self.table.delete(lower));
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(relayed),
        }
    }
}

/// The archive instance's answer, or why it stopped.
fn finish<T>(
    call: &Call<'_>,
    op: &'static str,
    result: wasmtime::Result<ArchiveResult<T>>,
) -> ArchiveResult<T> {
    match call.finish_raw(op, result) {
        Ok(answer) => answer,
        Err(e) => Err(component_error(op, e)),
    }
}

impl driver_archive::Host for HostState {
    fn apply_diff(
        &mut self,
        dir: Resource<LentDir>,
        input: Resource<LentInput>,
        options: archive_types::ApplyOptions,
    ) -> ArchiveResult<u64> {
        const OP: &str = "apply-diff";
        let mut call = start(OP)?;
        let lent = self.relay_dir(OP, &mut call, &dir)?;
        let stream = self.relay_input(OP, &mut call, &input)?;
        let rep = stream.rep();
        let result = call.plugin.storage_plugin_archive().call_apply_diff(
            &mut call.store,
            lent,
            stream,
            &options,
        );
        self.input_back(&mut call, rep, &input);
        finish(&call, OP, result)
    }

    fn write_tree(
        &mut self,
        dir: Resource<LentDir>,
        out: Resource<LentOutput>,
        options: archive_types::DiffOptions,
    ) -> ArchiveResult<()> {
        const OP: &str = "write-tree";
        let mut call = start(OP)?;
        let lent = self.relay_dir(OP, &mut call, &dir)?;
        let stream = self.relay_output(OP, &mut call, &out)?;
        let rep = stream.rep();
        let result = call.plugin.storage_plugin_archive().call_write_tree(
            &mut call.store,
            lent,
            stream,
            &options,
        );
        self.output_back(&mut call, rep, &out);
        finish(&call, OP, result)
    }

    fn diff(
        &mut self,
        layer: Resource<LentDir>,
        parent: Option<Resource<LentDir>>,
        parent_mapping: types::IdMapping,
        out: Resource<LentOutput>,
        options: archive_types::DiffOptions,
    ) -> ArchiveResult<()> {
        const OP: &str = "diff";
        let mut call = start(OP)?;
        let layer = self.relay_dir(OP, &mut call, &layer)?;
        let parent = self.relay_parent(OP, &mut call, parent.as_ref())?;
        let stream = self.relay_output(OP, &mut call, &out)?;
        let rep = stream.rep();
        let result = call.plugin.storage_plugin_archive().call_diff(
            &mut call.store,
            layer,
            parent,
            &parent_mapping,
            stream,
            &options,
        );
        self.output_back(&mut call, rep, &out);
        finish(&call, OP, result)
    }

    fn overlay_diff(
        &mut self,
        upper: Resource<LentDir>,
        lowers: Vec<Resource<LentDir>>,
        out: Resource<LentOutput>,
        options: archive_types::DiffOptions,
        overlay: archive_types::OverlayOptions,
    ) -> ArchiveResult<()> {
        const OP: &str = "overlay-diff";
        let mut call = start(OP)?;
        let lowers = self.relay_lowers(OP, &mut call, lowers)?;
        let upper = self.relay_dir(OP, &mut call, &upper)?;
        let stream = self.relay_output(OP, &mut call, &out)?;
        let rep = stream.rep();
        let result = call.plugin.storage_plugin_archive().call_overlay_diff(
            &mut call.store,
            upper,
            &lowers,
            stream,
            &options,
            overlay,
        );
        self.output_back(&mut call, rep, &out);
        finish(&call, OP, result)
    }

    fn changes(
        &mut self,
        layer: Resource<LentDir>,
        parent: Option<Resource<LentDir>>,
        mapping: types::IdMapping,
        parent_mapping: types::IdMapping,
    ) -> ArchiveResult<Vec<archive_types::Change>> {
        const OP: &str = "changes";
        let mut call = start(OP)?;
        let layer = self.relay_dir(OP, &mut call, &layer)?;
        let parent = self.relay_parent(OP, &mut call, parent.as_ref())?;
        let result = call.plugin.storage_plugin_archive().call_changes(
            &mut call.store,
            layer,
            parent,
            &mapping,
            &parent_mapping,
        );
        finish(&call, OP, result)
    }

    fn overlay_changes(
        &mut self,
        upper: Resource<LentDir>,
        lowers: Vec<Resource<LentDir>>,
        overlay: archive_types::OverlayOptions,
    ) -> ArchiveResult<Vec<archive_types::Change>> {
        const OP: &str = "overlay-changes";
        let mut call = start(OP)?;
        let lowers = self.relay_lowers(OP, &mut call, lowers)?;
        let upper = self.relay_dir(OP, &mut call, &upper)?;
        let result = call.plugin.storage_plugin_archive().call_overlay_changes(
            &mut call.store,
            upper,
            &lowers,
            overlay,
        );
        finish(&call, OP, result)
    }

    fn diff_size(
        &mut self,
        layer: Resource<LentDir>,
        parent: Option<Resource<LentDir>>,
        mapping: types::IdMapping,
        parent_mapping: types::IdMapping,
    ) -> ArchiveResult<u64> {
        const OP: &str = "diff-size";
        let mut call = start(OP)?;
        let layer = self.relay_dir(OP, &mut call, &layer)?;
        let parent = self.relay_parent(OP, &mut call, parent.as_ref())?;
        let result = call.plugin.storage_plugin_archive().call_diff_size(
            &mut call.store,
            layer,
            parent,
            &mapping,
            &parent_mapping,
        );
        finish(&call, OP, result)
    }

    fn tree_size(&mut self, dir: Resource<LentDir>) -> ArchiveResult<u64> {
        const OP: &str = "tree-size";
        let mut call = start(OP)?;
        let lent = self.relay_dir(OP, &mut call, &dir)?;
        let result = call
            .plugin
            .storage_plugin_archive()
            .call_tree_size(&mut call.store, lent);
        finish(&call, OP, result)
    }
}
