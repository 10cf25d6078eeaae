//! Lending a borrowed stream to a component.
//!
//! A component's streams live in its Store's resource table, which only holds `'static`
//! values, while a graph driver is handed `&mut dyn Read` / `&mut dyn Write` borrowed from the
//! store (and not necessarily `Send`). So the guest runs on a scoped thread with an owned
//! channel end as its stream, and the calling thread moves the bytes between the channel and
//! the borrowed stream. Chunks are large, so the extra copy costs far less than the guest's
//! work on them.

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Bytes moved per channel message.
const CHUNK: usize = 256 << 10;
/// Chunks in flight between the two threads.
const DEPTH: usize = 4;

/// The guest's side of a pumped input: reads the chunks the calling thread sends.
pub struct ChannelReader {
    chunks: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    offset: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.offset == self.current.len() {
            match self.chunks.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.offset = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The sender is gone: the input ended.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.offset);
        buf[..n].copy_from_slice(&self.current[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

/// The guest's side of a pumped output: buffers writes and sends them in chunks; what is
/// left is sent on flush and on drop.
pub struct ChannelWriter {
    chunks: SyncSender<Vec<u8>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.chunks
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "output closed"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK {
            self.send_buffer()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        // Errors surface through the calling thread's own write of the data, or not at all
        // when it stopped receiving because its writer failed (that error is reported).
        let _ = self.send_buffer();
    }
}

/// Runs `work` on a scoped thread with a reader fed from `input` by the calling thread.
///
/// Whatever `work` leaves unread stays in the channel (at most a few chunks read ahead);
/// when `work` returns, the pumping stops.
pub fn with_input<T: Send>(
    input: &mut dyn Read,
    work: impl FnOnce(Box<dyn Read + Send>) -> T + Send,
) -> T {
    let (sender, chunks) = sync_channel(DEPTH);
    let reader = ChannelReader {
        chunks,
        current: Vec::new(),
        offset: 0,
    };
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || work(Box::new(reader)));
        pump_input(input, &sender);
        drop(sender);
        join(worker)
    })
}

/// Sends `input` in chunks until it ends, fails (the error is passed on), or the reader is
/// dropped.
fn pump_input(input: &mut dyn Read, sender: &SyncSender<io::Result<Vec<u8>>>) {
    loop {
        // Filled up to CHUNK (fewer, fuller messages), into spare capacity: no zeroing first.
        let mut chunk = Vec::with_capacity(CHUNK);
        let message = match input.take(CHUNK as u64).read_to_end(&mut chunk) {
            Ok(0) => return,
            Ok(_) => Ok(chunk),
            Err(e) => Err(e),
        };
        let failed = message.is_err();
        if sender.send(message).is_err() || failed {
            return;
        }
    }
}

/// Runs `work` on a scoped thread with a writer whose bytes the calling thread writes to
/// `out`. An error of `out` is returned (the guest then sees a closed output); otherwise
/// `work`'s result.
pub fn with_output<T: Send>(
    out: &mut dyn Write,
    work: impl FnOnce(Box<dyn Write + Send>) -> T + Send,
) -> io::Result<T> {
    let (chunks, receiver) = sync_channel::<Vec<u8>>(DEPTH);
    let writer = ChannelWriter {
        chunks,
        buffer: Vec::with_capacity(CHUNK),
    };
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || work(Box::new(writer)));
        let mut written = Ok(());
        for chunk in &receiver {
            if let Err(e) = out.write_all(&chunk) {
                written = Err(e);
                break;
            }
        }
        // Closing the receiver makes the guest's next write fail instead of blocking.
        drop(receiver);
        let result = join(worker);
        written.map(|()| result)
    })
}

/// Joins a scoped worker, resuming its panic on this thread (a panic is a host bug, not a
/// guest's: a guest's failure is a trap, returned as an error).
fn join<T>(worker: std::thread::ScopedJoinHandle<'_, T>) -> T {
    match worker.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_reads_the_whole_borrowed_input() {
        let data: Vec<u8> = (0..(3 * CHUNK + 17)).map(|i| (i % 251) as u8).collect();
        let mut input: &[u8] = &data;
        let read = with_input(&mut input, |mut reader| {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).map(|_| got)
        })
        .unwrap();
        assert_eq!(read, data);
    }

    #[test]
    fn an_input_error_reaches_the_worker() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let err = with_input(&mut Failing, |mut reader| {
            reader.read_to_end(&mut Vec::new())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
    }

    #[test]
    fn a_worker_that_stops_early_does_not_block_the_pump() {
        let data = vec![7u8; 20 * CHUNK];
        let mut input: &[u8] = &data;
        let first = with_input(&mut input, |mut reader| {
            let mut byte = [0u8; 1];
            reader.read_exact(&mut byte).map(|()| byte[0])
        })
        .unwrap();
        assert_eq!(first, 7);
    }

    #[test]
    fn the_worker_output_arrives_in_order_in_the_borrowed_writer() {
        let mut out = Vec::new();
        let n = with_output(&mut out, |mut writer| {
            for i in 0..100_000u32 {
                writer.write_all(&i.to_le_bytes())?;
            }
            Ok::<_, io::Error>(100_000usize)
        })
        .unwrap()
        .unwrap();
        assert_eq!(n, 100_000);
        assert_eq!(out.len(), 400_000);
        assert_eq!(&out[4 * 99_999..], &99_999u32.to_le_bytes());
    }

    #[test]
    fn a_failing_writer_is_reported_and_closes_the_guest_output() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("no space"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = with_output(&mut Full, |mut writer| {
            // Keeps writing until the closed channel refuses.
            loop {
                if let Err(e) = writer.write_all(&[0u8; 4096]) {
                    return e.kind();
                }
            }
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "no space");
    }
}
