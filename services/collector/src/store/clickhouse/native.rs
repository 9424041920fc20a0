//! ClickHouse's `Native` format, the input it parses least: one block of rows written column
//! after column, each as its name, its type's name and its values in bulk — a nullable
//! column's NULL flags (a byte a row, 1: NULL) before its values (a NULL row holds the
//! type's default), an array column's ends (the running count of its elements, `UInt64` a
//! row) before its elements, strings as a LEB128 length and the bytes, integers
//! little-endian. ClickHouse reads each column whole into a column sized for the block; a
//! `RowBinary` row is parsed value by value, growing every column as it goes (its parsing,
//! copying and fresh pages were a fifth of an insert's CPU, inserting 1 M of the bench's
//! events both ways into one idle 18.16 server).

/// One column's values as they are gathered, row after row. Emptied, not dropped, between
/// blocks: its buffers keep their room for the next.
#[derive(Default)]
pub struct Column {
    /// A nullable column's flag for each row.
    pub(super) nulls: Vec<u8>,
    /// An array column's running count of elements after each row.
    pub(super) ends: Vec<u8>,
    pub(super) elements: u64,
    pub(super) values: Vec<u8>,
}

impl Column {
    pub fn clear(&mut self) {
        self.nulls.clear();
        self.ends.clear();
        self.elements = 0;
        self.values.clear();
    }

    /// The bytes its buffers hold room for.
    pub fn capacity(&self) -> usize {
        self.nulls.capacity() + self.ends.capacity() + self.values.capacity()
    }

    /// The bytes its values take in a block (less its name and type).
    pub fn len(&self) -> usize {
        self.nulls.len() + self.ends.len() + self.values.len()
    }

    /// A row of a `Nullable` column: its flag; its value follows (the default when NULL).
    pub fn null_flag(&mut self, null: bool) {
        self.nulls.push(u8::from(null));
    }

    pub fn text(&mut self, text: &str) {
        string(&mut self.values, text);
    }

    /// A `String` value that is not text to Rust (ClickHouse's strings are bytes).
    pub fn bytes(&mut self, bytes: &[u8]) {
        string_of_bytes(&mut self.values, bytes);
    }

    pub fn int64(&mut self, n: i64) {
        self.values.extend_from_slice(&n.to_le_bytes());
    }

    /// A row of an `Array(String)` column.
    pub fn texts<'t>(&mut self, texts: impl Iterator<Item = &'t str>) {
        for text in texts {
            string(&mut self.values, text);
            self.elements += 1;
        }
        self.end_row();
    }

    /// A row of an `Array(Int32)` column.
    pub fn int32s(&mut self, numbers: impl Iterator<Item = i32>) {
        for n in numbers {
            self.values.extend_from_slice(&n.to_le_bytes());
            self.elements += 1;
        }
        self.end_row();
    }

    fn end_row(&mut self) {
        self.ends.extend_from_slice(&self.elements.to_le_bytes());
    }
}

/// Appends one block of `rows` rows: each column's name and type from `names`, its values
/// from `columns`, in their order.
pub fn write_block(
    out: &mut Vec<u8>,
    rows: usize,
    names: &[(impl AsRef<str>, &str)],
    columns: &[Column],
) {
    debug_assert_eq!(
        names.len(),
        columns.len(),
        "a name and type for each column"
    );
    varint(out, columns.len() as u64);
    varint(out, rows as u64);
    for ((name, kind), column) in names.iter().zip(columns) {
        string(out, name.as_ref());
        string(out, kind);
        out.extend_from_slice(&column.nulls);
        out.extend_from_slice(&column.ends);
        out.extend_from_slice(&column.values);
    }
}

pub fn string(out: &mut Vec<u8>, text: &str) {
    string_of_bytes(out, text.as_bytes());
}

fn string_of_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The bytes [`string`] writes for `text`.
pub fn string_len(text: &str) -> usize {
    // Seven bits a byte of the length, and a byte for an empty one.
    let bits = u64::BITS - (text.len() as u64 | 1).leading_zeros();
    bits.div_ceil(7) as usize + text.len()
}

pub fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_leb128() {
        let mut out = Vec::new();
        varint(&mut out, 0);
        varint(&mut out, 127);
        varint(&mut out, 128);
        varint(&mut out, 300);
        assert_eq!(out, [0, 127, 0x80, 1, 0xAC, 2]);
    }

    #[test]
    fn a_strings_length_is_what_is_written() {
        for len in [0, 1, 127, 128, 16_383, 16_384, 300_000] {
            let text = "x".repeat(len);
            let mut out = Vec::new();
            string(&mut out, &text);
            assert_eq!(string_len(&text), out.len(), "{len}");
        }
    }

    /// The layout ClickHouse 18.16 writes for the same block (`SELECT … FORMAT Native` of
    /// two rows: `'a'`, NULL; `['x','y']`, `[]`; `[7]`, `[]`).
    #[test]
    fn a_block_is_laid_out_column_after_column() {
        let (mut nullable, mut texts, mut numbers) =
            (Column::default(), Column::default(), Column::default());
        nullable.null_flag(false);
        nullable.text("a");
        nullable.null_flag(true);
        nullable.text("");
        texts.texts(["x", "y"].into_iter());
        texts.texts(std::iter::empty());
        numbers.int32s([7].into_iter());
        numbers.int32s(std::iter::empty());
        let mut out = Vec::new();
        let names = [
            ("n", "Nullable(String)"),
            ("t", "Array(String)"),
            ("i", "Array(Int32)"),
        ];
        write_block(&mut out, 2, &names, &[nullable, texts, numbers]);
        let mut expected = vec![3, 2];
        expected.extend(b"\x01n\x10Nullable(String)");
        expected.extend([0, 1, 1, b'a', 0]);
        expected.extend(b"\x01t\x0dArray(String)");
        expected.extend(2u64.to_le_bytes());
        expected.extend(2u64.to_le_bytes());
        expected.extend(b"\x01x\x01y");
        expected.extend(b"\x01i\x0cArray(Int32)");
        expected.extend(1u64.to_le_bytes());
        expected.extend(1u64.to_le_bytes());
        expected.extend(7i32.to_le_bytes());
        assert_eq!(out, expected);
    }
}
