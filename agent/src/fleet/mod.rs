//! Fleet operations: signed bundles of rule files (and optionally an agent config) pushed over
//! the uplink broker, applied by each gateway on its own, rolled back by the gateway itself
//! when the new version fails, and reported in a retained status message.
//!
//! Why this shape: an operator with hundreds of gateways cannot SSH to each, but a gateway
//! must not run whatever appears on a topic either. So a bundle is signed with an Ed25519 key
//! the gateway trusts ([`keys`]), carries a version that must grow (a replayed old bundle is
//! refused), names its target (a bundle for one group cannot be replayed onto another) and is
//! checked exactly like `weir check` before anything changes on disk. The gateway keeps the
//! previous version ([`store`]) so that it can go back without the operator, who may be the
//! one thing it cannot reach.
//!
//! This room holds the format and the files: [`bundle`] (encoding, hash, signature),
//! [`keys`], [`store`] (versions on disk), [`status`] (the retained report), [`topics`] and
//! [`config`] (`fleet:`). The daemon applies bundles (`daemon::fleet`); `weir push` and
//! `weir keygen` are commands. It imports only `support`, like the outbox and the uplink.

pub mod bundle;
pub mod config;
pub mod hex;
pub mod keys;
pub mod status;
pub mod store;
pub mod topics;

pub use bundle::{Bundle, Refusal};
pub use config::FleetConfig;
pub use keys::{KeyError, TrustedKeys};
pub use status::{Attempt, Outcome, Status};
pub use store::{State, Store, Version};
pub use topics::Target;
