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

/// Starts moto's server and waits until it answers (at most 10 s).
pub async fn moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
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
        .expect("python3 is needed to run moto's S3 server (scripts/install-deps.sh)");
    let mut moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = moto.child.try_wait().expect("moto's process") {
            panic!(
                "moto's server exited ({status}): install it with `pip install \"moto[server]\" awscrt` (scripts/install-deps.sh)"
            );
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return moto;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "moto's server did not answer within 10 s on {}",
        moto.endpoint
    );
}
