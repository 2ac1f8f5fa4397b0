//! Block-parallel gzip: 1 MiB blocks deflated independently on worker threads, each ended with a
//! full flush, concatenated into ONE gzip member with the combined CRC-32 and ISIZE.
//!
//! Each block starts from a fresh compressor, so the output depends only on the input and the
//! level, never on the thread count or scheduling. Memory is bounded by `2 * threads` blocks.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Crc, FlushCompress, Status};

/// Input bytes per independently compressed block.
pub const BLOCK_SIZE: usize = 1024 * 1024;

/// The fixed gzip header: no name, mtime 0, no extra flags, OS "unknown" (as Go writes it).
const HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];

struct Job {
    seq: u64,
    data: Vec<u8>,
    last: bool,
}

struct Done {
    seq: u64,
    result: io::Result<(Vec<u8>, Crc)>,
}

struct Pool {
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
}

/// A gzip writer that compresses blocks in parallel; see the module docs.
pub struct ParallelGzip<W: Write> {
    inner: Option<W>,
    level: u32,
    buf: Vec<u8>,
    crc: Crc,
    pool: Option<Pool>,
    max_in_flight: u64,
    next_seq: u64,
    next_write: u64,
    pending: BTreeMap<u64, (Vec<u8>, Crc)>,
    header_written: bool,
}

impl<W: Write> ParallelGzip<W> {
    /// A writer at deflate `level` (0-9) using `threads` threads (1 = compress inline).
    pub fn new(inner: W, level: u32, threads: usize) -> Self {
        let threads = threads.max(1);
        let pool = (threads > 1).then(|| spawn_pool(threads, level));
        ParallelGzip {
            inner: Some(inner),
            level,
            buf: Vec::with_capacity(BLOCK_SIZE),
            crc: Crc::new(),
            pool,
            max_in_flight: 2 * threads as u64,
            next_seq: 0,
            next_write: 0,
            pending: BTreeMap::new(),
            header_written: false,
        }
    }

    fn out(&mut self) -> io::Result<&mut W> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        if !self.header_written {
            self.out()?.write_all(&HEADER)?;
            self.header_written = true;
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK_SIZE));
        let seq = self.next_seq;
        self.next_seq += 1;
        match &self.pool {
            None => {
                let block = compress_block(&data, self.level, last)?;
                self.pending.insert(seq, block);
            }
            Some(pool) => {
                let jobs = pool
                    .jobs
                    .as_ref()
                    .ok_or_else(|| io::Error::other("gzip workers already stopped"))?;
                jobs.send(Job { seq, data, last })
                    .map_err(|_| io::Error::other("gzip worker thread died"))?;
            }
        }
        self.drain(last)
    }

    /// Writes finished blocks in order; waits while too many are in flight (or all, at the end).
    fn drain(&mut self, all: bool) -> io::Result<()> {
        loop {
            while let Some((bytes, crc)) = self.pending.remove(&self.next_write) {
                self.out()?.write_all(&bytes)?;
                self.crc.combine(&crc);
                self.next_write += 1;
            }
            let in_flight = self.next_seq - self.next_write;
            let must_wait = if all {
                in_flight > 0
            } else {
                in_flight >= self.max_in_flight
            };
            if !must_wait {
                return Ok(());
            }
            let Some(pool) = &self.pool else {
                return Err(io::Error::other("gzip block missing"));
            };
            let done = pool
                .results
                .recv()
                .map_err(|_| io::Error::other("gzip worker thread died"))?;
            self.pending.insert(done.seq, done.result?);
        }
    }

    /// Compresses the rest, writes the trailer (CRC-32, ISIZE) and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        let crc = self.crc.sum();
        let isize = self.crc.amount();
        let out = self.out()?;
        out.write_all(&crc.to_le_bytes())?;
        out.write_all(&isize.to_le_bytes())?;
        out.flush()?;
        self.stop_pool();
        self.inner
            .take()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))
    }

    fn stop_pool(&mut self) {
        if let Some(mut pool) = self.pool.take() {
            pool.jobs = None;
            for w in pool.workers.drain(..) {
                let _ = w.join();
            }
        }
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let total = data.len();
        while !data.is_empty() {
            let room = BLOCK_SIZE - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == BLOCK_SIZE {
                self.submit(false)?;
            }
        }
        Ok(total)
    }

    /// Writes out completed blocks; the partial block stays buffered (a gzip flush point would
    /// change the bytes).
    fn flush(&mut self) -> io::Result<()> {
        self.drain(false)?;
        self.out()?.flush()
    }
}

impl<W: Write> Drop for ParallelGzip<W> {
    fn drop(&mut self) {
        self.stop_pool();
    }
}

fn spawn_pool(threads: usize, level: u32) -> Pool {
    let (jobs_tx, jobs_rx) = sync_channel::<Job>(threads);
    let (done_tx, done_rx) = sync_channel::<Done>(2 * threads);
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    let workers = (0..threads)
        .map(|_| {
            let jobs_rx = Arc::clone(&jobs_rx);
            let done_tx = done_tx.clone();
            std::thread::spawn(move || {
                loop {
                    let job = match jobs_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let result = compress_block(&job.data, level, job.last);
                    if done_tx
                        .send(Done {
                            seq: job.seq,
                            result,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            })
        })
        .collect();
    Pool {
        jobs: Some(jobs_tx),
        results: done_rx,
        workers,
    }
}

/// Raw-deflates one block with a fresh compressor: a full flush ends a middle block on a byte
/// boundary; the last block is finished (BFINAL).
fn compress_block(data: &[u8], level: u32, last: bool) -> io::Result<(Vec<u8>, Crc)> {
    let mut crc = Crc::new();
    crc.update(data);
    // Already-compressed data (archives, images, random bytes) does not shrink: store such a
    // block instead of searching it for matches. The choice depends on the bytes only, so the
    // output stays identical at any thread count.
    let level = if level > 0 && incompressible(data) {
        0
    } else {
        level
    };
    let mut c = Compress::new(flate2::Compression::new(level), false);
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Full
    };
    loop {
        let consumed = usize::try_from(c.total_in())
            .unwrap_or(data.len())
            .min(data.len());
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() == data.len() as u64;
        let done = match status {
            Status::StreamEnd => true,
            _ => !last && all_in && out.len() < out.capacity(),
        };
        if done {
            return Ok((out, crc));
        }
        out.reserve(64 * 1024);
    }
}

/// Bytes sampled from a block to decide whether it is worth compressing.
const SAMPLE: usize = 32 * 1024;

/// True when a fast compression of the block's first [`SAMPLE`] bytes saves under 3 %.
fn incompressible(data: &[u8]) -> bool {
    if data.len() < 2 * SAMPLE {
        return false;
    }
    let sample = &data[..SAMPLE];
    let mut c = Compress::new(flate2::Compression::new(1), false);
    let mut out = Vec::with_capacity(SAMPLE + SAMPLE / 8 + 64);
    if c.compress_vec(sample, &mut out, FlushCompress::Finish)
        .is_err()
    {
        return false;
    }
    // An output buffer that filled up means no saving at all.
    c.total_in() < SAMPLE as u64 || out.len() * 100 >= SAMPLE * 97
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 3 == 0 {
                    b'a' + (x % 7) as u8
                } else {
                    (x >> 32) as u8
                }
            })
            .collect()
    }

    fn gz(data: &[u8], threads: usize, chunk: usize) -> Vec<u8> {
        let mut w = ParallelGzip::new(Vec::new(), 6, threads);
        for part in data.chunks(chunk.max(1)) {
            assert!(w.write_all(part).is_ok());
        }
        match w.finish() {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn incompressible_blocks_are_stored_and_still_decode() {
        // A xorshift stream: no repetition for deflate to find.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let random: Vec<u8> = (0..3 * 1024 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(incompressible(&random[..1 << 20]));
        let text: Vec<u8> = (0..40_000)
            .flat_map(|i| format!("line {i} of some text\n").into_bytes())
            .collect();
        assert!(!incompressible(&text), "text is worth compressing");
        let out = gz(&random, 2, 100_000);
        // Stored blocks cost a few bytes per 64 KiB, never a blow-up.
        assert!(
            out.len() < random.len() + random.len() / 1000 + 1024,
            "{}",
            out.len()
        );
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .expect("decodes");
        assert_eq!(back, random);
        assert_eq!(out, gz(&random, 1, 7_000), "identical at any thread count");
    }

    #[test]
    fn identical_across_threads_and_decodes() {
        for len in [0, 1, BLOCK_SIZE - 1, BLOCK_SIZE, 3 * BLOCK_SIZE + 12345] {
            let data = sample(len);
            let one = gz(&data, 1, 4096);
            let four = gz(&data, 4, 100_000);
            assert_eq!(one, four, "len {len}");
            let mut back = Vec::new();
            let mut d = flate2::read::GzDecoder::new(&one[..]);
            assert!(d.read_to_end(&mut back).is_ok());
            assert_eq!(back, data, "len {len}");
            // A single member: MultiGzDecoder reads the same.
            let mut back2 = Vec::new();
            assert!(
                flate2::read::MultiGzDecoder::new(&one[..])
                    .read_to_end(&mut back2)
                    .is_ok()
            );
            assert_eq!(back2, data);
        }
    }
}
