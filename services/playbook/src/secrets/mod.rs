//! Credentials for outside systems (a UserGate's URL, CA, login and password): validated
//! (`validate`), kept with the password sealed by an AEAD under a key file (`cipher`,
//! `store`), and never returned, logged or shown in clear.

mod cipher;
mod store;
mod validate;

pub use cipher::SecretCipher;
pub use store::SecretStore;
pub use validate::{SecretError, create, update};
