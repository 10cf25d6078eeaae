//! The `streams` interface: the layer tar (or any input) and the output lent to the guest.

use std::io::{self, Read, Write};

use wasmtime::component::Resource;

use super::convert::{io_error, missing, other_error};
use super::{FsResult, HostState, LentInput, LentOutput};
use crate::bindings::storage::plugin::streams;

impl streams::Host for HostState {}

impl streams::HostInputStream for HostState {
    fn read(&mut self, handle: Resource<LentInput>, max: u64) -> FsResult<Vec<u8>> {
        let input = self.table.get_mut(&handle).map_err(missing)?;
        let reader = input
            .reader
            .as_mut()
            .ok_or_else(|| other_error("input stream busy"))?;
        // A guest asking for gigabytes gets a bounded chunk: its memory is the host's too.
        let max = max.min(1 << 20) as usize;
        let mut buf = vec![0u8; max];
        let mut filled = 0;
        // Fill as much as asked (a short read would make the guest loop more), stopping at EOF.
        while filled < max {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(e, "read input")),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    fn drop(&mut self, handle: Resource<LentInput>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl streams::HostOutputStream for HostState {
    fn write(&mut self, handle: Resource<LentOutput>, bytes: Vec<u8>) -> FsResult<()> {
        let output = self.table.get_mut(&handle).map_err(missing)?;
        let writer = output
            .writer
            .as_mut()
            .ok_or_else(|| other_error("output stream busy"))?;
        writer
            .write_all(&bytes)
            .map_err(|e| io_error(e, "write output"))
    }

    fn drop(&mut self, handle: Resource<LentOutput>) -> wasmtime::Result<()> {
        // The host keeps its own handle to the output until the call ends: only the guest's
        // reference goes away here.
        if handle.owned() {
            self.table.delete(handle)?;
        }
        Ok(())
    }
}
