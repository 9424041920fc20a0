//! The indicator index: every supplier's indicators, by kind, ready to answer lookups.

mod domain;
mod hash;
mod ip;
mod mask;
mod model;
mod parse;
mod table;
mod url;

pub use model::{Indicator, IndicatorKind, Match, Supplier};
pub use parse::{IndicatorError, parse_indicator};
pub use table::{IndexBuilder, IndicatorIndex};
