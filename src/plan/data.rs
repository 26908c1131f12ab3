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

/// CSV with a header line; fields may be quoted (`"a,b"`, `""` for a quote).
fn parse_csv(text: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or("the CSV file is empty")?;
    let columns = split_csv(header).map_err(|e| format!("line 1: {e}"))?;
    let mut rows = Vec::new();
    for (i, line) in lines {
        let row = split_csv(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        if row.len() != columns.len() {
            return Err(format!(
                "line {}: {} fields, but the header has {}",
                i + 1,
                row.len(),
                columns.len()
            ));
        }
        rows.push(row);
    }
    Ok((columns, rows))
}

fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') if at_start => quoted = true,
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, ',') => {
                out.push(std::mem::take(&mut field));
                at_start = true;
                continue;
            }
            (_, c) => field.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(field);
    Ok(out)
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
