//! The pipeline's Lambda handlers, in-process: the same `stepops-pipeline` functions the
//! `functions/validate-input` and `functions/notify` binaries wrap.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use stepops_local::{LambdaError, LambdaHandler, handler};
use stepops_pipeline::{Message, NotifyRequest, Publisher, StackEnvironment, validate_input};

/// `validate-input` for a stack of `stack`'s environment and allow-list.
pub(crate) fn validate_input_handler(stack: StackEnvironment) -> LambdaHandler {
    let stack = Arc::new(stack);
    handler(move |event: Value| {
        let stack = stack.clone();
        async move {
            let normalised =
                validate_input(&event, &stack).map_err(|e| LambdaError::from_named(&e))?;
            serde_json::to_value(normalised).map_err(|e| LambdaError {
                error_type: "Stepops.Internal".into(),
                error_message: format!("cannot serialise the normalised input: {e}"),
            })
        }
    })
}

/// Where local notifications go instead of SNS: logged at `info` and kept in memory.
#[derive(Clone, Default)]
pub struct LocalPublisher {
    sent: Arc<Mutex<Vec<Message>>>,
}

impl LocalPublisher {
    /// The messages published so far.
    pub fn messages(&self) -> Vec<Message> {
        self.sent.lock().expect("local publisher").clone()
    }
}

impl Publisher for LocalPublisher {
    async fn publish(&self, message: &Message) -> Result<String, String> {
        tracing::info!(subject = %message.subject, "notification (local, not SNS)\n{}", message.text);
        let mut sent = self.sent.lock().expect("local publisher");
        sent.push(message.clone());
        Ok(format!("local-{}", sent.len()))
    }
}

/// `notify` with a [`LocalPublisher`]; every request and its message are also kept in `sink`.
pub(crate) fn notify(sink: Arc<Mutex<Vec<(NotifyRequest, Message)>>>) -> LambdaHandler {
    let publisher = LocalPublisher::default();
    handler(move |event: Value| {
        let (sink, publisher) = (sink.clone(), publisher.clone());
        async move {
            let req = NotifyRequest::from_value(event).map_err(|e| LambdaError::from_named(&e))?;
            let before = publisher.messages().len();
            let out = stepops_pipeline::notify(&req, &publisher, None, chrono::Utc::now())
                .await
                .map_err(|e| LambdaError::from_named(&e))?;
            if let Some(m) = publisher.messages().get(before) {
                sink.lock().expect("notifications").push((req, m.clone()));
            }
            serde_json::to_value(out).map_err(|e| LambdaError {
                error_type: "Stepops.Internal".into(),
                error_message: format!("cannot serialise the notify output: {e}"),
            })
        }
    })
}
