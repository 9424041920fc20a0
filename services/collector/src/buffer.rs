//! The collector's disk buffer (KUMA keeps one per destination): every acknowledged batch is
//! first appended here and synced, then loaded into the event store in large transactions
//! behind the acknowledgement. At start the batches the store has not loaded are read back.
//!
//! Segments `<first sequence>.log` of records `[length u32][crc32 u32][EnrichBatch]`, the
//! batch's `batch_id` its sequence number. A record cut short or damaged (a crash in the
//! middle of an append, which was never acknowledged) ends what is read back, and the
//! segment is cut there. A segment is deleted once the store holds all of its batches.

use std::{
    collections::VecDeque,
    fs::{self, File, OpenOptions},
    io::{self, BufReader, Read, Write},
    path::{Path, PathBuf},
};

use bytes::Bytes;
use prost::Message;
use xdr_proto::pb::{EnrichBatch, Event};

/// A segment is closed past this size and a new one begun.
const SEGMENT_BYTES: u64 = 64 << 20;
/// A record longer than this is damage, not a batch (a request is at most 24 MiB).
const MAX_RECORD_BYTES: usize = 256 << 20;

struct Segment {
    first: u64,
    path: PathBuf,
}

pub struct DiskBuffer {
    dir: PathBuf,
    segments: VecDeque<Segment>,
    /// The open segment (the last of `segments`) and its length.
    current: File,
    current_bytes: u64,
    next_sequence: u64,
    /// The records of one append, written here first: kept between appends, as a fresh one
    /// grown for every group commit had its pages faulted in and zeroed each time (`perf`).
    records: Vec<u8>,
}

/// The most capacity `records` keeps between appends (a group commit is at most 50,000
/// events, about 15 MB in the bench).
const MOST_KEPT_RECORD_BYTES: usize = 64 << 20;

/// A batch to append: its events, and each one's encoding when the caller has it already
/// (the enrichment service answers each enriched event encoded).
pub struct Batch<'a> {
    pub events: &'a [Event],
    /// As many as `events`, each decoding to its event.
    pub encoded: Option<&'a [Bytes]>,
}

/// A batch read back at start.
pub struct Replayed {
    pub sequence: u64,
    pub events: Vec<Event>,
}

impl DiskBuffer {
    /// Opens the buffer in `dir` (created if absent) and reads back the batches after
    /// sequence `loaded` (what the store already holds).
    pub fn open(dir: &Path, loaded: u64) -> io::Result<(Self, Vec<Replayed>)> {
        fs::create_dir_all(dir)?;
        let mut firsts: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name();
                name.to_str()?.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        firsts.sort_unstable();
        let mut segments = VecDeque::new();
        let mut replayed = Vec::new();
        let mut next_sequence = loaded + 1;
        for first in firsts {
            let path = segment_path(dir, first);
            let (batches, good_bytes) = read_segment(&path)?;
            // What follows the last good record was never acknowledged: cut it off.
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(good_bytes)?;
            for batch in batches {
                next_sequence = next_sequence.max(batch.batch_id + 1);
                if batch.batch_id > loaded {
                    replayed.push(Replayed {
                        sequence: batch.batch_id,
                        events: batch.events,
                    });
                }
            }
            segments.push_back(Segment { first, path });
        }
        // Appends go to a segment of their own, after whatever was there (the last one when
        // it holds nothing: a start with no appends since).
        let path = segment_path(dir, next_sequence);
        if segments.back().map(|s| s.first) != Some(next_sequence) {
            segments.push_back(Segment {
                first: next_sequence,
                path: path.clone(),
            });
        }
        let current = open_segment(&path)?;
        let current_bytes = current.metadata()?.len();
        let buffer = DiskBuffer {
            dir: dir.to_owned(),
            segments,
            current,
            current_bytes,
            next_sequence,
            records: Vec::new(),
        };
        Ok((buffer, replayed))
    }

    /// Appends `batches` and syncs them to disk: each one's sequence number, in order.
    pub fn append(&mut self, batches: &[&[Event]]) -> io::Result<Vec<u64>> {
        let batches: Vec<Batch<'_>> = (batches.iter())
            .map(|events| Batch {
                events,
                encoded: None,
            })
            .collect();
        self.append_batches(&batches)
    }

    /// [`append`](Self::append) for batches whose events may come encoded already.
    pub fn append_batches(&mut self, batches: &[Batch<'_>]) -> io::Result<Vec<u64>> {
        if self.current_bytes >= SEGMENT_BYTES {
            let path = segment_path(&self.dir, self.next_sequence);
            self.current = open_segment(&path)?;
            self.current_bytes = 0;
            self.segments.push_back(Segment {
                first: self.next_sequence,
                path,
            });
        }
        let mut bytes = std::mem::take(&mut self.records);
        bytes.clear();
        let mut sequences = Vec::with_capacity(batches.len());
        for batch in batches {
            let sequence = self.next_sequence;
            self.next_sequence += 1;
            // The record's header (payload length, then its CRC) is filled in once the
            // payload is written behind it.
            let header = bytes.len();
            bytes.extend_from_slice(&[0; 8]);
            match batch.encoded {
                Some(encoded) => put_batch_of_encoded(sequence, encoded, &mut bytes),
                None => put_encoded_batch(sequence, batch.events, &mut bytes),
            }
            let payload = &bytes[header + 8..];
            let (length, crc) = (payload.len() as u32, crc32fast::hash(payload));
            bytes[header..header + 4].copy_from_slice(&length.to_le_bytes());
            bytes[header + 4..header + 8].copy_from_slice(&crc.to_le_bytes());
            sequences.push(sequence);
        }
        let written = self
            .current
            .write_all(&bytes)
            .and_then(|()| self.current.sync_data());
        let appended = bytes.len() as u64;
        if bytes.capacity() <= MOST_KEPT_RECORD_BYTES {
            self.records = bytes;
        }
        if let Err(error) = written {
            // What may have reached the file is not acknowledged: cut back to before it.
            let _ = self.current.set_len(self.current_bytes);
            self.next_sequence -= batches.len() as u64;
            return Err(error);
        }
        self.current_bytes += appended;
        Ok(sequences)
    }

    /// Deletes the segments whose every batch the store holds (through sequence `loaded`).
    pub fn release_through(&mut self, loaded: u64) {
        // A segment's batches end where the next one begins; the open one is never deleted.
        while self.segments.len() > 1 && self.segments[1].first <= loaded + 1 {
            let done = self.segments.pop_front().expect("more than one segment");
            if let Err(error) = fs::remove_file(&done.path) {
                tracing::warn!(path = %done.path.display(), %error, "a loaded buffer segment was not deleted");
            }
        }
    }

    /// Segments kept: those with batches not yet loaded, and the open one.
    pub fn kept_segments(&self) -> usize {
        self.segments.len()
    }
}

/// Appends the `EnrichBatch` of already encoded events numbered `sequence`: the same bytes
/// as [`put_encoded_batch`] writes for the events they decode to, without encoding them again.
fn put_batch_of_encoded(sequence: u64, events: &[Bytes], out: &mut Vec<u8>) {
    use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, uint64};
    let length = uint64::encoded_len(1, &sequence)
        + (events.iter())
            .map(|event| 1 + encoded_len_varint(event.len() as u64) + event.len())
            .sum::<usize>();
    out.reserve(length);
    uint64::encode(1, &sequence, out);
    for event in events {
        encode_key(2, WireType::LengthDelimited, out);
        encode_varint(event.len() as u64, out);
        out.extend_from_slice(event);
    }
}

/// Appends the `EnrichBatch` encoding of `events` numbered `sequence`, written field by
/// field: the events are not copied into a message first.
fn put_encoded_batch(sequence: u64, events: &[Event], out: &mut Vec<u8>) {
    use prost::encoding::{message, uint64};
    let length = uint64::encoded_len(1, &sequence)
        + events
            .iter()
            .map(|event| message::encoded_len(2, event))
            .sum::<usize>();
    out.reserve(length);
    uint64::encode(1, &sequence, out);
    for event in events {
        message::encode(2, event, out);
    }
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.log"))
}

fn open_segment(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    // The new name must survive a crash too.
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(file)
}

/// The good records of the segment at `path`, and the length they take.
fn read_segment(path: &Path) -> io::Result<(Vec<EnrichBatch>, u64)> {
    let mut reader = BufReader::new(File::open(path)?);
    let (mut batches, mut good) = (Vec::new(), 0_u64);
    loop {
        let mut head = [0_u8; 8];
        if !read_exact_or_end(&mut reader, &mut head)? {
            break;
        }
        let length = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        if length > MAX_RECORD_BYTES {
            break;
        }
        let mut payload = vec![0; length];
        if !read_exact_or_end(&mut reader, &mut payload)? || crc32fast::hash(&payload) != crc {
            break;
        }
        let Ok(batch) = EnrichBatch::decode(payload.as_slice()) else {
            break;
        };
        batches.push(batch);
        good += 8 + length as u64;
    }
    Ok((batches, good))
}

/// Fills `buffer`; false when the file ends first.
fn read_exact_or_end(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buffer) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> Event {
        Event {
            id: id.into(),
            ..Default::default()
        }
    }

    fn ids(replayed: &[Replayed]) -> Vec<(u64, Vec<String>)> {
        replayed
            .iter()
            .map(|r| (r.sequence, r.events.iter().map(|e| e.id.clone()).collect()))
            .collect()
    }

    #[test]
    fn batches_not_loaded_come_back_and_a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (mut buffer, replayed) = DiskBuffer::open(dir.path(), 0).unwrap();
        assert!(replayed.is_empty());
        let (a, b, c) = ([event("a")], [event("b")], [event("c")]);
        assert_eq!(buffer.append(&[&a, &b]).unwrap(), vec![1, 2]);
        assert_eq!(buffer.append(&[&c]).unwrap(), vec![3]);
        let path = buffer.segments.back().unwrap().path.clone();
        drop(buffer);
        // Half a record at the end: an append a crash cut short.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        drop(file);

        let (mut buffer, replayed) = DiskBuffer::open(dir.path(), 1).unwrap();
        assert_eq!(
            ids(&replayed),
            vec![(2, vec!["b".to_owned()]), (3, vec!["c".to_owned()])]
        );
        // Numbering goes on after what was there, in a segment of its own.
        assert_eq!(buffer.append(&[&a]).unwrap(), vec![4]);
        assert_eq!(buffer.kept_segments(), 2);
        buffer.release_through(3);
        assert_eq!(buffer.kept_segments(), 1, "the first segment is all loaded");
        drop(buffer);
        let (_, replayed) = DiskBuffer::open(dir.path(), 3).unwrap();
        assert_eq!(ids(&replayed), vec![(4, vec!["a".to_owned()])]);
    }

    #[test]
    fn a_record_is_the_enrich_batch_encoding() {
        let events = [event("a"), event("b")];
        let expected = EnrichBatch {
            batch_id: 9,
            events: events.to_vec(),
            rules: None,
            traceparent: String::new(),
        };
        // Appended behind what the buffer holds already, as records are.
        let mut out = b"earlier".to_vec();
        put_encoded_batch(9, &events, &mut out);
        assert_eq!(out[7..], expected.encode_to_vec());
        let encoded: Vec<Bytes> = events.iter().map(|e| e.encode_to_vec().into()).collect();
        let mut out = b"earlier".to_vec();
        put_batch_of_encoded(9, &encoded, &mut out);
        assert_eq!(out[7..], expected.encode_to_vec());
    }

    #[test]
    fn events_given_encoded_read_back_as_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let (mut buffer, _) = DiskBuffer::open(dir.path(), 0).unwrap();
        let enriched = Event {
            raw: "{\"RequestUrl\":\"http://a.example\"}".into(),
            ti: vec![xdr_proto::pb::TiMatch {
                category: "KL_Malicious_URL".into(),
                ..Default::default()
            }],
            ..event("a")
        };
        // As the enrichment service answers: the event sent, then what it added.
        let sent = Event {
            ti: Vec::new(),
            ..enriched.clone()
        };
        let mut answer = sent.encode_to_vec();
        answer.extend_from_slice(
            &Event {
                ti: enriched.ti.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let events = [enriched.clone(), event("b")];
        let encoded = [Bytes::from(answer), event("b").encode_to_vec().into()];
        let batches = [Batch {
            events: &events,
            encoded: Some(&encoded),
        }];
        assert_eq!(buffer.append_batches(&batches).unwrap(), vec![1]);
        drop(buffer);
        let (_, replayed) = DiskBuffer::open(dir.path(), 0).unwrap();
        assert_eq!(replayed.len(), 1);
        assert_eq!(replayed[0].events, events);
    }

    #[test]
    fn a_damaged_record_ends_what_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut buffer, _) = DiskBuffer::open(dir.path(), 0).unwrap();
        buffer.append(&[&[event("a")], &[event("b")]]).unwrap();
        let path = buffer.segments.back().unwrap().path.clone();
        drop(buffer);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let (_, replayed) = DiskBuffer::open(dir.path(), 0).unwrap();
        assert_eq!(ids(&replayed), vec![(1, vec!["a".to_owned()])]);
    }
}
