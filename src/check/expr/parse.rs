//! The lexer and the recursive-descent parser of check expressions: text in, a [`Node`]
//! tree out, or a [`ParseError`] with the column. Names are resolved here, once.

use super::{BinOp, Func, Name, Node, ParseError};
use serde_json::Value;

/// Parse `src`; `args` are the argument names the expression may read directly.
pub(super) fn parse(src: &str, args: &[String]) -> Result<Node, ParseError> {
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
    Ok(root)
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
