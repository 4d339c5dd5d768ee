//! The Lambda glue: an invocation in, the handler's answer out.
//!
//! Everything that knows the Lambda runtime lives here: the entry point
//! that turns the invocation context's deadline into an instant, and the
//! error Lambda reports when the whole batch must be retried.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use tokio::time::Instant;

use crate::answer::UnidentifiedFailure;
use crate::handler::Handler;
use crate::metrics::unix_millis;
use crate::publisher::RecordSink;
use crate::rejects_queue::RejectSink;
use crate::resume::ResendSink;

impl<K: RecordSink, R: RejectSink, S: ResendSink> Handler<K, R, S> {
    /// The Lambda entry point: takes the deadline from the invocation context.
    pub async fn invoke(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, UnidentifiedFailure> {
        let deadline = deadline_instant(event.context.deadline);
        self.handle(event.payload, deadline).await
    }
}

impl From<UnidentifiedFailure> for lambda_runtime::Diagnostic {
    fn from(e: UnidentifiedFailure) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "UnidentifiedFailure".into(),
            error_message: e.to_string(),
        }
    }
}

/// The longest a Lambda invocation can run.
pub const MAX_INVOCATION: Duration = Duration::from_secs(15 * 60);

/// Deadlines below this (milliseconds since the epoch, March 1973) cannot
/// come from Lambda: they are a local runtime's duration, not an instant.
/// `cargo lambda watch` sends a fixed 600000 (ten minutes).
pub const PLAUSIBLE_DEADLINE_EPOCH_MS: u64 = 100_000_000_000;

/// Converts Lambda's deadline (milliseconds since the Unix epoch) into an
/// instant of the tokio clock.
///
/// A deadline that cannot be an epoch instant (below
/// [`PLAUSIBLE_DEADLINE_EPOCH_MS`]) comes from a local runtime emulator: it
/// is treated as no deadline, and the invocation gets Lambda's maximum of 15
/// minutes. A plausible deadline that has already passed means the
/// invocation is out of time: it is taken as now, so nothing is published and
/// every valid submission is reported at once, rather than running on until
/// Lambda kills the invocation and SQS redelivers the whole batch.
pub fn deadline_instant(deadline_epoch_ms: u64) -> Instant {
    deadline_at(deadline_epoch_ms, unix_millis(), Instant::now())
}

fn deadline_at(deadline_epoch_ms: u64, now_epoch_ms: u64, now: Instant) -> Instant {
    if deadline_epoch_ms < PLAUSIBLE_DEADLINE_EPOCH_MS {
        tracing::warn!(
            deadline_epoch_ms,
            "the invocation's deadline is not an epoch instant; assuming a local runtime and no deadline"
        );
        return now + MAX_INVOCATION;
    }
    match deadline_epoch_ms.checked_sub(now_epoch_ms) {
        Some(left) if left > 0 => now + Duration::from_millis(left).min(MAX_INVOCATION),
        _ => {
            tracing::error!(
                deadline_epoch_ms,
                now_epoch_ms,
                "the invocation's deadline has already passed; publishing nothing"
            );
            now
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_is_taken_from_the_context() {
        let now = Instant::now();
        assert_eq!(
            deadline_at(1_700_000_030_000, 1_700_000_000_000, now),
            now + Duration::from_secs(30)
        );
    }

    #[test]
    fn an_implausible_deadline_means_a_local_runtime_without_one() {
        let now = Instant::now();
        // What `cargo lambda watch` sends: a duration, not an instant.
        assert_eq!(
            deadline_at(600_000, 1_700_000_000_000, now),
            now + MAX_INVOCATION
        );
        assert_eq!(
            deadline_at(PLAUSIBLE_DEADLINE_EPOCH_MS - 1, 1_700_000_000_000, now),
            now + MAX_INVOCATION
        );
    }

    #[test]
    fn a_plausible_deadline_already_past_means_out_of_time_now() {
        let now = Instant::now();
        for deadline in [
            1_700_000_000_000,
            1_699_999_999_999,
            PLAUSIBLE_DEADLINE_EPOCH_MS,
        ] {
            assert_eq!(
                deadline_at(deadline, 1_700_000_000_000, now),
                now,
                "{deadline}"
            );
        }
        assert_eq!(
            deadline_at(1_700_000_000_001, 1_700_000_000_000, now),
            now + Duration::from_millis(1)
        );
    }
}
