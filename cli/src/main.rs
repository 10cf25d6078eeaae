//! `storage`: a drop-in for upstream's `containers-storage` command. The command itself is
//! [`storage_cli::run`]; this adds the process setup.

use std::io::{LineWriter, Write};

use storage_cli::run;

fn main() {
    restore_sigpipe();
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let stdout = std::io::stdout();
    // Line-buffered like Go's unbuffered stdout as far as readers can tell: text written
    // to stdout and stderr interleaves in order when both go to one file (`2>&1`).
    let mut out = LineWriter::new(stdout.lock());
    let mut err = std::io::stderr().lock();
    let code = run(&args, &mut out, &mut err);
    // A closed stdout (`storage layers | head`) is not worth a second error.
    let _ = out.flush();
    drop(out);
    std::process::exit(code);
}

/// Lets a closed pipe end the process quietly (`storage diff L | head -c 10`), as it does
/// for upstream's Go binary, instead of an EPIPE error on every later write: the Rust
/// runtime ignores SIGPIPE by default.
fn restore_sigpipe() {
    // It cannot fail for SIGPIPE; if it did, writes to a closed pipe would fail with EPIPE
    // instead, which is still an orderly end.
    let _ = storage_driver::syscalls::default_sigpipe();
}
