//! Collector resources: what each collector is (tenant, parsing, linked rules, destinations),
//! checked when saved, kept in redb and read from a snapshot every batch takes afresh — so a
//! change applies from the next batch, without a restart.

mod catalog;
mod validate;

pub use catalog::{CollectorCatalog, CollectorError};
pub use validate::{
    DEFAULT_MAX_EVENT_BYTES, MAX_EVENT_BYTES, MAX_LINKED_RULES, is_field_name, validated,
};
