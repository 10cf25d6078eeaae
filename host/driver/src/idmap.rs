//! User and group ID mappings between a container's view and the host (upstream's
//! `idtools.IDMap`), as stored in layer and container records.

use serde::{Deserialize, Serialize};

/// One contiguous range of a mapping: container IDs `container_id..container_id+size`
/// are host IDs `host_id..host_id+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    /// First ID inside the container.
    pub container_id: u32,
    /// First ID on the host.
    pub host_id: u32,
    /// Number of IDs in the range.
    pub size: u32,
}

/// The UID and GID mappings of a layer or container. Empty means the identity mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMappings {
    /// UID ranges.
    pub uids: Vec<IdMap>,
    /// GID ranges.
    pub gids: Vec<IdMap>,
}

impl IdMappings {
    /// Whether both mappings are the identity.
    pub fn is_identity(&self) -> bool {
        self.uids.is_empty() && self.gids.is_empty()
    }

    /// Maps a container (uid, gid) pair to the host. `None` if either ID is not mapped.
    pub fn to_host(&self, uid: u32, gid: u32) -> Option<(u32, u32)> {
        Some((
            map_id(&self.uids, uid, true)?,
            map_id(&self.gids, gid, true)?,
        ))
    }

    /// Maps a host (uid, gid) pair into the container. `None` if either ID is not mapped.
    pub fn to_container(&self, uid: u32, gid: u32) -> Option<(u32, u32)> {
        Some((
            map_id(&self.uids, uid, false)?,
            map_id(&self.gids, gid, false)?,
        ))
    }
}

/// Maps one ID through `ranges`; an empty range list is the identity.
fn map_id(ranges: &[IdMap], id: u32, to_host: bool) -> Option<u32> {
    if ranges.is_empty() {
        return Some(id);
    }
    ranges.iter().find_map(|m| {
        let (from, to) = if to_host {
            (m.container_id, m.host_id)
        } else {
            (m.host_id, m.container_id)
        };
        let offset = id.checked_sub(from)?;
        (offset < m.size).then(|| to + offset)
    })
}

/// Whether this process runs in a user namespace other than the initial one (upstream's
/// `unshare.IsRootless`/`RunningInUserNS`): there the kernel refuses device nodes, so layers
/// are applied without them, as upstream does. The initial namespace maps every ID to
/// itself (`0 0 4294967295` in `/proc/self/uid_map`).
pub fn running_in_user_namespace() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => !is_initial_uid_map(&map),
        // No procfs: nothing says we are in one.
        Err(_) => false,
    })
}

/// Whether a `uid_map` text is the initial namespace's identity mapping of all IDs.
fn is_initial_uid_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_when_empty() {
        let m = IdMappings::default();
        assert_eq!(m.to_host(5, 7), Some((5, 7)));
        assert!(m.is_identity());
    }

    #[test]
    fn maps_both_ways_and_rejects_unmapped() {
        let r = vec![IdMap {
            container_id: 0,
            host_id: 100000,
            size: 65536,
        }];
        let m = IdMappings {
            uids: r.clone(),
            gids: r,
        };
        assert_eq!(m.to_host(0, 1), Some((100000, 100001)));
        assert_eq!(m.to_container(100005, 100000), Some((5, 0)));
        assert_eq!(m.to_host(70000, 0), None);
        assert_eq!(m.to_container(5, 5), None);
    }

    #[test]
    fn the_initial_namespace_is_recognised() {
        assert!(is_initial_uid_map("         0          0 4294967295\n"));
        assert!(!is_initial_uid_map("         0       1000          1\n"));
        assert!(!is_initial_uid_map("0 1000 1\n1 100000 65536\n"));
    }
}
