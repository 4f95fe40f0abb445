//! [`MemoryPublisher`]: notifications kept in memory and logged (the local engine, tests).

use super::Publisher;
use crate::notify::Message;

/// [`Publisher`] that keeps messages in memory and logs them: for the local engine and tests.
#[derive(Debug, Default)]
pub struct MemoryPublisher {
    messages: std::sync::Mutex<Vec<Message>>,
}

impl MemoryPublisher {
    /// Every message published so far.
    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().expect("not poisoned").clone()
    }
}

impl Publisher for MemoryPublisher {
    async fn publish(&self, message: &Message) -> Result<String, String> {
        tracing::info!(subject = %message.subject, text = %message.text, "notification");
        let mut all = self.messages.lock().expect("not poisoned");
        all.push(message.clone());
        Ok(format!("local-{}", all.len()))
    }
}
