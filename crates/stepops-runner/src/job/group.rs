//! Signals to a job's whole process group, and the guard that stops the group when a step's
//! future is dropped (a refused heartbeat, a drain that ran out of time).
//!
//! This module uses `unsafe` for one call: `libc::kill(-pgid, sig)`, which has no safe
//! equivalent in std or tokio (they signal one process, not a group). It takes plain integers
//! and touches no memory.
#![allow(unsafe_code)]

use std::time::Duration;

/// Sends `signal` to every process of group `pgid`; false when the group is gone.
pub fn signal_group(pgid: u32, signal: i32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe { libc::kill(-pgid, signal) == 0 }
}

/// SIGTERM to the group, then SIGKILL after `grace` (on a thread of its own, so that it
/// happens even while the runtime shuts down).
pub fn stop_group_in_background(pgid: u32, grace: Duration) {
    if !signal_group(pgid, libc::SIGTERM) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("stepops-job-kill".into())
        .spawn(move || {
            std::thread::sleep(grace);
            signal_group(pgid, libc::SIGKILL);
        });
    if spawned.is_err() {
        signal_group(pgid, libc::SIGKILL);
    }
}

/// Stops the group (TERM, grace, KILL) when dropped, unless disarmed.
#[derive(Debug)]
pub struct GroupGuard {
    pgid: u32,
    grace: Duration,
    armed: bool,
}

impl GroupGuard {
    /// A guard over group `pgid`.
    pub fn new(pgid: u32, grace: Duration) -> GroupGuard {
        GroupGuard {
            pgid,
            grace,
            armed: true,
        }
    }

    /// The step ended and cleaned up itself.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            tracing::warn!(
                pgid = self.pgid,
                "job step abandoned while running: stopping its process group"
            );
            stop_group_in_background(self.pgid, self.grace);
        }
    }
}
