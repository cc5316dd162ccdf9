//! The peer benchmark's report: the parts' sections, the machine and versions,
//! written between two markers of `docs/benchmarks.md` (the rest of the file is
//! kept), and a chart of Nudge's speed-up over each peer (plotters; SVG and
//! PNG in `docs/img/`).

use std::path::Path;
use std::process::Command;

use plotters::prelude::*;

use crate::context::{Context, Part, Ratio, Result, run_captured};
use crate::fail;

/// The markers delimiting the generated section of the report file.
const BEGIN: &str = "<!-- peers:begin (written by `peers`; edit benches/peers instead) -->";
const END: &str = "<!-- peers:end -->";
/// The chart's file name, without extension, in `docs/img/`.
const CHART: &str = "peers";
/// Fonts tried for the PNG chart's text (Debian's fonts-liberation, fonts-dejavu-core).
const FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
];
/// Bar colours, one per peer.
const COLOURS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x7f, 0x7f, 0x7f),
];

/// `1234567.8` → `1,234,568`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in ms, shown in the unit that suits it.
pub fn duration(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// A ratio as `123×` (or `0.8×`).
pub fn times(ratio: f64) -> String {
    if ratio >= 10.0 { format!("{}×", thousands(ratio)) } else { format!("{ratio:.1}×") }
}

/// Prints the report, and unless `--check`, writes it into the report file and the chart.
pub fn write(ctx: &Context, parts: &[Part]) -> Result<()> {
    let ratios: Vec<Ratio> = parts.iter().flat_map(|p| p.ratios.iter().cloned()).collect();
    let mut body = format!("{}\n\n", machine(ctx)?);
    for part in parts {
        body.push_str(&part.markdown);
        body.push('\n');
    }
    body.push_str(&targets(&ratios));
    println!("{body}");
    if ctx.args.check {
        return Ok(());
    }
    let report = &ctx.args.report;
    let images = report.parent().unwrap_or(Path::new(".")).join("img");
    std::fs::create_dir_all(&images)?;
    chart(&ratios, &images.join(format!("{CHART}.svg")), &images.join(format!("{CHART}.png")))?;
    let section =
        format!("{BEGIN}\n\n![Nudge's speed-up over each peer](img/{CHART}.svg)\n\n{body}\n{END}");
    let old = std::fs::read_to_string(report).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(start), Some(end)) if end > start => {
            format!("{}{section}{}", &old[..start], &old[end + END.len()..])
        }
        _ => format!("{old}\n{section}\n"),
    };
    std::fs::write(report, new)?;
    eprintln!("peers: wrote {} and {}/{CHART}.{{svg,png}}", report.display(), images.display());
    Ok(())
}

fn machine(ctx: &Context) -> Result<String> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024 / 1024);
    let versions: serde_json::Value =
        serde_json::from_str(&ctx.python("sql_peers.py", &["versions"])?)?;
    let rustc = run_captured(Command::new("rustc").arg("--version")).unwrap_or_default();
    let node = run_captured(Command::new("node").arg("--version")).unwrap_or_default();
    let redis = run_captured(Command::new("redis-server").arg("--version")).unwrap_or_default();
    let postgres = crate::setup::postgres_bin()
        .and_then(|bin| run_captured(Command::new(bin.join("postgres")).arg("--version")))
        .unwrap_or_default();
    Ok(format!(
        "Measured by `peers --scale {}` ({} users, {} days, `now` = {} ms), all systems in one run.\n\n\
         - Machine: {cpu}, {cores} cores, {memory} GiB RAM. Nudge: {} (release, mimalloc, 2 cores shared \
         with the peer's client where there is one).\n\
         - Peers: DuckDB {} (`SET threads=2`), SQLite {} (Python {}), {} (`max_parallel_workers_per_gather=1`), \
         Node {} with web-push 3.6.7, {}.\n",
        ctx.args.scale.name(),
        ctx.spec.users,
        ctx.spec.days,
        ctx.spec.now_ms,
        rustc.trim(),
        versions["duckdb"].as_str().unwrap_or("?"),
        versions["sqlite"].as_str().unwrap_or("?"),
        versions["python"].as_str().unwrap_or("?"),
        postgres.trim(),
        node.trim(),
        redis.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    ))
}

fn targets(ratios: &[Ratio]) -> String {
    let with_target: Vec<&Ratio> = ratios.iter().filter(|r| r.target.is_some()).collect();
    if with_target.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "### Targets\n\n| measure | peer | Nudge ÷ peer | target | met |\n|---|---|---:|---:|---|\n",
    );
    for r in with_target {
        let target = r.target.unwrap_or_default();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.measure,
            r.peer,
            times(r.times),
            times(target),
            if r.times >= target { "yes" } else { "**no**" }
        ));
    }
    out
}

/// A horizontal bar per (measure, peer): Nudge's speed-up, on a log axis,
/// coloured by peer, with the target (if any) as a black tick.
fn chart(ratios: &[Ratio], svg: &Path, png: &Path) -> Result<()> {
    let font = FONTS.iter().find_map(|path| std::fs::read(path).ok()).ok_or_else(|| {
        fail!("no font for the chart: install fonts-liberation or fonts-dejavu-core")
    })?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| fail!("the chart's font could not be read"))?;
    let height = 100 + 20 * ratios.len() as u32;
    draw(&SVGBackend::new(svg, (1000, height)).into_drawing_area(), ratios)?;
    draw(&BitMapBackend::new(png, (1000, height)).into_drawing_area(), ratios)?;
    Ok(())
}

fn draw<B: DrawingBackend>(
    area: &DrawingArea<B, plotters::coord::Shift>,
    ratios: &[Ratio],
) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<B::ErrorType>| fail!("chart: {e:?}");
    let mut peers: Vec<&str> = Vec::new();
    for r in ratios {
        if !peers.contains(&r.peer.as_str()) {
            peers.push(&r.peer);
        }
    }
    area.fill(&WHITE).map_err(err)?;
    let lowest = ratios.iter().map(|r| r.times).fold(1.0f64, f64::min).max(1e-3) / 2.0;
    let highest =
        ratios.iter().map(|r| r.times.max(r.target.unwrap_or(0.0))).fold(10.0f64, f64::max) * 2.0;
    let rows = ratios.len() as i32;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Nudge ÷ peer: how many times faster (log scale; black tick = target)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(260)
        .build_cartesian_2d((lowest..highest).log_scale(), (0..rows).into_segmented())
        .map_err(err)?;
    let label = |y: &SegmentValue<i32>| match y {
        SegmentValue::CenterOf(y) => ratios
            .get((rows - 1 - *y) as usize)
            .map_or_else(String::new, |r| format!("{} vs {}", r.measure, r.peer)),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .y_labels(rows as usize)
        .y_label_formatter(&label)
        .x_label_formatter(&|x| times(*x))
        .disable_y_mesh()
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    for (i, r) in ratios.iter().enumerate() {
        let y = rows - 1 - i as i32;
        let p = peers.iter().position(|x| *x == r.peer).unwrap_or(0);
        let colour = COLOURS[p % COLOURS.len()];
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(1.0, SegmentValue::Exact(y)), (r.times.max(lowest), SegmentValue::Exact(y + 1))],
                colour.filled(),
            )))
            .map_err(err)?;
        if let Some(target) = r.target {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(target, SegmentValue::Exact(y)), (target, SegmentValue::Exact(y + 1))],
                    BLACK.stroke_width(3),
                )))
                .map_err(err)?;
        }
    }
    area.present().map_err(err)?;
    Ok(())
}
