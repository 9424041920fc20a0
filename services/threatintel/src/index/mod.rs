//! The indicator index: every supplier's indicators, by kind, ready to answer lookups.

mod domain;
mod hash;
mod ip;
mod mask;
mod model;
mod parse;
mod table;
mod url;

pub use model::{FALSE_POSITIVE, INTERNAL_TI, Indicator, IndicatorKind, Match, Supplier};
pub use parse::{IndicatorError, MAX_VALUE_LEN};
pub use table::{IndexBuilder, IndexStats, IndicatorIndex};
pub use url::normalize_url;
