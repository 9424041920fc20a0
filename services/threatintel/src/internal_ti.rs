//! Indicators analysts add at run time (`InternalTI`, `FalsePositive`) and supplier settings
//! they change, kept in the service's embedded store so they survive a restart.
//!
//! Indicators are keyed `supplier ␟ kind ␟ canonical value ␟ category`, so every spelling of
//! one value is one entry, and removing a value is a prefix range.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use xdr_mesh::{
    error::{ErrorCode, ServiceError},
    store::StoreFailure,
};

use crate::index::{Indicator, IndicatorKey, IndicatorKind, Supplier};

const INDICATORS: TableDefinition<&str, &str> = TableDefinition::new("indicators");
const SUPPLIERS: TableDefinition<&str, &str> = TableDefinition::new("suppliers");
/// Remote suppliers an operator added with `UpsertSupplier`: their settings as JSON (names of
/// credentials, never their contents), by supplier.
const REMOTE_SOURCES: TableDefinition<&str, &str> = TableDefinition::new("remote_sources");
const SEP: char = '\u{1f}';

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening the Internal TI store {path}: {source}")]
    Open {
        path: String,
        source: redb::DatabaseError,
    },
    #[error("Internal TI store: {0}")]
    Db(#[from] StoreFailure),
    #[error("Internal TI store holds an unreadable entry `{key}`: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("Internal TI would hold {would_hold} entries; at most {max}: remove some first")]
    Full { would_hold: u64, max: u64 },
}

/// Internal TI and FalsePositive entries, at most: each change rebuilds the runtime index from
/// all of them.
pub const MAX_ENTRIES: u64 = 1_000_000;

#[derive(Serialize, Deserialize)]
struct StoredIndicator {
    value: String,
    kind: String,
    category: String,
    supplier: String,
    context: Vec<(String, String)>,
    tags: Vec<String>,
    last_seen_ms: i64,
    expires_at_ms: i64,
    exact: bool,
}

#[derive(Serialize, Deserialize)]
struct StoredSupplier {
    confidence: u8,
    retention_minutes: u32,
    description: String,
}

fn kind_from(name: &str) -> Option<IndicatorKind> {
    [
        IndicatorKind::Ip,
        IndicatorKind::Url,
        IndicatorKind::Domain,
        IndicatorKind::Hash,
    ]
    .into_iter()
    .find(|k| k.name() == name)
}

fn value_prefix(supplier: &str, key: &IndicatorKey) -> String {
    format!(
        "{supplier}{SEP}{}{SEP}{}{SEP}",
        key.kind().name(),
        key.canonical()
    )
}

pub struct InternalTi {
    db: Database,
    max_entries: u64,
}

impl InternalTi {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        // Create the tables so readers of a fresh store find them.
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(INDICATORS).map_err(db_err)?;
        txn.open_table(SUPPLIERS).map_err(db_err)?;
        txn.open_table(REMOTE_SOURCES).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(InternalTi {
            db,
            max_entries: MAX_ENTRIES,
        })
    }

    pub fn indicators(&self) -> Result<Vec<Indicator>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(INDICATORS).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            let corrupt = |reason: String| StoreError::Corrupt {
                key: key.value().to_owned(),
                reason,
            };
            let stored: StoredIndicator =
                serde_json::from_str(value.value()).map_err(|e| corrupt(e.to_string()))?;
            out.push(Indicator {
                kind: Some(
                    kind_from(&stored.kind)
                        .ok_or_else(|| corrupt(format!("unknown kind {}", stored.kind)))?,
                ),
                value: stored.value,
                category: stored.category,
                supplier: stored.supplier,
                context: stored.context,
                tags: stored.tags,
                last_seen_ms: stored.last_seen_ms,
                expires_at_ms: stored.expires_at_ms,
                exact: stored.exact,
            });
        }
        Ok(out)
    }

    /// Stores `indicators` (each with its parsed key) in one transaction; returns how many
    /// were new and how many replaced an entry.
    pub fn add(&self, indicators: &[(IndicatorKey, Indicator)]) -> Result<(u32, u32), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let (mut added, mut updated) = (0, 0);
        {
            let mut table = txn.open_table(INDICATORS).map_err(db_err)?;
            for (key, indicator) in indicators {
                let stored = StoredIndicator {
                    value: key.canonical(),
                    kind: key.kind().name().to_owned(),
                    category: indicator.category.clone(),
                    supplier: indicator.supplier.clone(),
                    context: indicator.context.clone(),
                    tags: indicator.tags.clone(),
                    last_seen_ms: indicator.last_seen_ms,
                    expires_at_ms: indicator.expires_at_ms,
                    exact: indicator.exact,
                };
                let name = format!(
                    "{}{}",
                    value_prefix(&indicator.supplier, key),
                    indicator.category
                );
                let json = serde_json::to_string(&stored).expect("plain structs serialize");
                match table.insert(name.as_str(), json.as_str()).map_err(db_err)? {
                    Some(_) => updated += 1,
                    None => added += 1,
                }
            }
            let would_hold = table.len().map_err(db_err)?;
            if would_hold > self.max_entries {
                // Dropped uncommitted: nothing of this request is kept.
                return Err(StoreError::Full {
                    would_hold,
                    max: self.max_entries,
                });
            }
        }
        txn.commit().map_err(db_err)?;
        Ok((added, updated))
    }

    /// Removes every entry of `supplier` for each key, whatever its category.
    pub fn remove(&self, supplier: &str, keys: &[IndicatorKey]) -> Result<u32, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut removed = 0;
        {
            let mut table = txn.open_table(INDICATORS).map_err(db_err)?;
            for key in keys {
                let prefix = value_prefix(supplier, key);
                let before = table.len().map_err(db_err)?;
                table
                    .retain_in(prefix.as_str().., |name, _| !name.starts_with(&prefix))
                    .map_err(db_err)?;
                removed += (before - table.len().map_err(db_err)?) as u32;
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(removed)
    }

    pub fn suppliers(&self) -> Result<Vec<Supplier>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(SUPPLIERS).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (name, value) = entry.map_err(db_err)?;
            let stored: StoredSupplier =
                serde_json::from_str(value.value()).map_err(|e| StoreError::Corrupt {
                    key: name.value().to_owned(),
                    reason: e.to_string(),
                })?;
            out.push(Supplier {
                name: name.value().to_owned(),
                confidence: stored.confidence,
                retention_minutes: stored.retention_minutes,
                description: stored.description,
            });
        }
        Ok(out)
    }

    pub fn upsert_supplier(&self, supplier: &Supplier) -> Result<(), StoreError> {
        let stored = StoredSupplier {
            confidence: supplier.confidence,
            retention_minutes: supplier.retention_minutes,
            description: supplier.description.clone(),
        };
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(SUPPLIERS)
            .map_err(db_err)?
            .insert(
                supplier.name.as_str(),
                serde_json::to_string(&stored)
                    .expect("plain structs serialize")
                    .as_str(),
            )
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }
}

impl InternalTi {
    /// Every remote source's settings, by supplier.
    pub fn remote_sources(&self) -> Result<Vec<(String, String)>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(REMOTE_SOURCES).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (name, value) = entry.map_err(db_err)?;
            out.push((name.value().to_owned(), value.value().to_owned()));
        }
        Ok(out)
    }

    /// Keeps `settings` as `supplier`'s remote source, or forgets it (`None`).
    pub fn set_remote_source(
        &self,
        supplier: &str,
        settings: Option<&str>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(REMOTE_SOURCES).map_err(db_err)?;
            match settings {
                Some(settings) => {
                    table.insert(supplier, settings).map_err(db_err)?;
                }
                None => {
                    table.remove(supplier).map_err(db_err)?;
                }
            }
        }
        txn.commit().map_err(db_err)
    }
}

fn db_err(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(StoreFailure::new(error))
}

impl ServiceError for StoreError {
    fn code(&self) -> ErrorCode {
        match self {
            StoreError::Open { .. } => ErrorCode::Unavailable,
            StoreError::Db(failure) => failure.code(),
            StoreError::Corrupt { .. } => ErrorCode::DataLoss,
            StoreError::Full { .. } => ErrorCode::ResourceExhausted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::parse_indicator;

    fn entry(value: &str, category: &str, supplier: &str) -> (IndicatorKey, Indicator) {
        let indicator = Indicator {
            value: value.into(),
            category: category.into(),
            supplier: supplier.into(),
            ..Default::default()
        };
        (parse_indicator(value, None).unwrap(), indicator)
    }

    #[test]
    fn a_change_past_the_entry_limit_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = InternalTi::open(&dir.path().join("internal-ti.redb")).unwrap();
        store.max_entries = 2;
        store
            .add(&[entry("192.0.2.1", "KL_InternalTI_IP", "InternalTI")])
            .unwrap();
        let refused = store.add(&[
            entry("192.0.2.2", "KL_InternalTI_IP", "InternalTI"),
            entry("192.0.2.3", "KL_InternalTI_IP", "InternalTI"),
        ]);
        assert!(
            matches!(
                refused,
                Err(StoreError::Full {
                    would_hold: 3,
                    max: 2
                })
            ),
            "{refused:?}"
        );
        assert_eq!(
            store.indicators().unwrap().len(),
            1,
            "nothing of it was kept"
        );
        // Replacing an entry adds nothing: still within the limit.
        store
            .add(&[entry("192.0.2.1", "KL_InternalTI_IP", "InternalTI")])
            .unwrap();
    }

    #[test]
    fn indicators_and_suppliers_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("internal-ti.redb");
        {
            let store = InternalTi::open(&path).unwrap();
            let first = [
                entry("http://Evil.example/x", "KL_InternalTI_URL", "InternalTI"),
                entry("192.0.2.9", "FP", "FalsePositive"),
            ];
            assert_eq!(store.add(&first).unwrap(), (2, 0));
            assert_eq!(
                store
                    .add(&[entry("evil.example/x", "KL_InternalTI_URL", "InternalTI")])
                    .unwrap(),
                (0, 1),
                "one value, any spelling"
            );
            store
                .upsert_supplier(&Supplier {
                    retention_minutes: 5,
                    ..Supplier::new("InternalTI")
                })
                .unwrap();
        }
        let store = InternalTi::open(&path).unwrap();
        let mut values: Vec<String> = store
            .indicators()
            .unwrap()
            .into_iter()
            .map(|i| i.value)
            .collect();
        values.sort();
        assert_eq!(values, ["192.0.2.9", "evil.example/x"]);
        assert_eq!(store.suppliers().unwrap()[0].retention_minutes, 5);

        let key = parse_indicator("HTTP://EVIL.EXAMPLE/x", None).unwrap();
        assert_eq!(
            store
                .remove("InternalTI", std::slice::from_ref(&key))
                .unwrap(),
            1
        );
        assert_eq!(store.remove("InternalTI", &[key]).unwrap(), 0);
        assert_eq!(store.indicators().unwrap().len(), 1);
    }
}
