//! `xdrctl traces`: a small OTLP/gRPC trace receiver that writes each span as one JSON line
//! (what the compose `tracing` profile runs, since no Jaeger image can be pulled here), and
//! `show`, which prints one trace of such a file as a tree.

use std::{
    collections::HashMap,
    fmt::Write as _,
    io::{BufRead, Write},
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
    trace::v1::Span,
};
use serde_json::{Value as Json, json};

/// The largest export request taken (the OTLP exporters' batches are far smaller).
const MAX_REQUEST_BYTES: usize = 4 << 20;
/// Export calls handled at once.
const CONCURRENT_CALLS: usize = 64;
/// Attribute values are cut to this many characters in the lines written.
const MAX_VALUE_CHARS: usize = 256;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Receive spans over OTLP/gRPC (plain HTTP/2) and write one JSON line per span.
    Receive(ReceiveArgs),
    /// Print one trace of a file `receive` wrote, as a tree.
    Show(ShowArgs),
}

#[derive(clap::Args)]
pub struct ReceiveArgs {
    /// Where to listen; services export to `http://ADDR`.
    #[arg(long, default_value = "127.0.0.1:4317")]
    listen: SocketAddr,
    /// File the span lines are appended to; none: standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Bytes written at most; spans past it are dropped and counted in the log.
    #[arg(long, default_value_t = 256 << 20)]
    max_bytes: u64,
}

#[derive(clap::Args)]
pub struct ShowArgs {
    /// The trace's id (32 hex digits), e.g. from a `traceparent` answer header.
    trace_id: String,
    /// A file of span lines that `xdrctl traces receive --output` wrote.
    #[arg(long)]
    from: PathBuf,
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Receive(args) => receive(args).await,
        Command::Show(args) => show(&args),
    }
}

struct Receiver {
    out: Mutex<Box<dyn Write + Send>>,
    written: AtomicU64,
    dropped: AtomicU64,
    max_bytes: u64,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut lines = String::new();
        let mut spans = 0u64;
        for resource in request.into_inner().resource_spans {
            let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
            let service = attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .map(|kv| text(kv.value.as_ref()))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans += 1;
                    let _ = writeln!(lines, "{}", line(&service, &span));
                }
            }
        }
        let size = lines.len() as u64;
        if self.written.fetch_add(size, Ordering::Relaxed) + size > self.max_bytes {
            self.written.fetch_sub(size, Ordering::Relaxed);
            let before = self.dropped.fetch_add(spans, Ordering::Relaxed);
            // Said when dropping starts and at each further 10,000: a flood of exports past
            // the cap does not become a flood of lines.
            if before == 0 || before / 10_000 != (before + spans) / 10_000 {
                eprintln!(
                    "--max-bytes reached: {} spans dropped so far",
                    before + spans
                );
            }
        } else {
            let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
            out.write_all(lines.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| tonic::Status::unavailable(format!("writing spans: {e}")))?;
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut text, b| {
        let _ = write!(text, "{b:02x}");
        text
    })
}

/// An attribute's value as text, cut to [`MAX_VALUE_CHARS`].
fn text(value: Option<&AnyValue>) -> String {
    let text = match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    text.chars().take(MAX_VALUE_CHARS).collect()
}

fn attributes(attributes: &[KeyValue]) -> Json {
    Json::Object(
        attributes
            .iter()
            .map(|kv| (kv.key.clone(), Json::String(text(kv.value.as_ref()))))
            .collect(),
    )
}

/// One span as a JSON line: ids in hex, as in a `traceparent`.
fn line(service: &str, span: &Span) -> Json {
    let links: Vec<Json> = (span.links.iter())
        .map(|link| json!({"trace_id": hex(&link.trace_id), "span_id": hex(&link.span_id)}))
        .collect();
    json!({
        "trace_id": hex(&span.trace_id),
        "span_id": hex(&span.span_id),
        "parent_span_id": hex(&span.parent_span_id),
        "service": service,
        "name": span.name,
        "kind": span.kind().as_str_name(),
        "start_unix_nano": span.start_time_unix_nano,
        "end_unix_nano": span.end_time_unix_nano,
        "attributes": attributes(&span.attributes),
        "links": links,
        "status": span.status.as_ref().map(|s| s.message.clone()).unwrap_or_default(),
    })
}

async fn receive(args: ReceiveArgs) -> anyhow::Result<()> {
    let out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let receiver = Receiver {
        out: Mutex::new(out),
        written: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        max_bytes: args.max_bytes,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    eprintln!(
        "receiving OTLP spans on {}",
        listener.local_addr().unwrap_or(args.listen)
    );
    tonic::transport::Server::builder()
        .concurrency_limit_per_connection(CONCURRENT_CALLS)
        .timeout(Duration::from_secs(10))
        .add_service(TraceServiceServer::new(receiver).max_decoding_message_size(MAX_REQUEST_BYTES))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        )
        .await
        .context("serving OTLP")
}

/// A span line as `show` reads it.
struct Shown {
    span_id: String,
    parent: String,
    label: String,
    start: u64,
}

fn show(args: &ShowArgs) -> anyhow::Result<()> {
    let file = std::fs::File::open(&args.from)
        .with_context(|| format!("opening {}", args.from.display()))?;
    let mut spans = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let Ok(span) = serde_json::from_str::<Json>(&line?) else {
            continue;
        };
        if span["trace_id"] != args.trace_id.as_str() {
            continue;
        }
        let field = |name: &str| span[name].as_str().unwrap_or_default().to_owned();
        let (start, end) = (
            span["start_unix_nano"].as_u64().unwrap_or_default(),
            span["end_unix_nano"].as_u64().unwrap_or_default(),
        );
        let links = span["links"].as_array().map_or(0, Vec::len);
        spans.push(Shown {
            span_id: field("span_id"),
            parent: field("parent_span_id"),
            label: format!(
                "{} {} {:.3} ms{}",
                field("service"),
                field("name"),
                end.saturating_sub(start) as f64 / 1e6,
                if links > 0 {
                    format!(" ({links} links)")
                } else {
                    String::new()
                }
            ),
            start,
        });
    }
    anyhow::ensure!(
        !spans.is_empty(),
        "no span of trace {} in {}",
        args.trace_id,
        args.from.display()
    );
    spans.sort_by_key(|s| s.start);
    let known: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&Shown>> = HashMap::new();
    for span in &spans {
        // A parent that was not received (another process's, not exported) shows as a root.
        let parent = if known.contains(span.parent.as_str()) {
            span.parent.as_str()
        } else {
            ""
        };
        children.entry(parent).or_default().push(span);
    }
    let mut stack: Vec<(&Shown, usize)> = (children.get("").cloned().unwrap_or_default())
        .into_iter()
        .rev()
        .map(|s| (s, 0))
        .collect();
    while let Some((span, depth)) = stack.pop() {
        println!("{}{}", "  ".repeat(depth), span.label);
        for child in children
            .get(span.span_id.as_str())
            .into_iter()
            .flatten()
            .rev()
        {
            stack.push((child, depth + 1));
        }
    }
    Ok(())
}
