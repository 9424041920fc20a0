//! Fresh data gets a first Main administrator, `admin`, and a token of theirs written to
//! `first-admin-token` in the data directory (readable by the gateway's user only):
//! `xdrctl up` and `xdrctl quickstart` print it, and with it an operator makes everyone else.

use std::{io::Write, os::unix::fs::OpenOptionsExt, path::Path};

use anyhow::Context;

use super::{
    new_secret,
    store::{self, People, Token, now_ms},
};

/// The file the first token is written to, in the data directory.
pub const FIRST_TOKEN_FILE: &str = "first-admin-token";

pub fn first_admin(people: &People, data_dir: &Path) -> anyhow::Result<()> {
    if !people.is_empty() {
        return Ok(());
    }
    let admin = people.add_user(store::first_admin())?;
    let (secret, digest) = new_secret();
    people.add_token(Token {
        id: xdr_mesh::id::new_uuid(),
        digest,
        user: admin.name.clone(),
        description: "the first Main administrator's token, made on fresh data".into(),
        created_ms: now_ms(),
        expires_ms: 0,
        revoked: false,
    })?;
    let path = data_dir.join(FIRST_TOKEN_FILE);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| path.display().to_string())?;
    writeln!(file, "{secret}").with_context(|| path.display().to_string())?;
    tracing::info!(user = %admin.name, file = %path.display(), "fresh data: the first Main administrator's token is in the file");
    Ok(())
}
