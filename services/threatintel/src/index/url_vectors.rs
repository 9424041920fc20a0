//! Published URL canonicalization vectors, each filed as an indicator and looked up in its
//! other spelling, both ways round.
//!
//! Source: Google Safe Browsing API v4, "URLs and Hashing", section "Canonicalization"
//! (developers.google.com/safe-browsing/v4/urls-hashing): each pair is the input and the
//! canonical URL that document gives. Adapted to CyberTrace's rules, which the keys show:
//! scheme, `www.` and a lone trailing `/` dropped, an empty query dropped. Left out are the
//! vectors where the two specifications disagree: Safe Browsing unescapes repeatedly
//! (`%25%32%35` → `%`), we decode once and losslessly (`%2525`); it merges `//` in a path; and
//! its hosts holding escapes or spaces are not hosts to a WHATWG parser.

use super::{IndexBuilder, Indicator, IndicatorKind, url::normalize_url};

/// (input, the canonical URL Safe Browsing gives, our key for both).
const SAFE_BROWSING: &[(&str, &str, &str)] = &[
    (
        "http://www.google.com/",
        "http://www.google.com/",
        "google.com",
    ),
    (
        "http://%31%36%38%2e%31%38%38%2e%39%39%2e%32%36/%2E%73%65%63%75%72%65/%77%77%77%2E%65%62%61%79%2E%63%6F%6D/",
        "http://168.188.99.26/.secure/www.ebay.com/",
        "168.188.99.26/.secure/www.ebay.com/",
    ),
    (
        "http://195.127.0.11/uploads/%20%20%20%20/.verify/.eBaysecure=updateuserdataxplimnbqmn-xplmvalidateinfoswqpcmlx=hgplmcx/",
        "http://195.127.0.11/uploads/%20%20%20%20/.verify/.eBaysecure=updateuserdataxplimnbqmn-xplmvalidateinfoswqpcmlx=hgplmcx/",
        "195.127.0.11/uploads/    /.verify/.eBaysecure=updateuserdataxplimnbqmn-xplmvalidateinfoswqpcmlx=hgplmcx/",
    ),
    (
        "http://3279880203/blah",
        "http://195.127.0.11/blah",
        "195.127.0.11/blah",
    ),
    (
        "http://www.google.com/blah/..",
        "http://www.google.com/",
        "google.com",
    ),
    ("www.google.com/", "http://www.google.com/", "google.com"),
    ("www.google.com", "http://www.google.com/", "google.com"),
    (
        "http://www.evil.com/blah#frag",
        "http://www.evil.com/blah",
        "evil.com/blah",
    ),
    (
        "http://www.GOOgle.com/",
        "http://www.google.com/",
        "google.com",
    ),
    (
        "http://www.google.com.../",
        "http://www.google.com/",
        "google.com",
    ),
    (
        "http://www.google.com/foo\tbar\rbaz\n2",
        "http://www.google.com/foobarbaz2",
        "google.com/foobarbaz2",
    ),
    (
        "http://www.google.com/q?",
        "http://www.google.com/q?",
        "google.com/q",
    ),
    (
        "http://www.google.com/q?r?",
        "http://www.google.com/q?r?",
        "google.com/q?r?",
    ),
    (
        "http://www.google.com/q?r?s",
        "http://www.google.com/q?r?s",
        "google.com/q?r?s",
    ),
    (
        "http://evil.com/foo#bar#baz",
        "http://evil.com/foo",
        "evil.com/foo",
    ),
    (
        "http://evil.com/foo;",
        "http://evil.com/foo;",
        "evil.com/foo;",
    ),
    (
        "http://evil.com/foo?bar;",
        "http://evil.com/foo?bar;",
        "evil.com/foo?bar;",
    ),
    (
        "http://notrailingslash.com",
        "http://notrailingslash.com/",
        "notrailingslash.com",
    ),
    (
        "http://www.gotaport.com:1234/",
        "http://www.gotaport.com/",
        "gotaport.com",
    ),
    (
        "  http://www.google.com/  ",
        "http://www.google.com/",
        "google.com",
    ),
    (
        "https://www.securesite.com/",
        "https://www.securesite.com/",
        "securesite.com",
    ),
    (
        "http://host.com/ab%23cd",
        "http://host.com/ab%23cd",
        "host.com/ab%23cd",
    ),
    // The issue's own: `%3F` in a query is a `?`.
    (
        "http://www.google.com/q?r?s%3F",
        "http://www.google.com/q?r?s?",
        "google.com/q?r?s?",
    ),
    // ../shared/design.md's vector.
    (
        "https://www.example.com:443/?q=hello%20world#fragment",
        "http://example.com/?q=hello world",
        "example.com/?q=hello world",
    ),
];

/// Spellings of different URLs that must not match each other.
const DISTINCT: &[(&str, &str)] = &[
    ("http://a.com/%FF", "http://a.com/%FE"),
    ("http://a.com/x", "http://a.com/x%20"),
    ("http://a.com/a%2Fb", "http://a.com/a/b"),
    ("http://a.com/%2E", "http://a.com/"),
    ("http://a.com/?x=1%26y=2", "http://a.com/?x=1&y=2"),
    ("http://a.com/a%09b", "http://a.com/ab"),
];

/// Whether `lookup` matches an index holding only the URL indicator `indicator`.
fn matches(indicator: &str, lookup: &str) -> bool {
    let mut builder = IndexBuilder::new([]);
    builder
        .add(&Indicator {
            value: indicator.to_owned(),
            kind: Some(IndicatorKind::Url),
            category: "KL_Malicious_URL".to_owned(),
            supplier: "Vectors".to_owned(),
            exact: true,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{indicator:?} is filed: {e}"));
    let index = builder.build();
    let mut found = Vec::new();
    index
        .lookup(lookup, Some(IndicatorKind::Url), 0, &mut found)
        .unwrap_or_else(|e| panic!("{lookup:?} is looked up: {e}"));
    found.iter().any(|m| m.supplier == "Vectors")
}

#[test]
fn safe_browsing_vectors_match_both_ways() {
    for &(input, canonical, key) in SAFE_BROWSING {
        assert_eq!(normalize_url(input).unwrap().text, key, "{input:?}");
        assert_eq!(normalize_url(canonical).unwrap().text, key, "{canonical:?}");
        assert!(
            matches(input, canonical),
            "{input:?} filed, {canonical:?} looked up"
        );
        assert!(
            matches(canonical, input),
            "{canonical:?} filed, {input:?} looked up"
        );
    }
}

#[test]
fn different_urls_do_not_match_either_way() {
    for &(one, other) in DISTINCT {
        assert!(!matches(one, other), "{one:?} filed, {other:?} looked up");
        assert!(!matches(other, one), "{other:?} filed, {one:?} looked up");
        assert!(matches(one, one) && matches(other, other));
    }
}
