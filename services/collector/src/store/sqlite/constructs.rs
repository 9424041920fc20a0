//! Every supported SQL construct against known data (`store::known_answers`), in one
//! partition and with each event a partition of its own.

use super::*;
use crate::store::known_answers;

fn known(partition_events: u64) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteStore::open_with(&dir.path().join("events.sqlite"), partition_events).unwrap();
    store.insert(&known_answers::events()).unwrap();
    (dir, store)
}

#[test]
fn every_supported_construct_answers_what_it_should() {
    for partition_events in [partitions::PARTITION_EVENTS, 1] {
        let (_dir, store) = known(partition_events);
        let tables = partitions::names(&locked(&store.writer).connection).unwrap();
        assert_eq!(tables.len(), if partition_events == 1 { 5 } else { 1 });
        for (sql, expected) in known_answers::CASES {
            assert_eq!(
                known_answers::answer(&store, sql),
                *expected,
                "{sql} ({partition_events} events a partition)"
            );
        }
    }
}
