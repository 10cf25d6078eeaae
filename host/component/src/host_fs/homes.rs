//! The `homes` interface: the image store's home and the read-only stores' homes of a
//! driver component, lent on request (the latter read-only).

use wasmtime::component::Resource;

use super::{HostState, LentDir};

impl crate::bindings::driver::storage::plugin::homes::Host for HostState {
    fn image_home(&mut self) -> Option<Resource<LentDir>> {
        let path = self.homes.image_home.clone()?;
        // A home that cannot be opened is as good as none: the driver then finds no layer
        // there, and says so.
        self.lend(&path, false).ok()
    }

    fn read_only_homes(&mut self) -> Vec<Resource<LentDir>> {
        let paths = self.homes.read_only_homes.clone();
        paths
            .iter()
            .filter_map(|p| self.lend(p, true).ok())
            .collect()
    }
}
