//! The store through its trait: events in, the seed's search and every kind of projection
//! out, TI predicates over the matches, and the tenant restriction.

use xdr_proto::pb::{Event, FieldValue, TiMatch, field_value};

use super::*;
use crate::search::check::check;
use crate::store::Cell;

fn text(value: &str) -> FieldValue {
    FieldValue {
        kind: Some(field_value::Kind::Text(value.into())),
    }
}

fn event(id: &str, tenant: &str, url: &str, ti: Option<&str>) -> Event {
    let mut event = Event {
        id: id.into(),
        timestamp_ms: 1_700_000_000_000 + id.len() as i64,
        tenant: tenant.into(),
        collector: "http-input".into(),
        raw: format!("{{\"RequestUrl\":\"{url}\"}}"),
        ..Default::default()
    };
    event.fields.insert("RequestUrl".into(), text(url));
    event.fields.insert("customField".into(), text("custom"));
    event.fields.insert(
        "SourcePort".into(),
        FieldValue {
            kind: Some(field_value::Kind::Integer(4242)),
        },
    );
    if let Some(category) = ti {
        event.ti.push(TiMatch {
            field: "RequestUrl".into(),
            value: url.into(),
            category: category.into(),
            matched_indicator: "fakess123bn.nu".into(),
            supplier: "Demo".into(),
            context: [("threat".to_owned(), "Demo".to_owned())].into(),
            ..Default::default()
        });
    }
    event
}

fn store() -> (tempfile::TempDir, SqliteStore) {
    store_in(partitions::PARTITION_EVENTS)
}

fn store_in(partition_events: u64) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteStore::open_with(&dir.path().join("events.sqlite"), partition_events).unwrap();
    store
        .insert(&[
            event(
                "e1",
                "Main",
                "http://fakess123bn.nu",
                Some("KL_Malicious_URL"),
            ),
            event("e2", "Main", "http://example.org/", None),
            event(
                "e3",
                "Acme",
                "http://fakess123bn.nu",
                Some("KL_Malicious_URL"),
            ),
        ])
        .unwrap();
    (dir, store)
}

fn search(store: &SqliteStore, sql: &str, tenant: &str) -> Found {
    store
        .search(&check(sql).unwrap().within_tenant(tenant))
        .unwrap()
}

#[test]
fn the_seed_select_finds_the_event_with_its_match() {
    let (_dir, store) = store();
    let Found::Events(events) = search(
        &store,
        "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250",
        "Main",
    ) else {
        panic!("SELECT * answers events")
    };
    let [found] = &events[..] else {
        panic!("one event of Main: {events:?}")
    };
    assert_eq!(found.id, "e1");
    assert_eq!(found.ti[0].category, "KL_Malicious_URL");
    assert_eq!(found.ti[0].matched_indicator, "fakess123bn.nu");
    assert_eq!(found.ti[0].context["threat"], "Demo");
    assert_eq!(
        found.fields["SourcePort"].kind,
        Some(field_value::Kind::Integer(4242))
    );
}

#[test]
fn ti_extra_and_aggregates_answer_over_the_stored_events() {
    let (_dir, store) = store();
    let ids = |found: Found| match found {
        Found::Events(events) => events.into_iter().map(|e| e.id).collect::<Vec<_>>(),
        rows => panic!("{rows:?}"),
    };
    assert_eq!(
        ids(search(
            &store,
            "SELECT * FROM events WHERE TI.category = 'KL_Malicious_URL'",
            "Main"
        )),
        ["e1"]
    );
    assert_eq!(
        ids(search(
            &store,
            "SELECT * FROM events WHERE Extra['customField'] = 'custom' AND RequestUrl LIKE 'http://example%' ORDER BY Id",
            "Main"
        )),
        ["e2"]
    );
    assert_eq!(
        search(
            &store,
            "SELECT RequestUrl AS url, count() AS n FROM events GROUP BY RequestUrl ORDER BY n DESC, url",
            "Main"
        ),
        Found::Rows {
            columns: vec!["url".into(), "n".into()],
            rows: vec![
                vec![Cell::Text("http://example.org/".into()), Cell::Integer(1)],
                vec![Cell::Text("http://fakess123bn.nu".into()), Cell::Integer(1)],
            ],
        }
    );
    // LIKE is case-sensitive, ILIKE is not; match() is a regular expression.
    assert!(
        ids(search(
            &store,
            "SELECT * FROM events WHERE RequestUrl LIKE 'HTTP%'",
            "Main"
        ))
        .is_empty()
    );
    assert_eq!(
        ids(search(
            &store,
            "SELECT * FROM events WHERE RequestUrl ILIKE 'HTTP://EXAMPLE%'",
            "Main"
        )),
        ["e2"]
    );
    assert_eq!(
        ids(search(
            &store,
            "SELECT * FROM events WHERE match(RequestUrl, 'fakess[0-9]+bn')",
            "Main"
        )),
        ["e1"]
    );
}

#[test]
fn a_tenant_never_sees_another_tenants_events() {
    let (_dir, store) = store();
    let Found::Rows { rows, .. } = search(&store, "SELECT count() FROM events", "Acme") else {
        panic!()
    };
    assert_eq!(rows, [vec![Cell::Integer(1)]]);
    let Found::Events(events) = search(
        &store,
        "SELECT * FROM events WHERE Tenant = 'Main' OR 1 = 1",
        "Acme",
    ) else {
        panic!()
    };
    assert_eq!(
        events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e3"]
    );
}

#[test]
fn an_event_id_is_stored_once_and_the_buffer_sequence_with_it() {
    // Each event a partition of its own: an id is found in any partition.
    let (_dir, store) = store_in(1);
    assert_eq!(store.loaded_through().unwrap(), 0);
    // Loaded again (a crash between the store's commit and the buffer's release): the
    // stored event is skipped, matches and all; the new one is stored.
    let again = event("e1", "Main", "http://x/", Some("KL_Malicious_URL"));
    store
        .load(&[&[again, event("e9", "Main", "http://y/", None)]], Some(7))
        .unwrap();
    assert_eq!(store.loaded_through().unwrap(), 7);
    let Found::Rows { rows, .. } = search(
        &store,
        "SELECT count(), count(DISTINCT Id) FROM events",
        "Main",
    ) else {
        panic!()
    };
    assert_eq!(rows, [vec![Cell::Integer(3), Cell::Integer(3)]]);
    let Found::Events(events) = search(&store, "SELECT * FROM events WHERE Id = 'e1'", "Main")
    else {
        panic!()
    };
    assert_eq!(events[0].ti.len(), 1, "e1's match stored once");
    assert_eq!(
        events[0].fields["RequestUrl"].kind,
        text("http://fakess123bn.nu").kind
    );
}

#[test]
fn an_answer_past_its_size_limit_is_refused_not_built() {
    let (_dir, store) = store();
    let mut big = event("big", "Main", "http://big/", None);
    big.raw = "x".repeat(crate::store::MAX_ANSWER_BYTES);
    store.insert(&[big]).unwrap();
    let refused = store
        .search(&check("SELECT * FROM events").unwrap().within_tenant("Main"))
        .unwrap_err();
    assert!(matches!(refused, EventStoreError::TooLarge(_)), "{refused}");
    // A narrower search still answers.
    assert!(matches!(
        search(&store, "SELECT Id FROM events ORDER BY Id LIMIT 1", "Main"),
        Found::Rows { .. }
    ));
}

#[test]
fn a_large_answer_comes_in_pieces_in_order_the_last_flagged() {
    let (_dir, store) = store();
    let many: Vec<Event> = (0..500)
        .map(|i| {
            event(
                &format!("p{i:03}"),
                "Main",
                &format!("http://p.example/{i}"),
                None,
            )
        })
        .collect();
    store.insert(&many).unwrap();
    let search =
        check("SELECT * FROM events WHERE RequestUrl LIKE 'http://p.%' ORDER BY Id LIMIT 1000")
            .unwrap()
            .within_tenant("Main");
    let mut pieces = Vec::new();
    store
        .search_pieces(&search, 4096, &mut |piece, last| {
            pieces.push((piece, last));
            Ok(())
        })
        .unwrap();
    assert!(pieces.len() > 5, "{} pieces", pieces.len());
    assert!(pieces.iter().rev().skip(1).all(|(_, last)| !last) && pieces.last().unwrap().1);
    let ids: Vec<String> = (pieces.into_iter())
        .flat_map(|(piece, _)| match piece {
            Found::Events(events) => events.into_iter().map(|e| e.id),
            Found::Rows { .. } => panic!("SELECT * answers events"),
        })
        .collect();
    let expected: Vec<String> = (0..500).map(|i| format!("p{i:03}")).collect();
    assert_eq!(ids, expected);

    // A sink that fails stops the search with its error.
    let stopped = store.search_pieces(&search, 4096, &mut |_, _| Err(EventStoreError::TooLarge(1)));
    assert!(matches!(stopped, Err(EventStoreError::TooLarge(1))));
}

#[test]
fn retention_deletes_old_events_and_their_matches_chunk_by_chunk_and_keeps_the_rest() {
    // Partitions of 3,000: three expire whole and go at once, the fourth holds the boundary.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(&dir.path().join("events.sqlite"), 3_000).unwrap();
    // Past two chunks of old events (every tenth with a match), then newer ones.
    let old = 2 * RETENTION_CHUNK + 123;
    let events: Vec<Event> = (0..old + 50)
        .map(|k| {
            let mut event = event(
                &format!("e{k}"),
                "Main",
                "http://fakess123bn.nu",
                (k % 10 == 0).then_some("KL_Malicious_URL"),
            );
            event.timestamp_ms = 1_000 + k;
            event
        })
        .collect();
    store.insert(&events).unwrap();
    assert_eq!(store.delete_older_than(1_000 + old).unwrap(), old as u64);
    let count = |sql: &str| match store
        .search(&check(sql).unwrap().within_tenant("Main"))
        .unwrap()
    {
        Found::Rows { rows, .. } => rows[0][0].clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(count("SELECT count() FROM events"), Cell::Integer(50));
    assert_eq!(
        count("SELECT min(Timestamp) FROM events"),
        Cell::Integer(1_000 + old)
    );
    let writer = locked(&store.writer);
    let matches: i64 = writer
        .connection
        .query_row("SELECT count(*) FROM ti", [], |row| row.get(0))
        .unwrap();
    assert_eq!(
        matches, 5,
        "the matches of the 50 kept events, none of the deleted ones"
    );
    drop(writer);
    assert_eq!(store.delete_older_than(1_000 + old).unwrap(), 0);
    let tables = partitions::names(&locked(&store.writer).connection).unwrap();
    assert_eq!(tables.len(), 1, "{tables:?}");
    // Ids of deleted events may come again; ids kept may not.
    store
        .insert(&[
            event("e0", "Main", "http://again/", None),
            event(&format!("e{old}"), "Main", "http://twice/", None),
        ])
        .unwrap();
    assert_eq!(count("SELECT count() FROM events"), Cell::Integer(51));
}

#[test]
fn a_store_from_before_partitions_opens_with_its_events_and_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    {
        let store = SqliteStore::open_with(&path, 2).unwrap();
        store
            .insert(&[
                event("e1", "Main", "http://a/", None),
                event("e2", "Main", "http://b/", None),
            ])
            .unwrap();
    }
    // What a store made before partitions holds: `events`, no partition list, no id set.
    let old = Connection::open(&path).unwrap();
    old.execute_batch("DROP TABLE partitions; DROP TABLE event_ids;")
        .unwrap();
    drop(old);
    let store = SqliteStore::open_with(&path, 2).unwrap();
    store
        .insert(&[
            event("e2", "Main", "http://b/", None),
            event("e3", "Main", "http://c/", None),
        ])
        .unwrap();
    let Found::Rows { rows, .. } = search(
        &store,
        "SELECT count(), count(DISTINCT Id) FROM events",
        "Main",
    ) else {
        panic!()
    };
    assert_eq!(
        rows,
        [vec![Cell::Integer(3), Cell::Integer(3)]],
        "e2 not stored twice"
    );
    let tables = partitions::names(&locked(&store.writer).connection).unwrap();
    assert_eq!(
        tables,
        ["events", "events_p1"],
        "the full first partition is followed by a new one"
    );
}

#[test]
fn a_long_in_list_over_many_partitions_is_answered() {
    // Each event a partition of its own: a WHERE of 9,000 values written once per partition
    // would pass SQLite's bound on parameters.
    let (_dir, store) = store_in(1);
    let values: Vec<String> = (10_000..19_000).map(|n| n.to_string()).collect();
    for extra in 0..4 {
        store
            .insert(&[event(&format!("x{extra}"), "Main", "http://x/", None)])
            .unwrap();
    }
    let sql = format!(
        "SELECT * FROM events WHERE SourcePort IN ({}, 4242) ORDER BY Timestamp DESC, Id LIMIT 3",
        values.join(", ")
    );
    let Found::Events(events) = search(&store, &sql, "Main") else {
        panic!()
    };
    assert_eq!(events.len(), 3);
}

#[test]
fn past_the_most_partitions_the_newest_grows_and_every_event_is_found() {
    let (_dir, store) = store_in(1);
    let events: Vec<Event> = (0..partitions::MAX_PARTITIONS + 5)
        .map(|k| event(&format!("p{k}"), "Main", "http://p/", None))
        .collect();
    store.insert(&events).unwrap();
    let tables = partitions::names(&locked(&store.writer).connection).unwrap();
    assert_eq!(tables.len() as u64, partitions::MAX_PARTITIONS);
    let Found::Rows { rows, .. } = search(
        &store,
        "SELECT count() FROM events WHERE RequestUrl = 'http://p/'",
        "Main",
    ) else {
        panic!()
    };
    assert_eq!(
        rows,
        [vec![Cell::Integer(partitions::MAX_PARTITIONS as i64 + 5)]]
    );
    let Found::Events(latest) = search(
        &store,
        "SELECT * FROM events ORDER BY Timestamp DESC, Id LIMIT 2",
        "Main",
    ) else {
        panic!()
    };
    assert_eq!(latest.len(), 2);
}

#[test]
fn an_id_one_tenant_gives_does_not_drop_another_tenants_event_with_it() {
    let (_dir, store) = store_in(1);
    store
        .insert(&[event("shared-id", "Other", "http://other/", None)])
        .unwrap();
    store
        .insert(&[event("shared-id", "Main", "http://main/", None)])
        .unwrap();
    for (tenant, url) in [("Main", "http://main/"), ("Other", "http://other/")] {
        let Found::Events(events) = search(
            &store,
            "SELECT * FROM events WHERE Id = 'shared-id'",
            tenant,
        ) else {
            panic!()
        };
        assert_eq!(events.len(), 1, "{tenant}");
        assert_eq!(
            events[0].fields["RequestUrl"].kind,
            text(url).kind,
            "{tenant}"
        );
    }
    // One id per tenant in the id set.
    let writer = locked(&store.writer);
    let ids: i64 = writer
        .connection
        .query_row(
            "SELECT count(*) FROM event_ids WHERE \"Id\" = 'shared-id'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(ids, 2);
}
