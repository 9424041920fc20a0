//! Caller input echoed in an error message or a log line, bounded and made printable.
//!
//! An error that names the offending value helps the caller; an error that repeats a 300 KB
//! value whole is itself a fault (gRPC clients refuse status messages past their metadata
//! limit and report RESOURCE_EXHAUSTED instead of the real error), and a value with line breaks
//! can forge log lines. Every value a service echoes goes through [`quoted`].

use std::fmt;

/// Characters of a value shown before it is cut.
pub const MAX_QUOTED_CHARS: usize = 64;

/// `value` between backticks, at most [`MAX_QUOTED_CHARS`] characters of it (a longer one is
/// cut and its length given), control characters escaped.
pub fn quoted(value: &str) -> Quoted<'_> {
    Quoted(value)
}

#[derive(Clone, Copy)]
pub struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`")?;
        for c in self.0.chars().take(MAX_QUOTED_CHARS) {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        f.write_str("`")?;
        if self.0.chars().nth(MAX_QUOTED_CHARS).is_some() {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `text` cut to at most `max` bytes at a character boundary, with `…` when cut.
pub fn truncated(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_shown_whole() {
        assert_eq!(quoted("rule-1").to_string(), "`rule-1`");
        assert_eq!(quoted("").to_string(), "``");
    }

    #[test]
    fn long_values_are_cut_and_their_length_given() {
        let long = "é".repeat(300_000);
        let shown = quoted(&long).to_string();
        assert!(shown.len() < 200, "{}", shown.len());
        assert!(shown.ends_with("… (600000 bytes)"), "{shown}");
        let exact = "x".repeat(MAX_QUOTED_CHARS);
        assert_eq!(quoted(&exact).to_string(), format!("`{exact}`"));
    }

    #[test]
    fn control_characters_cannot_start_a_new_line() {
        assert_eq!(
            quoted("a\nlevel=ERROR\r").to_string(),
            "`a\\nlevel=ERROR\\r`"
        );
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncated("abc", 10), "abc");
        let long = "ж".repeat(100);
        let cut = truncated(&long, 11);
        assert!(cut.len() <= 11, "{cut}");
        assert!(cut.ends_with('…'));
    }
}
