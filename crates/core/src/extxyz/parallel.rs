//! Parsing the frames of one file on several threads.
//!
//! One thread reads the file and cuts it into unparsed frames
//! ([`Reader::next_unparsed`](super::Reader::next_unparsed), the cutting `autopara run` uses), handing
//! batches of them to rayon's threads as it goes, so that reading and parsing
//! overlap; results keep file order and errors keep their file, frame and line.

use super::reader::{Unparsed, parse_text};
use crate::atoms::Atoms;
use crate::error::Result;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Frames per parallel task: large enough to amortise the task, small enough
/// to balance two or more threads on a few hundred frames.
const FRAMES_PER_TASK: usize = 32;

/// Batches cut but not yet parsed, per thread: enough to keep every thread
/// busy, few enough that the text buffers are reused while still in cache.
const BATCHES_PER_THREAD: usize = 4;

/// Consecutive frames cut from the file: their texts one after the other in
/// one buffer (reused from batch to batch), or parsed already.
#[derive(Default)]
struct Batch {
    text: Vec<u8>,
    /// Per frame: the end of its text, its index and the lines before it.
    frames: Vec<(usize, usize, usize)>,
    parsed: Vec<(usize, Atoms)>,
}

impl Batch {
    fn len(&self) -> usize {
        self.frames.len() + self.parsed.len()
    }

    /// Parses the batch, in file order, stopping at the first error.
    fn parse(&mut self, path: &Path) -> Result<Vec<Atoms>> {
        let mut out = Vec::with_capacity(self.len());
        let mut parsed = std::mem::take(&mut self.parsed).into_iter().peekable();
        let mut start = 0;
        for &(end, frame, line) in &self.frames {
            while let Some((_, a)) = parsed.next_if(|(i, _)| *i < frame) {
                out.push(a);
            }
            out.push(parse_text(self.text.get(start..end).unwrap_or_default(), path, frame, line)?);
            start = end;
        }
        out.extend(parsed.map(|(_, a)| a));
        Ok(out)
    }

    fn clear(&mut self) {
        self.text.clear();
        self.frames.clear();
        self.parsed.clear();
    }
}

/// Reads every frame of a file, parsing on rayon's threads. Same frames and
/// errors as [`super::read_file`].
pub fn read_file_par(path: impl AsRef<Path>) -> Result<Vec<Atoms>> {
    let path = path.as_ref();
    let mut reader = super::open(path)?;
    // Batch k's frames (or its first error) go to slot k; a reading error ends the list.
    let parts: Mutex<Vec<Option<Result<Vec<Atoms>>>>> = Mutex::new(Vec::new());
    // Parsed batches' buffers, for the next batches to fill.
    let spare: Mutex<Vec<Batch>> = Mutex::new(Vec::new());
    let in_flight = AtomicUsize::new(0);
    let limit = BATCHES_PER_THREAD * rayon::current_num_threads();
    let mut read_error = None;
    rayon::scope(|scope| {
        let mut k = 0;
        loop {
            let mut batch = spare.lock().ok().and_then(|mut s| s.pop()).unwrap_or_default();
            while batch.len() < FRAMES_PER_TASK {
                match reader.next_unparsed_into(&mut batch.text) {
                    Some(Ok(Unparsed::Text { frame, line })) => batch.frames.push((batch.text.len(), frame, line)),
                    Some(Ok(Unparsed::Parsed(a))) => batch.parsed.push((reader.frame_index() - 1, a)),
                    Some(Err(e)) => {
                        read_error = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            if batch.len() == 0 {
                break;
            }
            let last = batch.len() < FRAMES_PER_TASK;
            // The cutting runs ahead of the parsing by a few batches at most:
            // past that, this thread parses (or waits) instead of cutting.
            while in_flight.load(Ordering::Acquire) >= limit {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::thread::yield_now();
                }
            }
            in_flight.fetch_add(1, Ordering::AcqRel);
            let (parts, spare, in_flight) = (&parts, &spare, &in_flight);
            scope.spawn(move |_| {
                let parsed = batch.parse(path);
                batch.clear();
                if let Ok(mut spare) = spare.lock() {
                    spare.push(batch);
                }
                if let Ok(mut parts) = parts.lock() {
                    if parts.len() <= k {
                        parts.resize_with(k + 1, || None);
                    }
                    parts[k] = Some(parsed);
                }
                in_flight.fetch_sub(1, Ordering::AcqRel);
            });
            k += 1;
            if last {
                break;
            }
        }
    });
    let parts = parts.into_inner().unwrap_or_default();
    let mut frames = Vec::with_capacity(reader.frame_index());
    for part in parts {
        frames.extend(part.unwrap_or_else(|| Ok(Vec::new()))?);
    }
    match read_error {
        Some(e) => Err(e),
        None => Ok(frames),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::extxyz::MAX_UNPARSED_ATOMS;

    fn parse(text: &str) -> Result<Vec<Atoms>> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let p = dir.path().join("f.xyz");
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
        let seq = super::super::read_file(&p);
        let par = read_file_par(&p);
        assert_eq!(format!("{seq:?}"), format!("{par:?}"));
        par
    }

    #[test]
    fn same_frames_and_errors_as_sequential() {
        let frame = |i: usize| format!("2\nstep={i}\nH 0 0 {i}\nO 1 1 1\n");
        let many: String = (0..100).map(frame).collect();
        assert_eq!(parse(&many).map(|v| v.len()).ok(), Some(100));
        let with_blanks = format!("\n{}\n\n{}\n", frame(0), frame(1));
        assert_eq!(parse(&with_blanks).map(|v| v.len()).ok(), Some(2));
        let bad_late = format!("{many}2\n\nH 0 0 0\nO 1 x 1\n");
        assert!(matches!(parse(&bad_late), Err(Error::Parse { frame: 100, line: 404, .. })));
        let truncated = format!("{many}3\n\nH 0 0 0\n");
        assert!(matches!(parse(&truncated), Err(Error::Parse { frame: 100, .. })));
        let bad_count = format!("{many}{many}x\n");
        assert!(matches!(parse(&bad_count), Err(Error::Parse { frame: 200, line: 801, .. })));
        for nothing in ["", "\n \n"] {
            assert!(matches!(parse(nothing), Err(Error::Parse { frame: 0, line: 1, .. })), "{nothing:?}");
        }
    }

    /// Many frames of different lengths (more batches than are ever in
    /// flight, so buffers are reused), one too large to cut unparsed among
    /// them, on 1 and 3 threads: the frames of the sequential reader, in order.
    #[test]
    fn reused_buffers_and_large_frames_keep_file_order() {
        let frame = |i: usize| {
            let n = 1 + i % 5;
            let atoms: String = (0..n).map(|j| format!("H {i} {j} 0.{}\n", i * 7 % 10)).collect();
            format!("{n}\nstep={i}\n{atoms}")
        };
        let big = MAX_UNPARSED_ATOMS + 1;
        let big_frame = format!("{big}\nstep=big\n{}", "He 0 0 0\n".repeat(big));
        let text: String = (0..700).map(frame).chain([big_frame]).chain((700..1000).map(frame)).collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.xyz");
        std::fs::write(&p, &text).unwrap();
        let seq = super::super::read_file(&p).unwrap();
        assert_eq!(seq.len(), 1001);
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let par = pool.install(|| read_file_par(&p)).unwrap();
            assert!(par == seq, "{threads} threads: frames differ from the sequential reader's");
        }
    }
}
