//! moto's S3 server (the Python package, installed by scripts/install-deps.sh) on a free port
//! of 127.0.0.1: a real S3-protocol server for tests of the AWS SDK's S3 client. A missing
//! moto fails the test and says how to install it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// moto's S3 server, stopped on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto's server and waits until it answers (at most 10 s); panics, saying how to
/// install moto, when it cannot (a test that needs S3 fails rather than skips).
pub async fn moto() -> Moto {
    try_moto().await.unwrap_or_else(|e| panic!("{e}"))
}

/// Starts moto's server and waits until it answers (at most 10 s), or says why it could not.
pub async fn try_moto() -> Result<Moto, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))?
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .env("S3_UPLOAD_PART_MIN_SIZE", "1024")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!("cannot run python3 for moto's S3 server (scripts/install-deps.sh): {e}")
        })?;
    let mut moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match moto.child.try_wait() {
            Ok(Some(status)) => {
                return Err(format!(
                    "moto's server exited ({status}): install it with `pip install \"moto[server]\" awscrt` (scripts/install-deps.sh)"
                ));
            }
            Ok(None) => {}
            Err(e) => return Err(format!("moto's process: {e}")),
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(moto);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "moto's server did not answer within 10 s on {}",
        moto.endpoint
    ))
}
