//! Configuration: every option documented with its variable and default, a TOML file under
//! the flags, bad settings refused by name, and one process per data directory.

use std::{process::Command, time::Duration};

use xdr_tests::{Cert, Grpcurl, ServiceProcess, TestPki, paths};

const BINARIES: [&str; 5] = [
    "xdr-collector",
    "xdr-enrichment",
    "xdr-threatintel",
    "xdr-playbook",
    "xdr-gateway",
];

#[test]
fn every_option_of_every_binary_is_documented_with_its_variable() {
    for binary in BINARIES {
        let output = Command::new(paths::binary(binary))
            .arg("--help")
            .output()
            .unwrap();
        assert!(output.status.success(), "{binary} --help");
        let help = String::from_utf8(output.stdout).unwrap();
        let lines: Vec<&str> = help.lines().collect();
        let mut options = 0;
        for (i, line) in lines.iter().enumerate() {
            let Some(option) = line.trim_start().strip_prefix("--") else {
                continue;
            };
            if option.starts_with("help") || option.starts_with("version") {
                continue;
            }
            options += 1;
            let text = lines.get(i + 1).copied().unwrap_or_default();
            assert!(
                text.contains("[env: XDR_"),
                "{binary} --{option}: no XDR_ variable in {text:?}"
            );
            assert!(
                text.split('[').next().is_some_and(|d| d.trim().len() > 10),
                "{binary} --{option}: no description"
            );
        }
        assert!(
            options >= 10,
            "{binary}: only {options} options found in:\n{help}"
        );
    }
}

/// A ping held longer than the request timeout is cut by the server's timeout layer, which
/// makes the configured timeout observable.
fn ping_status(pki: &TestPki, server: &ServiceProcess, delay_ms: u32) -> String {
    let outcome = Grpcurl::new(pki, Cert::Named("operator"))
        .data(&format!(r#"{{"delayMs": {delay_ms}}}"#))
        .call(server.listening_addr(), &["xdr.v1.Diagnostics/Ping"]);
    if outcome.success {
        "OK".to_owned()
    } else {
        outcome.stderr
    }
}

#[test]
fn config_file_sets_options_and_flags_override_it() {
    let pki = TestPki::new();
    let file = pki.scratch().join("threatintel.toml");
    std::fs::write(&file, "request-timeout = \"1s\"\nconcurrency_limit = 64\n").unwrap();
    let file = file.to_str().unwrap();

    let from_file = ServiceProcess::start_with("threatintel", &pki, &["--config", file]);
    let refused = ping_status(&pki, &from_file, 1500);
    assert!(
        refused.contains("Code: Canceled") && refused.contains("Timeout expired"),
        "{refused}"
    );

    let overridden = ServiceProcess::start_with(
        "threatintel",
        &pki,
        &["--config", file, "--request-timeout", "5s"],
    );
    assert_eq!(ping_status(&pki, &overridden, 1500), "OK");
}

#[test]
fn unknown_setting_in_config_file_is_refused_by_name() {
    let pki = TestPki::new();
    let file = pki.scratch().join("bad.toml");
    std::fs::write(&file, "lsten = \"127.0.0.1:0\"\n").unwrap();
    let mut process =
        ServiceProcess::spawn("xdr-playbook", &pki, &["--config", file.to_str().unwrap()]);
    let status = process.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(2));
    let output = process.log_lines().join("\n");
    assert!(
        output.contains("unknown setting `lsten`") && output.contains("bad.toml"),
        "{output}"
    );
}

#[test]
fn second_process_on_one_data_directory_is_refused() {
    let pki = TestPki::new();
    let data = pki.scratch().join("shared-data");
    let data = data.to_str().unwrap();
    let args = ["--listen", "127.0.0.1:0", "--data-dir", data];
    let first = ServiceProcess::spawn("xdr-collector", &pki, &args);
    first.listening_addr();
    let mut second = ServiceProcess::spawn("xdr-collector", &pki, &args);
    assert!(!second.wait_exit(Duration::from_secs(20)).success());
    let output = second.log_lines().join("\n");
    assert!(output.contains("in use by another process"), "{output}");
}
