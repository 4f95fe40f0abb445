//! A step's output pipes, read by a thread of their own: widened to 1 MiB (Linux gives a pipe
//! 64 KiB, so a step printing fast would stop at every 64 KiB until the runner has read them;
//! at 1 MiB it runs on while the runner writes the log), and read without blocking, so that a
//! reader can notice that it is asked to stop even when nothing comes.
//!
//! This module uses `unsafe` for three calls with no safe equivalent in std or tokio:
//! `fcntl(F_SETPIPE_SZ)`, `fcntl(F_GETFL/F_SETFL)` and `poll`. Each takes a descriptor the
//! caller owns and integers (poll: one `pollfd` on the stack), and touches no other memory.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;
use std::time::Duration;

/// The size asked for (Linux's default limit for an unprivileged process, `pipe-max-size`).
pub const PIPE_BYTES: usize = 1024 * 1024;

/// Asks for a pipe of [`PIPE_BYTES`]; false (the pipe keeps its size) where the system refuses.
pub fn widen(pipe: &impl AsRawFd) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: fcntl(2) on a descriptor owned by `pipe`, with an integer argument.
        unsafe {
            libc::fcntl(
                pipe.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                PIPE_BYTES as libc::c_int,
            ) >= 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pipe;
        false
    }
}

/// Makes reads of `pipe` return `WouldBlock` instead of waiting.
pub fn set_nonblocking(pipe: &impl AsRawFd) -> std::io::Result<()> {
    let fd = pipe.as_raw_fd();
    // SAFETY: fcntl(2) on a descriptor owned by `pipe`, with integer arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until `pipe` can be read (data or its end) or `timeout` has passed.
pub fn wait_readable(pipe: &impl AsRawFd, timeout: Duration) {
    let mut one = libc::pollfd {
        fd: pipe.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: poll(2) on one pollfd that lives on this stack frame for the call.
    unsafe { libc::poll(&mut one, 1, ms) };
}
