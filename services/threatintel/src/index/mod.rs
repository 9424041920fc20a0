//! The indicator index: every supplier's indicators, by kind, ready to answer lookups.

mod domain;
#[cfg(test)]
mod fuzz;
mod hash;
mod ip;
mod mask;
mod model;
mod parse;
mod table;
mod url;
mod view;

pub use model::{FALSE_POSITIVE, INTERNAL_TI, Indicator, IndicatorKind, Match, Supplier};
pub use parse::{IndicatorError, IndicatorKey, parse_indicator};
pub use table::{IndexBuilder, IndicatorIndex};
pub use view::IndexView;
