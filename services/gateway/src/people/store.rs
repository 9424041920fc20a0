//! The gateway's people, kept in redb in its data directory: users (name, tenant, role) and
//! API tokens. A token's secret is never stored: only its SHA-256 digest, the key a presented
//! token is looked up by, with its owner, expiry and whether it was revoked. Users and tokens
//! are few (bounded below) and read on every request, so they are also held in memory.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use xdr_mesh::caller::{MAIN_TENANT, Role};

const USERS: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("users");
const TOKENS: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("tokens");
/// Users and live tokens at most: each costs a record read on every start.
pub const MAX_USERS: usize = 10_000;
pub const MAX_TOKENS: usize = 10_000;
/// Users of one tenant at most: a tenant administrator cannot fill the gateway's table.
pub const MAX_USERS_PER_TENANT: usize = 1_000;
/// Live tokens of one user at most: sign-ins and `token create` cannot fill the gateway's
/// table for everyone else.
pub const MAX_TOKENS_PER_USER: usize = 100;
/// The first Main administrator, made on fresh data.
pub const FIRST_ADMIN: &str = "admin";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub name: String,
    pub tenant: String,
    /// The role's name as in `x-xdr-role`.
    pub role: String,
    pub created_ms: i64,
    /// The console password's argon2 PHC string; empty: none (tokens only). Never answered.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password_hash: String,
}

impl User {
    pub fn role(&self) -> Role {
        Role::from_name(&self.role).unwrap_or(Role::Observer)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    /// Names the token in lists and revocation (not the secret).
    pub id: String,
    /// SHA-256 of the secret, hex: the record's key, never answered.
    #[serde(default, skip_serializing)]
    pub digest: String,
    pub user: String,
    pub description: String,
    pub created_ms: i64,
    /// 0: never.
    pub expires_ms: i64,
    pub revoked: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    #[error("the people store: {0}")]
    Store(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no {0}")]
    NotFound(String),
    #[error("{0} exists")]
    Exists(String),
    #[error("{0}")]
    Full(String),
}

fn store_error(error: impl Into<redb::Error>) -> PeopleError {
    PeopleError::Store(error.into().to_string())
}

#[derive(Default)]
struct Held {
    users: HashMap<String, User>,
    /// By digest.
    tokens: HashMap<String, Token>,
}

pub struct People {
    db: Database,
    held: Mutex<Held>,
}

pub use xdr_mesh::clock::now_ms;

impl People {
    /// Opens (or makes) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Arc<Self>, PeopleError> {
        let db = Database::create(dir.join("people.redb")).map_err(store_error)?;
        let mut held = Held::default();
        {
            let write = db.begin_write().map_err(store_error)?;
            write.open_table(USERS).map_err(store_error)?;
            write.open_table(TOKENS).map_err(store_error)?;
            write.commit().map_err(store_error)?;
        }
        let read = db.begin_read().map_err(store_error)?;
        for row in read
            .open_table(USERS)
            .map_err(store_error)?
            .iter()
            .map_err(store_error)?
        {
            let (_, value) = row.map_err(store_error)?;
            let user: User = decode(value.value())?;
            held.users.insert(user.name.clone(), user);
        }
        for row in read
            .open_table(TOKENS)
            .map_err(store_error)?
            .iter()
            .map_err(store_error)?
        {
            let (key, value) = row.map_err(store_error)?;
            let mut token: Token = decode(value.value())?;
            token.digest = key.value().to_owned();
            held.tokens.insert(token.digest.clone(), token);
        }
        Ok(Arc::new(People {
            db,
            held: Mutex::new(held),
        }))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_empty(&self) -> bool {
        self.held().users.is_empty()
    }

    /// The user and token a presented secret's `digest` names, if it is live.
    pub fn authenticate(&self, digest: &str) -> Option<(User, Token)> {
        let held = self.held();
        let token = held.tokens.get(digest)?;
        if token.revoked || (token.expires_ms != 0 && token.expires_ms <= now_ms()) {
            return None;
        }
        let user = held.users.get(&token.user)?;
        Some((user.clone(), token.clone()))
    }

    pub fn users(&self) -> Vec<User> {
        let mut users: Vec<User> = self.held().users.values().cloned().collect();
        users.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        users
    }

    pub fn user(&self, name: &str) -> Option<User> {
        self.held().users.get(name).cloned()
    }

    pub fn add_user(&self, user: User) -> Result<User, PeopleError> {
        let mut held = self.held();
        if held.users.contains_key(&user.name) {
            return Err(PeopleError::Exists(format!("user {:?}", user.name)));
        }
        let in_tenant = held
            .users
            .values()
            .filter(|u| u.tenant == user.tenant)
            .count();
        if in_tenant >= MAX_USERS_PER_TENANT {
            return Err(PeopleError::Full(format!(
                "tenant {:?} has {MAX_USERS_PER_TENANT} users, the most one may",
                user.tenant
            )));
        }
        if held.users.len() >= MAX_USERS {
            return Err(PeopleError::Full(format!(
                "the gateway holds {MAX_USERS} users, the most it may"
            )));
        }
        self.put_user(&mut held, user)
    }

    /// Writes `user` and holds it.
    fn put_user(&self, held: &mut Held, user: User) -> Result<User, PeopleError> {
        self.write(|w| {
            w.open_table(USERS)?
                .insert(user.name.as_str(), encode(&user).as_slice())?;
            Ok(())
        })?;
        held.users.insert(user.name.clone(), user.clone());
        Ok(user)
    }

    /// Writes `token` and holds it.
    fn put_token(&self, held: &mut Held, token: Token) -> Result<Token, PeopleError> {
        self.write(|w| {
            w.open_table(TOKENS)?
                .insert(token.digest.as_str(), encode(&token).as_slice())?;
            Ok(())
        })?;
        held.tokens.insert(token.digest.clone(), token.clone());
        Ok(token)
    }

    /// Sets user `name`'s password hash.
    pub fn set_password(&self, name: &str, password_hash: String) -> Result<User, PeopleError> {
        let mut held = self.held();
        let mut user = (held.users.get(name).cloned())
            .ok_or_else(|| PeopleError::NotFound(format!("user {name:?}")))?;
        user.password_hash = password_hash;
        self.put_user(&mut held, user)
    }

    /// Deletes user `name` and every token of theirs.
    pub fn delete_user(&self, name: &str) -> Result<User, PeopleError> {
        let mut held = self.held();
        let user = held
            .users
            .get(name)
            .cloned()
            .ok_or_else(|| PeopleError::NotFound(format!("user {name:?}")))?;
        let theirs: Vec<String> = (held.tokens.values())
            .filter(|t| t.user == name)
            .map(|t| t.digest.clone())
            .collect();
        self.write(|w| {
            w.open_table(USERS)?.remove(name)?;
            let mut tokens = w.open_table(TOKENS)?;
            for digest in &theirs {
                tokens.remove(digest.as_str())?;
            }
            Ok(())
        })?;
        held.users.remove(name);
        for digest in theirs {
            held.tokens.remove(&digest);
        }
        Ok(user)
    }

    pub fn tokens(&self) -> Vec<Token> {
        let mut tokens: Vec<Token> = self.held().tokens.values().cloned().collect();
        tokens.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        tokens
    }

    pub fn add_token(&self, token: Token) -> Result<Token, PeopleError> {
        let mut held = self.held();
        if !held.users.contains_key(&token.user) {
            return Err(PeopleError::NotFound(format!("user {:?}", token.user)));
        }
        let theirs = |held: &Held| {
            held.tokens
                .values()
                .filter(|t| t.user == token.user)
                .count()
        };
        if held.tokens.len() >= MAX_TOKENS || theirs(&held) >= MAX_TOKENS_PER_USER {
            // Expired and revoked tokens make room before a new one is refused.
            self.forget_dead_tokens(&mut held)?;
            if theirs(&held) >= MAX_TOKENS_PER_USER {
                return Err(PeopleError::Full(format!(
                    "user {:?} holds {MAX_TOKENS_PER_USER} live tokens, the most one may; revoke some",
                    token.user
                )));
            }
            if held.tokens.len() >= MAX_TOKENS {
                return Err(PeopleError::Full(format!(
                    "the gateway holds {MAX_TOKENS} live tokens, the most it may"
                )));
            }
        }
        self.put_token(&mut held, token)
    }

    /// Deletes expired and revoked tokens.
    fn forget_dead_tokens(&self, held: &mut Held) -> Result<(), PeopleError> {
        let now = now_ms();
        let dead: Vec<String> = (held.tokens.values())
            .filter(|t| t.revoked || (t.expires_ms != 0 && t.expires_ms <= now))
            .map(|t| t.digest.clone())
            .collect();
        self.write(|w| {
            let mut tokens = w.open_table(TOKENS)?;
            for digest in &dead {
                tokens.remove(digest.as_str())?;
            }
            Ok(())
        })?;
        for digest in dead {
            held.tokens.remove(&digest);
        }
        Ok(())
    }

    /// Revokes the token `id`; it stays listed as revoked.
    pub fn revoke(&self, id: &str) -> Result<Token, PeopleError> {
        let mut held = self.held();
        let mut revoked = (held.tokens.values())
            .find(|t| t.id == id)
            .cloned()
            .ok_or_else(|| PeopleError::NotFound(format!("token {id:?}")))?;
        revoked.revoked = true;
        self.put_token(&mut held, revoked)
    }

    fn write(
        &self,
        change: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), PeopleError> {
        let write = self.db.begin_write().map_err(store_error)?;
        change(&write).map_err(store_error)?;
        write.commit().map_err(store_error)
    }
}

/// Tokens keep their digest as the key; the record holds the rest.
fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("a record serializes")
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, PeopleError> {
    serde_json::from_slice(bytes).map_err(|e| PeopleError::Store(format!("unreadable record: {e}")))
}

/// The first Main administrator of fresh data.
pub fn first_admin() -> User {
    User {
        name: FIRST_ADMIN.to_owned(),
        tenant: MAIN_TENANT.to_owned(),
        role: Role::MainAdministrator.name().to_owned(),
        created_ms: now_ms(),
        password_hash: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(user: &str, digest: &str, expires_ms: i64) -> Token {
        Token {
            id: format!("id-{digest}"),
            digest: digest.into(),
            user: user.into(),
            description: String::new(),
            created_ms: now_ms(),
            expires_ms,
            revoked: false,
        }
    }

    #[test]
    fn people_survive_a_restart_and_dead_tokens_authenticate_no_one() {
        let dir = tempfile::tempdir().unwrap();
        let people = People::open(dir.path()).unwrap();
        assert!(people.is_empty());
        people.add_user(first_admin()).unwrap();
        assert!(matches!(
            people.add_user(first_admin()),
            Err(PeopleError::Exists(_))
        ));
        people.add_token(token(FIRST_ADMIN, "live", 0)).unwrap();
        people
            .add_token(token(FIRST_ADMIN, "gone", now_ms() - 1))
            .unwrap();
        people.add_token(token(FIRST_ADMIN, "revoked", 0)).unwrap();
        people.revoke("id-revoked").unwrap();
        assert!(matches!(
            people.add_token(token("nobody", "x", 0)),
            Err(PeopleError::NotFound(_))
        ));
        people
            .set_password(FIRST_ADMIN, "$argon2id$placeholder".into())
            .unwrap();
        drop(people);

        let people = People::open(dir.path()).unwrap();
        let (user, _) = people.authenticate("live").expect("a live token");
        assert_eq!(user.name, FIRST_ADMIN);
        assert_eq!(user.password_hash, "$argon2id$placeholder");
        assert!(people.authenticate("gone").is_none(), "expired");
        assert!(people.authenticate("revoked").is_none());
        assert!(people.authenticate("unknown").is_none());
        assert!(
            people
                .tokens()
                .iter()
                .any(|t| t.id == "id-revoked" && t.revoked)
        );
        // One user's live tokens are capped; revoked ones make room.
        for n in 0..MAX_TOKENS_PER_USER - 1 {
            people
                .add_token(token(FIRST_ADMIN, &format!("t{n}"), 0))
                .unwrap();
        }
        assert!(matches!(
            people.add_token(token(FIRST_ADMIN, "one-too-many", 0)),
            Err(PeopleError::Full(_))
        ));
        people.revoke("id-t0").unwrap();
        people.add_token(token(FIRST_ADMIN, "room", 0)).unwrap();
        // A deleted user's tokens go with them.
        people.delete_user(FIRST_ADMIN).unwrap();
        assert!(people.authenticate("live").is_none());
        assert!(people.tokens().is_empty());
    }
}
