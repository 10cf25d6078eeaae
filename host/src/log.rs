//! Diagnostics the store emits on the side (upstream's logrus warnings), routed through a
//! hook the binary controls: nothing is printed unless it asks (`--debug`).

use std::sync::OnceLock;

static HOOK: OnceLock<fn(&str)> = OnceLock::new();

/// Sends every later debug message to `hook` (set once, by the binary).
pub fn set_debug_hook(hook: fn(&str)) {
    let _ = HOOK.set(hook);
}

/// Emits a debug message, if someone listens.
pub fn debug(message: &str) {
    if let Some(hook) = HOOK.get() {
        hook(message);
    }
}
