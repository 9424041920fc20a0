//! The hashed GROUP BY against SQLite's own: the same rows, in the same order, value types
//! included, over events with gaps, mixed numbers and text, two tenants.

use xdr_proto::pb::{Event, FieldValue, TiMatch, field_value::Kind};

use super::{
    grouped::{self, Limits, Outcome},
    read::{GroupBy, Readers, run_pieces},
    *,
};
use crate::{
    search::{check::check, grouped::Grouping},
    store::{Cell, Found},
};

const T0: i64 = 1_767_226_200_000;
const NAMES: [Option<&str>; 7] = [
    Some("Login"),
    Some("login"),
    Some("Logout"),
    None,
    Some("Connect"),
    Some("Ünïcode"),
    Some(""),
];
/// `Extra['bytes']`: integers, reals, text with spaces, words.
const BYTES: [&str; 8] = [
    "12",
    "3.5",
    "abc",
    "7e2",
    " 42 ",
    "-9",
    "1.0",
    "99999999999",
];

fn text(t: &str) -> FieldValue {
    FieldValue {
        kind: Some(Kind::Text(t.into())),
    }
}

fn integer(n: i64) -> FieldValue {
    FieldValue {
        kind: Some(Kind::Integer(n)),
    }
}

fn varied(k: i64) -> Event {
    let mut event = Event {
        id: format!("e{k}"),
        timestamp_ms: T0 + (k * 7_919 % 200) * 600_000,
        tenant: if k % 11 == 0 { "Other" } else { "Main" }.into(),
        collector: if k % 3 == 0 { "a" } else { "b" }.into(),
        ..Default::default()
    };
    let fields = &mut event.fields;
    if let Some(name) = NAMES[(k % 7) as usize] {
        fields.insert("Name".into(), text(name));
    }
    fields.insert("SourcePort".into(), integer(k * 37 % 1_000));
    if k % 5 != 0 {
        fields.insert("DestinationPort".into(), integer(k % 13));
    }
    fields.insert(
        "SourceAddress".into(),
        text(&format!("10.0.{}.{}", k % 4, k % 50)),
    );
    fields.insert("bytes".into(), text(BYTES[(k % 8) as usize]));
    if k % 17 == 0 {
        event.ti.push(TiMatch {
            field: "Name".into(),
            category: "x".into(),
            ..Default::default()
        });
    }
    event
}

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    // Partitions of 700 events: the groups span them.
    let store = SqliteStore::open_with(&dir.path().join("events.sqlite"), 700).unwrap();
    let events: Vec<Event> = (0..3_000).map(varied).collect();
    store.insert(&events).unwrap();
    (dir, store)
}

/// Who scans a hashed GROUP BY's partitions.
#[derive(Clone, Copy, Debug)]
enum Scan {
    OneThread,
    /// Half of the partitions on the store's second reader.
    TwoThreads,
}

fn rows(store: &SqliteStore, sql: &str, group_by: GroupBy) -> Result<Vec<Vec<Cell>>, String> {
    rows_with(store, sql, group_by, Scan::OneThread)
}

fn rows_with(
    store: &SqliteStore,
    sql: &str,
    group_by: GroupBy,
    scan: Scan,
) -> Result<Vec<Vec<Cell>>, String> {
    let search = check(sql).unwrap().within_tenant("Main");
    let mut all = Vec::new();
    let reader = locked(&store.readers[0]);
    let mut helper = locked(&store.readers[1]);
    let helper = match scan {
        Scan::OneThread => None,
        Scan::TwoThreads => Some(&mut *helper),
    };
    let tables = partitions::names(&reader).unwrap();
    run_pieces(
        Readers {
            first: &reader,
            second: helper,
        },
        &search,
        &tables,
        1 << 10,
        &mut |found, _| {
            if let Found::Rows { rows, .. } = found {
                all.extend(rows);
            }
            Ok(())
        },
        group_by,
    )
    .map_err(|e| e.to_string())?;
    Ok(all)
}

const QUERIES: &[&str] = &[
    "SELECT Name, count() AS n FROM events GROUP BY Name",
    "SELECT Name, count() AS n, sum(SourcePort), avg(SourcePort), min(SourcePort), max(SourcePort) FROM events GROUP BY Name ORDER BY n DESC, Name",
    "SELECT toStartOfHour(Timestamp) AS h, count(DestinationPort) FROM events GROUP BY h ORDER BY h DESC LIMIT 5 OFFSET 2",
    "SELECT Extra['bytes'] AS b, count(), sum(Extra['bytes']), avg(Extra['bytes']), min(Extra['bytes']), max(Extra['bytes']) FROM events GROUP BY b",
    "SELECT Name, sum(Extra['bytes']) AS s FROM events GROUP BY Name HAVING s > 10 ORDER BY s",
    "SELECT lower(Name) AS l, count() FROM events GROUP BY lower(Name)",
    "SELECT Name, DestinationPort, count() AS n FROM events WHERE SourcePort > 100 GROUP BY Name, DestinationPort ORDER BY n DESC, Name, DestinationPort LIMIT 20",
    "SELECT Name, count() AS n FROM events WHERE TI.category = 'x' GROUP BY Name",
    "SELECT max(Name), min(DestinationPort), Collector FROM events GROUP BY Collector",
    "SELECT Name AS m, count() FROM events GROUP BY m HAVING max(SourcePort) > 990 ORDER BY m",
    "SELECT SourceAddress, count() AS n, min(Name) FROM events GROUP BY SourceAddress ORDER BY n DESC, SourceAddress LIMIT 7",
    "SELECT DestinationPort, sum(DestinationPort), avg(DestinationPort) FROM events WHERE DestinationPort IS NULL OR DestinationPort < 3 GROUP BY DestinationPort",
    "SELECT Name, count() FROM events WHERE SourcePort < 0 GROUP BY Name",
];

#[test]
fn hashed_groups_answer_what_sqlites_group_by_answers() {
    let (_dir, store) = store();
    let tables = partitions::names(&locked(&store.writer).connection).unwrap();
    assert_eq!(tables.len(), 5, "3,000 events in partitions of 700");
    for sql in QUERIES {
        let search = check(sql).unwrap().within_tenant("Main");
        assert!(Grouping::of(&search).is_some(), "not hashed: {sql}");
        let engine = rows(&store, sql, GroupBy::Engine);
        for scan in [Scan::OneThread, Scan::TwoThreads] {
            let hashed = rows_with(&store, sql, GroupBy::Hashed(Limits::SEARCH), scan);
            assert_eq!(hashed, engine, "{sql} ({scan:?})");
        }
    }
    // Not vacuous: the answers have rows, and a tenant's are its own (3,000 events, every
    // 11th in tenant Other).
    let counted = rows(
        &store,
        "SELECT Collector, count() FROM events GROUP BY Collector",
        GroupBy::Hashed(Limits::SEARCH),
    )
    .unwrap();
    let total: i64 = counted
        .iter()
        .map(|row| match row[1] {
            Cell::Integer(n) => n,
            _ => panic!("count() is an integer: {row:?}"),
        })
        .sum();
    assert_eq!(total, 3_000 - 273);
}

#[test]
fn a_sum_past_the_integers_fails_as_sqlites_does() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("events.sqlite")).unwrap();
    let mut events: Vec<Event> = (0..2).map(varied).collect();
    for event in &mut events {
        event.tenant = "Main".into();
        event.collector = "a".into();
        event
            .fields
            .insert("SourcePort".into(), integer(i64::MAX - 1));
    }
    store.insert(&events).unwrap();
    let sql = "SELECT Collector, sum(SourcePort) FROM events GROUP BY Collector";
    let hashed = rows(&store, sql, GroupBy::Hashed(Limits::SEARCH)).unwrap_err();
    let engine = rows(&store, sql, GroupBy::Engine).unwrap_err();
    assert!(hashed.contains("integer overflow"), "{hashed}");
    assert!(engine.contains("integer overflow"), "{engine}");
}

#[test]
fn more_groups_than_held_are_left_to_sqlite() {
    let (_dir, store) = store();
    let sql = "SELECT SourceAddress, count() AS n FROM events GROUP BY SourceAddress ORDER BY SourceAddress";
    let search = check(sql).unwrap().within_tenant("Main");
    let grouping = Grouping::of(&search).unwrap();
    let few = Limits {
        groups: 10,
        bytes: 1 << 20,
    };
    let reader = locked(&store.readers[0]);
    let mut helper = locked(&store.readers[1]);
    let tables = partitions::names(&reader).unwrap();
    let mut handed = 0;
    let outcome = grouped::run(
        Readers {
            first: &reader,
            second: Some(&mut *helper),
        },
        &search,
        &grouping,
        &tables,
        few,
        1 << 10,
        &mut |_, _| {
            handed += 1;
            Ok(())
        },
    )
    .unwrap();
    assert!(matches!(outcome, Outcome::TooManyGroups));
    assert_eq!(handed, 0, "nothing answered before giving up");
    drop((reader, helper));
    let answer = rows(&store, sql, GroupBy::Hashed(few)).unwrap();
    assert_eq!(answer.len(), 100, "10.0.(k % 4).(k % 50): 100 addresses");
    assert_eq!(answer, rows(&store, sql, GroupBy::Engine).unwrap());
}
