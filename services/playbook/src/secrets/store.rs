//! Secrets kept in the service's redb file: each record is the secret as read back plus its
//! password sealed by the [`SecretCipher`]. All records are held in memory too (there are a
//! few per tenant), so a launch finds its secret without a disk read.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use xdr_mesh::{caller::SHARED_TENANT, clock::now_ms, quote::quoted, store::StoreFailure};
use xdr_proto::pb::Secret;

use super::{
    cipher::SecretCipher,
    validate::{SecretChange, SecretError},
};
use crate::usergate::Credentials;

const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
/// Secrets one tenant may hold.
const MAX_PER_TENANT: usize = 1000;

/// A stored secret: what may be read back, and the sealed password.
#[derive(Clone, PartialEq, prost::Message)]
struct SecretRecord {
    #[prost(message, optional, tag = "1")]
    secret: Option<Secret>,
    #[prost(bytes = "vec", tag = "2")]
    sealed_password: Vec<u8>,
}

pub struct SecretStore {
    db: Arc<Database>,
    cipher: SecretCipher,
    records: RwLock<HashMap<String, Arc<SecretRecord>>>,
}

impl SecretStore {
    pub fn open(db: Arc<Database>, cipher: SecretCipher) -> Result<Self, SecretError> {
        let mut records = HashMap::new();
        let write = db.begin_write().map_err(StoreFailure::new)?;
        write.open_table(SECRETS).map_err(StoreFailure::new)?;
        write.commit().map_err(StoreFailure::new)?;
        let read = db.begin_read().map_err(StoreFailure::new)?;
        let table = read.open_table(SECRETS).map_err(StoreFailure::new)?;
        for entry in table.iter().map_err(StoreFailure::new)? {
            let (id, bytes) = entry.map_err(StoreFailure::new)?;
            let record = SecretRecord::decode(bytes.value())
                .map_err(|e| StoreFailure::unreadable(format!("secret {}: {e}", id.value())))?;
            records.insert(id.value().to_owned(), Arc::new(record));
        }
        Ok(SecretStore {
            db,
            cipher,
            records: RwLock::new(records),
        })
    }

    /// The secrets of `tenant`, by name.
    pub fn list(&self, tenant: &str) -> Vec<Arc<Secret>> {
        let records = self.records.read().expect("secret map lock");
        let mut secrets: Vec<_> = records
            .values()
            .filter_map(|r| r.secret.clone())
            .filter(|s| s.tenant == tenant)
            .map(Arc::new)
            .collect();
        secrets.sort_by(|a, b| a.name.cmp(&b.name));
        secrets
    }

    pub fn get(&self, tenant: &str, id: &str) -> Result<Secret, SecretError> {
        self.records
            .read()
            .expect("secret map lock")
            .get(id)
            .and_then(|r| r.secret.clone())
            .filter(|s| s.tenant == tenant)
            .ok_or_else(|| SecretError::NotFound(id.to_owned()))
    }

    pub fn create(&self, change: SecretChange) -> Result<Secret, SecretError> {
        let mut records = self.records.write().expect("secret map lock");
        let tenant = change.secret.tenant.clone();
        if records.values().any(|r| {
            r.secret
                .as_ref()
                .is_some_and(|s| s.tenant == tenant && s.name == change.secret.name)
        }) {
            return Err(SecretError::Exists(change.secret.name));
        }
        let held = records
            .values()
            .filter(|r| r.secret.as_ref().is_some_and(|s| s.tenant == tenant))
            .count();
        if held >= MAX_PER_TENANT {
            return Err(SecretError::TooMany(MAX_PER_TENANT));
        }
        let mut secret = change.secret;
        secret.id = xdr_mesh::id::new_uuid();
        let password = change.password.unwrap_or_default();
        self.save(&mut records, secret, password.as_bytes())
    }

    /// Replaces the readable fields; the password only when the change carries one.
    pub fn update(&self, id: &str, change: SecretChange) -> Result<Secret, SecretError> {
        let mut records = self.records.write().expect("secret map lock");
        let old = records
            .get(id)
            .filter(|r| {
                r.secret
                    .as_ref()
                    .is_some_and(|s| s.tenant == change.secret.tenant)
            })
            .cloned()
            .ok_or_else(|| SecretError::NotFound(id.to_owned()))?;
        let old_secret = old.secret.clone().unwrap_or_default();
        let mut secret = change.secret;
        secret.id = id.to_owned();
        secret.name = old_secret.name;
        secret.r#type = old_secret.r#type;
        let password = match change.password {
            Some(password) => password.into_bytes(),
            // The stored password goes only where it went before: whoever points a secret
            // elsewhere (another URL, CA or login) gives the password again, or could collect
            // one they were never told.
            None if secret.url != old_secret.url
                || secret.ca_pem != old_secret.ca_pem
                || secret.user != old_secret.user =>
            {
                return Err(xdr_mesh::error::invalid(
                    "password",
                    "required when the url, ca_pem or user changes",
                )
                .into());
            }
            None => self.cipher.open(&old.sealed_password, id)?,
        };
        self.save(&mut records, secret, &password)
    }

    pub fn delete(&self, tenant: &str, id: &str) -> Result<bool, SecretError> {
        let mut records = self.records.write().expect("secret map lock");
        let owned = records
            .get(id)
            .is_some_and(|r| r.secret.as_ref().is_some_and(|s| s.tenant == tenant));
        if !owned {
            return Ok(false);
        }
        let write = self.db.begin_write().map_err(StoreFailure::new)?;
        write
            .open_table(SECRETS)
            .map_err(StoreFailure::new)?
            .remove(id)
            .map_err(StoreFailure::new)?;
        write.commit().map_err(StoreFailure::new)?;
        records.remove(id);
        Ok(true)
    }

    /// The credentials in the secret `name` of `tenant`, else of `Shared`, decrypted.
    pub fn credentials(&self, tenant: &str, name: &str) -> Result<Credentials, SecretError> {
        let records = self.records.read().expect("secret map lock");
        let find = |tenant: &str| {
            records.values().find(|r| {
                r.secret
                    .as_ref()
                    .is_some_and(|s| s.tenant == tenant && s.name == name)
            })
        };
        let record = find(tenant)
            .or_else(|| find(SHARED_TENANT))
            .ok_or_else(|| SecretError::Missing {
                name: name.to_owned(),
                tenant: tenant.to_owned(),
            })?;
        self.decrypted(record)
    }

    /// The credentials in secret `id` of `tenant`, decrypted.
    pub fn credentials_by_id(&self, tenant: &str, id: &str) -> Result<Credentials, SecretError> {
        let records = self.records.read().expect("secret map lock");
        let record = records
            .get(id)
            .filter(|r| r.secret.as_ref().is_some_and(|s| s.tenant == tenant))
            .ok_or_else(|| SecretError::NotFound(id.to_owned()))?;
        self.decrypted(record)
    }

    fn decrypted(&self, record: &SecretRecord) -> Result<Credentials, SecretError> {
        let secret = record.secret.clone().unwrap_or_default();
        let password = self.cipher.open(&record.sealed_password, &secret.id)?;
        Ok(Credentials {
            url: secret.url,
            ca_pem: secret.ca_pem,
            login: secret.user,
            password: String::from_utf8(password)
                .map_err(|_| SecretError::Cipher(super::cipher::CipherError::Unreadable))?,
        })
    }

    fn save(
        &self,
        records: &mut HashMap<String, Arc<SecretRecord>>,
        mut secret: Secret,
        password: &[u8],
    ) -> Result<Secret, SecretError> {
        secret.updated_at_ms = now_ms();
        let record = SecretRecord {
            sealed_password: self.cipher.seal(password, &secret.id)?,
            secret: Some(secret.clone()),
        };
        let write = self.db.begin_write().map_err(StoreFailure::new)?;
        write
            .open_table(SECRETS)
            .map_err(StoreFailure::new)?
            .insert(secret.id.as_str(), record.encode_to_vec().as_slice())
            .map_err(StoreFailure::new)?;
        write.commit().map_err(StoreFailure::new)?;
        tracing::info!(secret = %quoted(&secret.name), tenant = %secret.tenant, "secret saved");
        records.insert(secret.id.clone(), Arc::new(record));
        Ok(secret)
    }
}
