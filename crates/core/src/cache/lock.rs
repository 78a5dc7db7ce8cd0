//! One writer per output: an exclusive lock on a hidden lock file beside it
//! (`.NAME.autopara-lock`, holding the owner's pid), taken with std's
//! `File::try_lock` before the cache check and released when the run ends.
//! A second run on the same output fails at once with a message naming the
//! holder, instead of interleaving writes.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A held lock; released (and the lock file removed) on drop.
#[derive(Debug)]
pub struct OutputLock {
    file: File,
    path: PathBuf,
}

/// The lock file of `output`.
pub fn lock_path(output: &Path) -> PathBuf {
    crate::sidecar::hidden_sibling(output, "autopara-lock")
}

/// True when `a` and `b` are the same file (same device and inode on Unix).
#[cfg(unix)]
fn same_file(a: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (a.metadata(), std::fs::metadata(path)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> bool {
    path.exists()
}

impl OutputLock {
    /// Takes the lock of `output`, or fails naming the process that holds it.
    pub fn acquire(output: &Path) -> Result<OutputLock> {
        let path = lock_path(output);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    return Err(Error::Output(format!(
                        "{} is being written by another autopara run{} (lock {}); wait for it to finish",
                        output.display(),
                        if holder.is_empty() { String::new() } else { format!(" (pid {holder})") },
                        path.display()
                    )));
                }
                Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
            // A previous holder may have removed the file between our open and
            // our lock; then we hold a lock nobody else can see: try again.
            if !same_file(&file, &path) {
                continue;
            }
            file.set_len(0).map_err(|e| Error::io(&path, e))?;
            file.seek(SeekFrom::Start(0)).map_err(|e| Error::io(&path, e))?;
            write!(file, "{}", std::process::id()).map_err(|e| Error::io(&path, e))?;
            return Ok(OutputLock { file, path });
        }
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Remove while still holding the lock (waiters re-check the inode), then unlock.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_with_holder_and_lock_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.xyz");
        let held = OutputLock::acquire(&out).unwrap();
        let e = OutputLock::acquire(&out).unwrap_err().to_string();
        assert!(e.contains("being written by another autopara run"), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(held);
        assert!(!lock_path(&out).exists());
        let again = OutputLock::acquire(&out).unwrap();
        drop(again);
    }
}
