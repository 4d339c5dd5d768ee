//! The numbers the documentation (README.md and docs/) quotes about packing
//! and backoff, recomputed from the code: the publisher against a Kinesis that answers every call after a
//! fixed round trip, on the paused clock, so a call count or a round count
//! in the docs that the code does not produce fails here.

use crate::support;

use std::time::Duration;

use support::*;

const ROUND_TRIP: Duration = Duration::from_millis(20);

/// README.md and every page of docs/, one after the other.
fn docs() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut pages: Vec<_> = std::fs::read_dir(format!("{root}/docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    let mut text = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    for page in pages {
        text.push_str("\n\n");
        text.push_str(&std::fs::read_to_string(page).unwrap());
    }
    text
}

/// (calls, rounds, milliseconds) for `b` submissions of 8 events.
async fn measure(b: usize, ordering: &str) -> (usize, u128, u128) {
    let kinesis = ScriptedKinesis::healthy().with_delay(ROUND_TRIP);
    let kinesis = if ordering == "relaxed" {
        kinesis.relaxed()
    } else {
        kinesis
    };
    let h = handler(kinesis, &[("ORDERING", ordering)]);
    let event = batch(
        (0..b)
            .map(|n| message(&format!("m{n}"), &b64(&submission(n, 4, 4))))
            .collect(),
    );
    let started = tokio::time::Instant::now();
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let ms = started.elapsed().as_millis();
    (h.kinesis().calls(), ms / ROUND_TRIP.as_millis(), ms)
}

/// "strict C call(s) in R round(s) (T ms)" after `from` in `text`.
fn quoted(text: &str, mode: &str, from: usize) -> (usize, (usize, u128, u128)) {
    let at = from + text[from..].find(&format!("{mode} ")).unwrap() + mode.len() + 1;
    let numbers: Vec<u128> = text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .take(3)
        .map(|w| w.parse().unwrap())
        .collect();
    (at, (numbers[0] as usize, numbers[1], numbers[2]))
}

#[tokio::test(start_paused = true)]
async fn the_strict_and_relaxed_call_counts_in_the_docs_are_the_publishers() {
    let text = docs();
    let start = text
        .find("The trade-off in numbers")
        .expect("the docs have the trade-off paragraph");
    let paragraph = &text[start..start + text[start..].find("\n\n").unwrap()];
    let paragraph = paragraph.replace('\n', " ");
    let mut at = paragraph.find("*B* = 10 sensor").unwrap();
    for b in [10, 1000] {
        for mode in ["strict", "relaxed"] {
            let (next, quoted) = quoted(&paragraph, mode, at);
            assert_eq!(quoted, measure(b, mode).await, "B = {b}, {mode}");
            at = next;
        }
    }
}

#[test]
fn the_backoff_the_docs_quote_is_the_default() {
    let config = config(&[]);
    let quoted = format!(
        "{} ms doubling up to {} ms",
        config.retry_base_delay.as_millis(),
        config.retry_max_delay.as_millis()
    );
    assert!(docs().contains(&quoted), "the docs should say {quoted:?}");
}
