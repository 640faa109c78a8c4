//! Session binding: an `Mcp-Session-Id` belongs to the principal whose `initialize` created
//! it; the same id sent by anyone else (another principal, or nobody) is answered exactly
//! as an unknown session is (404 `Not Found: Session not found`), so a stolen or guessed id
//! is useless and the answer does not even confirm that the session exists.
//!
//! rmcp's session manager knows nothing of principals, so the pipeline learns the owner from
//! the `Mcp-Session-Id` header of the response that created the session, and forgets it
//! when the session is deleted or closed (see [`SessionOwners::retain`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

pub(crate) const SESSION_HEADER: &str = "mcp-session-id";

/// Who created each live session (`None`: a request without a principal).
#[derive(Default)]
pub(crate) struct SessionOwners {
    owners: Mutex<HashMap<String, Option<Arc<str>>>>,
}

impl SessionOwners {
    /// `true` when `principal` may use `session`: it created it, or the session is unknown
    /// here (then rmcp decides, and answers 404 for an id it does not know either).
    pub(crate) fn may_use(&self, session: &str, principal: Option<&Arc<str>>) -> bool {
        let owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        match owners.get(session) {
            Some(owner) => owner.as_ref() == principal,
            None => true,
        }
    }

    pub(crate) fn created(&self, session: String, principal: Option<Arc<str>>) {
        self.owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(session, principal);
    }

    pub(crate) fn ended(&self, session: &str) {
        self.owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(session);
    }

    /// Keeps only the sessions `alive` says still exist (sessions also end by idle timeout).
    pub(crate) fn retain(&self, alive: impl Fn(&str) -> bool) {
        self.owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| alive(id));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The answer rmcp gives for an unknown session, byte for byte.
pub(crate) fn not_found() -> Response {
    let mut r = Response::new(Body::from("Not Found: Session not found"));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_creator_may_use_a_session() {
        let owners = SessionOwners::default();
        let alice: Arc<str> = "alice".into();
        let bob: Arc<str> = "bob".into();
        owners.created("s1".into(), Some(alice.clone()));
        assert!(owners.may_use("s1", Some(&alice)));
        assert!(!owners.may_use("s1", Some(&bob)));
        assert!(!owners.may_use("s1", None));
        assert!(
            owners.may_use("unknown", Some(&bob)),
            "rmcp answers for unknown ids"
        );
        owners.ended("s1");
        assert!(owners.may_use("s1", Some(&bob)));
    }

    #[test]
    fn retain_forgets_sessions_that_ended_elsewhere() {
        let owners = SessionOwners::default();
        owners.created("a".into(), None);
        owners.created("b".into(), None);
        owners.retain(|id| id == "b");
        assert_eq!(owners.len(), 1);
        assert!(owners.may_use("a", Some(&Arc::from("x"))));
    }
}
