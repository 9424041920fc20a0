//! Faults in the compose environment while events flow through the gateway: the threat-intel
//! container stopped — every acknowledged event is stored (without its matches) and
//! enrichment resumes once it is back, nothing else restarted; the collector container killed
//! mid-stream — after it is started again no acknowledged event is missing.

use std::{
    collections::HashSet,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use serde_json::Value;
use xdr_tests::compose::{Compose, eventually, query_encoded, text};

/// Posts the seed's event to `/input`; its id once acknowledged (none when refused or the
/// collector is away).
fn post(bind: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--request", "POST"])
        .args(["--url", &format!("http://{bind}:8080/input")])
        .args(["--header", "Content-Type: application/json", "--data"])
        .arg(r#"{"RequestUrl":"http://fakess123bn.nu"}"#)
        .output()
        .ok()?;
    let reply: Value = serde_json::from_slice(&out.stdout).ok()?;
    reply["ids"][0].as_str().map(str::to_owned)
}

/// Events posted one by one on a thread of their own until stopped; the acknowledged ids.
struct Flow {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<String>>>,
    sender: Option<thread::JoinHandle<()>>,
}

impl Flow {
    fn start(bind: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let (stopping, acked) = (stop.clone(), acknowledged.clone());
        let sender = thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                if let Some(id) = post(bind) {
                    acked.lock().unwrap().push(id);
                } else {
                    thread::sleep(Duration::from_millis(50));
                }
            }
        });
        Flow {
            stop,
            acknowledged,
            sender: Some(sender),
        }
    }

    fn acknowledged(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    /// Waits (bounded) until `more` events past now are acknowledged.
    fn wait_for(&self, more: usize) {
        let target = self.acknowledged() + more;
        eventually("events acknowledged", Duration::from_secs(120), || {
            self.acknowledged() >= target
        });
    }

    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.sender.take().unwrap().join().unwrap();
        self.acknowledged.lock().unwrap().clone()
    }
}

/// Every stored event: id → enrichment status and first TI category.
fn stored(compose: &Compose, token: &str) -> Vec<(String, String, String)> {
    let sql = "SELECT * FROM events ORDER BY Timestamp LIMIT 10000";
    let (code, found) = compose.http(
        "GET",
        &format!("/v1/events?sql={}", query_encoded(sql)),
        Some(token),
        None,
    );
    assert_eq!(code, 200, "{found}");
    found["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["enrichmentStatus"].as_str().unwrap_or("").to_owned(),
                e["ti"][0]["category"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn docker(compose: &Compose, args: &[&str]) {
    let out = compose.run(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
}

#[test]
fn stopped_threat_intel_and_a_killed_collector_lose_no_acknowledged_event() {
    let compose = Compose::up("xdrfaults", "127.0.0.88");
    let token = compose.admin_token();
    let flow = Flow::start(compose.bind);
    flow.wait_for(10);

    // Threat intel stops: events still go in, stored without their matches.
    docker(&compose, &["stop", "--timeout", "5", "threatintel"]);
    flow.wait_for(10);
    // It comes back: enrichment resumes with nothing else restarted.
    docker(&compose, &["start", "threatintel"]);
    eventually("enrichment resumed", Duration::from_secs(120), || {
        stored(&compose, &token)
            .iter()
            .rev()
            .take(3)
            .any(|(_, status, category)| {
                status == "ENRICHMENT_STATUS_COMPLETE" && category == "KL_BotnetCnC_URL"
            })
            && flow.acknowledged() > 0
    });

    // The collector is killed mid-stream, then started again.
    flow.wait_for(5);
    let killed = Command::new("docker")
        .args(["kill", &compose.container("collector")])
        .output()
        .unwrap();
    assert!(killed.status.success(), "{}", text(&killed));
    docker(&compose, &["start", "collector"]);
    flow.wait_for(10);
    let acknowledged = flow.finish();

    let stored = stored(&compose, &token);
    let ids: HashSet<&str> = stored.iter().map(|(id, _, _)| id.as_str()).collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !ids.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged, missing: {missing:?}",
        acknowledged.len()
    );
    let unenriched = stored
        .iter()
        .filter(|(_, status, _)| status != "ENRICHMENT_STATUS_COMPLETE")
        .count();
    assert!(
        unenriched > 0,
        "the events of the outage are stored without matches"
    );
    assert_eq!(ids.len(), stored.len(), "no event stored twice");
}
