//! The state directory's lock: one engine at a time on a state dir.

use std::time::Duration;

use crate::error::LocalError;

/// Takes `<dir>/engine.lock`, waiting up to 10 s for an engine that is shutting down (its tasks
/// end at their next await) to let go of it.
pub(super) async fn lock_state_dir(dir: &std::path::Path) -> Result<std::fs::File, LocalError> {
    std::fs::create_dir_all(dir).map_err(|source| LocalError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let path = dir.join("engine.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LocalError::Io {
            path: path.display().to_string(),
            source,
        })?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LocalError::Io {
                    path: path.display().to_string(),
                    source: std::io::Error::other(
                        "the state dir is in use by another stepops local engine; stop it or \
                         choose another --state-dir",
                    ),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(LocalError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
    }
}
