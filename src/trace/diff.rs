//! Comparing a replayed answer with the recorded one: leave out the fields that may
//! legitimately differ (JSON pointers given with `--ignore`, `*` matching any one key or
//! index), then list where the two differ, each with its pointer and both values.

use crate::check::expr::loose_eq;
use serde_json::Value;

/// A JSON pointer (RFC 6901) split into unescaped segments; `*` matches any segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Pointer(Vec<String>);

impl Pointer {
    pub fn parse(s: &str) -> Result<Pointer, String> {
        if s.is_empty() {
            return Err("an empty pointer would ignore the whole answer".into());
        }
        let Some(rest) = s.strip_prefix('/') else {
            return Err(format!(
                "`{s}` is not a JSON pointer; it starts with `/`, like /content/0/text or /structuredContent/timestamp"
            ));
        };
        Ok(Pointer(
            rest.split('/')
                .map(|p| p.replace("~1", "/").replace("~0", "~"))
                .collect(),
        ))
    }
}

/// Remove every place `pointer` names from `v`.
pub fn strip(v: &mut Value, pointer: &Pointer) {
    fn go(v: &mut Value, segs: &[String]) {
        let Some((head, rest)) = segs.split_first() else {
            return;
        };
        let last = rest.is_empty();
        match v {
            Value::Object(o) => {
                if head == "*" {
                    if last {
                        o.clear();
                    } else {
                        o.values_mut().for_each(|c| go(c, rest));
                    }
                } else if last {
                    o.remove(head);
                } else if let Some(c) = o.get_mut(head) {
                    go(c, rest);
                }
            }
            Value::Array(a) => {
                if head == "*" {
                    if last {
                        a.iter_mut().for_each(|c| *c = Value::Null);
                    } else {
                        a.iter_mut().for_each(|c| go(c, rest));
                    }
                } else if let Ok(i) = head.parse::<usize>()
                    && let Some(c) = a.get_mut(i)
                {
                    if last {
                        // Keep positions stable so later indexes still line up.
                        *c = Value::Null;
                    } else {
                        go(c, rest);
                    }
                }
            }
            _ => {}
        }
    }
    go(v, &pointer.0)
}

/// One place where the answers differ.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Difference {
    pub pointer: String,
    pub recorded: Value,
    pub got: Value,
}

/// Where `recorded` and `got` differ (numbers compare by value), at most `limit` places.
pub fn differences(recorded: &Value, got: &Value, limit: usize) -> Vec<Difference> {
    let mut out = Vec::new();
    walk(recorded, got, &mut String::new(), &mut out, limit);
    out
}

fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

fn walk(a: &Value, b: &Value, at: &mut String, out: &mut Vec<Difference>, limit: usize) {
    if out.len() >= limit {
        return;
    }
    let len = at.len();
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x
                .keys()
                .chain(y.keys().filter(|k| !x.contains_key(*k)))
                .collect();
            keys.sort();
            for k in keys {
                at.push('/');
                at.push_str(&escape(k));
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => walk(p, q, at, out, limit),
                    (p, q) => out.push(Difference {
                        pointer: at.clone(),
                        recorded: p.cloned().unwrap_or(Value::Null),
                        got: q.cloned().unwrap_or(Value::Null),
                    }),
                }
                at.truncate(len);
                if out.len() >= limit {
                    return;
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                at.push('/');
                at.push_str(&i.to_string());
                walk(p, q, at, out, limit);
                at.truncate(len);
            }
        }
        _ if loose_eq(a, b) && a.is_number() == b.is_number() => {}
        _ => out.push(Difference {
            pointer: if at.is_empty() {
                "/".into()
            } else {
                at.clone()
            },
            recorded: a.clone(),
            got: b.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_each_difference_with_its_pointer() {
        let rec = json!({"content": [{"type": "text", "text": "5"}], "structuredContent": {"sum": 5, "at": "t1"}});
        let got = json!({"content": [{"type": "text", "text": "6"}], "structuredContent": {"sum": 6.0, "at": "t2"}});
        let d = differences(&rec, &got, 10);
        let ptrs: Vec<&str> = d.iter().map(|x| x.pointer.as_str()).collect();
        assert_eq!(
            ptrs,
            vec![
                "/content/0/text",
                "/structuredContent/at",
                "/structuredContent/sum"
            ]
        );
        assert_eq!(d[0].recorded, json!("5"));
        assert_eq!(d[0].got, json!("6"));
        assert!(differences(&json!({"n": 5}), &json!({"n": 5.0}), 10).is_empty());
        assert_eq!(
            differences(&json!({"n": 5}), &json!({"n": "5"}), 10).len(),
            1
        );
        assert_eq!(
            differences(&json!([1, 2]), &json!([1, 2, 3]), 10)[0].pointer,
            "/"
        );
    }

    #[test]
    fn ignored_pointers_are_left_out() {
        let mut rec = json!({"content": [{"text": "a", "ts": 1}, {"text": "b", "ts": 2}], "structuredContent": {"at": "t1", "x": 1}, "_meta": {"k": 1}});
        let mut got = json!({"content": [{"text": "a", "ts": 3}, {"text": "b", "ts": 4}], "structuredContent": {"at": "t2", "x": 1}});
        for p in ["/content/*/ts", "/structuredContent/at", "/_meta"] {
            let p = Pointer::parse(p).unwrap();
            strip(&mut rec, &p);
            strip(&mut got, &p);
        }
        assert!(differences(&rec, &got, 10).is_empty(), "{rec} vs {got}");
        assert!(
            Pointer::parse("content")
                .unwrap_err()
                .contains("starts with `/`")
        );
        assert_eq!(
            Pointer::parse("/a~1b/c~0d").unwrap(),
            Pointer(vec!["a/b".into(), "c~d".into()])
        );
    }
}
