//! Spans as `xdrctl traces receive` writes them (one JSON line each), read back for tests.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::Value;

/// One exported span.
#[derive(Clone, Debug)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub service: String,
    pub name: String,
    pub kind: String,
    /// `(trace id, span id)` of each link.
    pub links: Vec<(String, String)>,
    pub attributes: Value,
}

impl Span {
    fn of(line: &Value) -> Self {
        let text = |name: &str| line[name].as_str().unwrap_or_default().to_owned();
        let links = (line["links"].as_array().into_iter().flatten())
            .map(|l| {
                let id = |name: &str| l[name].as_str().unwrap_or_default().to_owned();
                (id("trace_id"), id("span_id"))
            })
            .collect();
        Span {
            trace_id: text("trace_id"),
            span_id: text("span_id"),
            parent_span_id: text("parent_span_id"),
            service: text("service"),
            name: text("name"),
            kind: text("kind"),
            links,
            attributes: line["attributes"].clone(),
        }
    }

    /// Whether this span links to `other`.
    pub fn links_to(&self, other: &Span) -> bool {
        (self.links.iter()).any(|(trace, span)| *trace == other.trace_id && *span == other.span_id)
    }
}

/// The file a receiver writes.
pub struct SpanFile {
    path: PathBuf,
}

impl SpanFile {
    pub fn new(path: &Path) -> Self {
        SpanFile {
            path: path.to_owned(),
        }
    }

    /// Every span written so far.
    pub fn spans(&self) -> Vec<Span> {
        parse(&std::fs::read_to_string(&self.path).unwrap_or_default())
    }

    /// Waits (bounded by `timeout`, polling the file) until `ready` holds for the spans
    /// written, and returns them; fails naming `what` and listing what came.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&[Span]) -> bool,
    ) -> Vec<Span> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if ready(&spans) {
                return spans;
            }
            if Instant::now() >= deadline {
                let names: Vec<String> = (spans.iter())
                    .map(|s| format!("{} {} {}", s.trace_id, s.service, s.name))
                    .collect();
                panic!(
                    "{what}: not within {timeout:?}; spans:\n{}",
                    names.join("\n")
                );
            }
            // The exporters send every 100 ms in the tests (OTEL_BSP_SCHEDULE_DELAY).
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The spans of a receiver's lines (a line being written is skipped).
pub fn parse(text: &str) -> Vec<Span> {
    (text.lines())
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|line| Span::of(&line))
        .collect()
}

/// The one span of `spans` named `name` from `service`, failing when there is not exactly one.
pub fn one<'a>(spans: &'a [Span], service: &str, name: &str) -> &'a Span {
    let found: Vec<&Span> = (spans.iter())
        .filter(|s| s.service == service && s.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{service} {name}: {} spans in {spans:#?}",
        found.len()
    );
    found[0]
}

/// The spans of trace `trace_id`.
pub fn of_trace(spans: &[Span], trace_id: &str) -> Vec<Span> {
    (spans.iter())
        .filter(|s| s.trace_id == trace_id)
        .cloned()
        .collect()
}
