//! Valid arguments from a tool's `inputSchema` (JSON Schema), for runs with no mix: the tool
//! gets called with what it says it accepts. Supports types, `required`, `enum`, `const`,
//! `default`, numeric bounds (inclusive and exclusive), string and array lengths, `$ref` to
//! local `$defs`/`definitions`, and `anyOf`/`oneOf` (first non-null branch).
//!
//! Values stay near the low end of their ranges: a `sleep` tool gets milliseconds, not a
//! minute, and an `alloc` tool gets bytes, not gigabytes.

use rand::Rng;
use serde_json::{Map, Value, json};

const MAX_DEPTH: usize = 8;

pub fn generate<R: Rng>(schema: &Value, rng: &mut R) -> Value {
    gen_value(schema, schema, rng, 0)
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
        return schema;
    };
    let path = r.trim_start_matches("#/");
    let mut cur = root;
    for part in path.split('/') {
        match cur.get(part) {
            Some(next) => cur = next,
            None => return schema,
        }
    }
    cur
}

fn gen_value<R: Rng>(root: &Value, schema: &Value, rng: &mut R, depth: usize) -> Value {
    let s = resolve(root, schema);
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    if let Some(c) = s.get("const") {
        return c.clone();
    }
    if let Some(e) = s
        .get("enum")
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty())
    {
        return e[rng.random_range(0..e.len())].clone();
    }
    if let Some(d) = s.get("default") {
        return d.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(branches) = s.get(key).and_then(Value::as_array) {
            let pick = branches
                .iter()
                .find(|b| resolve(root, b).get("type").and_then(Value::as_str) != Some("null"))
                .or(branches.first());
            if let Some(b) = pick {
                return gen_value(root, b, rng, depth + 1);
            }
        }
    }
    let ty = match s.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if s.get("properties").is_some() => "object",
        _ => "string",
    };
    match ty {
        "object" => gen_object(root, s, rng, depth),
        "array" => {
            let min = s.get("minItems").and_then(Value::as_u64).unwrap_or(1) as usize;
            let max = s
                .get("maxItems")
                .and_then(Value::as_u64)
                .map(|m| m as usize)
                .unwrap_or(min.max(1) + 2);
            let n = if max <= min {
                min
            } else {
                rng.random_range(min..=max.min(min + 3))
            };
            let items = s.get("items").cloned().unwrap_or(json!({}));
            Value::Array(
                (0..n)
                    .map(|_| gen_value(root, &items, rng, depth + 1))
                    .collect(),
            )
        }
        "integer" => Value::from(gen_integer(s, rng)),
        "number" => gen_number(s, rng),
        "boolean" => Value::Bool(rng.random_bool(0.5)),
        "null" => Value::Null,
        _ => Value::String(gen_string(s, rng)),
    }
}

fn gen_object<R: Rng>(root: &Value, s: &Value, rng: &mut R, depth: usize) -> Value {
    let mut out = Map::new();
    let props = s.get("properties").and_then(Value::as_object);
    let required: Vec<&str> = s
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(props) = props {
        for (name, sub) in props {
            if required.contains(&name.as_str()) {
                out.insert(name.clone(), gen_value(root, sub, rng, depth + 1));
            }
        }
    }
    Value::Object(out)
}

fn bound(s: &Value, inclusive: &str, exclusive: &str) -> (Option<f64>, bool) {
    // Draft 4 has boolean `exclusiveMinimum`; later drafts a number.
    match (s.get(inclusive).and_then(Value::as_f64), s.get(exclusive)) {
        (_, Some(Value::Number(n))) => (n.as_f64(), true),
        (Some(v), Some(Value::Bool(true))) => (Some(v), true),
        (v, _) => (v, false),
    }
}

fn gen_integer<R: Rng>(s: &Value, rng: &mut R) -> i64 {
    let (min, min_ex) = bound(s, "minimum", "exclusiveMinimum");
    let (max, max_ex) = bound(s, "maximum", "exclusiveMaximum");
    let lo = min
        .map(|m| {
            if min_ex {
                m.floor() as i64 + 1
            } else {
                m.ceil() as i64
            }
        })
        .unwrap_or(0);
    let hi = max
        .map(|m| {
            if max_ex {
                m.ceil() as i64 - 1
            } else {
                m.floor() as i64
            }
        })
        .unwrap_or(lo.saturating_add(100));
    let hi = hi.min(lo.saturating_add(100));
    let v = if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    };
    match s
        .get("multipleOf")
        .and_then(Value::as_i64)
        .filter(|m| *m > 0)
    {
        Some(m) => {
            let r = v.div_euclid(m) * m;
            if r < lo { r + m } else { r }
        }
        None => v,
    }
}

fn gen_number<R: Rng>(s: &Value, rng: &mut R) -> Value {
    let (min, _) = bound(s, "minimum", "exclusiveMinimum");
    let (max, _) = bound(s, "maximum", "exclusiveMaximum");
    let lo = min.unwrap_or(0.0);
    let hi = max.unwrap_or(lo + 100.0).min(lo + 100.0);
    // Stay strictly inside so exclusive bounds hold too.
    let v = if hi > lo {
        lo + (hi - lo) * rng.random_range(0.05..0.95)
    } else {
        lo
    };
    json!(v)
}

fn gen_string<R: Rng>(s: &Value, rng: &mut R) -> String {
    match s.get("format").and_then(Value::as_str) {
        Some("uri") | Some("url") => return "https://example.invalid/mcpstorm".into(),
        Some("email") => return "mcpstorm@example.invalid".into(),
        Some("date-time") => return "2026-01-01T00:00:00Z".into(),
        Some("date") => return "2026-01-01".into(),
        Some("uuid") => return "6f1c1a4e-0d7b-4c5e-9a57-3f6f3c2d1b0a".into(),
        _ => {}
    }
    let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(1) as usize;
    let max = s
        .get("maxLength")
        .and_then(Value::as_u64)
        .map(|m| m as usize)
        .unwrap_or(min.max(8) + 8);
    let len = if max <= min {
        min
    } else {
        rng.random_range(min..=max.min(min + 16))
    };
    (0..len)
        .map(|_| rng.sample(rand::distr::Alphanumeric) as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_respect_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "ms": {"type": "integer", "minimum": 10, "maximum": 60000},
                "rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "name": {"type": "string", "minLength": 3, "maxLength": 5},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                "inner": {"$ref": "#/$defs/Inner"},
                "opt": {"type": "string"},
                "maybe": {"anyOf": [{"type": "null"}, {"type": "boolean"}]}
            },
            "required": ["ms", "rate", "mode", "name", "tags", "inner", "maybe"],
            "$defs": {"Inner": {"type": "object", "properties": {"k": {"const": 5}}, "required": ["k"]}}
        });
        let mut rng = rand::rng();
        for _ in 0..200 {
            let v = generate(&schema, &mut rng);
            let ms = v["ms"].as_i64().unwrap();
            assert!((10..=110).contains(&ms), "{v}");
            let rate = v["rate"].as_f64().unwrap();
            assert!(rate > 0.0 && rate <= 1.0, "{v}");
            assert!(["a", "b"].contains(&v["mode"].as_str().unwrap()));
            let n = v["name"].as_str().unwrap().len();
            assert!((3..=5).contains(&n), "{v}");
            assert!(v["tags"].as_array().unwrap().len() >= 2);
            assert_eq!(v["inner"]["k"], 5);
            assert!(v.get("opt").is_none());
            assert!(v["maybe"].is_boolean());
        }
    }
}
