//! The one wrapper the tests run an `egx-pipeline` process through: its log kept in a
//! file, its peak resident memory sampled, and the ways a process ends (it exits, SIGTERM,
//! `kill -9`). A process the test forgets is killed when the wrapper is dropped, so a
//! failed assertion never leaves a consumer behind in a shared group.

use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often a process's high-water mark is read: often enough to catch its last value
/// before the process ends, cheap enough (one small `/proc` read) not to compete with it.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// The highest resident memory of every process it watched, in KiB.
#[derive(Debug, Clone, Default)]
pub struct Peak(Arc<AtomicU64>);

impl Peak {
    /// The peak in MiB.
    pub fn mib(&self) -> f64 {
        self.0.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM:`, `VmRSS:`); None once the process is gone.
pub fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One `egx-pipeline` process with its log kept in a file and its peak memory sampled.
pub struct Proc {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Proc {
    /// Starts the binary with `--config config`, `args` and extra environment variables.
    pub fn spawn(config: &Path, args: &[&str], env: &[(&str, String)], peak: &Peak) -> Self {
        let log =
            tempfile::Builder::new().prefix("egx-process-").suffix(".log").tempfile().expect("log file");
        let mut cmd = super::binary();
        cmd.arg("--config").arg(config).args(args).stdout(Stdio::null()).stderr(log.reopen().expect("log"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("egx-pipeline starts");
        let (pid, peak) = (child.id(), peak.0.clone());
        // VmHWM is the process's own high-water mark, so a sample misses nothing that
        // happened between samples; only the last few milliseconds before it ends.
        std::thread::spawn(move || {
            while let Some(kib) = proc_kib(pid, "VmHWM:") {
                peak.fetch_max(kib, Ordering::Relaxed);
                std::thread::sleep(SAMPLE_EVERY);
            }
        });
        Self { child, log }
    }

    /// Starts the binary like [`Proc::spawn`], when its memory is not of interest.
    pub fn start(config: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        Self::spawn(config, args, env, &Peak::default())
    }

    /// SIGHUP: re-reads the symbol list; the process keeps running.
    pub fn hangup(&self) {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill").args(["-HUP", &pid]).status().expect("kill runs");
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&mut self, signal: &str) -> ExitStatus {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill").args([signal, &pid]).status().expect("kill runs");
        self.child.wait().expect("process ends")
    }

    /// `kill -9`: no drain, no commit, no goodbye. Returns its exit status.
    pub fn kill9(&mut self) -> ExitStatus {
        self.signal("-KILL")
    }

    /// True while it has not ended.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM: drains, commits and leaves the group; returns its exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("-TERM")
    }

    /// Waits for it to end by itself.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().expect("process ends")
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
