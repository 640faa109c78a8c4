//! Argument templates: literal JSON with placeholders, compiled once at plan time so the hot
//! path never parses strings.
//!
//! Placeholders inside strings: `{{seq}}` (a run-wide sequence number), `{{vu}}` (the virtual
//! user's id), `{{random:N}}` (N random alphanumeric bytes; `KB`/`MB` suffixes; up to 50 MB).
//! A string that is exactly `{{seq}}` or `{{vu}}` becomes a JSON number.

use rand::Rng;
use serde_json::{Map, Value};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Seq,
    Vu,
    Random(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    Literal(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    Text(Vec<Piece>),
    SeqNumber,
    VuNumber,
}

/// Per-call values the placeholders take.
pub struct Ctx<'a, R: Rng> {
    pub seq: u64,
    pub vu: u64,
    pub rng: &'a mut R,
    pub pool: &'a RandomPool,
}

/// One buffer of random alphanumerics, made once; payloads are slices at random offsets,
/// so a 50 MB argument costs a copy, not 50 MB of random number generation per call.
#[derive(Debug, Clone, Default)]
pub struct RandomPool {
    bytes: Arc<Vec<u8>>,
}

const POOL_SLACK: usize = 4096;

impl RandomPool {
    pub fn new(max_len: usize) -> Self {
        if max_len == 0 {
            return Self::default();
        }
        let mut rng = rand::rng();
        let bytes: Vec<u8> = (0..max_len + POOL_SLACK)
            .map(|_| rng.sample(rand::distr::Alphanumeric))
            .collect();
        Self {
            bytes: Arc::new(bytes),
        }
    }

    fn slice<R: Rng>(&self, len: usize, rng: &mut R) -> &str {
        let slack = self.bytes.len().saturating_sub(len);
        let start = if slack == 0 {
            0
        } else {
            rng.random_range(0..slack.min(POOL_SLACK))
        };
        let end = (start + len).min(self.bytes.len());
        // Alphanumeric bytes are ASCII, so any slice is valid UTF-8.
        std::str::from_utf8(&self.bytes[start..end]).unwrap_or("")
    }
}

impl Template {
    pub fn empty_object() -> Template {
        Template::Literal(Value::Object(Map::new()))
    }

    /// Compile a TOML value; `key` names it in errors (`mix[0].arguments`).
    pub fn compile(v: &toml::Value, key: &str) -> Result<Template, String> {
        let t = Self::compile_inner(v, key)?;
        Ok(t.fold())
    }

    fn compile_inner(v: &toml::Value, key: &str) -> Result<Template, String> {
        Ok(match v {
            toml::Value::String(s) => Self::compile_str(s, key)?,
            toml::Value::Integer(i) => Template::Literal(Value::from(*i)),
            toml::Value::Float(f) => Template::Literal(Value::from(*f)),
            toml::Value::Boolean(b) => Template::Literal(Value::Bool(*b)),
            toml::Value::Datetime(d) => Template::Literal(Value::String(d.to_string())),
            toml::Value::Array(a) => Template::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| Self::compile_inner(x, &format!("{key}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            toml::Value::Table(t) => Template::Object(
                t.iter()
                    .map(|(k, x)| {
                        Self::compile_inner(x, &format!("{key}.{k}")).map(|c| (k.clone(), c))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    fn compile_str(s: &str, key: &str) -> Result<Template, String> {
        match s {
            "{{seq}}" => return Ok(Template::SeqNumber),
            "{{vu}}" => return Ok(Template::VuNumber),
            _ => {}
        }
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("`{key}`: `{{{{` without a closing `}}}}` in \"{s}\""))?;
            let name = after[..close].trim();
            pieces.push(match name {
                "seq" => Piece::Seq,
                "vu" => Piece::Vu,
                _ => match name.strip_prefix("random:") {
                    Some(n) => Piece::Random(parse_size(n).map_err(|e| format!("`{key}`: {e}"))?),
                    None => {
                        return Err(format!(
                            "`{key}`: unknown placeholder `{{{{{name}}}}}`; use {{{{seq}}}}, {{{{vu}}}} or {{{{random:N}}}}"
                        ));
                    }
                },
            });
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(match pieces.as_slice() {
            [] => Template::Literal(Value::String(String::new())),
            [Piece::Text(t)] => Template::Literal(Value::String(t.clone())),
            _ => Template::Text(pieces),
        })
    }

    /// Collapse subtrees without placeholders into literals.
    fn fold(self) -> Template {
        match self {
            Template::Object(fields) => {
                let fields: Vec<(String, Template)> =
                    fields.into_iter().map(|(k, t)| (k, t.fold())).collect();
                if fields
                    .iter()
                    .all(|(_, t)| matches!(t, Template::Literal(_)))
                {
                    let map = fields
                        .into_iter()
                        .map(|(k, t)| match t {
                            Template::Literal(v) => (k, v),
                            _ => (k, Value::Null),
                        })
                        .collect();
                    Template::Literal(Value::Object(map))
                } else {
                    Template::Object(fields)
                }
            }
            Template::Array(items) => {
                let items: Vec<Template> = items.into_iter().map(Template::fold).collect();
                if items.iter().all(|t| matches!(t, Template::Literal(_))) {
                    Template::Literal(Value::Array(
                        items
                            .into_iter()
                            .map(|t| {
                                if let Template::Literal(v) = t {
                                    v
                                } else {
                                    Value::Null
                                }
                            })
                            .collect(),
                    ))
                } else {
                    Template::Array(items)
                }
            }
            other => other,
        }
    }

    /// The largest `{{random:N}}` in this template, to size the pool.
    pub fn max_random(&self) -> usize {
        match self {
            Template::Object(f) => f.iter().map(|(_, t)| t.max_random()).max().unwrap_or(0),
            Template::Array(a) => a.iter().map(Template::max_random).max().unwrap_or(0),
            Template::Text(p) => p
                .iter()
                .map(|x| if let Piece::Random(n) = x { *n } else { 0 })
                .max()
                .unwrap_or(0),
            _ => 0,
        }
    }

    pub fn render<R: Rng>(&self, ctx: &mut Ctx<'_, R>) -> Value {
        match self {
            Template::Literal(v) => v.clone(),
            Template::SeqNumber => Value::from(ctx.seq),
            Template::VuNumber => Value::from(ctx.vu),
            Template::Object(f) => {
                Value::Object(f.iter().map(|(k, t)| (k.clone(), t.render(ctx))).collect())
            }
            Template::Array(a) => Value::Array(a.iter().map(|t| t.render(ctx)).collect()),
            Template::Text(pieces) => {
                let mut s = String::new();
                for p in pieces {
                    match p {
                        Piece::Text(t) => s.push_str(t),
                        Piece::Seq => s.push_str(&ctx.seq.to_string()),
                        Piece::Vu => s.push_str(&ctx.vu.to_string()),
                        Piece::Random(n) => s.push_str(ctx.pool.slice(*n, ctx.rng)),
                    }
                }
                Value::String(s)
            }
        }
    }
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("MB") {
        (n, 1024 * 1024)
    } else if let Some(n) = s.strip_suffix("KB") {
        (n, 1024)
    } else {
        (s, 1)
    };
    let n: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("`random:{s}`: expected a byte count like 1024, 64KB or 5MB"))?;
    let bytes = n.saturating_mul(mult);
    if bytes > crate::scenario::MAX_RANDOM_BYTES {
        return Err(format!("`random:{s}` is {bytes} bytes; the limit is 50MB"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(toml_text: &str) -> Result<Template, String> {
        let v: toml::Value = toml::from_str(toml_text).unwrap();
        Template::compile(&v["a"], "mix[0].arguments")
    }

    #[test]
    fn placeholders_render() {
        let t = compile(
            r#"a = { id = "{{seq}}", msg = "u{{vu}}-{{seq}}", blob = "{{random:8}}", n = 3 }"#,
        )
        .unwrap();
        let pool = RandomPool::new(t.max_random());
        let mut rng = rand::rng();
        let v = t.render(&mut Ctx {
            seq: 7,
            vu: 2,
            rng: &mut rng,
            pool: &pool,
        });
        assert_eq!(v["id"], 7);
        assert_eq!(v["msg"], "u2-7");
        assert_eq!(v["blob"].as_str().unwrap().len(), 8);
        assert_eq!(v["n"], 3);
    }

    #[test]
    fn literals_fold_and_bad_placeholders_are_named() {
        assert!(matches!(
            compile(r#"a = { x = [1, "two"] }"#).unwrap(),
            Template::Literal(_)
        ));
        let e = compile(r#"a = { x = "{{uuid}}" }"#).unwrap_err();
        assert!(
            e.contains("mix[0].arguments.x") && e.contains("unknown placeholder"),
            "{e}"
        );
        let e = compile(r#"a = { x = "{{random:51MB}}" }"#).unwrap_err();
        assert!(e.contains("limit is 50MB"), "{e}");
        assert_eq!(
            compile(r#"a = "{{random:5MB}}""#).unwrap().max_random(),
            5 * 1024 * 1024
        );
    }
}
