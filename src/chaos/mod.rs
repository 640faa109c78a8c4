//! Chaos: what a run does to the world around the target on purpose. This module holds
//! mcpstorm's own TCP fault proxy and its toxics, after Toxiproxy: a [`Proxy`] sits between
//! clients and a server (or between a server and its database), forwards bytes both ways,
//! and applies toxics ([`ToxicSpec`]) that can be added and removed while connections are live.
//!
//! - [`proxy`] accepts connections and owns every task it starts; dropping the handle ends them.
//! - `pump` moves one direction of one connection: a plain copy loop while no toxic applies,
//!   a small scheduler of timed pieces while one does.
//! - [`toxics`] is the family of toxics: one trait, one file per toxic, one registry line each.
//!
//! This module never decides *when* a fault happens (the fault schedule does) and never
//! records figures of the run (the recorder does); it only reports its own byte and
//! connection counts through [`ProxyStats`].

pub mod proxy;
mod pump;
pub mod toxics;

pub use proxy::{Proxy, ProxyStats};
pub use toxics::{Stream, ToxicError, ToxicProblem, ToxicSpec};
