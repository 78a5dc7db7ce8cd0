//! Progress reporting: an indicatif bar on stderr when it is a terminal
//! (items done/total, rate, ETA), otherwise a one-line log every
//! [`LOG_INTERVAL`] (or `AUTOPARA_PROGRESS_INTERVAL` seconds); nothing when
//! disabled (`--quiet`, `AUTOPARA_PROGRESS=0`).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Time between log lines when stderr is not a terminal.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Environment variable overriding [`LOG_INTERVAL`], in seconds.
pub const ENV_PROGRESS_INTERVAL: &str = "AUTOPARA_PROGRESS_INTERVAL";

enum Mode {
    Off,
    Bar(ProgressBar),
    Log { last: Instant, every: Duration },
}

/// Progress of one run.
pub struct Progress {
    mode: Mode,
    label: String,
    total: Option<u64>,
    done: u64,
    start: Instant,
}

impl Progress {
    /// A reporter for a run labelled `label` (the op name) over `total` items when known.
    pub fn new(enabled: bool, label: &str, total: Option<u64>) -> Progress {
        let now = Instant::now();
        let mode = if !enabled {
            Mode::Off
        } else if std::io::stderr().is_terminal() {
            let bar = match total {
                Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            };
            let template = if total.is_some() {
                "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} items ({per_sec}, ETA {eta})"
            } else {
                "{prefix} [{elapsed_precise}] {spinner} {pos} items ({per_sec})"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_prefix(label.to_string());
            Mode::Bar(bar)
        } else {
            let every = std::env::var(ENV_PROGRESS_INTERVAL)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .unwrap_or(LOG_INTERVAL);
            Mode::Log { last: now, every }
        };
        Progress { mode, label: label.to_string(), total, done: 0, start: now }
    }

    /// Records `n` more finished items.
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        match &mut self.mode {
            Mode::Off => {}
            Mode::Bar(bar) => bar.inc(n),
            Mode::Log { last, every } => {
                if last.elapsed() >= *every {
                    *last = Instant::now();
                    eprintln!("{}", self.line());
                }
            }
        }
    }

    fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { self.done as f64 / secs } else { 0.0 };
        let total = self.total.map_or(String::new(), |t| format!("/{t}"));
        let eta = match self.total {
            Some(t) if rate > 0.0 && t >= self.done => format!(", ETA {:.0} s", (t - self.done) as f64 / rate),
            _ => String::new(),
        };
        format!(
            "autopara: {}: {}{} items, {:.1} items/s, {:.1} s elapsed{}",
            self.label, self.done, total, rate, secs, eta
        )
    }

    /// Ends the report (clears the bar).
    pub fn finish(self) {
        if let Mode::Bar(bar) = self.mode {
            bar.finish_and_clear();
        }
    }
}
