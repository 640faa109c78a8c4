//! The little language of response checks: `result == a + b`, `text contains message`,
//! `structured.count >= 1 and len(text) > 0`. Parsed once when the scenario is validated
//! (a bad expression is exit 2 with its position), evaluated per call by walking a small
//! tree over `serde_json::Value`s borrowed from the answer, without copying them.
//!
//! Why not a crate: CEL (`cel-interpreter`) spells these `text.contains(message)` and
//! `size(text)` and needs every answer converted into its own value type on every call;
//! `evalexpr` has no maps, so `structured.count` cannot be read at all. What the checks need
//! is a dozen operators over JSON, which is about the size of this file.
//!
//! Grammar (lowest precedence first):
//! `or`: `a or b`, `a || b`; `and`: `a and b`, `a && b`; `not a`, `!a`;
//! comparison: `== != < <= > >= contains startswith endswith`; `+ -` (numbers; `+` also
//! joins strings); `* / %`; unary `-`; postfix `.name`, `[index]`, `["key"]`; atoms: numbers,
//! `"strings"` or `'strings'`, `true false null`, `[lists]`, names, `(…)`, and the functions
//! `len(x)`, `num(x)`, `str(x)`, `lower(x)`, `upper(x)`, `trim(x)`, `abs(x)`.
//!
//! Parsing (a lexer and a recursive-descent parser) lives in `parse`, evaluation and the
//! explanation of a failed check in `eval`. It never reads anything but the bindings it is
//! given.

mod eval;
mod parse;

pub use eval::loose_eq;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// A name an expression can read; resolved once at parse time.
#[derive(Debug, Clone, PartialEq)]
pub enum Name {
    /// The answer as one value (see `answer::Bindings`).
    Result,
    Text,
    Structured,
    IsError,
    Content,
    /// The arguments object as sent.
    Args,
    /// One argument by name.
    Arg(String),
}

impl Name {
    fn from_ident(s: &str, args: &[String]) -> Option<Name> {
        Some(match s {
            "result" => Name::Result,
            "text" => Name::Text,
            "structured" => Name::Structured,
            "isError" => Name::IsError,
            "content" => Name::Content,
            "args" => Name::Args,
            _ if args.iter().any(|a| a == s) => Name::Arg(s.to_string()),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    StartsWith,
    EndsWith,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Func {
    Len,
    Num,
    Str,
    Lower,
    Upper,
    Trim,
    Abs,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Lit(Value),
    Name(Name),
    List(Vec<Node>),
    Field(Box<Node>, String),
    Index(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    Bin(BinOp, Box<Node>, Box<Node>),
    Call(Func, Box<Node>),
}

/// A parsed check, with its source text for messages.
#[derive(Debug, Clone)]
pub struct Expr {
    pub source: String,
    pub root: Node,
}

/// A parse error at a character position (1-based column).
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at column {}: {}", self.column, self.message)
    }
}

/// What an expression reads from: the names resolve through this.
pub trait Scope {
    fn get(&self, name: &Name) -> Cow<'_, Value>;
}

impl Expr {
    /// Parse `src`; `args` are the argument names the expression may read directly.
    pub fn parse(src: &str, args: &[String]) -> Result<Expr, ParseError> {
        Ok(Expr {
            source: src.to_string(),
            root: parse::parse(src, args)?,
        })
    }

    /// Does the expression read this name anywhere?
    pub fn uses(&self, name: &Name) -> bool {
        fn walk(n: &Node, name: &Name) -> bool {
            match n {
                Node::Name(x) => x == name,
                Node::Lit(_) => false,
                Node::List(items) => items.iter().any(|i| walk(i, name)),
                Node::Field(a, _) | Node::Not(a) | Node::Neg(a) | Node::Call(_, a) => walk(a, name),
                Node::Index(a, b) | Node::Bin(_, a, b) => walk(a, name) || walk(b, name),
            }
        }
        walk(&self.root, name)
    }

    /// True, false, or why it could not be evaluated (a type mismatch is a failed check).
    pub fn test(&self, scope: &dyn Scope) -> Result<bool, String> {
        eval::eval(&self.root, scope).map(|v| eval::truthy(&v))
    }

    /// For a failed check: the part that failed (the first false side of an `and`), with
    /// both sides of a comparison and their values, else every name it reads.
    pub fn explain(&self, scope: &dyn Scope) -> String {
        eval::explain(&self.root, scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct S(Value);
    impl Scope for S {
        fn get(&self, name: &Name) -> Cow<'_, Value> {
            let key = match name {
                Name::Result => "result",
                Name::Text => "text",
                Name::Structured => "structured",
                Name::IsError => "isError",
                Name::Content => "content",
                Name::Args => "args",
                Name::Arg(a) => {
                    return Cow::Borrowed(self.0["args"].get(a).unwrap_or(&Value::Null));
                }
            };
            Cow::Borrowed(self.0.get(key).unwrap_or(&Value::Null))
        }
    }

    fn check(src: &str, scope: &Value) -> Result<bool, String> {
        let args: Vec<String> = scope["args"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        Expr::parse(src, &args)
            .map_err(|e| e.to_string())?
            .test(&S(scope.clone()))
    }

    #[test]
    fn the_issue_examples_hold() {
        let s = json!({"result": 5, "text": "5", "structured": {"count": 2, "sum": 5},
            "isError": false, "args": {"a": 2, "b": 3, "message": "hi"}});
        for yes in [
            "result == a + b",
            "text == a + b",
            "structured.count >= 1",
            "len(text) > 0",
            "result == a + b and not isError",
            "result == 6 or structured.sum == 5",
            "structured[\"sum\"] == 5",
            "args.a * 2 - 1 == 3",
            "[1, 2, 3] contains a",
            "structured contains 'count'",
            "abs(-3) == 3 && num(text) + 1 == 6",
            "lower('AbC') == 'abc'",
        ] {
            assert_eq!(check(yes, &s), Ok(true), "{yes}");
        }
        for no in ["result == a + b + 1", "structured.count > 2", "isError"] {
            assert_eq!(check(no, &s), Ok(false), "{no}");
        }
        let echo = json!({"text": "you said: hi there", "args": {"message": "hi there"}});
        assert_eq!(check("text contains message", &echo), Ok(true));
        assert_eq!(check("text endswith message", &echo), Ok(true));
        assert_eq!(check("text startswith message", &echo), Ok(false));
        assert_eq!(check("text == 'you said: ' + message", &echo), Ok(true));
    }

    #[test]
    fn type_mismatches_are_errors_not_panics() {
        let s = json!({"structured": null, "args": {"a": "x"}});
        assert!(
            check("structured.count >= 1", &s)
                .unwrap_err()
                .contains("cannot order null")
        );
        assert!(check("a * 2 == 1", &s).unwrap_err().contains("arithmetic"));
        assert!(check("1 / 0 == 1", &s).is_err());
    }

    #[test]
    fn bad_expressions_name_the_column() {
        let cases = [
            ("result ==", 10, "expected a value"),
            ("result = 5", 8, "unexpected character `=`"),
            ("reslt == 5", 1, "unknown name `reslt`"),
            ("text contains 'abc", 15, "no closing"),
            ("size(text) > 0", 1, "unknown function"),
            ("1 < 2 < 3", 7, "do not chain"),
            ("(result == 1", 13, "expected `)`"),
            ("", 1, "empty"),
        ];
        for (src, column, hint) in cases {
            let e = Expr::parse(src, &["a".into()]).unwrap_err();
            assert_eq!(e.column, column, "{src}: {e}");
            assert!(e.message.contains(hint), "{src}: {e}");
        }
        let e = Expr::parse("b == 1", &["a".into()]).unwrap_err();
        assert!(e.message.contains("argument (a)"), "{e}");
    }

    #[test]
    fn explain_shows_both_sides() {
        let s = json!({"result": 6, "args": {"a": 2, "b": 3}});
        let e = Expr::parse("result == a + b", &["a".into(), "b".into()]).unwrap();
        assert_eq!(e.explain(&S(s.clone())), "result = 6; a + b = 5");
        let e = Expr::parse("a == 2 and result == a + b", &["a".into(), "b".into()]).unwrap();
        assert_eq!(e.explain(&S(s)), "result = 6; a + b = 5");
    }
}
