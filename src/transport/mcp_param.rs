//! `Mcp-Param-*` headers (2026-07-28, Streamable HTTP): a `tools/call` argument whose
//! `inputSchema` property is annotated `"x-mcp-header": "Region"` travels in the body and
//! again as the header `Mcp-Param-Region`, so a load balancer or gateway can route on it
//! without reading the body. Servers check that the two agree: the Python SDK answers a
//! missing, extra or different header with JSON-RPC `-32020` and HTTP 400 (so does rmcp).
//!
//! The rules, as the Python `mcp` package (`mcp/shared/inbound.py`) and rmcp
//! (`transport/common/mcp_headers.rs`) both implement them:
//! - an annotation counts only on a property reached from the schema root through
//!   `properties` keys alone (nested objects included, never under `items`, `anyOf`,
//!   `$defs`, ...);
//! - its value is a non-empty RFC 9110 token, unique across the schema ignoring case, on a
//!   `string`, `integer` or `boolean` property; a schema that breaks any of these is invalid
//!   as a whole, and a client sends no `Mcp-Param-*` header for that tool (the SDKs drop the
//!   tool; mcpstorm still calls it, and the run says why in a warning);
//! - the header carries the argument when it is present and not null: a string as it is,
//!   `true`/`false`, a number in its JSON form; objects and arrays are not sent;
//! - the value is written as plain text when it is visible ASCII without leading or trailing
//!   whitespace, else as `=?base64?BASE64(UTF-8)?=` (the `Mcp-Name` rule, `header_text`).
//!
//! A client knows the annotations from `tools/list`. Every session of a run shares one
//! [`ParamHeaders`], filled from each `tools/list` answer an HTTP session sees in the
//! stateless revision (the run lists the tools before the load starts).
//!
//! Never: send a header for a tool whose schema is invalid, or guess one for a tool that was
//! never listed.

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

const ANNOTATION: &str = "x-mcp-header";
const PREFIX: &str = "mcp-param-";

/// One annotated property: where its value is in the arguments, and the header it goes to.
#[derive(Debug, Clone, PartialEq)]
struct Annotated {
    path: Vec<String>,
    header: HeaderName,
    /// The annotation as declared (`Region`), for people.
    token: String,
}

/// The tools seen in `tools/list` answers, with their annotations. Shared by every
/// session of a run.
#[derive(Debug, Default)]
pub(crate) struct ParamHeaders {
    /// Only tools that have at least one valid annotation; most have none.
    by_tool: RwLock<HashMap<String, Arc<[Annotated]>>>,
}

impl ParamHeaders {
    /// Take in one `tools/list` result (one page): each listed tool's annotations replace
    /// what was known of it.
    pub fn learn(&self, tools_list_result: &Value) {
        let Some(tools) = tools_list_result.get("tools").and_then(Value::as_array) else {
            return;
        };
        let Ok(mut by_tool) = self.by_tool.write() else {
            return;
        };
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            match annotations(tool.get("inputSchema").unwrap_or(&Value::Null)) {
                Ok(list) if !list.is_empty() => {
                    by_tool.insert(name.to_string(), list.into());
                }
                _ => {
                    by_tool.remove(name);
                }
            }
        }
    }

    /// The `Mcp-Param-*` headers for a call of `tool` with `arguments`.
    pub fn headers(&self, tool: &str, arguments: Option<&Value>) -> Vec<(HeaderName, HeaderValue)> {
        let Some(arguments) = arguments else {
            return Vec::new();
        };
        let list = match self.by_tool.read() {
            Ok(by_tool) => match by_tool.get(tool) {
                Some(list) => list.clone(),
                None => return Vec::new(),
            },
            Err(_) => return Vec::new(),
        };
        list.iter()
            .filter_map(|a| {
                let value = a
                    .path
                    .iter()
                    .try_fold(arguments, |node, key| node.as_object()?.get(key))?;
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                let value = HeaderValue::from_str(&super::http::header_text(&text)).ok()?;
                Some((a.header.clone(), value))
            })
            .collect()
    }
}

/// Why the `x-mcp-header` annotations of each listed tool are invalid, one line per tool:
/// for the run's warnings.
pub(crate) fn invalid_tools(tools: &[Value]) -> Vec<String> {
    tools
        .iter()
        .filter_map(|t| {
            let name = t.get("name").and_then(Value::as_str)?;
            let reason = annotations(t.get("inputSchema").unwrap_or(&Value::Null)).err()?;
            Some(format!(
                "tool `{name}` has an invalid x-mcp-header annotation ({reason}); its calls carry no Mcp-Param-* header, and SDK clients would not call it at all"
            ))
        })
        .collect()
}

/// One line for `mcpstorm check` about a tool's annotations: which argument goes to which
/// header, or why none does. `None` for a tool without annotations.
pub(crate) fn describe(input_schema: &Value) -> Option<String> {
    match annotations(input_schema) {
        Ok(list) if list.is_empty() => None,
        Ok(list) => {
            let pairs: Vec<String> = list
                .iter()
                .map(|a| format!("{} -> Mcp-Param-{}", a.path.join("."), a.token))
                .collect();
            Some(format!(
                "headers (2026-07-28 over HTTP): {}",
                pairs.join(", ")
            ))
        }
        Err(reason) => Some(format!(
            "invalid x-mcp-header annotation: {reason}; SDK clients drop this tool in 2026-07-28"
        )),
    }
}

/// The annotations of one `inputSchema`, or why they are invalid.
fn annotations(schema: &Value) -> Result<Vec<Annotated>, String> {
    if schema.get(ANNOTATION).is_some() {
        return Err("x-mcp-header on the schema root; it belongs on a property".into());
    }
    if off_chain(schema, true) {
        return Err(
            "x-mcp-header on a schema reached through something other than `properties` (items, anyOf, $defs, ...)"
                .into(),
        );
    }
    let mut found = Vec::new();
    collect(schema, &mut Vec::new(), &mut found);
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for (path, property) in found {
        let at = path.join(".");
        let Some(token) = property.get(ANNOTATION).and_then(Value::as_str) else {
            return Err(format!("property `{at}`: x-mcp-header must be a string"));
        };
        if token.is_empty() || !token.chars().all(is_tchar) {
            return Err(format!(
                "property `{at}`: x-mcp-header `{token}` is not an HTTP token"
            ));
        }
        match property.get("type").and_then(Value::as_str) {
            Some("string" | "integer" | "boolean") => {}
            other => {
                return Err(format!(
                    "property `{at}`: x-mcp-header needs type string, integer or boolean, not {}",
                    other.map_or("a missing or non-string type".to_string(), |t| format!(
                        "`{t}`"
                    ))
                ));
            }
        }
        if let Some(first) = seen.insert(token.to_ascii_lowercase(), at.clone()) {
            return Err(format!(
                "property `{at}`: x-mcp-header `{token}` is also on `{first}` (case-insensitive)"
            ));
        }
        let header = HeaderName::from_bytes(format!("{PREFIX}{token}").as_bytes())
            .map_err(|e| format!("property `{at}`: {e}"))?;
        out.push(Annotated {
            path,
            header,
            token: token.to_string(),
        });
    }
    Ok(out)
}

/// Every property carrying an annotation along `properties` chains, with its path.
fn collect<'a>(schema: &'a Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, &'a Value)>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, property) in properties {
        path.push(name.clone());
        if property.get(ANNOTATION).is_some() {
            out.push((path.clone(), property));
        }
        collect(property, path, out);
        path.pop();
    }
}

/// Is there an annotation anywhere but on a `properties` chain? `on_chain`: `schema` is the
/// root or a property reached through `properties` alone. Keywords that hold data (`enum`,
/// `default`, ...) are not schemas and are not entered.
fn off_chain(schema: &Value, on_chain: bool) -> bool {
    let Some(obj) = schema.as_object() else {
        return false;
    };
    obj.iter().any(|(key, value)| match key.as_str() {
        ANNOTATION => !on_chain,
        "properties" => value
            .as_object()
            .is_some_and(|m| m.values().any(|p| off_chain(p, on_chain))),
        "default" | "const" | "enum" | "examples" | "dependentRequired" | "required" => false,
        "$defs" | "definitions" | "patternProperties" | "dependentSchemas" | "dependencies" => {
            value
                .as_object()
                .is_some_and(|m| m.values().any(|s| off_chain(s, false)))
        }
        _ => match value {
            Value::Object(_) => off_chain(value, false),
            Value::Array(items) => items.iter().any(|s| off_chain(s, false)),
            _ => false,
        },
    })
}

/// RFC 9110 token character.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(tools: Value) -> ParamHeaders {
        let p = ParamHeaders::default();
        p.learn(&json!({ "tools": tools }));
        p
    }

    fn sent(p: &ParamHeaders, tool: &str, args: Value) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = p
            .headers(tool, Some(&args))
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        h.sort();
        h
    }

    fn route_tool() -> Value {
        json!([{ "name": "route", "inputSchema": { "type": "object", "properties": {
            "region": { "type": "string", "x-mcp-header": "Region" },
            "priority": { "type": "integer", "x-mcp-header": "Priority" },
            "urgent": { "type": "boolean", "x-mcp-header": "Urgent" },
            "target": { "type": "object", "properties": {
                "tenant": { "type": "string", "x-mcp-header": "Tenant" } } },
            "note": { "type": "string" } } } }])
    }

    #[test]
    fn annotated_arguments_become_headers_with_their_json_text() {
        let p = list(route_tool());
        assert_eq!(
            sent(
                &p,
                "route",
                json!({"region": "eu-west-1", "priority": 3, "urgent": true,
                       "target": {"tenant": "acme"}, "note": "not a header"})
            ),
            vec![
                ("mcp-param-priority".into(), "3".into()),
                ("mcp-param-region".into(), "eu-west-1".into()),
                ("mcp-param-tenant".into(), "acme".into()),
                ("mcp-param-urgent".into(), "true".into()),
            ]
        );
        assert!(
            sent(&p, "other", json!({"region": "x"})).is_empty(),
            "a tool never listed gets no header"
        );
    }

    #[test]
    fn absent_null_and_composite_values_are_not_sent() {
        let p = list(route_tool());
        assert_eq!(
            sent(
                &p,
                "route",
                json!({"region": null, "priority": [1], "target": "flat"})
            ),
            Vec::<(String, String)>::new()
        );
        assert_eq!(
            sent(&p, "route", json!({"priority": 2.0})),
            vec![("mcp-param-priority".into(), "2.0".into())],
            "a number keeps its JSON form"
        );
    }

    #[test]
    fn values_that_are_not_plain_ascii_are_base64_wrapped() {
        let p = list(route_tool());
        let h = sent(&p, "route", json!({"region": "Zürich"}));
        assert_eq!(h[0].1, "=?base64?WsO8cmljaA==?=");
        let h = sent(&p, "route", json!({"region": " padded "}));
        assert_eq!(h[0].1, "=?base64?IHBhZGRlZCA=?=");
        let h = sent(&p, "route", json!({"region": "=?base64?abc?="}));
        assert!(h[0].1.starts_with("=?base64?PT9iYXNlNjQ/"), "{h:?}");
        let h = sent(&p, "route", json!({"region": ""}));
        assert_eq!(h[0].1, "", "an empty string is sent empty");
    }

    #[test]
    fn invalid_annotations_make_the_whole_tool_headerless() {
        for (schema, why) in [
            (
                json!({"type": "object", "x-mcp-header": "Root"}),
                "schema root",
            ),
            (
                json!({"properties": {"tags": {"type": "array", "items": {"type": "string", "x-mcp-header": "Tag"}}}}),
                "other than `properties`",
            ),
            (
                json!({"properties": {"a": {"type": "string", "x-mcp-header": "A"}}, "$defs": {"B": {"type": "string", "x-mcp-header": "B"}}}),
                "other than `properties`",
            ),
            (
                json!({"properties": {"a": {"type": "number", "x-mcp-header": "A"}}}),
                "`number`",
            ),
            (
                json!({"properties": {"a": {"type": "string", "x-mcp-header": "Bad Name"}}}),
                "not an HTTP token",
            ),
            (
                json!({"properties": {"a": {"type": "string", "x-mcp-header": ""}}}),
                "not an HTTP token",
            ),
            (
                json!({"properties": {"a": {"type": "string", "x-mcp-header": 7}}}),
                "must be a string",
            ),
            (
                json!({"properties": {"a": {"type": "string", "x-mcp-header": "Id"}, "b": {"type": "string", "x-mcp-header": "ID"}}}),
                "case-insensitive",
            ),
        ] {
            let err = annotations(&schema).unwrap_err();
            assert!(err.contains(why), "{schema}: {err}");
            let p = list(json!([{"name": "t", "inputSchema": schema}]));
            assert!(sent(&p, "t", json!({"a": "x", "b": "y"})).is_empty());
        }
        let warnings = invalid_tools(&[
            json!({"name": "bad", "inputSchema": {"properties": {"a": {"type": "number", "x-mcp-header": "A"}}}}),
            json!({"name": "good", "inputSchema": {"properties": {"a": {"type": "string"}}}}),
        ]);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("tool `bad`"), "{warnings:?}");
    }

    #[test]
    fn check_describes_each_tools_headers() {
        let tools = route_tool();
        let line = describe(&tools[0]["inputSchema"]).unwrap();
        assert!(
            line.contains("region -> Mcp-Param-Region")
                && line.contains("target.tenant -> Mcp-Param-Tenant"),
            "{line}"
        );
        assert_eq!(
            describe(&json!({"properties": {"a": {"type": "string"}}})),
            None
        );
        let bad = describe(&json!({"x-mcp-header": "A"})).unwrap();
        assert!(bad.contains("invalid"), "{bad}");
    }

    #[test]
    fn data_keywords_are_not_schemas() {
        let schema = json!({"properties": {"a": {"type": "string", "x-mcp-header": "A",
            "default": {"x-mcp-header": "not a schema"}, "enum": [{"x-mcp-header": 1}]}}});
        assert_eq!(annotations(&schema).unwrap().len(), 1);
    }

    #[test]
    fn a_new_listing_replaces_what_was_known() {
        let p = list(route_tool());
        p.learn(&json!({"tools": [{"name": "route", "inputSchema": {"properties": {}}}]}));
        assert!(sent(&p, "route", json!({"region": "x"})).is_empty());
    }
}
