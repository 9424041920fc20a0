//! The one way a URL's path and query are written in a key: percent-decoded once, losslessly.
//! An escape is decoded unless decoding it would change what the text means if it were read
//! again, or would lose bytes; those are written `%XX` in upper case (`%ff` and `%FF` agree):
//!
//! - `%` always: a decoded `%` would start an escape when read again (and a `%` that starts
//!   no escape is written `%25`);
//! - in a path, an escaped `/` or `\` (a literal one separates segments), `?` and `#`;
//! - in a query, an escaped `#`, and `&`, `=` and `+`, which separate parameters or mean a
//!   space to the server reading them;
//! - control characters and DEL wherever they are: a parser drops tabs and line breaks and
//!   trims the others at the ends;
//! - bytes that are not UTF-8: decoded to U+FFFD, `%FF` and `%FE` would be one URL.
//!
//! A path segment that decodes to `.` or `..` is written `%2E` / `%2E%2E`: written plainly it
//! would be a dot-segment when read again. Decoding is therefore one-to-one, and normalizing
//! a normalized URL changes nothing.

/// What stays escaped in a path segment, if it was escaped.
pub const PATH_KEPT: &[u8] = b"/\\?#";
/// What stays escaped in a query, if it was escaped.
pub const QUERY_KEPT: &[u8] = b"#&=+";

/// Appends path segment `segment` (as written) to `out` in its canonical form.
pub fn push_segment(segment: &str, out: &mut String) {
    let (bytes, escaped) = decode(segment);
    match bytes.as_slice() {
        b"." => out.push_str("%2E"),
        b".." => out.push_str("%2E%2E"),
        _ => encode(&bytes, &escaped, PATH_KEPT, out),
    }
}

/// Appends query `query` (as written) to `out` in its canonical form.
pub fn push_query(query: &str, out: &mut String) {
    let (bytes, escaped) = decode(query);
    encode(&bytes, &escaped, QUERY_KEPT, out);
}

/// The bytes `text` stands for, and for each whether it was written as an escape.
fn decode(text: &str) -> (Vec<u8>, Vec<bool>) {
    let src = text.as_bytes();
    let mut bytes = Vec::with_capacity(src.len());
    let mut escaped = Vec::with_capacity(src.len());
    let mut i = 0;
    while i < src.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        let byte = match (
            src[i],
            src.get(i + 1).copied().and_then(hex),
            src.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                i += 3;
                escaped.push(true);
                (high * 16 + low) as u8
            }
            (byte, _, _) => {
                i += 1;
                escaped.push(false);
                byte
            }
        };
        bytes.push(byte);
    }
    (bytes, escaped)
}

/// Writes `bytes` to `out`: each as itself, or `%XX` where the rules above say so.
fn encode(bytes: &[u8], escaped: &[bool], kept: &[u8], out: &mut String) {
    let mut at = 0;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let len = c.len_utf8();
            let stays_escaped = c.is_ascii()
                && (c == '%' || c.is_ascii_control() || (escaped[at] && kept.contains(&(c as u8))));
            if stays_escaped {
                push_escape(c as u8, out);
            } else {
                out.push(c);
            }
            at += len;
        }
        for &byte in chunk.invalid() {
            push_escape(byte, out);
            at += 1;
        }
    }
}

fn push_escape(byte: u8, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(byte >> 4)] as char);
    out.push(HEX[usize::from(byte & 0xf)] as char);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(text: &str) -> String {
        let mut out = String::new();
        push_segment(text, &mut out);
        out
    }

    fn query(text: &str) -> String {
        let mut out = String::new();
        push_query(text, &mut out);
        out
    }

    #[test]
    fn escapes_are_decoded_once_and_structure_kept() {
        assert_eq!(segment("c%20d%41%e2%82%ac"), "c dA€");
        assert_eq!(segment("a%2Fb%5cc%3Fd%23e%25f"), "a%2Fb%5Cc%3Fd%23e%25f");
        assert_eq!(segment("100%"), "100%25");
        assert_eq!(segment("%%300"), "%2500");
        assert_eq!(query("r?s%3F&a%26b=c%3Dd+%2B"), "r?s?&a%26b=c%3Dd+%2B");
    }

    #[test]
    fn bytes_that_are_not_utf8_stay_escaped_in_upper_case() {
        assert_eq!(segment("%FF"), "%FF");
        assert_eq!(segment("%ff"), "%FF");
        assert_ne!(segment("%FF"), segment("%FE"));
        assert_eq!(segment("%e2%82"), "%E2%82");
    }

    #[test]
    fn controls_and_dot_segments_stay_escaped() {
        assert_eq!(segment("a%09b%0D%7F"), "a%09b%0D%7F");
        assert_eq!(segment("%2e"), "%2E");
        assert_eq!(segment(".%2E"), "%2E%2E");
        assert_eq!(segment("%2E%2E%2E"), "...");
    }
}
