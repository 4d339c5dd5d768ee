#!/usr/bin/env bash
# Deploys edr-preprocessor to a local AWS emulator with the same calls a user
# makes against AWS: an SQS queue (with a dead-letter queue and an optional
# rejects queue), a Kinesis stream, an IAM role, the Lambda function
# (provided.al2023, the `bootstrap` binary zipped) and the SQS event source
# mapping with ReportBatchItemFailures.
#
# The endpoint comes from the environment, so one script serves both emulators:
#
#   MiniStack (this repo's `make emulator` / `make demo`):
#       AWS_ENDPOINT_URL=http://127.0.0.1:4566 scripts/deploy-local.sh
#   LocalStack (Docker), with awscli-local installed:
#       AWS_CLI=awslocal scripts/deploy-local.sh
#   or  AWS_ENDPOINT_URL=http://localhost:4566 scripts/deploy-local.sh
#
# It refuses to run without an endpoint, so it never deploys to a real account.
# Re-running it updates the function's code and configuration and the
# mapping's batch size in place.
#
# Settings (environment variables, defaults in brackets):
#   ZIP                  deployment package [target/lambda/bootstrap/bootstrap.zip]
#                        (`cargo lambda build --release --output-format zip` writes it there)
#   FUNCTION_NAME        [edr-preprocessor]
#   QUEUE_NAME           source queue [submissions]
#   STREAM_NAME          Kinesis stream [events]
#   SHARD_COUNT          [2]
#   REJECTS_QUEUE_NAME   queue for invalid submissions, "" for none [submissions-rejects]
#   DLQ_NAME             dead-letter queue of the source queue, "" for none [submissions-dlq]
#   MAX_RECEIVE_COUNT    receives before a message moves to the DLQ [5]
#   BATCH_SIZE           messages per invocation [10]
#   BATCHING_WINDOW      MaximumBatchingWindowInSeconds [0]
#   VISIBILITY_TIMEOUT   of the source queue, seconds [30]
#   FUNCTION_TIMEOUT     seconds, at most VISIBILITY_TIMEOUT [10]
#   MEMORY_SIZE          MB [128]
#   ARCHITECTURE         x86_64 | arm64 [x86_64]
#   PARTITION_KEY        submission_id | device_id [submission_id]
#   ORDERING             strict | relaxed [strict]
#   INVALID_EVENTS       reject-submission | drop-event [reject-submission]
#   PIPELINE_KEY         the secret sensors never see (docs/contract.md) [random]
#   RECORD_FORMAT        per-event | aggregated [per-event] (docs/contract.md)
#   RESUME               resend | off [resend]: a submission published part-way goes
#                        back to its queue with its progress (the role gets no policy
#                        here: the emulators do not enforce IAM)
#   FUNCTION_ENV         more function variables, "K=V,K2=V2" (e.g. RUST_LOG=aws_smithy_runtime=debug: a dependency's details) [""]
#   AWS_CLI              aws | awslocal | "lstk aws" [aws, or awslocal when AWS_ENDPOINT_URL is unset]
#                        (with aws, AWS_ENDPOINT_URL is required)
#   AWS_REGION / AWS_DEFAULT_REGION [LOCAL_REGION, else eu-west-1: the region of the
#                        original homework environment and its sensor fleet]; credentials
#                        default to test/test.
#
# The function gets no AWS_ENDPOINT_URL from here: both emulators inject their
# own into the functions they run (MiniStack when started with
# AWS_ENDPOINT_URL set, as `make emulator` does; LocalStack always).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

ZIP=${ZIP:-$ROOT/target/lambda/bootstrap/bootstrap.zip}
FUNCTION_NAME=${FUNCTION_NAME:-edr-preprocessor}
QUEUE_NAME=${QUEUE_NAME:-submissions}
STREAM_NAME=${STREAM_NAME:-events}
SHARD_COUNT=${SHARD_COUNT:-2}
REJECTS_QUEUE_NAME=${REJECTS_QUEUE_NAME-submissions-rejects}
DLQ_NAME=${DLQ_NAME-submissions-dlq}
MAX_RECEIVE_COUNT=${MAX_RECEIVE_COUNT:-5}
BATCH_SIZE=${BATCH_SIZE:-10}
BATCHING_WINDOW=${BATCHING_WINDOW:-0}
VISIBILITY_TIMEOUT=${VISIBILITY_TIMEOUT:-30}
FUNCTION_TIMEOUT=${FUNCTION_TIMEOUT:-10}
MEMORY_SIZE=${MEMORY_SIZE:-128}
ARCHITECTURE=${ARCHITECTURE:-x86_64}
PARTITION_KEY=${PARTITION_KEY:-submission_id}
# The secret sensors never see (docs/contract.md, PIPELINE_KEY): a new random
# one for each deployment unless given.
PIPELINE_KEY=${PIPELINE_KEY:-$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')}
ORDERING=${ORDERING:-strict}
INVALID_EVENTS=${INVALID_EVENTS:-reject-submission}
RESUME=${RESUME:-resend}
RECORD_FORMAT=${RECORD_FORMAT:-per-event}
FUNCTION_ENV=${FUNCTION_ENV:-}
ROLE_NAME=${ROLE_NAME:-$FUNCTION_NAME-local}

export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-${AWS_REGION:-${LOCAL_REGION:-eu-west-1}}}
export AWS_REGION=$AWS_DEFAULT_REGION
export AWS_PAGER=""

die() { echo "deploy-local: $*" >&2; exit 1; }
step() { echo "==> $*" >&2; }

if [[ -z ${AWS_CLI:-} ]]; then
    if [[ -z ${AWS_ENDPOINT_URL:-} ]] && command -v awslocal >/dev/null; then
        AWS_CLI=awslocal
    else
        AWS_CLI=aws
    fi
fi
read -r -a aws_cmd <<<"$AWS_CLI"  # may be several words, e.g. "lstk aws"
command -v "${aws_cmd[0]}" >/dev/null || die "'${aws_cmd[0]}' not found (pip install awscli awscli-local)"
case $(basename "${aws_cmd[0]}") in
    awslocal | lstk)
        # These add LocalStack's endpoint themselves (LOCALSTACK_HOST, default localhost:4566).
        ;;
    *)
        [[ -n ${AWS_ENDPOINT_URL:-} ]] ||
            die "no local endpoint: set AWS_ENDPOINT_URL (e.g. http://127.0.0.1:4566) or AWS_CLI=awslocal"
        # Passed explicitly: AWS CLI v1 ignores AWS_ENDPOINT_URL for SQS in us-east-1.
        aws_cmd+=(--endpoint-url "$AWS_ENDPOINT_URL")
        ;;
esac
# awslocal's deprecation banner would repeat on every call.
export DISABLE_DEPRECATION_NOTICE=1
awsl() { "${aws_cmd[@]}" "$@"; }

[[ -f $ZIP ]] || die "no deployment package at $ZIP (make deploy-local builds it; or: cargo lambda build --release --output-format zip)"
[[ $BATCH_SIZE =~ ^[0-9]+$ && $BATCH_SIZE -ge 1 ]] || die "BATCH_SIZE must be a positive number"
[[ $BATCHING_WINDOW =~ ^[0-9]+$ ]] || die "BATCHING_WINDOW must be whole seconds"
# AWS: a standard queue's batch size above 10 needs a batching window (MiniStack does not check).
(( BATCH_SIZE <= 10 || BATCHING_WINDOW >= 1 )) ||
    die "BATCH_SIZE above 10 needs BATCHING_WINDOW of at least 1 second (AWS rule)"
[[ $VISIBILITY_TIMEOUT =~ ^[0-9]+$ && $FUNCTION_TIMEOUT =~ ^[0-9]+$ ]] || die "timeouts are whole seconds"
# AWS rejects a mapping whose queue hides a message for less time than the
# function may run; MiniStack does not check it, so check here.
(( VISIBILITY_TIMEOUT >= FUNCTION_TIMEOUT )) ||
    die "VISIBILITY_TIMEOUT ($VISIBILITY_TIMEOUT s) must be at least FUNCTION_TIMEOUT ($FUNCTION_TIMEOUT s)"

json_escape() { local s=$1; s=${s//\\/\\\\}; s=${s//\"/\\\"}; printf '%s' "$s"; }

queue_arn() {
    awsl sqs get-queue-attributes --queue-url "$1" --attribute-names QueueArn \
        --query Attributes.QueueArn --output text
}

# --- queues -------------------------------------------------------------------
queue_attrs="{\"VisibilityTimeout\":\"$VISIBILITY_TIMEOUT\""
if [[ -n $DLQ_NAME ]]; then
    step "dead-letter queue $DLQ_NAME"
    dlq_url=$(awsl sqs create-queue --queue-name "$DLQ_NAME" --query QueueUrl --output text)
    dlq_arn=$(queue_arn "$dlq_url")
    redrive="{\\\"deadLetterTargetArn\\\":\\\"$dlq_arn\\\",\\\"maxReceiveCount\\\":\\\"$MAX_RECEIVE_COUNT\\\"}"
    queue_attrs+=",\"RedrivePolicy\":\"$redrive\""
fi
queue_attrs+="}"

step "queue $QUEUE_NAME (visibility timeout ${VISIBILITY_TIMEOUT}s)"
queue_url=$(awsl sqs create-queue --queue-name "$QUEUE_NAME" --query QueueUrl --output text)
awsl sqs set-queue-attributes --queue-url "$queue_url" --attributes "$queue_attrs"
queue_arn=$(queue_arn "$queue_url")

rejects_url=""
if [[ -n $REJECTS_QUEUE_NAME ]]; then
    step "rejects queue $REJECTS_QUEUE_NAME"
    rejects_url=$(awsl sqs create-queue --queue-name "$REJECTS_QUEUE_NAME" --query QueueUrl --output text)
fi

# --- stream -------------------------------------------------------------------
step "stream $STREAM_NAME ($SHARD_COUNT shards)"
if ! awsl kinesis describe-stream-summary --stream-name "$STREAM_NAME" >/dev/null 2>&1; then
    awsl kinesis create-stream --stream-name "$STREAM_NAME" --shard-count "$SHARD_COUNT"
fi
awsl kinesis wait stream-exists --stream-name "$STREAM_NAME"

# --- role ---------------------------------------------------------------------
step "role $ROLE_NAME"
if ! role_arn=$(awsl iam get-role --role-name "$ROLE_NAME" --query Role.Arn --output text 2>/dev/null); then
    role_arn=$(awsl iam create-role --role-name "$ROLE_NAME" --query Role.Arn --output text \
        --assume-role-policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}')
fi

# --- function -----------------------------------------------------------------
env_json="\"STREAM_NAME\":\"$(json_escape "$STREAM_NAME")\",\"PARTITION_KEY\":\"$(json_escape "$PARTITION_KEY")\",\"ORDERING\":\"$(json_escape "$ORDERING")\""
env_json+=",\"PIPELINE_KEY\":\"$(json_escape "$PIPELINE_KEY")\""
env_json+=",\"INVALID_EVENTS\":\"$(json_escape "$INVALID_EVENTS")\",\"RESUME\":\"$(json_escape "$RESUME")\""
env_json+=",\"RECORD_FORMAT\":\"$(json_escape "$RECORD_FORMAT")\""
[[ -n $rejects_url ]] && env_json+=",\"REJECTS_QUEUE_URL\":\"$(json_escape "$rejects_url")\""
if [[ -n $FUNCTION_ENV ]]; then
    IFS=',' read -r -a extra <<<"$FUNCTION_ENV"
    for kv in "${extra[@]}"; do
        [[ $kv == *=* ]] || die "FUNCTION_ENV entry '$kv' is not K=V"
        env_json+=",\"$(json_escape "${kv%%=*}")\":\"$(json_escape "${kv#*=}")\""
    done
fi
environment="{\"Variables\":{$env_json}}"

if awsl lambda get-function --function-name "$FUNCTION_NAME" >/dev/null 2>&1; then
    step "function $FUNCTION_NAME: updating code and configuration"
    awsl lambda update-function-code --function-name "$FUNCTION_NAME" \
        --zip-file "fileb://$ZIP" >/dev/null
    awsl lambda wait function-updated-v2 --function-name "$FUNCTION_NAME"
    awsl lambda update-function-configuration --function-name "$FUNCTION_NAME" \
        --timeout "$FUNCTION_TIMEOUT" --memory-size "$MEMORY_SIZE" \
        --environment "$environment" >/dev/null
    awsl lambda wait function-updated-v2 --function-name "$FUNCTION_NAME"
else
    step "function $FUNCTION_NAME (provided.al2023, $ARCHITECTURE)"
    awsl lambda create-function --function-name "$FUNCTION_NAME" \
        --runtime provided.al2023 --handler bootstrap --architectures "$ARCHITECTURE" \
        --role "$role_arn" --zip-file "fileb://$ZIP" \
        --timeout "$FUNCTION_TIMEOUT" --memory-size "$MEMORY_SIZE" \
        --environment "$environment" >/dev/null
    awsl lambda wait function-active-v2 --function-name "$FUNCTION_NAME"
fi

# --- event source mapping -----------------------------------------------------
esm_uuid=$(awsl lambda list-event-source-mappings --function-name "$FUNCTION_NAME" \
    --event-source-arn "$queue_arn" --query 'EventSourceMappings[0].UUID' --output text)
if [[ -n $esm_uuid && $esm_uuid != None ]]; then
    step "event source mapping $esm_uuid: batch size $BATCH_SIZE"
    awsl lambda update-event-source-mapping --uuid "$esm_uuid" \
        --batch-size "$BATCH_SIZE" --maximum-batching-window-in-seconds "$BATCHING_WINDOW" \
        --function-response-types ReportBatchItemFailures >/dev/null
else
    step "event source mapping $QUEUE_NAME -> $FUNCTION_NAME (batch size $BATCH_SIZE)"
    esm_uuid=$(awsl lambda create-event-source-mapping --function-name "$FUNCTION_NAME" \
        --event-source-arn "$queue_arn" \
        --batch-size "$BATCH_SIZE" --maximum-batching-window-in-seconds "$BATCHING_WINDOW" \
        --function-response-types ReportBatchItemFailures \
        --query UUID --output text)
fi

# Machine-readable summary on stdout (the steps above went to stderr).
cat <<EOF
QUEUE_URL=$queue_url
QUEUE_ARN=$queue_arn
REJECTS_QUEUE_URL=$rejects_url
DLQ_URL=${dlq_url:-}
STREAM_NAME=$STREAM_NAME
FUNCTION_NAME=$FUNCTION_NAME
EVENT_SOURCE_MAPPING=$esm_uuid
EOF
