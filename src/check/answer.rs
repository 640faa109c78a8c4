//! Response checks: is an answer right, not only fast? Each `[[mix]]` entry may say what a
//! correct answer is (`expect`: a literal; `check`: an expression over the arguments as sent
//! and the answer), and a tool that declares an `outputSchema` in `tools/list` has its
//! `structuredContent` validated against it on every call. A failed check is a failed call of
//! kind `wrong_answer` (`schema_mismatch` for the schema), with the expected and the actual
//! value in the sample.
//!
//! Everything is parsed and compiled before the run; per call this only reads the answer.
//! It never sends anything and never decides the verdict (criteria do).

use super::expr::{Expr, Name, Scope, loose_eq};
use crate::error::{CallError, excerpt};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// What one operation's answers must satisfy.
#[derive(Debug, Clone)]
pub struct AnswerCheck {
    /// The answer (as `result`, `structured` or `text`) must equal this.
    pub expect: Option<Value>,
    pub expr: Option<Expr>,
}

impl AnswerCheck {
    /// A check that reads `isError` judges error results itself (a negative test: "this
    /// bad input must be refused"); otherwise an `isError` result is a `tool_error` as usual.
    fn judges_errors(&self) -> bool {
        self.expr.as_ref().is_some_and(|e| e.uses(&Name::IsError))
    }

    fn needs_result(&self) -> bool {
        self.expect.is_some() || self.expr.as_ref().is_some_and(|e| e.uses(&Name::Result))
    }

    fn needs_text(&self) -> bool {
        self.expect.is_some()
            || self
                .expr
                .as_ref()
                .is_some_and(|e| e.uses(&Name::Text) || e.uses(&Name::Result))
    }
}

/// What the names of a check are bound to for one answer.
///
/// For `tools/call`: `text` is every text content block joined; `result` is that text read
/// as JSON when it is JSON (so "5" is the number 5), else the text itself, and with no text
/// block the `structuredContent` (unwrapped from FastMCP's `{"result": x}`); `structured` is
/// `structuredContent` (null when absent); `content` the content array; `isError` a bool.
/// For other operations `result` is the JSON-RPC result as it came, and `text` the text of
/// its `contents` (resources/read) or `messages` (prompts/get).
/// `args` is the arguments object as sent (after templating), each argument also by name.
pub struct Bindings<'a> {
    result: Value,
    /// A `Value::String`, so reading it costs no copy.
    text: Value,
    structured: &'a Value,
    content: &'a Value,
    is_error: Value,
    args: &'a Value,
}

static NULL: Value = Value::Null;

impl<'a> Bindings<'a> {
    /// Bind the names for one answer; `text` and `result` are only worked out when the
    /// check reads them (they cost a copy and a parse).
    pub fn new(
        method: &str,
        raw: &'a Value,
        args: &'a Value,
        with_text: bool,
        with_result: bool,
    ) -> Self {
        let text = if with_text {
            text_of(method, raw)
        } else {
            String::new()
        };
        let structured = raw.get("structuredContent").unwrap_or(&NULL);
        let result = if !with_result {
            Value::Null
        } else if method != "tools/call" {
            raw.clone()
        } else if has_text(raw) {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
        } else {
            match structured {
                Value::Object(o) if o.len() == 1 && o.contains_key("result") => o["result"].clone(),
                other => other.clone(),
            }
        };
        Bindings {
            result,
            text: Value::String(text),
            structured,
            content: raw.get("content").unwrap_or(&NULL),
            is_error: Value::Bool(raw.get("isError").and_then(Value::as_bool) == Some(true)),
            args,
        }
    }
}

impl Scope for Bindings<'_> {
    fn get(&self, name: &Name) -> Cow<'_, Value> {
        Cow::Borrowed(match name {
            Name::Result => &self.result,
            Name::Text => &self.text,
            Name::Structured => self.structured,
            Name::IsError => &self.is_error,
            Name::Content => self.content,
            Name::Args => self.args,
            Name::Arg(a) => self.args.get(a).unwrap_or(&NULL),
        })
    }
}

fn has_text(raw: &Value) -> bool {
    raw.get("content")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|b| b.get("text").is_some_and(Value::is_string))
        })
}

/// The text an answer carries, joined.
pub fn text_of(method: &str, raw: &Value) -> String {
    let blocks: Box<dyn Iterator<Item = &Value>> = match method {
        "resources/read" => Box::new(
            raw.get("contents")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        ),
        "prompts/get" => Box::new(
            raw.get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| m.get("content")),
        ),
        _ => Box::new(
            raw.get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        ),
    };
    blocks
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect()
}

/// A tool's declared `outputSchema`, compiled once.
pub type OutputSchema = Arc<jsonschema::Validator>;

/// Compile the `outputSchema` of every tool that declares one; a schema that does not
/// compile is left out with a warning (the server's bug, but not one to stop a load test on).
pub fn output_schemas(tools: &[Value]) -> (HashMap<String, OutputSchema>, Vec<String>) {
    let mut out = HashMap::new();
    let mut warnings = Vec::new();
    for t in tools {
        let (Some(name), Some(schema)) = (
            t.get("name").and_then(Value::as_str),
            t.get("outputSchema").filter(|s| !s.is_null()),
        ) else {
            continue;
        };
        match jsonschema::validator_for(schema) {
            Ok(v) => {
                out.insert(name.to_string(), Arc::new(v));
            }
            Err(e) => warnings.push(format!(
                "the outputSchema of tool `{name}` is not a valid JSON Schema ({}); its answers are not validated",
                excerpt(&e.to_string(), 160)
            )),
        }
    }
    (out, warnings)
}

/// Judge one answer: the JSON-RPC result of `method`, called with `args`.
pub fn judge(
    method: &str,
    raw: &Value,
    args: Option<&Value>,
    check: Option<&AnswerCheck>,
    schema: Option<&OutputSchema>,
) -> Result<(), CallError> {
    let is_error =
        method == "tools/call" && raw.get("isError").and_then(Value::as_bool) == Some(true);
    if method == "tools/call" {
        if is_error && !check.is_some_and(AnswerCheck::judges_errors) {
            let text = raw
                .get("content")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find_map(|b| b.get("text").and_then(Value::as_str)))
                .unwrap_or("(no text)");
            return Err(CallError::ToolError {
                text: excerpt(text, 200),
            });
        }
        if !raw.get("content").is_some_and(Value::is_array) {
            return Err(CallError::Protocol {
                detail: "the tools/call result has no `content` array".into(),
            });
        }
        if let Some(schema) = schema.filter(|_| !is_error) {
            validate_structured(raw, schema)?;
        }
    }
    let Some(check) = check else { return Ok(()) };
    let args = args.unwrap_or(&NULL);
    let b = Bindings::new(method, raw, args, check.needs_text(), check.needs_result());
    if let Some(want) = &check.expect {
        let matches = loose_eq(&b.result, want)
            || (!b.structured.is_null() && loose_eq(b.structured, want))
            || (want.is_string() && loose_eq(&b.text, want));
        if !matches {
            return Err(CallError::WrongAnswer {
                detail: format!(
                    "expected {}, got {}",
                    excerpt(&want.to_string(), 160),
                    excerpt(&b.result.to_string(), 160)
                ),
            });
        }
    }
    if let Some(expr) = &check.expr {
        let verdict = expr.test(&b);
        if verdict != Ok(true) {
            let why = match verdict {
                Err(e) => format!("cannot be evaluated: {e}"),
                _ => "is false".into(),
            };
            return Err(CallError::WrongAnswer {
                detail: format!(
                    "check `{}` {why}: {}; arguments {}",
                    expr.source,
                    expr.explain(&b),
                    excerpt(&args.to_string(), 120)
                ),
            });
        }
    }
    Ok(())
}

fn validate_structured(raw: &Value, schema: &OutputSchema) -> Result<(), CallError> {
    let Some(structured) = raw.get("structuredContent") else {
        return Err(CallError::SchemaMismatch {
            detail: "the tool declares an outputSchema but the answer has no structuredContent"
                .into(),
        });
    };
    if schema.is_valid(structured) {
        return Ok(());
    }
    let first = schema
        .iter_errors(structured)
        .next()
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("at `{}`: {e}", if at.is_empty() { "/".into() } else { at })
        })
        .unwrap_or_default();
    Err(CallError::SchemaMismatch {
        detail: format!(
            "{}; structuredContent {}",
            excerpt(&first, 200),
            excerpt(&structured.to_string(), 120)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expr(src: &str, args: &[&str]) -> AnswerCheck {
        let names: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        AnswerCheck {
            expect: None,
            expr: Some(Expr::parse(src, &names).unwrap()),
        }
    }

    fn add_result(sum: i64) -> Value {
        json!({"content": [{"type": "text", "text": sum.to_string()}], "structuredContent": {"sum": sum}})
    }

    #[test]
    fn tool_errors_and_shapeless_results_fail() {
        assert!(
            judge(
                "tools/call",
                &json!({"content": [{"type": "text", "text": "ok"}]}),
                None,
                None,
                None
            )
            .is_ok()
        );
        let e = judge(
            "tools/call",
            &json!({"isError": true, "content": [{"type": "text", "text": "boom"}]}),
            None,
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "tool returned isError: boom");
        assert!(matches!(
            judge("tools/call", &json!({}), None, None, None),
            Err(CallError::Protocol { .. })
        ));
    }

    #[test]
    fn a_wrong_sum_is_a_wrong_answer_with_both_sides() {
        let c = expr("result == a + b", &["a", "b"]);
        let args = json!({"a": 2, "b": 3});
        assert!(judge("tools/call", &add_result(5), Some(&args), Some(&c), None).is_ok());
        let e = judge("tools/call", &add_result(6), Some(&args), Some(&c), None).unwrap_err();
        assert!(matches!(e, CallError::WrongAnswer { .. }));
        let msg = e.to_string();
        assert!(msg.contains("result = 6; a + b = 5"), "{msg}");
        assert!(msg.contains(r#"{"a":2,"b":3}"#), "{msg}");
    }

    #[test]
    fn literals_match_result_structured_or_text() {
        let lit = |v: Value| AnswerCheck {
            expect: Some(v),
            expr: None,
        };
        let r = add_result(5);
        for ok in [json!(5), json!({"sum": 5}), json!("5")] {
            assert!(
                judge("tools/call", &r, None, Some(&lit(ok.clone())), None).is_ok(),
                "{ok}"
            );
        }
        let e = judge("tools/call", &r, None, Some(&lit(json!(4))), None).unwrap_err();
        assert_eq!(e.to_string(), "wrong answer: expected 4, got 5");
        // FastMCP wraps a primitive return as {"result": x}; with no text, that is `result`.
        let fast = json!({"content": [], "structuredContent": {"result": "hi"}});
        assert!(judge("tools/call", &fast, None, Some(&lit(json!("hi"))), None).is_ok());
    }

    #[test]
    fn a_check_on_is_error_judges_error_results() {
        let bad = json!({"isError": true, "content": [{"type": "text", "text": "invalid parameters: x"}]});
        let c = expr("isError and text contains 'invalid'", &[]);
        assert!(judge("tools/call", &bad, None, Some(&c), None).is_ok());
        let ok = json!({"content": [{"type": "text", "text": "fine"}]});
        assert!(matches!(
            judge("tools/call", &ok, None, Some(&c), None),
            Err(CallError::WrongAnswer { .. })
        ));
    }

    #[test]
    fn output_schema_is_enforced() {
        let tools = vec![
            json!({"name": "add", "outputSchema": {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]}}),
            json!({"name": "broken", "outputSchema": {"type": 12}}),
            json!({"name": "plain"}),
        ];
        let (schemas, warnings) = output_schemas(&tools);
        assert_eq!(schemas.len(), 1);
        assert!(warnings[0].contains("`broken`"), "{warnings:?}");
        let s = &schemas["add"];
        assert!(judge("tools/call", &add_result(5), None, None, Some(s)).is_ok());
        let wrong = json!({"content": [], "structuredContent": {"sum": "five"}});
        let e = judge("tools/call", &wrong, None, None, Some(s)).unwrap_err();
        assert!(matches!(e, CallError::SchemaMismatch { .. }), "{e}");
        assert!(e.to_string().contains("/sum"), "{e}");
        let missing = json!({"content": [{"type": "text", "text": "5"}]});
        assert!(matches!(
            judge("tools/call", &missing, None, None, Some(s)),
            Err(CallError::SchemaMismatch { .. })
        ));
    }

    #[test]
    fn other_operations_bind_their_text() {
        let read = json!({"contents": [{"uri": "x", "text": "mcpstorm reference server 0.1"}]});
        let c = expr("text startswith 'mcpstorm'", &[]);
        assert!(judge("resources/read", &read, None, Some(&c), None).is_ok());
        let prompt = json!({"messages": [{"role": "user", "content": {"type": "text", "text": "Say hello to Ada."}}]});
        let c = expr("text contains 'Ada' and len(result.messages) == 1", &[]);
        assert!(judge("prompts/get", &prompt, None, Some(&c), None).is_ok());
    }
}
