//! The SQS adapters: the rejects queue (one SendMessageBatch per batch of
//! invalid submissions) and the way back to the source queue for a
//! submission published part-way ([`SqsResendSink`]).
//!
//! The body is sent unchanged (it already was a valid SQS body); the reason
//! travels in message attributes so a consumer can filter without parsing.
//! For a FIFO rejects queue the source message id de-duplicates and the
//! source group (or `rejects`) is the group. SendMessageBatch answers entry
//! by entry: an entry counts as stored only if it is listed as successful.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use crate::rejects_queue::{ATTRIBUTE_TYPE, RejectSink, RejectedMessage};
use crate::resume::{RESUME_ATTRIBUTE, Resend, ResendSink};

#[derive(Debug, Clone)]
/// The rejects-queue outlet: SendMessageBatch through the AWS SDK.
pub struct SqsRejectSink {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    fifo: bool,
}

impl SqsRejectSink {
    /// Sends to `queue_url` (a FIFO queue when it ends in `.fifo`) with `client`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        let fifo = queue_url.ends_with(".fifo");
        SqsRejectSink {
            client,
            queue_url,
            fifo,
        }
    }

    fn entry(
        &self,
        id: usize,
        message: &RejectedMessage<'_>,
    ) -> Result<SendMessageBatchRequestEntry, String> {
        let mut attributes = HashMap::new();
        for (name, value) in message.attributes() {
            let value = MessageAttributeValue::builder()
                .data_type(ATTRIBUTE_TYPE)
                .string_value(value)
                .build()
                .map_err(|e| e.to_string())?;
            attributes.insert(name.to_owned(), value);
        }
        let mut entry = SendMessageBatchRequestEntry::builder()
            .id(id.to_string())
            .message_body(message.body)
            .set_message_attributes(Some(attributes));
        if self.fifo {
            entry = entry
                .message_group_id(message.group_id.unwrap_or("rejects"))
                .message_deduplication_id(message.source_message_id);
        }
        entry.build().map_err(|e| e.to_string())
    }
}

impl RejectSink for SqsRejectSink {
    async fn send_batch(&self, messages: &[RejectedMessage<'_>]) -> Vec<Result<(), String>> {
        let entries: Result<Vec<_>, String> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| self.entry(i, m))
            .collect();
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => return vec![Err(e); messages.len()],
        };
        let sent = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        match sent {
            Ok(output) => entry_results(&output, messages.len()),
            Err(e) => {
                let error = crate::logging::bounded(&DisplayErrorContext(&e).to_string(), 256);
                vec![Err(error); messages.len()]
            }
        }
    }
}

/// One result per entry `0..n`: stored only if listed as successful.
pub fn entry_results(output: &SendMessageBatchOutput, n: usize) -> Vec<Result<(), String>> {
    let mut results = vec![Err("SQS listed the entry neither as sent nor as failed".to_owned()); n];
    for ok in output.successful() {
        if let Some(slot) = ok
            .id()
            .parse::<usize>()
            .ok()
            .and_then(|i| results.get_mut(i))
        {
            *slot = Ok(());
        }
    }
    for failed in output.failed() {
        if let Some(slot) = failed
            .id()
            .parse::<usize>()
            .ok()
            .and_then(|i| results.get_mut(i))
        {
            let message = failed.message().unwrap_or_default();
            *slot = Err(crate::logging::bounded(
                &format!("{}: {message}", failed.code()),
                256,
            ));
        }
    }
    results
}

/// The way back to a source queue: SendMessage with the resume marker.
///
/// The Lambda event names its queue by ARN; the URL SendMessage needs comes
/// from GetQueueUrl once per queue and process (the endpoint differs between
/// AWS and the emulators, so it is not built from the ARN).
#[derive(Debug)]
pub struct SqsResendSink {
    client: aws_sdk_sqs::Client,
    urls: Mutex<HashMap<String, String>>,
}

impl SqsResendSink {
    /// Sends with `client`.
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        SqsResendSink {
            client,
            urls: Mutex::new(HashMap::new()),
        }
    }

    async fn queue_url(&self, arn: &str) -> Result<String, String> {
        if let Some(url) = self.urls.lock().ok().and_then(|u| u.get(arn).cloned()) {
            return Ok(url);
        }
        // arn:partition:sqs:region:account:name
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let (Some(account), Some(name)) = (parts.get(4), parts.get(5)) else {
            return Err(format!(
                "not an SQS queue ARN: {}",
                crate::logging::bounded(arn, 128)
            ));
        };
        let answer = self
            .client
            .get_queue_url()
            .queue_name(*name)
            .queue_owner_aws_account_id(*account)
            .send()
            .await
            .map_err(|e| crate::logging::bounded(&DisplayErrorContext(&e).to_string(), 256))?;
        let url = answer
            .queue_url()
            .ok_or("GetQueueUrl answered without a URL")?
            .to_owned();
        if let Ok(mut urls) = self.urls.lock() {
            urls.insert(arn.to_owned(), url.clone());
        }
        Ok(url)
    }
}

impl ResendSink for SqsResendSink {
    async fn resend(&self, message: &Resend<'_>) -> Result<(), String> {
        let url = self.queue_url(message.source_arn).await?;
        let marker = MessageAttributeValue::builder()
            .data_type(ATTRIBUTE_TYPE)
            .string_value(&message.marker)
            .build()
            .map_err(|e| e.to_string())?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(message.body)
            .message_attributes(RESUME_ATTRIBUTE, marker)
            .set_message_group_id(message.group_id.map(str::to_owned))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| crate::logging::bounded(&DisplayErrorContext(&e).to_string(), 256))
    }
}
