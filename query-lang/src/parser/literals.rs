//! Conversion of literal-shaped rules: counts, integers, windows, durations, time
//! points, values, numbers, names, property paths and string escapes. A second
//! `impl` block of the parser's `Converter`; the structural rules are in `mod.rs`.

use pest::iterators::Pair;

use super::*;

impl<'s> Converter<'s> {
    pub(super) fn count(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<Count>> {
        debug_assert_eq!(pair.as_rule(), Rule::count);
        let span = self.span(&pair);
        let form = only_child(pair);
        let rule = form.as_rule();
        let numbers = all_parts(form)
            .map(|number| self.integer(number).map(|n| n.node))
            .collect::<Result<Vec<u32>>>()?;
        let count = match (rule, numbers.as_slice()) {
            (Rule::at_least, &[n]) => Count::AtLeast(n),
            (Rule::at_most, &[n]) => Count::AtMost(n),
            (Rule::exactly, &[n]) => Count::Exactly(n),
            (Rule::between_count, &[low, high]) if low <= high => Count::Between(low, high),
            (Rule::between_count, &[low, high]) => {
                return Err(self.error(
                    ErrorKind::InvalidCount,
                    span,
                    format!(
                        "`between {low} and {high} times` can never match: write the smaller \
                         number first"
                    ),
                ));
            }
            _ => unreachable!("grammar: `{rule:?}` is not a count"),
        };
        self.node(count, span)
    }

    /// A count: a non-negative integer that fits in `u32`.
    pub(super) fn integer(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<u32>> {
        debug_assert!(matches!(pair.as_rule(), Rule::integer | Rule::row_count));
        let span = self.span(&pair);
        let text = pair.as_str();
        let value = text.parse::<u32>().map_err(|_| {
            self.error(
                ErrorKind::InvalidCount,
                span,
                format!("the count `{text}` is too large: the limit is {}", u32::MAX),
            )
        })?;
        self.node(value, span)
    }

    pub(super) fn window(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<Window>> {
        debug_assert_eq!(pair.as_rule(), Rule::window);
        let span = self.span(&pair);
        let form = only_child(pair);
        let window = match form.as_rule() {
            Rule::in_last => {
                let [duration] = parts(form);
                Window::InLast(self.duration(duration)?)
            }
            Rule::between_window => {
                let [from, to] = parts(form);
                Window::Between(self.time_point(from)?, self.time_point(to)?)
            }
            Rule::since_window => {
                let [from] = parts(form);
                Window::Since(self.time_point(from)?)
            }
            Rule::before_window => {
                let [to] = parts(form);
                Window::Before(self.time_point(to)?)
            }
            rule => unreachable!("grammar: `{rule:?}` is not a window"),
        };
        self.node(window, span)
    }

    pub(super) fn within(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<Duration>> {
        debug_assert_eq!(pair.as_rule(), Rule::within);
        let [duration] = parts(pair);
        self.duration(duration)
    }

    pub(super) fn duration(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<Duration>> {
        debug_assert_eq!(pair.as_rule(), Rule::duration);
        let span = self.span(&pair);
        let text = pair.as_str();
        let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        // The grammar admits only the language's units.
        let unit_ms =
            duration_unit_ms(text[digits_end..].trim_start()).unwrap_or(MS_PER_WEEK as u64);
        let ms = text[..digits_end]
            .parse::<u64>()
            .ok()
            .and_then(|amount| amount.checked_mul(unit_ms))
            .filter(|&ms| ms <= MAX_DURATION_MS)
            .ok_or_else(|| {
                self.error(
                    ErrorKind::InvalidDuration,
                    span,
                    format!(
                        "the duration `{text}` is too long: the limit is {} days",
                        MAX_DURATION_MS / MS_PER_DAY as u64
                    ),
                )
            })?;
        self.node(Duration::from_ms(ms), span)
    }

    pub(super) fn time_point(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<TimePoint>> {
        debug_assert_eq!(pair.as_rule(), Rule::time_point);
        let span = self.span(&pair);
        let form = only_child(pair);
        let time_point = match form.as_rule() {
            Rule::date_time => {
                let text = form.as_str();
                let ms = crate::time::parse_date_time(text).map_err(|reason| {
                    self.error(
                        ErrorKind::InvalidTime,
                        span,
                        format!("invalid date `{text}`: {reason}"),
                    )
                })?;
                TimePoint::Absolute(ms)
            }
            Rule::kw_now => TimePoint::Now,
            Rule::ago => {
                let [duration] = parts(form);
                TimePoint::Ago(self.duration(duration)?.node)
            }
            rule => unreachable!("grammar: `{rule:?}` is not a time point"),
        };
        self.node(time_point, span)
    }

    // -------------------------------------------------------------------- conditions

    /// Converts `value`, `scalar_value`, `list_value`, `literal` and their alternatives.
    pub(super) fn value(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<Value>> {
        let span = self.span(&pair);
        let value = match pair.as_rule() {
            Rule::value | Rule::scalar_value | Rule::list_value | Rule::literal => {
                return self.value(only_child(pair));
            }
            Rule::list => {
                let items =
                    all_parts(pair).map(|item| self.value(item)).collect::<Result<Vec<_>>>()?;
                Value::List(items)
            }
            Rule::string => Value::String(self.unescape(&pair)?),
            Rule::number => Value::Number(self.number(pair)?.node),
            Rule::boolean => Value::Bool(pair.as_str().eq_ignore_ascii_case("true")),
            Rule::event_ref => {
                if self.mode == Mode::Segment {
                    return Err(self
                        .error(
                            ErrorKind::EventRefOutsideTrigger,
                            span,
                            format!(
                                "`{}` names a property of the triggering event, which only \
                                 exists inside a trigger",
                                pair.as_str()
                            ),
                        )
                        .with_help(
                            "in a segment, compare with a literal such as \"abc\" or 42; \
                             `event.P` works in a trigger's `where` and `if`",
                        ));
                }
                Value::EventRef(self.path(pair)?)
            }
            rule => unreachable!("grammar: `{rule:?}` is not a value"),
        };
        self.node(value, span)
    }

    pub(super) fn number(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<Number>> {
        debug_assert_eq!(pair.as_rule(), Rule::number);
        let span = self.span(&pair);
        let text = pair.as_str();
        let number = if text.contains('.') {
            text.parse::<f64>().ok().filter(|float| float.is_finite()).map(Number::Float)
        } else {
            text.parse::<i64>().ok().map(Number::Int)
        };
        let number = number.ok_or_else(|| {
            self.error(
                ErrorKind::NumberOutOfRange,
                span,
                format!(
                    "the number `{text}` is out of range: integers must lie between {} and {}",
                    i64::MIN,
                    i64::MAX
                ),
            )
            .with_help("an identifier that long is best written as a string, e.g. \"1234…\"")
        })?;
        self.node(number, span)
    }

    /// An event or segment name: a non-empty string.
    pub(super) fn name(&mut self, pair: Pair<'s, Rule>, what: &str) -> Result<Spanned<String>> {
        let span = self.span(&pair);
        let name = self.unescape(&pair)?;
        if name.is_empty() {
            return Err(self.error(ErrorKind::EmptyName, span, format!("the {what} is empty")));
        }
        self.node(name, span)
    }

    /// `property` or `user_property` (whose `user.` is not part of the path).
    pub(super) fn property(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<PropertyPath>> {
        let span = self.span(&pair);
        let path = self.path(pair)?;
        self.node(path, span)
    }

    /// The segments of `property`, `user_property` or `event_ref`.
    pub(super) fn path(&mut self, pair: Pair<'s, Rule>) -> Result<PropertyPath> {
        let segments = pair
            .into_inner()
            .map(|segment| match segment.as_rule() {
                Rule::quoted_name => self.unescape(&segment),
                _ => Ok(segment.as_str().to_string()),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PropertyPath { segments })
    }

    /// The content of a quoted token (string or backtick name) with escapes resolved.
    pub(super) fn unescape(&self, pair: &Pair<'s, Rule>) -> Result<String> {
        let text = pair.as_str();
        let content_start = self.span(pair).start + 1;
        let content = &text[1..text.len() - 1];
        let mut unescaped = String::with_capacity(content.len());
        let mut chars = content.char_indices();
        while let Some((offset, character)) = chars.next() {
            if character != '\\' {
                unescaped.push(character);
                continue;
            }
            let (escape_offset, escaped) = chars.next().expect("grammar: `\\` is followed");
            unescaped.push(match escaped {
                '"' | '`' | '\\' => escaped,
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                _ => {
                    let start = content_start + offset;
                    let end = content_start + escape_offset + escaped.len_utf8();
                    return Err(self.error(
                        ErrorKind::InvalidEscape,
                        Span::new(start, end),
                        format!(
                            "unknown escape `\\{escaped}`: the escapes are \\\" \\` \\\\ \\n \\t \
                             and \\r"
                        ),
                    ));
                }
            });
        }
        Ok(unescaped)
    }

    // ---------------------------------------------------------------------- triggers
}
