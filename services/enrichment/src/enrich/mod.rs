//! Enriching event batches: the enricher (rules' gatherings and sources, one batch at a
//! time) and what the rules want of a batch and give back.

mod batch;
mod enricher;

pub use enricher::{Enricher, InvalidEvent};
