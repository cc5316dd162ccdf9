//! Fuzz target `json_record`: one NDJSON line or HTTP ingest record, decoded exactly as
//! `nudge import` (`server/src/cli/import.rs`) decodes it, with the record structs that
//! `POST /v1/events`, `/v1/profiles` and `/v1/subscriptions` (`server/src/http/routes/`)
//! decode into: `ndjson::decode` from the bytes straight into an engine `Record` (its
//! `type` picks the struct), then the engine's own `record::validate`.
//!
//! Failure means a panic, or a broken round trip: a record that validates must encode back
//! to JSON (`ndjson::encode`) that decodes to the same record. Properties compare as sets:
//! keys are unique (validation refuses repeats) and JSON objects do not keep their order.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nudge_engine::Record;
use nudge_server::json::ndjson;

/// The record with every property list sorted by key.
fn sorted(mut record: Record) -> Record {
    match &mut record {
        Record::Event(event) => event.props.sort_by(|a, b| a.0.cmp(&b.0)),
        Record::Profile(profile) => {
            for list in [&mut profile.set, &mut profile.set_once, &mut profile.append] {
                list.sort_by(|a, b| a.0.cmp(&b.0));
            }
            profile.increment.sort_by(|a, b| a.0.cmp(&b.0));
            profile.unset.sort();
        }
        _ => {}
    }
    record
}

fuzz_target!(|data: &[u8]| {
    // The import reads lines as text and trims them; the HTTP API reads bytes.
    let Ok(record) = ndjson::decode(data) else {
        return;
    };
    if nudge_engine::validate(&record).is_err() {
        return;
    }
    let _ = nudge_engine::validate_batch(std::slice::from_ref(&record));
    let encoded = ndjson::encode(&record).to_string();
    let again = ndjson::decode(encoded.as_bytes())
        .unwrap_or_else(|e| panic!("{encoded} (from a valid record) does not decode: {e}"));
    assert_eq!(sorted(again), sorted(record), "round trip through {encoded}");
});
