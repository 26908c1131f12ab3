//! Data files: rows that templates read (`{{data.TABLE.COLUMN}}`), from CSV (first line: column names)
//! or JSON lines (one object per line; columns are the first object's keys). Loaded once, before the
//! run; an iteration picks a row sequentially, randomly, or uniquely per virtual user.

use std::path::Path;

use crate::util::Rng;

/// Rows of a data file and how an iteration picks one.
#[derive(Clone, Debug, PartialEq)]
pub struct DataTable {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub pick: Pick,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// Row `iteration mod rows`: every row in turn across the whole (distributed) run.
    Sequential,
    /// A random row per iteration.
    Random,
    /// Row `vu mod rows`: each virtual user keeps its own row for the whole run.
    Unique,
}

impl Pick {
    pub fn parse(s: &str) -> Result<Pick, String> {
        match s {
            "sequential" => Ok(Pick::Sequential),
            "random" => Ok(Pick::Random),
            "unique" => Ok(Pick::Unique),
            _ => Err(format!(
                "'{s}' is not a pick mode (expected sequential, random or unique)"
            )),
        }
    }
}

impl DataTable {
    /// The index of the row an iteration uses.
    pub fn pick_row(&self, iteration: u64, vu: u64, rng: &mut Rng) -> usize {
        let n = self.rows.len().max(1) as u64;
        (match self.pick {
            Pick::Sequential => iteration % n,
            Pick::Random => rng.next_u64() % n,
            Pick::Unique => vu % n,
        }) as usize
    }

    /// Parses the text of data file `path` (`.csv`, or `.jsonl`/`.ndjson` for JSON lines, by its
    /// extension; the path also names it in errors). Reading the file is the scenario loader's job.
    pub fn parse(name: &str, path: &Path, text: &str, pick: Pick) -> Result<DataTable, String> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let (columns, rows) = match ext {
            "csv" => parse_csv(text)?,
            "jsonl" | "ndjson" => parse_jsonl(text)?,
            _ => {
                return Err(format!(
                    "data file '{}': unknown format (expected a .csv or .jsonl file)",
                    path.display()
                ))
            }
        };
        if rows.is_empty() {
            return Err(format!("data file '{}' has no rows", path.display()));
        }
        Ok(DataTable {
            name: name.to_string(),
            columns,
            rows,
            pick,
        })
    }
}

/// CSV with a header line (the `csv` crate: quoted fields may hold commas, quotes and line breaks).
/// Blank lines are skipped; every row must have the header's number of fields.
fn parse_csv(text: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let line_of = |e: &csv::Error| e.position().map_or(0, |p| p.line());
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| format!("line {}: {e}", line_of(&e)))?
        .iter()
        .map(str::to_string)
        .collect();
    if columns.is_empty() || columns.iter().all(String::is_empty) {
        return Err("the CSV file is empty".into());
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("line {}: {e}", line_of(&e)))?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record.get(0) == Some("") {
            continue;
        }
        if record.len() != columns.len() {
            return Err(format!(
                "line {line}: {} fields, but the header has {}",
                record.len(),
                columns.len()
            ));
        }
        rows.push(record.iter().map(str::to_string).collect());
    }
    Ok((columns, rows))
}

fn parse_jsonl(text: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut columns: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .map_err(|e| format!("line {}: not a JSON object: {e}", i + 1))?;
        let cols = columns.get_or_insert_with(|| obj.keys().cloned().collect());
        let row = cols
            .iter()
            .map(|c| match obj.get(c) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(v) => Ok(v.to_string()),
                None => Err(format!(
                    "line {}: no key '{c}' (the first line has it)",
                    i + 1
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        rows.push(row);
    }
    Ok((columns.unwrap_or_default(), rows))
}
