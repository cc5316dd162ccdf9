//! The load harness's figures per phase (requests/s, events/s, latency,
//! status counts, health latency, memory), printed as a Markdown table and,
//! for a long run, written into `docs/reliability.md` between the markers
//! [`BEGIN`] and [`END`] (appended at the end of the file the first time).

use std::path::Path;
use std::time::Duration;

use crate::probe::{Probe, RssSample};
use crate::wrk::{Phase, Work, WrkResult};

/// Marker before the harness's section of `docs/reliability.md`.
pub const BEGIN: &str = "<!-- load:begin -->";
/// Marker after it.
pub const END: &str = "<!-- load:end -->";

/// Everything measured in one phase.
pub struct PhaseReport {
    /// The phase.
    pub phase: Phase,
    /// What wrk saw.
    pub wrk: WrkResult,
    /// Health probe latencies that succeeded.
    pub health: Vec<Duration>,
    /// Health probes that failed, with why.
    pub health_failures: Vec<String>,
    /// `VmRSS` at the first and last sample and `VmHWM` (the high-water mark
    /// since start) at the last, KiB.
    pub rss_kib: Option<(u64, u64, u64)>,
}

impl PhaseReport {
    /// Gathers phase `index`'s samples.
    pub fn new(
        index: usize,
        phase: Phase,
        wrk: WrkResult,
        probes: &[Probe],
        rss: &[RssSample],
    ) -> PhaseReport {
        let mine = probes.iter().filter(|(p, _)| *p == index);
        let mut health: Vec<Duration> =
            mine.clone().filter_map(|(_, r)| r.as_ref().ok().copied()).collect();
        health.sort();
        let health_failures = mine.filter_map(|(_, r)| r.as_ref().err().cloned()).collect();
        let samples: Vec<&RssSample> = rss.iter().filter(|(p, _, _)| *p == index).collect();
        let rss_kib = match (samples.first(), samples.last()) {
            (Some(first), Some(last)) => Some((first.1, last.2, last.1)),
            _ => None,
        };
        PhaseReport { phase, wrk, health, health_failures, rss_kib }
    }

    /// Events per request of this phase (0 for queries).
    pub fn events_per_request(&self) -> usize {
        match self.phase.work {
            Work::Ingest(n) => n,
            Work::Query(_) => 0,
        }
    }

    /// Events acknowledged per second.
    pub fn events_per_s(&self) -> f64 {
        let seconds = self.wrk.duration_us.max(1) as f64 / 1e6;
        (self.wrk.c2xx * self.events_per_request() as u64) as f64 / seconds
    }

    /// The health probe's 99th percentile.
    pub fn health_p99(&self) -> Option<Duration> {
        nudge_benches::percentile(&self.health, 0.99)
    }
}

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

/// The table of every phase, Markdown.
pub fn table(reports: &[PhaseReport]) -> String {
    let mut out = String::from(
        "| phase | conns | events/req | req/s | events/s | p50 ms | p99 ms | max ms | 2xx | 429 | 503 | other | health p99 ms | RSS start / peak / end MiB |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let w = &r.wrk;
        let other =
            w.c5xx + w.cother + w.connect_errors + w.read_errors + w.write_errors + w.timeouts;
        let health = r
            .health_p99()
            .map_or_else(|| "—".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1000.0));
        let health = if r.health_failures.is_empty() {
            health
        } else {
            format!("{health} ({} failed)", r.health_failures.len())
        };
        let rss = r.rss_kib.map_or_else(
            || "—".to_owned(),
            |(start, peak, end)| format!("{} / {} / {}", mib(start), mib(peak), mib(end)),
        );
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.phase.name,
            r.phase.connections,
            r.events_per_request(),
            w.requests_per_s(),
            r.events_per_s(),
            ms(w.p50_us),
            ms(w.p99_us),
            ms(w.max_us),
            w.c2xx,
            w.c429,
            w.c503,
            other,
            health,
            rss,
        ));
    }
    out
}

/// Replaces the section between the markers in `path` with `section`, or
/// appends it (with the markers) at the end of the file.
pub fn write_section(path: &Path, section: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let block = format!("{BEGIN}\n{}\n{END}", section.trim_end());
    let updated = match (text.find(BEGIN), text.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            format!("{}{block}{}", &text[..begin], &text[end + END.len()..])
        }
        _ => format!("{}\n\n{block}\n", text.trim_end()),
    };
    std::fs::write(path, updated).map_err(|e| format!("{}: {e}", path.display()))
}
