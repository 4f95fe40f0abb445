//! One step's process: started in a process group of its own with exactly the environment it
//! is given, stdout and stderr read line by line (masked) into the step's log file, the
//! runner's log (`stepops_job` lines), CloudWatch Logs when configured ([`super::ship`]) and a
//! bounded tail; stopped as a group (TERM, grace,
//! KILL) at its timeout, and by [`GroupGuard`] when the step's future is dropped. Memory stays
//! bounded whatever the output: lines are read from 1 MiB pipes ([`super::pipe`]) in reads of
//! at most 1 MiB, pieces of at most [`MAX_LINE_BYTES`], through a bounded channel. The log
//! file is written by a thread of its own with plain writes, one per batch (an async file
//! would hand every write to the blocking pool and wait for it: a round trip per read).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::group::{GroupGuard, signal_group, stop_group_in_background};
use super::mask::{LineSplitter, Masker};
use super::ship::Shipper;

/// The longest line kept whole; longer ones are logged in pieces.
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

/// The process could not be started (no such program, not executable).
#[derive(Debug)]
pub struct SpawnError(pub String);

/// Runs `spec` to its end (or its timeout). Dropping the future stops the process group.
pub async fn run_process(spec: ProcessSpec) -> Result<ProcessOutcome, SpawnError> {
    let log = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log_path)
        .await
        .map_err(|e| {
            SpawnError(format!(
                "cannot open the log {}: {e}",
                spec.log_path.display()
            ))
        })?
        .into_std()
        .await;
    // Each batch is one read (up to 1 MiB): 8 of them bound what waits for the writer.
    let (tx, rx) = mpsc::channel::<(&'static str, Vec<u8>)>(8);
    // The log's writer, a thread of its own (not the blocking pool: it lives as long as the
    // step), started before the process so that no process runs with nobody to read it.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (label, execution) = (spec.label.clone(), spec.execution.clone());
    let ship = spec.ship;
    std::thread::Builder::new()
        .name("stepops-job-output".into())
        .spawn(move || {
            let _ = done_tx.send(write_output(rx, log, ship, &label, &execution));
        })
        .map_err(|e| {
            SpawnError(format!(
                "cannot start the thread that writes the step's log: {e}"
            ))
        })?;
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

    let mut readers = Vec::new();
    for widened in [
        child.stdout.as_ref().map(super::pipe::widen),
        child.stderr.as_ref().map(super::pipe::widen),
    ] {
        if widened == Some(false) {
            tracing::debug!(job = %spec.label, "the output pipe keeps its size");
        }
    }
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(read_stream(
            out,
            "stdout",
            spec.masker.clone(),
            tx.clone(),
        )));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(read_stream(
            err,
            "stderr",
            spec.masker.clone(),
            tx.clone(),
        )));
    }
    drop(tx);

    let supervise = async {
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
        let aborts: Vec<_> = readers.iter().map(|r| r.abort_handle()).collect();
        let drained = tokio::time::timeout(DRAIN_OUTPUT, async {
            for r in readers {
                let _ = r.await;
            }
        })
        .await;
        if drained.is_err() {
            warn!(job = %spec.label, "output still open after the process ended (a process outside its group holds it): stopped reading");
            aborts.iter().for_each(|a| a.abort());
        }
        (status, timed_out)
    };
    let sink = async move {
        match done_rx.await {
            Ok(w) => {
                if let Some(ship) = w.ship {
                    ship.finish(SHIP_LAST_LINES).await;
                }
                (w.tail, w.lines, w.bytes)
            }
            Err(_) => (Vec::new(), 0, 0),
        }
    };
    let ((status, timed_out), (tail, lines, bytes)) = tokio::join!(supervise, sink);
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

async fn read_stream(
    mut pipe: impl AsyncRead + Unpin,
    stream: &'static str,
    masker: Masker,
    tx: mpsc::Sender<(&'static str, Vec<u8>)>,
) {
    let mut splitter = LineSplitter::new(masker, MAX_LINE_BYTES);
    let mut buf = vec![0u8; super::pipe::PIPE_BYTES as usize];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut lines = Vec::with_capacity(n + 64);
        splitter.push(&buf[..n], &mut lines);
        if !lines.is_empty() && tx.send((stream, lines)).await.is_err() {
            return;
        }
    }
    let mut last = Vec::new();
    splitter.finish(&mut last);
    if !last.is_empty() {
        let _ = tx.send((stream, last)).await;
    }
}

/// What [`write_output`] leaves: the masked tail, the counts, and the shipping to finish.
struct Written {
    tail: Vec<String>,
    lines: u64,
    bytes: u64,
    ship: Option<Shipper>,
}

/// Writes each batch of masked lines to the log file (and, when the runner logs at `info`, to
/// its log line by line), keeping the last [`TAIL_LINES`]. Blocking: runs on a thread of its
/// own until every reader has ended (or the readers are aborted). Each batch is one plain
/// write, so whenever the output is caught up, the log file is too.
fn write_output(
    mut rx: mpsc::Receiver<(&'static str, Vec<u8>)>,
    mut log: std::fs::File,
    mut ship: Option<Shipper>,
    label: &str,
    execution: &str,
) -> Written {
    let mut tail = Tail::default();
    let (mut lines, mut bytes) = (0u64, 0u64);
    let mut log_ok = true;
    while let Some((stream, batch)) = rx.blocking_recv() {
        bytes += batch.len() as u64;
        let body = batch.strip_suffix(b"\n").unwrap_or(&batch);
        lines += memchr::memchr_iter(b'\n', body).count() as u64 + 1;
        if tracing::enabled!(target: "stepops_job", tracing::Level::INFO) {
            for line in body.split(|b| *b == b'\n') {
                info!(target: "stepops_job", job = %label, execution = %execution, stream, line = %String::from_utf8_lossy(line));
            }
        }
        tail.keep(&batch);
        if let Some(ship) = &mut ship {
            ship.offer(&batch);
        }
        if log_ok && let Err(e) = log.write_all(&batch) {
            warn!(job = %label, error = %e, "cannot write the step's log; output goes to the runner's log only");
            log_ok = false;
        }
    }
    Written {
        tail: tail.lines(),
        lines,
        bytes,
        ship,
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

    #[test]
    fn a_tail_line_is_cut_to_its_character_limit() {
        let mut tail = Tail::default();
        let long = format!("{}\n", "é".repeat(TAIL_LINE_CHARS * 3));
        tail.keep(long.as_bytes());
        assert_eq!(tail.lines()[0].chars().count(), TAIL_LINE_CHARS);
    }
}
