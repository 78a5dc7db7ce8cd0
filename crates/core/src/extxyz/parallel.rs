//! Parsing the frames of one file on several threads.
//!
//! A sequential scan finds frame boundaries (count lines and line counts only,
//! with `memchr`), then rayon parses batches of frames in parallel; results
//! keep file order and errors keep their file, frame and line.

use super::reader::Reader;
use crate::atoms::Atoms;
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::ops::Range;
use std::path::Path;

/// Frames per parallel task: large enough to amortise the task, small enough
/// to balance two or more threads on a few hundred frames.
const FRAMES_PER_TASK: usize = 32;

/// A run of whole frames: byte range, index of its first frame, lines before it.
struct Batch {
    bytes: Range<usize>,
    frame: usize,
    lines: usize,
}

/// The end of the line starting at `pos` (after its `\n`), or the input's end.
fn line_end(bytes: &[u8], pos: usize) -> usize {
    match bytes.get(pos..).and_then(|rest| memchr::memchr(b'\n', rest)) {
        Some(i) => pos + i + 1,
        None => bytes.len(),
    }
}

/// Cuts `bytes` into batches of whole frames. Anything the scan cannot make
/// sense of (a bad count line, a truncated frame) goes into a final batch,
/// whose sequential parse reports the error at the right place.
fn batches(bytes: &[u8]) -> Vec<Batch> {
    let mut out = Vec::new();
    let (mut pos, mut line, mut frame) = (0usize, 0usize, 0usize);
    let mut batch = Batch { bytes: 0..0, frame: 0, lines: 0 };
    let mut in_batch = 0;
    while pos < bytes.len() {
        let end = line_end(bytes, pos);
        let text = &bytes[pos..end];
        if text.iter().all(u8::is_ascii_whitespace) {
            pos = end;
            line += 1;
            continue;
        }
        let natoms = std::str::from_utf8(text).ok().and_then(|t| t.trim().parse::<usize>().ok());
        let Some(natoms) = natoms else { break };
        let mut p = end;
        let mut complete = true;
        for _ in 0..=natoms {
            if p >= bytes.len() {
                complete = false;
                break;
            }
            p = line_end(bytes, p);
        }
        if !complete {
            break;
        }
        if in_batch == 0 {
            batch = Batch { bytes: pos..pos, frame, lines: line };
        }
        batch.bytes.end = p;
        in_batch += 1;
        line += natoms + 2;
        frame += 1;
        pos = p;
        if in_batch == FRAMES_PER_TASK {
            out.push(std::mem::replace(&mut batch, Batch { bytes: 0..0, frame: 0, lines: 0 }));
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        out.push(batch);
    }
    if pos < bytes.len() {
        out.push(Batch { bytes: pos..bytes.len(), frame, lines: line });
    }
    out
}

/// Reads every frame of a file, parsing on rayon's threads. Same frames and
/// errors as [`super::read_file`]; holds the whole file in memory.
pub fn read_file_par(path: impl AsRef<Path>) -> Result<Vec<Atoms>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let parts: Vec<Result<Vec<Atoms>>> = batches(&bytes)
        .par_iter()
        .map(|b| Reader::new(&bytes[b.bytes.clone()], path).starting_at(b.frame, b.lines).collect())
        .collect();
    let mut frames = Vec::new();
    for part in parts {
        frames.extend(part?);
    }
    if frames.is_empty() {
        // No frame at all: the sequential reader says why, at the right line.
        return Reader::new(bytes.as_slice(), path).collect();
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
