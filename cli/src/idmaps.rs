//! The ID-mapping flags (`--uidmap`, `--gidmap`, `--subuidmap`, `--subgidmap`,
//! `--hostuidmap`, `--hostgidmap`) turned into the mappings of a new layer or container,
//! as upstream's `paramIDMapping` does.

use std::path::Path;

use storage_driver::idmap::{IdMap, IdMappings};
use storage_store::gostr::quote as go_quote;

use crate::flags::FlagValues;

/// Errors of the ID-mapping flags.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdMapError {
    /// `--hostuidmap` together with an explicit UID mapping.
    #[error("host uid map specified along with UID mapping")]
    HostUidWithMap,
    /// `--hostgidmap` together with an explicit GID mapping.
    #[error("host gid map specified along with GID mapping")]
    HostGidWithMap,
    /// A `C:H:N[:C:H:N...]` list that is not triples of numbers (upstream's words).
    #[error(
        "initializing ID mappings: {kind} setting is malformed expected [\"uint32:uint32:uint32\"]: [{}]",
        go_quote(spec)
    )]
    Malformed {
        /// `uid` or `gid`.
        kind: &'static str,
        /// The flag's value.
        spec: String,
        /// The number that did not parse, if that was the fault.
        #[source]
        cause: Option<std::num::ParseIntError>,
    },
    /// The user or group has no ranges in /etc/subuid or /etc/subgid (upstream's words).
    #[error("no sub{ids} ranges found for {} {} in {file}", if *ids == "uid" { "user" } else { "group" }, go_quote(name))]
    NoRanges {
        /// `uid` (a user in the subordinate user file) or `gid` (a group).
        ids: &'static str,
        /// The user or group.
        name: String,
        /// The file searched.
        file: String,
    },
}

/// Resolves the flags into mappings (identity when none is given).
pub fn from_flags(flags: &FlagValues) -> Result<IdMappings, IdMapError> {
    from_flags_with(flags, Path::new("/etc/subuid"), Path::new("/etc/subgid"))
}

/// [`from_flags`] reading the subordinate ID files given.
pub fn from_flags_with(
    flags: &FlagValues,
    subuid_file: &Path,
    subgid_file: &Path,
) -> Result<IdMappings, IdMapError> {
    let uidmap = flags.value_or_empty("uidmap");
    let gidmap = flags.value_or_empty("gidmap");
    let mut subuid = flags.value_or_empty("subuidmap").to_string();
    let mut subgid = flags.value_or_empty("subgidmap").to_string();
    if flags.bool("hostuidmap") && (!uidmap.is_empty() || !subuid.is_empty()) {
        return Err(IdMapError::HostUidWithMap);
    }
    if flags.bool("hostgidmap") && (!gidmap.is_empty() || !subgid.is_empty()) {
        return Err(IdMapError::HostGidWithMap);
    }
    // One of the two subordinate flags implies the other, as upstream.
    if subgid.is_empty() {
        subgid.clone_from(&subuid);
    }
    if subuid.is_empty() {
        subuid.clone_from(&subgid);
    }
    let mut mappings = IdMappings::default();
    if !subuid.is_empty() {
        mappings.uids = subordinate_ranges(&subuid, subuid_file, "uid")?;
        mappings.gids = subordinate_ranges(&subgid, subgid_file, "gid")?;
    }
    mappings.uids.extend(parse_id_map(uidmap, "uid")?);
    mappings.gids.extend(parse_id_map(gidmap, "gid")?);
    Ok(mappings)
}

/// Parses `C:H:N[:C:H:N...]` (empty means no ranges).
pub fn parse_id_map(spec: &str, kind: &'static str) -> Result<Vec<IdMap>, IdMapError> {
    if spec.is_empty() {
        return Ok(Vec::new());
    }
    let malformed = |cause| IdMapError::Malformed {
        kind,
        spec: spec.to_string(),
        cause,
    };
    if !spec.split(':').count().is_multiple_of(3) {
        return Err(malformed(None));
    }
    // Go's `ParseUint(n, 10, 32)`: decimal digits only (no sign, unlike Rust's parser).
    let numbers = spec
        .split(':')
        .map(|n| {
            if n.starts_with('+') {
                return Err(malformed(None));
            }
            n.parse::<u32>().map_err(|e| malformed(Some(e)))
        })
        .collect::<Result<Vec<u32>, _>>()?;
    Ok(numbers
        .chunks_exact(3)
        .map(|t| IdMap {
            container_id: t[0],
            host_id: t[1],
            size: t[2],
        })
        .collect())
}

/// The ranges of `name` in a subordinate ID file, mapped to consecutive container IDs from 0.
/// `ids` says which file it is (`uid`: /etc/subuid, `gid`: /etc/subgid) for the error.
pub fn subordinate_ranges(
    name: &str,
    file: &Path,
    ids: &'static str,
) -> Result<Vec<IdMap>, IdMapError> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut ranges: Vec<(u32, u32)> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.trim().split(':');
            let (owner, start, count) = (parts.next()?, parts.next()?, parts.next()?);
            if owner != name {
                return None;
            }
            Some((start.parse().ok()?, count.parse().ok()?))
        })
        .collect();
    if ranges.is_empty() {
        return Err(IdMapError::NoRanges {
            ids,
            name: name.to_string(),
            file: file.display().to_string(),
        });
    }
    ranges.sort_unstable();
    let mut next_container = 0u32;
    Ok(ranges
        .into_iter()
        .map(|(host_id, size)| {
            let m = IdMap {
                container_id: next_container,
                host_id,
                size,
            };
            next_container = next_container.saturating_add(size);
            m
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(pairs: &[(&'static str, &str)]) -> FlagValues {
        let mut f = FlagValues::default();
        for (k, v) in pairs {
            f.push(k, v.to_string());
        }
        f
    }

    #[test]
    fn triples_split_into_entries() {
        let m = parse_id_map("0:1000:10:10:5000:5", "uid").expect("parses");
        assert_eq!(
            m,
            vec![
                IdMap {
                    container_id: 0,
                    host_id: 1000,
                    size: 10
                },
                IdMap {
                    container_id: 10,
                    host_id: 5000,
                    size: 5
                }
            ]
        );
        assert!(parse_id_map("0:1000", "uid").is_err());
        assert!(parse_id_map("0:x:1", "gid").is_err());
        assert_eq!(parse_id_map("", "uid"), Ok(vec![]));
    }

    #[test]
    fn a_malformed_map_is_upstreams_message_and_keeps_the_parsers_error() {
        let err = parse_id_map("0:x:1", "gid").expect_err("x");
        assert_eq!(
            err.to_string(),
            "initializing ID mappings: gid setting is malformed expected \
             [\"uint32:uint32:uint32\"]: [\"0:x:1\"]"
        );
        let source = std::error::Error::source(&err).expect("a source");
        assert!(source.is::<std::num::ParseIntError>(), "{source:?}");
        for bad in ["bad", "0:1", "0:1:2:", "+0:1:2", "0:1:4294967296"] {
            assert!(parse_id_map(bad, "uid").is_err(), "{bad}");
        }
    }

    #[test]
    fn host_map_conflicts() {
        let f = flags(&[("hostuidmap", "true"), ("uidmap", "0:1:1")]);
        assert_eq!(from_flags(&f), Err(IdMapError::HostUidWithMap));
        let f = flags(&[("hostgidmap", "true"), ("gidmap", "0:1:1")]);
        assert_eq!(from_flags(&f), Err(IdMapError::HostGidWithMap));
        assert_eq!(
            from_flags(&FlagValues::default()),
            Ok(IdMappings::default())
        );
    }

    #[test]
    fn subordinate_ranges_one_implies_the_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let subuid = dir.path().join("subuid");
        let subgid = dir.path().join("subgid");
        std::fs::write(&subuid, "alice:200000:1000\nbob:1:2\nalice:100000:65536\n").expect("write");
        std::fs::write(&subgid, "alice:300000:65536\n").expect("write");
        let f = flags(&[("subuidmap", "alice")]);
        let m = from_flags_with(&f, &subuid, &subgid).expect("resolves");
        assert_eq!(
            m.uids,
            vec![
                IdMap {
                    container_id: 0,
                    host_id: 100000,
                    size: 65536
                },
                IdMap {
                    container_id: 65536,
                    host_id: 200000,
                    size: 1000
                }
            ]
        );
        assert_eq!(
            m.gids,
            vec![IdMap {
                container_id: 0,
                host_id: 300000,
                size: 65536
            }]
        );
        let f = flags(&[("subgidmap", "nobody-here")]);
        let err = from_flags_with(&f, &subuid, &subgid).expect_err("no ranges");
        assert!(matches!(err, IdMapError::NoRanges { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "no subuid ranges found for user \"nobody-here\" in {}",
                subuid.display()
            )
        );
    }
}
