//! Templates: `{{name}}` placeholders in URLs, header values and bodies, compiled once when the file
//! loads into literal runs and dynamic parts. Rendering appends to a caller's reused buffer and parses
//! nothing.
//!
//! Placeholders: a variable (`{{token}}`: a constant from `[defaults.vars]`/`-e`, folded in at load, or
//! a value an earlier step extracted), `{{env.NAME}}` (folded in at load), `{{random.int(A,B)}}`,
//! `{{random.string(N)}}`, `{{random.uuid}}`, `{{iteration}}` (global iteration number), `{{vu}}`
//! (virtual user number), `{{data.TABLE.COLUMN}}` (the row picked for this iteration).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use super::data::DataTable;
use crate::util::Rng;

/// A compiled template.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Lit(Box<[u8]>),
    /// A per-virtual-user variable, by index into the scenario's variable table.
    Var(usize),
    RandInt(i64, i64),
    RandString(usize),
    Uuid,
    Iteration,
    Vu,
    /// A column of the row this iteration picked from a data table.
    Data {
        table: usize,
        column: usize,
    },
}

/// What a template may refer to when it is compiled.
pub struct Scope<'a> {
    /// Constants: `[defaults.vars]` overridden by `-e`.
    pub consts: &'a HashMap<String, String>,
    /// Per-VU variables extracted by earlier steps: name → index.
    pub vars: &'a HashMap<String, usize>,
    /// Data tables: name → (index, column names).
    pub tables: &'a HashMap<String, (usize, Vec<String>)>,
    /// Reads an environment variable (injected so tests need not touch the process environment).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// What rendering needs for one iteration.
pub struct Ctx<'a> {
    pub vars: &'a [String],
    pub iteration: u64,
    pub vu: u64,
    /// The data tables, and per table the row this iteration picked.
    pub data: &'a [Arc<DataTable>],
    pub rows: &'a [usize],
    pub rng: &'a mut Rng,
}

/// Why a template does not compile; `offset` is the byte offset of the placeholder in the source text.
#[derive(Debug, PartialEq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

impl Template {
    /// A template that is only this text.
    pub fn literal(s: &str) -> Template {
        let mut t = Template::default();
        t.push_lit(s.as_bytes());
        t
    }

    pub fn compile(src: &str, scope: &Scope) -> Result<Template, TemplateError> {
        let mut t = Template::default();
        let mut rest = src;
        let mut base = 0;
        while let Some(open) = rest.find("{{") {
            t.push_lit(&rest.as_bytes()[..open]);
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(TemplateError {
                offset: base + open,
                message: "'{{' is not closed by '}}'".into(),
            })?;
            let expr = after[..close].trim();
            let err = |message: String| TemplateError {
                offset: base + open,
                message,
            };
            match parse_expr(expr, scope).map_err(err)? {
                Compiled::Text(s) => t.push_lit(s.as_bytes()),
                Compiled::Part(p) => t.parts.push(p),
            }
            let consumed = open + 2 + close + 2;
            base += consumed;
            rest = &rest[consumed..];
        }
        t.push_lit(rest.as_bytes());
        Ok(t)
    }

    fn push_lit(&mut self, b: &[u8]) {
        if b.is_empty() {
            return;
        }
        if let Some(Part::Lit(prev)) = self.parts.last_mut() {
            let mut v = prev.to_vec();
            v.extend_from_slice(b);
            *prev = v.into_boxed_slice();
        } else {
            self.parts.push(Part::Lit(b.into()));
        }
    }

    /// True when rendering always gives the same bytes.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// The text of a static template.
    pub fn static_text(&self) -> Option<String> {
        self.is_static().then(|| {
            let mut out = Vec::new();
            for p in &self.parts {
                if let Part::Lit(b) = p {
                    out.extend_from_slice(b);
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        })
    }

    /// Per-VU variables this template reads.
    pub fn vars(&self) -> impl Iterator<Item = usize> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(i) => Some(*i),
            _ => None,
        })
    }

    /// Appends the rendering to `out`. Allocation-free once `out` has grown to size.
    pub fn render(&self, ctx: &mut Ctx, out: &mut Vec<u8>) {
        for p in &self.parts {
            match p {
                Part::Lit(b) => out.extend_from_slice(b),
                Part::Var(i) => {
                    out.extend_from_slice(ctx.vars.get(*i).map_or("", |s| s).as_bytes())
                }
                Part::RandInt(a, b) => {
                    let span = (b - a) as u64 + 1;
                    let v = a + (ctx.rng.next_u64() % span) as i64;
                    // invariant: writing to a Vec cannot fail.
                    let _ = write!(out, "{v}");
                }
                Part::RandString(n) => {
                    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
                    for _ in 0..*n {
                        out.push(ALPHABET[(ctx.rng.next_u64() % ALPHABET.len() as u64) as usize]);
                    }
                }
                Part::Uuid => {
                    let (hi, lo) = (ctx.rng.next_u64(), ctx.rng.next_u64());
                    // Version 4, variant 1.
                    let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
                    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
                    let _ = write!(
                        out,
                        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                        hi >> 32,
                        (hi >> 16) & 0xffff,
                        hi & 0xffff,
                        lo >> 48,
                        lo & 0xffff_ffff_ffff
                    );
                }
                Part::Iteration => {
                    let _ = write!(out, "{}", ctx.iteration);
                }
                Part::Vu => {
                    let _ = write!(out, "{}", ctx.vu);
                }
                Part::Data { table, column } => {
                    let value = ctx.data.get(*table).and_then(|t| {
                        let row = ctx.rows.get(*table).copied().unwrap_or(0);
                        t.rows.get(row).and_then(|r| r.get(*column))
                    });
                    if let Some(v) = value {
                        out.extend_from_slice(v.as_bytes());
                    }
                }
            }
        }
    }
}

enum Compiled {
    Text(String),
    Part(Part),
}

fn parse_expr(expr: &str, scope: &Scope) -> Result<Compiled, String> {
    if let Some(name) = expr.strip_prefix("env.") {
        return (scope.env)(name).map(Compiled::Text).ok_or_else(|| {
            format!("environment variable '{name}' is not set (used as {{{{env.{name}}}}})")
        });
    }
    if let Some(args) = expr
        .strip_prefix("random.int(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let (a, b) = args
            .split_once(',')
            .ok_or_else(|| format!("'{expr}': expected random.int(MIN,MAX)"))?;
        let a: i64 = a
            .trim()
            .parse()
            .map_err(|_| format!("'{expr}': MIN is not an integer"))?;
        let b: i64 = b
            .trim()
            .parse()
            .map_err(|_| format!("'{expr}': MAX is not an integer"))?;
        if a > b || b.checked_sub(a).is_none() {
            return Err(format!("'{expr}': MIN must not exceed MAX"));
        }
        return Ok(Compiled::Part(Part::RandInt(a, b)));
    }
    if let Some(n) = expr
        .strip_prefix("random.string(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let n: usize = n
            .trim()
            .parse()
            .ok()
            .filter(|&n| n > 0 && n <= 4096)
            .ok_or_else(|| format!("'{expr}': expected random.string(N) with 1 ≤ N ≤ 4096"))?;
        return Ok(Compiled::Part(Part::RandString(n)));
    }
    match expr {
        "random.uuid" => return Ok(Compiled::Part(Part::Uuid)),
        "iteration" => return Ok(Compiled::Part(Part::Iteration)),
        "vu" => return Ok(Compiled::Part(Part::Vu)),
        _ => {}
    }
    if let Some(path) = expr.strip_prefix("data.") {
        let (table, column) = path
            .split_once('.')
            .ok_or_else(|| format!("'{expr}': expected data.TABLE.COLUMN"))?;
        let (ti, columns) = scope.tables.get(table).ok_or_else(|| {
            format!("'{expr}': no data table '{table}' (declare it under [data.{table}])")
        })?;
        let ci = columns.iter().position(|c| c == column).ok_or_else(|| {
            format!(
                "'{expr}': data table '{table}' has no column '{column}' (it has: {})",
                columns.join(", ")
            )
        })?;
        return Ok(Compiled::Part(Part::Data {
            table: *ti,
            column: ci,
        }));
    }
    if let Some(&i) = scope.vars.get(expr) {
        return Ok(Compiled::Part(Part::Var(i)));
    }
    if let Some(v) = scope.consts.get(expr) {
        return Ok(Compiled::Text(v.clone()));
    }
    if expr.is_empty()
        || !expr
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "'{{{{{expr}}}}}' is not a placeholder regbench knows"
        ));
    }
    Err(format!(
        "undefined template variable '{expr}': define it in [defaults.vars], pass -e {expr}=VALUE, or extract it in an earlier step"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Tables = HashMap<String, (usize, Vec<String>)>;

    fn scope_parts() -> (HashMap<String, String>, HashMap<String, usize>, Tables) {
        let consts = HashMap::from([("region".to_string(), "eu".to_string())]);
        let vars = HashMap::from([("token".to_string(), 0)]);
        let tables = HashMap::from([(
            "users".to_string(),
            (0, vec!["name".to_string(), "pw".to_string()]),
        )]);
        (consts, vars, tables)
    }

    fn compile(src: &str) -> Result<Template, TemplateError> {
        let (consts, vars, tables) = scope_parts();
        let env = |k: &str| (k == "HOME_URL").then(|| "http://h".to_string());
        Template::compile(
            src,
            &Scope {
                consts: &consts,
                vars: &vars,
                tables: &tables,
                env: &env,
            },
        )
    }

    fn render(t: &Template, iteration: u64) -> String {
        let vars = vec!["tok123".to_string()];
        let table = DataTable {
            name: "users".into(),
            columns: vec!["name".into(), "pw".into()],
            rows: vec![vec!["alice".into(), "s3cret".into()]],
            pick: super::super::data::Pick::Sequential,
        };
        let data = vec![Arc::new(table)];
        let mut rng = Rng::new(1);
        let mut ctx = Ctx {
            vars: &vars,
            iteration,
            vu: 7,
            data: &data,
            rows: &[0],
            rng: &mut rng,
        };
        let mut out = Vec::new();
        t.render(&mut ctx, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn constants_and_env_fold_into_literals() {
        let t = compile("{{env.HOME_URL}}/v1/{{ region }}/x").unwrap();
        assert!(t.is_static());
        assert_eq!(t.static_text().unwrap(), "http://h/v1/eu/x");
    }

    #[test]
    fn dynamic_parts_render() {
        let t =
            compile("Bearer {{token}} u={{data.users.name}} i={{iteration}} vu={{vu}}").unwrap();
        assert!(!t.is_static());
        assert_eq!(render(&t, 42), "Bearer tok123 u=alice i=42 vu=7");
        let r = render(
            &compile("{{random.int(5,5)}}-{{random.string(8)}}").unwrap(),
            0,
        );
        assert!(r.starts_with("5-") && r.len() == 10, "{r}");
        let u = render(&compile("{{random.uuid}}").unwrap(), 0);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4", "version 4: {u}");
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = compile("/x/{{nope}}").unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(
            e.message.contains("undefined template variable 'nope'"),
            "{}",
            e.message
        );
        assert!(compile("{{env.MISSING}}")
            .unwrap_err()
            .message
            .contains("'MISSING' is not set"));
        assert!(compile("{{data.users.age}}")
            .unwrap_err()
            .message
            .contains("no column 'age'"));
        assert!(compile("{{data.nope.x}}")
            .unwrap_err()
            .message
            .contains("no data table 'nope'"));
        assert!(compile("{{random.int(9,1)}}").is_err());
        assert!(compile("open {{ never closed")
            .unwrap_err()
            .message
            .contains("not closed"));
    }
}
