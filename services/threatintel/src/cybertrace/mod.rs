//! The CyberTrace-compatible TCP service (port 9999): events in, one per line; detections out,
//! on the same socket in ReplyBack mode, else to the event target (or the log), where service
//! alerts go too. The protocol's formats are `xdr_cybertrace`'s, shared with the enrichment
//! service's client.

pub mod events;
pub(crate) mod listener;
pub(crate) mod session;

pub use events::{EventSink, EventWriter};
pub use listener::{ListenerSettings, serve};
pub use xdr_cybertrace::format::OutputFormats;
