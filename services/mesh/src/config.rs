//! Flags shared by every binary, and the one way to parse a binary's configuration:
//! command-line flags, then `XDR_*` environment variables, then a TOML file, then defaults.
//!
//! The TOML file works by turning its keys into the defaults of the matching flags before
//! the final parse, so clap's own precedence (flag > env > default) does the merging and
//! `--help` still shows the built-in defaults.

use std::{
    ffi::OsString,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::Parser;

use crate::{
    directory::ServiceEntry,
    pki,
    tls::{TlsFiles, TlsMaterial},
};

/// The home of a mesh started on one machine: certificates, data and logs under one folder.
pub const DEFAULT_HOME: &str = ".xdr";

/// Where a service finds its certificate, key and the mesh CA.
#[derive(clap::Args, Clone, Debug)]
pub struct TlsArgs {
    /// Folder holding `ca.crt`, `<service>.crt` and `<service>.key` (as `xdrctl certs` writes).
    #[arg(
        long,
        env = "XDR_TLS_DIR",
        default_value = ".xdr/certs",
        value_name = "DIR"
    )]
    pub tls_dir: PathBuf,
    /// Mesh CA certificate (PEM); overrides `<tls-dir>/ca.crt`.
    #[arg(long, env = "XDR_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// This service's certificate chain (PEM); overrides `<tls-dir>/<service>.crt`.
    #[arg(long, env = "XDR_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// This service's private key (PEM); overrides `<tls-dir>/<service>.key`.
    #[arg(long, env = "XDR_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The files of `dir` as `xdrctl certs` wrote them, nothing overridden.
    pub fn in_dir(dir: &Path) -> Self {
        TlsArgs {
            tls_dir: dir.to_owned(),
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
        }
    }

    pub fn files(&self, identity: &str) -> TlsFiles {
        let in_dir = |name: String| self.tls_dir.join(name);
        TlsFiles {
            ca: self
                .tls_ca
                .clone()
                .unwrap_or_else(|| in_dir(pki::CA_CERT_FILE.to_owned())),
            cert: self
                .tls_cert
                .clone()
                .unwrap_or_else(|| in_dir(pki::cert_file(identity))),
            key: self
                .tls_key
                .clone()
                .unwrap_or_else(|| in_dir(pki::key_file(identity))),
        }
    }

    pub fn load(&self, identity: &str) -> Result<TlsMaterial, crate::tls::TlsError> {
        TlsMaterial::load(&self.files(identity))
    }
}

/// Logging.
#[derive(clap::Args, Clone, Debug)]
pub struct LogArgs {
    /// Log filter in RUST_LOG syntax, e.g. `info` or `info,xdr_mesh=debug`.
    #[arg(long, env = "XDR_LOG", default_value = "info", value_name = "FILTER")]
    pub log: String,
    /// Log line format on stderr.
    #[arg(long, env = "XDR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// OTLP/gRPC endpoint spans are exported to (`http://collector:4317`); unset: the standard
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; neither: no spans are exported. `OTEL_SERVICE_NAME`,
    /// `OTEL_TRACES_SAMPLER[_ARG]` and `OTEL_BSP_*` are read as the OpenTelemetry SDK defines.
    #[arg(long, env = "XDR_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// CA certificate (PEM) an `https://` OTLP endpoint's certificate must chain to.
    #[arg(long, env = "XDR_OTLP_CA", value_name = "FILE")]
    pub otlp_ca: Option<PathBuf>,
}

impl LogArgs {
    /// The OTLP endpoint: the flag, else the OpenTelemetry variable; empty counts as unset.
    pub fn otlp_endpoint(&self) -> Option<String> {
        self.otlp_endpoint
            .clone()
            .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
            .filter(|endpoint| !endpoint.trim().is_empty())
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Behaviour of a gRPC server under load and at shutdown.
#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    /// Longest a call may run (a client's shorter `grpc-timeout` wins), e.g. `30s`, `500ms`.
    #[arg(long, env = "XDR_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Calls in progress at once across all connections, a stream counting until it ends;
    /// more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "XDR_CONCURRENCY_LIMIT", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency_limit: u32,
    /// Longest a client may take to complete the TLS handshake.
    #[arg(long, env = "XDR_HANDSHAKE_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// TLS handshakes in progress at once; past this the oldest is dropped, so silent
    /// connections cannot keep live clients out.
    #[arg(long, env = "XDR_MAX_HANDSHAKES", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_handshakes: u32,
    /// Established connections at once; past this a new connection is closed.
    #[arg(long, env = "XDR_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Longest a client stream (`IngestStream`, `Enrich`, `LookupStream`) may send nothing;
    /// then it ends with DEADLINE_EXCEEDED and gives back its slot (clients of the mesh
    /// close their own idle streams after 5 minutes).
    #[arg(long, env = "XDR_STREAM_IDLE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub stream_idle: Duration,
    /// After SIGTERM/SIGINT, how long in-flight calls may run before the server stops anyway.
    #[arg(long, env = "XDR_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}

/// The configuration-file flag every binary flattens into its own config.
#[derive(clap::Args, Clone, Debug)]
pub struct ConfigFileArg {
    /// TOML file of settings: each key is a flag name (`request-timeout = "5s"`); flags and
    /// XDR_* variables override it.
    #[arg(long, env = "XDR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Toml {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{path}: unknown setting `{key}` (settings are the flag names of --help)")]
    UnknownKey { path: PathBuf, key: String },
    #[error("{path}: `{key}` must be a string, number or boolean")]
    UnsupportedValue { path: PathBuf, key: String },
    #[error(transparent)]
    Cli(#[from] clap::Error),
}

/// Parses the process's arguments into `C`; prints the error (or `--help`) and exits on failure.
pub fn parse<C: Parser>() -> C {
    exit_on_error(try_parse_from::<C>(std::env::args_os()))
}

/// As [`parse`], for a mesh service whose `C` flattens [`ServiceArgs`]: its addresses default
/// to `service`'s in the directory.
pub fn parse_service<C: Parser>(service: &ServiceEntry) -> C {
    exit_on_error(try_parse_service_from::<C>(service, std::env::args_os()))
}

/// As [`try_parse_from`], with `service`'s default addresses.
pub fn try_parse_service_from<C: Parser>(
    service: &ServiceEntry,
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
) -> Result<C, ConfigError> {
    let mut defaults = vec![("metrics_listen", service.default_http_listen().to_string())];
    if let Some(listen) = service.default_grpc_listen() {
        defaults.push(("listen", listen.to_string()));
    }
    try_parse_with_defaults(args, &defaults)
}

fn exit_on_error<C>(parsed: Result<C, ConfigError>) -> C {
    match parsed {
        Ok(config) => config,
        Err(ConfigError::Cli(error)) => error.exit(),
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(2)
        }
    }
}

/// Parses `args` into `C`, with the TOML file named by `--config`/`XDR_CONFIG` under them.
pub fn try_parse_from<C: Parser>(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
) -> Result<C, ConfigError> {
    try_parse_with_defaults(args, &[])
}

/// `defaults` (argument id, value) stand under the TOML file: they are what `--help` shows.
fn try_parse_with_defaults<C: Parser>(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    defaults: &[(&'static str, String)],
) -> Result<C, ConfigError> {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut command = C::command();
    for (id, value) in defaults {
        command = command.mut_arg(*id, |arg| arg.default_value(value.clone()));
    }
    // First pass: only to find the config file; everything else is checked by the second.
    let first = command
        .clone()
        .ignore_errors(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .try_get_matches_from(&args)?;
    let config_file = first
        .try_get_one::<PathBuf>("config")
        .ok()
        .flatten()
        .cloned();
    if let Some(path) = config_file {
        command = apply_config_file(command, &path)?;
    }
    let matches = command.try_get_matches_from(&args)?;
    Ok(C::from_arg_matches(&matches)?)
}

fn apply_config_file(
    mut command: clap::Command,
    path: &Path,
) -> Result<clap::Command, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|source| ConfigError::Toml {
        path: path.to_owned(),
        source,
    })?;
    for (key, value) in table {
        let id = key.replace('-', "_");
        let known = id != "config"
            && command
                .get_arguments()
                .any(|arg| arg.get_id() == id.as_str());
        if !known {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key,
            });
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(ConfigError::UnsupportedValue {
                    path: path.to_owned(),
                    key,
                });
            }
        };
        command = command.mut_arg(id, |arg| arg.default_value(value));
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser, Debug)]
    struct Demo {
        #[command(flatten)]
        config: ConfigFileArg,
        #[arg(long, default_value = "127.0.0.1:1")]
        listen: String,
        #[arg(long, env = "XDR_TEST_CONFIG_LIMIT", default_value_t = 7)]
        limit: u32,
        #[arg(long)]
        debug: bool,
        #[command(flatten)]
        server: ServerArgs,
    }

    fn file(contents: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(&path, contents).unwrap();
        (dir, path)
    }

    #[test]
    fn file_sets_defaults_and_flags_override_it() {
        let (_dir, path) =
            file("listen = \"0.0.0.0:9\"\nlimit = 3\ndebug = true\nrequest-timeout = \"5s\"\n");
        let path = path.to_str().unwrap();
        let demo: Demo = try_parse_from(["x", "--config", path]).unwrap();
        assert_eq!(
            (demo.listen.as_str(), demo.limit, demo.debug),
            ("0.0.0.0:9", 3, true)
        );
        assert_eq!(demo.server.request_timeout, Duration::from_secs(5));
        let demo: Demo = try_parse_from(["x", "--config", path, "--limit", "4"]).unwrap();
        assert_eq!(demo.limit, 4);
        let demo: Demo = try_parse_from(["x"]).unwrap();
        assert_eq!(
            (demo.listen.as_str(), demo.limit, demo.debug),
            ("127.0.0.1:1", 7, false)
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let (_dir, path) = file("lsten = \"x\"\n");
        let err = try_parse_from::<Demo>(["x", "--config", path.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("unknown setting `lsten`"), "{err}");
        let (_dir, path) = file("limit = \"many\"\n");
        let err = try_parse_from::<Demo>(["x", "--config", path.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("many"), "{err}");
        let (_dir, path) = file("concurrency-limit = 0\n");
        let err = try_parse_from::<Demo>(["x", "--config", path.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("concurrency-limit"), "{err}");
    }

    #[test]
    fn missing_file_is_reported_by_path() {
        let err = try_parse_from::<Demo>(["x", "--config", "/nonexistent/xdr.toml"]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/xdr.toml"), "{err}");
    }
}

/// Everything a mesh gRPC service binary shares; each binary adds `--listen` (its own
/// default port) and its own flags.
#[derive(clap::Args, Clone, Debug)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub config_file: ConfigFileArg,
    /// Address of the gRPC server (mTLS only). Port 0 picks a free port, logged as `listening`.
    #[arg(long, env = "XDR_LISTEN")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP Prometheus `/metrics` endpoint (`0.0.0.0:<port>` in a
    /// container). Port 0 picks a free port, logged as `metrics listening`.
    #[arg(long, env = "XDR_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: SocketAddr,
    /// Folder of this service's state [default: .xdr/data/<service>].
    #[arg(long, env = "XDR_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

impl ServiceArgs {
    pub fn data_dir(&self, service: &str) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| Path::new(DEFAULT_HOME).join("data").join(service))
    }
}
