//! Child processes for tests: a command isolated from the caller's AWS and stepops settings
//! (so a developer's profile or region can never reach a test), and a child that is killed
//! when the test ends, whether it passes or panics.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `program` with every `STEPOPS_*`, `AWS_*` and `RUST_LOG` variable of the caller removed,
/// placeholder credentials and region (the local endpoints accept any), no instance metadata
/// lookups, AWS config and credential files that do not exist under `home`, and no stdin.
pub fn isolated_command(program: impl AsRef<OsStr>, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars() {
        if k.starts_with("STEPOPS_") || k.starts_with("AWS_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-aws-credentials"),
        )
        .stdin(Stdio::null());
    cmd
}

/// A child process killed (and reaped) when this value is dropped.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
