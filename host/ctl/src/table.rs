//! ASCII tables drawn the way etcdctl 3.4 draws them (olekukonko/tablewriter of early 2017,
//! right-aligned cells, centred upper-case headers, long cells wrapped near 30 columns).

use std::io::{self, Write};

/// Cells wider than this are wrapped onto several lines.
const MAX_CELL_WIDTH: usize = 30;
/// tablewriter's penalty for a wrapped line that is still too long.
const OVERLONG_PENALTY: i64 = 100_000;

fn width(s: &str) -> usize {
    s.chars().count()
}

/// Renders `rows` under `headers`.
pub fn render(out: &mut dyn Write, headers: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|h| width(h).min(MAX_CELL_WIDTH))
        .collect();
    let mut lines: Vec<Vec<Vec<String>>> = Vec::with_capacity(rows.len());
    for row in rows {
        let mut cells = Vec::with_capacity(row.len());
        for (col, cell) in row.iter().enumerate() {
            if widths.len() <= col {
                widths.resize(col + 1, 0);
            }
            let w = width(cell).min(MAX_CELL_WIDTH);
            if widths[col] < w {
                widths[col] = w;
            }
            let wrapped = wrap(cell, widths[col]);
            let widest = wrapped.iter().map(|l| width(l)).max().unwrap_or(0);
            if widest > widths[col] {
                widths[col] = widest;
            }
            cells.push(wrapped);
        }
        lines.push(cells);
    }

    let border = |out: &mut dyn Write| -> io::Result<()> {
        let mut line = String::from("+");
        for w in &widths {
            line.push_str(&"-".repeat(w + 2));
            line.push('+');
        }
        writeln!(out, "{line}")
    };

    border(out)?;
    let mut header = String::from("|");
    for (col, w) in widths.iter().enumerate() {
        let title = headers.get(col).map_or(String::new(), |h| h.to_uppercase());
        let gap = w.saturating_sub(width(&title));
        let left = gap / 2;
        header.push(' ');
        header.push_str(&" ".repeat(left));
        header.push_str(&title);
        header.push_str(&" ".repeat(gap - left));
        header.push_str(" |");
    }
    writeln!(out, "{header}")?;
    border(out)?;

    for cells in &lines {
        let height = cells.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..height {
            let mut line = String::from("|");
            for (col, w) in widths.iter().enumerate().take(cells.len()) {
                // tablewriter fills the missing lines of short cells with two spaces.
                let text = cells[col].get(i).map_or("  ", String::as_str);
                line.push(' ');
                line.push_str(&" ".repeat(w.saturating_sub(width(text))));
                line.push_str(text);
                line.push_str(" |");
            }
            writeln!(out, "{line}")?;
        }
    }
    border(out)
}

/// Splits a cell into lines of at most `limit` columns at spaces, minimising raggedness as
/// tablewriter does (a word longer than the limit raises it).
fn wrap(cell: &str, limit: usize) -> Vec<String> {
    let flat = cell.replace('\n', " ");
    let words: Vec<&str> = flat.split(' ').collect();
    let limit = words.iter().map(|w| width(w)).fold(limit, usize::max) as i64;
    let n = words.len();
    let widths: Vec<i64> = words.iter().map(|w| width(w) as i64).collect();
    // length(i, j): the width of words i..=j joined by single spaces.
    let length = |i: usize, j: usize| -> i64 { widths[i..=j].iter().sum::<i64>() + (j - i) as i64 };
    let mut cost = vec![i64::from(i32::MAX); n];
    let mut breaks = vec![n; n];
    for i in (0..n).rev() {
        if length(i, n - 1) <= limit {
            cost[i] = 0;
            breaks[i] = n;
            continue;
        }
        for j in i + 1..n {
            let len = length(i, j - 1);
            let slack = limit - len;
            let mut c = slack * slack + cost[j];
            if len > limit {
                c += OVERLONG_PENALTY;
            }
            if c < cost[i] {
                cost[i] = c;
                breaks[i] = j;
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let next = breaks[i].max(i + 1);
        out.push(words[i..next].join(" "));
        i = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
        let mut out = Vec::new();
        assert!(render(&mut out, headers, rows).is_ok());
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn renders_like_etcdctl_endpoint_health() {
        let rows = vec![vec![
            "127.0.0.1:23790".to_string(),
            "true".into(),
            "1.063134ms".into(),
            String::new(),
        ]];
        let expected = "\
+-----------------+--------+------------+-------+
|    ENDPOINT     | HEALTH |    TOOK    | ERROR |
+-----------------+--------+------------+-------+
| 127.0.0.1:23790 |   true | 1.063134ms |       |
+-----------------+--------+------------+-------+
";
        assert_eq!(
            table(&["endpoint", "health", "took", "error"], &rows),
            expected
        );
    }

    #[test]
    fn long_cells_wrap_at_spaces() {
        let rows = vec![vec![
            "a".to_string(),
            "connection refused by the remote host at once".into(),
        ]];
        // The column keeps the 30-column cap even though no line fills it, and the filler of a
        // short cell ("  ") overflows a one-column cell: both as tablewriter does.
        let expected = "\
+---+--------------------------------+
| A |             ERROR              |
+---+--------------------------------+
| a |      connection refused by the |
|    |            remote host at once |
+---+--------------------------------+
";
        assert_eq!(table(&["a", "error"], &rows), expected);
    }

    #[test]
    fn no_rows_still_draws_the_header() {
        let expected = "+---+\n| X |\n+---+\n+---+\n";
        assert_eq!(table(&["x"], &[]), expected);
    }

    #[test]
    fn wrap_balances_lines() {
        assert_eq!(wrap("aaa bbb ccc", 7), vec!["aaa bbb", "ccc"]);
        assert_eq!(wrap("", 5), vec![""]);
        assert_eq!(
            wrap("averyveryverylongword x", 5),
            vec!["averyveryverylongword", "x"]
        );
    }
}
