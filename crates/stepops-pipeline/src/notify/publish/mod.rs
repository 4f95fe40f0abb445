//! Where a notification goes: the [`Publisher`] boundary and its adapters beside it, SNS
//! (`sns.rs`) and memory (`memory.rs`), and the optional chat webhook (`webhook.rs`).

mod memory;
mod sns;
mod webhook;

use std::future::Future;

use super::Message;

pub use memory::MemoryPublisher;
pub use sns::SnsPublisher;
pub use webhook::{ChatWebhook, chat_webhook_from_secret, webhook_url_from_secret};

/// Publishes a message somewhere (SNS in AWS; a recorder in tests or the local engine).
pub trait Publisher: Send + Sync {
    /// Publishes `message`; returns the message id, or why it failed.
    fn publish(&self, message: &Message) -> impl Future<Output = Result<String, String>> + Send;
}
