//! `holo-harness report`: renders the JSON results of suites and benches into Markdown and one
//! self-contained HTML page (inline SVG plots, no scripts, no external files).
//!
//! Plots: for a bench, requests/s and p99 per run, one bar per target side by side; for a
//! linearizability suite, completed operations per second of each scenario over time with the
//! fault phases shaded; for the crash-recovery suite, acknowledged writes and restart time per
//! kill cycle.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::bench::BenchResults;
use crate::suite::{CrashResults, LinearizabilityResults, ScenarioResult};

/// One results file, by kind.
pub enum Results {
    Bench(BenchResults),
    Linearizability(LinearizabilityResults),
    Crash(CrashResults),
}

/// Every `results.json` under `paths` (files are taken as they are).
pub fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, Results)>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            find(p, &mut files)?;
        } else {
            files.push(p.clone());
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?;
        let kind: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", f.display()))?;
        let parsed = match kind.get("kind").and_then(|k| k.as_str()) {
            Some("bench") => Results::Bench(serde_json::from_value(kind)?),
            Some("linearizability") => Results::Linearizability(serde_json::from_value(kind)?),
            Some("crash-recovery") => Results::Crash(serde_json::from_value(kind)?),
            other => anyhow::bail!("{}: unknown results kind {other:?}", f.display()),
        };
        out.push((f, parsed));
    }
    anyhow::ensure!(
        !out.is_empty(),
        "no results.json under {:?}; run a suite or `holo-harness bench` first",
        paths
    );
    Ok(out)
}

fn find(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            // Cluster directories hold node data, not results.
            if path.file_name().is_some_and(|n| n != "data") {
                find(&path, out)?;
            }
        } else if path.file_name().is_some_and(|n| n == "results.json") {
            out.push(path);
        }
    }
    Ok(())
}

/// Writes `report.md` and `report.html` into `out`; returns their paths.
pub fn render(results: &[(PathBuf, Results)], out: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut md = String::from("# HoloStore harness report\n\n");
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>HoloStore harness report</title>\
         <style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}\
         table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
         th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.pass{color:#080}.fail{color:#c00;font-weight:bold}\
         svg{background:#fff;border:1px solid #ddd;margin:.5em 0}</style></head><body>\
         <h1>HoloStore harness report</h1>",
    );
    for (path, r) in results {
        match r {
            Results::Bench(b) => bench(b, path, &mut md, &mut html),
            Results::Linearizability(l) => linearizability(l, path, &mut md, &mut html),
            Results::Crash(c) => crash(c, path, &mut md, &mut html),
        }
    }
    html.push_str("</body></html>\n");
    let md_path = out.join("report.md");
    let html_path = out.join("report.html");
    std::fs::write(&md_path, md).with_context(|| format!("cannot write {}", md_path.display()))?;
    std::fs::write(&html_path, html)
        .with_context(|| format!("cannot write {}", html_path.display()))?;
    Ok((md_path, html_path))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLORS: [&str; 6] = [
    "#d9534f", "#337ab7", "#5cb85c", "#f0ad4e", "#8e44ad", "#555",
];

/// A grouped bar chart: one group per label, one bar per series.
fn bars(title: &str, unit: &str, groups: &[String], series: &[(String, Vec<f64>)]) -> String {
    let (w, h, left, bottom, top) = (900.0, 300.0, 70.0, 50.0, 30.0);
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0, f64::max)
        .max(1e-9);
    let group_w = (w - left - 20.0) / groups.len().max(1) as f64;
    let bar_w = group_w * 0.8 / series.len().max(1) as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\
         <text x=\"{left}\" y=\"18\" font-size=\"14\">{}</text>",
        esc(title)
    );
    let plot_h = h - bottom - top;
    for tick in 0..=4 {
        let v = max * f64::from(tick) / 4.0;
        let y = h - bottom - plot_h * f64::from(tick) / 4.0;
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#eee\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            w - 20.0,
            left - 4.0,
            y + 3.0,
            human(v)
        );
    }
    for (g, label) in groups.iter().enumerate() {
        let gx = left + g as f64 * group_w + group_w * 0.1;
        for (k, (_, values)) in series.iter().enumerate() {
            let v = values.get(g).copied().unwrap_or(0.0);
            let bh = plot_h * v / max;
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {} {}</title></rect>",
                gx + k as f64 * bar_w,
                h - bottom - bh,
                bar_w - 1.0,
                bh,
                COLORS[k % COLORS.len()],
                esc(label),
                human(v),
                unit
            );
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            gx + group_w * 0.4,
            h - bottom + 15.0,
            esc(label)
        );
    }
    for (k, (name, _)) in series.iter().enumerate() {
        let x = left + k as f64 * 170.0;
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>",
            h - 18.0,
            COLORS[k % COLORS.len()],
            x + 14.0,
            h - 9.0,
            esc(name)
        );
    }
    s.push_str("</svg>");
    s
}

/// A line chart of a per-second series with shaded intervals.
fn timeline(title: &str, values: &[usize], shaded: &[(f64, f64, String)]) -> String {
    let (w, h, left, bottom, top) = (900.0, 220.0, 70.0, 30.0, 30.0);
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = values.len().max(2) as f64;
    let plot_w = w - left - 20.0;
    let plot_h = h - bottom - top;
    let x = |t: f64| left + plot_w * t / n;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\
         <text x=\"{left}\" y=\"18\" font-size=\"14\">{}</text>",
        esc(title)
    );
    for (start, end, label) in shaded {
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{plot_h}\" fill=\"#f7d6d6\"><title>{}</title></rect>\
             <text x=\"{:.1}\" y=\"{}\" font-size=\"10\">{}</text>",
            x(*start),
            (x(*end) - x(*start)).max(1.0),
            esc(label),
            x(*start) + 2.0,
            top + 10.0,
            esc(label)
        );
    }
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                x(i as f64 + 0.5),
                h - bottom - plot_h * (*v as f64) / max
            )
        })
        .collect();
    let _ = write!(
        s,
        "<polyline fill=\"none\" stroke=\"#337ab7\" stroke-width=\"2\" points=\"{}\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{} ops/s</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">0</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\">time (s) →</text>",
        points.join(" "),
        left - 4.0,
        top + 8.0,
        human(max),
        left - 4.0,
        h - bottom,
        w - 80.0,
        h - 8.0
    );
    s.push_str("</svg>");
    s
}

fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}K", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn bench(b: &BenchResults, path: &Path, md: &mut String, html: &mut String) {
    let _ = writeln!(
        md,
        "## Benchmark ({} clients, {} keys, {}-byte values)\n\n_{}_\n\n| target | run | requests/s | p50 ms | p95 ms | p99 ms | max ms | errors |\n|---|---|---:|---:|---:|---:|---:|---:|",
        b.clients,
        b.keyspace,
        b.value_size,
        path.display()
    );
    let _ = write!(
        html,
        "<h2>Benchmark</h2><p>{} clients, {} keys, {}-byte values; <code>{}</code></p><table><tr><th>target</th><th>run</th><th>requests/s</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>errors</th></tr>",
        b.clients,
        b.keyspace,
        b.value_size,
        esc(&path.display().to_string())
    );
    for r in &b.runs {
        let run = format!("{} -P {}", r.test, r.pipeline);
        let _ = writeln!(
            md,
            "| {} | {run} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            r.target, r.requests_per_sec, r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms, r.errors
        );
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{run}</td><td>{:.0}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td></tr>",
            esc(&r.target),
            r.requests_per_sec,
            r.p50_ms,
            r.p95_ms,
            r.p99_ms,
            r.max_ms,
            r.errors
        );
    }
    md.push('\n');
    html.push_str("</table>");
    for (title, ratios) in [
        (
            "Throughput as a share of redis-server's in the same run:",
            crate::bench::ratios(b),
        ),
        (
            "While ranges split and merge every 300 ms, throughput as a share of the same runs without:",
            crate::bench::split_merge_ratios(b),
        ),
        (
            "With one node down, throughput as a share of the healthy cluster's (the bar: 50%):",
            crate::bench::down_ratios(b),
        ),
    ] {
        if ratios.is_empty() {
            continue;
        }
        let _ = write!(md, "{title}\n\n| target | run | share |\n|---|---|---:|\n");
        let _ = write!(
            html,
            "<p>{}</p><table><tr><th>target</th><th>run</th><th>share</th></tr>",
            esc(title)
        );
        for (target, run, ratio) in &ratios {
            let _ = writeln!(md, "| {target} | {run} | {:.1}% |", ratio * 100.0);
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{run}</td><td>{:.1}%</td></tr>",
                esc(target),
                ratio * 100.0
            );
        }
        md.push('\n');
        html.push_str("</table>");
    }
    let sustained: Vec<&crate::bench::BenchRun> =
        b.runs.iter().filter(|r| !r.windows.is_empty()).collect();
    if !sustained.is_empty() {
        let title = "Sustained load: throughput per 10 s window (requests/s), and the last window as a share of the first:";
        let _ = write!(
            md,
            "{title}\n\n| target | run | per 10 s | last / first |\n|---|---|---|---:|\n"
        );
        let _ = write!(
            html,
            "<p>{}</p><table><tr><th>target</th><th>run</th><th>per 10 s</th><th>last / first</th></tr>",
            esc(title)
        );
        for r in sustained {
            let run = format!("{} -P {}", r.test, r.pipeline);
            let windows: Vec<String> = r.windows.iter().map(|w| format!("{w:.0}")).collect();
            let share = r.sustained_share().unwrap_or(1.0) * 100.0;
            let _ = writeln!(
                md,
                "| {} | {run} | {} | {share:.0}% |",
                r.target,
                windows.join(" ")
            );
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{run}</td><td>{}</td><td>{share:.0}%</td></tr>",
                esc(&r.target),
                windows.join(" ")
            );
        }
        md.push('\n');
        html.push_str("</table>");
    }
    let mut groups: Vec<String> = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    for r in &b.runs {
        let g = format!("{} -P {}", r.test, r.pipeline);
        if !groups.contains(&g) {
            groups.push(g);
        }
        if !targets.contains(&r.target) {
            targets.push(r.target.clone());
        }
    }
    let series = |f: fn(&crate::bench::BenchRun) -> f64| -> Vec<(String, Vec<f64>)> {
        targets
            .iter()
            .map(|t| {
                let values = groups
                    .iter()
                    .map(|g| {
                        b.runs
                            .iter()
                            .find(|r| {
                                &r.target == t && &format!("{} -P {}", r.test, r.pipeline) == g
                            })
                            .map_or(0.0, f)
                    })
                    .collect();
                (t.clone(), values)
            })
            .collect()
    };
    html.push_str(&bars(
        "Throughput (requests/s, higher is better)",
        "req/s",
        &groups,
        &series(|r| r.requests_per_sec),
    ));
    html.push_str(&bars(
        "p99 latency (ms, lower is better)",
        "ms",
        &groups,
        &series(|r| r.p99_ms),
    ));
}

fn verdict_class(passed: bool) -> &'static str {
    if passed { "pass" } else { "fail" }
}

fn linearizability(l: &LinearizabilityResults, path: &Path, md: &mut String, html: &mut String) {
    // An interrupted run never passes, whatever its finished scenarios say.
    let passed = l.passed && l.complete;
    let l = &LinearizabilityResults {
        passed,
        ..l.clone()
    };
    if !l.complete {
        let _ = writeln!(md, "**Incomplete run** (interrupted): counted as FAIL.\n");
    }
    let _ = writeln!(
        md,
        "## Linearizability suite: {} ({} backend, {} clients, {:.0} s per scenario, seed {})\n\n_{}_\n\n| scenario | result | ok | fail | unknown | ops/s | checker |\n|---|---|---:|---:|---:|---:|---|",
        if l.passed { "PASS" } else { "FAIL" },
        l.backend,
        l.clients,
        l.duration_s,
        l.seed,
        path.display()
    );
    let _ = write!(
        html,
        "<h2>Linearizability suite: <span class=\"{}\">{}</span></h2><p>{} backend, {} clients, {:.0} s per scenario, seed {}; <code>{}</code></p>\
         <table><tr><th>scenario</th><th>result</th><th>ok</th><th>fail</th><th>unknown</th><th>ops/s</th><th>checker</th></tr>",
        verdict_class(l.passed),
        if l.passed { "PASS" } else { "FAIL" },
        esc(&l.backend),
        l.clients,
        l.duration_s,
        l.seed,
        esc(&path.display().to_string())
    );
    for s in &l.scenarios {
        let result = if s.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(
            md,
            "| {} | {result} | {} | {} | {} | {:.0} | {} |",
            s.name, s.ok, s.fail, s.unknown, s.ops_per_sec, s.verdict
        );
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"{}\">{result}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td></tr>",
            esc(&s.name),
            verdict_class(s.passed),
            s.ok,
            s.fail,
            s.unknown,
            s.ops_per_sec,
            esc(&s.verdict)
        );
    }
    md.push('\n');
    html.push_str("</table>");
    for s in &l.scenarios {
        scenario_detail(s, md, html);
    }
}

fn scenario_detail(s: &ScenarioResult, md: &mut String, html: &mut String) {
    let _ = write!(
        html,
        "<h3>{}</h3><p>{}</p>",
        esc(&s.name),
        esc(&s.description)
    );
    for p in &s.problems {
        let _ = writeln!(md, "- **{}**: {}", s.name, p.lines().next().unwrap_or(""));
        let _ = write!(html, "<p class=\"fail\">{}</p>", esc(p));
    }
    if !s.phases.is_empty() && !s.faults.is_empty() {
        let _ = writeln!(
            md,
            "\n{} by phase:\n\n| phase | from s | to s | ok ops/s | p50 ms | p99 ms | unknown | recovered after s |\n|---|---:|---:|---:|---:|---:|---:|---:|",
            s.name
        );
        html.push_str("<table><tr><th>phase</th><th>from s</th><th>to s</th><th>ok ops/s</th><th>p50 ms</th><th>p99 ms</th><th>unknown</th><th>recovered after s</th></tr>");
        for p in &s.phases {
            let recovered = p
                .recovered_after_s
                .map(|s| format!("{s:.2}"))
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {} | {recovered} |",
                p.label, p.start, p.end, p.ops_per_sec, p.p50_ms, p.p99_ms, p.unknown
            );
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.0}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{recovered}</td></tr>",
                esc(&p.label),
                p.start,
                p.end,
                p.ops_per_sec,
                p.p50_ms,
                p.p99_ms,
                p.unknown
            );
        }
        md.push('\n');
        html.push_str("</table>");
    }
    let shaded: Vec<(f64, f64, String)> = s
        .phases
        .iter()
        .filter(|p| p.label != "healthy")
        .map(|p| (p.start, p.end, p.label.clone()))
        .collect();
    html.push_str(&timeline(
        &format!("{}: completed operations per second", s.name),
        &s.timeline,
        &shaded,
    ));
}

fn crash(c: &CrashResults, path: &Path, md: &mut String, html: &mut String) {
    let status = if c.passed { "PASS" } else { "FAIL" };
    let _ = writeln!(
        md,
        "## Crash-recovery suite: {status} ({} backend, seed {})\n\n_{}_\n\n{} kill cycles, {} acknowledged writes read back from every node ({} reads), {} lost; restart {:.0} ms mean, {:.0} ms max.\n",
        c.backend,
        c.seed,
        path.display(),
        c.cycles.len(),
        c.acked_writes_checked,
        c.reads_checked,
        c.lost_writes,
        c.restart_ms_mean,
        c.restart_ms_max
    );
    for e in &c.lost_examples {
        let _ = writeln!(md, "- lost: {e}");
    }
    for p in &c.problems {
        let _ = writeln!(md, "- problem: {p}");
    }
    let _ = write!(
        html,
        "<h2>Crash-recovery suite: <span class=\"{}\">{status}</span></h2><p>{} backend, seed {}; <code>{}</code></p>\
         <p>{} kill cycles, {} acknowledged writes read back from every node ({} reads), <b>{} lost</b>; restart {:.0} ms mean, {:.0} ms max.</p>",
        verdict_class(c.passed),
        esc(&c.backend),
        c.seed,
        esc(&path.display().to_string()),
        c.cycles.len(),
        c.acked_writes_checked,
        c.reads_checked,
        c.lost_writes,
        c.restart_ms_mean,
        c.restart_ms_max
    );
    for e in &c.lost_examples {
        let _ = write!(html, "<p class=\"fail\">lost: {}</p>", esc(e));
    }
    let groups: Vec<String> = c
        .cycles
        .iter()
        .map(|k| {
            if k.killed.len() > 1 {
                format!("{} (all)", k.cycle)
            } else {
                format!("{} (n{})", k.cycle, k.killed.first().copied().unwrap_or(0))
            }
        })
        .collect();
    html.push_str(&bars(
        "Acknowledged writes per kill cycle",
        "writes",
        &groups,
        &[(
            "acknowledged".into(),
            c.cycles.iter().map(|k| k.acked as f64).collect(),
        )],
    ));
    html.push_str(&bars(
        "Restart time per cycle (ms, until every restarted node answers)",
        "ms",
        &groups,
        &[(
            "restart ms".into(),
            c.cycles.iter().map(|k| k.restart_ms).collect(),
        )],
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::BenchRun;

    #[test]
    fn a_bench_renders_a_table_and_plots() {
        let run = |target: &str, rps: f64| BenchRun {
            target: target.into(),
            test: "SET".into(),
            pipeline: 1,
            clients: 50,
            requests: 1000,
            errors: 0,
            seconds: 1.0,
            requests_per_sec: rps,
            p50_ms: 1.0,
            p95_ms: 2.0,
            p99_ms: 3.0,
            max_ms: 4.0,
            windows: Vec::new(),
        };
        let mut sustained = run("holostore-redb sustained", 8000.0);
        sustained.windows = vec![8000.0, 7800.0, 7600.0];
        let results = vec![(
            PathBuf::from("bench/results.json"),
            Results::Bench(BenchResults {
                kind: "bench".into(),
                clients: 50,
                keyspace: 100,
                value_size: 3,
                runs: vec![
                    run("redis-server", 30000.0),
                    run("holostore-redb", 9000.0),
                    sustained,
                ],
                split_merge_operations: 0,
            }),
        )];
        let dir = tempfile::tempdir().unwrap();
        let (md, html) = render(&results, dir.path()).unwrap();
        let md = std::fs::read_to_string(md).unwrap();
        let html = std::fs::read_to_string(html).unwrap();
        assert!(md.contains("| redis-server | SET -P 1 | 30000 |"), "{md}");
        assert!(md.contains("| holostore-redb | SET -P 1 | 30.0% |"), "{md}");
        assert!(
            md.contains("| holostore-redb sustained | SET -P 1 | 8000 7800 7600 | 95% |"),
            "{md}"
        );
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(html.contains("holostore-redb") && !html.contains("<script"));
    }
}
