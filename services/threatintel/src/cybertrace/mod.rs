//! The CyberTrace-compatible TCP service (port 9999): events in, one per line; detections out,
//! on the same socket in ReplyBack mode, else to the event target (or the log), where service
//! alerts go too.

mod codec;
pub mod events;
mod format;
pub(crate) mod listener;
pub(crate) mod session;

pub use events::{EventSink, EventWriter};
pub use format::OutputFormats;
pub use listener::{ListenerSettings, serve};
