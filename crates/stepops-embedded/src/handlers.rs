//! The pipeline's Lambda handlers, in-process: the same `stepops-pipeline` functions the
//! `stepops-fn-validate-input` and `stepops-fn-notify` binaries (`functions/`) wrap.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use stepops_local::{LambdaError, LambdaHandler, handler};
use stepops_pipeline::{
    ExecutionHistory, HistoryItem, Message, NotifyRequest, Publisher, SfnHistory, StackEnvironment,
    validate_input,
};

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

/// The engine's endpoint, known once it serves: the notify handler reads the execution history
/// there, through the same `aws-sdk-sfn` code the Lambda uses in AWS.
pub(crate) type Endpoint = Arc<OnceLock<String>>;

/// [`SfnHistory`] at the engine's endpoint, once it is known (an event that arrives before,
/// e.g. of an execution resumed at start, waits for it up to 10 s).
struct LocalHistory(Endpoint);

impl ExecutionHistory for LocalHistory {
    async fn history(&self, execution_arn: &str) -> Result<Vec<HistoryItem>, String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let endpoint = loop {
            if let Some(e) = self.0.get() {
                break e.clone();
            }
            if Instant::now() > deadline {
                return Err("the local engine serves no Step Functions endpoint".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        SfnHistory::at_endpoint(&endpoint)
            .history(execution_arn)
            .await
    }
}

/// `notify` with a [`LocalPublisher`]: the state machine's requests and the status-change
/// events of the template's rule (the history read at `endpoint`); every request and its
/// message are also kept in `sink`.
pub(crate) fn notify(
    sink: Arc<Mutex<Vec<(NotifyRequest, Message)>>>,
    environment: String,
    endpoint: Endpoint,
) -> LambdaHandler {
    let publisher = LocalPublisher::default();
    let history = Arc::new(LocalHistory(endpoint));
    let environment = Arc::new(environment);
    handler(move |event: Value| {
        let (sink, publisher) = (sink.clone(), publisher.clone());
        let (history, environment) = (history.clone(), environment.clone());
        async move {
            let before = publisher.messages().len();
            let (req, out) = stepops_pipeline::notify_handler(
                event,
                &publisher,
                None,
                history.as_ref(),
                Some(environment.as_str()),
            )
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
