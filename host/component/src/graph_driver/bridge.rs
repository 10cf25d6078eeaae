//! Streams between a borrowed reader or writer and the owned ones a guest call needs.
//!
//! The feeding side reads nothing before the guest asks for its first byte, so a guest that
//! answers without reading (a driver saying `unsupported` to `apply-diff`) leaves the
//! caller's reader untouched for the host's own fallback.

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Chunks in flight: enough to keep both sides busy, little memory.
const DEPTH: usize = 4;
const CHUNK: usize = 256 * 1024;

/// An owned reader over chunks sent by [`feed`].
pub struct ChannelReader {
    receiver: Receiver<Vec<u8>>,
    /// Told once, at the first read, that the feeder may start.
    demand: Option<SyncSender<()>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(demand) = self.demand.take() {
            // The feeder waits for this (or for the reader to be dropped); a feeder that is
            // gone already has nothing more to send either way.
            if demand.send(()).is_err() {
                return Ok(0);
            }
        }
        while self.pos >= self.chunk.len() {
            match self.receiver.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                // The feeder is done: end of input.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The feeding end of an input channel (see [`feed`]).
pub struct Feeder {
    sender: SyncSender<Vec<u8>>,
    demand: Receiver<()>,
}

/// A channel and the owned reader at its end.
pub fn input() -> (Feeder, ChannelReader) {
    let (sender, receiver) = sync_channel(DEPTH);
    let (demand_sender, demand) = sync_channel(1);
    let reader = ChannelReader {
        receiver,
        demand: Some(demand_sender),
        chunk: Vec::new(),
        pos: 0,
    };
    (Feeder { sender, demand }, reader)
}

/// How far [`feed`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// The reader was dropped before it read anything: nothing was read from the source.
    Untouched,
    /// Reading started (and went on until the source's end or until the reader was gone).
    Started,
}

/// Sends what `from` reads until its end, or until the reader is gone (the guest finished
/// or was stopped: what it did not read is not needed). Reads nothing before the reader's
/// first read.
pub fn feed(from: &mut dyn Read, feeder: Feeder) -> io::Result<Fed> {
    if feeder.demand.recv().is_err() {
        return Ok(Fed::Untouched);
    }
    loop {
        let mut chunk = vec![0; CHUNK];
        let n = match from.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(Fed::Started);
        }
        chunk.truncate(n);
        if feeder.sender.send(chunk).is_err() {
            return Ok(Fed::Started);
        }
    }
}

/// An owned writer sending chunks to [`drain`].
pub struct ChannelWriter {
    sender: SyncSender<Vec<u8>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.sender
            .send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "diff output closed"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A channel and the owned writer at its start.
pub fn output() -> (ChannelWriter, Receiver<Vec<u8>>) {
    let (sender, receiver) = sync_channel(DEPTH);
    (ChannelWriter { sender }, receiver)
}

/// Writes every chunk to `out` until the writer is dropped, and says how many bytes came.
/// After a failed write the rest is received and dropped so the guest is not blocked; the
/// error is returned.
pub fn drain(receiver: Receiver<Vec<u8>>, out: &mut dyn Write) -> io::Result<u64> {
    let mut failed = None;
    let mut written = 0u64;
    for chunk in receiver {
        written += chunk.len() as u64;
        if failed.is_none() {
            if let Err(e) = out.write_all(&chunk) {
                failed = Some(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => out.flush().map(|()| written),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_dropped_unread_leaves_the_source_untouched() {
        let mut source = io::Cursor::new(vec![7u8; 10]);
        let (feeder, reader) = input();
        drop(reader);
        assert_eq!(feed(&mut source, feeder).unwrap(), Fed::Untouched);
        assert_eq!(source.position(), 0);
    }

    #[test]
    fn a_reader_gets_everything_once_it_reads() {
        let data: Vec<u8> = (0..=255u8).cycle().take(3 * CHUNK + 17).collect();
        let mut source = io::Cursor::new(data.clone());
        let (feeder, mut reader) = input();
        std::thread::scope(|scope| {
            let got = scope.spawn(move || {
                let mut got = Vec::new();
                reader.read_to_end(&mut got).unwrap();
                got
            });
            assert_eq!(feed(&mut source, feeder).unwrap(), Fed::Started);
            assert_eq!(got.join().unwrap(), data);
        });
    }

    #[test]
    fn drain_counts_what_came() {
        let (mut writer, receiver) = output();
        let sent = std::thread::spawn(move || {
            writer.write_all(b"abc").unwrap();
            writer.write_all(b"").unwrap();
            writer.write_all(b"de").unwrap();
        });
        let mut out = Vec::new();
        assert_eq!(drain(receiver, &mut out).unwrap(), 5);
        sent.join().unwrap();
        assert_eq!(out, b"abcde");
    }
}
