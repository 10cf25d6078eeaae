//! The btrfs ioctls' argument structures as `linux/btrfs.h` lays them out, and their
//! request numbers; [`super::LinuxSyscalls`] makes the calls (no `btrfs` program, no
//! libbtrfs).

use std::ffi::{CStr, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;

use rustix::ioctl::{opcode, Opcode};

/// `BTRFS_IOCTL_MAGIC`.
const MAGIC: u8 = 0x94;

/// `BTRFS_PATH_NAME_MAX`: the longest name in [`VolArgs`] (4087, plus the NUL).
pub const PATH_NAME_MAX: usize = 4087;
/// `BTRFS_SUBVOL_NAME_MAX`: the longest name in [`VolArgsV2`] (4039, plus the NUL).
pub const SUBVOL_NAME_MAX: usize = 4039;
/// `BTRFS_INO_LOOKUP_PATH_MAX`.
pub const INO_LOOKUP_PATH_MAX: usize = 4080;
/// `BTRFS_SEARCH_ARGS_BUFSIZE`: what is left of a page after the search key.
pub const SEARCH_ARGS_BUFSIZE: usize = 4096 - std::mem::size_of::<SearchKey>();

/// `BTRFS_FIRST_FREE_OBJECTID`: the inode number of every subvolume's root directory.
pub const FIRST_FREE_OBJECTID: u64 = 256;
/// `BTRFS_QUOTA_TREE_OBJECTID`.
pub const QUOTA_TREE_OBJECTID: u64 = 8;
/// `BTRFS_QGROUP_STATUS_KEY`: the item the quota tree has while quotas are enabled.
pub const QGROUP_STATUS_KEY: u32 = 240;
/// `BTRFS_QUOTA_CTL_ENABLE`.
pub const QUOTA_CTL_ENABLE: u64 = 1;
/// `BTRFS_QGROUP_LIMIT_MAX_RFER`: the limit is on referenced bytes.
pub const QGROUP_LIMIT_MAX_RFER: u64 = 1;

/// `struct btrfs_ioctl_vol_args`: a name in the directory the ioctl is called on.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VolArgs {
    /// Unused by the calls made here.
    pub fd: i64,
    /// NUL-terminated name.
    pub name: [u8; PATH_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_vol_args_v2` (the anonymous unions flattened to their largest
/// members: `unused[4]` and `name`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VolArgsV2 {
    /// The source subvolume of a snapshot.
    pub fd: i64,
    /// Transaction ID (output of async snapshots; unused).
    pub transid: u64,
    /// `BTRFS_SUBVOL_*` flags.
    pub flags: u64,
    /// `size` and `qgroup_inherit`, or padding.
    pub unused: [u64; 4],
    /// NUL-terminated name (or a subvolume ID with `BTRFS_SUBVOL_SPEC_BY_ID`).
    pub name: [u8; SUBVOL_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_ino_lookup_args`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct InoLookupArgs {
    /// In: tree to look in (0 = the descriptor's); out: that tree's ID.
    pub treeid: u64,
    /// The inode to look up.
    pub objectid: u64,
    /// Out: its path in the tree.
    pub name: [u8; INO_LOOKUP_PATH_MAX],
}

/// `struct btrfs_ioctl_quota_ctl_args`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct QuotaCtlArgs {
    /// `BTRFS_QUOTA_CTL_*`.
    pub cmd: u64,
    /// Unused.
    pub status: u64,
}

/// `struct btrfs_ioctl_qgroup_create_args`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct QgroupCreateArgs {
    /// 1 creates, 0 destroys.
    pub create: u64,
    /// The qgroup (`0/<subvolume ID>` is the subvolume ID itself).
    pub qgroupid: u64,
}

/// `struct btrfs_qgroup_limit`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct QgroupLimit {
    /// `BTRFS_QGROUP_LIMIT_*`: which of the fields below apply.
    pub flags: u64,
    /// Most referenced bytes.
    pub max_rfer: u64,
    /// Most exclusive bytes.
    pub max_excl: u64,
    /// Reserved referenced bytes.
    pub rsv_rfer: u64,
    /// Reserved exclusive bytes.
    pub rsv_excl: u64,
}

/// `struct btrfs_ioctl_qgroup_limit_args`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct QgroupLimitArgs {
    /// The qgroup; 0 is the descriptor's subvolume.
    pub qgroupid: u64,
    /// The limit.
    pub lim: QgroupLimit,
}

/// `struct btrfs_ioctl_search_key`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct SearchKey {
    /// The tree to search.
    pub tree_id: u64,
    /// Lowest object ID.
    pub min_objectid: u64,
    /// Highest object ID.
    pub max_objectid: u64,
    /// Lowest offset.
    pub min_offset: u64,
    /// Highest offset.
    pub max_offset: u64,
    /// Lowest transaction ID.
    pub min_transid: u64,
    /// Highest transaction ID.
    pub max_transid: u64,
    /// Lowest item type.
    pub min_type: u32,
    /// Highest item type.
    pub max_type: u32,
    /// In: most items wanted; out: items found.
    pub nr_items: u32,
    /// Padding.
    pub unused: u32,
    /// Padding.
    pub unused1: u64,
    /// Padding.
    pub unused2: u64,
    /// Padding.
    pub unused3: u64,
    /// Padding.
    pub unused4: u64,
}

/// `struct btrfs_ioctl_search_args`: a key and a page's worth of results.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SearchArgs {
    /// What to look for.
    pub key: SearchKey,
    /// Results: a [`SearchHeader`] and item data per item.
    pub buf: [u8; SEARCH_ARGS_BUFSIZE],
}

/// `struct btrfs_ioctl_search_header`, the start of each result in [`SearchArgs::buf`].
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct SearchHeader {
    /// Transaction ID of the item.
    pub transid: u64,
    /// Object ID.
    pub objectid: u64,
    /// Offset.
    pub offset: u64,
    /// Item type.
    pub item_type: u32,
    /// Length of the item data that follows.
    pub len: u32,
}

/// `BTRFS_IOC_SUBVOL_CREATE`.
pub const IOC_SUBVOL_CREATE: Opcode = opcode::write::<VolArgs>(MAGIC, 14);
/// `BTRFS_IOC_SNAP_DESTROY`.
pub const IOC_SNAP_DESTROY: Opcode = opcode::write::<VolArgs>(MAGIC, 15);
/// `BTRFS_IOC_TREE_SEARCH`.
pub const IOC_TREE_SEARCH: Opcode = opcode::read_write::<SearchArgs>(MAGIC, 17);
/// `BTRFS_IOC_INO_LOOKUP`.
pub const IOC_INO_LOOKUP: Opcode = opcode::read_write::<InoLookupArgs>(MAGIC, 18);
/// `BTRFS_IOC_SNAP_CREATE_V2`.
pub const IOC_SNAP_CREATE_V2: Opcode = opcode::write::<VolArgsV2>(MAGIC, 23);
/// `BTRFS_IOC_QUOTA_CTL`.
pub const IOC_QUOTA_CTL: Opcode = opcode::read_write::<QuotaCtlArgs>(MAGIC, 40);
/// `BTRFS_IOC_QGROUP_CREATE`.
pub const IOC_QGROUP_CREATE: Opcode = opcode::write::<QgroupCreateArgs>(MAGIC, 42);
/// `BTRFS_IOC_QGROUP_LIMIT` (declared `_IOR` by the kernel, though it only reads).
pub const IOC_QGROUP_LIMIT: Opcode = opcode::read::<QgroupLimitArgs>(MAGIC, 43);
/// `BTRFS_IOC_QUOTA_RESCAN_WAIT`.
pub const IOC_QUOTA_RESCAN_WAIT: Opcode = opcode::none(MAGIC, 46);
/// `BTRFS_IOC_SNAP_DESTROY_V2`.
pub const IOC_SNAP_DESTROY_V2: Opcode = opcode::write::<VolArgsV2>(MAGIC, 63);

/// Copies `name` into a fixed NUL-terminated buffer; refuses names that do not fit, are
/// empty, or hold a `/` or NUL (a subvolume is always one name in its directory).
fn fill_name<const N: usize>(buf: &mut [u8; N], name: &OsStr) -> io::Result<()> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= N || bytes.contains(&b'/') || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid subvolume name {name:?}"),
        ));
    }
    buf[..bytes.len()].copy_from_slice(bytes);
    buf[bytes.len()..].fill(0);
    Ok(())
}

impl VolArgs {
    /// Arguments naming `name`.
    pub fn named(name: &OsStr) -> io::Result<Box<VolArgs>> {
        let mut args = Box::new(VolArgs {
            fd: 0,
            name: [0; PATH_NAME_MAX + 1],
        });
        fill_name(&mut args.name, name)?;
        Ok(args)
    }
}

impl VolArgsV2 {
    /// Arguments naming `name`, with `fd` as the source subvolume.
    pub fn named(fd: i64, name: &OsStr) -> io::Result<Box<VolArgsV2>> {
        let mut args = Box::new(VolArgsV2 {
            fd,
            transid: 0,
            flags: 0,
            unused: [0; 4],
            name: [0; SUBVOL_NAME_MAX + 1],
        });
        fill_name(&mut args.name, name)?;
        Ok(args)
    }
}

impl SearchArgs {
    /// A search for items of type `item_type` in tree `tree_id`, any object, offset or
    /// transaction.
    pub fn for_items(tree_id: u64, item_type: u32) -> Box<SearchArgs> {
        Box::new(SearchArgs {
            key: SearchKey {
                tree_id,
                max_objectid: u64::MAX,
                max_offset: u64::MAX,
                max_transid: u64::MAX,
                min_type: item_type,
                max_type: item_type,
                nr_items: 1,
                ..Default::default()
            },
            buf: [0; SEARCH_ARGS_BUFSIZE],
        })
    }

    /// The header of the first result, if the search found any.
    pub fn first_header(&self) -> Option<SearchHeader> {
        if self.key.nr_items == 0 {
            return None;
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.buf[at..at + 8]);
            u64::from_ne_bytes(b)
        };
        let half = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&self.buf[at..at + 4]);
            u32::from_ne_bytes(b)
        };
        Some(SearchHeader {
            transid: word(0),
            objectid: word(8),
            offset: word(16),
            item_type: half(24),
            len: half(28),
        })
    }
}

/// The name in a filled NUL-terminated buffer (for tests and messages).
pub fn name_of(buf: &[u8]) -> Option<&str> {
    CStr::from_bytes_until_nul(buf).ok()?.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, size_of};

    #[test]
    fn structures_have_the_kernel_sizes() {
        assert_eq!(size_of::<VolArgs>(), 4096);
        assert_eq!(size_of::<VolArgsV2>(), 4096);
        assert_eq!(size_of::<InoLookupArgs>(), 4096);
        assert_eq!(size_of::<SearchKey>(), 104);
        assert_eq!(size_of::<SearchArgs>(), 4096);
        assert_eq!(size_of::<SearchHeader>(), 32);
        assert_eq!(size_of::<QuotaCtlArgs>(), 16);
        assert_eq!(size_of::<QgroupCreateArgs>(), 16);
        assert_eq!(size_of::<QgroupLimit>(), 40);
        assert_eq!(size_of::<QgroupLimitArgs>(), 48);
        assert_eq!(align_of::<VolArgsV2>(), 8);
        assert_eq!(std::mem::offset_of!(VolArgsV2, name), 56);
        assert_eq!(std::mem::offset_of!(SearchArgs, buf), 104);
    }

    #[test]
    fn opcodes_match_the_kernel_header() {
        // Values of the C macros on x86_64/aarch64 (`_IOC` with 14 size bits).
        assert_eq!(IOC_SUBVOL_CREATE as u64, 0x5000_940e);
        assert_eq!(IOC_SNAP_DESTROY as u64, 0x5000_940f);
        assert_eq!(IOC_TREE_SEARCH as u64, 0xd000_9411);
        assert_eq!(IOC_INO_LOOKUP as u64, 0xd000_9412);
        assert_eq!(IOC_SNAP_CREATE_V2 as u64, 0x5000_9417);
        assert_eq!(IOC_QUOTA_CTL as u64, 0xc010_9428);
        assert_eq!(IOC_QGROUP_CREATE as u64, 0x4010_942a);
        assert_eq!(IOC_QGROUP_LIMIT as u64, 0x8030_942b);
        assert_eq!(IOC_QUOTA_RESCAN_WAIT as u64, 0x942e);
        assert_eq!(IOC_SNAP_DESTROY_V2 as u64, 0x5000_943f);
    }

    #[test]
    fn names_are_nul_terminated_and_checked() {
        let args = VolArgs::named(OsStr::new("abc")).expect("a plain name");
        assert_eq!(name_of(&args.name), Some("abc"));
        let v2 = VolArgsV2::named(7, OsStr::new("layer")).expect("a plain name");
        assert_eq!((v2.fd, name_of(&v2.name)), (7, Some("layer")));
        for bad in ["", "a/b", "nul\0", &"x".repeat(SUBVOL_NAME_MAX + 1)] {
            assert!(VolArgsV2::named(0, OsStr::new(bad)).is_err(), "{bad:?}");
        }
        assert!(VolArgsV2::named(0, OsStr::new(&"x".repeat(SUBVOL_NAME_MAX))).is_ok());
        assert!(VolArgs::named(OsStr::new(&"x".repeat(PATH_NAME_MAX))).is_ok());
    }

    #[test]
    fn search_results_are_read_from_the_buffer() {
        let mut args = SearchArgs::for_items(QUOTA_TREE_OBJECTID, QGROUP_STATUS_KEY);
        assert_eq!(args.key.min_type, QGROUP_STATUS_KEY);
        assert_eq!(args.key.max_objectid, u64::MAX);
        args.key.nr_items = 0;
        assert_eq!(args.first_header(), None);
        args.key.nr_items = 1;
        args.buf[8..16].copy_from_slice(&5u64.to_ne_bytes());
        args.buf[24..28].copy_from_slice(&QGROUP_STATUS_KEY.to_ne_bytes());
        args.buf[28..32].copy_from_slice(&40u32.to_ne_bytes());
        let header = args.first_header().expect("one item");
        assert_eq!(
            (header.objectid, header.item_type, header.len),
            (5, QGROUP_STATUS_KEY, 40)
        );
    }
}
