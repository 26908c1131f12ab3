//! Reading data files for `[data.NAME]` tables; the tables themselves are plan data
//! (`plan::data`).

use std::path::Path;

use crate::plan::data::{DataTable, Pick};

/// Reads and parses data file `path` (at most `util::MAX_INPUT_FILE`).
pub fn load(name: &str, path: &Path, pick: Pick) -> Result<DataTable, String> {
    let text = crate::util::read_text_bounded(path, crate::util::MAX_INPUT_FILE)
        .map_err(|e| format!("cannot read data file '{}': {e}", path.display()))?;
    DataTable::parse(name, path, &text, pick)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::data::Pick;
    use crate::util::Rng;

    #[test]
    fn csv_and_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("u.csv");
        std::fs::write(&csv, "name,pw\nalice,\"s,3\"\"x\"\nbob,p2\n").unwrap();
        let t = load("u", &csv, Pick::Sequential).unwrap();
        assert_eq!(t.columns, ["name", "pw"]);
        assert_eq!(t.rows[0], ["alice", "s,3\"x"]);
        let mut rng = Rng::new(1);
        assert_eq!(t.pick_row(3, 0, &mut rng), 1);
        let jl = dir.path().join("u.jsonl");
        std::fs::write(
            &jl,
            "{\"id\": 1, \"name\": \"a\"}\n{\"id\": 2, \"name\": \"b\"}\n",
        )
        .unwrap();
        let t = load("u", &jl, Pick::Unique).unwrap();
        assert_eq!(t.rows[1], ["2", "b"]);
        assert_eq!(t.pick_row(99, 1, &mut rng), 1);
        // Quoted fields may span lines; blank lines are skipped.
        std::fs::write(
            &csv,
            "name,note\n\nalice,\"two\nlines, \"\"quoted\"\"\"\nbob,x\n",
        )
        .unwrap();
        let t = load("u", &csv, Pick::Sequential).unwrap();
        assert_eq!(t.rows, [["alice", "two\nlines, \"quoted\""], ["bob", "x"]]);
        std::fs::write(&csv, "a,b\n1\n").unwrap();
        assert!(load("u", &csv, Pick::Random)
            .unwrap_err()
            .contains("line 2: 1 fields"));
        assert!(load("u", &dir.path().join("nope.csv"), Pick::Random)
            .unwrap_err()
            .contains("cannot read"));
    }
}
