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
/// deadline when the epoch interrupted it, a trap otherwise. The message is the cause without
/// wasmtime's wasm backtrace (the trap, or the import that is not granted, named), after what
/// the guest said last on its stderr (a panic's location and message).
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
    log_guest_output(name, call, store);
    let cause = cause_of(&e);
    let message = match store.data().guest_output.last_words() {
        Some(words) if cause.is_empty() => words,
        Some(words) => format!("{words} ({cause})"),
        None => cause,
    };
    ComponentError::Stopped {
        name: name.to_string(),
        call,
        reason,
        message,
    }
}

/// Logs (at debug level: `--debug`) everything the guest wrote to its stderr and stdout
/// during the call, if anything.
pub fn log_guest_output(name: &str, call: &str, store: &Store<HostState>) {
    let output = &store.data().guest_output;
    if !output.is_empty() && log::log_enabled!(log::Level::Debug) {
        log::debug!(
            "component {name}: output of {call}:\n{}",
            output.text().trim_end()
        );
    }
}

/// The error's chain on one line, without the wasm backtrace wasmtime adds as context (whose
/// frames would otherwise be all that shows).
fn cause_of(e: &wasmtime::Error) -> String {
    // The backtrace is a context of the error, not an error of the chain: known by its text.
    let backtrace = e
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(ToString::to_string);
    e.chain()
        .map(ToString::to_string)
        .filter(|cause| Some(cause) != backtrace.as_ref())
        .map(|cause| super::graph_driver::one_line(&cause))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}
