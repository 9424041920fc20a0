//! Ids of records and events: UUIDs, as KUMA's — random ones for records, time-ordered ones
//! for events (a store's id index then grows at its end instead of everywhere).

use std::time::{SystemTime, UNIX_EPOCH};

/// A random UUID (version 4, RFC 9562 variant), lower-case hex with dashes.
pub fn new_uuid() -> String {
    formatted(with_version(fastrand::u128(..), 4))
}

/// A time-ordered UUID (version 7: the Unix time in milliseconds, then random bits): ids
/// made later sort after, to the millisecond.
pub fn new_time_ordered_uuid() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let bits = ((ms & 0xffff_ffff_ffff) << 80) | (fastrand::u128(..) & ((1 << 80) - 1));
    formatted(with_version(bits, 7))
}

fn with_version(bits: u128, version: u128) -> u128 {
    let bits = (bits & !(0xf << 76)) | (version << 76);
    (bits & !(0x3 << 62)) | (0x2 << 62)
}

fn formatted(bits: u128) -> String {
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_version_4_uuids() {
        let id = super::new_uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }

    #[test]
    fn time_ordered_ids_are_version_7_and_sort_by_time() {
        let first = super::new_time_ordered_uuid();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = super::new_time_ordered_uuid();
        assert_eq!(&first[14..15], "7");
        assert!(matches!(&first[19..20], "8" | "9" | "a" | "b"), "{first}");
        assert!(first < second, "{first} then {second}");
    }
}
