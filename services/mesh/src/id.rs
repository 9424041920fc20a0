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

/// `bits` as a UUID's text: 32 lowercase hex digits in groups of 8-4-4-4-12. Written digit
/// by digit: through `format!` it was 4 % of the collector's CPU, which names every event.
fn formatted(bits: u128) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(36);
    for place in 0..32 {
        if matches!(place, 8 | 12 | 16 | 20) {
            text.push('-');
        }
        let digit = (bits >> (4 * (31 - place))) & 0xf;
        text.push(char::from(DIGITS[digit as usize]));
    }
    text
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
    fn ids_are_written_as_hex_digits_in_groups_of_8_4_4_4_12() {
        assert_eq!(
            super::formatted(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
            "01234567-89ab-cdef-fedc-ba9876543210"
        );
        assert_eq!(super::formatted(0), "00000000-0000-0000-0000-000000000000");
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
