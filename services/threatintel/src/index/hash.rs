//! File-hash indicators: MD5, SHA1 and SHA256, told apart by length, stored as raw bytes.

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use super::error::IndicatorError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashKey {
    Md5([u8; 16]),
    Sha1([u8; 20]),
    Sha256([u8; 32]),
}

impl HashKey {
    pub fn to_hex(self) -> String {
        self.write_hex(&mut [0; 64]).to_owned()
    }

    /// The digest in lower-case hex, written into `buffer` (no allocation: feeds hold
    /// millions of hashes).
    pub fn write_hex(self, buffer: &mut [u8; 64]) -> &str {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let bytes: &[u8] = match &self {
            HashKey::Md5(b) => b,
            HashKey::Sha1(b) => b,
            HashKey::Sha256(b) => b,
        };
        for (pair, byte) in buffer.chunks_exact_mut(2).zip(bytes) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0xf)];
        }
        std::str::from_utf8(&buffer[..bytes.len() * 2]).expect("hex digits are ASCII")
    }

    /// `MD5`, `SHA1` or `SHA256`, as CyberTrace's category names spell them.
    pub fn algorithm(self) -> &'static str {
        match self {
            HashKey::Md5(_) => "MD5",
            HashKey::Sha1(_) => "SHA1",
            HashKey::Sha256(_) => "SHA256",
        }
    }
}

/// Hex of 32, 40 or 64 digits, either case.
pub fn parse_hash(input: &str) -> Result<HashKey, IndicatorError> {
    let hex = input.trim().as_bytes();
    let bad = |reason: &str| IndicatorError::BadHash {
        value: input.to_owned(),
        reason: reason.to_owned(),
    };
    fn decode<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| (c as char).to_digit(16);
            *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Some(out)
    }
    let key = match hex.len() {
        32 => decode(hex).map(HashKey::Md5),
        40 => decode(hex).map(HashKey::Sha1),
        64 => decode(hex).map(HashKey::Sha256),
        _ => return Err(bad("not 32 (MD5), 40 (SHA1) or 64 (SHA256) hex digits")),
    };
    key.ok_or_else(|| bad("not hexadecimal"))
}

#[derive(Default)]
pub struct HashTable {
    md5: FxHashMap<[u8; 16], u32>,
    sha1: FxHashMap<[u8; 20], u32>,
    sha256: FxHashMap<[u8; 32], u32>,
}

impl HashTable {
    pub fn key_id<E>(
        &mut self,
        key: HashKey,
        new_id: impl FnOnce() -> Result<u32, E>,
    ) -> Result<u32, E> {
        fn get_or_insert<K: Eq + std::hash::Hash, E>(
            map: &mut FxHashMap<K, u32>,
            key: K,
            new_id: impl FnOnce() -> Result<u32, E>,
        ) -> Result<u32, E> {
            Ok(match map.entry(key) {
                Entry::Occupied(entry) => *entry.get(),
                Entry::Vacant(entry) => *entry.insert(new_id()?),
            })
        }
        match key {
            HashKey::Md5(k) => get_or_insert(&mut self.md5, k, new_id),
            HashKey::Sha1(k) => get_or_insert(&mut self.sha1, k, new_id),
            HashKey::Sha256(k) => get_or_insert(&mut self.sha256, k, new_id),
        }
    }

    pub fn shrink_to_fit(&mut self) {
        self.md5.shrink_to_fit();
        self.sha1.shrink_to_fit();
        self.sha256.shrink_to_fit();
    }

    pub fn get(&self, key: HashKey) -> Option<u32> {
        match key {
            HashKey::Md5(k) => self.md5.get(&k),
            HashKey::Sha1(k) => self.sha1.get(&k),
            HashKey::Sha256(k) => self.sha256.get(&k),
        }
        .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_case_insensitive_and_sized() {
        let lower = parse_hash("d41d8cd98f00b204e9800998ecf8427e").unwrap();
        assert_eq!(
            parse_hash("D41D8CD98F00B204E9800998ECF8427E").unwrap(),
            lower
        );
        assert!(matches!(
            parse_hash(&"a".repeat(40)).unwrap(),
            HashKey::Sha1(_)
        ));
        assert!(matches!(
            parse_hash(&"0".repeat(64)).unwrap(),
            HashKey::Sha256(_)
        ));
        assert!(
            parse_hash("abc")
                .unwrap_err()
                .to_string()
                .contains("32 (MD5)")
        );
        assert!(
            parse_hash(&"g".repeat(32))
                .unwrap_err()
                .to_string()
                .contains("not hexadecimal")
        );
        assert!(parse_hash(&"é".repeat(16)).is_err());
        assert_eq!(lower.to_hex(), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
