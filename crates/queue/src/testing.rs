//! Test support: a private single-node Slurm cluster (munge, slurmctld and
//! slurmd from Debian's `slurm-wlm`) in a temporary directory, a private
//! single-node Grid Engine ([`LocalGridEngine`]), and a private sshd on a
//! loopback port ([`LocalSshd`], Debian's `openssh-server`) to reach them as a
//! remote host.
//!
//! Each [`LocalCluster`] has its own munge key and socket, `slurm.conf`,
//! state, spool, log and pid files, and free TCP ports, so several test
//! binaries can run clusters at once. There are no cgroups on the sandboxes
//! this runs on: `ProctrackType=proctrack/linuxproc`, `TaskPlugin=task/none`.
//! Dropping the cluster cancels its jobs and stops the daemons it started, by
//! PID. Nothing is installed here (`cargo xtask deps` installs the packages).

use crate::scheduler::{JobState, QueuedJob, Scheduler};
use crate::slurm::Slurm;
use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private cluster; stopped on drop.
pub struct LocalCluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
    daemons: Vec<(&'static str, Child)>,
}

/// The daemons a cluster needs.
const DAEMONS: [&str; 3] = ["munged", "slurmctld", "slurmd"];

/// Finds a program on `PATH` or in the sbin directories (daemons live there).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl LocalCluster {
    /// Starts a cluster, or returns `None` after printing a loud `SKIPPED` line
    /// when Slurm or munge is not installed. With `AUTOPARA_REQUIRE_REFERENCES=1`
    /// (CI) a missing installation panics instead. A cluster that is installed
    /// but does not start panics with its logs.
    pub fn start_or_skip(test: &str) -> Option<LocalCluster> {
        let programs = DAEMONS.iter().chain(&["sbatch", "squeue", "sinfo", "scancel"]);
        let missing: Vec<String> = programs.filter(|p| find_program(p).is_none()).map(|p| p.to_string()).collect();
        if !installed_or_skip(test, "Slurm", &missing, "slurm-wlm and munge") {
            return None;
        }
        match LocalCluster::start() {
            Ok(c) => Some(c),
            Err(e) => panic!("{test}: could not start a local Slurm cluster: {e}"),
        }
    }

    /// Starts munged, slurmctld and slurmd and waits until the node is idle.
    pub fn start() -> Result<LocalCluster, String> {
        let dir = tempfile::Builder::new().prefix("autopara-slurm-").tempdir().map_err(|e| e.to_string())?;
        let root = dir.path().to_path_buf();
        for sub in ["munge", "state", "spool", "log"] {
            std::fs::create_dir_all(root.join(sub)).map_err(|e| format!("{}: {e}", root.join(sub).display()))?;
        }
        let key = root.join("munge/munge.key");
        let mut bytes = vec![0u8; 128];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(|e| format!("/dev/urandom: {e}"))?;
        std::fs::write(&key, &bytes).map_err(|e| format!("{}: {e}", key.display()))?;
        set_mode(&key, 0o600)?;
        set_mode(&root.join("munge"), 0o700)?;
        let socket = root.join("munge/munge.socket");
        let [ctld_port, d_port] = free_ports()?;
        let user = current_user()?;
        let conf = root.join("slurm.conf");
        let r = root.display();
        let text = format!(
            "ClusterName=autopara\nSlurmctldHost=localhost\nSlurmctldPort={ctld_port}\nSlurmdPort={d_port}\n\
             SlurmUser={user}\nSlurmdUser={user}\nAuthType=auth/munge\nCredType=cred/munge\n\
             AuthInfo=socket={socket}\nStateSaveLocation={r}/state\nSlurmdSpoolDir={r}/spool\n\
             SlurmctldPidFile={r}/slurmctld.pid\nSlurmdPidFile={r}/slurmd.pid\n\
             SlurmctldLogFile={r}/log/slurmctld.log\nSlurmdLogFile={r}/log/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none\nReturnToService=2\n\
             SchedulerType=sched/backfill\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n\
             AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\n\
             MinJobAge=300\nNodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=2000 State=UNKNOWN\n\
             PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n",
            socket = socket.display()
        );
        std::fs::write(&conf, text).map_err(|e| format!("{}: {e}", conf.display()))?;
        let mut cluster = LocalCluster { dir, conf, daemons: Vec::new() };
        cluster.spawn(
            "munged",
            &[
                "-F".into(),
                "--force".into(),
                format!("--socket={}", socket.display()),
                format!("--key-file={}", key.display()),
                format!("--pid-file={r}/munge/munged.pid"),
                format!("--log-file={r}/log/munged.log"),
                format!("--seed-file={r}/munge/seed"),
            ],
        )?;
        cluster.wait_for(|_| socket.exists(), "the munge socket")?;
        cluster.spawn("slurmctld", &["-D".into()])?;
        cluster.spawn("slurmd", &["-D".into(), "-N".into(), "localhost".into()])?;
        cluster.wait_for(|c| c.node_state().is_some_and(|s| s.starts_with("idle")), "the node to be idle")?;
        Ok(cluster)
    }

    /// The cluster's directory (config, state, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster's `slurm.conf`; client commands need `SLURM_CONF` set to it.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The process ids of the daemons this cluster started.
    pub fn daemon_pids(&self) -> Vec<u32> {
        self.daemons.iter().map(|(_, c)| c.id()).collect()
    }

    /// The cluster's jobs (`squeue`), by id.
    pub fn jobs(&self) -> Result<HashMap<String, QueuedJob>, String> {
        let out = self.client("sh").args(["-c", &Slurm.list_command()]).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Slurm.parse_list(&String::from_utf8_lossy(&out.stdout)))
    }

    /// Cancels job `id` (`scancel`).
    pub fn cancel(&self, id: &str) -> Result<(), String> {
        let out = self.client("scancel").arg(id).output().map_err(|e| e.to_string())?;
        out.status.success().then_some(()).ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// The environment a child process (say `autopara run`) needs to use this cluster.
    pub fn envs(&self) -> Vec<(&'static str, PathBuf)> {
        vec![("SLURM_CONF", self.conf.clone())]
    }

    fn client(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    fn spawn(&mut self, name: &'static str, args: &[String]) -> Result<(), String> {
        let program = find_program(name).ok_or_else(|| format!("{name} not found"))?;
        let log = self.dir.path().join(format!("log/{name}.out"));
        let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new(&program)
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{}: {e}", program.display()))?;
        self.daemons.push((name, child));
        Ok(())
    }

    /// The node's state from `sinfo` (`idle`, `mixed`, `down*`).
    fn node_state(&self) -> Option<String> {
        let out = self.client("sinfo").args(["--noheader", "--format=%T"]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Waits up to 30 s for `ready`; on timeout returns an error with the daemon logs.
    fn wait_for(&mut self, ready: impl Fn(&LocalCluster) -> bool, what: &str) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if ready(self) {
                return Ok(());
            }
            if let Some((name, status)) =
                self.daemons.iter_mut().find_map(|(n, c)| c.try_wait().ok().flatten().map(|s| (*n, s)))
            {
                return Err(format!("{name} exited ({status}) while waiting for {what}\n{}", self.logs()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("timed out waiting for {what}\n{}", self.logs()))
    }

    /// The tails of the daemons' logs, for error messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for name in DAEMONS {
            for file in [format!("log/{name}.out"), format!("log/{name}.log")] {
                let text = std::fs::read_to_string(self.dir.path().join(&file)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                s.push_str(&format!("--- {file}\n{}\n", lines[lines.len().saturating_sub(15)..].join("\n")));
            }
        }
        s
    }

    /// Cancels every job and waits (up to 10 s) until none is live, so that no
    /// job process outlives the daemons.
    fn cancel_all(&self) {
        let user = current_user().unwrap_or_default();
        let _ = self.client("scancel").args(["--user", &user]).output();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            match self.jobs() {
                Ok(jobs) if jobs.values().all(|j| !matches!(j.state, JobState::Live(_))) => return,
                Err(_) => return,
                Ok(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.daemons.len() == DAEMONS.len() {
            self.cancel_all();
        }
        // Stop in reverse start order: slurmd, slurmctld, munged. SIGTERM first so
        // they clean up; SIGKILL whatever is still running after 5 s.
        while let Some((_, mut child)) = self.daemons.pop() {
            let _ = Command::new("kill").arg(child.id().to_string()).output();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether nothing is `missing` for `what`; otherwise a loud `SKIPPED` line
/// naming it and the Debian `packages` that `cargo xtask deps` installs, or,
/// with `AUTOPARA_REQUIRE_REFERENCES=1` (CI), a panic.
fn installed_or_skip(test: &str, what: &str, missing: &[String], packages: &str) -> bool {
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(", ");
    if std::env::var("AUTOPARA_REQUIRE_REFERENCES").is_ok_and(|v| v == "1") {
        panic!("{test}: {what} is required but {missing} missing; run `cargo xtask deps`");
    }
    eprintln!("SKIPPED {test}: no {what} ({missing} missing; `cargo xtask deps` installs {packages})");
    false
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Two distinct TCP ports that were free a moment ago.
fn free_ports() -> Result<[u16; 2], String> {
    let bind = || TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding a free port: {e}"));
    // Both listeners stay open until both ports are known, so they differ.
    let (a, b) = (bind()?, bind()?);
    let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string());
    Ok([port(&a)?, port(&b)?])
}

fn current_user() -> Result<String, String> {
    let out = Command::new("id").arg("-un").output().map_err(|e| format!("id -un: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A private sshd on a loopback port, run by the test as the current user:
/// its own host key, a client key in its own `authorized_keys`, and a
/// `known_hosts` holding the host key, so that clients keep host-key checking
/// on. Variables given at start are set in every session (`SetEnv`), as a
/// cluster's login environment would (`SLURM_CONF`). [`LocalSshd::stop`] and
/// [`LocalSshd::restart`] cut and restore the network for tests; dropping it
/// stops sshd and every session it started, by PID.
pub struct LocalSshd {
    dir: tempfile::TempDir,
    port: u16,
    user: String,
    child: Option<Child>,
}

/// The programs a [`LocalSshd`] and its clients need.
const SSH_PROGRAMS: [&str; 4] = ["sshd", "ssh", "ssh-keygen", "rsync"];

impl LocalSshd {
    /// Starts an sshd, or returns `None` after a loud `SKIPPED` line when
    /// OpenSSH or rsync is missing (a panic with `AUTOPARA_REQUIRE_REFERENCES=1`).
    pub fn start_or_skip(test: &str, env: &[(&str, &Path)]) -> Option<LocalSshd> {
        let missing: Vec<String> =
            SSH_PROGRAMS.into_iter().filter(|p| find_program(p).is_none()).map(String::from).collect();
        if !installed_or_skip(test, "sshd", &missing, "openssh-server, openssh-client and rsync") {
            return None;
        }
        match LocalSshd::start(env) {
            Ok(s) => Some(s),
            Err(e) => panic!("{test}: could not start sshd: {e}"),
        }
    }

    /// Generates the keys and config and starts sshd.
    pub fn start(env: &[(&str, &Path)]) -> Result<LocalSshd, String> {
        let dir = tempfile::Builder::new().prefix("autopara-sshd-").tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "autopara-test", "-f"])
                .arg(d.join(key))
                .output()
                .map_err(|e| format!("ssh-keygen: {e}"))?;
            if !out.status.success() {
                return Err(format!("ssh-keygen: {}", String::from_utf8_lossy(&out.stderr)));
            }
        }
        let read = |f: &str| std::fs::read_to_string(d.join(f)).map_err(|e| format!("{f}: {e}"));
        std::fs::write(d.join("authorized_keys"), read("client_key.pub")?).map_err(|e| e.to_string())?;
        set_mode(&d.join("authorized_keys"), 0o600)?;
        let [port, _] = free_ports()?;
        let host_key: Vec<String> = read("host_key.pub")?.split_whitespace().take(2).map(String::from).collect();
        std::fs::write(d.join("known_hosts"), format!("[127.0.0.1]:{port} {}\n", host_key.join(" ")))
            .map_err(|e| e.to_string())?;
        let user = current_user()?;
        let mut config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nPermitRootLogin prohibit-password\nAllowUsers {user}\nPidFile {d}/sshd.pid\n",
            d = d.display()
        );
        for (k, v) in env {
            config += &format!("SetEnv {k}={}\n", v.display());
        }
        std::fs::write(d.join("sshd_config"), config).map_err(|e| e.to_string())?;
        if user == "root" {
            // As root, sshd wants its privilege-separation directory (the
            // service's start-up script would make it).
            std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
        }
        let mut sshd = LocalSshd { dir, port, user, child: None };
        sshd.restart()?;
        Ok(sshd)
    }

    /// Starts sshd again (after [`LocalSshd::stop`]) on the same port with the same keys.
    pub fn restart(&mut self) -> Result<(), String> {
        let d = self.dir.path();
        let program = find_program("sshd").ok_or("sshd not found")?;
        let child = Command::new(&program)
            .arg("-D")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", program.display()))?;
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(format!("sshd exited ({status}):\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("sshd did not listen on port {}:\n{}", self.port, self.log()))
    }

    /// Stops sshd and every session it started (open connections drop).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let mut pids = descendants(child.id());
        pids.push(child.id());
        for pid in &pids {
            let _ = Command::new("kill").arg(pid.to_string()).output();
        }
        let _ = child.wait();
        // Sessions are not our children: wait until they are gone.
        let start = Instant::now();
        while pids.iter().any(|p| Path::new(&format!("/proc/{p}")).exists()) && start.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `user@127.0.0.1`.
    pub fn host(&self) -> String {
        format!("{}@127.0.0.1", self.user)
    }

    /// The ssh options a client needs: the port, the client key and the
    /// `known_hosts` with this sshd's host key.
    pub fn ssh_options(&self) -> Vec<String> {
        let d = self.dir.path().display();
        vec![
            format!("Port={}", self.port),
            format!("IdentityFile={d}/client_key"),
            format!("UserKnownHostsFile={d}/known_hosts"),
            "IdentitiesOnly=yes".to_string(),
        ]
    }

    /// A systems-file entry `[systems.NAME]` for this host (Slurm), with jobs
    /// in `rundir` there, run by `autopara_bin`.
    pub fn system_toml(&self, name: &str, rundir: &Path, autopara_bin: &Path) -> String {
        let options: Vec<String> = self.ssh_options().iter().map(|o| format!("{o:?}")).collect();
        format!(
            "[systems.{name}]\nhost = \"{}\"\nscheduler = \"slurm\"\nrundir = \"{}\"\nautopara_bin = \"{}\"\n\
             ssh_options = [{}]\n",
            self.host(),
            rundir.display(),
            autopara_bin.display(),
            options.join(", ")
        )
    }

    /// The tail of sshd's log.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for LocalSshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The processes descended from `pid` (from `/proc`).
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
        if let Some(ppid) = ppid {
            parents.push((p, ppid));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    found.remove(0);
    found
}

/// A private single-node Grid Engine (Debian's `gridengine-master`,
/// `gridengine-exec`, `gridengine-client`) in a temporary `SGE_ROOT`: its own
/// cell, BerkeleyDB spool and free ports (`SGE_QMASTER_PORT`,
/// `SGE_EXECD_PORT`), one queue `all.q` with 2 slots on `localhost` (no load
/// thresholds: the machine may be busy), a one-second scheduler interval, and
/// accounting flushed every second. Grid Engine's execd must run as root to
/// start jobs, so this needs root. Dropping it deletes its jobs and stops
/// sge_execd and sge_qmaster (and what execd started) by PID.
pub struct LocalGridEngine {
    dir: tempfile::TempDir,
    ports: [u16; 2],
    pids: Vec<u32>,
}

/// The programs a [`LocalGridEngine`] needs.
const SGE_PROGRAMS: [&str; 7] = ["sge_qmaster", "sge_execd", "qsub", "qstat", "qconf", "qdel", "qacct"];

/// Where Debian's gridengine keeps its shared files and helper programs.
const SGE_SHARE: &str = "/usr/share/gridengine";
const SGE_LIB: &str = "/usr/lib/gridengine";
const SGE_PACKAGE_ROOT: &str = "/var/lib/gridengine";

impl LocalGridEngine {
    /// Starts a cluster, or returns `None` after a loud `SKIPPED` line when
    /// Grid Engine is not installed or this is not root (a panic with
    /// `AUTOPARA_REQUIRE_REFERENCES=1`). One that does not start panics with its logs.
    pub fn start_or_skip(test: &str) -> Option<LocalGridEngine> {
        let mut missing: Vec<String> =
            SGE_PROGRAMS.iter().filter(|p| find_program(p).is_none()).map(|p| p.to_string()).collect();
        if current_user().as_deref() != Ok("root") {
            missing.push("root (Grid Engine's execd starts jobs as their owner)".into());
        }
        let packages = "gridengine-master, gridengine-exec and gridengine-client";
        if !installed_or_skip(test, "Grid Engine", &missing, packages) {
            return None;
        }
        match LocalGridEngine::start() {
            Ok(c) => Some(c),
            Err(e) => panic!("{test}: could not start a local Grid Engine: {e}"),
        }
    }

    /// Makes the cell, starts sge_qmaster, configures the host and queue,
    /// starts sge_execd and waits until the queue takes jobs.
    pub fn start() -> Result<LocalGridEngine, String> {
        let dir = tempfile::Builder::new().prefix("autopara-sge-").tempdir().map_err(|e| e.to_string())?;
        let root = dir.path().to_path_buf();
        let r = root.display().to_string();
        for d in ["bin", "lib", "utilbin", "util"] {
            std::os::unix::fs::symlink(Path::new(SGE_PACKAGE_ROOT).join(d), root.join(d))
                .map_err(|e| format!("{r}/{d}: {e}"))?;
        }
        for d in ["default/common", "spool/qmaster", "spool/execd", "spooldb", "conf", "tmp"] {
            std::fs::create_dir_all(root.join(d)).map_err(|e| format!("{r}/{d}: {e}"))?;
        }
        let write =
            |path: &str, text: String| std::fs::write(root.join(path), text).map_err(|e| format!("{path}: {e}"));
        write(
            "default/common/bootstrap",
            format!(
                "admin_user none\ndefault_domain none\nignore_fqdn true\nspooling_method berkeleydb\n\
                 spooling_lib libspoolb\nspooling_params {r}/spooldb\nbinary_path {SGE_LIB}\n\
                 qmaster_spool_dir {r}/spool/qmaster\nsecurity_mode none\nlistener_threads 2\n\
                 worker_threads 2\nscheduler_threads 1\n"
            ),
        )?;
        write("default/common/act_qmaster", "localhost\n".into())?;
        // The host's own name and localhost are one host for Grid Engine.
        let host = Command::new("hostname").output().map_err(|e| format!("hostname: {e}"))?;
        write("default/common/host_aliases", format!("localhost {}\n", String::from_utf8_lossy(&host.stdout).trim()))?;
        let defaults = std::fs::read_to_string(format!("{SGE_SHARE}/default-configuration"))
            .map_err(|e| format!("{SGE_SHARE}/default-configuration: {e}"))?;
        let conf: String = defaults
            .lines()
            .map(|l| match l.split_whitespace().next() {
                Some("execd_spool_dir") => format!("execd_spool_dir {r}/spool/execd"),
                Some("min_uid") => "min_uid 0".into(),
                Some("min_gid") => "min_gid 0".into(),
                Some("load_report_time") => "load_report_time 00:00:02".into(),
                Some("mailer") => "mailer /bin/true".into(),
                Some("reporting_params") => {
                    "reporting_params accounting=true reporting=false flush_time=00:00:01 joblog=false \
                     sharelog=00:00:00"
                        .into()
                }
                _ => l.to_string(),
            })
            .map(|l| l + "\n")
            .collect();
        write("conf/global", conf)?;
        let mut cluster = LocalGridEngine { dir, ports: free_ports()?, pids: Vec::new() };
        let resources = format!("{SGE_SHARE}/util/resources");
        cluster.run(&format!("{SGE_LIB}/spoolinit"), &["berkeleydb", "libspoolb", &format!("{r}/spooldb"), "init"])?;
        cluster.run(&format!("{SGE_LIB}/spooldefaults"), &["configuration", &format!("{r}/conf/global")])?;
        cluster.run(&format!("{SGE_LIB}/spooldefaults"), &["complexes", &format!("{resources}/centry")])?;
        cluster.run(&format!("{SGE_LIB}/spooldefaults"), &["usersets", &format!("{resources}/usersets")])?;
        cluster.run(&format!("{SGE_LIB}/spooldefaults"), &["managers", "root"])?;
        cluster.daemon("sge_qmaster", &format!("{r}/spool/qmaster/qmaster.pid"))?;
        cluster.wait_for(|c| c.run("qstat", &[]).is_ok(), "sge_qmaster to answer")?;
        write(
            "conf/host",
            "hostname localhost\nload_scaling NONE\ncomplex_values NONE\nuser_lists NONE\nxuser_lists NONE\n\
             projects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n"
                .into(),
        )?;
        write(
            "conf/smp",
            "pe_name smp\nslots 2\nuser_lists NONE\nxuser_lists NONE\nstart_proc_args NONE\nstop_proc_args NONE\n\
             allocation_rule $pe_slots\ncontrol_slaves FALSE\njob_is_first_task TRUE\nurgency_slots min\n\
             accounting_summary FALSE\nqsort_args NONE\n"
                .into(),
        )?;
        let edit = |text: String, changes: &[(&str, &str)]| -> String {
            text.lines()
                .map(|l| {
                    let key = l.split_whitespace().next().unwrap_or("");
                    changes.iter().find(|(k, _)| *k == key).map_or(l.to_string(), |(k, v)| format!("{k} {v}")) + "\n"
                })
                .collect()
        };
        let queue = edit(
            cluster.run("qconf", &["-sq"])?,
            &[
                ("qname", "all.q"),
                ("hostlist", "localhost"),
                ("load_thresholds", "NONE"),
                ("slots", "2"),
                ("shell", "/bin/bash"),
                ("shell_start_mode", "unix_behavior"),
                ("pe_list", "smp"),
                ("tmpdir", &format!("{r}/tmp")),
            ],
        );
        write("conf/all.q", queue)?;
        let scheduler = edit(
            cluster.run("qconf", &["-ssconf"])?,
            &[("schedule_interval", "0:0:1"), ("flush_submit_sec", "1"), ("flush_finish_sec", "1")],
        );
        write("conf/scheduler", scheduler)?;
        cluster.run("qconf", &["-as", "localhost"])?;
        cluster.run("qconf", &["-Ae", &format!("{r}/conf/host")])?;
        cluster.run("qconf", &["-Ap", &format!("{r}/conf/smp")])?;
        cluster.run("qconf", &["-Aq", &format!("{r}/conf/all.q")])?;
        cluster.run("qconf", &["-Msconf", &format!("{r}/conf/scheduler")])?;
        cluster.daemon("sge_execd", &format!("{r}/spool/execd/localhost/execd.pid"))?;
        // Ready when the queue instance is known (not in state `u`).
        cluster.wait_for(
            |c| {
                c.run("qstat", &["-f"]).is_ok_and(|out| out.contains("all.q@localhost"))
                    && c.run("qstat", &["-f", "-qs", "u"]).is_ok_and(|out| !out.contains("all.q@localhost"))
            },
            "the execution host to report",
        )?;
        Ok(cluster)
    }

    /// The environment Grid Engine's commands need to reach this cluster.
    pub fn envs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SGE_ROOT", self.dir.path().display().to_string()),
            ("SGE_CELL", "default".into()),
            ("SGE_QMASTER_PORT", self.ports[0].to_string()),
            ("SGE_EXECD_PORT", self.ports[1].to_string()),
        ]
    }

    /// The cluster's jobs (`qstat -xml`), by id.
    pub fn jobs(&self) -> Result<HashMap<String, QueuedJob>, String> {
        let out = self.run("sh", &["-c", &crate::sge::Sge.list_command()])?;
        Ok(crate::sge::Sge.parse_list(&out))
    }

    /// Cancels job `id` (`qdel`).
    pub fn cancel(&self, id: &str) -> Result<(), String> {
        self.run("qdel", &[id]).map(|_| ())
    }

    /// The tails of the daemons' logs, for error messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for file in ["spool/qmaster/messages", "spool/execd/localhost/messages"] {
            let text = std::fs::read_to_string(self.dir.path().join(file)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            s.push_str(&format!("--- {file}\n{}\n", lines[lines.len().saturating_sub(15)..].join("\n")));
        }
        s
    }

    /// Runs `program` with the cluster's environment; its stdout, or an error with its stderr.
    fn run(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new(program).args(args).envs(self.envs()).output().map_err(|e| format!("{program}: {e}"))?;
        if !out.status.success() {
            return Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts a daemon (it forks into the background) and records its PID.
    fn daemon(&mut self, name: &str, pid_file: &str) -> Result<(), String> {
        let program = find_program(name).ok_or_else(|| format!("{name} not found"))?;
        let status = Command::new(&program)
            .envs(self.envs())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("{}: {e}", program.display()))?;
        if !status.success() {
            return Err(format!("{name} exited with {status}\n{}", self.logs()));
        }
        self.wait_for(|_| Path::new(pid_file).exists(), &format!("{name}'s pid file"))?;
        let pid = std::fs::read_to_string(pid_file).map_err(|e| format!("{pid_file}: {e}"))?;
        self.pids.push(pid.trim().parse().map_err(|_| format!("{pid_file}: {pid:?} is not a PID"))?);
        Ok(())
    }

    /// Waits up to 30 s for `ready`; on timeout returns an error with the logs.
    fn wait_for(&self, ready: impl Fn(&LocalGridEngine) -> bool, what: &str) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if ready(self) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("timed out waiting for {what}\n{}", self.logs()))
    }
}

impl Drop for LocalGridEngine {
    fn drop(&mut self) {
        if self.pids.len() == 2 {
            let _ = self.run("qdel", &["-u", "root"]);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) && self.jobs().is_ok_and(|j| !j.is_empty()) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // execd (and anything it still runs), then qmaster: SIGTERM, then SIGKILL after 5 s.
        while let Some(pid) = self.pids.pop() {
            let mut all = descendants(pid);
            all.push(pid);
            for p in &all {
                let _ = Command::new("kill").arg(p.to_string()).output();
            }
            let start = Instant::now();
            while all.iter().any(|p| Path::new(&format!("/proc/{p}")).exists()) {
                if start.elapsed() > Duration::from_secs(5) {
                    for p in &all {
                        let _ = Command::new("kill").args(["-9", &p.to_string()]).output();
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
