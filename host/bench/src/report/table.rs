//! A comparison table in markdown: one row per metric, a column per system (the baselines, then
//! conclave), conclave's ratio to each baseline, which way is better, and the goal, judged
//! against one baseline.

use std::fmt::Write as _;

/// How a figure is shown. The ratio is always of the raw figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Ms,
    Secs,
    OpsPerSec,
    /// Given in bytes, shown in MiB.
    Bytes,
}

impl Unit {
    pub fn show(self, value: f64) -> String {
        match self {
            Unit::Ms => format!("{value:.3} ms"),
            Unit::Secs => format!("{value:.3} s"),
            Unit::OpsPerSec => format!("{value:.0} ops/s"),
            Unit::Bytes => format!("{} MiB", mib(value)),
        }
    }
}

pub fn mib(bytes: f64) -> String {
    format!("{:.1}", bytes / 1_048_576.0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

impl Better {
    fn text(self) -> &'static str {
        match self {
            Better::Lower => "lower is better",
            Better::Higher => "higher is better",
        }
    }
}

/// A goal for conclave's ratio to the judged baseline: at most (lower is better) or at least.
#[derive(Debug, Clone, Copy)]
pub struct Goal {
    pub ratio: f64,
    /// Said after the bound, e.g. "set for 3 members".
    pub note: Option<&'static str>,
}

impl Goal {
    pub fn at(ratio: f64) -> Self {
        Self { ratio, note: None }
    }
}

/// One figure of a result.
pub type Figure<T> = fn(&T) -> f64;

/// What a row shows: its label, the figure taken from each result, and how it is judged.
pub struct Row<T> {
    label: &'static str,
    figure: Figure<T>,
    unit: Unit,
    better: Better,
    goal: Option<Goal>,
}

impl<T> Row<T> {
    fn new(label: &'static str, figure: Figure<T>, unit: Unit, better: Better) -> Self {
        Self {
            label,
            figure,
            unit,
            better,
            goal: None,
        }
    }

    /// Milliseconds, lower is better.
    pub fn ms(label: &'static str, figure: Figure<T>) -> Self {
        Self::new(label, figure, Unit::Ms, Better::Lower)
    }

    /// Seconds, lower is better.
    pub fn secs(label: &'static str, figure: Figure<T>) -> Self {
        Self::new(label, figure, Unit::Secs, Better::Lower)
    }

    /// Operations per second, higher is better.
    pub fn rate(label: &'static str, figure: Figure<T>) -> Self {
        Self::new(label, figure, Unit::OpsPerSec, Better::Higher)
    }

    /// Bytes (shown in MiB), lower is better.
    pub fn bytes(label: &'static str, figure: Figure<T>) -> Self {
        Self::new(label, figure, Unit::Bytes, Better::Lower)
    }

    /// conclave's ratio to the judged baseline should be at most (at least, when higher is
    /// better) this.
    pub fn goal(self, ratio: f64) -> Self {
        self.goal_of(Some(Goal::at(ratio)))
    }

    /// A goal with a note said after it, e.g. "set for 3 members".
    pub fn goal_noted(self, ratio: f64, note: &'static str) -> Self {
        self.goal_of(Some(Goal {
            ratio,
            note: Some(note),
        }))
    }

    pub fn goal_of(self, goal: Option<Goal>) -> Self {
        Self { goal, ..self }
    }
}

/// conclave / baseline, or nothing when the baseline's figure is 0.
pub fn ratio(baseline: f64, conclave: f64) -> Option<f64> {
    (baseline != 0.0).then(|| conclave / baseline)
}

pub fn show_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".to_string(), |r| format!("{r:.2}x"))
}

/// Whether a ratio meets its goal; a smoke run's figures are never judged.
pub fn verdict(r: Option<f64>, better: Better, goal: Goal, smoke: bool) -> String {
    let bound = match better {
        Better::Lower => "<=",
        Better::Higher => ">=",
    };
    let note = goal.note.map(|n| format!(" ({n})")).unwrap_or_default();
    let judged = match r {
        None => "",
        Some(_) if smoke => "not judged (smoke run)",
        // Judged on the ratio as shown, to two decimals, so that the table never reads
        // "1.00x ... missed" against a goal of 1.00x.
        Some(r) => {
            let shown = (r * 100.0).round() / 100.0;
            let met = match better {
                Better::Lower => shown <= goal.ratio,
                Better::Higher => shown >= goal.ratio,
            };
            if met { "met" } else { "**missed**" }
        }
    };
    format!("{bound} {:.2}x{note}: {judged}", goal.ratio)
        .trim_end()
        .to_string()
}

/// The columns of a table: the systems' headers, baselines first and conclave last.
#[derive(Debug, Clone)]
pub struct Columns {
    pub systems: Vec<String>,
    /// Headers of the ratio columns, one per baseline.
    pub ratios: Vec<String>,
    /// Which baseline goals are judged against.
    pub judged: usize,
    pub smoke: bool,
}

pub struct Table<'c> {
    columns: &'c Columns,
    goal_header: &'static str,
    rows: Vec<String>,
}

impl<'c> Table<'c> {
    /// A table; `goal_header` heads the goal column ("" for a table without goals).
    pub fn new(columns: &'c Columns, goal_header: &'static str) -> Self {
        Self {
            columns,
            goal_header,
            rows: Vec::new(),
        }
    }

    /// A row of one figure per system, taken from each system's result (in column order).
    pub fn row<T>(&mut self, results: &[T], row: Row<T>) {
        let values: Vec<f64> = results.iter().map(row.figure).collect();
        let Some((&conclave, baselines)) = values.split_last() else {
            return;
        };
        let mut cells: Vec<String> = values.iter().map(|v| row.unit.show(*v)).collect();
        let ratios: Vec<Option<f64>> = baselines.iter().map(|b| ratio(*b, conclave)).collect();
        cells.extend(ratios.iter().map(|r| show_ratio(*r)));
        cells.push(row.better.text().to_string());
        let judged = ratios.get(self.columns.judged).copied().flatten();
        cells.push(
            row.goal
                .map(|g| verdict(judged, row.better, g, self.columns.smoke))
                .unwrap_or_default(),
        );
        self.push(row.label, cells);
    }

    /// A row of text cells for the systems' columns; the rest stay empty.
    pub fn text_row(&mut self, label: &str, cells: impl IntoIterator<Item = String>) {
        let mut cells: Vec<String> = cells.into_iter().collect();
        cells.resize(
            self.columns.systems.len() + self.columns.ratios.len() + 2,
            String::new(),
        );
        self.push(label, cells);
    }

    fn push(&mut self, label: &str, cells: Vec<String>) {
        self.rows.push(line(
            std::iter::once(label).chain(cells.iter().map(String::as_str)),
        ));
    }

    pub fn render(&self) -> String {
        let c = self.columns;
        let headers = ["metric"]
            .into_iter()
            .chain(c.systems.iter().chain(&c.ratios).map(String::as_str))
            .chain(["", self.goal_header]);
        let mut out = line(headers);
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(c.systems.len() + c.ratios.len()));
        out.push_str("---|---|\n");
        for row in &self.rows {
            out.push_str(row);
            out.push('\n');
        }
        out
    }
}

/// `| a | b | |`: cells between bars, an empty cell as a single space.
fn line<'a>(cells: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("|");
    for cell in cells {
        if cell.is_empty() {
            out.push_str(" |");
        } else {
            let _ = write!(out, " {cell} |");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(baselines: usize, smoke: bool) -> Columns {
        Columns {
            systems: (0..baselines)
                .map(|i| format!("etcd 3.{}", 4 + i))
                .chain(["conclave".to_string()])
                .collect(),
            ratios: (0..baselines)
                .map(|i| format!("conclave/etcd 3.{}", 4 + i))
                .collect(),
            judged: baselines - 1,
            smoke,
        }
    }

    #[test]
    fn a_row_shows_figures_ratio_and_judges_the_goal() {
        let c = columns(1, false);
        let mut t = Table::new(&c, "goal (issue 7)");
        t.row(&[1000.0, 1600.0], Row::rate("throughput", |v| *v).goal(1.5));
        t.row(
            &[2.0, 2.5],
            Row::ms("p50 latency", |v| *v).goal_noted(1.0, "set for 3 members"),
        );
        t.row(&[0.0, 1.0], Row::ms("p99", |v| *v));
        t.text_row("errors", ["0".to_string(), "3".to_string()]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "| metric | etcd 3.4 | conclave | conclave/etcd 3.4 | | goal (issue 7) |"
        );
        assert_eq!(lines[1], "|---|---:|---:|---:|---|---|");
        assert_eq!(
            lines[2],
            "| throughput | 1000 ops/s | 1600 ops/s | 1.60x | higher is better | >= 1.50x: met |"
        );
        assert_eq!(
            lines[3],
            "| p50 latency | 2.000 ms | 2.500 ms | 1.25x | lower is better | <= 1.00x (set for 3 members): **missed** |"
        );
        assert_eq!(
            lines[4],
            "| p99 | 0.000 ms | 1.000 ms | n/a | lower is better | |"
        );
        assert_eq!(lines[5], "| errors | 0 | 3 | | | |");
    }

    #[test]
    fn goals_are_judged_against_the_chosen_baseline_and_never_in_a_smoke_run() {
        let c = columns(2, false);
        let mut t = Table::new(&c, "goal");
        // 2x etcd 3.4 but only 1.5x etcd 3.5, which is the one judged.
        t.row(
            &[100.0, 200.0, 300.0],
            Row::rate("throughput", |v| *v).goal(2.0),
        );
        assert!(
            t.render()
                .contains("| 3.00x | 1.50x | higher is better | >= 2.00x: **missed** |")
        );

        let smoke = columns(1, true);
        let mut t = Table::new(&smoke, "goal");
        t.row(&[1.0, 9.0], Row::ms("x", |v| *v).goal(1.0));
        assert!(t.render().contains("<= 1.00x: not judged (smoke run) |"));
    }

    #[test]
    fn a_ratio_is_judged_as_shown() {
        assert_eq!(
            verdict(Some(1.004), Better::Lower, Goal::at(1.0), false),
            "<= 1.00x: met"
        );
        assert_eq!(
            verdict(Some(0.996), Better::Higher, Goal::at(1.0), false),
            ">= 1.00x: met"
        );
        assert_eq!(
            verdict(None, Better::Higher, Goal::at(2.0), false),
            ">= 2.00x:"
        );
        assert_eq!(mib(3.0 * 1_048_576.0), "3.0");
    }
}
