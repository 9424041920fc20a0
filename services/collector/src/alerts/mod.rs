//! The "alerts" destination: the events of a batch that pass a collector's alert filter
//! (`filter`), kept in a disk buffer of their own and sent to the playbook service at least
//! once (`outbox`).

mod filter;
mod outbox;

pub use filter::{AlertFilters, compile, passing};
pub use outbox::AlertOutbox;
