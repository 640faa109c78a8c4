//! Evaluating a check expression over borrowed JSON, and explaining a failed one.

use super::{BinOp, Func, Name, Node, Scope};
use serde_json::Value;
use std::borrow::Cow;

pub(super) fn explain(node: &Node, scope: &dyn Scope) -> String {
    let show = |n: &Node| match eval(n, scope) {
        Ok(v) => crate::error::excerpt(&v.to_string(), 160),
        Err(e) => format!("({e})"),
    };
    match node {
        Node::Bin(BinOp::And, l, r) => {
            let failing = if eval(l, scope).is_ok_and(|v| truthy(&v)) {
                r
            } else {
                l
            };
            explain(failing, scope)
        }
        Node::Bin(op, l, r) if *op != BinOp::Or => {
            format!("{} = {}; {} = {}", render(l), show(l), render(r), show(r))
        }
        _ => {
            let mut names = Vec::new();
            collect_names(node, &mut names);
            names
                .into_iter()
                .map(|n| {
                    let n = Node::Name(n);
                    format!("{} = {}", render(&n), show(&n))
                })
                .collect::<Vec<_>>()
                .join("; ")
        }
    }
}

fn collect_names(n: &Node, out: &mut Vec<Name>) {
    match n {
        Node::Name(x) => {
            if !out.contains(x) {
                out.push(x.clone())
            }
        }
        Node::Lit(_) => {}
        Node::List(items) => items.iter().for_each(|i| collect_names(i, out)),
        Node::Field(a, _) | Node::Not(a) | Node::Neg(a) | Node::Call(_, a) => collect_names(a, out),
        Node::Index(a, b) | Node::Bin(_, a, b) => {
            collect_names(a, out);
            collect_names(b, out)
        }
    }
}

/// Source-like text of a subtree, for messages.
fn render(n: &Node) -> String {
    match n {
        Node::Lit(v) => v.to_string(),
        Node::Name(Name::Result) => "result".into(),
        Node::Name(Name::Text) => "text".into(),
        Node::Name(Name::Structured) => "structured".into(),
        Node::Name(Name::IsError) => "isError".into(),
        Node::Name(Name::Content) => "content".into(),
        Node::Name(Name::Args) => "args".into(),
        Node::Name(Name::Arg(a)) => a.clone(),
        Node::List(items) => format!(
            "[{}]",
            items.iter().map(render).collect::<Vec<_>>().join(", ")
        ),
        Node::Field(a, f) => format!("{}.{f}", render(a)),
        Node::Index(a, i) => format!("{}[{}]", render(a), render(i)),
        Node::Not(a) => format!("not {}", render(a)),
        Node::Neg(a) => format!("-{}", render(a)),
        Node::Call(f, a) => format!("{}({})", format!("{f:?}").to_lowercase(), render(a)),
        Node::Bin(op, a, b) => {
            let o = match op {
                BinOp::Or => "or",
                BinOp::And => "and",
                BinOp::Eq => "==",
                BinOp::Ne => "!=",
                BinOp::Lt => "<",
                BinOp::Le => "<=",
                BinOp::Gt => ">",
                BinOp::Ge => ">=",
                BinOp::Contains => "contains",
                BinOp::StartsWith => "startswith",
                BinOp::EndsWith => "endswith",
                BinOp::Add => "+",
                BinOp::Sub => "-",
                BinOp::Mul => "*",
                BinOp::Div => "/",
                BinOp::Rem => "%",
            };
            format!("{} {o} {}", render(a), render(b))
        }
    }
}

type V<'a> = Cow<'a, Value>;

pub(super) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A number, also from a string that holds one (a tool's text "5" compares with 5).
fn as_num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn num_value(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// Text of a value for `contains`/`+`: strings as they are, everything else as JSON.
fn as_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        Value::Number(_) => Cow::Owned(num_value(as_num(v).unwrap_or(0.0)).to_string()),
        other => Cow::Owned(other.to_string()),
    }
}

/// Equality as a person means it: 5 == 5.0, and a number equals a string holding it.
pub fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => a.as_f64() == b.as_f64(),
        },
        (Value::Number(_), Value::String(_)) | (Value::String(_), Value::Number(_)) => {
            matches!((as_num(a), as_num(b)), (Some(x), Some(y)) if x == y)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| loose_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| loose_eq(p, q)))
        }
        _ => a == b,
    }
}

pub(super) fn eval<'a>(n: &'a Node, scope: &'a dyn Scope) -> Result<V<'a>, String> {
    Ok(match n {
        Node::Lit(v) => Cow::Borrowed(v),
        Node::Name(name) => scope.get(name),
        Node::List(items) => Cow::Owned(Value::Array(
            items
                .iter()
                .map(|i| eval(i, scope).map(Cow::into_owned))
                .collect::<Result<_, _>>()?,
        )),
        Node::Field(base, field) => match eval(base, scope)? {
            Cow::Borrowed(v) => Cow::Borrowed(v.get(field).unwrap_or(&Value::Null)),
            Cow::Owned(v) => Cow::Owned(v.get(field).cloned().unwrap_or(Value::Null)),
        },
        Node::Index(base, index) => {
            let i = eval(index, scope)?;
            let pick = |v: &Value| -> Value {
                match (&*i, v) {
                    (Value::Number(n), Value::Array(a)) => {
                        let k = n.as_i64().unwrap_or(-1);
                        let k = if k < 0 { a.len() as i64 + k } else { k };
                        a.get(k as usize).cloned().unwrap_or(Value::Null)
                    }
                    (Value::String(s), Value::Object(o)) => {
                        o.get(s).cloned().unwrap_or(Value::Null)
                    }
                    _ => Value::Null,
                }
            };
            Cow::Owned(pick(&*eval(base, scope)?))
        }
        Node::Not(a) => Cow::Owned(Value::Bool(!truthy(&*eval(a, scope)?))),
        Node::Neg(a) => {
            let v = eval(a, scope)?;
            match as_num(&v) {
                Some(x) if v.is_number() => Cow::Owned(num_value(-x)),
                _ => return Err(format!("cannot negate {}", kind(&v))),
            }
        }
        Node::Call(f, a) => Cow::Owned(call(*f, &*eval(a, scope)?)?),
        Node::Bin(BinOp::And, a, b) => Cow::Owned(Value::Bool(
            truthy(&*eval(a, scope)?) && truthy(&*eval(b, scope)?),
        )),
        Node::Bin(BinOp::Or, a, b) => Cow::Owned(Value::Bool(
            truthy(&*eval(a, scope)?) || truthy(&*eval(b, scope)?),
        )),
        Node::Bin(op, a, b) => {
            let (x, y) = (eval(a, scope)?, eval(b, scope)?);
            Cow::Owned(binary(*op, &x, &y)?)
        }
    })
}

fn binary(op: BinOp, x: &Value, y: &Value) -> Result<Value, String> {
    let both_num = || match (x, y) {
        (Value::Number(_), Value::Number(_)) => Some((x.as_f64()?, y.as_f64()?)),
        _ => as_num(x)
            .zip(as_num(y))
            .filter(|_| x.is_number() || y.is_number()),
    };
    Ok(match op {
        BinOp::Eq => Value::Bool(loose_eq(x, y)),
        BinOp::Ne => Value::Bool(!loose_eq(x, y)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let ord = match (x, y) {
                (Value::String(a), Value::String(b)) => a.partial_cmp(b),
                _ => match both_num() {
                    Some((a, b)) => a.partial_cmp(&b),
                    None => {
                        return Err(format!("cannot order {} and {}", kind(x), kind(y)));
                    }
                },
            };
            let Some(ord) = ord else {
                return Ok(Value::Bool(false));
            };
            Value::Bool(match op {
                BinOp::Lt => ord.is_lt(),
                BinOp::Le => ord.is_le(),
                BinOp::Gt => ord.is_gt(),
                _ => ord.is_ge(),
            })
        }
        BinOp::Contains => Value::Bool(match x {
            Value::String(s) => s.contains(&*as_text(y)),
            Value::Array(a) => a.iter().any(|i| loose_eq(i, y)),
            Value::Object(o) => o.contains_key(&*as_text(y)),
            other => {
                return Err(format!(
                    "`contains` needs a string, list or object on its left, found {}",
                    kind(other)
                ));
            }
        }),
        BinOp::StartsWith | BinOp::EndsWith => {
            let Value::String(s) = x else {
                return Err(format!(
                    "`startswith`/`endswith` need a string on the left, found {}",
                    kind(x)
                ));
            };
            let t = as_text(y);
            Value::Bool(if op == BinOp::StartsWith {
                s.starts_with(&*t)
            } else {
                s.ends_with(&*t)
            })
        }
        BinOp::Add if x.is_string() || y.is_string() => {
            Value::String(format!("{}{}", as_text(x), as_text(y)))
        }
        BinOp::Add => arith(op, x, y)?,
        BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => arith(op, x, y)?,
        BinOp::And | BinOp::Or => unreachable!("handled with short-circuit"),
    })
}

fn arith(op: BinOp, x: &Value, y: &Value) -> Result<Value, String> {
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        let exact = match op {
            BinOp::Add => a.checked_add(b),
            BinOp::Sub => a.checked_sub(b),
            BinOp::Mul => a.checked_mul(b),
            BinOp::Rem if b != 0 => a.checked_rem(b),
            BinOp::Div if b != 0 && a % b == 0 => a.checked_div(b),
            _ => None,
        };
        if let Some(v) = exact {
            return Ok(Value::from(v));
        }
    }
    let (Some(a), Some(b)) = (as_num(x), as_num(y)) else {
        return Err(format!(
            "cannot do arithmetic on {} and {}",
            kind(x),
            kind(y)
        ));
    };
    let r = match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        _ => a % b,
    };
    if !r.is_finite() {
        return Err("the arithmetic has no finite result (division by zero?)".into());
    }
    Ok(num_value(r))
}

fn call(f: Func, v: &Value) -> Result<Value, String> {
    Ok(match f {
        Func::Len => Value::from(match v {
            Value::String(s) => s.chars().count(),
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            Value::Null => 0,
            other => return Err(format!("len() of {}", kind(other))),
        }),
        Func::Num => match as_num(v) {
            Some(x) => num_value(x),
            None => return Err(format!("num() of {} that holds no number", kind(v))),
        },
        Func::Str => Value::String(as_text(v).into_owned()),
        Func::Lower => Value::String(as_text(v).to_lowercase()),
        Func::Upper => Value::String(as_text(v).to_uppercase()),
        Func::Trim => Value::String(as_text(v).trim().to_string()),
        Func::Abs => match v.as_f64() {
            Some(x) => num_value(x.abs()),
            None => return Err(format!("abs() of {}", kind(v))),
        },
    })
}
