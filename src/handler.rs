//! The batch handler: an SQS batch in, `batchItemFailures` out.
//!
//! The steps of an invocation, each in its own module: triage every
//! message ([`crate::batch`]), store the invalid ones in the rejects queue
//! ([`crate::rejects_queue`]), publish the valid ones lane by lane
//! ([`crate::publisher`]), apply what Kinesis said, send the submissions
//! published part-way back to their queue ([`crate::resume`]), and answer
//! with the message ids of every submission that was not fully published
//! ([`crate::answer`]), so SQS redelivers exactly those. A FIFO batch may
//! take several rounds of "store rejects, then publish"
//! ([`crate::batch::Batch::rounds`]).
//!
//! Only the rejects-queue entries whose result decides what is published
//! are stored before what they decide: those of partly valid submissions
//! (`INVALID_EVENTS=drop-event`), and every entry of a FIFO batch; each lane
//! waits for its own alone, and the others are published meanwhile
//! ([`crate::gates`]). A standard
//! queue's whole-message rejects decide only their own fate, so they are
//! stored while the batch is published, in requests of their own, and the
//! submissions published part-way are sent back to their queue as soon as
//! publishing ends, beside them: an invalid flood from one sender neither
//! delays nor fails anyone else's submission, nor holds back its copy.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::StreamExt as _;
use futures_util::stream;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::answer::UnidentifiedFailure;
use crate::batch::{Batch, IndependentReject};
use crate::config::{Config, Resume};
use crate::encode;
use crate::gates::LaneGates;
use crate::metrics::{self, InvocationMetrics};
use crate::model::Limits;
use crate::publisher::{PublishReport, PublishStats, Publisher, RecordSink};
use crate::rejects_queue::{self, RejectSink, RejectedMessage};
use crate::resume::{self, NoResend, Policy, ResendSink};
use crate::shard_split;

/// The function: configuration plus its outlets.
pub struct Handler<K, R, S = NoResend> {
    config: Config,
    publisher: Publisher,
    policy: Policy,
    kinesis: K,
    rejects: Option<R>,
    resend: Option<S>,
}

impl<K: RecordSink, R: RejectSink> Handler<K, R> {
    /// A handler that publishes to `kinesis` and keeps invalid submissions in
    /// `rejects`, if there is one; it resumes nothing until
    /// [`Handler::with_resend`] gives it the way back to the source queue.
    pub fn new(config: Config, kinesis: K, rejects: Option<R>) -> Self {
        Handler {
            publisher: Publisher::from_config(&config),
            policy: Policy::from_config(&config),
            config,
            kinesis,
            rejects,
            resend: None,
        }
    }
}

impl<K: RecordSink, R: RejectSink, S: ResendSink> Handler<K, R, S> {
    /// The same handler, sending partly published submissions back to their
    /// queue through `resend` ([`crate::resume`]) unless `RESUME=off`.
    pub fn with_resend<T: ResendSink>(self, resend: T) -> Handler<K, R, T> {
        let on = self.config.resume == Resume::Resend;
        Handler {
            config: self.config,
            publisher: self.publisher,
            policy: self.policy,
            kinesis: self.kinesis,
            rejects: self.rejects,
            resend: on.then_some(resend),
        }
    }

    /// The same handler with aggregated records of at most `bytes` (for
    /// tests: a small submission then spans several aggregated records, as a
    /// large one does under the stream's limit). Encoding still checks
    /// events against `KINESIS_MAX_RECORD_SIZE_KIB`.
    pub fn with_aggregated_record_limit(mut self, bytes: usize) -> Self {
        self.publisher.max_record_bytes = bytes;
        self
    }

    /// The way back to the source queue, if resuming is on (for tests).
    pub fn resend(&self) -> Option<&S> {
        self.resend.as_ref()
    }

    /// The Kinesis outlet (for tests that inspect what was sent).
    pub fn kinesis(&self) -> &K {
        &self.kinesis
    }

    /// The rejects queue, if there is one (for tests).
    pub fn rejects(&self) -> Option<&R> {
        self.rejects.as_ref()
    }

    /// Processes one batch; no PutRecords call is in flight after
    /// `deadline - DEADLINE_MARGIN_MS`. Logs the summary and emits the metrics.
    pub async fn handle(
        &self,
        event: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, UnidentifiedFailure> {
        let started = Instant::now();
        let (response, metrics) = self.process(&event.records, deadline).await;
        metrics.log_summary(started.elapsed());
        metrics.emit(
            &self.config.metrics_namespace,
            &self.config.function_name,
            metrics::unix_millis(),
        );
        response
    }

    /// [`Handler::handle`] without the summary line and the metrics output:
    /// the answer, and what the invocation did.
    pub async fn process(
        &self,
        records: &[SqsMessage],
        deadline: Instant,
    ) -> (
        Result<SqsBatchResponse, UnidentifiedFailure>,
        InvocationMetrics,
    ) {
        let time_processed = encode::format_time_processed(OffsetDateTime::now_utc());
        let limits = Limits {
            max_events: self.config.max_events_per_submission,
            max_record_bytes: self.config.max_record_bytes,
            invalid_events: self.config.invalid_events,
            record_format: self.config.record_format,
        };
        let keys = encode::RecordKeys::of(&self.config);
        let mut batch = Batch::triage(records, limits, keys, &time_processed, &self.policy);
        // A rejects queue that does not answer costs at most one call
        // timeout, over all its sends together.
        let rejects_stop_at =
            (Instant::now() + self.config.call_timeout).min(self.publisher.stop_at(deadline));
        // The rejects that gate nothing are stored while the batch is
        // published, in requests of their own: one sender's flood of invalid
        // messages, however slowly the queue takes it, holds no other
        // message back and uses none of the requests that publishing waits for.
        // The submissions published part-way go back to their queue as
        // soon as publishing ends, beside those rejects too: a flood of
        // invalid messages delays no re-send either.
        let independent = batch.independent_rejects();
        let (stored, (stats, publish_time)) = tokio::join!(
            self.store_independent_rejects(&independent, rejects_stop_at),
            async {
                let published = self
                    .publish_rounds(&mut batch, deadline, rejects_stop_at)
                    .await;
                self.resend_partly_published(&mut batch, deadline).await;
                published
            },
        );
        let positions: Vec<usize> = independent
            .iter()
            .map(IndependentReject::position)
            .collect();
        batch.rejects_stored(&positions, stored);
        let splits = batch.shard_splits();
        shard_split::log(&splits);
        let split_across_shards = splits.len() as u64;
        let response = batch.respond();
        let mut metrics = batch.count(response.is_ok());
        metrics.split_across_shards = split_across_shards;
        metrics.put_records_calls = stats.calls;
        metrics.records_retried = stats.records_retried;
        metrics.publish_latency_ms = publish_time.as_secs_f64() * 1000.0;
        (response, metrics)
    }

    /// Runs the batch's rounds, each "store the rejects it waits for, then
    /// publish"; returns what publishing did and how long it took.
    async fn publish_rounds(
        &self,
        batch: &mut Batch<'_>,
        deadline: Instant,
        rejects_stop_at: Instant,
    ) -> (PublishStats, Duration) {
        let (mut stats, mut publish_time) = (PublishStats::default(), Duration::ZERO);
        for round in 0..batch.rounds() {
            batch.fail_behind_failures();
            let publish_started = Instant::now();
            let report = self
                .publish_round(batch, round, deadline, rejects_stop_at)
                .await;
            publish_time += publish_started.elapsed();
            stats += report.stats;
            batch.apply(round, &report);
        }
        (stats, publish_time)
    }

    /// Publishes `round`, each lane as soon as the rejects-queue entries it
    /// waits for are stored ([`crate::gates`]): a lane that waits for none
    /// at once, a partly valid submission once its own entry is, a FIFO
    /// group once its entries of the round are. A lane whose entry the
    /// rejects queue refuses, or does not answer in time, is not published;
    /// what the queue said is recorded ([`Batch::rejects_stored`]).
    async fn publish_round(
        &self,
        batch: &mut Batch<'_>,
        round: usize,
        deadline: Instant,
        rejects_stop_at: Instant,
    ) -> PublishReport {
        let lanes = batch.lanes(round);
        let (positions, outgoing) = batch.gating_rejects(round);
        let Some(sink) = self.rejects.as_ref().filter(|_| !outgoing.is_empty()) else {
            return (self.publisher)
                .publish(&self.kinesis, batch.encoded(), lanes, deadline)
                .await;
        };
        let waits = batch.lane_waits(&lanes, &positions);
        let (open, mut gates) = LaneGates::new(lanes, waits, outgoing.len());
        let admitted = rejects_queue::answers(sink, &outgoing, rejects_stop_at)
            .flat_map(|answered| stream::iter(gates.answered(answered)));
        let report = (self.publisher)
            .publish_admitting(&self.kinesis, batch.encoded(), open, admitted, deadline)
            .await;
        drop(outgoing);
        batch.rejects_stored(&positions, gates.into_results());
        report
    }

    /// Sends each submission that failed part-way back to its queue with its
    /// progress, if resuming is on; those sent are acknowledged.
    async fn resend_partly_published(&self, batch: &mut Batch<'_>, deadline: Instant) {
        let Some(sink) = &self.resend else { return };
        let (positions, outgoing) = batch.resends();
        if outgoing.is_empty() {
            return;
        }
        let stop_at = resume::stop_at(deadline, self.config.deadline_margin);
        let results = resume::resend_all(sink, &outgoing, stop_at).await;
        drop(outgoing);
        batch.resent(&positions, results);
    }

    /// Sends the whole-message rejects of a standard queue to the rejects
    /// queue, if there is one: one result per reject, in order (none
    /// without a rejects queue, which leaves every reject acknowledged).
    async fn store_independent_rejects(
        &self,
        rejects: &[IndependentReject<'_>],
        stop_at: Instant,
    ) -> Vec<Result<(), String>> {
        let Some(sink) = &self.rejects else {
            return Vec::new();
        };
        if rejects.is_empty() {
            return Vec::new();
        }
        let outgoing: Vec<RejectedMessage<'_>> =
            rejects.iter().map(IndependentReject::message).collect();
        rejects_queue::send_all(sink, &outgoing, stop_at).await
    }
}
