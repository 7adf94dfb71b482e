//! Rows → CSV or JSON lines, written as they come (nothing is held but the row).
//!
//! CSV is RFC 4180 (CRLF line ends, fields quoted when they hold a comma, a quote or a
//! line break), with a header line. Report data is untrusted and CSV files are opened
//! in spreadsheets, so a text field that starts with `=`, `+`, `-`, `@`, a tab or a
//! carriage return gets a leading `'` (OWASP "CSV injection"; parsedmarc does the same)
//! and NUL characters are dropped. Booleans are `True`/`False`, as parsedmarc writes
//! them. JSON lines are one object per row, keys in column order, numbers and booleans
//! typed, absent values `null`.

use std::io::Write;

/// Output format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// One field of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Absent: an empty CSV field, JSON `null`.
    Null,
    /// Text (untrusted).
    Text(String),
    /// A whole number.
    Int(i64),
    /// A real number.
    Float(f64),
    /// A yes/no value.
    Bool(bool),
}

impl From<Option<String>> for Cell {
    fn from(value: Option<String>) -> Self {
        value.map_or(Cell::Null, Cell::Text)
    }
}

impl From<String> for Cell {
    fn from(value: String) -> Self {
        Cell::Text(value)
    }
}

impl From<&str> for Cell {
    fn from(value: &str) -> Self {
        Cell::Text(value.to_owned())
    }
}

impl From<Option<i64>> for Cell {
    fn from(value: Option<i64>) -> Self {
        value.map_or(Cell::Null, Cell::Int)
    }
}

/// Writes rows of a fixed set of columns.
pub struct RowWriter<W: Write> {
    out: W,
    format: Format,
    columns: &'static [&'static str],
    line: String,
}

impl<W: Write> RowWriter<W> {
    /// A writer for `columns`; the CSV header is written at once.
    pub fn new(out: W, format: Format, columns: &'static [&'static str]) -> std::io::Result<Self> {
        let mut writer = Self::continuing(out, format, columns);
        if format == Format::Csv {
            let header: Vec<Cell> = columns.iter().map(|c| Cell::from(*c)).collect();
            writer.row(&header)?;
        }
        Ok(writer)
    }

    /// A writer for `columns` that adds rows to output that already has its header.
    pub fn continuing(out: W, format: Format, columns: &'static [&'static str]) -> Self {
        Self { out, format, columns, line: String::with_capacity(1024) }
    }

    /// Writes one row; `cells` has one cell per column.
    pub fn row(&mut self, cells: &[Cell]) -> std::io::Result<()> {
        debug_assert_eq!(cells.len(), self.columns.len(), "one cell per column");
        self.line.clear();
        match self.format {
            Format::Csv => {
                for (i, cell) in cells.iter().enumerate() {
                    if i > 0 {
                        self.line.push(',');
                    }
                    csv_field(&mut self.line, cell);
                }
                self.line.push_str("\r\n");
            }
            Format::Jsonl => {
                self.line.push('{');
                for (i, (name, cell)) in self.columns.iter().zip(cells).enumerate() {
                    if i > 0 {
                        self.line.push(',');
                    }
                    json_string(&mut self.line, name);
                    self.line.push(':');
                    json_value(&mut self.line, cell);
                }
                self.line.push_str("}\n");
            }
        }
        self.out.write_all(self.line.as_bytes())
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn csv_field(line: &mut String, cell: &Cell) {
    match cell {
        Cell::Null => {}
        Cell::Int(v) => line.push_str(&v.to_string()),
        Cell::Float(v) => line.push_str(&float(*v)),
        Cell::Bool(v) => line.push_str(if *v { "True" } else { "False" }),
        Cell::Text(text) => {
            let mut value = text.replace('\0', "");
            if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                value.insert(0, '\'');
            }
            if value.contains([',', '"', '\r', '\n']) {
                line.push('"');
                line.push_str(&value.replace('"', "\"\""));
                line.push('"');
            } else {
                line.push_str(&value);
            }
        }
    }
}

fn json_value(line: &mut String, cell: &Cell) {
    match cell {
        Cell::Null => line.push_str("null"),
        Cell::Int(v) => line.push_str(&v.to_string()),
        Cell::Float(v) if v.is_finite() => line.push_str(&float(*v)),
        Cell::Float(_) => line.push_str("null"),
        Cell::Bool(v) => line.push_str(if *v { "true" } else { "false" }),
        Cell::Text(text) => json_string(line, text),
    }
}

fn json_string(line: &mut String, text: &str) {
    // Serializing a str cannot fail.
    line.push_str(&serde_json::to_string(text).unwrap_or_default());
}

/// The shortest text that reads back as `v` (`12.5`, `3`).
fn float(v: f64) -> String {
    let text = v.to_string();
    if text.contains(['e', 'E']) {
        format!("{v:.6}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: &[&str] = &["name", "n", "ok", "x", "missing"];

    fn write(format: Format, rows: &[Vec<Cell>]) -> String {
        let mut w = RowWriter::new(Vec::new(), format, COLUMNS).expect("writer");
        for row in rows {
            w.row(row).expect("row");
        }
        String::from_utf8(w.finish().expect("finish")).expect("utf-8")
    }

    fn row(name: &str) -> Vec<Cell> {
        vec![Cell::from(name), Cell::Int(-3), Cell::Bool(true), Cell::Float(12.5), Cell::Null]
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let out =
            write(Format::Csv, &[row("plain"), row("a,b \"c\"\nd"), row("=HYPERLINK(\"x\")"), row("-1\0")]);
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(lines[0], "name,n,ok,x,missing");
        assert_eq!(lines[1], "plain,-3,True,12.5,");
        assert_eq!(lines[2], "\"a,b \"\"c\"\"\nd\",-3,True,12.5,");
        assert_eq!(lines[3], "\"'=HYPERLINK(\"\"x\"\")\",-3,True,12.5,");
        assert_eq!(lines[4], "'-1,-3,True,12.5,");
        assert_eq!(lines[5], "", "every line ends with CRLF");
    }

    #[test]
    fn json_lines_are_typed_objects_in_column_order() {
        let out = write(Format::Jsonl, &[row("=1 \"q\"")]);
        assert_eq!(out, "{\"name\":\"=1 \\\"q\\\"\",\"n\":-3,\"ok\":true,\"x\":12.5,\"missing\":null}\n");
        let value: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
        assert_eq!(value["name"], "=1 \"q\"", "no spreadsheet guard in JSON");
    }
}
