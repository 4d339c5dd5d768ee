//! Shard placement a sensor cannot aim (`SHARD_PLACEMENT`, issue 18 item 2).
//!
//! Kinesis places a record by the MD5 of its partition key unless it carries
//! an `ExplicitHashKey`. The partition key is an id the sensor chooses, so a
//! sensor can grind ids whose MD5 falls in one shard's hash range and aim
//! all its volume at the shard other devices share. Under keyed placement
//! (the default) every record carries an `ExplicitHashKey` computed from the
//! partition key (and, for a `submission_id`, the SQS message id SQS gave the
//! message) under a key the sensor never sees: the same ground ids spread
//! over the shards, so do messages that all reuse one `submission_id`, a
//! delivery's records still share one shard, and the partition key
//! consumers see is unchanged.

use crate::support;

use std::collections::{BTreeMap, HashMap, HashSet};

use edr_preprocessor::config::TEST_PIPELINE_KEY;
use edr_preprocessor::keys::PipelineKey;
use support::*;

/// `count` submission numbers whose id (the partition key) hashes, by MD5,
/// into the first of `shards` even shards: what an attacker grinds for.
fn ground_for_shard_zero(shards: u128, count: usize) -> Vec<usize> {
    (0..)
        .filter(|&n| {
            let seen = Seen {
                partition_key: uuid(0x5b, n),
                explicit_hash_key: None,
                submission_id: String::new(),
                sequence: 0,
                event_count: 0,
                json: serde_json::Value::Null,
                shard: None,
                user_records: Vec::new(),
                size: 0,
                data: Vec::new(),
            };
            shard_index(hash_key(&seen), shards) == 0
        })
        .take(count)
        .collect()
}

/// Publishes the ground submissions (3 events each) under `placement` and
/// returns, per shard of `shards`, the submissions whose records landed
/// there, and every record written.
async fn publish(shards: u128, placement: &str) -> (BTreeMap<u128, HashSet<String>>, Vec<Seen>) {
    let numbers = ground_for_shard_zero(shards, 40);
    let h = handler(
        ScriptedKinesis::healthy(),
        &[("SHARD_PLACEMENT", placement)],
    );
    let event = batch(
        numbers
            .iter()
            .map(|&n| message(&format!("m{n}"), &b64(&submission(n, 2, 1))))
            .collect(),
    );
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let state = h.kinesis().state();
    assert!(
        state.order_violations.is_empty(),
        "{:?}",
        state.order_violations
    );
    assert_eq!(state.written.len(), 40 * 3);
    let mut by_shard: BTreeMap<u128, HashSet<String>> = BTreeMap::new();
    for seen in &state.written {
        by_shard
            .entry(shard_index(hash_key(seen), shards))
            .or_default()
            .insert(seen.submission_id.clone());
    }
    (by_shard, state.written.clone())
}

#[tokio::test(start_paused = true)]
async fn ids_ground_for_one_shard_spread_over_every_shard_under_keyed_placement() {
    for shards in [2, 4] {
        let (by_shard, _) = publish(shards, "keyed").await;
        let fair = 40 / shards as usize;
        for shard in 0..shards {
            let landed = by_shard.get(&shard).map_or(0, HashSet::len);
            assert!(
                landed >= fair / 2,
                "{shards} shards: shard {shard} got {landed} of 40 submissions: {by_shard:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_same_ids_all_land_on_the_aimed_shard_under_partition_key_placement() {
    for shards in [2, 4] {
        let (by_shard, written) = publish(shards, "partition-key").await;
        assert_eq!(by_shard.keys().collect::<Vec<_>>(), [&0], "{by_shard:?}");
        assert_eq!(by_shard[&0].len(), 40);
        assert!(written.iter().all(|s| s.explicit_hash_key.is_none()));
    }
}

#[tokio::test(start_paused = true)]
async fn every_record_of_a_submission_carries_its_one_keyed_hash_and_its_partition_key() {
    let key = PipelineKey::from_secret(TEST_PIPELINE_KEY.as_bytes()).unwrap();
    let (_, written) = publish(2, "keyed").await;
    // `publish` sends submission n as message `m{n}`.
    let message_of: HashMap<String, String> = (ground_for_shard_zero(2, 40).into_iter())
        .map(|n| (uuid(0x5b, n), format!("m{n}")))
        .collect();
    let mut hash_of: HashMap<&str, HashSet<&str>> = HashMap::new();
    for seen in &written {
        // Consumers see the partition key they always saw.
        assert_eq!(seen.partition_key, seen.submission_id);
        let hash = seen
            .explicit_hash_key
            .as_deref()
            .expect("keyed: a hash key");
        let message_id = &message_of[&seen.submission_id];
        assert_eq!(
            hash,
            (key.explicit_hash_key_of_message(&seen.partition_key, message_id)).to_string(),
            "the decimal of the keyed hash of the partition key and the message id"
        );
        hash_of.entry(&seen.submission_id).or_default().insert(hash);
    }
    assert_eq!(hash_of.len(), 40);
    assert!(
        hash_of.values().all(|hashes| hashes.len() == 1),
        "one hash key, so one shard, per submission"
    );
}

#[tokio::test(start_paused = true)]
async fn the_device_id_partition_key_is_hashed_the_same_way() {
    let h = handler(
        ScriptedKinesis::healthy(),
        &[("PARTITION_KEY", "device_id")],
    );
    let event = batch(
        (0..6)
            .map(|n| message(&format!("m{n}"), &b64(&submission(n, 1, 1))))
            .collect(),
    );
    h.handle(event, far_deadline()).await.unwrap();
    let key = PipelineKey::from_secret(TEST_PIPELINE_KEY.as_bytes()).unwrap();
    let state = h.kinesis().state();
    assert_eq!(state.written.len(), 12);
    for seen in &state.written {
        assert_eq!(seen.partition_key, seen.json["device_id"]);
        assert_eq!(
            seen.explicit_hash_key.as_deref(),
            Some(&*key.explicit_hash_key(&seen.partition_key).to_string())
        );
    }
}

/// 100 messages of one device that all carry the same submission (one
/// `submission_id`, one document, three events), as a sensor that reuses
/// its id to concentrate its volume would send them, published on a
/// 4-shard stream; returns every record written.
async fn one_submission_sent_100_times(pairs: &[(&str, &str)]) -> Vec<Seen> {
    let body = b64(&submission(0, 2, 1));
    // The fake's order check keys records by submission id, which these
    // messages share: order within one delivery is proven elsewhere.
    let kinesis = ScriptedKinesis::healthy().with_shards(4).relaxed();
    let h = handler(kinesis, pairs);
    let event = batch((0..100).map(|n| message(&format!("m{n}"), &body)).collect());
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let written = h.kinesis().state().written.clone();
    assert_eq!(written.len(), 300);
    written
}

#[tokio::test(start_paused = true)]
async fn one_submission_id_reused_for_every_message_spreads_over_every_shard() {
    let key = PipelineKey::from_secret(TEST_PIPELINE_KEY.as_bytes()).unwrap();
    let written = one_submission_sent_100_times(&[]).await;
    // Each message's three records share one hash key, the keyed hash of
    // the submission id and the message id SQS gave it: one hash key (one
    // shard) per delivery, a different one per message.
    let mut sequences_of: BTreeMap<u128, Vec<u64>> = BTreeMap::new();
    for seen in &written {
        assert_eq!(
            seen.partition_key,
            uuid(0x5b, 0),
            "the partition key unchanged"
        );
        sequences_of
            .entry(hash_key(seen))
            .or_default()
            .push(seen.sequence);
    }
    let expected: HashSet<u128> = (0..100)
        .map(|n| key.explicit_hash_key_of_message(&uuid(0x5b, 0), &format!("m{n}")))
        .collect();
    assert_eq!(
        sequences_of.keys().copied().collect::<HashSet<_>>(),
        expected
    );
    assert!(
        sequences_of.values().all(|s| s == &[0, 1, 2]),
        "{sequences_of:?}"
    );
    // And the messages spread over the stream like anyone's: every shard
    // gets at least half its share (25 messages of 100).
    let mut messages_on: BTreeMap<u128, usize> = BTreeMap::new();
    for hash in sequences_of.keys() {
        *messages_on.entry(shard_index(*hash, 4)).or_default() += 1;
    }
    for shard in 0..4 {
        let landed = messages_on.get(&shard).copied().unwrap_or(0);
        assert!(
            landed >= 12,
            "shard {shard} got {landed} of 100 messages: {messages_on:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn under_the_device_id_partition_key_a_device_keeps_its_one_shard_by_design() {
    let key = PipelineKey::from_secret(TEST_PIPELINE_KEY.as_bytes()).unwrap();
    let written = one_submission_sent_100_times(&[("PARTITION_KEY", "device_id")]).await;
    let device = uuid(0xde, 0);
    let hashes: HashSet<u128> = written.iter().map(hash_key).collect();
    assert_eq!(hashes, HashSet::from([key.explicit_hash_key(&device)]));
}
