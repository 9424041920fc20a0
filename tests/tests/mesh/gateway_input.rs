//! Event input through the gateway's HTTP `/input`, with curl against a fresh `xdrctl up`:
//! the seed's curl byte for byte, then the seed's SELECT finds the event enriched; NDJSON,
//! gzip and deflate bodies with per-event refusals; one-event posts at once sharing
//! `IngestStream` messages; and every limit answered with its status and a JSON error.

use std::{
    io::Write,
    net::TcpStream,
    process::{Command, Output},
    time::Duration,
};

use serde_json::{Value, json};
use xdr_tests::{Cert, Grpcurl, mesh_up, metrics};

const SEED_SELECT: &str = "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250";

/// curl's answer: the status code, the `Retry-After` header, the body as JSON.
struct Answer {
    code: u16,
    retry_after: Option<u64>,
    body: Value,
}

fn answer(output: &Output) -> Answer {
    assert!(
        output.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout.clone()).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let code = head[9..12].parse().expect("a status code");
    let retry_after = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().parse().expect("Retry-After in seconds"))
    });
    Answer {
        code,
        retry_after,
        body: serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")),
    }
}

/// `curl -D - <args>`, the body from `stdin`.
fn curl(args: &[&str], stdin: &[u8]) -> Answer {
    let mut child = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D", "-"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("curl runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    answer(&child.wait_with_output().unwrap())
}

fn compressed(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut child = Command::new(match encoding {
        "gzip" => "gzip",
        _ => "python3",
    })
    .args(match encoding {
        "gzip" => vec!["-c"],
        _ => vec![
            "-c",
            "import sys, zlib; sys.stdout.buffer.write(zlib.compress(sys.stdin.buffer.read()))",
        ],
    })
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    child.wait_with_output().unwrap().stdout
}

#[test]
fn the_seeds_curl_is_acknowledged_and_the_seeds_select_finds_it_enriched() {
    const HOST: &str = "127.0.0.80";
    let home = tempfile::tempdir().unwrap();
    let mut up = mesh_up::up(home.path(), HOST);
    let input = format!("http://{HOST}:8080/input");

    // The seed's command, byte for byte (its host is ours).
    let output = Command::new("curl")
        .args(["-sS", "-D", "-", "--max-time", "30"])
        .args(["--request", "POST", "--url", &input])
        .args(["--header", "Content-Type: application/json"])
        .args(["--data", r#"{"RequestUrl":"http://fakess123bn.nu"}"#])
        .output()
        .unwrap();
    let seed = answer(&output);
    assert_eq!(seed.code, 200, "{}", seed.body);
    assert_eq!(seed.body["accepted"], 1);
    assert_eq!(seed.body["refused"], 0);
    let id = seed.body["ids"][0].as_str().unwrap().to_owned();

    let certs = home.path().join("certs");
    let search = |sql: &str| -> Value {
        let out = Grpcurl::with_certs(&certs, Cert::Named("operator"))
            .server_name("collector")
            .data(&json!({ "sql": sql }).to_string())
            .ok(
                format!("{HOST}:7201").parse().unwrap(),
                &["xdr.v1.Collector/SearchEvents"],
            );
        serde_json::from_str(&out).unwrap()
    };
    let found = search(SEED_SELECT);
    let event = &found["events"][0];
    assert_eq!(event["id"], id.as_str(), "{found}");
    assert_eq!(event["collector"], "http-input");
    assert_eq!(event["ti"][0]["category"], "KL_BotnetCnC_URL", "{found}");
    assert_eq!(event["raw"], r#"{"RequestUrl":"http://fakess123bn.nu"}"#);

    // NDJSON, plain, gzip and deflate: each answer names its own refusals by position.
    let ndjson =
        b"{\"RequestUrl\":\"http://a.example/1\"}\r\nnot json\n\n{\"SourceAddress\":\"192.0.2.7\"}";
    for encoding in ["identity", "gzip", "deflate"] {
        let body = match encoding {
            "identity" => ndjson.to_vec(),
            other => compressed(other, ndjson),
        };
        let header = format!("Content-Encoding: {encoding}");
        let taken = curl(&["--data-binary", "@-", "-H", &header, &input], &body);
        assert_eq!(taken.code, 200, "{encoding}: {}", taken.body);
        assert_eq!(taken.body["accepted"], 2, "{encoding}: {}", taken.body);
        assert_eq!(taken.body["refused"], 1);
        assert_eq!(taken.body["ids"].as_array().unwrap().len(), 2);
        assert_eq!(taken.body["errors"][0]["index"], 1, "{}", taken.body);
        assert!(
            taken.body["errors"][0]["reason"]
                .as_str()
                .unwrap()
                .starts_with("not JSON"),
            "{}",
            taken.body
        );
    }
    // 3 × (1 URL event + 1 address event) beside the seed's.
    let counted = search("SELECT count() FROM events WHERE RequestUrl = 'http://a.example/1'");
    assert_eq!(counted["rows"][0]["cells"][0]["integer"], "3", "{counted}");

    // Every event refused: 400, with the reasons; nothing, an unknown collector, a gRPC-only
    // collector, an encoding the gateway does not take: each its own status, in JSON.
    let refused = curl(&["--data", "garbage", &input], b"");
    assert_eq!(refused.code, 400, "{}", refused.body);
    assert_eq!(refused.body["code"], "invalid_argument");
    assert_eq!(refused.body["refused"], 1);
    let empty = curl(&["--data-binary", "@-", &input], b"\n \n");
    assert_eq!(empty.code, 400);
    assert!(
        empty.body["message"]
            .as_str()
            .unwrap()
            .contains("no events")
    );
    let unknown = curl(
        &[
            "--data",
            "{}",
            &format!("http://{HOST}:8080/collectors/nope/input"),
        ],
        b"",
    );
    assert_eq!(unknown.code, 404, "{}", unknown.body);
    assert_eq!(unknown.body["code"], "not_found");
    let created = mesh_up::xdrctl(home.path(), HOST, &["collector", "create", "grpc-only"]);
    assert!(created.status.success(), "{created:?}");
    let grpc_only = curl(
        &[
            "--data",
            "{}",
            &format!("http://{HOST}:8080/collectors/grpc-only/input"),
        ],
        b"",
    );
    assert_eq!(grpc_only.code, 404, "{}", grpc_only.body);
    assert!(
        grpc_only.body["message"]
            .as_str()
            .unwrap()
            .contains("takes no HTTP input"),
        "{}",
        grpc_only.body
    );
    // A collector given an input token takes input only with it.
    let guarded = mesh_up::xdrctl(
        home.path(),
        HOST,
        &["collector", "create", "guarded", "--http", "--input-token"],
    );
    assert!(guarded.status.success(), "{guarded:?}");
    let said = String::from_utf8(guarded.stderr).unwrap();
    let token = said.lines().last().unwrap().trim().to_owned();
    assert_eq!(token.len(), 43, "{said}");
    let guarded_input = format!("http://{HOST}:8080/collectors/guarded/input");
    let open = curl(&["--data", "{}", &guarded_input], b"");
    assert_eq!(open.code, 401, "{}", open.body);
    assert_eq!(open.body["code"], "unauthenticated");
    let wrong = curl(
        &[
            "--data",
            "{}",
            "-H",
            "Authorization: Bearer not-it",
            &guarded_input,
        ],
        b"",
    );
    assert_eq!(wrong.code, 401, "{}", wrong.body);
    let bearer = format!("Authorization: Bearer {token}");
    let right = curl(&["--data", "{}", "-H", &bearer, &guarded_input], b"");
    assert_eq!(right.code, 200, "{}", right.body);
    assert_eq!(right.body["accepted"], 1);

    let brotli = curl(&["--data", "{}", "-H", "Content-Encoding: br", &input], b"");
    assert_eq!(brotli.code, 415, "{}", brotli.body);

    // One-event posts at once share batches; each is answered with its own event's id.
    let collector_metrics = format!("{HOST}:9201").parse().unwrap();
    let batches = |body: &str| {
        metrics::sample(body, "xdr_collector_batch_duration_seconds_count", &[]).unwrap_or(0.0)
    };
    let before = batches(&metrics::scrape(collector_metrics));
    const POSTS: usize = 200;
    // curl's URL range makes 200 transfers, run 100 at a time, each answer to its own file.
    let answers_dir = home.path().join("answers");
    let burst = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-Z", "--parallel-max", "100"])
        .args(["--data", r#"{"RequestUrl":"http://burst.example/"}"#])
        .arg("--create-dirs")
        .arg("-o")
        .arg(answers_dir.join("answer_#1.json"))
        .arg(format!("{input}?n=[1-{POSTS}]"))
        .output()
        .unwrap();
    assert!(burst.status.success(), "{burst:?}");
    let answers: Vec<Value> = (1..=POSTS)
        .map(|n| {
            let text =
                std::fs::read_to_string(answers_dir.join(format!("answer_{n}.json"))).unwrap();
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        })
        .collect();
    let mut ids: Vec<&str> = answers
        .iter()
        .map(|a| {
            assert_eq!(a["accepted"], 1, "{a}");
            assert_eq!(a["ids"].as_array().unwrap().len(), 1, "{a}");
            a["ids"][0].as_str().unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), POSTS, "every post has its own event");
    let scraped = metrics::scrape(collector_metrics);
    let sent = batches(&scraped) - before;
    assert!(
        sent >= 1.0 && sent < POSTS as f64,
        "{POSTS} posts took {sent} IngestStream messages"
    );
    let stored = search("SELECT count() FROM events WHERE RequestUrl = 'http://burst.example/'");
    assert_eq!(stored["rows"][0]["cells"][0]["integer"], POSTS.to_string());

    let gateway = metrics::scrape(format!("{HOST}:8080").parse().unwrap());
    let accepted = metrics::sample(
        &gateway,
        "xdr_gateway_input_events_total",
        &[r#"outcome="accepted""#],
    );
    // The seed's, 3 × 2 from the encodings, the guarded collector's, the burst.
    assert_eq!(accepted, Some((1 + 3 * 2 + 1 + POSTS) as f64), "{gateway}");
    let ok_posts = metrics::sample(
        &gateway,
        "xdr_gateway_http_requests_total",
        &[r#"route="/input""#, r#"status="200""#],
    );
    assert_eq!(ok_posts, Some((1 + 3 + POSTS) as f64));

    up.signal(libc::SIGINT);
    assert!(up.wait_exit(Duration::from_secs(60)).success());
}

#[test]
fn input_past_a_limit_is_answered_413_429_or_503_and_the_gateway_stays_up() {
    const HOST: &str = "127.0.0.81";
    let home = tempfile::tempdir().unwrap();
    // The gateway reads its limits from the environment xdrctl up passes on.
    let mut command = mesh_up::up_command(home.path(), HOST);
    command
        .arg("--bin-dir")
        .arg(xdr_tests::paths::bin_dir())
        .env("XDR_INPUT_MAX_BODY_BYTES", "1000")
        .env("XDR_INPUT_MAX_IN_FLIGHT", "1")
        .env("XDR_INPUT_CLIENT_RATE", "2")
        .env("XDR_LOGIN_RATE", "2")
        .env("XDR_INPUT_LISTEN", format!("http-input={HOST}:8090"));
    let mut up = xdr_tests::ServiceProcess::watch("xdrctl up", command);
    up.wait_for_line("the mesh being up", Duration::from_secs(90), |l| {
        l.starts_with("xdr mesh is up")
    });
    let input = format!("http://{HOST}:8080/input");
    // The rate is per client address: each part below posts from its own.
    let from = |source: &str, args: &[&str], body: &[u8]| {
        let mut all = vec!["--interface", source];
        all.extend_from_slice(args);
        all.push(&input);
        curl(&all, body)
    };

    // A body past 1000 bytes, as sent or once inflated (a 200 kB gzip bomb of 1 kB).
    let large = format!("{{\"Message\":\"{}\"}}", "x".repeat(1000));
    let too_large = from("127.0.0.11", &["--data-binary", "@-"], large.as_bytes());
    assert_eq!(too_large.code, 413, "{}", too_large.body);
    assert_eq!(too_large.body["code"], "resource_exhausted");
    let bomb = compressed("gzip", &vec![b' '; 200_000]);
    assert!(bomb.len() < 1000);
    let inflated = from(
        "127.0.0.12",
        &["--data-binary", "@-", "-H", "Content-Encoding: gzip"],
        &bomb,
    );
    assert_eq!(inflated.code, 413, "{}", inflated.body);
    let corrupt = from(
        "127.0.0.12",
        &["--data-binary", "@-", "-H", "Content-Encoding: gzip"],
        b"not gzip at all",
    );
    assert_eq!(corrupt.code, 400, "{}", corrupt.body);

    // One request held open (its body never finishes) is all the gateway takes at once.
    let mut held = TcpStream::connect((HOST, 8080)).unwrap();
    held.write_all(
        format!("POST /input HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100\r\n\r\n{{\"Req")
            .as_bytes(),
    )
    .unwrap();
    let mut busy = None;
    for attempt in 0..100 {
        let source = format!("127.0.1.{attempt}");
        let answered = from(&source, &["--data", "{}"], b"");
        if answered.code == 503 {
            busy = Some(answered);
            break;
        }
        // Until the held request has reached its handler, this one goes through.
        assert_eq!(answered.code, 200, "{}", answered.body);
    }
    let busy = busy.expect("a 503 while a request is held");
    assert_eq!(busy.body["code"], "unavailable");
    assert_eq!(busy.retry_after, Some(1));
    drop(held);

    // Past 2 requests a second from one address: 429, with when to come back.
    let mut limited = None;
    for _ in 0..20 {
        let answered = from("127.0.0.14", &["--data", "{}"], b"");
        if answered.code == 429 {
            limited = Some(answered);
            break;
        }
        assert!(matches!(answered.code, 200 | 503), "{}", answered.body);
    }
    let limited = limited.expect("a 429 within 20 quick requests at 2 a second");
    assert_eq!(limited.body["code"], "resource_exhausted");
    assert!(limited.retry_after.is_some_and(|s| s >= 1));

    // Sign-ins past 2 a minute from one address: 429 (before any password is checked).
    let login = format!("http://{HOST}:8080/v1/people/login");
    let mut codes = Vec::new();
    for _ in 0..3 {
        let tried = curl(
            &[
                "--interface",
                "127.0.0.16",
                "-H",
                "Content-Type: application/json",
                "--data",
                r#"{"name":"admin","password":"not the password"}"#,
                &login,
            ],
            b"",
        );
        codes.push(tried.code);
    }
    assert_eq!(codes, [401, 401, 429]);

    // The collector's own port: /input there is that collector's, and nothing else is served.
    let own = curl(
        &[
            "--interface",
            "127.0.0.17",
            "--data",
            r#"{"RequestUrl":"http://own-port.example/"}"#,
            &format!("http://{HOST}:8090/input"),
        ],
        b"",
    );
    assert_eq!(own.code, 200, "{}", own.body);
    assert_eq!(own.body["accepted"], 1);
    let other = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .arg(format!("http://{HOST}:8090/openapi.json"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&other.stdout), "404");

    // Still up, and still taking input.
    let mut taken = None;
    for _ in 0..50 {
        let answered = from("127.0.0.15", &["--data", "{}"], b"");
        if answered.code == 200 {
            taken = Some(answered);
            break;
        }
        assert_eq!(answered.code, 503, "{}", answered.body);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(taken.expect("input taken again").body["accepted"], 1);

    up.signal(libc::SIGINT);
    assert!(up.wait_exit(Duration::from_secs(60)).success());
}
