//! Output lines, from configurable format strings with CyberTrace's placeholders:
//! `%Date%`, `%Category%`, `%MatchedIndicator%`, `%Alert%`, `%RecordContext%` (the
//! record-context format once per context entry, with `%ParamName%` and `%ParamValue%`), and
//! for the finished event `%SentEvents%` and `%Total%`. A client reads detections and finished
//! events of the default formats back ([`Detection::parse`], [`is_finished`]).

use std::collections::BTreeMap;

/// CyberTrace's default format of a detection line.
pub const DETECTION_FORMAT: &str =
    "Category=%Category%|MatchedIndicator=%MatchedIndicator%%RecordContext%";
/// CyberTrace's default format of one context entry inside `%RecordContext%`.
pub const RECORD_CONTEXT_FORMAT: &str = "|%ParamName%=%ParamValue%";
/// CyberTrace's default format of a service alert.
pub const ALERT_FORMAT: &str = "%Date% alert=%Alert%%RecordContext%";
/// CyberTrace's default format of the event that ends a line's answers.
pub const FINISHED_EVENT_FORMAT: &str = "LookupFinished|sent_events=%SentEvents%|total=%Total%";

#[derive(Clone, Debug, clap::Args)]
pub struct OutputFormats {
    /// Format of a detection line (CyberTrace's default).
    #[arg(
        long,
        env = "XDR_DETECTION_FORMAT",
        default_value = DETECTION_FORMAT
    )]
    pub detection_format: String,
    /// Format of each context entry inside `%RecordContext%` (CyberTrace's default).
    #[arg(
        long,
        env = "XDR_RECORD_CONTEXT_FORMAT",
        default_value = RECORD_CONTEXT_FORMAT
    )]
    pub record_context_format: String,
    /// Format of a service alert (CyberTrace's default): `%Alert%` is its name
    /// (`KL_ALERT_UpdatedFeed`, ...), `%RecordContext%` its fields.
    #[arg(
        long,
        env = "XDR_ALERT_FORMAT",
        default_value = ALERT_FORMAT
    )]
    pub alert_format: String,
    /// Format of the event sent after each line when a connection asked for finished events:
    /// `%SentEvents%` detections were sent for the line, `%Total%` lines so far on the connection.
    #[arg(
        long,
        env = "XDR_FINISHED_EVENT_FORMAT",
        default_value = FINISHED_EVENT_FORMAT
    )]
    pub finished_event_format: String,
}

impl OutputFormats {
    fn record_context<'v>(&self, context: impl Iterator<Item = (&'v str, &'v str)>) -> String {
        context
            .map(|(name, value)| {
                self.record_context_format
                    .replace("%ParamName%", name)
                    .replace("%ParamValue%", value)
            })
            .collect()
    }

    /// The detection line of an indicator of `category` that matched as `matched`.
    pub fn detection<'v>(
        &self,
        category: &str,
        matched: &str,
        context: impl Iterator<Item = (&'v str, &'v str)>,
        date: &str,
    ) -> String {
        // %RecordContext% last: context values must not be read as placeholders.
        self.detection_format
            .replace("%Date%", date)
            .replace("%Category%", category)
            .replace("%MatchedIndicator%", matched)
            .replace("%RecordContext%", &self.record_context(context))
    }

    pub fn alert(&self, name: &str, context: &[(&str, &str)], date: &str) -> String {
        self.alert_format
            .replace("%Date%", date)
            .replace("%Alert%", name)
            .replace(
                "%RecordContext%",
                &self.record_context(context.iter().copied()),
            )
    }

    pub fn finished(&self, sent_events: usize, total: u64) -> String {
        self.finished_event_format
            .replace("%SentEvents%", &sent_events.to_string())
            .replace("%Total%", &total.to_string())
    }
}

impl Default for OutputFormats {
    fn default() -> Self {
        OutputFormats {
            detection_format: DETECTION_FORMAT.to_owned(),
            record_context_format: RECORD_CONTEXT_FORMAT.to_owned(),
            alert_format: ALERT_FORMAT.to_owned(),
            finished_event_format: FINISHED_EVENT_FORMAT.to_owned(),
        }
    }
}

/// A detection line of the default formats, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    pub category: String,
    pub matched: String,
    pub context: BTreeMap<String, String>,
}

impl Detection {
    /// `line` as a detection of [`DETECTION_FORMAT`], if it is one.
    pub fn parse(line: &str) -> Option<Detection> {
        let (mut category, mut matched) = (None, None);
        let mut context = BTreeMap::new();
        for part in line.split('|') {
            let (name, value) = part.split_once('=')?;
            match name {
                "Category" if category.is_none() => category = Some(value.to_owned()),
                "MatchedIndicator" if matched.is_none() => matched = Some(value.to_owned()),
                _ => {
                    context.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        Some(Detection {
            category: category?,
            matched: matched.unwrap_or_default(),
            context,
        })
    }
}

/// Whether `line` is a finished event of [`FINISHED_EVENT_FORMAT`]: the end of one line's
/// answers.
pub fn is_finished(line: &str) -> bool {
    let prefix = FINISHED_EVENT_FORMAT
        .split('%')
        .next()
        .expect("split yields at least one part");
    line.starts_with(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_render_what_the_seed_shows() {
        let formats = OutputFormats::default();
        assert_eq!(
            formats.detection(
                "KL_Malicious_URL",
                "fakess123.nu",
                [("threat", "Demo %Category%"), ("popularity", "1")].into_iter(),
                "2026-11-23T00:00:00Z"
            ),
            "Category=KL_Malicious_URL|MatchedIndicator=fakess123.nu|threat=Demo %Category%|popularity=1"
        );
        assert_eq!(
            formats.alert(
                "KL_ALERT_UpdatedFeed",
                &[("feed", "Demo.json"), ("records", "7")],
                "2026-11-23T00:00:00Z"
            ),
            "2026-11-23T00:00:00Z alert=KL_ALERT_UpdatedFeed|feed=Demo.json|records=7"
        );
        assert_eq!(
            formats.finished(1, 7),
            "LookupFinished|sent_events=1|total=7"
        );
    }

    #[test]
    fn what_the_listener_writes_the_client_reads_back() {
        let formats = OutputFormats::default();
        let line = formats.detection(
            "KL_Malicious_URL",
            "fakess123.nu",
            [("threat", "Demo"), ("popularity", "1")].into_iter(),
            "2026-11-23T00:00:00Z",
        );
        let read = Detection::parse(&line).unwrap();
        assert_eq!(read.category, "KL_Malicious_URL");
        assert_eq!(read.matched, "fakess123.nu");
        assert_eq!(read.context["threat"], "Demo");
        assert_eq!(read.context["popularity"], "1");
        assert!(is_finished(&formats.finished(0, 3)));
        assert!(!is_finished(&line));
        assert!(Detection::parse(&formats.finished(0, 3)).is_none());
        assert!(Detection::parse("not a detection").is_none());
    }
}
