//! Plain-text tables and timestamps for the operator commands' human output.

use chrono::{DateTime, Utc};

/// Renders rows under headers, columns left-aligned and separated by two spaces; the last
/// column is not padded (it holds long texts such as errors).
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns = headers.len();
    // One line per row, whatever a cell holds (an error message may span lines).
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| c.replace(['\n', '\r'], " ")).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate().take(columns) {
            if i + 1 == columns {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.trim_end().to_owned()
    };
    let mut text = line(&mut headers.iter().copied());
    for row in &rows {
        text.push('\n');
        text.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    text
}

/// A timestamp as the SQLite schema stores it (UTC, milliseconds): what `sqlite3` shows.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// An optional timestamp, `-` when absent.
pub fn time_opt(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

/// An optional text, `-` when absent or empty.
pub fn text_opt(s: Option<&str>) -> String {
    match s {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_the_last_is_not_padded() {
        let rows = vec![
            vec!["1".to_owned(), "long value".to_owned(), "x".to_owned()],
            vec!["22".to_owned(), "v".to_owned(), "last column".to_owned()],
        ];
        assert_eq!(
            render(&["A", "B", "C"], &rows),
            "A   B           C\n1   long value  x\n22  v           last column"
        );
    }
}
