//! Deterministic random ingest data and random segment queries for differential tests.
//!
//! [`random_records`] builds a small, adversarial dataset around [`NOW`]: timestamp ties,
//! future events, missing properties, type mismatches, dotted keys, profile updates with
//! every operation, subscriptions that move and get removed, and profile-only users.
//! [`random_segment`] writes random query *text* in valid syntax covering every clause and
//! option, with names and keys that exist and ones that never occur. Everything is a pure
//! function of the seed (ChaCha8).

use nudge_engine::{Event, ProfileUpdate, Record, Subscription, Value};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// 2026-11-01T00:00:00Z: the `now` the generated data is clustered around.
pub const NOW: i64 = 1_793_491_200_000;
/// One hour in ms.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in ms.
pub const DAY_MS: i64 = 86_400_000;

/// Event names of the data (queries also use names that never occur).
const EVENT_NAMES: [&str; 4] = ["A", "B", "C", "Charged"];
/// Event names queries use: the data's (weighted) and two that never occur.
const QUERY_EVENT_NAMES: [&str; 9] = ["A", "A", "B", "B", "C", "C", "Charged", "Z", "a"];

/// The type of literal a query usually compares a property with.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Number,
    Bool,
    Text(&'static [&'static str]),
    Tags,
    Any,
}

/// String literals compared with the event property `s` (prefixes and substrings included).
const EVENT_TEXT: &[&str] = &["x", "xy", "y", "5", "yx", ""];
/// String literals compared with `item.sku`.
const SKU_TEXT: &[&str] = &["sku1", "sku2", "sku", "s"];
/// String literals compared with `user.city`.
const CITY_TEXT: &[&str] = &["Delhi", "Mumbai", "Pune", "D", "M"];

/// Event property keys queries use, with their usual type (`zz` never occurs; the backtick
/// key is the same flattened key as `item.sku`).
const EVENT_KEYS: [(&str, Kind); 8] = [
    ("n", Kind::Number),
    ("s", Kind::Text(EVENT_TEXT)),
    ("b", Kind::Bool),
    ("tags", Kind::Tags),
    ("mixed", Kind::Any),
    ("item.sku", Kind::Text(SKU_TEXT)),
    ("`item.sku`", Kind::Text(SKU_TEXT)),
    ("zz", Kind::Any),
];
/// User property keys queries use, with their usual type (`zz` and `n` never occur).
const USER_KEYS: [(&str, Kind); 7] = [
    ("city", Kind::Text(CITY_TEXT)),
    ("age", Kind::Number),
    ("vip", Kind::Bool),
    ("tags", Kind::Tags),
    ("visits", Kind::Number),
    ("zz", Kind::Any),
    ("n", Kind::Number),
];
/// Numbers of the data: small integers, negatives and exactly representable decimals, so
/// that sums do not depend on the order of addition.
const NUMBERS: [f64; 12] = [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 0.5, 1.5, -2.5, 2.25];
/// Number literals of queries.
const NUMBER_LITERALS: [&str; 14] =
    ["-2", "-1", "0", "1", "2", "3", "5", "10", "0.5", "1.5", "-2.5", "2.25", "4", "7.5"];
/// String values of the data.
const STRINGS: [&str; 5] = ["x", "xy", "y", "5", "yx"];
/// String literals of queries.
const STRING_LITERALS: [&str; 10] = ["x", "xy", "y", "5", "a", "vip", "Delhi", "sku1", "", "X"];
/// Durations of queries (`within`, `in last`, `ago`).
const DURATIONS: [&str; 13] = [
    "0s", "1ms", "30m", "90 mins", "2h", "12h", "1d", "3d", "7d", "1 week", "10 days", "24 hours",
    "1h",
];

/// The generator's random source for `seed`.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn pick<'a, T: ?Sized>(rng: &mut ChaCha8Rng, items: &[&'a T]) -> &'a T {
    items[rng.gen_range(0..items.len())]
}

fn pick_number(rng: &mut ChaCha8Rng) -> f64 {
    NUMBERS[rng.gen_range(0..NUMBERS.len())]
}

// ------------------------------------------------------------------------------ records

/// A dataset of `users` users (`u0`, `u1`, …; 30–60 is a good size), in a shuffled arrival
/// order. Every eighth user has only a profile; some users have no events at all.
pub fn random_records(seed: u64, users: usize) -> Vec<Record> {
    let mut rng = rng(seed);
    let endpoints = (users / 3).max(1);
    let mut records = Vec::new();
    for u in 0..users {
        let user = format!("u{u}");
        let profile_only = u % 8 == 7;
        let events = if profile_only { 0 } else { rng.gen_range(0..=40) };
        records.extend(random_timeline(&mut rng, &user, events));
        let updates = if profile_only { rng.gen_range(1..=3) } else { rng.gen_range(0..=3) };
        for _ in 0..updates {
            records.push(Record::Profile(random_profile(&mut rng, &user)));
        }
        for _ in 0..rng.gen_range(0..=2) {
            if rng.gen_bool(0.4) {
                records.push(subscribe(&user, rng.gen_range(0..endpoints)));
            }
        }
    }
    records.shuffle(&mut rng);
    for _ in 0..rng.gen_range(1..=4) {
        let at = rng.gen_range(0..=records.len());
        let endpoint = endpoint(rng.gen_range(0..endpoints + 2));
        records.insert(at, Record::Unsubscribe { endpoint });
    }
    records
}

fn endpoint(k: usize) -> String {
    format!("https://push.example/e{k}")
}

fn subscribe(user: &str, k: usize) -> Record {
    Record::Subscribe {
        user_id: user.to_owned(),
        subscription: Subscription {
            endpoint: endpoint(k),
            p256dh: "BPk3".to_owned(),
            auth: "YXV0aA".to_owned(),
        },
    }
}

/// `count` events of `user`, with many exact ties and near-ties in time.
fn random_timeline(rng: &mut ChaCha8Rng, user: &str, count: usize) -> Vec<Record> {
    let mut previous = NOW;
    (0..count)
        .map(|_| {
            let ts = match rng.gen_range(0..10) {
                0..=2 => previous,
                3 => previous + rng.gen_range(1..=90) * 60_000,
                _ => random_ts(rng),
            };
            previous = ts;
            let name = EVENT_NAMES[rng.gen_range(0..EVENT_NAMES.len())];
            let mut event = Event::new(user, name).at(ts);
            event.props = random_props(rng);
            Record::Event(event)
        })
        .collect()
}

/// A time from ~10 days before [`NOW`] to 1 day after, often on an hour or day boundary.
fn random_ts(rng: &mut ChaCha8Rng) -> i64 {
    match rng.gen_range(0..10) {
        0 => NOW + rng.gen_range(1..=DAY_MS),
        1 => NOW - rng.gen_range(0..=3) * HOUR_MS,
        2 => NOW - rng.gen_range(0..=10) * DAY_MS,
        3..=5 => NOW - rng.gen_range(0..=240) * HOUR_MS,
        _ => NOW - rng.gen_range(0..=10 * DAY_MS),
    }
}

/// Properties of one event; each is present only sometimes.
fn random_props(rng: &mut ChaCha8Rng) -> Vec<(String, Value)> {
    let mut props = Vec::new();
    let mut maybe =
        |rng: &mut ChaCha8Rng, p: f64, key: &str, value: fn(&mut ChaCha8Rng) -> Value| {
            if rng.gen_bool(p) {
                props.push((key.to_owned(), value(rng)));
            }
        };
    maybe(rng, 0.6, "n", |rng| Value::Number(pick_number(rng)));
    maybe(rng, 0.5, "s", |rng| Value::String(pick(rng, &STRINGS).to_owned()));
    maybe(rng, 0.4, "b", |rng| Value::Bool(rng.gen_bool(0.5)));
    maybe(rng, 0.3, "tags", random_tags);
    maybe(rng, 0.4, "mixed", random_mixed);
    maybe(rng, 0.3, "item.sku", |rng| Value::String(pick(rng, &["sku1", "sku2", "sku3"]).into()));
    props
}

/// An array of 0–3 tags, sometimes with a number among them.
fn random_tags(rng: &mut ChaCha8Rng) -> Value {
    let tags = (0..rng.gen_range(0..=3))
        .map(|_| match rng.gen_range(0..8) {
            0 => Value::Number(5.0),
            _ => Value::String(pick(rng, &["a", "b", "vip"]).to_owned()),
        })
        .collect();
    Value::Array(tags)
}

/// A value whose type varies: the number 5, the string "5", a bool or a decimal.
fn random_mixed(rng: &mut ChaCha8Rng) -> Value {
    match rng.gen_range(0..4) {
        0 => Value::Number(5.0),
        1 => Value::String("5".to_owned()),
        2 => Value::Bool(true),
        _ => Value::Number(1.5),
    }
}

/// A profile update touching `city`, `age`, `vip`, `visits` and `tags` with every kind of
/// operation (each operation list has unique keys, as validation requires).
fn random_profile(rng: &mut ChaCha8Rng, user: &str) -> ProfileUpdate {
    let mut update = ProfileUpdate { user_id: user.to_owned(), ..Default::default() };
    let city = |rng: &mut ChaCha8Rng| Value::from(pick(rng, &["Delhi", "Mumbai", "Pune"]));
    if rng.gen_bool(0.5) {
        update.set.push(("city".into(), city(rng)));
    }
    if rng.gen_bool(0.4) {
        update.set.push((
            "age".into(),
            Value::Number(pick(rng, &[&17.0, &25.0, &30.0, &42.5]).to_owned()),
        ));
    }
    if rng.gen_bool(0.3) {
        update.set.push(("vip".into(), Value::Bool(rng.gen_bool(0.5))));
    }
    if rng.gen_bool(0.3) {
        let key = pick(rng, &["city", "age"]);
        let value = if key == "city" { city(rng) } else { Value::Number(pick_number(rng)) };
        update.set_once.push((key.into(), value));
    }
    if rng.gen_bool(0.2) {
        update.unset.push(pick(rng, &["city", "vip", "tags", "age"]).into());
    }
    if rng.gen_bool(0.3) {
        let by = *pick(rng, &[&1.0, &2.0, &-1.0, &0.5]);
        update.increment.push((pick(rng, &["visits", "age", "city"]).into(), by));
    }
    if rng.gen_bool(0.3) {
        let key = pick(rng, &["tags", "city"]);
        let value = if rng.gen_bool(0.5) { random_tags(rng) } else { Value::from("vip") };
        update.append.push((key.into(), value));
    }
    if update.set.is_empty()
        && update.set_once.is_empty()
        && update.unset.is_empty()
        && update.increment.is_empty()
        && update.append.is_empty()
    {
        update.set.push(("city".into(), city(rng)));
    }
    update
}

// ------------------------------------------------------------------------------ queries

/// A random segment expression in valid syntax, nested about `depth` levels, covering every
/// clause kind except `in segment`.
pub fn random_segment(rng: &mut ChaCha8Rng, depth: u32) -> String {
    random_segment_with_saved(rng, depth, &[])
}

/// Like [`random_segment`], also using `in segment "name"` for the given names (when not
/// empty).
pub fn random_segment_with_saved(rng: &mut ChaCha8Rng, depth: u32, saved: &[&str]) -> String {
    expr(rng, depth, saved).text
}

/// How a generated expression is built at its top, to know when it needs parentheses.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Clause,
    Not,
    And,
    Or,
}

struct Piece {
    text: String,
    shape: Shape,
}

fn expr(rng: &mut ChaCha8Rng, depth: u32, saved: &[&str]) -> Piece {
    if depth == 0 || rng.gen_bool(0.3) {
        return Piece { text: clause(rng, saved), shape: Shape::Clause };
    }
    match rng.gen_range(0..3) {
        0 => {
            let inner = expr(rng, depth - 1, saved);
            let needs_parens = matches!(inner.shape, Shape::And | Shape::Or);
            Piece { text: format!("not {}", wrap(rng, inner, needs_parens)), shape: Shape::Not }
        }
        1 => join(rng, depth, saved, Shape::And),
        _ => join(rng, depth, saved, Shape::Or),
    }
}

/// Two or three operands joined by `and` (`shape` And) or `or`.
fn join(rng: &mut ChaCha8Rng, depth: u32, saved: &[&str], shape: Shape) -> Piece {
    let word = if shape == Shape::And { " and " } else { " or " };
    let count = if rng.gen_bool(0.25) { 3 } else { 2 };
    let operands: Vec<String> = (0..count)
        .map(|_| {
            let operand = expr(rng, depth - 1, saved);
            let needs_parens = shape == Shape::And && operand.shape == Shape::Or;
            wrap(rng, operand, needs_parens)
        })
        .collect();
    Piece { text: operands.join(word), shape }
}

/// The piece's text, in parentheses when needed (and sometimes when not).
fn wrap(rng: &mut ChaCha8Rng, piece: Piece, needed: bool) -> String {
    if needed || rng.gen_bool(0.15) { format!("({})", piece.text) } else { piece.text }
}

fn clause(rng: &mut ChaCha8Rng, saved: &[&str]) -> String {
    let kinds = if saved.is_empty() { 10 } else { 11 };
    match rng.gen_range(0..kinds) {
        0 | 1 => did(rng),
        2 => sequence(rng),
        3 => then_not(rng),
        4 => in_a_row(rng),
        5 => format!("{} did {} {}", pick(rng, &["first", "last"]), filter(rng), window(rng)),
        6 => aggregate(rng),
        7 => {
            let (key, kind) = USER_KEYS[rng.gen_range(0..USER_KEYS.len())];
            format!("user.{key} {}", test(rng, kind))
        }
        8 => "reachable via webpush".to_owned(),
        9 => did(rng),
        _ => format!("in segment \"{}\"", pick(rng, saved)),
    }
}

/// `did E [where C]` with a count and a window, each optional, in either order.
fn did(rng: &mut ChaCha8Rng) -> String {
    let mut text = format!("did {}", filter(rng));
    let count = rng.gen_bool(0.5).then(|| count(rng));
    let window = rng.gen_bool(0.6).then(|| window(rng));
    let mut parts: Vec<String> = count.into_iter().chain(window).collect();
    if rng.gen_bool(0.3) {
        parts.reverse();
    }
    for part in parts {
        text.push(' ');
        text.push_str(&part);
    }
    text
}

fn sequence(rng: &mut ChaCha8Rng) -> String {
    let steps: Vec<String> = (0..rng.gen_range(2..=3)).map(|_| filter(rng)).collect();
    let mut text = format!("did {}", steps.join(" then "));
    if rng.gen_bool(0.6) {
        text.push_str(&format!(" within {}", pick(rng, &DURATIONS)));
    }
    optional_window(rng, text)
}

fn then_not(rng: &mut ChaCha8Rng) -> String {
    let (first, absent) = (filter(rng), filter(rng));
    let text = format!("did {first} then not {absent} within {}", pick(rng, &DURATIONS));
    optional_window(rng, text)
}

fn in_a_row(rng: &mut ChaCha8Rng) -> String {
    let n = if rng.gen_bool(0.05) { 0 } else { rng.gen_range(1..=4) };
    let text = format!("did {} {n} {} in a row", filter(rng), times_word(rng, n));
    optional_window(rng, text)
}

fn aggregate(rng: &mut ChaCha8Rng) -> String {
    let function = pick(rng, &["sum", "avg", "min", "max", "count_distinct"]);
    let property = EVENT_KEYS[rng.gen_range(0..EVENT_KEYS.len())].0;
    let text = format!("{function}({property}) of {}", filter(rng));
    let text = optional_window(rng, text);
    format!("{text} {} {}", compare_op(rng), pick(rng, &NUMBER_LITERALS))
}

fn optional_window(rng: &mut ChaCha8Rng, text: String) -> String {
    if rng.gen_bool(0.5) { format!("{text} {}", window(rng)) } else { text }
}

/// `"E"` with an optional `where`.
fn filter(rng: &mut ChaCha8Rng) -> String {
    let name = pick(rng, &QUERY_EVENT_NAMES);
    if rng.gen_bool(0.4) {
        format!("\"{name}\" where {}", condition(rng, 2))
    } else {
        format!("\"{name}\"")
    }
}

fn count(rng: &mut ChaCha8Rng) -> String {
    let n = rng.gen_range(0..=4);
    match rng.gen_range(0..4) {
        0 => format!("at least {n} {}", times_word(rng, n)),
        1 => format!("at most {n} {}", times_word(rng, n)),
        2 => format!("exactly {n} {}", times_word(rng, n)),
        _ => {
            let high = n + rng.gen_range(0..=3);
            format!("between {n} and {high} {}", times_word(rng, high))
        }
    }
}

fn times_word(rng: &mut ChaCha8Rng, n: u32) -> &'static str {
    if n == 1 || rng.gen_bool(0.1) { "time" } else { "times" }
}

fn window(rng: &mut ChaCha8Rng) -> String {
    match rng.gen_range(0..4) {
        0 => format!("in last {}", pick(rng, &DURATIONS)),
        1 => format!("between {} and {}", time_point(rng), time_point(rng)),
        2 => format!("since {}", time_point(rng)),
        _ => format!("before {}", time_point(rng)),
    }
}

/// `now`, `D ago`, a date or an RFC 3339 date-time within a few days of [`NOW`].
fn time_point(rng: &mut ChaCha8Rng) -> String {
    let date = date_near_now(rng.gen_range(-10..=1));
    let hour = pick(rng, &["00", "06", "12", "18", "23"]);
    match rng.gen_range(0..6) {
        0 => "now".to_owned(),
        1 | 2 => format!("{} ago", pick(rng, &DURATIONS)),
        3 => date,
        4 => format!("{date}T{hour}:{}:00Z", pick(rng, &["00", "30"])),
        _ => format!("{date}T{hour}:00:00{}", pick(rng, &[".500Z", "+05:30", "-01:00", "z"])),
    }
}

/// The date `days` days after 2026-11-01 (for -30 < days < 30).
fn date_near_now(days: i32) -> String {
    if days >= 0 { format!("2026-11-{:02}", 1 + days) } else { format!("2026-10-{:02}", 32 + days) }
}

/// A condition after `where`: one comparison, maybe negated, or a parenthesised boolean.
fn condition(rng: &mut ChaCha8Rng, depth: u32) -> String {
    let not = if rng.gen_bool(0.2) { "not " } else { "" };
    if depth == 0 || rng.gen_bool(0.6) {
        let (key, kind) = EVENT_KEYS[rng.gen_range(0..EVENT_KEYS.len())];
        format!("{not}{key} {}", test(rng, kind))
    } else {
        let ors: Vec<String> = (0..rng.gen_range(1..=2))
            .map(|_| {
                let ands: Vec<String> =
                    (0..rng.gen_range(1..=2)).map(|_| condition(rng, depth - 1)).collect();
                ands.join(" and ")
            })
            .collect();
        format!("{not}({})", ors.join(" or "))
    }
}

/// A test: every comparison operator of the language, with operands mostly of the type
/// the property usually holds (`kind`) and sometimes of any type.
fn test(rng: &mut ChaCha8Rng, kind: Kind) -> String {
    match rng.gen_range(0..11) {
        0..=2 => {
            let op = compare_op(rng);
            let list = matches!(op, "==" | "!=") && (kind == Kind::Tags || rng.gen_bool(0.1));
            format!("{op} {}", if list { list_literal(rng, kind) } else { literal(rng, kind) })
        }
        3 => format!("in {}", list_literal(rng, kind)),
        4 => format!("not in {}", list_literal(rng, kind)),
        5 => format!("contains {}", literal(rng, kind)),
        6 => format!("starts with {}", literal(rng, kind)),
        7 | 8 => format!("between {} and {}", literal(rng, kind), literal(rng, kind)),
        9 => "exists".to_owned(),
        _ => "not exists".to_owned(),
    }
}

fn compare_op(rng: &mut ChaCha8Rng) -> &'static str {
    pick(rng, &["==", "!=", "<", "<=", ">", ">="])
}

/// A literal of `kind` (four times in five), or any string, number or boolean.
fn literal(rng: &mut ChaCha8Rng, kind: Kind) -> String {
    if rng.gen_bool(0.2) {
        return any_scalar(rng);
    }
    match kind {
        Kind::Number => pick(rng, &NUMBER_LITERALS).to_owned(),
        Kind::Bool => pick(rng, &["true", "false"]).to_owned(),
        Kind::Text(pool) => format!("\"{}\"", pick(rng, pool)),
        Kind::Tags => format!("\"{}\"", pick(rng, &["a", "b", "vip"])),
        Kind::Any => any_scalar(rng),
    }
}

/// A string, number or boolean literal of any kind.
fn any_scalar(rng: &mut ChaCha8Rng) -> String {
    match rng.gen_range(0..5) {
        0 | 1 => pick(rng, &NUMBER_LITERALS).to_owned(),
        2 | 3 => format!("\"{}\"", pick(rng, &STRING_LITERALS)),
        _ => pick(rng, &["true", "false"]).to_owned(),
    }
}

/// `[…]` with 0–3 literals, sometimes with a trailing comma.
fn list_literal(rng: &mut ChaCha8Rng, kind: Kind) -> String {
    let items: Vec<String> = (0..rng.gen_range(0..=3)).map(|_| literal(rng, kind)).collect();
    let trailing = if !items.is_empty() && rng.gen_bool(0.2) { "," } else { "" };
    format!("[{}{trailing}]", items.join(", "))
}
