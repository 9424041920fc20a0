//! Console passwords: argon2id with the crate's recommended cost, kept as PHC strings (the
//! salt and parameters travel with the hash). Hashing costs tens of milliseconds and ~19 MiB,
//! so it runs on blocking threads, few at a time: a flood of sign-ins waits or is refused, it
//! cannot take the gateway's memory.

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
};
use ring::rand::{SecureRandom, SystemRandom};

/// Shortest and longest password taken (characters).
pub const MIN_CHARS: usize = 12;
pub const MAX_CHARS: usize = 256;

/// Why a password is not taken, or `None`.
pub fn refusal(password: &str) -> Option<String> {
    let chars = password.chars().count();
    (!(MIN_CHARS..=MAX_CHARS).contains(&chars))
        .then(|| format!("password: {MIN_CHARS} to {MAX_CHARS} characters"))
}

/// `password` hashed with a fresh random salt, as a PHC string.
pub fn hash(password: &str) -> String {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .expect("the system's random source works");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes are a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password of a bounded length")
        .to_string()
}

/// Whether `password` is the one `phc` was made from. An unreadable hash matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash nobody's password matches, checked for unknown users so that a sign-in takes as
/// long whether the user exists or not.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| hash("not anyone's password, ever"));
    &DECOY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let phc = hash("correct horse battery");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse battery!", &phc));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(hash("correct horse battery"), phc, "salted");
        assert!(refusal("short").is_some());
        assert!(refusal(&"x".repeat(257)).is_some());
        assert!(refusal("twelve chars").is_none());
    }
}
