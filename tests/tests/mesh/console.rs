//! The web console in a real browser: a fresh `xdrctl up`, the seed's event raising an alert,
//! the UserGate emulator as the appliance, and people of several roles and two tenants with
//! passwords; then `tests/console/console_test.py` drives headless Chromium (Debian's
//! `chromium` and `chromium-driver`, installed by tests/run.sh) over WebDriver through the
//! analyst's story. Screenshots of each page land in `target/console-screenshots/`.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::json;
use xdr_tests::{mesh_up, paths, playbook::UserGate};

const HOST: &str = "127.0.0.86";
const PASSWORD: &str = "console-Passw0rd-long";
const USERGATE_PASSWORD: &str = "Utm-console-5ecret";
const SEED_SELECT: &str = "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250";

/// `xdrctl ARGS` against the mesh, with `stdin` as its input; its standard output.
fn xdrctl(home: &Path, args: &[&str], stdin: &str) -> String {
    mesh_up::xdrctl_with_input(home, HOST, args, stdin)
}

fn which(candidates: &[&str]) -> String {
    candidates
        .iter()
        .find(|path| Path::new(path).exists())
        .unwrap_or_else(|| {
            panic!("none of {candidates:?}: tests/run.sh installs chromium and chromium-driver")
        })
        .to_string()
}

#[test]
fn an_analyst_answers_the_seeds_alert_from_the_web_console() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let _up = mesh_up::up(home, HOST);
    let usergate = UserGate::start(USERGATE_PASSWORD, "5m");
    xdrctl(
        home,
        &[
            "secret",
            "create",
            "usergate",
            "--user",
            "xdr-api",
            "--url",
            &usergate.url(),
        ],
        USERGATE_PASSWORD,
    );
    for (user, role, tenant) in [
        ("ann", "tier1-analyst", "Main"),
        ("jo", "junior-analyst", "Main"),
        ("olga", "observer", "Main"),
        ("tess", "tier1-analyst", "Other"),
        ("adam", "tenant-administrator", "Main"),
    ] {
        xdrctl(
            home,
            &[
                "user",
                "create",
                user,
                "--role",
                role,
                "--tenant",
                tenant,
                "--password-stdin",
            ],
            PASSWORD,
        );
    }
    // Another tenant's alert, which Main's people must not see (and the other way round),
    // and a saved filter of Main's, as the first Main administrator makes them.
    let admin = std::fs::read_to_string(home.join("data/gateway/first-admin-token")).unwrap();
    let admin = admin.trim();
    let create = |path: &str, body: serde_json::Value| -> serde_json::Value {
        let made = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "30"])
            .args(["-H", &format!("Authorization: Bearer {admin}")])
            .args(["-H", "Content-Type: application/json", "--data"])
            .arg(body.to_string())
            .arg(format!("http://{HOST}:8080{path}"))
            .output()
            .unwrap();
        assert!(made.status.success(), "{path}: {made:?}");
        serde_json::from_slice(&made.stdout).unwrap()
    };
    create(
        "/v1/alerts",
        json!({"tenant": "Other", "title": "Other's alert", "severity": "SEVERITY_HIGH",
               "observables": [{"type": "INDICATOR_TYPE_IP", "value": "203.0.113.9"}]}),
    );
    create(
        "/v1/enrichment/filters",
        json!({"name": "Web requests", "tenant": "Main", "description": "events with a URL",
               "root": {"condition": {"left": {"field": "RequestUrl"},
                        "operator": "OPERATOR_STARTS_WITH", "right": [{"constant": {"text": "http"}}]}}}),
    );

    // The seed's curl raises the alert the analyst answers.
    let curl = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "30", "--request", "POST"])
        .args(["--url", &format!("http://{HOST}:8080/input")])
        .args(["--header", "Content-Type: application/json"])
        .args(["--data", r#"{"RequestUrl":"http://fakess123bn.nu"}"#])
        .output()
        .unwrap();
    assert!(curl.status.success(), "{curl:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let alert_id = loop {
        let listed = xdrctl(home, &["alerts", "list"], "");
        if listed.contains("KL_BotnetCnC_URL") {
            break listed.split_whitespace().next().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the seed's alert within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    create(
        "/v1/incidents",
        json!({"tenant": "Main", "title": "Botnet C&C traffic", "alertIds": [alert_id]}),
    );

    let screenshots = paths::workspace().join("target/console-screenshots");
    let _ = std::fs::remove_dir_all(&screenshots);
    std::fs::create_dir_all(&screenshots).unwrap();
    let config = json!({
        "console": format!("http://{HOST}:8080"),
        "usergate": usergate.url().trim_end_matches("/rpc"),
        "usergate_password": USERGATE_PASSWORD,
        "password": PASSWORD,
        "admin_token": admin,
        "select": SEED_SELECT,
        "screenshots": screenshots,
        "chromium": which(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]),
        "chromedriver": which(&["/usr/bin/chromedriver"]),
    });
    let run = Command::new(paths::python())
        .arg(paths::workspace().join("tests/console/console_test.py"))
        .arg(config.to_string())
        .output()
        .expect("python runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "the browser story failed:\n{said}");
    assert!(said.contains("every check held"), "{said}");
    for page in [
        "01-alerts",
        "04-launched",
        "05-events",
        "08-alert-card-390x844",
    ] {
        assert!(
            screenshots.join(format!("{page}.png")).exists(),
            "screenshot {page}"
        );
    }
}
