//! The rejects-queue adapter: one SendMessage per invalid submission.
//!
//! The body is sent unchanged (it already was a valid SQS body); the reason
//! travels in message attributes so a consumer can filter without parsing.
//! For a FIFO rejects queue the source message id de-duplicates and the
//! source group (or `rejects`) is the group.

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageAttributeValue;

use crate::rejects::{RejectSink, RejectedMessage};

#[derive(Debug, Clone)]
pub struct SqsRejectSink {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    fifo: bool,
}

impl SqsRejectSink {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        let fifo = queue_url.ends_with(".fifo");
        SqsRejectSink {
            client,
            queue_url,
            fifo,
        }
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, String> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(if value.is_empty() { "-" } else { value })
        .build()
        .map_err(|e| e.to_string())
}

impl RejectSink for SqsRejectSink {
    async fn send(&self, message: &RejectedMessage<'_>) -> Result<(), String> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message.body)
            .message_attributes("reason", attribute(message.reason.as_str())?)
            .message_attributes("detail", attribute(message.detail)?)
            .message_attributes("source_message_id", attribute(message.source_message_id)?);
        if self.fifo {
            request = request
                .message_group_id(message.group_id.unwrap_or("rejects"))
                .message_deduplication_id(message.source_message_id);
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| crate::submission::bounded(&DisplayErrorContext(&e).to_string(), 256))
    }
}
