//! The indicator index: every supplier's indicators, by kind, ready to answer lookups.

mod arena;
mod canonical;
mod context;
mod domain;
mod error;
#[cfg(test)]
mod fuzz;
mod hash;
mod ip;
mod labels;
mod mask;
mod model;
mod parse;
mod percent;
mod table;
mod text_table;
mod url;
mod url_parts;
#[cfg(test)]
mod url_vectors;
mod view;

pub use arena::IndexFull;
pub use context::Context;
pub use error::IndicatorError;
pub use model::{FALSE_POSITIVE, INTERNAL_TI, Indicator, IndicatorKind, Match, Supplier};
pub use parse::{IndicatorKey, parse_indicator};
pub use table::{IndexBuilder, IndicatorIndex, NewRecord};
pub use view::IndexView;
