//! Parsing the frames of one file on several threads.
//!
//! One thread reads the file and cuts it into unparsed frames
//! ([`Reader::next_unparsed`](super::Reader::next_unparsed), the cutting `autopara run` uses), handing
//! batches of them to rayon's threads as it goes, so that reading and parsing
//! overlap; results keep file order and errors keep their file, frame and line.

use super::reader::Frame;
use crate::atoms::Atoms;
use crate::error::Result;
use std::path::Path;
use std::sync::Mutex;

/// Frames per parallel task: large enough to amortise the task, small enough
/// to balance two or more threads on a few hundred frames.
const FRAMES_PER_TASK: usize = 32;

/// Parses a batch of frames, stopping at the first error.
fn parse_batch(batch: Vec<Frame>) -> Result<Vec<Atoms>> {
    batch
        .into_iter()
        .map(|f| match f {
            Frame::Unparsed(raw) => raw.parse(),
            Frame::Parsed(a) => Ok(a),
        })
        .collect()
}

/// Reads every frame of a file, parsing on rayon's threads. Same frames and
/// errors as [`super::read_file`].
pub fn read_file_par(path: impl AsRef<Path>) -> Result<Vec<Atoms>> {
    let mut reader = super::open(path)?;
    // Batch k's frames (or its first error) go to slot k; a reading error ends the list.
    let parts: Mutex<Vec<Option<Result<Vec<Atoms>>>>> = Mutex::new(Vec::new());
    let mut read_error = None;
    rayon::scope(|scope| {
        let mut batch = Vec::with_capacity(FRAMES_PER_TASK);
        let mut k = 0;
        let spawn = |batch: Vec<Frame>, k: usize| {
            let parts = &parts;
            scope.spawn(move |_| {
                let parsed = parse_batch(batch);
                if let Ok(mut parts) = parts.lock() {
                    if parts.len() <= k {
                        parts.resize_with(k + 1, || None);
                    }
                    parts[k] = Some(parsed);
                }
            });
        };
        while let Some(frame) = reader.next_unparsed() {
            match frame {
                Ok(f) => batch.push(f),
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
            if batch.len() == FRAMES_PER_TASK {
                spawn(std::mem::replace(&mut batch, Vec::with_capacity(FRAMES_PER_TASK)), k);
                k += 1;
            }
        }
        if !batch.is_empty() {
            spawn(batch, k);
        }
    });
    let parts = parts.into_inner().unwrap_or_default();
    let mut frames = Vec::new();
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
