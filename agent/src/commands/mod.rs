//! The one-shot commands: each reads what it needs, does one job and exits.

pub mod check;
pub mod eval;
pub mod keygen;
pub mod learn;
pub mod outbox;
pub mod push;
pub mod replay;
pub mod status;
