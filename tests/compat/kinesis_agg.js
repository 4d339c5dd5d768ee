// The Node.js end of the compatibility tests: awslabs' aws-kinesis-agg
// (installed into .cache/compat-node by the Makefile). One JSON request on
// stdin, one JSON answer on stdout, data in base64:
//   {"command": "deaggregate", "records": [{"partition_key", "data"}]}
//     -> each record's user records, or its error;
//   {"command": "aggregate", "user_records": [{"partition_key", "explicit_hash_key", "data"}]}
//     -> the aggregated records of its RecordAggregator.
"use strict";
const agg = require("aws-kinesis-agg");

function deaggregate(records) {
  return records.map((record, i) => {
    const kinesisRecord = { partitionKey: record.partition_key, sequenceNumber: String(i), data: record.data };
    let answer;
    agg.deaggregateSync(kinesisRecord, true, (err, userRecords) => {
      answer = err
        ? { error: String(err) }
        : {
            user_records: userRecords.map((u) => ({
              partition_key: u.partitionKey,
              explicit_hash_key: u.explicitPartitionKey ?? null,
              data: u.data,
              sub_sequence_number: u.subSequenceNumber ?? null,
            })),
          };
    });
    return answer;
  });
}

function aggregate(userRecords) {
  const out = [];
  const onReady = (err, encoded) => {
    if (err) throw err;
    out.push({
      partition_key: encoded.partitionKey,
      explicit_hash_key: encoded.ExplicitHashKey ?? null,
      data: encoded.data.toString("base64"),
    });
  };
  const aggregator = new agg.RecordAggregator(onReady);
  const records = userRecords.map((u) => ({
    partitionKey: u.partition_key,
    ...(u.explicit_hash_key === null || u.explicit_hash_key === undefined ? {} : { explicitHashKey: u.explicit_hash_key }),
    data: Buffer.from(u.data, "base64"),
  }));
  aggregator.aggregateRecords(records, true, onReady);
  return out;
}

const request = JSON.parse(require("fs").readFileSync(0, "utf8"));
const answer = request.command === "deaggregate" ? deaggregate(request.records) : aggregate(request.user_records);
process.stdout.write(JSON.stringify(answer));
