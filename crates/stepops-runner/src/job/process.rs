//! One step's process: started in a process group of its own with exactly the environment it
//! is given, stdout and stderr read line by line (masked) into the step's log file, the
//! runner's log (`stepops_job` lines), CloudWatch Logs when configured ([`super::ship`]) and a
//! bounded tail; stopped as a group (TERM, grace, KILL) at its timeout, and by [`GroupGuard`]
//! when the step's future is dropped. Each stream is read by a thread of its own that writes
//! what it reads with plain writes (an async file would hand every write to the blocking pool
//! and wait for it), a read's complete lines written straight from the read buffer when there
//! is nothing to mask. Memory stays bounded whatever the output: reads of at most 1 MiB from
//! 1 MiB pipes ([`super::pipe`]), unfinished lines carried in pieces of at most
//! [`MAX_LINE_BYTES`].

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::group::{GroupGuard, signal_group, stop_group_in_background};
use super::mask::{LineSplitter, Masker};
use super::ship::Shipper;

/// The longest unfinished line carried from one read to the next; beyond it, the line is
/// logged in pieces (a complete line within one read, up to 1 MiB, is logged whole).
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Lines kept for the step's output or failure cause.
pub const TAIL_LINES: usize = 40;
/// Characters kept of each tail line.
pub const TAIL_LINE_CHARS: usize = 400;
/// How long the last lines may take to reach CloudWatch Logs after the process ended.
const SHIP_LAST_LINES: Duration = Duration::from_secs(10);
/// How long output still being read is awaited after the group ended.
const DRAIN_OUTPUT: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Debug)]
pub struct ProcessSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// The whole environment (nothing is inherited).
    pub env: BTreeMap<String, String>,
    /// The working directory.
    pub dir: PathBuf,
    /// When the group is stopped.
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// The step's log file (created or appended to).
    pub log_path: PathBuf,
    /// The secret values to mask.
    pub masker: Masker,
    /// `job/step` for the runner's log lines.
    pub label: String,
    /// The execution's key (`MACHINE/NAME`), on each output line of the runner's log.
    pub execution: String,
    /// When the task arrived (start latency is measured from it).
    pub arrived: Instant,
    /// Where the masked output is also shipped (CloudWatch Logs), if anywhere.
    pub ship: Option<Shipper>,
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

/// What a finished process did.
#[derive(Debug)]
pub struct ProcessOutcome {
    /// How it ended.
    pub exit: Exit,
    /// Whether the runner stopped it at its timeout.
    pub timed_out: bool,
    /// Its last lines, masked.
    pub tail: Vec<String>,
    /// Lines written (stdout and stderr).
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// From the task's arrival ([`ProcessSpec::arrived`]) to the process's start.
    pub start_latency: Duration,
    /// How long it ran.
    pub duration: Duration,
}

/// The process could not be started (no such program, not executable), or its output could
/// not be read (then the process, if it had started, was stopped as a group at once).
#[derive(Debug)]
pub struct SpawnError(pub String);

/// Runs `spec` to its end (or its timeout). Dropping the future stops the process group.
pub async fn run_process(spec: ProcessSpec) -> Result<ProcessOutcome, SpawnError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log_path)
        .map_err(|e| {
            SpawnError(format!(
                "cannot open the log {}: {e}",
                spec.log_path.display()
            ))
        })?;
    let sink = Arc::new(Mutex::new(Sink {
        log,
        log_ok: true,
        tail: Tail::default(),
        lines: 0,
        bytes: 0,
        ship: spec.ship,
        label: spec.label.clone(),
        execution: spec.execution.clone(),
    }));
    let mut cmd = tokio::process::Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .env_clear()
        .envs(&spec.env)
        .current_dir(&spec.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| SpawnError(format!("cannot start `{}`: {e}", spec.argv[0])))?;
    let start_latency = spec.arrived.elapsed();
    let started = Instant::now();
    let pgid = child.id().unwrap_or(0);
    let mut guard = GroupGuard::new(pgid, spec.grace);
    info!(job = %spec.label, pid = pgid, latency_us = start_latency.as_micros() as u64, "job process started");

    // Each stream is read by a thread of its own (not the blocking pool: it lives as long as
    // the step), which masks and writes what it reads, so a read's bytes are written while
    // they are still in that core's cache, without a hop to another thread.
    let stop = StopOnDrop::default();
    let mut readers = Vec::new();
    let pipes = [
        ("stdout", child.stdout.take().map(|p| p.into_owned_fd())),
        ("stderr", child.stderr.take().map(|p| p.into_owned_fd())),
    ];
    for (stream, pipe) in pipes {
        let Some(pipe) = pipe else { continue };
        let pipe = pipe.map_err(|e| SpawnError(format!("cannot read the step's {stream}: {e}")))?;
        if !super::pipe::widen(&pipe) {
            tracing::debug!(job = %spec.label, stream, "the output pipe keeps its size");
        }
        super::pipe::set_nonblocking(&pipe)
            .map_err(|e| SpawnError(format!("cannot read the step's {stream}: {e}")))?;
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let (masker, sink, stop) = (spec.masker.clone(), sink.clone(), stop.0.clone());
        std::thread::Builder::new()
            .name(format!("stepops-job-{stream}"))
            .spawn(move || {
                read_stream(std::fs::File::from(pipe), stream, masker, &sink, &stop);
                let _ = done_tx.send(());
            })
            .map_err(|e| {
                SpawnError(format!(
                    "cannot start the thread that reads the step's {stream}: {e}"
                ))
            })?;
        readers.push(done_rx);
    }

    let mut timed_out = false;
    let status = tokio::select! {
        s = child.wait() => s,
        _ = tokio::time::sleep(spec.timeout) => {
            timed_out = true;
            warn!(job = %spec.label, timeout_s = spec.timeout.as_secs(), "job step timed out: SIGTERM to its process group");
            signal_group(pgid, libc::SIGTERM);
            match tokio::time::timeout(spec.grace, child.wait()).await {
                Ok(s) => s,
                Err(_) => {
                    warn!(job = %spec.label, "still running after the grace period: SIGKILL to its process group");
                    signal_group(pgid, libc::SIGKILL);
                    child.wait().await
                }
            }
        }
    };
    // Whatever the leader left behind in its group goes too (as CI systems end a job).
    if timed_out {
        signal_group(pgid, libc::SIGKILL);
    } else {
        stop_group_in_background(pgid, spec.grace);
    }
    guard.disarm();
    if tokio::time::timeout(DRAIN_OUTPUT, all_done(&mut readers))
        .await
        .is_err()
    {
        warn!(job = %spec.label, "output still open after the process ended (a process outside its group holds it): stopped reading");
        // The readers notice within STOP_CHECK; what they read until then is still counted.
        drop(stop);
        let _ = tokio::time::timeout(STOP_CHECK * 3, all_done(&mut readers)).await;
    }
    let (tail, lines, bytes, ship) = {
        let mut sink = sink.lock().unwrap_or_else(PoisonError::into_inner);
        (sink.tail.lines(), sink.lines, sink.bytes, sink.ship.take())
    };
    if let Some(ship) = ship {
        ship.finish(SHIP_LAST_LINES).await;
    }
    let exit = match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Code(-1),
        },
        Err(e) => {
            warn!(job = %spec.label, error = %e, "cannot wait for the job process");
            Exit::Code(-1)
        }
    };
    Ok(ProcessOutcome {
        exit,
        timed_out,
        tail,
        lines,
        bytes,
        start_latency,
        duration: started.elapsed(),
    })
}

/// Waits for each reader to say it is done (a reader's channel is dropped once awaited).
async fn all_done(readers: &mut Vec<tokio::sync::oneshot::Receiver<()>>) {
    while let Some(r) = readers.last_mut() {
        let _ = r.await;
        readers.pop();
    }
}

/// How often a reader with nothing to read checks whether it is asked to stop.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Asks the readers to stop when dropped: at the step's end, and when its future is dropped
/// (a process outside the group may hold the pipes open).
#[derive(Default)]
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Reads one stream to its end (or until `stop`), in reads of up to the pipe's size, handing
/// the masked lines to the sink. Blocking: runs on a thread of its own.
fn read_stream(
    mut pipe: std::fs::File,
    stream: &'static str,
    masker: Masker,
    sink: &Mutex<Sink>,
    stop: &AtomicBool,
) {
    let mut splitter = LineSplitter::new(masker, MAX_LINE_BYTES);
    let mut buf = vec![0u8; super::pipe::PIPE_BYTES];
    let mut scratch = Vec::new();
    let mut emit = |batch: &[u8]| {
        sink.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(stream, batch)
    };
    while !stop.load(Ordering::Relaxed) {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => splitter.feed(&buf[..n], &mut scratch, &mut emit),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                super::pipe::wait_readable(&pipe, STOP_CHECK)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let label = sink.lock().map(|s| s.label.clone()).unwrap_or_default();
                warn!(job = %label, stream, error = %e, "cannot read the step's output: stopped reading it");
                break;
            }
        }
    }
    splitter.finish(&mut scratch);
    if !scratch.is_empty() {
        emit(&scratch);
    }
}

/// Where both streams' masked lines go: the step's log file (one plain write per batch, so
/// whenever the output is caught up, the log file is too), the runner's log line by line when
/// it logs at `info`, CloudWatch Logs when configured, and the last [`TAIL_LINES`].
struct Sink {
    log: std::fs::File,
    log_ok: bool,
    tail: Tail,
    lines: u64,
    bytes: u64,
    ship: Option<Shipper>,
    label: String,
    execution: String,
}

impl Sink {
    /// Takes one batch of complete lines, each ending in `\n`.
    fn write(&mut self, stream: &'static str, batch: &[u8]) {
        self.bytes += batch.len() as u64;
        let body = batch.strip_suffix(b"\n").unwrap_or(batch);
        self.lines += memchr::memchr_iter(b'\n', body).count() as u64 + 1;
        if tracing::enabled!(target: "stepops_job", tracing::Level::INFO) {
            for line in body.split(|b| *b == b'\n') {
                info!(target: "stepops_job", job = %self.label, execution = %self.execution, stream, line = %String::from_utf8_lossy(line));
            }
        }
        self.tail.keep(batch);
        if let Some(ship) = &mut self.ship {
            ship.offer(batch);
        }
        if self.log_ok
            && let Err(e) = self.log.write_all(batch)
        {
            warn!(job = %self.label, error = %e, "cannot write the step's log; output goes to the runner's log only");
            self.log_ok = false;
        }
    }
}

/// The last [`TAIL_LINES`] lines of the output, as bytes (each line with its `\n`): kept
/// without an allocation per batch, since a step printing fast sends thousands of batches.
#[derive(Debug, Default)]
struct Tail {
    buf: Vec<u8>,
}

impl Tail {
    /// Keeps the last lines of `batch` (complete lines, each ending in `\n`).
    fn keep(&mut self, batch: &[u8]) {
        let Some(body) = batch.strip_suffix(b"\n") else {
            return;
        };
        // Where the batch's own last TAIL_LINES lines start.
        match memchr::memrchr_iter(b'\n', body).nth(TAIL_LINES - 1) {
            Some(nl) => {
                self.buf.clear();
                self.buf.extend_from_slice(&batch[nl + 1..]);
            }
            None => {
                self.buf.extend_from_slice(batch);
                let kept = &self.buf[..self.buf.len() - 1];
                if let Some(nl) = memchr::memrchr_iter(b'\n', kept).nth(TAIL_LINES - 1) {
                    self.buf.drain(..=nl);
                }
            }
        }
    }

    /// The lines, each cut to [`TAIL_LINE_CHARS`] characters.
    fn lines(&self) -> Vec<String> {
        if self.buf.is_empty() {
            return Vec::new();
        }
        let body = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        body.split(|b| *b == b'\n')
            .map(|l| {
                String::from_utf8_lossy(&l[..l.len().min(TAIL_LINE_CHARS * 4)])
                    .chars()
                    .take(TAIL_LINE_CHARS)
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: std::ops::Range<usize>) -> Vec<u8> {
        n.map(|i| format!("line {i}\n"))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn the_tail_holds_the_last_lines_whatever_the_batches() {
        for batch in [1, 3, TAIL_LINES - 1, TAIL_LINES, TAIL_LINES + 7, 500] {
            let mut tail = Tail::default();
            let mut at = 0;
            while at < 1000 {
                tail.keep(&lines(at..(at + batch).min(1000)));
                at += batch;
            }
            let want: Vec<String> = (1000 - TAIL_LINES..1000)
                .map(|i| format!("line {i}"))
                .collect();
            assert_eq!(tail.lines(), want, "batches of {batch} lines");
        }
        let mut short = Tail::default();
        short.keep(b"one\n");
        short.keep(b"\n");
        short.keep(b"two\n");
        assert_eq!(short.lines(), ["one", "", "two"]);
        assert!(Tail::default().lines().is_empty());
    }

    fn spec(script: &str, dir: &std::path::Path) -> ProcessSpec {
        ProcessSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: BTreeMap::from([("PATH".into(), std::env::var("PATH").unwrap_or_default())]),
            dir: dir.to_owned(),
            timeout: Duration::from_secs(60),
            grace: Duration::from_secs(1),
            log_path: dir.join("step.log"),
            masker: Masker::new(["hunter2"]),
            label: "test/step".into(),
            execution: "machine/name".into(),
            arrived: Instant::now(),
            ship: None,
        }
    }

    /// Both streams reach the log, masked, each line whole; the counts and the tail agree.
    #[tokio::test]
    async fn both_streams_are_logged_masked_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let script = "i=0; while [ $i -lt 500 ]; do echo \"out $i hunter2\"; echo \"err $i\" >&2; \
                      i=$((i+1)); done; printf 'no newline at the end'";
        let outcome = run_process(spec(script, dir.path())).await.unwrap();
        assert_eq!(outcome.exit, Exit::Code(0));
        assert_eq!(outcome.lines, 1001);
        let log = std::fs::read_to_string(dir.path().join("step.log")).unwrap();
        assert_eq!(log.len() as u64, outcome.bytes);
        assert!(!log.contains("hunter2"));
        let mut logged: Vec<&str> = log.lines().collect();
        assert_eq!(logged.len(), 1001);
        logged.sort();
        let mut want: Vec<String> = (0..500)
            .flat_map(|i| [format!("out {i} ***"), format!("err {i}")])
            .chain(["no newline at the end".to_owned()])
            .collect();
        want.sort();
        assert_eq!(logged, want);
        // The tail is the log's last lines, in the order they were written.
        let last: Vec<&str> = log.lines().skip(1001 - TAIL_LINES).collect();
        assert_eq!(outcome.tail, last);
    }

    /// A process that left the group (`setsid`) and keeps the output open does not hold the
    /// step: reading stops a few seconds after the group ended, with what was read kept.
    #[tokio::test]
    async fn output_held_open_outside_the_group_stops_being_read() {
        let dir = tempfile::tempdir().unwrap();
        // The daemon writes its pid once it has left the group; the step waits for that.
        let script = "setsid sh -c 'echo $$ > daemon.tmp; mv daemon.tmp daemon.pid; exec sleep 60' & \
                      while [ ! -e daemon.pid ]; do sleep 0.01; done; echo done";
        let outcome = run_process(spec(script, dir.path()));
        let outcome = tokio::time::timeout(DRAIN_OUTPUT + Duration::from_secs(5), outcome).await;
        let pid = std::fs::read_to_string(dir.path().join("daemon.pid")).unwrap();
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        let outcome = outcome
            .expect("the step ends although its output is still open")
            .unwrap();
        assert_eq!(outcome.exit, Exit::Code(0));
        assert_eq!(outcome.tail, ["done"]);
        assert!(outcome.duration >= DRAIN_OUTPUT, "{:?}", outcome.duration);
    }

    #[test]
    fn a_tail_line_is_cut_to_its_character_limit() {
        let mut tail = Tail::default();
        let long = format!("{}\n", "é".repeat(TAIL_LINE_CHARS * 3));
        tail.keep(long.as_bytes());
        assert_eq!(tail.lines()[0].chars().count(), TAIL_LINE_CHARS);
    }
}
