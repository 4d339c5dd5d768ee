//! The aggregated record format round-trips: whatever user records go in
//! (any keys, any bytes, any sizes), the aggregator's records stay within
//! the limit, and the deaggregator gives back exactly the user records, in
//! order, with their keys. Any single byte changed makes a record that is
//! not aggregated (the MD5 guards it), returned whole.

use edr_preprocessor::aggregate::format::MAGIC;
use edr_preprocessor::aggregate::{UserRecord, aggregate, deaggregate, record_size_alone};
use proptest::prelude::*;

/// Keys from a few, so that runs of one key and changes of key both occur.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("device-🛰".to_owned()),
        "\\PC{1,40}"
    ]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(any::<u8>(), 100..400)
    ]
}

/// Runs of user records of one key, so that records fill up.
fn user_records() -> impl Strategy<Value = Vec<(String, Option<String>, Vec<u8>)>> {
    let ehk = prop_oneof![
        Just(None),
        Just(Some("0".to_owned())),
        "[0-9]{1,39}".prop_map(Some)
    ];
    let run = (key(), ehk, proptest::collection::vec(data(), 1..40));
    proptest::collection::vec(run, 0..4).prop_map(|runs| {
        runs.into_iter()
            .flat_map(|(pk, ehk, datas)| {
                datas.into_iter().map(move |d| (pk.clone(), ehk.clone(), d))
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn user_records_round_trip_within_the_limit(
        records in user_records(),
        limit in 60usize..2_000,
    ) {
        let input = records.iter().map(|(pk, ehk, data)| (pk.as_str(), ehk.as_deref(), data.as_slice()));
        let too_large = records.iter().any(|(pk, ehk, data)| record_size_alone(pk, ehk.as_deref(), data.len()) > limit);
        let out = match aggregate(input, limit) {
            Ok(out) => out,
            Err(e) => {
                prop_assert!(too_large, "refused {e} though every record fits alone");
                return Ok(());
            }
        };
        prop_assert!(!too_large);
        let mut back: Vec<UserRecord> = Vec::new();
        for record in &out {
            prop_assert!(record.size() <= limit, "{} > {limit}", record.size());
            let users = deaggregate(&record.data, &record.partition_key).unwrap();
            prop_assert_eq!(users.len(), record.user_records);
            for (i, user) in users.iter().enumerate() {
                prop_assert!(user.aggregated);
                prop_assert_eq!(user.sub_sequence_number, i as u64);
                prop_assert_eq!(&user.partition_key, &record.partition_key);
                prop_assert_eq!(&user.explicit_hash_key, &record.explicit_hash_key);
            }
            back.extend(users);
        }
        let got: Vec<_> = back.into_iter().map(|u| (u.partition_key, u.explicit_hash_key, u.data)).collect();
        prop_assert_eq!(got, records);
    }

    #[test]
    fn any_byte_changed_makes_a_record_that_is_not_aggregated(
        records in proptest::collection::vec((key(), data()), 1..10),
        at in any::<prop::sample::Index>(),
        flip in 1u8..,
    ) {
        let input = records.iter().map(|(_, data)| (records[0].0.as_str(), None, data.as_slice()));
        let mut data = aggregate(input, usize::MAX).unwrap().remove(0).data;
        let i = at.index(data.len());
        data[i] ^= flip;
        let out = deaggregate(&data, "outer").unwrap();
        prop_assert_eq!(out.len(), 1);
        prop_assert!(!out[0].aggregated);
        prop_assert_eq!(&out[0].data, &data);
        prop_assert_eq!(&out[0].partition_key, "outer");
    }

    #[test]
    fn any_message_with_a_good_frame_deaggregates_without_panic(body in proptest::collection::vec(any::<u8>(), 1..300)) {
        use md5::Digest as _;
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&body);
        data.extend_from_slice(&md5::Md5::digest(&body));
        match deaggregate(&data, "outer") {
            Ok(out) if out.first().is_some_and(|u| !u.aggregated) => prop_assert_eq!(&out[0].data, &data),
            Ok(out) => prop_assert!(out.iter().all(|u| u.aggregated)),
            Err(_) => {}
        }
    }
}
