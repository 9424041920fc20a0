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
    match segment {
        "%2E" | "%2e" => out.push_str("%2E"),
        _ if is_dots(segment) => {
            // `.%2E`, `%2e%2E`...: decoded, two dots.
            out.push_str("%2E%2E");
        }
        _ => push_canonical(segment, PATH_KEPT, out),
    }
}

/// Appends query `query` (as written) to `out` in its canonical form.
pub fn push_query(query: &str, out: &mut String) {
    push_canonical(query, QUERY_KEPT, out);
}

/// Whether `segment` decodes to `..` (the literal `..` never gets here: it is a dot-segment).
fn is_dots(segment: &str) -> bool {
    matches!(segment.len(), 4 | 6)
        && [".%2e", "%2e.", "%2e%2e"]
            .iter()
            .any(|dots| segment.eq_ignore_ascii_case(dots))
}

/// What no text may hold literally in a key: `%` starts escapes, and control characters and
/// DEL are dropped or trimmed by parsers.
fn always_escaped(byte: u8) -> bool {
    byte == b'%' || byte < 0x20 || byte == 0x7F
}

/// `text` decoded once, each decoded byte written as itself or `%XX` by the rules above.
fn push_canonical(text: &str, kept: &[u8], out: &mut String) {
    let bytes = text.as_bytes();
    // The common case: nothing escaped, nothing to escape.
    if !bytes.iter().any(|&b| always_escaped(b)) {
        out.push_str(text);
        return;
    }
    // Non-ASCII bytes decoded from a run of escapes, waiting to be read as UTF-8.
    let mut pending: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|&b| (b as char).to_digit(16));
        if let (b'%', Some(high), Some(low)) = (bytes[i], hex(i + 1), hex(i + 2)) {
            let byte = (high * 16 + low) as u8;
            i += 3;
            if !byte.is_ascii() {
                pending.push(byte);
                continue;
            }
            flush(&mut pending, out);
            if always_escaped(byte) || kept.contains(&byte) {
                push_escape(byte, out);
            } else {
                out.push(byte as char);
            }
            continue;
        }
        flush(&mut pending, out);
        // A literal character, whole: the text is UTF-8.
        let c = text[i..]
            .chars()
            .next()
            .expect("i is on a character boundary");
        i += c.len_utf8();
        if c.is_ascii() && always_escaped(c as u8) {
            push_escape(c as u8, out);
        } else {
            out.push(c);
        }
    }
    flush(&mut pending, out);
}

/// Writes decoded non-ASCII bytes: the UTF-8 characters they form as themselves, any other
/// byte as `%XX`.
fn flush(pending: &mut Vec<u8>, out: &mut String) {
    for chunk in pending.utf8_chunks() {
        out.push_str(chunk.valid());
        for &byte in chunk.invalid() {
            push_escape(byte, out);
        }
    }
    pending.clear();
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
