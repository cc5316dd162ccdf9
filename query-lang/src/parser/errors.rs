//! Turning a pest failure into an [`Error`]: what was expected, in words, after
//! which keywords, with the caret under the offending token and a hint where one helps.

use super::*;

/// What a grammar rule is called in an error message.
fn describe(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "the end of the query",
        Rule::factor | Rule::expr | Rule::term => "a clause such as `did \"Event\"`, `not` or `(`",
        Rule::group | Rule::cond_group => "`(`",
        Rule::did_clause
        | Rule::first_clause
        | Rule::last_clause
        | Rule::aggregate_clause
        | Rule::user_clause
        | Rule::segment_clause
        | Rule::reachable_clause
        | Rule::clause => "a clause such as `did \"Event\"`",
        Rule::event_name | Rule::event_filter => "an event name in double quotes",
        Rule::segment_name => "a segment name in double quotes",
        Rule::string => "a string in double quotes",
        Rule::where_clause => "`where`",
        Rule::count | Rule::at_least | Rule::at_most | Rule::exactly | Rule::between_count => {
            "a count such as `at least 3 times`"
        }
        Rule::count_window => "a count such as `at least 3 times` or a time window",
        Rule::in_a_row => "`N times in a row`",
        Rule::window
        | Rule::in_last
        | Rule::between_window
        | Rule::since_window
        | Rule::before_window => "a time window such as `in last 7d`",
        Rule::duration | Rule::within => "a duration such as 10m or 7d",
        Rule::time_point | Rule::ago => "a time (2026-11-01, 2026-11-01T09:30:00Z, now, 3d ago)",
        Rule::date_time => "a date such as 2026-11-01",
        Rule::integer => "a whole number",
        Rule::row_count => "`N times in a row`",
        Rule::number => "a number",
        Rule::boolean => "a boolean (`true`, `false`)",
        Rule::value => "a value (\"text\", 42, true, [\"a\", \"b\"])",
        Rule::scalar_value | Rule::literal => "a value (\"text\", 42, true)",
        Rule::list_value | Rule::list => "a list ([\"a\", \"b\"])",
        Rule::event_ref => "`event.` and a property name",
        Rule::property | Rule::bare_name | Rule::quoted_name => {
            "a property name such as `price` or `item.sku`"
        }
        Rule::user_property => "a user property such as `user.city`",
        Rule::test
        | Rule::exists_test
        | Rule::not_exists_test
        | Rule::in_test
        | Rule::not_in_test
        | Rule::contains_test
        | Rule::starts_with_test
        | Rule::between_test
        | Rule::compare_test => {
            "a comparison operator (==, !=, <, <=, >, >=, in, not in, contains, starts with, \
             exists, not exists, between)"
        }
        Rule::compare_op => "a comparison operator (==, !=, <, <=, >, >=)",
        Rule::cond_factor | Rule::cond_and | Rule::cond_or => {
            "a condition such as `price > 10`, `not` or `(`"
        }
        Rule::comparison => "a condition such as `price > 10`",
        Rule::aggregate_fn => "an aggregate (sum, avg, min, max, count_distinct)",
        Rule::then_not | Rule::sequence | Rule::then_step | Rule::then_tail => "`then`",
        Rule::unless_tail => "`unless`",
        Rule::at_tail => "`at`",
        Rule::trigger_if => "`if`",
        Rule::sign => "`+` or `-`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::rbracket => "`]`",
        Rule::comma => "`,`",
        Rule::segment => "a segment expression",
        Rule::trigger => "a trigger",
        Rule::kw_a => "`a`",
        Rule::kw_ago => "`ago`",
        Rule::kw_and => "`and`",
        Rule::kw_at => "`at`",
        Rule::kw_before => "`before`",
        Rule::kw_between => "`between`",
        Rule::kw_contains => "`contains`",
        Rule::kw_did => "`did`",
        Rule::kw_exactly => "`exactly`",
        Rule::kw_exists => "`exists`",
        Rule::kw_first => "`first`",
        Rule::kw_if => "`if`",
        Rule::kw_in => "`in`",
        Rule::kw_last => "`last`",
        Rule::kw_least => "`least`",
        Rule::kw_most => "`most`",
        Rule::kw_not => "`not`",
        Rule::kw_now => "`now`",
        Rule::kw_of => "`of`",
        Rule::kw_on => "`on`",
        Rule::kw_or => "`or`",
        Rule::kw_reachable => "`reachable`",
        Rule::kw_row => "`row`",
        Rule::kw_segment => "`segment`",
        Rule::kw_since => "`since`",
        Rule::kw_starts => "`starts`",
        Rule::kw_then => "`then`",
        Rule::kw_times => "`times`",
        Rule::kw_unless => "`unless`",
        Rule::kw_via => "`via`",
        Rule::kw_webpush => "`webpush`",
        Rule::kw_where => "`where`",
        Rule::kw_with => "`with`",
        Rule::kw_within => "`within`",
        Rule::trigger_tail => "`unless`, `then` or `at`",
        Rule::WHITESPACE
        | Rule::COMMENT
        | Rule::duration_unit
        | Rule::name_segment
        | Rule::ident_char
        | Rule::reserved_word => "more text",
    }
}

/// Phrases listed last: what may end or continue a whole expression.
fn rank(rule: Rule) -> u8 {
    match rule {
        Rule::kw_where => 0,
        Rule::EOI => 3,
        Rule::kw_and | Rule::kw_or | Rule::rparen => 2,
        _ => 1,
    }
}

/// Multi-word keywords quoted together in "after `…`".
const PHRASES: &[&str] = &[
    "in a row",
    "in a",
    "in last",
    "at least",
    "at most",
    "not in",
    "starts with",
    "in segment",
    "reachable via",
    "first did",
    "last did",
    "then not",
    "and not",
    "or not",
];

/// Words that can start a clause: after `and`, anything else suggests a misplaced condition.
const CLAUSE_STARTS: &[&str] = &[
    "did",
    "first",
    "last",
    "not",
    "in",
    "reachable",
    "sum",
    "avg",
    "min",
    "max",
    "count_distinct",
];

/// The hint for `where a == 1 and b == 2`.
const WHERE_TAKES_ONE_COMPARISON: &str = "a `where` takes one comparison; to combine several, \
    put them in parentheses: `where (price > 10 and category == \"shoes\")`";

/// Turns pest's failure into an [`Error`] with phrases, context and a caret.
pub(super) fn syntax_error(
    source: &str,
    tokens: &[Token],
    error: &pest::error::Error<Rule>,
    mode: Mode,
) -> Error {
    let position = match error.location {
        InputLocation::Pos(position) => position,
        InputLocation::Span((start, _)) => start,
    };
    let mut rules = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        ErrorVariant::CustomError { message } => {
            return Error::new(ErrorKind::Syntax, Span::new(position, position), message, source);
        }
    };
    rules.sort_by_key(|&rule| rank(rule));
    let mut expected: Vec<String> = Vec::new();
    for rule in rules {
        let phrase = describe(rule);
        if !expected.iter().any(|known| known == phrase) {
            expected.push(phrase.to_string());
        }
    }

    let before: Vec<&Token> = tokens.iter().filter(|token| token.span.end <= position).collect();
    let found = tokens.iter().find(|token| token.span.end > position);
    let (span, at_end) = match found {
        Some(token) => (Span::new(position.max(token.span.start), token.span.end), false),
        None => {
            let end = before.last().map_or(0, |token| token.span.end);
            (Span::new(end, end), true)
        }
    };

    let mut message = if expected.is_empty() {
        "unexpected text".to_string()
    } else {
        format!("expected {}", join_phrases(&expected))
    };
    if at_end && before.is_empty() {
        message = format!("the query is empty: {message}");
    }
    if let Some(context) = context(source, &before) {
        message.push_str(&format!(" after `{context}`"));
    }
    if at_end && !before.is_empty() {
        message.push_str(", found the end of the query");
    }
    let mut error = Error::new(ErrorKind::Syntax, span, message, source).with_expected(expected);
    if let Some(help) = help(source, &before, found, &error, mode) {
        error = error.with_help(help);
    }
    error
}

/// "a", "a or b", "a, b or c".
fn join_phrases(phrases: &[String]) -> String {
    match phrases {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The keyword phrase or the token just before the error, e.g. `in last`.
fn context(source: &str, before: &[&Token]) -> Option<String> {
    let last = before.last()?;
    for length in [3, 2] {
        if before.len() < length {
            continue;
        }
        let window = &before[before.len() - length..];
        if window.iter().all(|token| token.kind == TokenKind::Word) {
            let words: Vec<&str> = window.iter().map(|token| token.span.slice(source)).collect();
            let phrase = words.join(" ");
            if PHRASES.iter().any(|known| known.eq_ignore_ascii_case(&phrase)) {
                return Some(phrase);
            }
        }
    }
    let text = last.span.slice(source);
    Some(if text.chars().count() > 40 {
        format!("{}…", text.chars().take(39).collect::<String>())
    } else {
        text.to_string()
    })
}

/// A hint for mistakes that the expected-list alone explains poorly.
fn help(
    source: &str,
    before: &[&Token],
    found: Option<&Token>,
    error: &Error,
    mode: Mode,
) -> Option<String> {
    let found_text = found.map_or("", |token| token.span.slice(source));
    let previous = before.last().map_or("", |token| token.span.slice(source));
    let expects = |phrase_start: &str| error.expected().iter().any(|p| p.starts_with(phrase_start));
    if mode == Mode::Trigger && before.is_empty() && !found_text.eq_ignore_ascii_case("on") {
        return Some(
            "a trigger starts with `on` and an event name, e.g. `on \"Signed Up\"`".into(),
        );
    }
    if found_text == "=" && expects("a comparison operator") {
        return Some("use `==` to test equality".into());
    }
    if expects("a duration") && found.is_some_and(|token| token.kind == TokenKind::Number) {
        return Some(
            "a duration is a whole number and a unit: s, m, h, d or w (e.g. 30m, 7d)".into(),
        );
    }
    let found_word = found.is_some_and(|token| token.kind == TokenKind::Word);
    if found_word && expects("an event name") {
        return Some(format!("event names are written in double quotes: \"{found_text}\""));
    }
    if found_word && expects("a value") && !found_text.contains('.') {
        return Some(format!("strings are written in double quotes: \"{found_text}\""));
    }
    let next_is_parenthesis =
        found.is_some_and(|token| source[token.span.end..].trim_start().starts_with('('));
    if found_word && next_is_parenthesis && expects("a clause") {
        return Some("the aggregates are sum, avg, min, max and count_distinct".into());
    }
    let previous_is_times =
        ["times", "time"].iter().any(|word| previous.eq_ignore_ascii_case(word));
    let number_before_times = before.len() >= 2
        && before[before.len() - 2].kind == TokenKind::Number
        && previous_is_times;
    if number_before_times && expects("`in`") {
        return Some(
            "`N times` alone is not a count: write `at least N times`, `at most N times`, \
             `exactly N times` or `N times in a row`"
                .into(),
        );
    }
    let found_boolean = ["and", "or"].iter().any(|word| found_text.eq_ignore_ascii_case(word));
    let had_where =
        before.iter().any(|token| token.span.slice(source).eq_ignore_ascii_case("where"));
    if found_boolean && had_where && !expects("`and`") {
        return Some(WHERE_TAKES_ONE_COMPARISON.into());
    }
    let after_boolean = previous.eq_ignore_ascii_case("and") || previous.eq_ignore_ascii_case("or");
    let looks_like_property = found_word
        && !CLAUSE_STARTS.iter().any(|word| word.eq_ignore_ascii_case(found_text))
        && !found_text.to_ascii_lowercase().starts_with("user.");
    if expects("a clause") && after_boolean && had_where && looks_like_property {
        return Some(WHERE_TAKES_ONE_COMPARISON.into());
    }
    None
}
