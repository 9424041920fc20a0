//! Searching stored events with KUMA's SQL: the schema every engine shares, the checked query
//! tree, the checker that builds it from the query text, and its SQL for each engine.

pub mod check;
pub mod clickhouse;
pub mod grouped;
pub mod lookup;
pub mod query;
pub mod schema;
pub mod sqlite;
