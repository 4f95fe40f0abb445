//! Running one tool as a child process and measuring it: wall time, the child's CPU time and
//! peak resident memory (`wait4`'s `ru_utime`, `ru_stime` and `ru_maxrss`), with its stdout
//! kept and its stderr in a log file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};

/// One measured child process.
pub struct Run {
    /// Wall time.
    pub seconds: f64,
    /// CPU time of the child (user and system, its own children included): steadier than
    /// wall time on a shared machine.
    pub cpu_seconds: f64,
    /// Peak resident memory of the child, in KiB.
    pub max_rss_kb: i64,
    /// Whether it exited 0.
    pub ok: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub log: PathBuf,
}

/// Runs `cmd` to completion (stdout to a file we return, stderr to `log`), measuring wall time
/// and the child's CPU time and peak resident memory (`wait4`).
#[allow(unsafe_code)] // wait4: the only way to read a child's peak memory (ru_maxrss).
pub fn measure(mut cmd: Command, log: &Path) -> anyhow::Result<Run> {
    let out_path = log.with_extension("out");
    let out = std::fs::File::create(&out_path)?;
    let err = std::fs::File::create(log)?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let started = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child, which we reap here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if rc != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let seconds = started.elapsed().as_secs_f64();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let time = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Run {
        seconds,
        cpu_seconds: time(usage.ru_utime) + time(usage.ru_stime),
        max_rss_kb: usage.ru_maxrss,
        ok,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        log: log.to_path_buf(),
    })
}

/// The last `lines` lines of the file at `path`.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether `name` is an executable file on `PATH`.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}
