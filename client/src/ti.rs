//! `xdrctl ti …`: the threat-intel service's suppliers — where each one's records come from
//! (a feed file, a polled TAXII collection), how many it has, what was skipped and why, and
//! how its last poll went — and reloading its feeds.

use xdr_mesh::directory::THREATINTEL;
use xdr_proto::pb::{
    ListSuppliersRequest, ReloadFeedsRequest, SupplierStatus,
    threat_intel_client::ThreatIntelClient,
};

use crate::connect::{Target, failed};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Each supplier: kind, source, records, skipped records by reason, last poll and error.
    Suppliers {
        /// Print the reply as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Read every feed again and swap the new index in; prints how each feed fared.
    Reload {
        #[command(flatten)]
        target: Target,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Suppliers { json, target } => {
            let reply = ThreatIntelClient::new(target.channel(&THREATINTEL).await?)
                .list_suppliers(ListSuppliersRequest {})
                .await
                .map_err(failed)?
                .into_inner();
            if json {
                println!(
                    "{}",
                    xdr_proto::json::to_json("xdr.v1.ListSuppliersReply", &reply)?
                );
                return Ok(());
            }
            println!("SUPPLIER  KIND  RECORDS  SKIPPED  LAST POLL  SOURCE  ERROR");
            for status in &reply.statuses {
                println!("{}", status_line(status));
            }
            Ok(())
        }
        Command::Reload { target } => {
            let reply = ThreatIntelClient::new(target.channel(&THREATINTEL).await?)
                .reload_feeds(ReloadFeedsRequest {})
                .await
                .map_err(failed)?
                .into_inner();
            for feed in &reply.feeds {
                let outcome = if feed.error.is_empty() {
                    format!("{} records, {} skipped", feed.indicators, feed.skipped)
                } else {
                    format!("kept {} records: {}", feed.indicators, feed.error)
                };
                println!("{}  {}  {outcome}", feed.supplier, feed.file);
            }
            println!("loaded in {} ms", reply.load_ms);
            Ok(())
        }
    }
}

/// One supplier as a table row: skipped records with their reasons, times as RFC 3339.
fn status_line(status: &SupplierStatus) -> String {
    let reasons: Vec<String> = (status.skipped_by_reason.iter())
        .map(|r| format!("{} {}", r.count, r.key))
        .collect();
    let skipped = if reasons.is_empty() {
        status.skipped.to_string()
    } else {
        format!("{} ({})", status.skipped, reasons.join(", "))
    };
    let last_poll = match status.last_poll_ms {
        0 => "-".to_owned(),
        ms => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64),
        )
        .to_string(),
    };
    let error = if status.last_error.is_empty() {
        "-"
    } else {
        &status.last_error
    };
    format!(
        "{}  {}  {}  {skipped}  {last_poll}  {}  {error}",
        status.name, status.kind, status.records, status.source
    )
}
