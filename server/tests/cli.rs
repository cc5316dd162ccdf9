//! Black-box tests of the `nudge` binary: gen → import → query, explain and
//! check, with their outputs and exit codes, and the unhappy paths.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn nudge(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nudge"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nudge");
    if let Some(bytes) = stdin {
        child.stdin.take().expect("stdin").write_all(bytes).expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn gen_import_then_query_explain_and_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    let generated = nudge(&["gen", "--users", "300", "--seed", "3"], None);
    assert!(generated.status.success(), "{}", text(&generated.stderr));
    let again = nudge(&["gen", "--users", "300", "--seed", "3"], None);
    assert_eq!(generated.stdout, again.stdout, "gen is deterministic");
    let lines = generated.stdout.iter().filter(|&&b| b == b'\n').count();

    let imported = nudge(&["import", "--data", data, "-"], Some(&generated.stdout));
    assert!(imported.status.success(), "{}", text(&imported.stderr));
    assert!(
        text(&imported.stderr).contains(&format!("imported {lines} records")),
        "{}",
        text(&imported.stderr)
    );

    let now = "2026-11-01T00:00:00Z";
    let query = |q: &str, limit: &str| {
        nudge(&["query", "--data", data, "--now", now, "--limit", limit, "--json", q], None)
    };
    let all = query(r#"did "Session Started" or not did "Session Started""#, "1000");
    let all: serde_json::Value = serde_json::from_slice(&all.stdout).expect("json");
    assert_eq!(all["count"], 300, "every generated user is in the universe");
    let some = query(r#"did "Session Started" in last 30d"#, "5");
    let some: serde_json::Value = serde_json::from_slice(&some.stdout).expect("json");
    let count = some["count"].as_u64().expect("count");
    assert!(count > 50 && count < 300, "about 45 % are active: {count}");
    let listed: Vec<&str> =
        some["users"].as_array().expect("users").iter().filter_map(|u| u.as_str()).collect();
    assert_eq!(listed.len(), 5);
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "sorted ids: {listed:?}");
    assert!(some["took_us"].is_u64());

    let typo = query(r#"did "Sesion Started""#, "5");
    let typo: serde_json::Value = serde_json::from_slice(&typo.stdout).expect("json");
    assert_eq!(typo["count"], 0);
    assert!(
        typo["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("\"Sesion Started\" has never been seen"))
    );

    let explained = nudge(
        &["explain", "--data", data, "--now", now, r#"did "Charged" and user.city == "Delhi""#],
        None,
    );
    let plan = text(&explained.stdout);
    assert!(explained.status.success(), "{}", text(&explained.stderr));
    // Count-only and of bitmap-shaped clauses: the larger set first, the smaller one counted last.
    let steps: Vec<&str> = plan.lines().filter(|l| l.contains('[')).collect();
    assert_eq!(steps.len(), 2, "{plan}");
    assert!(steps[0].contains(r#"did "Charged""#), "{plan}");
    assert!(steps[1].contains(r#"user.city == "Delhi""#), "{plan}");
    assert!(plan.contains("total:"), "{plan}");

    let bad = nudge(&["query", "--data", data, r#"did "Added To Cart" in last seven"#], None);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).starts_with(
            "error: expected a duration such as 10m or 7d after `in last`\n --> line 1, column 28"
        ),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn check_needs_no_data_and_fails_with_the_rendered_error() {
    let ok = nudge(&["check", r#"DID "A" AT LEAST 2 TIMES IN LAST 7 days"#], None);
    assert!(ok.status.success());
    assert_eq!(text(&ok.stdout).trim(), r#"did "A" at least 2 times in last 7d"#);
    let trigger = nudge(&["check", r#"on "Flight Booked" at travel_date - 1d"#], None);
    assert_eq!(text(&trigger.stdout).trim(), r#"on "Flight Booked" at travel_date - 1d"#);
    let bad = nudge(&["check", "did"], None);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("--> line 1, column 3"), "{}", text(&bad.stderr));
}

#[test]
fn import_errors_name_the_line_and_keep_what_came_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    let input = b"{\"user_id\": \"a\", \"name\": \"E\", \"ts\": 1}\n\n{\"user_id\": \"b\", \"name\": \"\"}\n";
    let failed = nudge(&["import", "--data", data], Some(input));
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        text(&failed.stderr).contains("line 3: invalid `name`: event name must not be empty"),
        "{}",
        text(&failed.stderr)
    );
    let empty = nudge(&["query", "--data", data, "--json", "did \"E\""], None);
    let empty: serde_json::Value = serde_json::from_slice(&empty.stdout).expect("json");
    assert_eq!(empty["count"], 0, "the bad line rejected its whole batch");
    let missing = nudge(&["query", "--data", "/nonexistent/nudge", "did \"E\""], None);
    assert!(text(&missing.stderr).contains("holds no Nudge data"), "{}", text(&missing.stderr));
}

#[test]
fn import_refuses_an_unknown_field_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    // `timestamp` for `ts` would have been dropped (the event stored at import time).
    let input = b"{\"user_id\": \"a\", \"name\": \"E\", \"timestamp\": 1}\n";
    let failed = nudge(&["import", "--data", data], Some(input));
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        text(&failed.stderr).contains("line 1: invalid `timestamp`: unknown field `timestamp`"),
        "{}",
        text(&failed.stderr)
    );
}
