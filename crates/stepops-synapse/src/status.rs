//! The destination's status switch: READ_ONLY during a run (the service still accepts admin
//! restores, and refuses users' writes), READ_WRITE again at the end unless the configuration
//! asks it to stay read-only. A stack that is DOWN is left alone.

use crate::client::SynapseClient;
use crate::config::SynapseConfig;
use crate::error::Result;
use crate::protocol::StackStatus;

/// The message users see while the stack is read-only for a migration.
pub const READ_ONLY_MESSAGE: &str =
    "Synapse is read-only while data is migrated; writes are back shortly.";

/// What setting the status did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// Read-only (or down) now, as read back.
    pub read_only: bool,
    /// The status now.
    pub status: String,
    /// Whether a PUT changed it.
    pub changed: bool,
}

/// Puts `client`'s stack READ_ONLY (`read_only`) or READ_WRITE; with `remainReadOnly`, a
/// request for READ_WRITE leaves it as it is.
pub async fn set_read_only(
    client: &SynapseClient,
    config: &SynapseConfig,
    read_only: bool,
) -> Result<StatusReport> {
    let now = client.status().await?;
    let want = if read_only { "READ_ONLY" } else { "READ_WRITE" };
    if now.status == want || now.status == "DOWN" || (!read_only && config.remain_read_only) {
        return Ok(StatusReport {
            read_only: now.status != "READ_WRITE",
            status: now.status,
            changed: false,
        });
    }
    let body = StackStatus {
        status: want.to_owned(),
        current_message: read_only.then(|| READ_ONLY_MESSAGE.to_owned()),
        pending_maintenance_message: None,
    };
    client.set_status(&body).await?;
    let after = client.status().await?;
    Ok(StatusReport {
        read_only: after.status != "READ_WRITE",
        status: after.status,
        changed: true,
    })
}
