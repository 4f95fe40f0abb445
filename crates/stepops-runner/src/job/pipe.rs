//! A wider pipe for a step's output: Linux gives a pipe 64 KiB, so a step printing fast stops
//! at every 64 KiB until the runner has read them. At 1 MiB the step runs on while the runner
//! writes the log, and each read takes up to 1 MiB.
//!
//! This module uses `unsafe` for one call: `fcntl(fd, F_SETPIPE_SZ, size)`, which has no safe
//! equivalent in std or tokio. It takes a descriptor the caller owns and an integer, and
//! touches no memory.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

/// The size asked for (Linux's default limit for an unprivileged process, `pipe-max-size`).
pub const PIPE_BYTES: i32 = 1024 * 1024;

/// Asks for a pipe of [`PIPE_BYTES`]; false (the pipe keeps its size) where the system refuses.
pub fn widen(pipe: &impl AsRawFd) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: fcntl(2) on a descriptor owned by `pipe`, with an integer argument.
        unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES) >= 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pipe;
        false
    }
}
