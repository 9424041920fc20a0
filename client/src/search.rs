//! `xdrctl search 'SQL'`: KUMA's event search SQL through `SearchEventsStream`, printed as a table
//! (or the reply's JSON with `--json`).

use xdr_mesh::directory::COLLECTOR;
use xdr_proto::pb::{
    Event, FieldValue, SearchEventsReply, SearchEventsRequest, cell,
    collector_client::CollectorClient, field_value::Kind,
};

use crate::connect::{Target, failed};

/// A cell is cut to this many characters in the table (`--json` prints them whole).
const MAX_CELL_CHARS: usize = 60;

#[derive(clap::Args)]
pub struct Args {
    /// One SELECT on `events`, e.g. the seed's
    /// "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250".
    sql: String,
    /// The tenant searched (Main administrators only); default: Main.
    #[arg(long, default_value = "")]
    tenant: String,
    /// Print the reply as JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let mut collector = CollectorClient::new(args.target.channel(&COLLECTOR).await?)
        .max_decoding_message_size(64 << 20);
    // Streamed: an answer past one message's 4 MiB still comes, piece by piece.
    let mut pieces = collector
        .search_events_stream(SearchEventsRequest {
            sql: args.sql.clone(),
            tenant: args.tenant.clone(),
            page: None,
        })
        .await
        .map_err(failed)?
        .into_inner();
    let mut reply = SearchEventsReply::default();
    while let Some(piece) = pieces.message().await.map_err(failed)? {
        reply.events.extend(piece.events);
        reply.rows.extend(piece.rows);
        if reply.columns.is_empty() {
            reply.columns = piece.columns;
        }
    }
    if args.json {
        let text = xdr_proto::json::to_json("xdr.v1.SearchEventsReply", &reply)?;
        let value: serde_json::Value = serde_json::from_str(&text)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let (columns, rows) = table(reply);
    print!("{}", render(&columns, &rows));
    eprintln!("{} row(s)", rows.len());
    Ok(())
}

/// The reply as a header and rows of text.
fn table(reply: SearchEventsReply) -> (Vec<String>, Vec<Vec<String>>) {
    if !reply.columns.is_empty() {
        let rows = (reply.rows.into_iter())
            .map(|row| {
                (row.cells.into_iter())
                    .map(|c| match c.kind {
                        None => "NULL".to_owned(),
                        Some(cell::Kind::Text(t)) => t,
                        Some(cell::Kind::Integer(n)) => n.to_string(),
                        Some(cell::Kind::Number(n)) => n.to_string(),
                    })
                    .collect()
            })
            .collect();
        return (reply.columns, rows);
    }
    let columns = ["Timestamp", "Id", "Collector", "Fields", "TI", "Enrichment"];
    let rows = reply.events.iter().map(event_row).collect();
    (columns.iter().map(|c| (*c).to_owned()).collect(), rows)
}

fn event_row(event: &Event) -> Vec<String> {
    let time = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(event.timestamp_ms).unwrap_or(0));
    let fields: Vec<String> = (event.fields.iter())
        .map(|(name, value)| format!("{name}={}", shown(value)))
        .collect();
    let ti: Vec<String> = (event.ti.iter())
        .map(|m| format!("{} {}", m.category, m.matched_indicator))
        .collect();
    let status = xdr_proto::pb::EnrichmentStatus::try_from(event.enrichment_status).map_or_else(
        |_| "?".to_owned(),
        |s| {
            s.as_str_name()
                .trim_start_matches("ENRICHMENT_STATUS_")
                .to_owned()
        },
    );
    vec![
        humantime::format_rfc3339_millis(time).to_string(),
        event.id.clone(),
        event.collector.clone(),
        fields.join(" "),
        ti.join(", "),
        status,
    ]
}

fn shown(value: &FieldValue) -> String {
    match &value.kind {
        None => String::new(),
        Some(Kind::Text(t)) => t.clone(),
        Some(Kind::Integer(n) | Kind::TimestampMs(n)) => n.to_string(),
        Some(Kind::Number(n)) => n.to_string(),
        Some(Kind::Flag(b)) => b.to_string(),
        Some(Kind::List(list)) => list.values.join(","),
    }
}

/// A text table, each column as wide as its widest (cut) cell.
fn render(columns: &[String], rows: &[Vec<String>]) -> String {
    let cut = |text: &str| -> String {
        let flat = text.replace(['\n', '\r', '\t'], " ");
        if flat.chars().count() > MAX_CELL_CHARS {
            let kept: String = flat.chars().take(MAX_CELL_CHARS - 1).collect();
            format!("{kept}…")
        } else {
            flat
        }
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cut(c)).collect())
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |row: &[String]| -> String {
        let padded: Vec<String> = (row.iter().zip(&widths))
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join(" | ").trim_end())
    };
    let mut out = line(columns);
    out.push_str(&format!(
        "{}\n",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    ));
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_lines_its_columns_up() {
        let table = render(
            &["count()".into(), "Collector".into()],
            &[vec!["12".into(), "http-input".into()]],
        );
        assert_eq!(
            table,
            "count() | Collector\n--------+-----------\n12      | http-input\n"
        );
    }
}
