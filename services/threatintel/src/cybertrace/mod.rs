//! The CyberTrace-compatible TCP service (port 9999): events in, one per line; detections out,
//! on the same socket in ReplyBack mode, else to the log.

mod codec;
mod format;
mod listener;

pub use format::OutputFormats;
pub use listener::serve;
