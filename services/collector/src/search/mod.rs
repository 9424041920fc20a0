//! Searching stored events with KUMA's SQL: the schema every engine shares, the checked query
//! tree, and the checker that builds it from the query text.

pub mod check;
pub mod grouped;
pub mod query;
pub mod schema;
pub mod sqlite;
