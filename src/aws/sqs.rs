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
/// The Lambda event names its queue by ARN; SendMessage takes the queue's
/// URL, which [`queue_url`] builds from the ARN, so a re-send costs no
/// GetQueueUrl call and the role needs no `sqs:GetQueueUrl`.
#[derive(Debug)]
pub struct SqsResendSink {
    client: aws_sdk_sqs::Client,
}

impl SqsResendSink {
    /// Sends with `client`.
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        SqsResendSink { client }
    }
}

/// The URL of the queue `arn` names (`arn:<partition>:sqs:<region>:<account>:<name>`):
/// `https://sqs.<region>.<partition's DNS suffix>/<account>/<name>`, the URL
/// GetQueueUrl answers on AWS.
///
/// The SDK sends it as the `QueueUrl` parameter of a request to the client's
/// own endpoint (the region's, or `AWS_ENDPOINT_URL`), never to the URL's
/// host, so the same URL works behind an endpoint override: the emulators
/// find the queue by the account and name in its path
/// (`tests/aws_adapters.rs` checks the request the SDK sends).
pub fn queue_url(arn: &str) -> Result<String, String> {
    let not_an_arn = || {
        format!(
            "not an SQS queue ARN: {}",
            crate::logging::bounded(arn, 128)
        )
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, name] = parts.as_slice() else {
        return Err(not_an_arn());
    };
    let well_formed = *prefix == "arn"
        && *service == "sqs"
        && !region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && !name.contains(['/', ':']);
    if !well_formed {
        return Err(not_an_arn());
    }
    let suffix = dns_suffix(partition).ok_or_else(|| {
        format!(
            "unknown AWS partition {}: cannot build the queue URL",
            crate::logging::bounded(partition, 32)
        )
    })?;
    Ok(format!("https://sqs.{region}.{suffix}/{account}/{name}"))
}

/// The DNS suffix of each AWS partition, as the SDK's own partition table
/// (`aws-sdk-sqs`, `endpoint_lib`) has it.
fn dns_suffix(partition: &str) -> Option<&'static str> {
    Some(match partition {
        "aws" | "aws-us-gov" => "amazonaws.com",
        "aws-cn" => "amazonaws.com.cn",
        "aws-eusc" => "amazonaws.eu",
        "aws-iso" => "c2s.ic.gov",
        "aws-iso-b" => "sc2s.sgov.gov",
        "aws-iso-e" => "cloud.adc-e.uk",
        "aws-iso-f" => "csp.hci.ic.gov",
        _ => return None,
    })
}

/// `DelaySeconds` as SQS takes it: at most 900.
fn delay_seconds(seconds: u32) -> i32 {
    i32::try_from(seconds.min(crate::resume::MAX_DELAY_SECONDS)).unwrap_or(0)
}

impl ResendSink for SqsResendSink {
    async fn resend(&self, message: &Resend<'_>) -> Result<(), String> {
        let url = queue_url(message.source_arn)?;
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
            .delay_seconds(delay_seconds(message.delay_seconds))
            .set_message_group_id(message.group_id.map(str::to_owned))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| crate::logging::bounded(&DisplayErrorContext(&e).to_string(), 256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_url_is_built_from_the_arn_in_every_partition() {
        let cases = [
            (
                "arn:aws:sqs:eu-west-1:123456789012:submissions",
                "https://sqs.eu-west-1.amazonaws.com/123456789012/submissions",
            ),
            (
                "arn:aws-cn:sqs:cn-north-1:123456789012:q",
                "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q",
            ),
            (
                "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:q",
                "https://sqs.us-gov-west-1.amazonaws.com/123456789012/q",
            ),
            (
                "arn:aws-iso-b:sqs:us-isob-east-1:123456789012:q",
                "https://sqs.us-isob-east-1.sc2s.sgov.gov/123456789012/q",
            ),
        ];
        for (arn, url) in cases {
            assert_eq!(queue_url(arn).as_deref(), Ok(url), "{arn}");
        }
    }

    #[test]
    fn what_is_not_a_queue_arn_gets_no_url() {
        for arn in [
            "",
            "submissions",
            "arn:aws:sqs:eu-west-1:123456789012",
            "arn:aws:sns:eu-west-1:123456789012:topic",
            "arn:aws:sqs::123456789012:q",
            "arn:aws:sqs:eu-west-1:1234:q",
            "arn:aws:sqs:eu-west-1:123456789012:",
            "arn:aws:sqs:eu-west-1:123456789012:a/b",
            "arn:aws-mars:sqs:mars-1:123456789012:q",
        ] {
            assert!(queue_url(arn).is_err(), "{arn}");
        }
    }
}
