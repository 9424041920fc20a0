//! The catalog's embedded store: one redb table per record kind, each record its protobuf
//! encoding under its id.

use std::{collections::HashMap, path::Path, sync::Arc};

use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use xdr_mesh::store::StoreFailure;

use super::error::{CatalogError, store_error};

pub type Table = TableDefinition<'static, &'static str, &'static [u8]>;

pub const RULES: Table = TableDefinition::new("rules");
pub const FILTERS: Table = TableDefinition::new("filters");
pub const RESOURCES: Table = TableDefinition::new("resources");

pub struct RecordStore {
    db: Database,
}

impl RecordStore {
    /// Opens (or creates) the store at `path`, with every table.
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        let db = Database::create(path).map_err(store_error)?;
        let write = db.begin_write().map_err(store_error)?;
        for table in [RULES, FILTERS, RESOURCES] {
            write.open_table(table).map_err(store_error)?;
        }
        write.commit().map_err(store_error)?;
        Ok(RecordStore { db })
    }

    /// Every record of `table`, decoded.
    pub fn load<T: Message + Default>(
        &self,
        table: Table,
    ) -> Result<HashMap<String, Arc<T>>, CatalogError> {
        let read = self.db.begin_read().map_err(store_error)?;
        let mut records = HashMap::new();
        for entry in read
            .open_table(table)
            .map_err(store_error)?
            .iter()
            .map_err(store_error)?
        {
            let (id, bytes) = entry.map_err(store_error)?;
            let record = T::decode(bytes.value())
                .map_err(|e| CatalogError::Store(StoreFailure::unreadable(e)))?;
            records.insert(id.value().to_owned(), Arc::new(record));
        }
        Ok(records)
    }

    /// Stores `value` under `id` in `table` (removes it when `None`), committed before return.
    pub fn write<T: Message>(
        &self,
        table: Table,
        id: &str,
        value: Option<&T>,
    ) -> Result<(), CatalogError> {
        let write = self.db.begin_write().map_err(store_error)?;
        {
            let mut table = write.open_table(table).map_err(store_error)?;
            match value {
                Some(value) => {
                    table
                        .insert(id, value.encode_to_vec().as_slice())
                        .map_err(store_error)?;
                }
                None => {
                    table.remove(id).map_err(store_error)?;
                }
            }
        }
        write.commit().map_err(store_error)
    }
}
