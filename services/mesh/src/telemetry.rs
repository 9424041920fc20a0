//! The tracing subscriber every binary installs: a RUST_LOG-style filter, text or JSON
//! lines on stderr, the chatty transport crates kept at `warn` unless asked for, and — when
//! an OTLP endpoint is set — spans exported over OTLP/gRPC with W3C trace context.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogArgs, LogFormat};

/// Crates that log every frame at debug; quiet unless the filter names them.
const NOISY: [&str; 5] = ["h2", "hyper", "hyper_util", "tower", "rustls"];

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log filter: {0}")]
    LogFilter(#[from] tracing_subscriber::filter::ParseError),
    #[error("OTLP endpoint `{endpoint}`: {reason}")]
    Otlp { endpoint: String, reason: String },
    #[error("OTLP CA certificate {path}: {source}")]
    OtlpCa {
        path: String,
        source: std::io::Error,
    },
}

/// Exports what is left of the spans when dropped: hold it until the process ends.
#[must_use = "spans still queued are lost unless this lives until the process ends"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported (an OTLP endpoint is set).
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("flushing spans at exit: {error}");
        }
    }
}

/// Installs the subscriber of the process named `service` (the OpenTelemetry service name
/// unless `OTEL_SERVICE_NAME` says otherwise). Call inside the tokio runtime: the exporter's
/// channel runs on it.
pub fn init(args: &LogArgs, service: &str) -> Result<Telemetry, TelemetryError> {
    let mut directives = args.log.clone();
    for target in NOISY.iter().filter(|t| !args.log.contains(*t)) {
        directives.push_str(&format!(",{target}=warn"));
    }
    // The exporter's own transport would otherwise trace itself exporting.
    directives.push_str(",opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn");
    let filter = EnvFilter::try_new(directives)?;
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match args.log_format {
        LogFormat::Json => lines.json().flatten_event(true).boxed(),
        LogFormat::Text => lines.with_ansi(std::io::stderr().is_terminal()).boxed(),
    };
    let provider = args
        .otlp_endpoint()
        .map(|endpoint| tracer_provider(&endpoint, args, service))
        .transpose()?;
    let spans = provider.as_ref().map(|provider| {
        crate::trace::set_exporting();
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service.to_owned()))
            .with_tracked_inactivity(false)
            .with_threads(false)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(spans)
        .init();
    if let Some(endpoint) = args.otlp_endpoint() {
        tracing::info!(%endpoint, "exporting spans over OTLP");
    }
    Ok(Telemetry { provider })
}

fn tracer_provider(
    endpoint: &str,
    args: &LogArgs,
    service: &str,
) -> Result<SdkTracerProvider, TelemetryError> {
    let refused = |reason: String| TelemetryError::Otlp {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint);
    if endpoint.starts_with("https://") {
        let Some(ca) = &args.otlp_ca else {
            return Err(refused(
                "an https endpoint needs --otlp-ca, the CA its certificate chains to".to_owned(),
            ));
        };
        let pem = std::fs::read(ca).map_err(|source| TelemetryError::OtlpCa {
            path: ca.display().to_string(),
            source,
        })?;
        exporter = exporter.with_tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
        );
    } else if !endpoint.starts_with("http://") {
        return Err(refused("must start with http:// or https://".to_owned()));
    }
    let exporter = exporter
        .build()
        .map_err(|error| refused(error.to_string()))?;
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| service.to_owned());
    Ok(SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(name).build())
        .with_batch_exporter(exporter)
        .build())
}
