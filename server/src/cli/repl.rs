//! `nudge repl`: an interactive prompt for segment queries, with history
//! (kept in `DATA/.nudge_history`), multi-line input (end a line with `\`, or
//! leave a parenthesis or quote open), and the commands `\explain` and
//! `\timing` (toggles), `\help` and `\q`.

use std::path::Path;

use nudge_engine::{Engine, QueryOptions};
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::cli::query;
use crate::error::{Error, Result};

const HELP: &str = "Type a segment expression, e.g. did \"Charged\" in last 7d, and press Enter.\n\
End a line with \\ (or leave a parenthesis or quote open) to continue on the next.\n\
\\explain  toggle printing the plan of each query\n\
\\timing   toggle printing the time of each query\n\
\\help     this text\n\
\\q        quit (or Ctrl-D)";

/// True when `text` leaves a string or a parenthesis open (the query goes on).
fn is_open(text: &str) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0i32, false, false);
    for c in text.chars() {
        match (in_string, c) {
            (true, '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (true, '"') if !escaped => in_string = false,
            (false, '"') => in_string = true,
            (false, '(') => depth += 1,
            (false, ')') => depth -= 1,
            _ => {}
        }
        escaped = false;
    }
    in_string || depth > 0
}

/// Runs the prompt until `\q` or end of input.
pub fn run(engine: &Engine, data: &Path) -> Result<()> {
    let mut editor = DefaultEditor::new()
        .map_err(|e| Error::Usage(format!("cannot start the line editor: {e}")))?;
    let history = data.join(".nudge_history");
    let _ = editor.load_history(&history);
    let (mut explain, mut timing) = (false, true);
    println!("nudge repl on {} — \\help for help, \\q to quit", data.display());
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() { "nudge> " } else { "   ..> " };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::Usage(format!("reading input: {e}"))),
        };
        let trimmed = line.trim();
        if pending.is_empty() {
            match trimmed {
                "" => continue,
                "\\q" | "\\quit" => break,
                "\\help" => {
                    println!("{HELP}");
                    continue;
                }
                "\\explain" => {
                    explain = !explain;
                    println!("explain is {}", if explain { "on" } else { "off" });
                    continue;
                }
                "\\timing" => {
                    timing = !timing;
                    println!("timing is {}", if timing { "on" } else { "off" });
                    continue;
                }
                _ => {}
            }
        }
        let (text, continues) = match trimmed.strip_suffix('\\') {
            Some(head) => (head, true),
            None => (trimmed, false),
        };
        pending.push_str(text);
        pending.push('\n');
        if continues || is_open(&pending) {
            continue;
        }
        let query = std::mem::take(&mut pending);
        let _ = editor.add_history_entry(query.trim());
        match engine.query(
            &query,
            &QueryOptions {
                limit: Some(20),
                deadline_ms: Some(nudge_engine::limits::NO_QUERY_DEADLINE_MS),
                memory_limit_bytes: Some(nudge_engine::limits::NO_QUERY_MEMORY_LIMIT_BYTES),
                ..Default::default()
            },
        ) {
            Ok(answer) => {
                for warning in &answer.warnings {
                    println!("warning: {warning}");
                }
                if explain {
                    print!("{}", query::plan_text(&answer));
                }
                let shown = answer.users.join(", ");
                let more = answer.count.saturating_sub(answer.users.len() as u64);
                println!(
                    "{} users{}",
                    answer.count,
                    if timing { format!(" ({} µs)", answer.took_us) } else { String::new() }
                );
                if !shown.is_empty() {
                    println!(
                        "  {shown}{}",
                        if more > 0 { format!(" … and {more} more") } else { String::new() }
                    );
                }
            }
            Err(nudge_engine::Error::Query { rendered, .. }) => println!("{rendered}"),
            Err(e) => println!("error: {e}"),
        }
    }
    let _ = editor.save_history(&history);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_parentheses_and_strings_continue_the_query() {
        assert!(is_open("did \"A\" and ("));
        assert!(is_open("did \"A (x"));
        assert!(!is_open("did \"A\" and (did \"B\")"));
        assert!(!is_open("did \"a \\\" ( b\""));
    }
}
