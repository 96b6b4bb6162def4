//! Human output: a text summary, and for failures a JSON Lines history and an HTML page with
//! an SVG timeline (no external JS or CSS).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::model::label;
use super::{PartitionFailure, Report, Verdict};
use crate::history::{Entry, Outcome};

/// A short human summary: verdict, operations, partitions, time, failing keys.
pub fn render_text(report: &Report) -> String {
    let mut s = String::new();
    let verdict = match report.verdict {
        Verdict::Linearizable => "linearizable",
        Verdict::NotLinearizable => "NOT LINEARIZABLE",
        Verdict::Unknown => "UNKNOWN (deadline hit before every partition was checked)",
    };
    let _ = writeln!(s, "verdict: {verdict}");
    let _ = writeln!(
        s,
        "ops: {} checked of {} ({} failed and {} unknown reads dropped, {} unknown writes)",
        report.ops_checked,
        report.ops_total,
        report.dropped_failed,
        report.dropped_unknown_reads,
        report.unknown_writes
    );
    let _ = writeln!(
        s,
        "partitions: {} over {} keys (largest {} ops), {} unfinished, {} failed; {:.2}s, {} search steps",
        report.partitions,
        report.keys,
        report.largest_partition,
        report.partitions_unfinished,
        report.partitions_failed,
        report.elapsed_ms as f64 / 1000.0,
        report.search_steps
    );
    if report.locks_taken + report.locks_refused > 0 {
        let _ = writeln!(
            s,
            "locks: {} taken, {} refused, {} mutual-exclusion violations",
            report.locks_taken,
            report.locks_refused,
            report.lock_violations.len()
        );
        for v in &report.lock_violations {
            let _ = writeln!(s, "  {v}");
        }
    }
    for (n, f) in report.failing.iter().enumerate() {
        let _ = writeln!(
            s,
            "failure {}: keys [{}], {} ops (longest linearizable prefix {}), shrunk to {} ops{}",
            n + 1,
            f.keys.join(", "),
            f.ops,
            f.longest_prefix,
            f.history.len(),
            if f.minimal {
                ""
            } else {
                " (shrinking ran out of time)"
            }
        );
        let _ = writeln!(s, "  {}", f.explanation);
    }
    if report.partitions_failed > report.failing.len() {
        let _ = writeln!(
            s,
            "({} more failing partitions not shown)",
            report.partitions_failed - report.failing.len()
        );
    }
    s
}

/// Writes `failure-<n>.jsonl` (the shrunk history) and `failure-<n>.html` for every failing
/// partition of the report (n from 1) into `dir` (created if needed); returns the paths.
pub fn write_failure(dir: &Path, report: &Report) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut paths = Vec::new();
    for (n, f) in report.failing.iter().enumerate() {
        let jsonl = dir.join(format!("failure-{}.jsonl", n + 1));
        crate::history::write(&jsonl, &f.history)?;
        paths.push(jsonl);
        let html = dir.join(format!("failure-{}.html", n + 1));
        std::fs::write(&html, render_html(f))
            .with_context(|| format!("cannot write {}", html.display()))?;
        paths.push(html);
    }
    Ok(paths)
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Width of one event slot: enough for the longest label, within bounds.
const MIN_SLOT: f64 = 60.0;
const MAX_SLOT: f64 = 260.0;
/// Width of a character of the 11 px monospace labels.
const CHAR: f64 = 6.7;
const LEFT: f64 = 90.0;
const ROW: f64 = 30.0;
const BAR: f64 = 20.0;
const TOP: f64 = 10.0;

/// Operations drawn at most (around the stuck one) when shrinking ran out of time.
const MAX_DRAWN: usize = 300;

/// The operations to draw and list: all, or the [`MAX_DRAWN`] invoked nearest to the stuck
/// operation.
fn drawn(f: &PartitionFailure) -> Vec<&Entry> {
    let mut h: Vec<&Entry> = f.history.iter().collect();
    if h.len() > MAX_DRAWN {
        let focus = f
            .stuck
            .and_then(|id| h.iter().find(|e| e.id == id))
            .or(h.last())
            .map_or(0, |e| e.invoke_ns);
        h.sort_by_key(|e| (e.invoke_ns.abs_diff(focus), e.id));
        h.truncate(MAX_DRAWN);
        h.sort_by_key(|e| (e.invoke_ns, e.id));
    }
    h
}

/// The SVG timeline: one lane per client (more rows when its operations overlap, e.g. after
/// an unknown one), time compressed to the order of events.
fn svg(f: &PartitionFailure) -> String {
    let h = drawn(f);
    let position: HashMap<u64, usize> = f
        .prefix
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();
    // Event times -> slots.
    let mut times: Vec<u64> = Vec::new();
    for e in &h {
        times.push(e.invoke_ns);
        if e.outcome != Outcome::Unknown {
            times.push(e.complete_ns.max(e.invoke_ns));
        }
    }
    times.sort_unstable();
    times.dedup();
    let slot: HashMap<u64, usize> = times.iter().enumerate().map(|(i, &t)| (t, i)).collect();
    let longest = h
        .iter()
        .map(|e| label(e).chars().count())
        .max()
        .unwrap_or(0);
    let slot_w = (longest as f64 * CHAR + 14.0).clamp(MIN_SLOT, MAX_SLOT);
    let x = |t: u64| LEFT + 10.0 + slot[&t] as f64 * slot_w;
    let end_x = LEFT + 10.0 + times.len() as f64 * slot_w + slot_w / 2.0;

    // Lanes and rows.
    let mut lanes: BTreeMap<u32, Vec<Vec<(f64, f64)>>> = BTreeMap::new();
    let mut placed: Vec<(u32, usize, f64, f64)> = Vec::with_capacity(h.len());
    for e in &h {
        let x0 = x(e.invoke_ns);
        let x1 = if e.outcome == Outcome::Unknown {
            end_x
        } else {
            x(e.complete_ns.max(e.invoke_ns)).max(x0 + slot_w * 0.8)
        };
        let rows = lanes.entry(e.client).or_default();
        let row = rows
            .iter()
            .position(|r| r.iter().all(|&(a, b)| x1 <= a || b <= x0))
            .unwrap_or_else(|| {
                rows.push(Vec::new());
                rows.len() - 1
            });
        rows[row].push((x0, x1));
        placed.push((e.client, row, x0, x1));
    }
    let mut lane_y: HashMap<u32, f64> = HashMap::new();
    let mut y = TOP;
    for (&client, rows) in &lanes {
        lane_y.insert(client, y);
        y += rows.len() as f64 * ROW + 10.0;
    }
    let height = y + 10.0;
    let width = end_x + 20.0;

    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="monospace" font-size="11">
<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff3cd"/><line x1="0" y1="0" x2="0" y2="6" stroke="#d39e00" stroke-width="2"/></pattern></defs>
"##
    );
    for (&client, rows) in &lanes {
        let ly = lane_y[&client];
        let lh = rows.len() as f64 * ROW;
        let _ = writeln!(
            s,
            r##"<rect x="0" y="{:.1}" width="{width:.0}" height="{lh:.1}" fill="#f8f9fa"/><text x="6" y="{:.1}" fill="#333">client {client}</text>"##,
            ly - 3.0,
            ly + BAR / 2.0 + 4.0
        );
    }
    for (e, &(client, row, x0, x1)) in h.iter().zip(&placed) {
        let by = lane_y[&client] + row as f64 * ROW;
        let stuck = f.stuck == Some(e.id);
        let pos = position.get(&e.id);
        let (fill, stroke, sw) = if stuck {
            ("#f8d7da", "#c62828", 2.5)
        } else if pos.is_some() {
            ("#d4edda", "#2e7d32", 1.2)
        } else {
            ("#e9ecef", "#6c757d", 1.0)
        };
        let text = label(e);
        let tip = format!(
            "#{} client {}{}: {}\noutcome {:?}{}\ninvoke {} ns, complete {} ns{}",
            e.id,
            e.client,
            e.node
                .as_deref()
                .map(|n| format!(" via {n}"))
                .unwrap_or_default(),
            text,
            e.outcome,
            e.error
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
            e.invoke_ns,
            e.complete_ns,
            pos.map(|p| format!("\nlinearized #{}", p + 1))
                .unwrap_or_default()
        );
        let _ = write!(s, "<g><title>{}</title>", esc(&tip));
        let w = x1 - x0;
        if e.outcome == Outcome::Unknown {
            // Open-ended: no right edge.
            let fill = if stuck || pos.is_some() {
                fill
            } else {
                "url(#hatch)"
            };
            let _ = write!(
                s,
                r##"<rect x="{x0:.1}" y="{by:.1}" width="{w:.1}" height="{BAR}" fill="{fill}"/><path d="M{x1:.1},{by:.1} H{x0:.1} V{:.1} H{x1:.1}" fill="none" stroke="{stroke}" stroke-width="{sw}" stroke-dasharray="4 3"/>"##,
                by + BAR
            );
            if pos.is_some() {
                let _ = write!(
                    s,
                    r##"<rect x="{x0:.1}" y="{by:.1}" width="{w:.1}" height="{BAR}" fill="url(#hatch)" opacity="0.4"/>"##
                );
            }
        } else {
            let _ = write!(
                s,
                r##"<rect x="{x0:.1}" y="{by:.1}" width="{w:.1}" height="{BAR}" rx="3" fill="{fill}" stroke="{stroke}" stroke-width="{sw}"/>"##
            );
        }
        let max_chars = ((w - 8.0) / CHAR).max(3.0) as usize;
        let shown: String = if text.chars().count() > max_chars {
            let mut t: String = text.chars().take(max_chars.saturating_sub(1)).collect();
            t.push('…');
            t
        } else {
            text.clone()
        };
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#111">{}</text>"##,
            x0 + 4.0,
            by + BAR / 2.0 + 4.0,
            esc(&shown)
        );
        if let Some(p) = pos {
            let _ = write!(
                s,
                r##"<circle cx="{x0:.1}" cy="{by:.1}" r="7" fill="#2e7d32"/><text x="{x0:.1}" y="{:.1}" fill="#fff" font-size="9" text-anchor="middle">{}</text>"##,
                by + 3.0,
                p + 1
            );
        }
        if stuck {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" fill="#c62828" font-weight="bold" font-size="14">✗</text>"##,
                x1 + 3.0,
                by + BAR / 2.0 + 4.0
            );
        }
        s.push_str("</g>\n");
    }
    s.push_str("</svg>");
    s
}

fn op_row(e: &Entry, f: &PartitionFailure) -> String {
    let mark = if f.stuck == Some(e.id) {
        "stuck".to_owned()
    } else {
        f.prefix
            .iter()
            .position(|&p| p == e.id)
            .map(|p| format!("linearized #{}", p + 1))
            .unwrap_or_default()
    };
    format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:?}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        e.id,
        e.client,
        esc(e.node.as_deref().unwrap_or("")),
        esc(&label(e)),
        e.outcome,
        esc(&e
            .error
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default()),
        e.invoke_ns,
        if e.outcome == Outcome::Unknown {
            format!("({}) never", e.complete_ns)
        } else {
            e.complete_ns.to_string()
        },
        mark
    )
}

/// A self-contained HTML page for one failing partition.
pub fn render_html(f: &PartitionFailure) -> String {
    let state: Vec<String> = f
        .state
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("nil")))
        .collect();
    let drawn = drawn(f);
    let rows: String = drawn.iter().map(|e| op_row(e, f)).collect();
    let note = if drawn.len() < f.history.len() {
        format!(
            "<p>Shrinking ran out of time: showing the {} operations invoked nearest to the \
             stuck one, of {} (the JSON Lines file has them all).</p>",
            drawn.len(),
            f.history.len()
        )
    } else {
        String::new()
    };
    format!(
        r##"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Not linearizable: {keys}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
.svg {{ overflow-x: auto; border: 1px solid #ccc; padding: 4px; }}
table {{ border-collapse: collapse; font-family: monospace; font-size: 12px; margin-top: 1em; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: left; }}
.why {{ background: #fff4f4; border-left: 4px solid #c62828; padding: 0.6em 1em; }}
</style></head><body>
<h1>Not linearizable: keys {keys}</h1>
<p>The partition had {ops} operations; the search linearized at most {longest} of them. Below is a
{minimal} failing sub-history of {n} operations (still not linearizable).</p>
<p class="why">{why}</p>
<p>State after the longest linearizable prefix of this sub-history: <code>{state}</code></p>
<p class="legend">One lane per client; time runs left to right in the order of events (not to
scale). <span style="background:#d4edda">Green</span>: the longest linearizable prefix, numbered
in linearization order. <span style="background:#f8d7da">Red</span> (✗): the operation that could
not be linearized after it. <span style="background:#fff3cd">Hatched, open to the right</span>:
unknown outcome (may take effect at any time after its invocation, or never). Hover over an
operation for details.</p>
{note}<div class="svg">
{svg}
</div>
<table><tr><th>id</th><th>client</th><th>node</th><th>operation</th><th>outcome</th><th>invoke ns</th><th>complete ns</th><th></th></tr>
{rows}</table>
</body></html>
"##,
        keys = esc(&f.keys.join(", ")),
        ops = f.ops,
        longest = f.longest_prefix,
        minimal = if f.minimal {
            "minimal (no single operation can be removed)"
        } else {
            "shrunk (the shrinking budget ran out)"
        },
        n = f.history.len(),
        why = esc(&f.explanation),
        state = esc(&state.join(", ")),
        svg = svg(f),
        rows = rows,
        note = note,
    )
}
