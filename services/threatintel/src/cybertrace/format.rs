//! Output lines, from configurable format strings with CyberTrace's placeholders:
//! `%Date%`, `%Category%`, `%MatchedIndicator%`, `%Alert%`, `%RecordContext%` (the
//! record-context format once per context entry, with `%ParamName%` and `%ParamValue%`), and
//! for the finished event `%SentEvents%` and `%Total%`.

use crate::index::Match;

#[derive(Clone, Debug, clap::Args)]
pub struct OutputFormats {
    /// Format of a detection line (CyberTrace's default).
    #[arg(
        long,
        env = "XDR_DETECTION_FORMAT",
        default_value = "Category=%Category%|MatchedIndicator=%MatchedIndicator%%RecordContext%"
    )]
    pub detection_format: String,
    /// Format of each context entry inside `%RecordContext%` (CyberTrace's default).
    #[arg(
        long,
        env = "XDR_RECORD_CONTEXT_FORMAT",
        default_value = "|%ParamName%=%ParamValue%"
    )]
    pub record_context_format: String,
    /// Format of a service alert (CyberTrace's default): `%Alert%` is its name
    /// (`KL_ALERT_UpdatedFeed`, ...), `%RecordContext%` its fields.
    #[arg(
        long,
        env = "XDR_ALERT_FORMAT",
        default_value = "%Date% alert=%Alert%%RecordContext%"
    )]
    pub alert_format: String,
    /// Format of the event sent after each line when a connection asked for finished events:
    /// `%SentEvents%` detections were sent for the line, `%Total%` lines so far on the connection.
    #[arg(
        long,
        env = "XDR_FINISHED_EVENT_FORMAT",
        default_value = "LookupFinished|sent_events=%SentEvents%|total=%Total%"
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

    pub fn detection(&self, found: &Match<'_>, date: &str) -> String {
        // %RecordContext% last: context values must not be read as placeholders.
        self.detection_format
            .replace("%Date%", date)
            .replace("%Category%", found.category)
            .replace("%MatchedIndicator%", found.matched)
            .replace(
                "%RecordContext%",
                &self.record_context(found.context.iter()),
            )
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::index::{IndexBuilder, Indicator, IndicatorKind};

    #[derive(Parser)]
    struct Defaults {
        #[command(flatten)]
        formats: OutputFormats,
    }

    #[test]
    fn the_seed_defaults_render_a_detection() {
        let formats = Defaults::parse_from(["x"]).formats;
        let mut builder = IndexBuilder::new([]);
        builder
            .add(&Indicator {
                value: "http://fakess123.nu".into(),
                category: "KL_Malicious_URL".into(),
                supplier: "Demo".into(),
                context: vec![
                    ("threat".into(), "Demo %Category%".into()),
                    ("popularity".into(), "1".into()),
                ],
                ..Default::default()
            })
            .unwrap();
        let index = builder.build();
        let mut matches = Vec::new();
        index
            .lookup("fakess123.nu", Some(IndicatorKind::Url), 0, &mut matches)
            .unwrap();
        let [found] = &matches[..] else {
            panic!("one match: {matches:?}")
        };
        assert_eq!(
            formats.detection(found, "2026-11-23T00:00:00Z"),
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
}
