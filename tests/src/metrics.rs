//! Reading a service's Prometheus `/metrics` with curl.

use std::process::Command;

/// The body of `GET http://addr/metrics`, after checking it is a 200 in Prometheus' format.
pub fn scrape(addr: std::net::SocketAddr) -> String {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-"])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_owned()
}

/// The value of the sample of `metric` whose labels include every one of `labels`
/// (`method="/x"`), if there is one.
pub fn sample(body: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    body.lines().find_map(|line| {
        let rest = line.strip_prefix(metric)?;
        let (label_set, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let matches = labels.iter().all(|l| label_set.split(',').any(|x| x == *l));
        matches.then(|| value.trim().parse().expect("a sample value"))
    })
}
