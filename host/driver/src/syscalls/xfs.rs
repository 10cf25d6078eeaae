//! The kernel structures of xfs project quotas: `struct fsxattr` (`FS_IOC_FS{GET,SET}XATTR`)
//! and `struct fs_disk_quota` (the `Q_X*` quotactl commands), laid out as `<linux/fs.h>` and
//! `<linux/dqblk_xfs.h>` have them.

use rustix::ioctl::{opcode, Opcode};

/// `FS_XFLAG_PROJINHERIT`: new files and directories inherit the directory's project ID.
pub const FS_XFLAG_PROJINHERIT: u32 = 0x0000_0200;

/// `struct fsxattr` of `<linux/fs.h>`, the argument of `FS_IOC_FS{GET,SET}XATTR`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsXattr {
    /// `FS_XFLAG_*` flags.
    pub xflags: u32,
    /// Extent size hint.
    pub extsize: u32,
    /// Number of extents (read only).
    pub nextents: u32,
    /// Project ID.
    pub projid: u32,
    /// Copy-on-write extent size hint.
    pub cowextsize: u32,
    /// Reserved.
    pub pad: [u8; 8],
}

/// `FS_IOC_FSGETXATTR`: `_IOR('X', 31, struct fsxattr)`.
pub const FS_IOC_FSGETXATTR: Opcode = opcode::read::<FsXattr>(b'X', 31);
/// `FS_IOC_FSSETXATTR`: `_IOW('X', 32, struct fsxattr)`.
pub const FS_IOC_FSSETXATTR: Opcode = opcode::write::<FsXattr>(b'X', 32);

/// `struct fs_disk_quota` of `<linux/dqblk_xfs.h>`, the argument of the `Q_X*` quotactl
/// commands. Block counts are in 512-byte basic blocks.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsDiskQuota {
    /// Structure version (`FS_DQUOT_VERSION`).
    pub version: i8,
    /// `FS_{USER,PROJ,GROUP}_QUOTA`.
    pub flags: i8,
    /// Which limits to set (`FS_DQ_*`).
    pub fieldmask: u16,
    /// User, group or project ID.
    pub id: u32,
    /// Absolute limit on disk blocks.
    pub blk_hardlimit: u64,
    /// Preferred limit on disk blocks.
    pub blk_softlimit: u64,
    /// Maximum number of allocated inodes.
    pub ino_hardlimit: u64,
    /// Preferred inode limit.
    pub ino_softlimit: u64,
    /// Disk blocks owned.
    pub bcount: u64,
    /// Inodes owned.
    pub icount: u64,
    /// Inode grace timer.
    pub itimer: i32,
    /// Block grace timer.
    pub btimer: i32,
    /// Inode warnings issued.
    pub iwarns: u16,
    /// Block warnings issued.
    pub bwarns: u16,
    /// Upper bits of the inode timer.
    pub itimer_hi: i8,
    /// Upper bits of the block timer.
    pub btimer_hi: i8,
    /// Upper bits of the realtime block timer.
    pub rtbtimer_hi: i8,
    /// Reserved.
    pub padding2: i8,
    /// Absolute limit on realtime blocks.
    pub rtb_hardlimit: u64,
    /// Preferred limit on realtime blocks.
    pub rtb_softlimit: u64,
    /// Realtime blocks owned.
    pub rtbcount: u64,
    /// Realtime block grace timer.
    pub rtbtimer: i32,
    /// Realtime block warnings issued.
    pub rtbwarns: u16,
    /// Reserved.
    pub padding3: i16,
    /// Reserved.
    pub padding4: [u8; 8],
}

/// `FS_DQUOT_VERSION`.
pub const FS_DQUOT_VERSION: i8 = 1;
/// `FS_PROJ_QUOTA` (`d_flags`).
pub const FS_PROJ_QUOTA: i8 = 2;
/// `FS_DQ_ISOFT`.
pub const FS_DQ_ISOFT: u16 = 1 << 0;
/// `FS_DQ_IHARD`.
pub const FS_DQ_IHARD: u16 = 1 << 1;
/// `FS_DQ_BSOFT`.
pub const FS_DQ_BSOFT: u16 = 1 << 2;
/// `FS_DQ_BHARD`.
pub const FS_DQ_BHARD: u16 = 1 << 3;
/// `PRJQUOTA`, the quota type of projects.
const PRJQUOTA: i32 = 2;
/// `Q_XSETQLIM`: `XQM_CMD(4)`.
const Q_XSETQLIM: i32 = (b'X' as i32) << 8 | 4;
/// `Q_XGETQUOTA`: `XQM_CMD(3)`.
const Q_XGETQUOTA: i32 = (b'X' as i32) << 8 | 3;

/// The project quota commands the product uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectQuotaCmd {
    /// `Q_XGETQUOTA`: reads a project's limits and usage.
    GetQuota,
    /// `Q_XSETQLIM`: sets a project's limits (the ones its `fieldmask` names).
    SetLimits,
}

impl ProjectQuotaCmd {
    /// The `cmd` argument of `quotactl(2)`: `QCMD(cmd, PRJQUOTA)`.
    pub fn raw(self) -> i32 {
        let cmd = match self {
            ProjectQuotaCmd::GetQuota => Q_XGETQUOTA,
            ProjectQuotaCmd::SetLimits => Q_XSETQLIM,
        };
        (cmd << 8) | (PRJQUOTA & 0xff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn structs_match_the_kernel_layout() {
        assert_eq!(size_of::<FsXattr>(), 28);
        assert_eq!(offset_of!(FsXattr, projid), 12);
        assert_eq!(size_of::<FsDiskQuota>(), 112);
        assert_eq!(offset_of!(FsDiskQuota, id), 4);
        assert_eq!(offset_of!(FsDiskQuota, blk_hardlimit), 8);
        assert_eq!(offset_of!(FsDiskQuota, ino_hardlimit), 24);
        assert_eq!(offset_of!(FsDiskQuota, bcount), 40);
        assert_eq!(offset_of!(FsDiskQuota, itimer), 56);
        assert_eq!(offset_of!(FsDiskQuota, rtb_hardlimit), 72);
        assert_eq!(offset_of!(FsDiskQuota, rtbtimer), 96);
        assert_eq!(offset_of!(FsDiskQuota, padding4), 104);
    }

    #[test]
    fn request_numbers_match_the_headers() {
        assert_eq!(FS_IOC_FSGETXATTR as u64, 0x801c_581f);
        assert_eq!(FS_IOC_FSSETXATTR as u64, 0x401c_5820);
        assert_eq!(ProjectQuotaCmd::SetLimits.raw(), 0x0058_0402);
        assert_eq!(ProjectQuotaCmd::GetQuota.raw(), 0x0058_0302);
    }
}
