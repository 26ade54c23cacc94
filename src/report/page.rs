//! The report's pages: `summary.md` (tables) and `index.html` (tables and figures; no
//! network: the figures are files beside it, and a small script marks on the page
//! whether every figure loaded, for browsers and tests).

use super::adaptation::AdaptationTable;
use super::per_task::PerTaskTable;
use super::progress::{ProgressRow, FRACTIONS};
use super::{EnvSection, Estimate, ScoreTable};
use crate::error::UserError;
use crate::run::files::atomic_write;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// An estimate as a cell: "value [low, high]", or without an interval (one run) a
/// value that says so; "-" for none.
fn est(e: &Option<Estimate>) -> String {
    match e {
        Some(Estimate {
            value,
            ci: Some(ci),
        }) => format!("{value:.3} [{:.3}, {:.3}]", ci.lo, ci.hi),
        Some(Estimate { value, ci: None }) => format!("{value:.3} (1 run: no interval)"),
        None => "-".into(),
    }
}

/// [`est`] for the wide tables (a column per class or episode), where the phrase
/// would fill every cell: a value without an interval is printed bare, and the table's
/// note says what that means.
fn est_compact(e: &Option<Estimate>) -> String {
    match e {
        Some(Estimate { value, ci: None }) => format!("{value:.3}"),
        _ => est(e),
    }
}

fn frames(f: f64) -> String {
    if !f.is_finite() {
        "-".into()
    } else if f >= 1e6 {
        format!("{:.2}M", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1}k", f / 1e3)
    } else {
        format!("{f:.0}")
    }
}

fn seconds(s: f64) -> String {
    if !s.is_finite() {
        "-".into()
    } else if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

/// Header and rows of a score table, as plain cells.
fn score_cells(t: &ScoreTable) -> (Vec<String>, Vec<Vec<String>>) {
    let header = [
        "method",
        "seeds (evaluated)",
        "mean [95% CI]",
        "IQM [95% CI]",
        "per seed",
        "frames",
        "wall-clock",
    ]
    .map(String::from)
    .to_vec();
    let rows = t
        .rows
        .iter()
        .map(|r| {
            vec![
                r.method.clone(),
                format!("{} ({})", r.seeds, r.evaluated),
                est(&r.mean),
                est(&r.iqm),
                r.per_seed
                    .iter()
                    .map(|(seed, v)| format!("{seed}: {v:.3}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                frames(r.frames),
                seconds(r.wall_s),
            ]
        })
        .collect();
    (header, rows)
}

/// Success per class (mean [95% CI] over runs) and over classes.
fn per_task_cells(t: &PerTaskTable) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = vec!["method".to_string(), "runs".into()];
    header.extend(t.classes.iter().cloned());
    header.push("over classes".into());
    let rows = t
        .rows
        .iter()
        .map(|r| {
            let mut row = vec![r.method.clone(), r.runs.to_string()];
            row.extend(r.classes.iter().map(est_compact));
            row.push(est_compact(&r.overall));
            row
        })
        .collect();
    (header, rows)
}

const PER_TASK_NOTE: &str = "MetaWorld's protocol: success rate per task class (mean over \
seeds, 95% bootstrap interval over seeds; `-` where no run evaluated the class); over \
classes: each run's mean over its classes, then the mean over runs. A value without an \
interval rests on one run.";

/// Probability-of-improvement matrix: row method over column method.
fn poi_cells(t: &ScoreTable) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = vec!["P(row > column)".to_string()];
    header.extend(t.rows.iter().map(|r| r.method.clone()));
    let rows =
        t.rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut row = vec![r.method.clone()];
                row.extend(t.poi[i].iter().enumerate().map(|(j, p)| {
                    if i == j {
                        "".into()
                    } else {
                        est(p)
                    }
                }));
                row
            })
            .collect();
    (header, rows)
}

/// Return per episode (mean [95% CI] over runs) and first / last episode success.
fn adaptation_cells(t: &AdaptationTable) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = vec!["method".to_string(), "runs".into()];
    header.extend((1..=t.episodes).map(|e| format!("episode {e}")));
    header.push(format!("success ep 1 / {}", t.episodes));
    let rows = t
        .rows
        .iter()
        .map(|r| {
            let mut row = vec![r.method.clone(), r.runs.to_string()];
            row.extend((0..t.episodes).map(|e| est_compact(r.returns.get(e).unwrap_or(&None))));
            row.push(match &r.success {
                Some((first, last)) => format!("{:.3} / {:.3}", first.value, last.value),
                None => "-".into(),
            });
            row
        })
        .collect();
    (header, rows)
}

/// Training trial return / seconds at fractions of the frame budget.
fn progress_cells(rows: &[ProgressRow]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = vec!["method".to_string(), "runs".into()];
    header.extend(
        FRACTIONS
            .iter()
            .map(|f| format!("{:.0}% of frames: return / s", f * 100.0)),
    );
    let rows = rows
        .iter()
        .map(|r| {
            let mut row = vec![r.method.clone(), r.runs.to_string()];
            row.extend(r.cells.iter().map(|c| match c {
                Some((y, w)) => format!("{y:.2} / {w:.0}"),
                None => "-".into(),
            }));
            row
        })
        .collect();
    (header, rows)
}

const ADAPTATION_HEADING: &str = "meta-test return per episode";
const ADAPTATION_NOTE: &str = "Mean over runs with a 95% bootstrap interval (none where it \
rests on one run); success is the mean success rate of the trial's first and last episode.";
const PROGRESS_HEADING: &str = "training return at fractions of the frame budget";
const PROGRESS_NOTE: &str = "Training trial return (mean over the metrics rows within 5% \
of the budget of that point, then over runs) and wall-clock seconds at that point; the \
budget is the shortest run's frames.";

fn md_table(out: &mut String, (header, rows): (Vec<String>, Vec<Vec<String>>)) {
    let esc = |s: &String| s.replace('|', "\\|");
    let _ = writeln!(
        out,
        "| {} |",
        header.iter().map(esc).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for r in rows {
        let _ = writeln!(
            out,
            "| {} |",
            r.iter().map(esc).collect::<Vec<_>>().join(" | ")
        );
    }
    out.push('\n');
}

const METHOD_NOTE: &str = "Final scores are each run's meta-test (`eval.json`) on held-out tasks; \
intervals are 95% percentile stratified-bootstrap intervals over seeds (and tasks, where the \
evaluation lists them), IQM is the interquartile mean over all runs x tasks (rliable's \
definitions), and P(row > column) is the probability of improvement. Per seed: each \
evaluated run's score (its mean over tasks), as `seed: score`. Frames and wall-clock are \
means over the runs' training.";

/// Where a report's runs come from: the folders searched and the labels merged.
pub struct Sources<'a> {
    pub dirs: Vec<String>,
    /// `--relabel` pairs, said on the page so a merged row is never read as one
    /// setting's by accident.
    pub relabel: &'a [(String, String)],
}

impl Sources<'_> {
    /// "N run folders (M evaluated) from A, B." plus a sentence per relabelled label.
    fn sentence(&self, runs: usize, evaluated: usize) -> String {
        let mut s = format!(
            "{runs} run folders ({evaluated} evaluated) from {}.",
            self.dirs.join(", ")
        );
        for (from, to) in self.relabel {
            let _ = write!(
                s,
                " Runs labelled {from:?} are reported as {to:?} (--relabel)."
            );
        }
        s
    }
}

/// Writes `out/summary.md`.
pub fn write_summary_md(
    out: &Path,
    sections: &[EnvSection],
    sources: &Sources<'_>,
    runs: usize,
    evaluated: usize,
) -> Result<PathBuf, UserError> {
    let mut s = String::from("# bamdp report\n\n");
    let _ = writeln!(
        s,
        "{}\n\n{METHOD_NOTE}\n",
        sources.sentence(runs, evaluated)
    );
    for sec in sections {
        let _ = writeln!(s, "## {}\n", sec.env);
        for t in &sec.tables {
            let _ = writeln!(s, "### {}\n", t.metric);
            md_table(&mut s, score_cells(t));
            if t.rows.len() > 1 {
                md_table(&mut s, poi_cells(t));
            }
        }
        if let Some(t) = &sec.adaptation {
            let _ = writeln!(s, "### {ADAPTATION_HEADING}\n\n{ADAPTATION_NOTE}\n");
            md_table(&mut s, adaptation_cells(t));
        }
        for t in &sec.per_task {
            let _ = writeln!(s, "### {}\n\n{PER_TASK_NOTE}\n", t.split.heading());
            md_table(&mut s, per_task_cells(t));
        }
        if !sec.progress.is_empty() {
            let _ = writeln!(s, "### {PROGRESS_HEADING}\n\n{PROGRESS_NOTE}\n");
            md_table(&mut s, progress_cells(&sec.progress));
        }
        for n in &sec.notes {
            let _ = writeln!(s, "_{n}_\n");
        }
        for (stem, caption) in &sec.figures {
            let _ = writeln!(s, "![{caption}](figures/{stem}.png)\n");
        }
    }
    let path = out.join("summary.md");
    atomic_write(&path, s.as_bytes())?;
    Ok(path)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html_table(out: &mut String, (header, rows): (Vec<String>, Vec<Vec<String>>)) {
    out.push_str("<table>\n<thead><tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", html_escape(&h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for r in rows {
        out.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let tag = if i == 0 { "th" } else { "td" };
            let _ = write!(out, "<{tag}>{}</{tag}>", html_escape(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}\
thead th{background:#f2f2f2}tbody th{text-align:left}figure{display:inline-block;margin:.5em;max-width:520px}\
figure img{width:100%;border:1px solid #ddd}figcaption{font-size:.85em;color:#555}.note{color:#666;font-style:italic}";

/// Sets `data-figures="LOADED/TOTAL"` on <body> once the page has loaded, counting
/// images that decoded (naturalWidth > 0).
const SCRIPT: &str = "window.addEventListener('load',function(){var imgs=Array.prototype.slice.call(document.images);\
var ok=imgs.filter(function(i){return i.complete&&i.naturalWidth>0;}).length;\
document.body.setAttribute('data-figures',ok+'/'+imgs.length);});";

/// Writes `out/index.html`.
pub fn write_index_html(
    out: &Path,
    sections: &[EnvSection],
    sources: &Sources<'_>,
    runs: usize,
    evaluated: usize,
) -> Result<PathBuf, UserError> {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>bamdp report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>bamdp report</h1>\n<p>{}</p>\n<p>{}</p>\n",
        html_escape(&sources.sentence(runs, evaluated)),
        html_escape(METHOD_NOTE)
    );
    if sections.len() > 1 {
        s.push_str("<ul>");
        for sec in sections {
            let _ = write!(
                s,
                "<li><a href=\"#{0}\">{0}</a></li>",
                html_escape(&sec.env)
            );
        }
        s.push_str("</ul>\n");
    }
    for sec in sections {
        let _ = writeln!(s, "<h2 id=\"{0}\">{0}</h2>", html_escape(&sec.env));
        for t in &sec.tables {
            let _ = writeln!(s, "<h3>{}</h3>", html_escape(&t.metric));
            html_table(&mut s, score_cells(t));
            if t.rows.len() > 1 {
                html_table(&mut s, poi_cells(t));
            }
        }
        if let Some(t) = &sec.adaptation {
            let _ = writeln!(
                s,
                "<h3>{ADAPTATION_HEADING}</h3>\n<p>{}</p>",
                html_escape(ADAPTATION_NOTE)
            );
            html_table(&mut s, adaptation_cells(t));
        }
        for t in &sec.per_task {
            let _ = writeln!(
                s,
                "<h3>{}</h3>\n<p>{}</p>",
                html_escape(t.split.heading()),
                html_escape(PER_TASK_NOTE)
            );
            html_table(&mut s, per_task_cells(t));
        }
        if !sec.progress.is_empty() {
            let _ = writeln!(
                s,
                "<h3>{PROGRESS_HEADING}</h3>\n<p>{}</p>",
                html_escape(PROGRESS_NOTE)
            );
            html_table(&mut s, progress_cells(&sec.progress));
        }
        for n in &sec.notes {
            let _ = writeln!(s, "<p class=\"note\">{}</p>", html_escape(n));
        }
        for (stem, caption) in &sec.figures {
            let _ = writeln!(
                s,
                "<figure><a href=\"figures/{0}.png\"><img src=\"figures/{0}.svg\" alt=\"{1}\"></a><figcaption>{1} (<a href=\"figures/{0}.png\">PNG</a>)</figcaption></figure>",
                html_escape(stem),
                html_escape(caption)
            );
        }
    }
    let _ = write!(s, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    let path = out.join("index.html");
    atomic_write(&path, s.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Interval, Scores};

    #[test]
    fn one_run_prints_no_interval_and_more_runs_print_theirs() {
        let boot = crate::stats::Bootstrap::default();
        let mean = |s: &Scores| crate::stats::mean(s.values());
        let one = Scores::single_task(vec![0.5]).unwrap();
        assert_eq!(
            est(&Some(Estimate::bootstrap(&one, &boot, mean))),
            "0.500 (1 run: no interval)"
        );
        let two = Scores::single_task(vec![0.5, 0.5]).unwrap();
        assert_eq!(
            est(&Some(Estimate::bootstrap(&two, &boot, mean))),
            "0.500 [0.500, 0.500]"
        );
        assert_eq!(est(&None), "-");
        let e = Estimate {
            value: 0.5,
            ci: Some(Interval { lo: 0.25, hi: 0.75 }),
        };
        assert_eq!(est(&Some(e)), "0.500 [0.250, 0.750]");
        // The wide tables print a one-run value bare (their notes say why).
        assert_eq!(
            est_compact(&Some(Estimate::bootstrap(&one, &boot, mean))),
            "0.500"
        );
        assert_eq!(est_compact(&Some(e)), "0.500 [0.250, 0.750]");
    }
}
