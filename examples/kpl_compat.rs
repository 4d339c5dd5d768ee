//! The Rust end of the compatibility tests (`tests/compat`, `make test-compat`):
//! one JSON request on stdin, one JSON answer on stdout, data in base64.
//!
//! - `{"command": "submission", "body": ..., "max_record_bytes": n}`: the
//!   per-event records of an SQS body and the aggregated records of them;
//! - `{"command": "aggregate", "max_record_bytes": n, "user_records": [...]}`:
//!   any user records (`partition_key`, `explicit_hash_key`, `data`);
//! - `{"command": "deaggregate", "records": [{"partition_key", "data"}]}`:
//!   each record's user records, or its error.

use std::io::Read as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use edr_preprocessor::aggregate::{self, KinesisRecord};
use edr_preprocessor::config::PartitionKey;
use edr_preprocessor::model::Limits;
use edr_preprocessor::transform::transform;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
enum Request {
    Submission {
        body: String,
        max_record_bytes: usize,
    },
    Aggregate {
        max_record_bytes: usize,
        user_records: Vec<UserRecord>,
    },
    Deaggregate {
        records: Vec<UserRecord>,
    },
}

#[derive(Deserialize)]
struct UserRecord {
    partition_key: String,
    #[serde(default)]
    explicit_hash_key: Option<String>,
    data: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let answer = match serde_json::from_str(&input)? {
        Request::Submission {
            body,
            max_record_bytes,
        } => submission(&body, max_record_bytes)?,
        Request::Aggregate {
            max_record_bytes,
            user_records,
        } => {
            let data = user_records
                .iter()
                .map(|u| STANDARD.decode(&u.data))
                .collect::<Result<Vec<_>, _>>()?;
            let input = user_records.iter().zip(&data).map(|(u, d)| {
                (
                    u.partition_key.as_str(),
                    u.explicit_hash_key.as_deref(),
                    d.as_slice(),
                )
            });
            Value::Array(
                aggregate::aggregate(input, max_record_bytes)?
                    .iter()
                    .map(record)
                    .collect(),
            )
        }
        Request::Deaggregate { records } => {
            let mut out = Vec::new();
            for r in &records {
                out.push(
                    match aggregate::deaggregate(&STANDARD.decode(&r.data)?, &r.partition_key) {
                        Ok(users) => json!({"user_records": users.iter().map(|u| json!({
                        "partition_key": u.partition_key,
                        "explicit_hash_key": u.explicit_hash_key,
                        "data": STANDARD.encode(&u.data),
                        "sub_sequence_number": u.sub_sequence_number,
                        "aggregated": u.aggregated,
                    })).collect::<Vec<_>>()}),
                        Err(e) => json!({"error": e.as_str()}),
                    },
                );
            }
            Value::Array(out)
        }
    };
    println!("{answer}");
    Ok(())
}

fn submission(body: &str, max_record_bytes: usize) -> Result<Value, Box<dyn std::error::Error>> {
    let encoded = transform(
        body,
        Limits::with_max_events(10_000),
        PartitionKey::SubmissionId,
        "2026-11-22T18:47:44.758345Z",
    )
    .map_err(|r| r.reason.as_str())?;
    let key = &*encoded.partition_key;
    let aggregated = aggregate::aggregate(
        encoded.records.iter().map(|r| (key, None, &r[..])),
        max_record_bytes,
    )?;
    Ok(json!({
        "per_event": encoded.records.iter().map(|r| json!({"partition_key": key, "data": STANDARD.encode(r)})).collect::<Vec<_>>(),
        "aggregated": aggregated.iter().map(record).collect::<Vec<_>>(),
    }))
}

fn record(r: &KinesisRecord) -> Value {
    json!({
        "partition_key": r.partition_key,
        "explicit_hash_key": r.explicit_hash_key,
        "data": STANDARD.encode(&r.data),
        "user_records": r.user_records,
    })
}
