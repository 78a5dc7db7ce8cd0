//! Grid Engine (SGE, Son of Grid Engine, Debian's `gridengine`): `qsub
//! -terse` to submit, `qstat -xml` to follow jobs (pending and running ones:
//! finished jobs leave the list at once, so the status file tells how they
//! ended), `qdel`, and `qacct` for the final state of a job that left without
//! a status file.

use crate::job::shell_quote;
use crate::resources::{Allocation, hms};
use crate::scheduler::{JobState, QueuedJob, Scheduler};
use std::collections::HashMap;

/// The Grid Engine scheduler.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sge;

impl Sge {
    /// Classifies a `qstat` state (`qw`, `hqw`, `r`, `t`, `Rr`, `s`, `dr`,
    /// `Eqw`, ...): an error state (`E`) or one being deleted (`d`) will not
    /// finish on its own; anything else is queued, held, running or suspended.
    pub fn state(state: &str) -> JobState {
        let s = state.trim().to_string();
        if s.contains('E') || s.contains('d') { JobState::Killed(s) } else { JobState::Live(s) }
    }
}

/// The text of the first `<tag>...</tag>` in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// XML's five entities, as `qstat -xml` writes names.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

impl Scheduler for Sge {
    fn name(&self) -> &'static str {
        "sge"
    }

    fn header(&self, job: &str, dir: &str, alloc: &Allocation) -> Vec<String> {
        let mut h = vec![
            format!("#$ -N {job}"),
            format!("#$ -wd {dir}"),
            format!("#$ -o {dir}/stdout"),
            format!("#$ -e {dir}/stderr"),
            "#$ -S /bin/bash".to_string(),
            "#$ -r n".to_string(),
        ];
        if let Some(q) = &alloc.partition {
            h.push(format!("#$ -q {q}"));
        }
        if let Some(t) = alloc.max_time {
            h.push(format!("#$ -l h_rt={}", hms(t)));
        }
        h
    }

    fn submit_command(&self, script: &str) -> String {
        format!("qsub -terse {}", shell_quote(script))
    }

    fn parse_submitted(&self, stdout: &str) -> Option<String> {
        // `-terse` prints `id` (or `id.first-last:step` for arrays).
        let id = stdout.trim().split('.').next()?.trim();
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
    }

    fn list_command(&self) -> String {
        "qstat -xml -u \"$(id -un)\"".into()
    }

    fn parse_list(&self, stdout: &str) -> HashMap<String, QueuedJob> {
        let mut jobs = HashMap::new();
        let mut rest = stdout;
        // `<job_list state="running"> ... </job_list>`, one per job.
        while let Some(start) = rest.find("<job_list") {
            let after = &rest[start..];
            let (Some(open_end), Some(close)) = (after.find('>'), after.find("</job_list>")) else { break };
            let entry = after.get(open_end + 1..close).unwrap_or("");
            rest = &after[close + "</job_list>".len()..];
            let field = |tag| element(entry, tag).map(|v| unescape(v.trim()));
            if let (Some(id), Some(name), Some(state)) = (field("JB_job_number"), field("JB_name"), field("state")) {
                jobs.insert(id.clone(), QueuedJob { id, name, state: Sge::state(&state) });
            }
        }
        jobs
    }

    fn cancel_command(&self, ids: &[&str]) -> String {
        format!("qdel {}", ids.iter().map(|i| shell_quote(i)).collect::<Vec<_>>().join(" "))
    }

    fn accounting_command(&self, id: &str) -> String {
        format!("qacct -j {}", shell_quote(id))
    }

    fn parse_accounting(&self, stdout: &str) -> Option<String> {
        let field = |name: &str| {
            stdout.lines().find_map(|l| l.strip_prefix(name).filter(|r| r.starts_with(' ')).map(str::trim))
        };
        let (failed, exit) = (field("failed")?, field("exit_status")?);
        let exit = exit.split_whitespace().collect::<Vec<_>>().join(" ");
        Some(if failed == "0" { format!("exit status {exit}") } else { format!("failed {failed}, exit status {exit}") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_classified() {
        for live in ["qw", "hqw", "r", "t", "Rr", "s", "S"] {
            assert!(matches!(Sge::state(live), JobState::Live(_)), "{live}");
        }
        for dead in ["Eqw", "dr", "dt"] {
            assert!(matches!(Sge::state(dead), JobState::Killed(_)), "{dead}");
        }
    }

    #[test]
    fn outputs_are_parsed() {
        assert_eq!(Sge.parse_submitted("123\n").as_deref(), Some("123"));
        assert_eq!(Sge.parse_submitted("124.1-10:1\n").as_deref(), Some("124"));
        assert_eq!(Sge.parse_submitted("Unable to run job"), None);
        let xml = r#"<?xml version='1.0'?>
<job_info>
  <queue_info>
    <job_list state="running">
      <JB_job_number>2</JB_job_number>
      <JB_name>md-0123&amp;x</JB_name>
      <state>r</state>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>3</JB_job_number>
      <JB_name>md-4567</JB_name>
      <state>Eqw</state>
    </job_list>
  </job_info>
</job_info>"#;
        let jobs = Sge.parse_list(xml);
        assert_eq!(jobs.len(), 2);
        assert_eq!((jobs["2"].name.as_str(), &jobs["2"].state), ("md-0123&x", &JobState::Live("r".into())));
        assert_eq!(jobs["3"].state, JobState::Killed("Eqw".into()));
        let acct =
            "jobname      sleepy\nfailed       100 : assumedly after job\nexit_status  137                  (Killed)\n";
        assert_eq!(
            Sge.parse_accounting(acct).as_deref(),
            Some("failed 100 : assumedly after job, exit status 137 (Killed)")
        );
        assert_eq!(Sge.parse_accounting("error: job id 9 not found\n"), None);
    }
}
