//! Ids of records and events: UUIDs, as KUMA's — random ones for records, time-ordered ones
//! for events (a store's id index then grows at its end instead of everywhere).

use std::{
    sync::{
        LazyLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

/// A random UUID (version 4, RFC 9562 variant), lower-case hex with dashes.
pub fn new_uuid() -> String {
    formatted(with_version(fastrand::u128(..), 4))
}

/// A time-ordered UUID (version 7, RFC 9562): the Unix time in milliseconds, then 48 bits
/// drawn once per process (42 once the version and variant take theirs), then a 32-bit
/// counter the process steps for each id (RFC 9562 §6.2's dedicated counter). Ids a process
/// makes later sort after, to the millisecond; two processes' ids differ in their drawn
/// bits. Ids made together share all but their last digits: ClickHouse compresses an events
/// column of them several times over, where 80 random bits an id were 17 bytes of its
/// column and as many again in each packed row, whatever the compression.
pub fn new_time_ordered_uuid() -> String {
    static PROCESS_BITS: LazyLock<u128> = LazyLock::new(|| fastrand::u128(..) & ((1 << 48) - 1));
    static COUNTER: LazyLock<AtomicU32> = LazyLock::new(|| AtomicU32::new(fastrand::u32(..)));
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let count = u128::from(COUNTER.fetch_add(1, Ordering::Relaxed));
    let bits = ((ms & 0xffff_ffff_ffff) << 80) | (*PROCESS_BITS << 32) | count;
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

    #[test]
    fn time_ordered_ids_of_a_process_share_their_drawn_digits_and_never_repeat() {
        let ids: Vec<String> = (0..100_000)
            .map(|_| super::new_time_ordered_uuid())
            .collect();
        // Past the time and the version: the process's drawn digits (the variant's digit
        // among them), then the counter's eight.
        let drawn = &ids[0][15..28];
        for id in &ids {
            assert_eq!(&id[15..28], drawn, "{id} against {}", ids[0]);
        }
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // Within one millisecond, the counter orders them.
        for pair in ids.windows(2) {
            if pair[0][..13] == pair[1][..13] && &pair[1][28..] != "00000000" {
                assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
            }
        }
    }
}
