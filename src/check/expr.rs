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
//! It never reads anything but the bindings it is given.

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

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64, bool),
    Str(String),
    Ident(String),
    Op(&'static str),
    End,
}

struct Lexer {
    toks: Vec<(Tok, usize)>,
}

const OPS: &[&str] = &[
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "(", ")", "[", "]",
    ",", ".",
];

fn lex(src: &str) -> Result<Lexer, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            let mut float = false;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (chars[i] == '.'
                        && !float
                        && chars.get(i + 1).is_some_and(char::is_ascii_digit))
                    || ((chars[i] == 'e' || chars[i] == 'E') && i > start))
            {
                if chars[i] == '.' || chars[i] == 'e' || chars[i] == 'E' {
                    float = true;
                    if (chars[i] == 'e' || chars[i] == 'E')
                        && matches!(chars.get(i + 1), Some('+' | '-'))
                    {
                        i += 1;
                    }
                }
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let n: f64 = text.parse().map_err(|_| ParseError {
                column: col,
                message: format!("`{text}` is not a number"),
            })?;
            toks.push((Tok::Num(n, float), col));
        } else if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(ParseError {
                            column: col,
                            message: format!("the string that starts here has no closing {c}"),
                        });
                    }
                    Some(&q) if q == c => break,
                    Some('\\') => {
                        let esc = chars.get(i + 1).copied().unwrap_or('\\');
                        s.push(match esc {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                        i += 2;
                        continue;
                    }
                    Some(&ch) => s.push(ch),
                }
                i += 1;
            }
            i += 1;
            toks.push((Tok::Str(s), col));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            toks.push((Tok::Ident(chars[start..i].iter().collect()), col));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let Some(op) = OPS.iter().find(|o| rest.starts_with(**o)) else {
                return Err(ParseError {
                    column: col,
                    message: format!("unexpected character `{c}`"),
                });
            };
            i += op.chars().count();
            toks.push((Tok::Op(op), col));
        }
    }
    toks.push((Tok::End, chars.len() + 1));
    Ok(Lexer { toks })
}

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    args: &'a [String],
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }
    fn col(&self) -> usize {
        self.toks[self.pos].1
    }
    fn err<T>(&self, message: String) -> Result<T, ParseError> {
        Err(ParseError {
            column: self.col(),
            message,
        })
    }
    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Ident(i) if i == w)
    }
    fn expect_op(&mut self, op: &str) -> Result<(), ParseError> {
        if self.is_op(op) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(format!("expected `{op}`, found {}", describe(self.peek())))
        }
    }

    fn or(&mut self) -> Result<Node, ParseError> {
        let mut left = self.and()?;
        while self.is_op("||") || self.is_word("or") {
            self.pos += 1;
            left = Node::Bin(BinOp::Or, Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, ParseError> {
        let mut left = self.not()?;
        while self.is_op("&&") || self.is_word("and") {
            self.pos += 1;
            left = Node::Bin(BinOp::And, Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Node, ParseError> {
        if self.is_op("!") || self.is_word("not") {
            self.pos += 1;
            return Ok(Node::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Node, ParseError> {
        let left = self.sum()?;
        let op = match self.peek() {
            Tok::Op("==") => BinOp::Eq,
            Tok::Op("!=") => BinOp::Ne,
            Tok::Op("<") => BinOp::Lt,
            Tok::Op("<=") => BinOp::Le,
            Tok::Op(">") => BinOp::Gt,
            Tok::Op(">=") => BinOp::Ge,
            Tok::Ident(w) if w == "contains" => BinOp::Contains,
            Tok::Ident(w) if w == "startswith" => BinOp::StartsWith,
            Tok::Ident(w) if w == "endswith" => BinOp::EndsWith,
            _ => return Ok(left),
        };
        self.pos += 1;
        let right = self.sum()?;
        if matches!(self.peek(), Tok::Op("==" | "!=" | "<" | "<=" | ">" | ">=")) {
            return self.err("comparisons do not chain; join them with `and`".into());
        }
        Ok(Node::Bin(op, Box::new(left), Box::new(right)))
    }

    fn sum(&mut self) -> Result<Node, ParseError> {
        let mut left = self.prod()?;
        loop {
            let op = match self.peek() {
                Tok::Op("+") => BinOp::Add,
                Tok::Op("-") => BinOp::Sub,
                _ => return Ok(left),
            };
            self.pos += 1;
            left = Node::Bin(op, Box::new(left), Box::new(self.prod()?));
        }
    }

    fn prod(&mut self) -> Result<Node, ParseError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Op("*") => BinOp::Mul,
                Tok::Op("/") => BinOp::Div,
                Tok::Op("%") => BinOp::Rem,
                _ => return Ok(left),
            };
            self.pos += 1;
            left = Node::Bin(op, Box::new(left), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Node, ParseError> {
        if self.is_op("-") {
            self.pos += 1;
            return Ok(Node::Neg(Box::new(self.unary()?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Node, ParseError> {
        let mut node = self.atom()?;
        loop {
            if self.is_op(".") {
                self.pos += 1;
                match self.peek().clone() {
                    Tok::Ident(name) => {
                        self.pos += 1;
                        node = Node::Field(Box::new(node), name);
                    }
                    Tok::Num(n, false) => {
                        // `content.0` reads like an index; accept it as one.
                        self.pos += 1;
                        node =
                            Node::Index(Box::new(node), Box::new(Node::Lit(Value::from(n as u64))));
                    }
                    other => {
                        return self.err(format!(
                            "expected a field name after `.`, found {}",
                            describe(&other)
                        ));
                    }
                }
            } else if self.is_op("[") {
                self.pos += 1;
                let index = self.or()?;
                self.expect_op("]")?;
                node = Node::Index(Box::new(node), Box::new(index));
            } else {
                return Ok(node);
            }
        }
    }

    fn atom(&mut self) -> Result<Node, ParseError> {
        let tok = self.peek().clone();
        match tok {
            Tok::Num(n, float) => {
                self.pos += 1;
                let v = if !float && n.fract() == 0.0 && n.abs() < 9.0e15 {
                    Value::from(n as i64)
                } else {
                    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
                };
                Ok(Node::Lit(v))
            }
            Tok::Str(s) => {
                self.pos += 1;
                Ok(Node::Lit(Value::String(s)))
            }
            Tok::Op("(") => {
                self.pos += 1;
                let e = self.or()?;
                self.expect_op(")")?;
                Ok(e)
            }
            Tok::Op("[") => {
                self.pos += 1;
                let mut items = Vec::new();
                while !self.is_op("]") {
                    items.push(self.or()?);
                    if !self.is_op("]") {
                        self.expect_op(",")?;
                    }
                }
                self.pos += 1;
                Ok(Node::List(items))
            }
            Tok::Ident(word) => {
                let col = self.col();
                self.pos += 1;
                match word.as_str() {
                    "true" => return Ok(Node::Lit(Value::Bool(true))),
                    "false" => return Ok(Node::Lit(Value::Bool(false))),
                    "null" => return Ok(Node::Lit(Value::Null)),
                    _ => {}
                }
                if self.is_op("(") {
                    let func = match word.as_str() {
                        "len" => Func::Len,
                        "num" => Func::Num,
                        "str" => Func::Str,
                        "lower" => Func::Lower,
                        "upper" => Func::Upper,
                        "trim" => Func::Trim,
                        "abs" => Func::Abs,
                        other => {
                            return Err(ParseError {
                                column: col,
                                message: format!(
                                    "unknown function `{other}`; use len, num, str, lower, upper, trim or abs"
                                ),
                            });
                        }
                    };
                    self.pos += 1;
                    let arg = self.or()?;
                    self.expect_op(")")?;
                    return Ok(Node::Call(func, Box::new(arg)));
                }
                match Name::from_ident(&word, self.args) {
                    Some(n) => Ok(Node::Name(n)),
                    None => {
                        let args = if self.args.is_empty() {
                            String::new()
                        } else {
                            format!(", or an argument ({})", self.args.join(", "))
                        };
                        Err(ParseError {
                            column: col,
                            message: format!(
                                "unknown name `{word}`; use result, text, structured, isError, content, args{args}"
                            ),
                        })
                    }
                }
            }
            other => self.err(format!("expected a value, found {}", describe(&other))),
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Num(n, _) => format!("the number {n}"),
        Tok::Str(s) => format!("the string \"{s}\""),
        Tok::Ident(i) => format!("`{i}`"),
        Tok::Op(o) => format!("`{o}`"),
        Tok::End => "the end of the expression".into(),
    }
}

impl Expr {
    /// Parse `src`; `args` are the argument names the expression may read directly.
    pub fn parse(src: &str, args: &[String]) -> Result<Expr, ParseError> {
        let lexer = lex(src)?;
        let mut p = Parser {
            toks: lexer.toks,
            pos: 0,
            args,
        };
        if p.peek() == &Tok::End {
            return p.err("the expression is empty".into());
        }
        let root = p.or()?;
        if p.peek() != &Tok::End {
            return p.err(format!(
                "unexpected {} after a complete expression",
                describe(p.peek())
            ));
        }
        Ok(Expr {
            source: src.to_string(),
            root,
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
        eval(&self.root, scope).map(|v| truthy(&v))
    }

    /// For a failed check: the part that failed (the first false side of an `and`), with
    /// both sides of a comparison and their values, else every name it reads.
    pub fn explain(&self, scope: &dyn Scope) -> String {
        explain(&self.root, scope)
    }
}

fn explain(node: &Node, scope: &dyn Scope) -> String {
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

fn truthy(v: &Value) -> bool {
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

fn eval<'a>(n: &'a Node, scope: &'a dyn Scope) -> Result<V<'a>, String> {
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
