//! The index's text in one growing buffer: matched values, anchors and each record's context
//! and tags. Millions of small strings as separate allocations cost more in headers, padding
//! and pointers than in text; here a string costs its bytes plus a length byte or two, and is
//! named by a `u32` offset.

/// The arena passed 4 GiB; offsets are `u32` to keep every record small.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the index is full: its text passed 4 GiB")]
pub struct IndexFull;

#[derive(Default)]
pub struct Arena {
    bytes: Vec<u8>,
}

impl Arena {
    /// Where the next write lands.
    pub fn offset(&self) -> Result<u32, IndexFull> {
        u32::try_from(self.bytes.len()).map_err(|_| IndexFull)
    }

    /// Stores `text` (length-prefixed) and returns its offset.
    pub fn push_str(&mut self, text: &str) -> Result<u32, IndexFull> {
        let at = self.offset()?;
        self.write_str(text);
        Ok(at)
    }

    /// Stores `value` as its `Display` text, which must be under 128 bytes (an address or
    /// network), and returns its offset: no `String` in between.
    pub fn push_display(&mut self, value: impl std::fmt::Display) -> Result<u32, IndexFull> {
        use std::io::Write;
        let at = self.offset()?;
        self.bytes.push(0);
        write!(self.bytes, "{value}").expect("writing to a vector cannot fail");
        let len = self.bytes.len() - at as usize - 1;
        assert!(
            len < 0x80,
            "push_display takes short values, got {len} bytes"
        );
        self.bytes[at as usize] = len as u8;
        Ok(at)
    }

    /// Appends a length-prefixed string to what is being written.
    pub fn write_str(&mut self, text: &str) {
        self.write_varint(text.len() as u64);
        self.bytes.extend_from_slice(text.as_bytes());
    }

    /// LEB128: seven bits a byte, low first, high bit set on all but the last.
    pub fn write_varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push(value as u8 | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    /// The string stored at `at`.
    pub fn str_at(&self, at: u32) -> &str {
        Reader::new(self, at).str()
    }

    /// The bytes of the string stored at `at`, unchecked: for comparing.
    pub fn bytes_at(&self, at: u32) -> &[u8] {
        Reader::new(self, at).bytes()
    }

    pub fn reader(&self, at: u32) -> Reader<'_> {
        Reader::new(self, at)
    }

    pub fn reserve(&mut self, bytes: usize) {
        self.bytes.reserve(bytes);
    }
}

/// Reads what was written from an offset on, in order.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(arena: &'a Arena, at: u32) -> Self {
        Reader {
            rest: &arena.bytes[at as usize..],
        }
    }

    pub fn varint(&mut self) -> u64 {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let byte = self.rest[0];
            self.rest = &self.rest[1..];
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return value;
            }
            shift += 7;
        }
    }

    pub fn bytes(&mut self) -> &'a [u8] {
        let len = self.varint() as usize;
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        bytes
    }

    pub fn str(&mut self) -> &'a str {
        // Only `&str` is ever written, at the offsets handed out.
        std::str::from_utf8(self.bytes()).expect("the arena holds only strings where it says so")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_numbers_read_back_in_order() {
        let mut arena = Arena::default();
        let first = arena.push_str("fakess123.nu").unwrap();
        let long = "x".repeat(300);
        let second = arena.offset().unwrap();
        arena.write_varint(u64::from(u32::MAX) + 5);
        arena.write_str(&long);
        arena.write_str("");
        let address = arena
            .push_display(std::net::Ipv4Addr::new(192, 0, 2, 1))
            .unwrap();
        assert_eq!(arena.str_at(first), "fakess123.nu");
        assert_eq!(arena.str_at(address), "192.0.2.1");
        let mut reader = arena.reader(second);
        assert_eq!(reader.varint(), u64::from(u32::MAX) + 5);
        assert_eq!(reader.str(), long);
        assert_eq!(reader.str(), "");
    }
}
