//! Where scheduler commands run and job directories live: this machine, or a
//! host reached over ssh.
//!
//! Over ssh every command goes through one shared connection (OpenSSH's
//! `ControlMaster`), whose socket lives in a private (0700) temporary
//! directory; the connection is closed when the [`Host`] is dropped, and
//! lingers at most `ControlPersist` seconds after a driver that was killed.
//! Host-key checking stays on (`StrictHostKeyChecking=yes`, `BatchMode=yes`):
//! the host's key must be in `known_hosts`. Job directories are copied with
//! `rsync` over the same connection. A command that fails because the
//! connection failed (ssh's exit status 255) is a [`QueueError::Connection`],
//! which the driver retries.

use crate::error::{QueueError, Result};
use crate::job::shell_quote;
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// A machine that runs scheduler commands and holds job directories.
#[derive(Debug)]
pub struct Host {
    ssh: Option<Ssh>,
    env: Vec<(OsString, OsString)>,
}

/// An ssh destination and its connection-sharing socket directory.
#[derive(Debug)]
struct Ssh {
    target: String,
    options: Vec<String>,
    control: tempfile::TempDir,
    persist: u64,
}

/// rsync's exit codes for a broken connection or a remote shell that failed.
const RSYNC_CONNECTION: [i32; 5] = [10, 12, 30, 35, 255];

impl Host {
    /// This machine.
    pub fn local() -> Host {
        Host { ssh: None, env: Vec::new() }
    }

    /// `target` (`[user@]host`) over ssh with extra `-o` `options`; the shared
    /// connection stays up `persist` seconds after its last command.
    pub fn ssh(target: &str, options: &[String], persist: u64) -> Result<Host> {
        // A short path: a Unix socket path (here `<dir>/<40 hex digits>`) must
        // fit in about 100 bytes.
        let tmp = std::env::temp_dir();
        let base = if tmp.as_os_str().len() <= 48 { tmp } else { std::path::PathBuf::from("/tmp") };
        let control =
            tempfile::Builder::new().prefix("autopara-ssh-").tempdir_in(&base).map_err(|e| QueueError::io(&base, e))?;
        set_private(control.path())?;
        let ssh = Ssh { target: target.to_string(), options: options.to_vec(), control, persist };
        Ok(Host { ssh: Some(ssh), env: Vec::new() })
    }

    /// Adds an environment variable to every command (exported at the top of
    /// each script on a remote host).
    pub fn with_env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Host {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Whether commands go over ssh.
    pub fn is_remote(&self) -> bool {
        self.ssh.is_some()
    }

    /// `host` for messages (`this machine` for local).
    pub fn describe(&self) -> String {
        self.ssh.as_ref().map_or_else(|| "this machine".to_string(), |s| s.target.clone())
    }

    /// Runs the shell `script` (`sh -s`, script on stdin) and returns its
    /// stdout; a non-zero exit is an error with its stderr.
    pub fn run(&self, script: &str) -> Result<String> {
        self.run_output(script).map(|(stdout, _)| stdout)
    }

    /// [`Host::run`], returning stderr too.
    pub fn run_output(&self, script: &str) -> Result<(String, String)> {
        let (mut cmd, text) = match &self.ssh {
            None => {
                let mut c = Command::new("sh");
                c.arg("-s").envs(self.env.iter().map(|(k, v)| (k, v)));
                (c, script.to_string())
            }
            Some(ssh) => {
                let mut c = Command::new("ssh");
                c.args(ssh.args()).arg("--").arg(&ssh.target).arg("sh -s");
                let mut text = String::new();
                for (k, v) in &self.env {
                    text += &format!("export {}={}\n", k.to_string_lossy(), shell_quote(&v.to_string_lossy()));
                }
                (c, text + script)
            }
        };
        let what = match &self.ssh {
            None => "sh -s".to_string(),
            Some(ssh) => format!("ssh {} sh -s", ssh.target),
        };
        let out = run_with_stdin(&mut cmd, text.as_bytes(), &what)?;
        if out.status.success() {
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            return Ok((text(&out.stdout), text(&out.stderr)));
        }
        let message = format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        match &self.ssh {
            Some(ssh) if out.status.code() == Some(255) => {
                Err(QueueError::Connection { host: ssh.target.clone(), message })
            }
            _ => Err(QueueError::Command { command: format!("{what} <<< {}", first_line(script)), message }),
        }
    }

    /// Copies `files` (paths relative to `from`; a directory entry copies the
    /// directory itself, with its mode) from `from` on this machine to `to` on
    /// the host (`push`), or from `to` on the host back to `from` here (`!push`,
    /// missing files are skipped).
    pub fn copy(&self, push: bool, local: &Path, remote: &str, files: &[String]) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let mut cmd = Command::new("rsync");
        cmd.args(["-a", "--files-from=-"]);
        let remote = match &self.ssh {
            Some(ssh) => {
                let shell = std::iter::once("ssh".to_string())
                    .chain(ssh.args().iter().map(|a| shell_quote(a)))
                    .collect::<Vec<_>>()
                    .join(" ");
                cmd.arg("-e").arg(shell);
                format!("{}:{remote}/", ssh.target)
            }
            None => format!("{remote}/"),
        };
        let local = format!("{}/", local.display());
        if push {
            cmd.arg(&local).arg(&remote);
        } else {
            cmd.arg("--ignore-missing-args").arg(&remote).arg(&local);
        }
        let list = files.join("\n") + "\n";
        let what = format!("rsync {} -> {}", if push { &local } else { &remote }, if push { &remote } else { &local });
        let out = run_with_stdin(&mut cmd, list.as_bytes(), &what)?;
        if out.status.success() {
            return Ok(());
        }
        let message = format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        // A missing rsync on the host also ends the protocol stream: not a network failure.
        let missing = message.contains("command not found") || message.contains("No such file or directory");
        match (&self.ssh, out.status.code()) {
            (Some(ssh), Some(code)) if RSYNC_CONNECTION.contains(&code) && !missing => {
                Err(QueueError::Connection { host: ssh.target.clone(), message })
            }
            _ => Err(QueueError::Command { command: what, message }),
        }
    }
}

impl Ssh {
    /// The options of every ssh command: the system's first (ssh takes the
    /// first value of an option, so they may change the timeouts below; the
    /// systems file refuses the ones autopara must set), then autopara's.
    fn args(&self) -> Vec<String> {
        self.options
            .iter()
            .cloned()
            .chain([
                "BatchMode=yes".to_string(),
                "StrictHostKeyChecking=yes".to_string(),
                "ControlMaster=auto".to_string(),
                format!("ControlPath={}/%C", self.control.path().display()),
                format!("ControlPersist={}", self.persist),
                "ConnectTimeout=30".to_string(),
                "ServerAliveInterval=15".to_string(),
                "ServerAliveCountMax=2".to_string(),
            ])
            .flat_map(|o| ["-o".to_string(), o])
            .collect()
    }
}

impl Drop for Ssh {
    /// Closes the shared connection (its master process exits).
    fn drop(&mut self) {
        let _ = Command::new("ssh")
            .args(self.args())
            .args(["-O", "exit", "--", &self.target])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `cmd` with `input` on its stdin (written by a second thread, so that
/// a child writing much output while it reads cannot block) and collects its output.
fn run_with_stdin(cmd: &mut Command, input: &[u8], what: &str) -> Result<std::process::Output> {
    let start = |e: std::io::Error| QueueError::Command { command: what.to_string(), message: e.to_string() };
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(start)?;
    let stdin = child.stdin.take();
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || stdin.map_or(Ok(()), |mut s| s.write_all(input)));
        let out = child.wait_with_output().map_err(start)?;
        match writer.join() {
            // A child that exits without reading everything closes the pipe: its status tells.
            Ok(Err(e)) if e.kind() != std::io::ErrorKind::BrokenPipe && out.status.success() => Err(start(e)),
            _ => Ok(out),
        }
    })
}

fn first_line(script: &str) -> &str {
    script.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
}

/// Makes `path` readable only by its owner (0700).
pub(crate) fn set_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(|e| QueueError::io(path, e))
}
