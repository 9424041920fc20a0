//! A URL indicator or lookup split into its parts before anything is normalized, and the rule
//! of what may be one: a web scheme (`http`, `https`, `ftp`) or none (read as http), and a
//! host. `mailto:user@example.com` is not `example.com`, and `/blah` or `http:///blah` has no
//! host (a URL parser would take `blah` for one).

/// Schemes a URL indicator may have; a value without one reads as http.
pub const WEB_SCHEMES: [&str; 3] = ["http", "https", "ftp"];

/// The parts of a URL as written (tabs and line breaks already removed).
#[derive(Debug, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// `user:password@host:port`, as written; never empty.
    pub authority: &'a str,
    /// From the first `/` or `\` after the authority up to `?` or `#`; empty when none.
    pub path: &'a str,
    /// After the first `?`, up to `#`.
    pub query: Option<&'a str>,
}

/// Splits `text`; the error says why it is not a web URL.
pub fn split(text: &str) -> Result<UrlParts<'_>, String> {
    let after_scheme = match scheme_of(text) {
        Scheme::None => text,
        Scheme::Web { rest } => rest,
        Scheme::WebWithoutSlashes(name) => {
            return Err(format!("no `//` after `{name}:`"));
        }
        Scheme::Other(name) => {
            return Err(format!(
                "`{name}:` is not a web scheme ({})",
                WEB_SCHEMES.join(", ")
            ));
        }
    };
    let end = after_scheme
        .find(['/', '\\', '?', '#'])
        .unwrap_or(after_scheme.len());
    let (authority, rest) = after_scheme.split_at(end);
    let host_and_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host_and_port.is_empty() {
        return Err("no host".to_owned());
    }
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    Ok(UrlParts {
        authority,
        path,
        query,
    })
}

enum Scheme<'a> {
    /// No scheme: `example.com/x`, `example.com:8080/x`.
    None,
    /// A web scheme and its `//`; `rest` follows them.
    Web { rest: &'a str },
    /// `http:example.com`: a web scheme with no authority marker.
    WebWithoutSlashes(&'a str),
    /// `mailto:`, `javascript:`, `file://`...
    Other(&'a str),
}

/// The scheme `text` starts with (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`,
/// then `:`). `example.com:8080` has none: digits after the colon are a port.
fn scheme_of(text: &str) -> Scheme<'_> {
    let Some((name, rest)) = text.split_once(':') else {
        return Scheme::None;
    };
    let mut chars = name.chars();
    let is_scheme = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !is_scheme {
        return Scheme::None;
    }
    let web = WEB_SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(name));
    let slashes = rest.len() >= 2
        && rest.as_bytes()[..2]
            .iter()
            .all(|&b| matches!(b, b'/' | b'\\'));
    match (web, slashes) {
        (true, true) => Scheme::Web { rest: &rest[2..] },
        (false, true) => Scheme::Other(name),
        (_, false) if is_port(rest) => Scheme::None,
        (true, false) => Scheme::WebWithoutSlashes(name),
        (false, false) => Scheme::Other(name),
    }
}

/// Whether `rest` (what follows a colon) begins with a port: digits, then the end of the
/// authority.
fn is_port(rest: &str) -> bool {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0
        && rest[digits..]
            .bytes()
            .next()
            .is_none_or(|b| matches!(b, b'/' | b'\\' | b'?' | b'#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> (&str, &str, Option<&str>) {
        let parts = split(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (parts.authority, parts.path, parts.query)
    }

    #[test]
    fn web_urls_split_with_or_without_a_scheme() {
        assert_eq!(
            parts("http://a.example/x?y#z"),
            ("a.example", "/x", Some("y"))
        );
        assert_eq!(
            parts("HTTPS://u:p@a.example:8443"),
            ("u:p@a.example:8443", "", None)
        );
        assert_eq!(parts("ftp:\\\\a.example\\x"), ("a.example", "\\x", None));
        assert_eq!(parts("a.example:8080/x"), ("a.example:8080", "/x", None));
        assert_eq!(parts("a.example?q=/x#f?g"), ("a.example", "", Some("q=/x")));
        assert_eq!(
            parts("[2001:db8::1]:80/x"),
            ("[2001:db8::1]:80", "/x", None)
        );
    }

    #[test]
    fn other_schemes_and_hostless_values_are_refused() {
        for (text, reason) in [
            ("mailto:user@example.com", "`mailto:` is not a web scheme"),
            ("javascript:alert(1)", "`javascript:` is not a web scheme"),
            ("file:///etc/passwd", "`file:` is not a web scheme"),
            ("user:secret@example.com/x", "`user:` is not a web scheme"),
            ("http:example.com", "no `//` after `http:`"),
            ("/blah", "no host"),
            ("http:///blah;param?query#ref", "no host"),
            ("http://user@/x", "no host"),
            ("?q", "no host"),
        ] {
            let error = split(text).unwrap_err();
            assert!(error.starts_with(reason), "{text}: {error}");
        }
    }
}
