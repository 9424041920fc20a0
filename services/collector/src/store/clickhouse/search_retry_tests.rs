//! A search that ClickHouse fails because a shard's connection dropped is sent once more;
//! any other failure, or a second one, is the search's answer. Against a stand-in for
//! ClickHouse's HTTP interface on loopback that fails the first searches it is sent.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use xdr_mesh::error::{ErrorCode, ServiceError};

use super::{ClickHouseStore, target::Target};
use crate::{
    search::check::check,
    store::{Cell, EventStore, Found},
};

/// What the stand-in answers the first searches it is sent.
const SHARD_RESET: &str = "Code: 279, e.displayText() = DB::NetException: All connection \
    tries failed. Log: Code: 210, Connection reset by peer (127.0.0.100:9000)\n";
const SYNTAX: &str = "Code: 62, e.displayText() = DB::Exception: Syntax error\n";

/// Serves ClickHouse's HTTP interface on loopback for a store: its schema statements find
/// every table there, and the first `failures` searches are answered `failure`, the others
/// a count of 7. Answers how many searches it was sent so far.
fn stand_in(failures: usize, failure: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let searches = Arc::new(AtomicUsize::new(0));
    let counted = searches.clone();
    std::thread::spawn(move || {
        // The store opens a connection per statement: a few dozen at most in a test.
        for stream in listener.incoming().take(100) {
            let Ok(mut stream) = stream else { return };
            let statement = read_statement(&mut stream);
            let (status, body) = if statement.contains("system.tables") {
                ("200 OK", "{\"n\":1}\n")
            } else if statement.contains("count()") {
                if counted.fetch_add(1, Ordering::SeqCst) < failures {
                    ("500 Internal Server Error", failure)
                } else {
                    ("200 OK", "{\"c0\":7}\n")
                }
            } else {
                ("200 OK", "")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (address, searches)
}

/// The body of the HTTP request on `stream`.
fn read_statement(stream: &mut std::net::TcpStream) -> String {
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        line.clear();
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    String::from_utf8_lossy(&body).into_owned()
}

fn store_at(address: &str, state: &std::path::Path) -> ClickHouseStore {
    let url = format!("clickhouse+http://{address}/xdr");
    ClickHouseStore::open(Target::parse(&url, None, "default", "").unwrap(), state).unwrap()
}

fn count(store: &ClickHouseStore) -> Result<Found, crate::store::EventStoreError> {
    let search = check("SELECT count() FROM events")
        .unwrap()
        .within_tenant("Main");
    store.search(&search)
}

#[test]
fn a_search_failed_by_a_shards_connection_is_answered_by_the_next_try() {
    let state = tempfile::tempdir().unwrap();
    let (address, searches) = stand_in(1, SHARD_RESET);
    let store = store_at(&address, state.path());
    match count(&store) {
        Ok(Found::Rows { rows, .. }) => assert_eq!(rows, [vec![Cell::Integer(7)]]),
        other => panic!("{other:?}"),
    }
    assert_eq!(searches.load(Ordering::SeqCst), 2);
}

#[test]
fn a_search_is_sent_twice_at_most_and_only_for_a_shards_connection() {
    let state = tempfile::tempdir().unwrap();
    let (address, searches) = stand_in(5, SHARD_RESET);
    let store = store_at(&address, state.path());
    let failure = count(&store).unwrap_err();
    assert_eq!(failure.code(), ErrorCode::Unavailable, "{failure}");
    assert_eq!(searches.load(Ordering::SeqCst), 2);

    // A statement ClickHouse cannot run is not sent again.
    let (address, searches) = stand_in(5, SYNTAX);
    let store = store_at(&address, state.path());
    let failure = count(&store).unwrap_err();
    assert_eq!(failure.code(), ErrorCode::InvalidArgument, "{failure}");
    assert_eq!(searches.load(Ordering::SeqCst), 1);
}
