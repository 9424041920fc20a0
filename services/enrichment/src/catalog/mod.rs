//! Rules, saved filters and resources: kept in the service's embedded store, read from a
//! snapshot, and compiled into the set of active rules that every stream reads. A change is
//! saved first, then published whole: a running stream takes it from its next batch, with
//! nothing lost or done twice.

mod active;
mod changes;
mod error;
mod filters;
mod records;
mod resources;
mod rules;
mod store;

pub use active::{ActiveRule, ActiveRules};
pub use changes::{Catalog, SharedCatalog};
pub use error::CatalogError;
pub use records::Records;
