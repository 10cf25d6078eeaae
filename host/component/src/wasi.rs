//! The few WASI 0.2 imports a component is granted, implemented by the host without
//! `wasmtime-wasi`: what Rust's std needs to run ordinary code, and nothing that reaches the
//! host's files, network or environment.
//!
//! - `wasi:random/random`, `wasi:random/insecure`, `wasi:random/insecure-seed`: entropy from
//!   the kernel (`getrandom`). Entropy is no capability, and std seeds `HashMap` from it.
//! - `wasi:clocks/wall-clock`: `now` and `resolution` (the time of day; no sleeping, no
//!   `monotonic-clock` subscription).
//! - `wasi:cli/stderr` and `wasi:cli/stdout` with the writing half of `wasi:io/streams`
//!   (`check-write`, `write`, `blocking-write-and-flush`, `flush`, `blocking-flush`,
//!   `subscribe`, with `wasi:io/poll` over such always-ready pollables only): what the
//!   guest writes is kept in its Store ([`GuestOutput`], the last [`OUTPUT_LIMIT`] bytes), so a
//!   panic's message can be quoted in the error of the call and shown whole with `--debug`.
//! - `wasi:cli/environment`: an empty environment, no arguments, no working directory (std's
//!   panic handler looks up `RUST_BACKTRACE`; the guest learns nothing from the host).
//!
//! Each is defined for whatever `0.2.x` version the component imports. Everything else the
//! component imports (and the policy lets through) is linked as a function that traps, naming
//! the import.

use std::collections::VecDeque;

use wasmtime::component::{
    Component, ComponentType, Linker, LinkerInstance, Lower, Resource, ResourceType,
};
use wasmtime::{Engine, StoreContextMut};

use super::host_fs::HostState;

/// How much of what the guest writes to stderr and stdout is kept: the end of it.
pub const OUTPUT_LIMIT: usize = 64 << 10;

/// The most bytes one `get-random-bytes` call may ask for: a guest asking for more is stopped
/// instead of making the host allocate whatever it names.
const RANDOM_BYTES_LIMIT: u64 = 16 << 20;

/// The last [`OUTPUT_LIMIT`] bytes the guest wrote to its stderr or stdout during one call.
#[derive(Debug, Default)]
pub struct GuestOutput {
    bytes: VecDeque<u8>,
    /// Bytes dropped from the front to stay within the limit.
    dropped: u64,
}

impl GuestOutput {
    /// Appends `data`, dropping the oldest bytes beyond [`OUTPUT_LIMIT`].
    fn write(&mut self, data: &[u8]) {
        let data = if data.len() > OUTPUT_LIMIT {
            let skip = data.len() - OUTPUT_LIMIT;
            self.dropped += skip as u64;
            &data[skip..]
        } else {
            data
        };
        let over = (self.bytes.len() + data.len()).saturating_sub(OUTPUT_LIMIT);
        self.bytes.drain(..over);
        self.dropped += over as u64;
        self.bytes.extend(data);
    }

    /// Whether the guest wrote nothing.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.dropped == 0
    }

    /// Everything kept, as text (invalid UTF-8 replaced), with a note of what was dropped.
    pub fn text(&self) -> String {
        let (front, back) = self.bytes.as_slices();
        let kept = String::from_utf8_lossy(&[front, back].concat()).into_owned();
        if self.dropped > 0 {
            format!("[{} earlier bytes dropped]\n{kept}", self.dropped)
        } else {
            kept
        }
    }

    /// What the guest said last, on one line: a Rust panic's location and message
    /// (`panicked at src/lib.rs:3:5: the message`), else the last line it wrote.
    pub fn last_words(&self) -> Option<String> {
        let text = self.text();
        if let Some(start) = text.rfind("panicked at ") {
            let panic: Vec<&str> = text[start..]
                .lines()
                .map(str::trim)
                .take_while(|line| !line.starts_with("note: "))
                .filter(|line| !line.is_empty())
                .collect();
            // `panicked at LOCATION:` then the message on the next lines.
            return Some(panic.join(" "));
        }
        text.lines()
            .map(str::trim)
            .rfind(|line| !line.is_empty())
            .map(str::to_string)
    }
}

/// The host side of a `wasi:io/streams` `output-stream`: the guest's stderr or stdout, both
/// kept in [`HostState::guest_output`].
pub struct GuestOutputStream;

/// A `wasi:io/error` `error`: the host never makes one (writing to the kept output does not
/// fail), but `stream-error` names the type.
pub struct NoIoError;

/// A `wasi:io/poll` `pollable` of an output stream: always ready (the kept output never
/// blocks). Nothing else makes pollables (`monotonic-clock`'s `subscribe` traps), so polling
/// never waits.
pub struct ReadyPollable;

/// `wasi:io/streams` `stream-error`.
#[derive(ComponentType, Lower)]
#[component(variant)]
enum StreamError {
    #[component(name = "last-operation-failed")]
    #[allow(dead_code, reason = "never made: the kept output does not fail")]
    LastOperationFailed(Resource<NoIoError>),
    #[component(name = "closed")]
    #[allow(dead_code, reason = "never made: the kept output is never closed")]
    Closed,
}

/// `wasi:clocks/wall-clock` `datetime`.
#[derive(ComponentType, Lower, Debug, Clone, Copy)]
#[component(record)]
struct Datetime {
    seconds: u64,
    nanoseconds: u32,
}

/// Defines the granted WASI functions (module docs) for every `0.2.x` interface the
/// component imports. Call before `define_unknown_imports_as_traps`, which then leaves these
/// alone.
pub fn define_granted(
    linker: &mut Linker<HostState>,
    engine: &Engine,
    component: &Component,
) -> wasmtime::Result<()> {
    let imports: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    for import in &imports {
        let Some((interface, version)) = import.split_once('@') else {
            continue;
        };
        if !version.starts_with("0.2.") {
            continue;
        }
        let mut instance = linker.instance(import)?;
        match interface {
            "wasi:random/random" => {
                instance.func_wrap("get-random-bytes", |_, (len,): (u64,)| {
                    random_bytes(len).map(|b| (b,))
                })?;
                instance.func_wrap("get-random-u64", |_, (): ()| random_u64().map(|n| (n,)))?;
            }
            "wasi:random/insecure" => {
                instance.func_wrap("get-insecure-random-bytes", |_, (len,): (u64,)| {
                    random_bytes(len).map(|b| (b,))
                })?;
                instance.func_wrap("get-insecure-random-u64", |_, (): ()| {
                    random_u64().map(|n| (n,))
                })?;
            }
            "wasi:random/insecure-seed" => {
                instance.func_wrap("insecure-seed", |_, (): ()| {
                    Ok(((random_u64()?, random_u64()?),))
                })?;
            }
            "wasi:clocks/wall-clock" => {
                instance.func_wrap("now", |_, (): ()| Ok((wall_clock_now(),)))?;
                instance.func_wrap("resolution", |_, (): ()| {
                    Ok((Datetime {
                        seconds: 0,
                        nanoseconds: 1,
                    },))
                })?;
            }
            "wasi:cli/environment" => {
                instance.func_wrap("get-environment", |_, (): ()| {
                    Ok((Vec::<(String, String)>::new(),))
                })?;
                instance.func_wrap("get-arguments", |_, (): ()| Ok((Vec::<String>::new(),)))?;
                instance.func_wrap("initial-cwd", |_, (): ()| Ok((None::<String>,)))?;
            }
            "wasi:io/error" => define_error_resource(&mut instance)?,
            "wasi:io/poll" => define_poll(&mut instance)?,
            "wasi:io/streams" => {
                define_error_resource(&mut instance)?;
                define_pollable_resource(&mut instance)?;
                define_output_stream(&mut instance)?;
            }
            "wasi:cli/stderr" => {
                define_stream_resource(&mut instance)?;
                instance.func_wrap("get-stderr", get_output_stream)?;
            }
            "wasi:cli/stdout" => {
                define_stream_resource(&mut instance)?;
                instance.func_wrap("get-stdout", get_output_stream)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// The kernel's entropy, `len` bytes.
fn random_bytes(len: u64) -> wasmtime::Result<Vec<u8>> {
    if len > RANDOM_BYTES_LIMIT {
        wasmtime::bail!(
            "get-random-bytes asked for {len} bytes (at most {RANDOM_BYTES_LIMIT} at once)"
        );
    }
    let mut buf = vec![0u8; usize::try_from(len)?];
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => wasmtime::bail!("getrandom: {e}"),
        }
    }
    Ok(buf)
}

fn random_u64() -> wasmtime::Result<u64> {
    let bytes = random_bytes(8)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes);
    Ok(u64::from_ne_bytes(word))
}

/// The time of day; a clock before 1970 reads as 1970.
fn wall_clock_now() -> Datetime {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Datetime {
        seconds: since.as_secs(),
        nanoseconds: since.subsec_nanos(),
    }
}

fn define_error_resource(instance: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    instance.resource("error", ResourceType::host::<NoIoError>(), |_, _| Ok(()))
}

/// `output-stream` as the same host type in every instance that names it (`wasi:io/streams`
/// and the `wasi:cli` interfaces that `use` it): wasmtime checks they agree.
fn define_stream_resource(instance: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    instance.resource(
        "output-stream",
        ResourceType::host::<GuestOutputStream>(),
        |mut store, rep| {
            store
                .data_mut()
                .table
                .delete(Resource::<GuestOutputStream>::new_own(rep))?;
            Ok(())
        },
    )
}

fn define_pollable_resource(instance: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    instance.resource(
        "pollable",
        ResourceType::host::<ReadyPollable>(),
        |mut store, rep| {
            store
                .data_mut()
                .table
                .delete(Resource::<ReadyPollable>::new_own(rep))?;
            Ok(())
        },
    )
}

/// `wasi:io/poll` over pollables that are all ready: `poll` answers every index at once.
fn define_poll(instance: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    define_pollable_resource(instance)?;
    instance.func_wrap(
        "[method]pollable.ready",
        |_, (_,): (Resource<ReadyPollable>,)| Ok((true,)),
    )?;
    instance.func_wrap(
        "[method]pollable.block",
        |_, (_,): (Resource<ReadyPollable>,)| Ok(()),
    )?;
    instance.func_wrap(
        "poll",
        |_, (pollables,): (Vec<Resource<ReadyPollable>>,)| {
            let ready = (0..u32::try_from(pollables.len())?).collect::<Vec<u32>>();
            Ok((ready,))
        },
    )
}

fn get_output_stream(
    mut store: StoreContextMut<'_, HostState>,
    (): (),
) -> wasmtime::Result<(Resource<GuestOutputStream>,)> {
    Ok((store.data_mut().table.push(GuestOutputStream)?,))
}

type StreamResult<T> = wasmtime::Result<(Result<T, StreamError>,)>;

/// The writing half of `output-stream`: every write is kept whole at once, so the stream is
/// always ready and flushing has nothing to do.
fn define_output_stream(instance: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    define_stream_resource(instance)?;
    instance.func_wrap(
        "[method]output-stream.subscribe",
        |mut store: StoreContextMut<'_, HostState>, (_,): (Resource<GuestOutputStream>,)| {
            Ok((store.data_mut().table.push(ReadyPollable)?,))
        },
    )?;
    instance.func_wrap(
        "[method]output-stream.check-write",
        |_, (_,): (Resource<GuestOutputStream>,)| -> StreamResult<u64> { Ok((Ok(4096),)) },
    )?;
    for write in [
        "[method]output-stream.write",
        "[method]output-stream.blocking-write-and-flush",
    ] {
        instance.func_wrap(
            write,
            |mut store: StoreContextMut<'_, HostState>,
             (stream, data): (Resource<GuestOutputStream>, Vec<u8>)|
             -> StreamResult<()> {
                let state = store.data_mut();
                state.table.get(&stream)?;
                state.guest_output.write(&data);
                Ok((Ok(()),))
            },
        )?;
    }
    for flush in [
        "[method]output-stream.flush",
        "[method]output-stream.blocking-flush",
    ] {
        instance.func_wrap(
            flush,
            |_, (_,): (Resource<GuestOutputStream>,)| -> StreamResult<()> { Ok((Ok(()),)) },
        )?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_output_keeps_its_end_within_the_limit() {
        let mut out = GuestOutput::default();
        assert!(out.is_empty());
        out.write(&vec![b'a'; OUTPUT_LIMIT - 2]);
        out.write(b"bcdef");
        let text = out.text();
        assert!(
            text.starts_with("[3 earlier bytes dropped]\n"),
            "{text:.40}"
        );
        assert!(text.ends_with("abcdef"));
        out.write(&vec![b'z'; OUTPUT_LIMIT + 10]);
        assert!(out.text().starts_with(&format!(
            "[{} earlier bytes dropped]\nzzz",
            3 + OUTPUT_LIMIT + 10
        )));
    }

    #[test]
    fn last_words_are_the_panic_or_the_last_line() {
        let mut out = GuestOutput::default();
        out.write(b"starting\nstill going\n\n");
        assert_eq!(out.last_words().as_deref(), Some("still going"));
        out.write(
            b"\nthread '<unnamed>' panicked at src/lib.rs:3:5:\nno layer here\n\
              note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        );
        assert_eq!(
            out.last_words().as_deref(),
            Some("panicked at src/lib.rs:3:5: no layer here")
        );
        assert_eq!(GuestOutput::default().last_words(), None);
    }

    #[test]
    fn random_bytes_are_bounded_and_vary() {
        assert_eq!(random_bytes(0).unwrap().len(), 0);
        let a = random_bytes(32).unwrap();
        let b = random_bytes(32).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(random_bytes(RANDOM_BYTES_LIMIT + 1).is_err());
    }
}
