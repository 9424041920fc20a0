//! `xdr-bench threatintel`, `enrichment`, `collector` and `gateway` run end to end on a small feed. Its figures are reported in
//! issue notes from release builds; nothing here asserts a speed.

use std::process::Command;

use xdr_tests::paths;

/// Runs `xdr-bench <args>` in a scratch folder with the workspace's binaries; its stdout.
fn bench(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(paths::binary("xdr-bench"))
        .args(args)
        .arg("--dir")
        .arg(dir.path())
        .arg("--bin-dir")
        .arg(paths::bin_dir())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn threatintel_bench_runs_on_a_small_feed() {
    let stdout = bench(&[
        "threatintel",
        "--indicators",
        "2000",
        "--lookups",
        "2000",
        "--duration",
        "200ms",
        "--batches",
        "1,64",
    ]);
    for expected in [
        "in-process: load",
        "resident memory",
        "batch     1:",
        "batch    64:",
    ] {
        assert!(stdout.contains(expected), "no `{expected}` in:\n{stdout}");
    }
    // Every other generated lookup is a hit on the feed (addresses in its networks, URLs under
    // its masks, subdomains of its domains); the misses' namespace was never generated.
    assert!(stdout.contains("(2000 lookups, 1000 matched)"), "{stdout}");
}

#[test]
fn enrichment_bench_runs_on_a_small_feed() {
    let stdout = bench(&[
        "enrichment",
        "--indicators",
        "2000",
        "--events",
        "2000",
        "--batch",
        "100",
        "--duration",
        "300ms",
    ]);
    for expected in ["in-process:", "Enrich over mTLS", "at half that rate"] {
        assert!(stdout.contains(expected), "no `{expected}` in:\n{stdout}");
    }
    // Nothing waits on the rule's timeout or finds the source down on loopback.
    assert!(stdout.contains("; 0 timed out or unavailable"), "{stdout}");
}

#[test]
fn collector_bench_runs_on_a_small_feed_and_store() {
    let stdout = bench(&[
        "collector",
        "--indicators",
        "2000",
        "--stored",
        "20000",
        "--batch",
        "100",
        "--duration",
        "300ms",
        "--clickhouse-shards",
        "127.0.0.107,127.0.0.108",
    ]);
    for expected in [
        "prepared a store of 20000 events",
        "events in the embedded store (SQLite):",
        "events in ClickHouse, two shards:",
        "no rule:",
        "the seed rule:",
        "Enrich alone",
        // One in 10,000 prepared events carries the seed's URL.
        "(2 rows)",
        "count() GROUP BY over the last day over ",
    ] {
        assert!(stdout.contains(expected), "no `{expected}` in:\n{stdout}");
    }
    // Searched in each store: the prepared events and the ones the ingest runs stored.
    for search in ["the seed's SELECT", "count() GROUP BY"] {
        let lines: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with(&format!("{search} over ")) && !l.contains("last day"))
            .collect();
        assert_eq!(lines.len(), 2, "a `{search}` line per store in:\n{stdout}");
        for line in lines {
            let stored: u64 = line[search.len() + " over ".len()..]
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no count in `{line}`"));
            assert!(stored > 20_000, "{line}");
            assert!(line.contains(" stored events: median "), "{line}");
            assert!(line.contains(", first "), "{line}");
        }
    }
    assert_eq!(stdout.matches("(2 rows)").count(), 2, "{stdout}");
}

#[test]
fn gateway_bench_runs_one_and_a_thousand_events_per_request() {
    let stdout = bench(&[
        "gateway",
        "--indicators",
        "2000",
        "--connections",
        "8",
        "--duration",
        "300ms",
    ]);
    for expected in [
        "1 event per request, 8 connections: ",
        "1,000 events per request, 8 connections: ",
        "IngestStream directly, 1,000-event batches",
        "ratios: 1 per request ",
    ] {
        assert!(stdout.contains(expected), "no `{expected}` in:\n{stdout}");
    }
}
