//! CPU time of a process and of its threads by name, read from `/proc`, so a
//! benchmark can say how much CPU a phase cost and where it went.

use std::collections::BTreeMap;
use std::process::Command;

/// `sysconf(_SC_CLK_TCK)` when `getconf` cannot say (Linux's USER_HZ).
const DEFAULT_CLOCK_TICKS: f64 = 100.0;

/// Clock ticks per second of `/proc/<pid>/stat` times.
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_CLOCK_TICKS)
}

/// The name and user + system ticks in a `stat` file's text.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    // The command name sits in parentheses and may hold spaces; utime and
    // stime are fields 14 and 15, counting from 1 with the name as field 2.
    let (head, after) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
    Some((name, field(14)? + field(15)?))
}

/// User + system CPU seconds of process `pid` so far (all its threads).
pub fn process_seconds(pid: u32, ticks: f64) -> std::io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&stat).map(|(_, t)| t as f64 / ticks).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unexpected stat: {stat}"))
    })
}

/// CPU seconds so far of each live thread of `pid`, summed by thread name.
pub fn thread_seconds(pid: u32, ticks: f64) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        if let Some((name, t)) = parse_stat(&stat) {
            *out.entry(name).or_insert(0.0) += t as f64 / ticks;
        }
    }
    out
}

/// `after - before` per thread name, largest first, zeros left out.
pub fn spent(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = after
        .iter()
        .map(|(name, t)| (name.clone(), t - before.get(name).copied().unwrap_or(0.0)))
        .filter(|(_, t)| *t > 0.0)
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn stat_lines_with_spaces_in_the_name_parse() {
        let stat = "42 (nudge out box) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(super::parse_stat(stat), Some(("nudge out box".into(), 300)));
        assert_eq!(super::parse_stat("garbage"), None);
    }
}
