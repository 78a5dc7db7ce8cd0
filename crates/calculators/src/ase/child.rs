//! One worker process: started with the kernel told to kill it when the
//! thread that started it ends (so it never outlives the run, even when
//! autopara is killed), driven over non-blocking pipes with one `poll` loop
//! (requests out, replies in, stderr drained into a bounded tail), with an
//! optional deadline per exchange, and ended on drop.

use super::wire;
use rustix::event::{PollFd, PollFlags, poll};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The stderr bytes kept for error messages.
const TAIL_BYTES: usize = 16 * 1024;
/// Lines of stderr quoted in an error.
const TAIL_LINES: usize = 20;
/// How long a worker whose input was closed gets to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// How long a wait for a reply polls the pipe (yielding the core between
/// reads) before it sleeps in `poll`: a quick reply is then read at once,
/// without the tens of microseconds an idle core takes to wake up. The
/// Python side spins as long for the next request (worker.py's `SPIN`).
const SPIN: Duration = Duration::from_micros(50);

/// What went wrong in an exchange.
#[derive(Debug)]
pub(super) enum Fault {
    /// The process ended (its status, when it could be read).
    Died(Option<ExitStatus>),
    /// No reply before the deadline; the process was killed.
    TimedOut,
    /// A malformed reply or a pipe error; the process was killed.
    Broken(String),
}

/// A running worker process and its pipes.
pub(super) struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    stderr: Option<ChildStderr>,
    tail: Vec<u8>,
    /// Reply bytes: the current message (and anything after it).
    inbuf: Vec<u8>,
    /// Until when the current exchange spins before it sleeps (see [`SPIN`]).
    spin_until: Instant,
}

impl Process {
    /// Starts `python -c BOOTSTRAP <length>`, with `env` added to its
    /// environment, and sends it the worker's code.
    pub(super) fn start(
        python: &std::ffi::OsStr,
        env: &[(&str, String)],
        bootstrap: &str,
        code: &str,
    ) -> std::io::Result<Process> {
        let mut cmd = Command::new(python);
        cmd.arg("-c").arg(bootstrap).arg(code.len().to_string());
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let parent = rustix::process::getpid();
        // SAFETY: the closure runs in the forked child before exec and makes
        // only async-signal-safe system calls (prctl, getppid); it allocates
        // nothing and touches no lock.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
                // The parent may have died before the line above: then nobody
                // would send the signal.
                if rustix::process::getppid() != Some(parent) {
                    return Err(std::io::Error::other("autopara exited while the worker was starting"));
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("the worker's pipes were not opened"));
        };
        for fd in [stdout.as_fd(), stderr.as_fd(), stdin.as_fd()] {
            rustix::io::ioctl_fionbio(fd, true)?;
        }
        let mut process = Process {
            child,
            stdin: Some(stdin),
            stdout,
            stderr: Some(stderr),
            tail: Vec::new(),
            inbuf: Vec::new(),
            spin_until: Instant::now(),
        };
        // The code is sent as the first bytes of input, ahead of any message.
        if let Err(fault) = process.write_all(code.as_bytes(), None) {
            return Err(std::io::Error::other(process.describe(&fault)));
        }
        Ok(process)
    }

    /// The process id.
    pub(super) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends `request` (one or more messages) and waits for one reply message
    /// until `deadline`; returns its tag and payload.
    pub(super) fn exchange(&mut self, request: &[u8], deadline: Option<Instant>) -> Result<([u8; 4], &[u8]), Fault> {
        self.write_all(request, deadline)?;
        self.inbuf.clear();
        self.spin_until = Instant::now() + SPIN;
        let mut want = wire::HEADER;
        loop {
            while self.inbuf.len() < want {
                self.fill(want, deadline)?;
            }
            let Some((tag, len)) = wire::header(&self.inbuf) else { continue };
            let total = usize::try_from(len).ok().and_then(|l| l.checked_add(wire::HEADER));
            let Some(total) = total.filter(|&t| t <= (1 << 40)) else {
                return Err(self.break_off(format!("a reply claims {len} bytes")));
            };
            if self.inbuf.len() >= total {
                if self.inbuf.len() > total {
                    return Err(self.break_off("the worker sent more than one reply".into()));
                }
                return Ok((tag, &self.inbuf[wire::HEADER..total]));
            }
            want = total;
        }
    }

    /// Writes all of `data`, draining stdout into `inbuf` and stderr into the tail meanwhile.
    fn write_all(&mut self, mut data: &[u8], deadline: Option<Instant>) -> Result<(), Fault> {
        while !data.is_empty() {
            let Some(stdin) = self.stdin.as_mut() else { return Err(self.dead()) };
            match stdin.write(data) {
                Ok(0) => return Err(self.dead()),
                Ok(k) => data = &data[k..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.wait(true, deadline)?,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::BrokenPipe => return Err(self.dead()),
                Err(e) => return Err(self.break_off(format!("writing to the worker: {e}"))),
            }
        }
        Ok(())
    }

    /// Reads what stdout has (at least one byte, waiting for it) into `inbuf`.
    fn fill(&mut self, want: usize, deadline: Option<Instant>) -> Result<(), Fault> {
        let have = self.inbuf.len();
        self.inbuf.resize(want.max(have + 4096), 0);
        let read = self.stdout.read(&mut self.inbuf[have..]);
        match read {
            Ok(0) => {
                self.inbuf.truncate(have);
                Err(self.dead())
            }
            Ok(k) => {
                self.inbuf.truncate(have + k);
                Ok(())
            }
            Err(e) => {
                self.inbuf.truncate(have);
                match e.kind() {
                    ErrorKind::WouldBlock if Instant::now() < self.spin_until => {
                        std::thread::yield_now();
                        Ok(())
                    }
                    ErrorKind::WouldBlock => self.wait(false, deadline),
                    ErrorKind::Interrupted => Ok(()),
                    _ => Err(self.break_off(format!("reading from the worker: {e}"))),
                }
            }
        }
    }

    /// Waits until stdout is readable (or stdin writable, with `writing`),
    /// draining stderr; kills the process at the deadline.
    fn wait(&mut self, writing: bool, deadline: Option<Instant>) -> Result<(), Fault> {
        loop {
            let timeout = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => {
                        self.kill();
                        return Err(Fault::TimedOut);
                    }
                },
                None => None,
            };
            let timespec = timeout.map(|t| rustix::time::Timespec {
                tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
                tv_nsec: i64::from(t.subsec_nanos()),
            });
            let (ready, err_ready) = {
                let main = match (writing, self.stdin.as_ref()) {
                    (true, Some(stdin)) => PollFd::new(stdin, PollFlags::OUT),
                    _ => PollFd::new(&self.stdout, PollFlags::IN),
                };
                let mut fds = vec![main];
                if let Some(stderr) = self.stderr.as_ref() {
                    fds.push(PollFd::new(stderr, PollFlags::IN));
                }
                match poll(&mut fds, timespec.as_ref()) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(self.break_off(format!("poll: {e}"))),
                }
                (!fds[0].revents().is_empty(), fds.get(1).is_some_and(|f| !f.revents().is_empty()))
            };
            if err_ready {
                self.drain_stderr();
            }
            if ready {
                return Ok(());
            }
        }
    }

    /// Moves what stderr holds into the tail; closes it at end of file.
    fn drain_stderr(&mut self) {
        let Some(stderr) = self.stderr.as_mut() else { return };
        let mut chunk = [0u8; 4096];
        loop {
            match stderr.read(&mut chunk) {
                Ok(0) => {
                    self.stderr = None;
                    return;
                }
                Ok(k) => {
                    self.tail.extend_from_slice(&chunk[..k]);
                    if self.tail.len() > 2 * TAIL_BYTES {
                        self.tail.drain(..self.tail.len() - TAIL_BYTES);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// The last lines the worker wrote to stderr.
    pub(super) fn stderr_tail(&mut self) -> String {
        self.drain_stderr();
        let text = String::from_utf8_lossy(&self.tail);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
    }

    /// The process closed its output: waits briefly for its exit status.
    fn dead(&mut self) -> Fault {
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Fault::Died(Some(status)),
                Ok(None) if start.elapsed() < EXIT_GRACE => std::thread::sleep(Duration::from_millis(2)),
                _ => {
                    self.kill();
                    return Fault::Died(None);
                }
            }
        }
    }

    /// Kills the process (the exchange cannot go on) and says why.
    fn break_off(&mut self, why: String) -> Fault {
        self.kill();
        Fault::Broken(why)
    }

    fn kill(&mut self) {
        // Errors mean it has already ended; wait reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A sentence on `fault` with the stderr tail.
    pub(super) fn describe(&mut self, fault: &Fault) -> String {
        let what = match fault {
            Fault::Died(Some(status)) => match status.signal() {
                Some(sig) => format!("the worker process died from signal {sig} ({})", signal_name(sig)),
                None => format!("the worker process exited ({status})"),
            },
            Fault::Died(None) => "the worker process closed its output and was killed".into(),
            Fault::TimedOut => "timed out; the worker process was killed".into(),
            Fault::Broken(why) => format!("{why}; the worker process was killed"),
        };
        with_tail(what, &self.stderr_tail())
    }
}

impl Drop for Process {
    /// Closes the worker's input (it exits at end of input), gives it a moment
    /// to do so, then kills it; always reaps it.
    fn drop(&mut self) {
        self.stdin = None;
        let start = Instant::now();
        while start.elapsed() < EXIT_GRACE {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                _ => return,
            }
        }
        self.kill();
    }
}

/// `message` followed by the stderr tail, when there is one.
pub(super) fn with_tail(message: String, tail: &str) -> String {
    if tail.is_empty() { message } else { format!("{message}; its stderr ends:\n{tail}") }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL, perhaps the out-of-memory killer",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "see `kill -l`",
    }
}
