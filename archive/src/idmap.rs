//! Owner ID mapping between a container's view and the host (the host converts its own
//! `IdMappings` into this small type).

/// One contiguous range: container IDs `container_id..container_id+size` are host IDs
/// `host_id..host_id+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First ID inside the container.
    pub container_id: u32,
    /// First ID on the host.
    pub host_id: u32,
    /// Number of IDs.
    pub size: u32,
}

/// UID and GID ranges; both empty means the identity mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMapping {
    /// UID ranges.
    pub uids: Vec<IdRange>,
    /// GID ranges.
    pub gids: Vec<IdRange>,
}

impl IdMapping {
    /// True when no ranges are set (IDs pass unchanged).
    pub fn is_identity(&self) -> bool {
        self.uids.is_empty() && self.gids.is_empty()
    }

    /// Maps a container (uid, gid) to the host; `None` if either has no mapping.
    pub fn to_host(&self, uid: u64, gid: u64) -> Option<(u32, u32)> {
        Some((
            map(&self.uids, uid, |r| (r.container_id, r.host_id))?,
            map(&self.gids, gid, |r| (r.container_id, r.host_id))?,
        ))
    }

    /// Maps a host (uid, gid) to the container; `None` if either has no mapping.
    pub fn to_container(&self, uid: u32, gid: u32) -> Option<(u32, u32)> {
        Some((
            map(&self.uids, u64::from(uid), |r| (r.host_id, r.container_id))?,
            map(&self.gids, u64::from(gid), |r| (r.host_id, r.container_id))?,
        ))
    }
}

/// Maps `id` through `ranges` using `ends` to pick (from, to) starts; identity when empty.
fn map(ranges: &[IdRange], id: u64, ends: impl Fn(&IdRange) -> (u32, u32)) -> Option<u32> {
    if ranges.is_empty() {
        return u32::try_from(id).ok();
    }
    ranges.iter().find_map(|r| {
        let (from, to) = ends(r);
        let offset = id.checked_sub(u64::from(from))?;
        if offset < u64::from(r.size) {
            u32::try_from(u64::from(to) + offset).ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_both_ways() {
        let m = IdMapping {
            uids: vec![IdRange {
                container_id: 0,
                host_id: 100000,
                size: 65536,
            }],
            gids: vec![IdRange {
                container_id: 0,
                host_id: 200000,
                size: 10,
            }],
        };
        assert_eq!(m.to_host(5, 9), Some((100005, 200009)));
        assert_eq!(m.to_host(5, 10), None);
        assert_eq!(m.to_container(100005, 200000), Some((5, 0)));
        assert_eq!(m.to_container(5, 200000), None);
        assert_eq!(IdMapping::default().to_host(7, 8), Some((7, 8)));
    }
}
