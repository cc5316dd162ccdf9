//! A real full disk under the real `nudge serve`: the data directory sits on a
//! small tmpfs, and batches are ingested until it is full.
//!
//! - The batch that meets the full disk is answered `507 disk_full` with a
//!   message that says so (and names no path); later writes are refused too
//!   (507 or 503), never acknowledged; reads keep working.
//! - After the file system is given more room and the server restarted,
//!   every acknowledged batch is there (sent again, it is all duplicates),
//!   the batch that met the full disk is there whole or not at all, the
//!   batches refused after it are absent, and new writes are acknowledged.
//!
//! Mounting needs a mount namespace: the test runs itself again under
//! `unshare --map-root-user --mount` (util-linux), which works for root and,
//! where user namespaces are enabled, for anyone.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use nudge_tests::server::{NudgeServer, TEST_ADMIN_KEY, TEST_WRITE_KEY, call};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Set in the re-run inside the namespace.
const INSIDE: &str = "NUDGE_DISK_FULL_INSIDE";
/// Size of the tmpfs the data directory starts on.
const SMALL_FS: &str = "size=3m";
/// Size it is grown to before the restart.
const LARGE_FS: &str = "size=256m";
/// Events per batch (each about 1 KiB).
const EVENTS_PER_BATCH: usize = 100;
/// Most batches sent before giving up on filling the disk.
const MAX_BATCHES: u64 = 1000;

/// About 1 KiB of text that does not compress, the same for the same seed.
fn noise(seed: u64) -> String {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..512).map(|_| format!("{:02x}", rng.gen_range(0..=255u8))).collect()
}

fn batch(n: u64) -> Value {
    Value::Array(
        (0..EVENTS_PER_BATCH)
            .map(|i| {
                json!({"user_id": format!("u{n}-{i}"), "name": "Filled", "id": format!("b{n}-{i}"),
                    "props": {"pad": noise(n * 1000 + i as u64)}})
            })
            .collect(),
    )
}

fn mount(args: &[&str]) {
    let status = Command::new("mount").args(args).status().expect("running mount");
    assert!(status.success(), "mount {args:?} failed");
}

fn count(server: &NudgeServer) -> u64 {
    let (status, answer) = call(
        "POST",
        &server.url("/v1/query"),
        TEST_ADMIN_KEY,
        Some(json!({"q": "did \"Filled\"", "limit": 0})),
    );
    assert_eq!(status, 200, "{answer}");
    answer["count"].as_u64().unwrap()
}

fn fill_and_recover(root: &Path) {
    mount(&["-t", "tmpfs", "-o", SMALL_FS, "nudge-test", root.to_str().unwrap()]);
    let data = root.join("data");
    let server = NudgeServer::start(&data, &[]);
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    let mut full_answer = None;
    for n in 0..MAX_BATCHES {
        let (status, answer) =
            call("POST", &server.url("/v1/events"), TEST_WRITE_KEY, Some(batch(n)));
        match status {
            200 => acked.push(n),
            507 | 503 => {
                if status == 507 && full_answer.is_none() {
                    full_answer = Some(answer.clone());
                }
                refused.push(n);
                if refused.len() >= 3 {
                    break;
                }
            }
            other => panic!("batch {n}: unexpected {other}: {answer}"),
        }
    }
    let full = full_answer.expect("a 507 answer once the disk was full");
    assert_eq!(full["error"]["code"], "disk_full", "{full}");
    let message = full["error"]["message"].as_str().unwrap();
    assert!(message.contains("disk is full"), "{message}");
    assert!(!message.contains(root.to_str().unwrap()), "the answer names a path: {message}");
    assert!(!acked.is_empty(), "some batches fit before the disk was full");
    // Reads still work, and see exactly the acknowledged events.
    assert_eq!(count(&server), acked.len() as u64 * EVENTS_PER_BATCH as u64);
    assert_eq!(call("GET", &server.url("/healthz"), TEST_WRITE_KEY, None).0, 200);
    drop(server); // SIGKILL: shutting down cleanly needs disk space for a snapshot

    mount(&["-o", &format!("remount,{LARGE_FS}"), root.to_str().unwrap()]);
    let server = NudgeServer::start(&data, &[]);
    assert_eq!(count(&server), acked.len() as u64 * EVENTS_PER_BATCH as u64);
    for &n in &acked {
        let (status, answer) =
            call("POST", &server.url("/v1/events"), TEST_WRITE_KEY, Some(batch(n)));
        assert_eq!(
            (status, answer["duplicates"].as_u64()),
            (200, Some(EVENTS_PER_BATCH as u64)),
            "batch {n}: {answer}"
        );
    }
    // The batch that met the full disk was not acknowledged: it is there whole
    // or not at all. The ones after it never reached the log.
    for (k, &n) in refused.iter().enumerate() {
        let (status, answer) =
            call("POST", &server.url("/v1/events"), TEST_WRITE_KEY, Some(batch(n)));
        assert_eq!(status, 200, "{answer}");
        let accepted = answer["accepted"].as_u64().unwrap();
        if k == 0 {
            assert!(
                accepted == 0 || accepted == EVENTS_PER_BATCH as u64,
                "batch {n} in part: {answer}"
            );
        } else {
            assert_eq!(accepted, EVENTS_PER_BATCH as u64, "refused batch {n} was stored: {answer}");
        }
    }
    let total = (acked.len() + refused.len()) as u64 * EVENTS_PER_BATCH as u64;
    assert_eq!(count(&server), total);
    assert!(server.stop().success());
    eprintln!(
        "disk full after {} acknowledged batches of {EVENTS_PER_BATCH} events; {} refused; all recovered",
        acked.len(),
        refused.len()
    );
}

#[test]
fn a_full_disk_is_a_clear_error_and_loses_nothing_acknowledged() {
    let root = tempfile::tempdir().unwrap();
    if std::env::var_os(INSIDE).is_some() {
        let root = std::env::var(INSIDE).unwrap();
        fill_and_recover(Path::new(&root));
        return;
    }
    let status = Command::new("unshare")
        .args(["--map-root-user", "--mount"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_full_disk_is_a_clear_error_and_loses_nothing_acknowledged",
            "--nocapture",
        ])
        .env(INSIDE, root.path())
        .status()
        .expect("running unshare (util-linux)");
    assert!(status.success(), "the test inside the mount namespace failed: {status:?}");
}
