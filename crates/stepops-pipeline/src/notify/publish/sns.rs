//! [`SnsPublisher`]: a notification published to the stack's SNS topic, with its status and
//! environment as message attributes.

use super::Publisher;
use crate::notify::Message;

/// [`Publisher`] over an SNS topic.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsPublisher {
    /// Publishes to `topic_arn` through `client`.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        SnsPublisher {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

impl Publisher for SnsPublisher {
    async fn publish(&self, message: &Message) -> Result<String, String> {
        use aws_sdk_sns::types::MessageAttributeValue;
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| e.to_string())
        };
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&message.subject)
            .message(&message.text)
            .message_attributes("status", attr(&message.status)?)
            .message_attributes("environment", attr(&message.environment)?)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "SNS Publish to {} failed: {}",
                    self.topic_arn,
                    aws_sdk_sns::error::DisplayErrorContext(&e)
                )
            })?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}
