//! Fuzzes the aggregated record format from both ends.
//!
//! As a record from the stream: `deaggregate` must not panic on any bytes,
//! must return a record that is not aggregated whole, and the user records
//! of one that is must aggregate and deaggregate back to themselves. The
//! input is also framed as a protobuf message (magic, input, its MD5), since
//! a mutation of a whole record almost never keeps its MD5 right.
//!
//! As user records to aggregate: the input is cut into user records (a
//! zero byte ends each; the first byte picks the limit, the second the
//! keys), and the aggregator's records must stay within the limit and give
//! back exactly those user records, in order.
#![no_main]

use edr_preprocessor::aggregate::{UserRecord, aggregate, deaggregate, record_size_alone};
use edr_preprocessor::aggregate::format::MAGIC;
use libfuzzer_sys::fuzz_target;
use md5::{Digest, Md5};

fuzz_target!(|data: &[u8]| {
    from_the_stream(data);
    let mut framed = MAGIC.to_vec();
    framed.extend_from_slice(data);
    framed.extend_from_slice(&Md5::digest(data));
    from_the_stream(&framed);
    to_the_stream(data);
});

fn from_the_stream(data: &[u8]) {
    let Ok(users) = deaggregate(data, "outer") else { return };
    if users.first().is_some_and(|u| !u.aggregated) {
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].data, data);
        assert_eq!(users[0].partition_key, "outer");
        return;
    }
    for (i, user) in users.iter().enumerate() {
        assert!(user.aggregated);
        assert_eq!(user.sub_sequence_number, i as u64);
    }
    let input = users.iter().map(|u| (u.partition_key.as_str(), u.explicit_hash_key.as_deref(), u.data.as_slice()));
    let records = aggregate(input, usize::MAX).expect("no limit");
    assert_eq!(back(&records), keys_and_data(&users));
}

fn to_the_stream(data: &[u8]) {
    let [limit, keys, rest @ ..] = data else { return };
    let limit = 40 + usize::from(*limit) * 8;
    let pks = ["a", "device-7f3a", "ü"];
    let ehks = [None, Some("0"), Some("340282366920938463463374607431768211455")];
    let users: Vec<(&str, Option<&str>, &[u8])> = rest
        .split(|b| *b == 0)
        .enumerate()
        .map(|(i, chunk)| {
            let pick = usize::from(*keys) >> (i % 4 * 2);
            (pks[pick % 3], ehks[pick / 3 % 3], chunk)
        })
        .collect();
    let fits = users.iter().all(|(pk, ehk, d)| record_size_alone(pk, *ehk, d.len()) <= limit);
    match aggregate(users.iter().copied(), limit) {
        Ok(records) => {
            assert!(fits);
            assert!(records.iter().all(|r| r.size() <= limit));
            let expected: Vec<_> =
                users.iter().map(|(pk, ehk, d)| (pk.to_string(), ehk.map(str::to_owned), d.to_vec())).collect();
            assert_eq!(back(&records), expected);
        }
        Err(_) => assert!(!fits),
    }
}

type KeysAndData = Vec<(String, Option<String>, Vec<u8>)>;

fn back(records: &[edr_preprocessor::aggregate::KinesisRecord]) -> KeysAndData {
    let users: Vec<UserRecord> =
        records.iter().flat_map(|r| deaggregate(&r.data, &r.partition_key).expect("our own records")).collect();
    keys_and_data(&users)
}

fn keys_and_data(users: &[UserRecord]) -> KeysAndData {
    users.iter().map(|u| (u.partition_key.clone(), u.explicit_hash_key.clone(), u.data.clone())).collect()
}
