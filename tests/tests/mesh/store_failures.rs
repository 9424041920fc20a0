//! A store that cannot write — here the file-size limit of the process, as a full disk looks
//! to it — answers UNAVAILABLE naming the store, not INTERNAL; the service stays up, keeps
//! what it had accepted, and answers reads.

use std::{os::unix::process::CommandExt, process::Command};

use serde_json::json;
use xdr_tests::{Cert, Grpcurl, ServiceProcess, TestPki, collector, enrichment::ok, paths};

/// Largest file the service may grow, in bytes: room for a fresh store and a few rules.
const FILE_LIMIT: libc::rlim_t = 4 << 20;

/// Runs `command` with files limited to [`FILE_LIMIT`]: a write past it fails with EFBIG.
fn limit_file_size(command: &mut Command) {
    // SAFETY: setrlimit(2) and signal(2) are async-signal-safe, as pre_exec requires. An
    // ignored SIGXFSZ stays ignored across exec: a write past the limit fails with EFBIG
    // instead of killing the process.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: FILE_LIMIT,
                rlim_max: FILE_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
}

#[test]
fn a_store_that_cannot_write_is_unavailable_and_what_it_held_stays() {
    let pki = TestPki::new();
    let data = pki.scratch().join("enrichment-data");
    let mut command = Command::new(paths::binary("xdr-enrichment"));
    command
        .arg("--tls-dir")
        .arg(pki.certs())
        .args(["--log-format", "json", "--listen", "127.0.0.1:0"])
        .args([
            "--metrics-listen",
            "127.0.0.1:0",
            "--threatintel-addr",
            "127.0.0.1:9",
        ])
        .arg("--data-dir")
        .arg(&data);
    limit_file_size(&mut command);
    let server = ServiceProcess::watch("xdr-enrichment", command);
    server.listening_addr();
    let kept = ok(
        &pki,
        &server,
        "CreateRule",
        &json!({"name": "Kept", "mapping": [{"field": "RequestUrl", "indicatorType": "INDICATOR_TYPE_URL"}]}),
    );
    // A list far past the file limit.
    let entries: Vec<_> = (0..200_000)
        .map(|i| json!({"key": format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)}))
        .collect();
    let big = json!({"name": "Too big to store", "kind": "RESOURCE_KIND_ACTIVE_LIST", "entries": entries});
    let refused = Grpcurl::new(&pki, Cert::Named("operator"))
        .stream(&big.to_string())
        .call(
            server.listening_addr(),
            &["xdr.v1.Enrichment/CreateResource"],
        );
    assert!(!refused.success, "{}", refused.stdout.len());
    assert!(
        refused.stderr.contains("Code: Unavailable") && refused.stderr.contains("the rule store"),
        "{}",
        refused.stderr
    );
    let read = ok(&pki, &server, "GetRule", &json!({"id": kept["id"]}));
    assert_eq!(read["name"], "Kept");
    let listed = ok(&pki, &server, "ListResources", &json!({}));
    assert!(listed.get("resources").is_none(), "{listed}");
}

#[test]
fn a_full_disk_refuses_new_batches_and_loses_none_it_acknowledged() {
    let pki = TestPki::new();
    let data = pki.scratch().join("collector-data");
    let mut command = Command::new(paths::binary("xdr-collector"));
    command
        .arg("--tls-dir")
        .arg(pki.certs())
        .args(["--log-format", "json", "--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data);
    limit_file_size(&mut command);
    let mut server = ServiceProcess::watch("xdr-collector", command);
    server.listening_addr();
    collector::create(&pki, &server, "in", "Main", &["n"], &[]);
    let first = collector::ingest_raw(&pki, &server, "in", "{\"n\":1}\n{\"n\":2}\n");
    assert_eq!(first["accepted"], 2, "{first}");

    // Batches of 1 MB events until the disk buffer's file reaches the limit.
    let big: String = (0..3)
        .map(|i| format!("{{\"n\":\"{i}{}\"}}\n", "x".repeat(1 << 20)))
        .collect();
    let request = json!({"collector": "in", "raw": collector::bytes(&big)}).to_string();
    let mut acknowledged = 2;
    let mut refused = None;
    for _ in 0..8 {
        let outcome = Grpcurl::new(&pki, Cert::Named("operator"))
            .stream(&request)
            .call(server.listening_addr(), &["xdr.v1.Collector/Ingest"]);
        if !outcome.success {
            refused = Some(outcome.stderr);
            break;
        }
        acknowledged += 3;
    }
    let refused = refused.expect("the disk filled up within 8 batches of 3 MB");
    assert!(
        refused.contains("Code: Unavailable") && refused.contains("the disk buffer"),
        "{refused}"
    );
    // The service is up and says so.
    let stats = collector::ok(&pki, &server, "Stats", &json!({}));
    assert_eq!(stats["collectors"][0]["refusedBatches"], "1", "{stats}");
    assert_eq!(
        stats["collectors"][0]["accepted"],
        acknowledged.to_string(),
        "{stats}"
    );
    server.signal(libc::SIGTERM);
    server.wait_exit(std::time::Duration::from_secs(30));

    // With room on the disk again, every acknowledged event is there, once.
    let server = ServiceProcess::start_in("collector", &pki, &data, &[]);
    assert_eq!(
        collector::count(&pki, &server, "SELECT count() FROM events"),
        acknowledged
    );
}
