//! What every call into a guest shares: a fresh Store with the plugin's limits, and one error
//! for however the guest was stopped.

use wasmtime::{Engine, Store};

use super::engine::EPOCH_TICK;
use super::error::{ComponentError, StopReason};
use super::host_fs::HostState;
use super::limits::{PluginLimiter, PluginLimits};

/// A Store with the memory limit and the epoch deadline of `limits`. One per call: after a
/// trap it is dropped with whatever the guest left in it.
pub fn new_store(engine: &Engine, limits: &PluginLimits) -> Store<HostState> {
    let mut store = Store::new(engine, HostState::new(PluginLimiter::new(limits)));
    store.limiter(|state| &mut state.limiter);
    let ticks = limits.deadline.as_millis() / EPOCH_TICK.as_millis().max(1) + 1;
    store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
    store.epoch_deadline_trap();
    store
}

/// The error of a call that failed in wasmtime: out of memory when the limiter refused a grow,
/// deadline when the epoch interrupted it, a trap otherwise.
pub fn stop_error(
    name: &str,
    store: &Store<HostState>,
    call: &'static str,
    e: wasmtime::Error,
) -> ComponentError {
    let reason = if store.data().limiter.memory_exhausted {
        StopReason::OutOfMemory
    } else if matches!(
        e.downcast_ref::<wasmtime::Trap>(),
        Some(wasmtime::Trap::Interrupt)
    ) {
        StopReason::Deadline
    } else {
        StopReason::Trap
    };
    ComponentError::Stopped {
        name: name.to_string(),
        call,
        reason,
        message: super::graph_driver::one_line(&format!("{e:#}")),
    }
}
