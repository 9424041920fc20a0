//! `xdrctl ingest FILE`: a file of events (NDJSON, or pieces split by the collector's
//! delimiter) sent to a collector through `IngestStream` in batches, with progress on stderr
//! and a summary of what was accepted and refused (the first refusals by event number).

use std::{
    io::{BufRead, BufReader, IsTerminal, Write},
    path::PathBuf,
    time::Instant,
};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use xdr_mesh::directory::COLLECTOR;
use xdr_proto::pb::{
    Delimiter, GetCollectorRequest, IngestRequest, collector_client::CollectorClient,
};

use crate::connect::{Target, failed};

/// Refusals printed at most (all are counted).
const SHOWN_REFUSALS: usize = 10;
/// Batches sent and not yet answered at most.
const IN_FLIGHT: usize = 8;

#[derive(clap::Args)]
pub struct Args {
    /// The file of events; `-` reads standard input.
    file: PathBuf,
    /// The collector receiving them: its id, or its name in Main.
    #[arg(long, default_value = crate::quickstart::COLLECTOR_NAME)]
    collector: String,
    /// Events per batch.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
    #[command(flatten)]
    target: Target,
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let channel = args.target.channel(&COLLECTOR).await?;
    let mut client = CollectorClient::new(channel).max_encoding_message_size(64 << 20);
    let collector = client
        .get_collector(GetCollectorRequest {
            id: args.collector.clone(),
            tenant: String::new(),
        })
        .await
        .map_err(failed)
        .with_context(|| format!("collector {:?}", args.collector))?
        .into_inner();
    let delimiter = match Delimiter::try_from(collector.delimiter).unwrap_or_default() {
        Delimiter::Newline => b'\n',
        Delimiter::Tab => b'\t',
        Delimiter::Nul => b'\0',
    };
    let reader: Box<dyn BufRead + Send> = if args.file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("opening {}", args.file.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };

    // Batches are read on a thread of their own and sent as the stream takes them.
    let (batches, to_send) = mpsc::channel::<(IngestRequest, u64)>(IN_FLIGHT);
    let (id, batch_size) = (collector.id.clone(), args.batch as usize);
    let reading =
        std::thread::spawn(move || read_batches(reader, delimiter, batch_size, &id, &batches));
    let requests = tokio_stream::wrappers::ReceiverStream::new(to_send);
    let (firsts_tx, mut firsts) = mpsc::unbounded_channel();
    let requests = requests.map(move |(request, first)| {
        let _ = firsts_tx.send(first);
        request
    });
    let mut replies = client
        .ingest_stream(requests)
        .await
        .map_err(failed)
        .context("opening IngestStream")?
        .into_inner();

    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let (mut accepted, mut refused, mut shown) = (0_u64, 0_u64, 0);
    while let Some(reply) = replies.message().await.map_err(failed)? {
        let first = firsts.recv().await.unwrap_or(0);
        accepted += u64::from(reply.accepted);
        refused += u64::from(reply.refused);
        for error in reply.errors {
            if shown < SHOWN_REFUSALS {
                eprintln!(
                    "event {}: {}",
                    first + u64::from(error.index) + 1,
                    error.reason
                );
                shown += 1;
            }
        }
        if tty {
            let rate = (accepted + refused) as f64 / started.elapsed().as_secs_f64().max(1e-3);
            eprint!(
                "\r{} events sent, {accepted} accepted, {refused} refused ({rate:.0}/s)   ",
                accepted + refused
            );
            let _ = std::io::stderr().flush();
        }
    }
    if tty {
        eprintln!();
    }
    let read = reading
        .join()
        .map_err(|_| anyhow::anyhow!("the reading thread failed"))??;
    let elapsed = started.elapsed();
    println!(
        "{read} events read, {accepted} accepted, {refused} refused by collector {:?} in {:.2?} ({:.0} events/s)",
        collector.name,
        elapsed,
        read as f64 / elapsed.as_secs_f64().max(1e-3)
    );
    if accepted + refused != read {
        bail!(
            "the collector answered for {} of {read} events",
            accepted + refused
        );
    }
    Ok(())
}

/// Splits `reader` at `delimiter` into requests of `batch` events; how many events it read.
fn read_batches(
    mut reader: Box<dyn BufRead + Send>,
    delimiter: u8,
    batch: usize,
    collector: &str,
    out: &mpsc::Sender<(IngestRequest, u64)>,
) -> anyhow::Result<u64> {
    let (mut read, mut first) = (0_u64, 0_u64);
    let mut raw = Vec::new();
    let mut in_batch = 0;
    let mut piece = Vec::new();
    loop {
        piece.clear();
        let n = reader
            .read_until(delimiter, &mut piece)
            .context("reading the events")?;
        let end = n == 0;
        if !end
            && !piece
                .iter()
                .all(|b| b.is_ascii_whitespace() || *b == delimiter)
        {
            raw.extend_from_slice(&piece);
            if piece.last() != Some(&delimiter) {
                raw.push(delimiter);
            }
            in_batch += 1;
            read += 1;
        }
        if (end && in_batch > 0) || in_batch == batch {
            let request = IngestRequest {
                collector: collector.to_owned(),
                raw: std::mem::take(&mut raw),
                batch_id: first,
                ..Default::default()
            };
            if out.blocking_send((request, first)).is_err() {
                break;
            }
            first = read;
            in_batch = 0;
        }
        if end {
            break;
        }
    }
    Ok(read)
}
