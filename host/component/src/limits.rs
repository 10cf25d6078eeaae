//! Per-plugin resource limits: memory through wasmtime's `StoreLimits` (trapping on a refused
//! grow, so an out-of-memory guest stops at once instead of seeing a failed `memory.grow` it
//! may ignore), time through an epoch deadline.

use std::time::Duration;

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// Limits of one plugin (from `storage.toml`, or the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Maximum linear memory of any one memory of the guest, in bytes.
    pub memory_bytes: usize,
    /// Maximum wall time of one call into the guest (rounded up to the epoch tick).
    pub deadline: Duration,
}

impl Default for PluginLimits {
    /// 1 GiB and 10 minutes: an archive apply streams, so it needs little memory, but a large
    /// layer on slow storage can take minutes.
    fn default() -> Self {
        PluginLimits {
            memory_bytes: 1 << 30,
            deadline: Duration::from_secs(600),
        }
    }
}

impl PluginLimits {
    /// The limits of a `[plugins.<name>]` entry of `storage.toml`; what it leaves out is the
    /// default.
    pub fn from_config(config: &storage_driver::PluginConfig) -> Self {
        let default = PluginLimits::default();
        PluginLimits {
            memory_bytes: config
                .memory_limit
                .map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX))
                .unwrap_or(default.memory_bytes),
            deadline: config
                .deadline_ms
                .map(Duration::from_millis)
                .unwrap_or(default.deadline),
        }
    }
}

/// The limiter a Store uses: `StoreLimits`, remembering whether it refused a grow so the
/// resulting trap can be reported as out-of-memory.
pub struct PluginLimiter {
    inner: StoreLimits,
    /// Set when a memory grow beyond the limit was refused.
    pub memory_exhausted: bool,
}

impl PluginLimiter {
    /// A limiter for `limits`.
    pub fn new(limits: &PluginLimits) -> Self {
        PluginLimiter {
            inner: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .table_elements(1 << 20)
                .trap_on_grow_failure(true)
                .build(),
            memory_exhausted: false,
        }
    }
}

impl ResourceLimiter for PluginLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let answer = self.inner.memory_growing(current, desired, maximum);
        if !matches!(answer, Ok(true)) {
            self.memory_exhausted = true;
        }
        answer
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage_driver::PluginConfig;

    #[test]
    fn limits_come_from_the_plugin_entry_or_the_defaults() {
        let set = PluginConfig {
            component: "/x.wasm".into(),
            memory_limit: Some(256 << 20),
            deadline_ms: Some(1500),
        };
        let limits = PluginLimits::from_config(&set);
        assert_eq!(limits.memory_bytes, 256 << 20);
        assert_eq!(limits.deadline, Duration::from_millis(1500));
        let unset = PluginConfig {
            component: "/x.wasm".into(),
            ..Default::default()
        };
        assert_eq!(PluginLimits::from_config(&unset), PluginLimits::default());
    }

    #[test]
    fn a_refused_grow_is_remembered() {
        let mut limiter = PluginLimiter::new(&PluginLimits {
            memory_bytes: 1 << 20,
            deadline: Duration::from_secs(1),
        });
        assert!(matches!(limiter.memory_growing(0, 1 << 16, None), Ok(true)));
        assert!(!limiter.memory_exhausted);
        assert!(limiter.memory_growing(1 << 16, 2 << 20, None).is_err());
        assert!(limiter.memory_exhausted);
    }
}
