//! Every supported construct read into its tree; everything else refused by name.

use proptest::prelude::*;

use super::*;
use crate::search::schema::column;

fn col(name: &str) -> Box<Expr> {
    Box::new(Expr::Column(column(name).unwrap()))
}

fn text(value: &str) -> Box<Expr> {
    Box::new(Expr::Text(value.into()))
}

#[test]
fn the_seed_select_reads_as_written() {
    let search = check(
        "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250",
    )
    .unwrap();
    assert_eq!(search.select, Projection::Events);
    assert_eq!(
        search.filter,
        Some(Expr::Compare(
            col("RequestUrl"),
            Comparison::Eq,
            text("http://fakess123bn.nu")
        ))
    );
    assert_eq!(
        search.order_by,
        [Order {
            expr: *col("Timestamp"),
            descending: true
        }]
    );
    assert_eq!((search.limit, search.offset), (250, 0));
}

#[test]
fn every_supported_construct_is_taken() {
    let taken = [
        "SELECT Id, RequestUrl AS url FROM events",
        "SELECT * FROM events WHERE NOT (SourcePort > 1024 AND DestinationPort <= 443) OR Name != 'x'",
        "SELECT * FROM events WHERE Name <> 'x' AND SourcePort >= 1 AND SourcePort < 2",
        "SELECT * FROM events WHERE SourceAddress IN ('10.0.0.1', '10.0.0.2') AND Name NOT IN ('a')",
        "SELECT * FROM events WHERE Timestamp BETWEEN 1 AND 2 AND SourcePort NOT BETWEEN 3 AND 4",
        "SELECT * FROM events WHERE RequestUrl LIKE 'http://%' AND Name ILIKE '%x%' AND Message NOT LIKE 'a'",
        "SELECT * FROM events WHERE FileHash IS NULL AND FileName IS NOT NULL",
        "SELECT * FROM events WHERE inSubnet(SourceAddress, '10.0.0.0/8') AND match(RequestUrl, '^https?://')",
        "SELECT lower(Name) AS n, toStartOfHour(Timestamp) AS h, toStartOfDay(Timestamp) FROM events",
        "SELECT count() FROM events",
        "SELECT SourceAddress, count(DISTINCT DestinationAddress) AS peers, min(SourcePort), max(SourcePort), sum(SourcePort), avg(SourcePort) FROM events GROUP BY SourceAddress HAVING peers > 2 ORDER BY peers DESC LIMIT 10 OFFSET 5",
        "SELECT * FROM events WHERE TI.category = 'KL_Malicious_URL' AND TI.supplier LIKE 'Demo%'",
        "SELECT * FROM events WHERE Extra['customField'] = 'x'",
        "SELECT * FROM events WHERE events.Name = 'x' LIMIT 5, 10",
        "SELECT * FROM events WHERE SourcePort = -1 AND Name = 'it''s'",
    ];
    for sql in taken {
        check(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let paged = check("SELECT * FROM events LIMIT 5, 10").unwrap();
    assert_eq!((paged.limit, paged.offset), (10, 5));
    let quoted = check("SELECT * FROM events WHERE Name = 'it''s'").unwrap();
    assert_eq!(
        quoted.filter,
        Some(Expr::Compare(col("Name"), Comparison::Eq, text("it's")))
    );
}

#[test]
fn the_tenant_is_a_node_of_the_tree() {
    let search = check("SELECT * FROM events WHERE Name = 'x' OR Name = 'y'")
        .unwrap()
        .within_tenant("Acme");
    let Some(Expr::And(tenant, rest)) = search.filter else {
        panic!("the tenant is ANDed with the whole filter")
    };
    assert_eq!(
        *tenant,
        Expr::Compare(col("Tenant"), Comparison::Eq, text("Acme"))
    );
    assert!(matches!(*rest, Expr::Or(..)), "{rest:?}");
}

#[test]
fn everything_else_is_refused_by_name() {
    let refused = [
        ("DELETE FROM events", "only SELECT"),
        ("DROP TABLE events", "only SELECT"),
        ("INSERT INTO events VALUES (1)", "only SELECT"),
        ("ATTACH DATABASE 'x' AS y", "only SELECT"),
        ("SELECT * EXCEPT (Raw) FROM events", "bare *"),
        ("SELECT * FROM events; DROP TABLE events", "2 statements"),
        ("SELECT * FROM events; -- x\nSELECT 1", "2 statements"),
        ("SELECT * FROM system.tables", "not searchable"),
        ("SELECT * FROM users", "not searchable"),
        ("SELECT * FROM events AS e", "not searchable"),
        ("SELECT * FROM events FINAL", "not searchable"),
        ("SELECT * FROM events, users", "one table"),
        ("SELECT * FROM events JOIN users ON 1 = 1", "JOIN"),
        ("SELECT * FROM (SELECT * FROM events)", "one table"),
        (
            "SELECT * FROM events UNION ALL SELECT * FROM events",
            "without UNION",
        ),
        ("WITH x AS (SELECT 1) SELECT * FROM events", "WITH"),
        ("SELECT * FROM events SETTINGS max_threads = 1", "SETTINGS"),
        (
            "SELECT * FROM events WHERE Name IN (SELECT Name FROM users)",
            "subqueries",
        ),
        ("SELECT * FROM events WHERE Nope = 1", "no column `Nope`"),
        (
            "SELECT * FROM events WHERE requesturl = 'x'",
            "no column `requesturl`",
        ),
        (
            "SELECT * FROM events WHERE TI.nope = 'x'",
            "no column TI.`nope`",
        ),
        (
            "SELECT * FROM events WHERE sleep(3) = 0",
            "no function `sleep`",
        ),
        (
            "SELECT * FROM events WHERE file('x') = ''",
            "no function `file`",
        ),
        ("SELECT * FROM events WHERE Name = \"x\"", "no column"),
        ("SELECT * FROM events LIMIT 1000000", "at most 10000"),
        (
            "SELECT * FROM events WHERE Extra['a'' OR 1=1 --'] = 'x'",
            "letters, digits",
        ),
        ("SELECT DISTINCT Name FROM events", "DISTINCT"),
        ("SELECT *, Name FROM events", "alone"),
        ("SELECT TI.category FROM events", "searched in WHERE"),
        ("SELECT * FROM events WHERE Name = 'a' || 'b'", "operator"),
        (
            "SELECT * FROM events WHERE inSubnet(SourceAddress, Name)",
            "quoted text",
        ),
        (
            "SELECT * FROM events WHERE inSubnet(SourceAddress, '10.0.0.0/33')",
            "is not a network",
        ),
        ("", "0 statements"),
    ];
    for (sql, says) in refused {
        let error = check(sql).map(|_| ()).unwrap_err().to_string();
        assert!(error.starts_with("sql: "), "{sql}: {error}");
        assert!(error.contains(says), "{sql}: {error}");
        assert!(error.len() < 300, "{sql}: {} bytes", error.len());
    }
}

#[test]
fn long_and_deep_queries_are_refused_without_recursing_far() {
    let long = format!(
        "SELECT * FROM events WHERE Name = '{}'",
        "x".repeat(MAX_SQL_BYTES)
    );
    assert!(check(&long).unwrap_err().to_string().contains("at most"));
    let deep = format!(
        "SELECT * FROM events WHERE {}Name = 'x'{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert!(check(&deep).is_err());
}

proptest! {
    /// Whatever the text, the checker answers: a search or a short refusal.
    #[test]
    fn the_checker_never_panics(sql in "\\PC{0,200}") {
        if let Err(error) = check(&sql) {
            prop_assert!(error.to_string().len() < 300);
        }
    }

    /// Near-misses of real queries: the same answer, never a panic.
    #[test]
    fn mutated_queries_never_panic(
        cut in 0usize..120,
        noise in "[ ();'`*,=<>a-zA-Z0-9.%-]{0,12}",
    ) {
        let base = "SELECT Name, count() AS n FROM events WHERE TI.category = 'x' AND inSubnet(SourceAddress, '10.0.0.0/8') GROUP BY Name HAVING n > 1 ORDER BY n DESC LIMIT 10";
        let cut = cut.min(base.len());
        let sql = format!("{}{}{}", &base[..cut], noise, &base[cut..]);
        let _ = check(&sql);
    }
}
