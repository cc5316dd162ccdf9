//! Behaviour of the parser through its public API: canonical round trips, equivalence of
//! non-canonical spellings, precedence, the `where … and` rule, the structure of the
//! specification's worked examples, limits, error details, and a property test that prints
//! random trees and parses them back.
//!
//! The corpus with reviewed snapshots is in `corpus.rs`; this file asserts behaviour
//! directly, one rule per test.

use nudge_query_lang::*;

/// Parses a segment or panics with the rendered error.
#[track_caller]
fn segment(source: &str) -> Expr {
    parse_segment(source).unwrap_or_else(|error| panic!("\n{}", error.render(source)))
}

/// Parses a trigger or panics with the rendered error.
#[track_caller]
fn trigger(source: &str) -> Trigger {
    parse_trigger(source).unwrap_or_else(|error| panic!("\n{}", error.render(source)))
}

/// Asserts that `canonical` parses and prints back unchanged (sqlparser's `verified_stmt`).
#[track_caller]
fn verified(canonical: &str) -> Expr {
    let expr = segment(canonical);
    assert_eq!(expr.to_string(), canonical);
    expr
}

/// Asserts that `source` parses to the same tree as `canonical` and prints as `canonical`
/// (sqlparser's `one_statement_parses_to`).
#[track_caller]
fn parses_to(source: &str, canonical: &str) {
    let expr = segment(source);
    assert_eq!(expr, verified(canonical), "{source}");
    assert_eq!(expr.to_string(), canonical, "{source}");
}

/// The error of a segment that must not parse.
#[track_caller]
fn segment_error(source: &str) -> Error {
    match parse_segment(source) {
        Ok(expr) => panic!("`{source}` parses as `{expr}`"),
        Err(error) => error,
    }
}

/// The clause of an expression that is a single clause.
#[track_caller]
fn clause(expr: &Expr) -> &Clause {
    match &expr.node {
        ExprKind::Clause(clause) => clause,
        other => panic!("not a clause: {other:?}"),
    }
}

/// The operands of an `And`.
#[track_caller]
fn and_operands(expr: &Expr) -> &[Expr] {
    match &expr.node {
        ExprKind::And(operands) => operands,
        other => panic!("not an and: {other:?}"),
    }
}

const DAY_MS: u64 = 86_400_000;

// ----------------------------------------------------------------------- specification

const SPEC_SEGMENTS: &str = r#"
# engaged users: several sessions and clicks lately
did "Session Started" at least 5 times in last 14d and did "Push Clicked" in last 30d

# at-risk: abandoned a cart, short sessions
did "Added To Cart" then not "Charged" within 1h in last 7d
  and avg(duration_s) of "Session Ended" in last 7d < 60

# new users
first did "Session Started" in last 3d

# viewed a product more than 3 times without purchase
did "Product Viewed" at least 4 times in last 7d and not did "Charged" in last 7d

# bounced three times in a row
did "Page Viewed" where duration_s < 10 3 times in a row in last 1d

# help page after a product page
did "Product Viewed" then "Help Viewed" within 30m in last 7d

# high-value Delhi shoppers reachable by push
sum(amount) of "Charged" in last 90d > 5000 and user.city == "Delhi" and reachable via webpush
"#;

const SPEC_TRIGGERS: &[&str] = &[
    r#"on "Added To Cart" unless "Charged" within 10m if reachable via webpush"#,
    r#"on "Flight Booked" at travel_date - 1d"#,
    r#"on "Product Viewed" if did "Product Viewed" where product_id == event.product_id at least 3 times in last 1d"#,
    r#"on "Added To Cart" unless "Charged" where order_id == event.cart_id within 10m"#,
];

/// Splits the specification block into its examples (a comment line starts each).
fn spec_segments() -> Vec<String> {
    SPEC_SEGMENTS
        .split("\n\n")
        .map(str::trim)
        .filter(|example| !example.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_worked_example_of_the_specification_parses_and_round_trips() {
    let examples = spec_segments();
    assert_eq!(examples.len(), 7);
    for example in &examples {
        let expr = segment(example);
        assert_eq!(segment(&expr.to_string()), expr, "{example}");
    }
    // The examples are separate segments: run together without `and`/`or`, they must fail.
    assert!(parse_segment(SPEC_SEGMENTS).is_err());
    for example in SPEC_TRIGGERS {
        let parsed = trigger(example);
        assert_eq!(trigger(&parsed.to_string()), parsed, "{example}");
        assert_eq!(parsed.to_string(), *example, "already canonical");
    }
}

#[test]
fn spec_engaged_users_structure() {
    let expr = segment(&spec_segments()[0]);
    let [sessions, clicks] = and_operands(&expr) else { panic!("two operands") };
    let Clause::Did(sessions) = clause(sessions) else { panic!("did") };
    assert_eq!(*sessions.filter.event, "Session Started");
    assert_eq!(sessions.count.as_deref(), Some(&Count::AtLeast(5)));
    assert_eq!(
        sessions.window.as_deref(),
        Some(&Window::InLast(Spanned::unspanned(Duration::from_ms(14 * DAY_MS))))
    );
    let Clause::Did(clicks) = clause(clicks) else { panic!("did") };
    assert_eq!(*clicks.filter.event, "Push Clicked");
    assert_eq!(clicks.count, None);
    let Some(Window::InLast(duration)) = clicks.window.as_deref() else { panic!("in last") };
    assert_eq!(duration.ms, 30 * DAY_MS);
}

#[test]
fn spec_at_risk_structure() {
    let expr = segment(&spec_segments()[1]);
    let [abandoned, short] = and_operands(&expr) else { panic!("two operands") };
    let Clause::ThenNot(then_not) = clause(abandoned) else { panic!("then not") };
    assert_eq!(*then_not.first.event, "Added To Cart");
    assert_eq!(*then_not.absent.event, "Charged");
    assert_eq!(then_not.within.ms, 3_600_000);
    assert!(matches!(then_not.window.as_deref(), Some(Window::InLast(d)) if d.ms == 7 * DAY_MS));
    let Clause::Aggregate(aggregate) = clause(short) else { panic!("aggregate") };
    assert_eq!(*aggregate.function, AggregateFn::Avg);
    assert_eq!(aggregate.property.segments, ["duration_s"]);
    assert_eq!(*aggregate.filter.event, "Session Ended");
    assert_eq!(*aggregate.op, CompareOp::Lt);
    assert_eq!(*aggregate.value, Number::Int(60));
}

#[test]
fn spec_in_a_row_structure() {
    let expr = segment(&spec_segments()[4]);
    let Clause::InARow(in_a_row) = clause(&expr) else { panic!("in a row") };
    assert_eq!(*in_a_row.times, 3);
    let condition = in_a_row.filter.condition.as_ref().expect("where");
    let ConditionKind::Comparison(comparison) = &condition.node else { panic!("comparison") };
    assert_eq!(comparison.property.segments, ["duration_s"]);
    assert_eq!(
        *comparison.test,
        Test::Compare {
            op: CompareOp::Lt,
            value: Spanned::unspanned(Value::Number(Number::Int(10)))
        }
    );
    assert!(matches!(in_a_row.window.as_deref(), Some(Window::InLast(d)) if d.ms == DAY_MS));
}

#[test]
fn spec_high_value_structure() {
    let expr = segment(&spec_segments()[6]);
    let [sum, city, reachable] = and_operands(&expr) else { panic!("three operands") };
    let Clause::Aggregate(sum) = clause(sum) else { panic!("aggregate") };
    assert_eq!(
        (*sum.function, *sum.op, *sum.value),
        (AggregateFn::Sum, CompareOp::Gt, Number::Int(5000))
    );
    let Clause::User(city) = clause(city) else { panic!("user") };
    assert_eq!(city.property.segments, ["city"]);
    assert!(
        matches!(&city.test.node, Test::Compare { op: CompareOp::Eq, value } if **value == Value::String("Delhi".into()))
    );
    assert_eq!(clause(reachable), &Clause::ReachableViaWebpush);
}

#[test]
fn spec_trigger_structures() {
    let cart = trigger(SPEC_TRIGGERS[0]);
    assert_eq!(*cart.event.event, "Added To Cart");
    let Some(TriggerTail::Unless { event, within }) = cart.tail.as_deref() else {
        panic!("unless")
    };
    assert_eq!((event.event.as_str(), within.ms), ("Charged", 600_000));
    assert_eq!(
        cart.condition.as_ref().map(|c| &c.node),
        Some(&ExprKind::Clause(Box::new(Clause::ReachableViaWebpush)))
    );

    let flight = trigger(SPEC_TRIGGERS[1]);
    let tail = flight.tail.as_deref().expect("at");
    let TriggerTail::At { property, sign, offset } = tail else { panic!("at") };
    assert_eq!(
        (property.segments.as_slice(), *sign, offset.ms),
        (&["travel_date".to_string()][..], Sign::Minus, DAY_MS)
    );
    assert_eq!(tail.at_offset_ms(), Some(-(DAY_MS as i64)));

    let viewed = trigger(SPEC_TRIGGERS[2]);
    let condition = viewed.condition.expect("if");
    let Clause::Did(did) = clause(&condition) else { panic!("did") };
    let ConditionKind::Comparison(comparison) = &did.filter.condition.as_ref().expect("where").node
    else {
        panic!("comparison")
    };
    let Test::Compare { value, .. } = &comparison.test.node else { panic!("compare") };
    assert_eq!(**value, Value::EventRef(PropertyPath::new(["product_id"])));
    assert_eq!(did.count.as_deref(), Some(&Count::AtLeast(3)));

    let order = trigger(SPEC_TRIGGERS[3]);
    let Some(TriggerTail::Unless { event, within }) = order.tail.as_deref() else {
        panic!("unless")
    };
    assert_eq!(within.ms, 600_000);
    let ConditionKind::Comparison(comparison) = &event.condition.as_ref().expect("where").node
    else {
        panic!("comparison")
    };
    assert_eq!(comparison.property.segments, ["order_id"]);
    assert!(
        matches!(&comparison.test.node, Test::Compare { op: CompareOp::Eq, value } if **value == Value::EventRef(PropertyPath::new(["cart_id"])))
    );
}

// ------------------------------------------------------------------------- round trips

#[test]
fn canonical_forms_print_back_unchanged() {
    for canonical in [
        r#"did "A""#,
        r#"did "A" where x == 1 at least 2 times in last 7d"#,
        r#"did "A" where (x == 1 or y == 2) exactly 1 time before 2026-11-01"#,
        r#"did "A" between 1 and 3 times between 2026-11-01 and 2026-11-01T10:00:00.250Z"#,
        r#"did "A" then "B" then "C""#,
        r#"did "A" then not "B" within 10m since now"#,
        r#"last did "A" since 3d ago"#,
        r#"count_distinct(`page title`) of "Viewed" where not x exists == 2"#,
        r#"user.tags contains "x" or user.name starts with "Jo""#,
        r#"not (did "A" or did "B")"#,
        r#"not not in segment "x""#,
        r#"(did "A" or did "B") and (did "C" or did "D")"#,
        r#"did "A" where x == -0.5 or did "B" where y in [] or did "C" where z == 1.0"#,
        r#"did "A" in last 1500ms or did "B" in last 0s"#,
    ] {
        verified(canonical);
    }
}

#[test]
fn non_canonical_spellings_parse_to_the_canonical_tree() {
    for (source, canonical) in [
        // Duration units and words.
        (r#"did "A" in last 7 days"#, r#"did "A" in last 7d"#),
        (r#"did "A" in last 1 week"#, r#"did "A" in last 7d"#),
        (r#"did "A" in last 24 hours"#, r#"did "A" in last 1d"#),
        (r#"did "A" in last 120 MINUTES"#, r#"did "A" in last 2h"#),
        (r#"did "A" in last 90 secs"#, r#"did "A" in last 90s"#),
        (r#"did "A" in last 7days"#, r#"did "A" in last 7d"#),
        // Keyword case, whitespace, comments.
        (r#"DID "A" IN LAST 7D"#, r#"did "A" in last 7d"#),
        ("did\n\"A\"   # the event\n\tin   last\n7d  # the window\n", r#"did "A" in last 7d"#),
        (r#"Did "A" At Least 1 Times"#, r#"did "A" at least 1 time"#),
        (r#"did "A" exactly 2 time"#, r#"did "A" exactly 2 times"#),
        // Parentheses.
        (r#"((did "A"))"#, r#"did "A""#),
        (r#"(did "A" and did "B") and did "C""#, r#"did "A" and did "B" and did "C""#),
        (r#"did "A" or (did "B" or did "C")"#, r#"did "A" or did "B" or did "C""#),
        (r#"(did "A" and did "B") or did "C""#, r#"did "A" and did "B" or did "C""#),
        (r#"did "A" where ((x == 1))"#, r#"did "A" where x == 1"#),
        (
            r#"did "A" where ((x == 1 and y == 2) and z == 3)"#,
            r#"did "A" where (x == 1 and y == 2 and z == 3)"#,
        ),
        (r#"did "A" where (not x == 1)"#, r#"did "A" where not x == 1"#),
        // Window before count, trailing comma, number spellings, time zones.
        (r#"did "A" in last 7d at least 3 times"#, r#"did "A" at least 3 times in last 7d"#),
        (r#"user.x in [1, 2,]"#, r#"user.x in [1, 2]"#),
        (r#"user.x == 1.50"#, r#"user.x == 1.5"#),
        (r#"user.x == 007"#, r#"user.x == 7"#),
        (r#"did "A" since 2026-11-01T05:30:00+05:30"#, r#"did "A" since 2026-11-01"#),
        (r#"did "A" since 2026-11-01t00:00:00.000z"#, r#"did "A" since 2026-11-01"#),
        (r#"did "A" since 2026-11-01T00:00:00.0001Z"#, r#"did "A" since 2026-11-01"#),
        (r#"did "A" since 2 days ago"#, r#"did "A" since 2d ago"#),
        // Quoting that is not needed, and case-insensitive prefixes.
        (r#"did "A" where `price` == 1"#, r#"did "A" where price == 1"#),
        (r#"USER.city == "x""#, r#"user.city == "x""#),
        // No space is needed around punctuation.
        (r#"did"A"where x==1"#, r#"did "A" where x == 1"#),
        (
            r#"sum(amount)of"C">5 and user.x in[1,2]"#,
            r#"sum(amount) of "C" > 5 and user.x in [1, 2]"#,
        ),
        // Booleans are keywords.
        (r#"user.vip == TRUE"#, r#"user.vip == true"#),
    ] {
        parses_to(source, canonical);
    }
    for (source, canonical) in [
        (r#"ON "A" WHERE x == EVENT.y"#, r#"on "A" where x == event.y"#),
        (
            r#"on "A" Unless "B" Within 1 HOUR IF not did "C""#,
            r#"on "A" unless "B" within 1h if not did "C""#,
        ),
        ("on \"A\"  # start\n at `date`-24 hours", r#"on "A" at date - 1d"#),
    ] {
        assert_eq!(trigger(source), trigger(canonical), "{source}");
        assert_eq!(trigger(source).to_string(), canonical);
    }
}

#[test]
fn spans_point_at_the_source_and_equality_ignores_them() {
    let source = r#"  did "A"   # note
  and user.city == "x"  "#;
    let expr = segment(source);
    let [did, user] = and_operands(&expr) else { panic!("two operands") };
    assert_eq!(expr.span.slice(source), "did \"A\"   # note\n  and user.city == \"x\"");
    // A clause ends at its last token, not after the comment that follows it.
    assert_eq!(did.span.slice(source), "did \"A\"");
    assert_eq!(user.span.slice(source), "user.city == \"x\"");
    let Clause::User(comparison) = clause(user) else { panic!("user") };
    assert_eq!(comparison.property.span.slice(source), "user.city");
    assert_eq!(comparison.test.span.slice(source), "== \"x\"");
    assert_eq!(expr, segment(r#"did "A" and user.city == "x""#));
    assert_ne!(expr, segment(r#"did "A" and user.city == "y""#));
}

// ----------------------------------------------------------------------------- precedence

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
    let expr = segment(r#"did "a" or did "b" and not did "c""#);
    let ExprKind::Or(operands) = &expr.node else { panic!("or at the top: {expr:?}") };
    assert_eq!(operands.len(), 2);
    assert_eq!(operands[0], segment(r#"did "a""#));
    let [b, not_c] = and_operands(&operands[1]) else { panic!("b and not c") };
    assert_eq!(*b, segment(r#"did "b""#));
    assert!(matches!(&not_c.node, ExprKind::Not(c) if **c == segment(r#"did "c""#)));
    // Same tree as with explicit parentheses, different from other groupings.
    assert_eq!(expr, segment(r#"did "a" or (did "b" and (not did "c"))"#));
    assert_ne!(expr, segment(r#"(did "a" or did "b") and not did "c""#));
    assert_ne!(expr, segment(r#"did "a" or not (did "b" and did "c")"#));
    assert_eq!(expr, segment(r#"did "a" or did "b" and not (did "c")"#));
}

#[test]
fn and_or_chains_are_flat_and_left_to_right() {
    let expr = segment(r#"did "a" and did "b" and did "c" or did "d" or did "e""#);
    let ExprKind::Or(operands) = &expr.node else { panic!("or") };
    assert_eq!(operands.len(), 3);
    assert_eq!(and_operands(&operands[0]).len(), 3);
}

#[test]
fn conditions_have_the_same_precedence() {
    let expr = segment(r#"did "A" where (a == 1 or b == 2 and not c == 3)"#);
    let Clause::Did(did) = clause(&expr) else { panic!("did") };
    let condition = did.filter.condition.as_ref().expect("where");
    let ConditionKind::Or(operands) = &condition.node else { panic!("or") };
    let ConditionKind::And(and) = &operands[1].node else { panic!("and") };
    assert!(matches!(and[1].node, ConditionKind::Not(_)));
}

#[test]
fn a_bare_and_after_a_where_comparison_belongs_to_the_expression() {
    let expr = segment(r#"did "A" where x == 1 and did "B""#);
    let [a, b] = and_operands(&expr) else { panic!("two clauses") };
    let Clause::Did(a) = clause(a) else { panic!("did") };
    assert!(matches!(
        &a.filter.condition.as_ref().expect("where").node,
        ConditionKind::Comparison(_)
    ));
    assert_eq!(*b, segment(r#"did "B""#));
    // The same holds for `or`, after `between … and …`, and after a negated comparison.
    assert!(matches!(segment(r#"did "A" where x == 1 or did "B""#).node, ExprKind::Or(_)));
    assert_eq!(and_operands(&segment(r#"did "A" where x between 1 and 2 and did "B""#)).len(), 2);
    assert_eq!(and_operands(&segment(r#"did "A" where not x == 1 and did "B""#)).len(), 2);
    // A second comparison needs parentheses, and the error says so.
    let error = segment_error(r#"did "A" where x == 1 and y == 2"#);
    assert_eq!(error.kind(), ErrorKind::Syntax);
    assert_eq!((error.line(), error.column()), (1, 25));
    assert!(error.help().is_some_and(|help| help.contains("parentheses")), "{error:?}");
}

// ----------------------------------------------------------------------------- clauses

#[test]
fn counts_windows_and_time_points() {
    let did = |source: &str| match clause(&segment(source)).clone() {
        Clause::Did(did) => did,
        other => panic!("{other:?}"),
    };
    assert_eq!(did(r#"did "A" at most 2 times"#).count.as_deref(), Some(&Count::AtMost(2)));
    assert_eq!(
        did(r#"did "A" between 2 and 4 times"#).count.as_deref(),
        Some(&Count::Between(2, 4))
    );
    let window = |source: &str| did(source).window.expect("window").node;
    let instant = |ms| Spanned::unspanned(TimePoint::Absolute(ms));
    assert_eq!(window(r#"did "A" since 1970-01-02"#), Window::Since(instant(86_400_000)));
    assert_eq!(window(r#"did "A" before 1969-12-31T23:59:59.999Z"#), Window::Before(instant(-1)));
    assert_eq!(
        window(r#"did "A" between 3d ago and now"#),
        Window::Between(
            Spanned::unspanned(TimePoint::Ago(Duration::from_ms(3 * DAY_MS))),
            Spanned::unspanned(TimePoint::Now)
        )
    );
    assert_eq!(
        window(r#"did "A" since 2026-11-01T09:30:00Z"#),
        Window::Since(instant(1_793_525_400_000))
    );
}

#[test]
fn property_paths_split_on_dots_except_inside_backticks() {
    let property = |source: &str| {
        let expr = segment(source);
        let Clause::Did(did) = clause(&expr) else { panic!("did") };
        let ConditionKind::Comparison(comparison) =
            &did.filter.condition.as_ref().expect("where").node
        else {
            panic!("comparison")
        };
        comparison.property.node.clone()
    };
    assert_eq!(property(r#"did "A" where item.sku exists"#), PropertyPath::new(["item", "sku"]));
    assert_eq!(property(r#"did "A" where `item.sku` exists"#), PropertyPath::new(["item.sku"]));
    assert_eq!(property(r#"did "A" where `page title` exists"#), PropertyPath::new(["page title"]));
    assert_eq!(property(r#"did "A" where a.`b.c`.d exists"#), PropertyPath::new(["a", "b.c", "d"]));
    assert_eq!(
        property(r#"did "A" where `user`.city exists"#),
        PropertyPath::new(["user", "city"])
    );
    assert_eq!(property(r#"did "A" where event.x exists"#), PropertyPath::new(["event", "x"]));
}

#[test]
fn strings_unescape_and_print_escaped() {
    let expr = segment(r#"did "a \"b\" \\ c\nd\te 🛒" where x == "\`""#);
    let Clause::Did(did) = clause(&expr) else { panic!("did") };
    assert_eq!(*did.filter.event, "a \"b\" \\ c\nd\te 🛒");
    assert_eq!(expr.to_string(), r#"did "a \"b\" \\ c\nd\te 🛒" where x == "`""#);
}

#[test]
fn event_refs_are_for_triggers_only() {
    for source in [
        r#"did "A" where x == event.y"#,
        r#"did "A" where x in event.list"#,
        r#"user.city == event.city"#,
    ] {
        let error = segment_error(source);
        assert_eq!(error.kind(), ErrorKind::EventRefOutsideTrigger, "{source}");
        assert_eq!(error.span().slice(source), &source[source.find("event.").expect("ref")..]);
    }
    let parsed = trigger(r#"on "A" if user.city == event.city"#);
    let Some(condition) = parsed.condition else { panic!("if") };
    let Clause::User(comparison) = clause(&condition) else { panic!("user") };
    assert!(
        matches!(&comparison.test.node, Test::Compare { value, .. } if **value == Value::EventRef(PropertyPath::new(["city"])))
    );
}

#[test]
fn user_properties_are_rejected_inside_where() {
    let source = r#"did "Charged" where (amount > 5 and user.city == "Delhi")"#;
    let error = segment_error(source);
    assert_eq!(error.kind(), ErrorKind::UserPropertyInWhere);
    assert_eq!(error.span().slice(source), "user.city");
}

// ------------------------------------------------------------------------------ limits

#[test]
fn nesting_up_to_the_limit_parses_and_beyond_fails_cleanly() {
    let nested = |depth: usize| format!("{}did \"A\"{}", "(".repeat(depth), ")".repeat(depth));
    segment(&nested(MAX_NESTING_DEPTH));
    let error = segment_error(&nested(MAX_NESTING_DEPTH + 1));
    assert_eq!(error.kind(), ErrorKind::TooDeep);
    assert_eq!(
        error.column(),
        MAX_NESTING_DEPTH,
        "the deepest parenthesis has MAX_NESTING_DEPTH characters before it"
    );

    let nots = |count: usize| format!("{}did \"A\"", "not ".repeat(count));
    segment(&nots(MAX_NESTING_DEPTH));
    assert_eq!(segment_error(&nots(MAX_NESTING_DEPTH + 1)).kind(), ErrorKind::TooDeep);

    // Parentheses and `not`s add up, in expressions and in conditions.
    let half = MAX_NESTING_DEPTH / 2;
    let mixed =
        format!("{}did \"A\" where {}x == 1{}", "not (".repeat(half), "(", ")".repeat(half + 1));
    assert_eq!(segment_error(&mixed).kind(), ErrorKind::TooDeep);
    let conditions =
        format!("did \"A\" where {}x == 1{}", "(not ".repeat(half + 1), ")".repeat(half + 1));
    assert_eq!(segment_error(&conditions).kind(), ErrorKind::TooDeep);
}

#[test]
fn the_deepest_accepted_queries_fit_in_a_one_mib_stack() {
    // The depth limit exists so that pest's recursion stays small: about 0.5 MiB at the
    // limit in an unoptimised build (measured), far less in release. This keeps a 2x margin.
    let depth = MAX_NESTING_DEPTH;
    let open = |n| "(".repeat(n);
    let close = |n| ")".repeat(n);
    let segments = [
        format!("{}did \"A\"{}", open(depth), close(depth)),
        format!("did \"A\" where {}x == 1{}", open(depth), close(depth)),
        format!("{}did \"A\"{}", "not (".repeat(depth / 2), close(depth / 2)),
    ];
    let triggers = [format!(
        "on \"A\" where {}x == 1{} if {}did \"B\" where {}y == 2{}{}",
        open(depth),
        close(depth),
        open(depth / 2),
        open(depth / 2),
        close(depth / 2),
        close(depth / 2)
    )];
    let worker = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            for source in &segments {
                assert!(parse_segment(source).is_ok(), "{source}");
            }
            for source in &triggers {
                assert!(parse_trigger(source).is_ok(), "{source}");
            }
        })
        .expect("spawn");
    assert!(worker.join().is_ok(), "parsing at the depth limit needs more than 1 MiB of stack");
}

#[test]
fn hostile_nesting_never_overflows_the_stack() {
    // Far beyond the limit, within the length limit: an error, not a crash.
    for source in [
        "(".repeat(MAX_QUERY_BYTES),
        format!("{}did \"A\"", "not ".repeat(MAX_QUERY_BYTES / 4 - 2)),
        format!("did \"A\" where {}", "(".repeat(MAX_QUERY_BYTES - 20)),
        format!("did \"A\" where {}x == 1", "not ".repeat(MAX_QUERY_BYTES / 4 - 8)),
    ] {
        assert_eq!(segment_error(&source).kind(), ErrorKind::TooDeep);
    }
}

#[test]
fn length_and_node_limits() {
    let long = format!("did \"{}\"", "a".repeat(MAX_QUERY_BYTES));
    let error = segment_error(&long);
    assert_eq!(error.kind(), ErrorKind::TooLong);
    assert_eq!(error.span().start, MAX_QUERY_BYTES);
    assert!(error.message().contains("16384"), "{}", error.message());
    // The rendering stays short even for one very long line.
    assert!(error.render(&long).len() < 600);

    // Just under the length limit parses.
    let fits = format!("did \"{}\"", "a".repeat(MAX_QUERY_BYTES - 6));
    assert_eq!(fits.len(), MAX_QUERY_BYTES);
    segment(&fits);

    // Many small nodes: a list of 3000 numbers fits in 16 KiB but not in the node budget.
    let list = format!("user.x in [{}]", vec!["1"; 3000].join(","));
    assert!(list.len() <= MAX_QUERY_BYTES);
    assert_eq!(segment_error(&list).kind(), ErrorKind::TooManyNodes);
    let clauses = vec![r#"did "A""#; 600].join(" or ");
    segment(&clauses);
}

#[test]
fn out_of_range_literals_are_errors() {
    for (source, kind) in [
        ("user.x == 9223372036854775808", ErrorKind::NumberOutOfRange),
        ("user.x == -9223372036854775809", ErrorKind::NumberOutOfRange),
        (&format!("user.x == {}.0", "9".repeat(400)), ErrorKind::NumberOutOfRange),
        (r#"did "A" at least 4294967296 times"#, ErrorKind::InvalidCount),
        (r#"did "A" in last 1000001 days"#, ErrorKind::InvalidDuration),
        (r#"did "A" in last 99999999999999999999999s"#, ErrorKind::InvalidDuration),
        (r#"did "A" since 2026-04-31"#, ErrorKind::InvalidTime),
        (r#"did "A" since 2026-00-10"#, ErrorKind::InvalidTime),
        (r#"did "" "#, ErrorKind::EmptyName),
        (r#"in segment """#, ErrorKind::EmptyName),
    ] {
        assert_eq!(segment_error(source).kind(), kind, "{source}");
    }
    segment("user.x == 9223372036854775807");
    segment("user.x == -9223372036854775808");
    segment(r#"did "A" at least 4294967295 times"#);
    segment(r#"did "A" in last 1000000 days"#);
    segment(r#"did "A" since 2024-02-29"#);
}

// ------------------------------------------------------------------------------ errors

#[test]
fn the_specification_error_renders_exactly() {
    let source = r#"did "Added To Cart" in last seven"#;
    let error = segment_error(source);
    assert_eq!(error.kind(), ErrorKind::Syntax);
    assert_eq!(error.message(), "expected a duration such as 10m or 7d after `in last`");
    assert_eq!(error.expected(), ["a duration such as 10m or 7d"]);
    assert_eq!((error.line(), error.column()), (1, 28));
    assert_eq!(error.span(), Span::new(28, 33));
    assert_eq!(
        error.render(source),
        "error: expected a duration such as 10m or 7d after `in last`\n \
         --> line 1, column 28\n  |\n1 | did \"Added To Cart\" in last seven\n  \
         |                             ^^^^^"
    );
    assert_eq!(
        error.to_string(),
        "expected a duration such as 10m or 7d after `in last` (line 1, column 28)"
    );
}

#[test]
fn errors_report_line_and_column_in_characters() {
    let source = "did \"Café\"\n  and did \"🛒\" in last seven";
    let error = segment_error(source);
    // `seven` has 22 characters before it on line 2 (🛒 is one character, four bytes).
    assert_eq!((error.line(), error.column()), (2, 22));
    assert_eq!(error.span().start, source.find("seven").expect("seven"));
    assert!(
        error
            .render(source)
            .ends_with("2 |   and did \"🛒\" in last seven\n  |                       ^^^^^"),
        "{}",
        error.render(source)
    );
}

#[test]
fn errors_at_the_end_point_just_after_the_last_token() {
    let source = "did \"A\" at least 3   # no unit\n\n";
    let error = segment_error(source);
    assert_eq!(error.message(), "expected `times` after `3`, found the end of the query");
    assert_eq!((error.line(), error.column()), (1, 18));
    assert!(error.span().is_empty());
}

#[test]
fn expected_lists_name_the_alternatives() {
    let error = segment_error(r#"did "A" where price"#);
    assert_eq!(error.expected().len(), 1);
    assert!(error.expected()[0].starts_with("a comparison operator (==, !="), "{error:?}");
    let error = segment_error(r#"did "A" in last 7d seven"#);
    assert_eq!(
        error.expected(),
        ["a count such as `at least 3 times`", "`and`", "`or`", "the end of the query"]
    );
    let error = parse_trigger(r#"on "A" seven"#).expect_err("trigger tail");
    assert_eq!(
        error.message(),
        "expected `where`, `at`, `if`, `then`, `unless` or the end of the query after `\"A\"`"
    );
}

#[test]
fn garbage_never_panics() {
    let pieces = [
        "did",
        "\"A\"",
        "where",
        "x",
        "==",
        "1",
        "(",
        ")",
        "and",
        "or",
        "not",
        "in",
        "last",
        "7d",
        "then",
        "within",
        "at",
        "least",
        "times",
        "[",
        "]",
        ",",
        "event.x",
        "user.y",
        "sum",
        "of",
        "between",
        "on",
        "unless",
        "if",
        "-",
        "+",
        "#",
        "\n",
        "`",
        "\"",
        "\\",
        "é",
        "2026-11-01",
        "now",
        "ago",
        "a",
        "row",
        "first",
        "segment",
        "reachable",
        "via",
        "webpush",
        "exists",
    ];
    // Every sequence of up to three pieces, through both entry points.
    let mut count = 0;
    for a in pieces {
        for b in pieces {
            for c in pieces {
                let source = format!("{a} {b} {c}");
                if let Err(error) = parse_segment(&source) {
                    let _ = error.render(&source);
                }
                if let Err(error) = parse_trigger(&source) {
                    let _ = error.render(&source);
                }
                count += 1;
            }
        }
    }
    assert_eq!(count, pieces.len().pow(3));
}

// --------------------------------------------------------------------- property test

mod generated {
    //! Random trees that respect the AST's documented invariants, printed and re-parsed.

    use super::*;
    use proptest::prelude::*;
    use proptest::sample::select;
    use proptest::test_runner::{TestCaseError, TestRunner};

    fn s<T>(node: T) -> Spanned<T> {
        Spanned::unspanned(node)
    }

    fn text() -> impl Strategy<Value = String> {
        let character = prop_oneof![
            4 => proptest::char::range('a', 'z'),
            1 => select(vec!['"', '\\', '`', '\n', '\t', '\r', '#', ' ', '(', ')', '.', 'é', '🛒', '\0']),
            1 => any::<char>(),
        ];
        proptest::collection::vec(character, 0..8).prop_map(String::from_iter)
    }

    fn name() -> impl Strategy<Value = String> {
        text().prop_filter("names are not empty", |name| !name.is_empty())
    }

    fn path() -> impl Strategy<Value = PropertyPath> {
        let segment = prop_oneof![
            3 => "[a-z_][a-z0-9_]{0,6}",
            1 => select(vec!["and", "OR", "not", "user", "User", "event", "in", "exists", "true", "did", "x.y"])
                .prop_map(str::to_string),
            1 => text(),
        ];
        proptest::collection::vec(segment, 1..4).prop_map(|segments| PropertyPath { segments })
    }

    fn number() -> impl Strategy<Value = Number> {
        prop_oneof![
            any::<i64>().prop_map(Number::Int),
            (-1e6f64..1e6).prop_map(Number::Float),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Number::Float),
        ]
    }

    fn literal() -> impl Strategy<Value = Value> {
        prop_oneof![
            text().prop_map(Value::String),
            number().prop_map(Value::Number),
            any::<bool>().prop_map(Value::Bool),
        ]
    }

    fn list() -> impl Strategy<Value = Value> {
        proptest::collection::vec(literal().prop_map(s), 0..4).prop_map(Value::List)
    }

    fn scalar(event_refs: bool) -> BoxedStrategy<Value> {
        if event_refs {
            prop_oneof![3 => literal(), 1 => path().prop_map(Value::EventRef)].boxed()
        } else {
            literal().boxed()
        }
    }

    fn list_or_ref(event_refs: bool) -> BoxedStrategy<Value> {
        if event_refs {
            prop_oneof![3 => list(), 1 => path().prop_map(Value::EventRef)].boxed()
        } else {
            list().boxed()
        }
    }

    fn test(event_refs: bool) -> impl Strategy<Value = Test> {
        let op = select(vec![
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Lt,
            CompareOp::Le,
            CompareOp::Gt,
            CompareOp::Ge,
        ]);
        prop_oneof![
            (op, prop_oneof![scalar(event_refs), list()])
                .prop_map(|(op, value)| Test::Compare { op, value: s(value) }),
            list_or_ref(event_refs).prop_map(|list| Test::In(s(list))),
            list_or_ref(event_refs).prop_map(|list| Test::NotIn(s(list))),
            scalar(event_refs).prop_map(|value| Test::Contains(s(value))),
            scalar(event_refs).prop_map(|value| Test::StartsWith(s(value))),
            (scalar(event_refs), scalar(event_refs))
                .prop_map(|(low, high)| Test::Between { low: s(low), high: s(high) }),
            Just(Test::Exists),
            Just(Test::NotExists),
        ]
    }

    fn comparison(event_refs: bool) -> impl Strategy<Value = Comparison> {
        (path(), test(event_refs))
            .prop_map(|(property, test)| Comparison { property: s(property), test: s(test) })
    }

    /// `make` applied to the operands, flattening operands of the same kind (as the parser
    /// does with parentheses); `inner` takes the operands out of an operand of that kind.
    fn flatten<T>(
        operands: Vec<Spanned<T>>,
        inner: fn(&mut T) -> Option<Vec<Spanned<T>>>,
        make: fn(Vec<Spanned<T>>) -> T,
    ) -> T {
        let mut flat = Vec::new();
        for mut operand in operands {
            match inner(&mut operand.node) {
                Some(inner) => flat.extend(inner),
                None => flat.push(operand),
            }
        }
        make(flat)
    }

    fn condition(event_refs: bool) -> impl Strategy<Value = Condition> {
        let leaf = comparison(event_refs).prop_map(|c| s(ConditionKind::Comparison(c)));
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 2..4).prop_map(|operands| s(flatten(
                    operands,
                    |c| match c {
                        ConditionKind::And(inner) => Some(std::mem::take(inner)),
                        _ => None,
                    },
                    ConditionKind::And
                ))),
                proptest::collection::vec(inner.clone(), 2..4).prop_map(|operands| s(flatten(
                    operands,
                    |c| match c {
                        ConditionKind::Or(inner) => Some(std::mem::take(inner)),
                        _ => None,
                    },
                    ConditionKind::Or
                ))),
                inner.prop_map(|c| s(ConditionKind::Not(Box::new(c)))),
            ]
        })
    }

    fn filter(event_refs: bool) -> impl Strategy<Value = EventFilter> {
        (name(), proptest::option::of(condition(event_refs)))
            .prop_map(|(event, condition)| EventFilter { event: s(event), condition })
    }

    fn duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (0u64..100, select(vec![1u64, 1_000, 60_000, 3_600_000, DAY_MS, 7 * DAY_MS]))
                .prop_map(|(amount, unit)| Duration::from_ms(amount * unit)),
            (0..=MAX_DURATION_MS).prop_map(Duration::from_ms),
        ]
    }

    fn time_point() -> impl Strategy<Value = TimePoint> {
        prop_oneof![
            (MIN_TIME_MS..=MAX_TIME_MS).prop_map(TimePoint::Absolute),
            (-1000i64..30_000).prop_map(|days| TimePoint::Absolute(days * DAY_MS as i64)),
            Just(TimePoint::Now),
            duration().prop_map(TimePoint::Ago),
        ]
    }

    fn window() -> impl Strategy<Value = Spanned<Window>> {
        prop_oneof![
            duration().prop_map(|d| Window::InLast(s(d))),
            (time_point(), time_point()).prop_map(|(a, b)| Window::Between(s(a), s(b))),
            time_point().prop_map(|t| Window::Since(s(t))),
            time_point().prop_map(|t| Window::Before(s(t))),
        ]
        .prop_map(s)
    }

    fn count() -> impl Strategy<Value = Spanned<Count>> {
        prop_oneof![
            any::<u32>().prop_map(Count::AtLeast),
            any::<u32>().prop_map(Count::AtMost),
            (0u32..5).prop_map(Count::Exactly),
            (any::<u32>(), any::<u32>()).prop_map(|(a, b)| Count::Between(a.min(b), a.max(b))),
        ]
        .prop_map(s)
    }

    fn clause(event_refs: bool) -> impl Strategy<Value = Clause> {
        let f = move || filter(event_refs);
        let window_opt = || proptest::option::of(window());
        let aggregate_fn = select(vec![
            AggregateFn::Sum,
            AggregateFn::Avg,
            AggregateFn::Min,
            AggregateFn::Max,
            AggregateFn::CountDistinct,
        ]);
        let op = select(vec![
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Lt,
            CompareOp::Le,
            CompareOp::Gt,
            CompareOp::Ge,
        ]);
        prop_oneof![
            (f(), proptest::option::of(count()), window_opt())
                .prop_map(|(filter, count, window)| Clause::Did(Did { filter, count, window })),
            (
                proptest::collection::vec(f(), 2..4),
                proptest::option::of(duration().prop_map(s)),
                window_opt()
            )
                .prop_map(|(steps, within, window)| Clause::Sequence(Sequence {
                    steps,
                    within,
                    window
                })),
            (f(), f(), duration(), window_opt()).prop_map(|(first, absent, within, window)| {
                Clause::ThenNot(ThenNot { first, absent, within: s(within), window })
            }),
            (f(), any::<u32>(), window_opt()).prop_map(|(filter, times, window)| Clause::InARow(
                InARow { filter, times: s(times), window }
            )),
            (f(), window())
                .prop_map(|(filter, window)| Clause::FirstDid(FirstLast { filter, window })),
            (f(), window())
                .prop_map(|(filter, window)| Clause::LastDid(FirstLast { filter, window })),
            (aggregate_fn, path(), f(), window_opt(), op, number()).prop_map(
                |(function, property, filter, window, op, value)| {
                    Clause::Aggregate(Aggregate {
                        function: s(function),
                        property: s(property),
                        filter,
                        window,
                        op: s(op),
                        value: s(value),
                    })
                }
            ),
            comparison(event_refs).prop_map(Clause::User),
            name().prop_map(|name| Clause::InSegment(s(name))),
            Just(Clause::ReachableViaWebpush),
        ]
    }

    fn expr(event_refs: bool) -> impl Strategy<Value = Expr> {
        let leaf = clause(event_refs).prop_map(|c| s(ExprKind::Clause(Box::new(c))));
        leaf.prop_recursive(4, 16, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 2..4).prop_map(|operands| s(flatten(
                    operands,
                    |e| match e {
                        ExprKind::And(inner) => Some(std::mem::take(inner)),
                        _ => None,
                    },
                    ExprKind::And
                ))),
                proptest::collection::vec(inner.clone(), 2..4).prop_map(|operands| s(flatten(
                    operands,
                    |e| match e {
                        ExprKind::Or(inner) => Some(std::mem::take(inner)),
                        _ => None,
                    },
                    ExprKind::Or
                ))),
                inner.prop_map(|e| s(ExprKind::Not(Box::new(e)))),
            ]
        })
    }

    fn trigger_tree() -> impl Strategy<Value = Trigger> {
        let tail = prop_oneof![
            (filter(true), duration())
                .prop_map(|(event, within)| TriggerTail::Unless { event, within: s(within) }),
            (filter(true), duration())
                .prop_map(|(event, within)| TriggerTail::Then { event, within: s(within) }),
            (path(), select(vec![Sign::Plus, Sign::Minus]), duration()).prop_map(
                |(property, sign, offset)| TriggerTail::At {
                    property: s(property),
                    sign,
                    offset: s(offset)
                }
            ),
        ];
        (filter(true), proptest::option::of(tail.prop_map(s)), proptest::option::of(expr(true)))
            .prop_map(|(event, tail, condition)| Trigger {
                event,
                tail,
                condition,
                span: Span::default(),
            })
    }

    /// Whether the error is a size limit that a large random tree may legitimately hit.
    fn is_size_limit(error: &Error) -> bool {
        matches!(error.kind(), ErrorKind::TooLong | ErrorKind::TooManyNodes)
    }

    /// Runs `test` on a thread with a large stack: proptest's nested strategies need far
    /// more stack than the parser in unoptimised builds (generation alone overflows the
    /// default 2 MiB test thread), which says nothing about the parser.
    fn with_large_stack(test: impl FnOnce() + Send + 'static) {
        let worker = std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(test)
            .expect("spawn the property-test thread");
        if let Err(panic) = worker.join() {
            std::panic::resume_unwind(panic);
        }
    }

    /// Runs a property over `cases` values of `strategy`, panicking with the shrunk input.
    fn check<S: Strategy + 'static>(
        cases: u32,
        strategy: fn() -> S,
        property: fn(S::Value) -> Result<(), TestCaseError>,
    ) where
        S::Value: 'static,
    {
        with_large_stack(move || {
            let mut runner = TestRunner::new(ProptestConfig::with_cases(cases));
            if let Err(failure) = runner.run(&strategy(), property) {
                panic!("{failure}");
            }
        });
    }

    #[test]
    fn printed_segments_parse_back_to_the_same_tree() {
        check(
            1000,
            || expr(false),
            |tree| {
                let printed = tree.to_string();
                match parse_segment(&printed) {
                    Ok(parsed) => {
                        prop_assert_eq!(&parsed, &tree, "printed as {}", printed);
                        prop_assert_eq!(parsed.to_string(), printed);
                    }
                    Err(error) if is_size_limit(&error) => {}
                    Err(error) => prop_assert!(false, "{}\n{}", printed, error.render(&printed)),
                }
                Ok(())
            },
        );
    }

    #[test]
    fn printed_triggers_parse_back_to_the_same_tree() {
        check(1000, trigger_tree, |tree| {
            let printed = tree.to_string();
            match parse_trigger(&printed) {
                Ok(parsed) => {
                    prop_assert_eq!(&parsed, &tree, "printed as {}", printed);
                    prop_assert_eq!(parsed.to_string(), printed);
                }
                Err(error) if is_size_limit(&error) => {}
                Err(error) => prop_assert!(false, "{}\n{}", printed, error.render(&printed)),
            }
            Ok(())
        });
    }

    /// Fragments that often combine into valid queries, so that random sequences of them
    /// exercise both the successful paths (round trips) and near-miss errors.
    const FRAGMENTS: &[&str] = &[
        "did \"A\"",
        "where x == 1",
        "where (a == 1 or not b exists)",
        "where y in [1, \"z\"]",
        "at least 3 times",
        "between 1 and 2 times",
        "3 times in a row",
        "in last 7d",
        "between 2026-01-01 and now",
        "since 3d ago",
        "before 2026-11-01T10:00:00+01:00",
        "then \"B\"",
        "then not \"E\"",
        "within 1h",
        "first did \"C\"",
        "last did",
        "sum(price) of \"D\"",
        "> 5",
        "user.city == \"x\"",
        "user.age between 1 and 9",
        "in segment \"s\"",
        "reachable via webpush",
        "and",
        "or",
        "not",
        "(",
        ")",
        "on \"T\"",
        "unless \"U\"",
        "at date - 1d",
        "if",
        "where z == event.x",
        "# note\n",
        "7 days",
    ];

    fn check_round_trip(source: &str) -> Result<(), TestCaseError> {
        match parse_segment(source) {
            Ok(expr) => {
                let printed = expr.to_string();
                let reparsed = parse_segment(&printed);
                prop_assert_eq!(reparsed.as_ref(), Ok(&expr), "{}", source);
            }
            Err(error) => prop_assert!(error.span().end <= source.len()),
        }
        match parse_trigger(source) {
            Ok(trigger) => {
                let printed = trigger.to_string();
                let reparsed = parse_trigger(&printed);
                prop_assert_eq!(reparsed.as_ref(), Ok(&trigger), "{}", source);
            }
            Err(error) => prop_assert!(error.span().end <= source.len()),
        }
        Ok(())
    }

    #[test]
    fn fragment_soup_round_trips_whatever_parses() {
        check(
            3000,
            || {
                proptest::collection::vec(select(FRAGMENTS), 1..12)
                    .prop_map(|parts| parts.join(" "))
            },
            |source| check_round_trip(&source),
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(source in "\\PC{0,60}") {
            for result in [parse_segment(&source).map(|e| e.to_string()), parse_trigger(&source).map(|t| t.to_string())] {
                match result {
                    Ok(printed) => prop_assert!(parse_segment(&printed).is_ok() || parse_trigger(&printed).is_ok()),
                    Err(error) => {
                        let rendered = error.render(&source);
                        prop_assert!(rendered.starts_with("error: "));
                        prop_assert!(error.span().end <= source.len());
                    }
                }
            }
        }
    }
}
