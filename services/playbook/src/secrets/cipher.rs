//! Passwords at rest: ChaCha20-Poly1305 (ring's AEAD, the crypto rustls already brings) under
//! a 256-bit key kept in a file of its own, made with mode 0600 on first start. Each sealed
//! value is bound to its secret's id, so a sealed password copied onto another secret's
//! record does not open.

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use ring::{
    aead::{self, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};

const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("secret key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    /// A sealed value that does not open: another key, or a damaged record.
    #[error("a stored secret does not decrypt with this key")]
    Unreadable,
}

pub struct SecretCipher {
    key: LessSafeKey,
    random: SystemRandom,
}

impl SecretCipher {
    /// The cipher with the key in `path` (64 hex digits), made there with mode 0600 when the
    /// file does not exist. A key file others may read is refused.
    pub fn open_or_create(path: &Path) -> Result<Self, CipherError> {
        let failed = |reason: String| CipherError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        let random = SystemRandom::new();
        if !path.exists() {
            let mut key = [0u8; KEY_LEN];
            random
                .fill(&mut key)
                .map_err(|_| failed("no randomness for a new key".into()))?;
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| failed(e.to_string()))?;
            writeln!(file, "{}", hex(&key)).map_err(|e| failed(e.to_string()))?;
            file.sync_all().map_err(|e| failed(e.to_string()))?;
        }
        let mode = fs::metadata(path)
            .map_err(|e| failed(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(failed(format!(
                "mode {:o} lets others read it; chmod 600 it",
                mode & 0o777
            )));
        }
        let text = fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
        let key = unhex(text.trim())
            .filter(|key| key.len() == KEY_LEN)
            .ok_or_else(|| failed(format!("not {} hex digits", KEY_LEN * 2)))?;
        let key = UnboundKey::new(&aead::CHACHA20_POLY1305, &key)
            .map_err(|_| failed("not a ChaCha20-Poly1305 key".into()))?;
        Ok(SecretCipher {
            key: LessSafeKey::new(key),
            random,
        })
    }

    /// `plain` encrypted and bound to `context`: a fresh nonce, then the ciphertext and tag.
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<Vec<u8>, CipherError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| CipherError::Unreadable)?;
        let mut sealed = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| CipherError::Unreadable)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, CipherError> {
        if sealed.len() < NONCE_LEN {
            return Err(CipherError::Unreadable);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CipherError::Unreadable)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| CipherError::Unreadable)?;
        Ok(plain.to_vec())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_file_is_private_and_seals_to_its_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let cipher = SecretCipher::open_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = cipher.seal(b"hunter2", "id-1").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(cipher.open(&sealed, "id-1").unwrap(), b"hunter2");
        assert!(cipher.open(&sealed, "id-2").is_err(), "bound to its secret");
        // The same file opens again with the same key.
        let again = SecretCipher::open_or_create(&path).unwrap();
        assert_eq!(again.open(&sealed, "id-1").unwrap(), b"hunter2");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let open = SecretCipher::open_or_create(&path).err().unwrap();
        assert!(open.to_string().contains("chmod 600"), "{open}");
    }
}
