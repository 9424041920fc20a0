//! Reading delimited items (lines, events) from a peer with a bound on each: an item longer
//! than the bound is read to its end and discarded, never held. The caller puts a deadline
//! around each read: a peer that never sends the delimiter is a slow peer, not a long item.

use tokio::io::{self, AsyncBufRead, AsyncBufReadExt};

/// What [`read_delimited`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Delimited {
    /// An item, in the buffer, without its delimiter.
    Item,
    /// An item longer than the bound, skipped (the buffer is empty).
    TooLong,
    /// The stream ended before another item began.
    End,
}

/// Reads the next item ending in `delimiter` into `item` (cleared first), holding at most
/// `max` bytes of it. The last item of a stream may lack its delimiter.
pub async fn read_delimited<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    delimiter: u8,
    max: usize,
    item: &mut Vec<u8>,
) -> io::Result<Delimited> {
    item.clear();
    let (mut started, mut too_long) = (false, false);
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(match (started, too_long) {
                (false, _) => Delimited::End,
                (true, true) => Delimited::TooLong,
                (true, false) => Delimited::Item,
            });
        }
        started = true;
        let end = available.iter().position(|&b| b == delimiter);
        let part = &available[..end.unwrap_or(available.len())];
        if !too_long && item.len() + part.len() > max {
            too_long = true;
            item.clear();
            item.shrink_to(max.min(64 * 1024));
        }
        if !too_long {
            item.extend_from_slice(part);
        }
        let used = part.len() + usize::from(end.is_some());
        reader.consume(used);
        if end.is_some() {
            return Ok(if too_long {
                Delimited::TooLong
            } else {
                Delimited::Item
            });
        }
    }
}

/// The events in `raw` as a collector splits a body of them: its pieces between
/// `delimiter`s, a carriage return before a line feed dropped, pieces of only whitespace (a
/// trailing delimiter, a blank line) left out. The gateway counts a body's events with it, so
/// it can tell each poster which of its events the collector refused.
pub fn events_in(raw: &[u8], delimiter: u8) -> impl Iterator<Item = &[u8]> {
    let newline = delimiter == b'\n';
    raw.split(move |&b| b == delimiter)
        .map(move |piece| match piece {
            [rest @ .., b'\r'] if newline => rest,
            piece => piece,
        })
        .filter(|piece| !piece.iter().all(u8::is_ascii_whitespace))
}

#[cfg(test)]
mod tests {
    use tokio::io::BufReader;

    use super::*;

    async fn items(input: &[u8], max: usize) -> Vec<(Delimited, Vec<u8>)> {
        // A tiny buffer, so items span many reads.
        let mut reader = BufReader::with_capacity(3, input);
        let mut out = Vec::new();
        let mut item = Vec::new();
        loop {
            let read = read_delimited(&mut reader, b'\n', max, &mut item)
                .await
                .unwrap();
            if read == Delimited::End {
                return out;
            }
            out.push((read, item.clone()));
        }
    }

    #[tokio::test]
    async fn items_are_split_at_the_delimiter_and_bounded() {
        let found = items(b"ab\n\n0123456789\nxyz", 5).await;
        assert_eq!(
            found,
            [
                (Delimited::Item, b"ab".to_vec()),
                (Delimited::Item, Vec::new()),
                (Delimited::TooLong, Vec::new()),
                (Delimited::Item, b"xyz".to_vec()),
            ]
        );
        assert_eq!(items(b"", 5).await, []);
        assert_eq!(
            items(b"12345\n123456", 5).await,
            [
                (Delimited::Item, b"12345".to_vec()),
                (Delimited::TooLong, Vec::new())
            ]
        );
    }
}
