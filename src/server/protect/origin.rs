//! Which browser origins may talk to the server, and CORS.
//!
//! `Origin` (and `Host`, against DNS rebinding) are checked by rmcp itself; this module turns
//! the flags into rmcp's allow-list (the pipeline logs rmcp's 403s as security events), builds the
//! CORS layer when `--cors-origins` asks for one. By default only loopback origins (any
//! port) are accepted and no CORS headers are sent. Requests without `Origin` (every
//! non-browser client) always pass, as the MCP specification intends.

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Which `Origin` headers are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// No check (`--no-origin-check`, or `--allowed-origins '*'`).
    Off,
    /// `http(s)://localhost`, `127.0.0.1` and `[::1]`, any port: the default.
    Loopback,
    /// Exactly these (`scheme://host[:port]`, `:*` for any port, or `null`).
    List(Vec<String>),
}

const LOOPBACK: [&str; 6] = [
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://[::1]:*",
];

impl OriginPolicy {
    /// Parses `--allowed-origins`: a comma list, or `*` for any origin.
    pub fn parse(list: &str) -> Result<OriginPolicy, String> {
        let entries: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if entries.iter().any(|e| e == "*") {
            return Ok(OriginPolicy::Off);
        }
        if entries.is_empty() {
            return Err("give at least one origin, like https://app.example.com, or `*`".into());
        }
        let bad: Vec<&str> = entries
            .iter()
            .filter(|e| !is_origin_pattern(e))
            .map(String::as_str)
            .collect();
        if !bad.is_empty() {
            return Err(format!(
                "{} is not an origin; write scheme://host[:port], with :* for any port (e.g. http://localhost:*), or null",
                bad.join(", ")
            ));
        }
        Ok(OriginPolicy::List(entries))
    }

    /// The list rmcp checks against, with `extra` (the CORS origins) allowed too; `None`
    /// when nothing is checked.
    pub(crate) fn allow_list(&self, extra: &[String]) -> Option<Vec<String>> {
        let mut list: Vec<String> = match self {
            OriginPolicy::Off => return None,
            OriginPolicy::Loopback => LOOPBACK.iter().map(|s| (*s).to_owned()).collect(),
            OriginPolicy::List(l) => l.clone(),
        };
        list.extend(extra.iter().filter(|e| *e != "*").cloned());
        Some(list)
    }
}

/// `scheme://host[:port]`, `scheme://host:*` or `null`.
fn is_origin_pattern(s: &str) -> bool {
    if s.eq_ignore_ascii_case("null") {
        return true;
    }
    let base = s.strip_suffix(":*").unwrap_or(s);
    match base.parse::<axum::http::Uri>() {
        Ok(uri) => {
            uri.scheme().is_some()
                && uri.host().is_some_and(|h| !h.is_empty())
                && uri
                    .path_and_query()
                    .is_none_or(|p| p.as_str() == "/" && !s.ends_with('/'))
        }
        Err(_) => false,
    }
}

/// Parses `--cors-origins`: exact origins (`https://app.example.com`), or `*`.
pub fn parse_cors(list: &str) -> Result<Vec<String>, String> {
    let entries: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let bad: Vec<&str> = entries
        .iter()
        .filter(|e| {
            *e != "*"
                && (e.ends_with(":*") || !is_origin_pattern(e) || HeaderValue::from_str(e).is_err())
        })
        .map(String::as_str)
        .collect();
    if !bad.is_empty() {
        return Err(format!(
            "{} is not an exact origin; write scheme://host[:port] (e.g. https://app.example.com) or `*`",
            bad.join(", ")
        ));
    }
    Ok(entries)
}

/// The CORS layer for `origins` (validated by [`parse_cors`]).
pub(crate) fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::AUTHORIZATION,
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            HeaderName::from_static("mcp-session-id"),
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
        ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_lists_are_validated() {
        assert_eq!(OriginPolicy::parse("*").unwrap(), OriginPolicy::Off);
        assert_eq!(
            OriginPolicy::parse("https://app.example.com, http://localhost:*").unwrap(),
            OriginPolicy::List(vec![
                "https://app.example.com".into(),
                "http://localhost:*".into()
            ])
        );
        let e = OriginPolicy::parse("app.example.com,https://ok.example").unwrap_err();
        assert!(e.starts_with("app.example.com is not an origin"), "{e}");
        assert!(OriginPolicy::parse("https://x.example/path").is_err());
        assert!(OriginPolicy::parse(" , ").is_err());
    }

    #[test]
    fn cors_origins_are_added_to_the_allow_list() {
        let l = OriginPolicy::Loopback
            .allow_list(&["https://app.example.com".into()])
            .unwrap();
        assert!(l.contains(&"http://127.0.0.1:*".to_string()));
        assert!(l.contains(&"https://app.example.com".to_string()));
        assert_eq!(OriginPolicy::Off.allow_list(&[]), None);
    }

    #[test]
    fn cors_needs_exact_origins() {
        assert!(parse_cors("https://app.example.com,*").is_ok());
        assert!(parse_cors("http://localhost:*").is_err());
        assert!(parse_cors("localhost").is_err());
    }
}
