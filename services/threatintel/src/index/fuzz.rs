//! Property tests of what reads untrusted text: the URL normalizer, masks, and the lookup
//! parser. Any input must give a value or an error, never a panic; a normalized URL must
//! normalize to itself (the index stores normalized values and lookups normalize again), and
//! so must a normalized mask.
//! Cases proptest finds are kept in `proptest-regressions/` and replayed on every run.

use proptest::prelude::*;

use super::{
    mask::parse_mask,
    model::IndicatorKind,
    parse::{detect_kind, parse_indicator, parse_lookup, parse_lookup_slowly},
    url::normalize_url,
};

/// Text shaped like URLs: schemes, hosts with odd dots and cases, ports, percent escapes,
/// dot-segments, queries, fragments, Unicode, and stray bytes.
fn url_like() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just(""),
        Just("http://"),
        Just("HTTPS://"),
        Just("ftp://"),
        Just("//")
    ];
    let host = prop_oneof![
        "[a-zA-Z0-9-]{1,12}(\\.[a-zA-Z0-9-]{1,8}){0,3}",
        Just("www.Example.COM".to_owned()),
        Just("0x7f.1".to_owned()),
        Just("[2001:db8::1]".to_owned()),
        Just("пример.рф".to_owned()),
        "\\PC{1,6}",
    ];
    let port = prop_oneof![
        Just(String::new()),
        "[0-9]{1,6}".prop_map(|p| format!(":{p}"))
    ];
    let path = "(/(\\.|\\.\\.|%[0-9a-fA-F]{2}|%|[a-z*]{1,5}|\\PC{1,3})){0,5}";
    let query = prop_oneof![Just(String::new()), "\\?[a-z=&%0-9 ]{0,10}"];
    let fragment = prop_oneof![Just(String::new()), "#\\PC{0,5}"];
    (scheme, host, port, path, query, fragment)
        .prop_map(|(s, h, p, pa, q, f)| format!("{s}{h}{p}{pa}{q}{f}"))
}

/// Text near the fast path's edge: mostly plain lower-case URLs and domains, with what sends
/// a value to the full normalization mixed in (`www.`, numbers that make addresses, leading
/// zeros, Punycode, dots at the ends, dot-segments, lone slashes, empty queries, colons).
fn canonical_like() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![Just(""), Just("http://"), Just("https://"), Just("ftp://")];
    // Each odd feature rare, so that most values are canonical, or one feature away.
    let label = prop_oneof![
        24 => "[a-z0-9-]{1,6}",
        2 => "[0-9]{1,3}",
        1 => Just("0x1f".to_owned()),
        1 => Just("xn--p1ai".to_owned()),
        1 => Just("www".to_owned()),
        1 => Just(String::new()),
    ];
    let ends = prop_oneof![8 => Just(""), 1 => Just("www."), 1 => Just(".")];
    let host = (ends.clone(), proptest::collection::vec(label, 1..5), ends)
        .prop_map(|(before, labels, after)| format!("{before}{}{after}", labels.join(".")));
    let piece = prop_oneof![
        16 => "[a-zA-Z0-9_~!$&'()*+,;=-]{0,5}",
        1 => Just(".".to_owned()),
        1 => Just("..".to_owned()),
        1 => Just("x:y".to_owned()),
    ];
    let path = proptest::collection::vec(piece, 0..4)
        .prop_map(|pieces| pieces.iter().map(|p| format!("/{p}")).collect::<String>());
    let query = prop_oneof![Just(String::new()), "\\?[a-z0-9=&?/.]{0,6}"];
    (scheme, host, path, query).prop_map(|(s, h, p, q)| format!("{s}{h}{p}{q}"))
}

fn url_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        proptest::sample::select(b"./\\%?#&=+ a2E\t\x00\x7f".to_vec()),
        Just(0xFF_u8),
        Just(0xD0),
        Just(0xBF),
        any::<u8>(),
    ];
    proptest::collection::vec(byte, 0..6)
}

/// The key of `http://h.example/` followed by every byte of `bytes` percent-encoded.
fn path_key(bytes: &[u8]) -> String {
    let encoded: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
    normalize_url(&format!("http://h.example/{encoded}"))
        .expect("a web URL with a host")
        .text
}

/// The bytes a key's path stands for (the inverse of the normalizer on these URLs).
fn decoded_path(key: &str) -> Vec<u8> {
    let path = key.strip_prefix("h.example").expect("the host comes first");
    let path = path.strip_prefix('/').unwrap_or(path);
    percent_encoding::percent_decode_str(path).collect()
}

proptest! {
    #[test]
    fn normalized_urls_are_fixed_points(input in url_like()) {
        if let Ok(once) = normalize_url(&input) {
            let twice = normalize_url(&once.text);
            prop_assert!(twice.is_ok(), "{input:?} → {:?} does not normalize again: {twice:?}", once.text);
            prop_assert_eq!(&twice.unwrap().text, &once.text, "input {:?}", input);
        }
    }

    /// A feed that fails to reload keeps its previous records by filing their stored
    /// (normalized) text again, so a mask must read back as itself.
    #[test]
    fn normalized_masks_are_fixed_points(input in url_like(), star in 0usize..40) {
        let mut input = input;
        let at = input.char_indices().map(|(i, _)| i).nth(star).unwrap_or(input.len());
        input.insert(at, '*');
        if let Ok(once) = parse_mask(&input) {
            let twice = parse_mask(&once.pattern);
            prop_assert!(twice.is_ok(), "{input:?} → {:?} does not parse again: {twice:?}", once.pattern);
            prop_assert_eq!(&twice.unwrap(), &once, "input {:?}", input);
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// A lookup the fast path takes keys as the full normalization would, and one the full
    /// normalization refuses the fast path refuses too.
    #[test]
    fn the_fast_path_agrees_with_the_full_normalization(
        input in prop_oneof![canonical_like(), url_like()],
    ) {
        for kind in [IndicatorKind::Url, IndicatorKind::Domain] {
            prop_assert_eq!(
                parse_lookup(&input, Some(kind)),
                parse_lookup_slowly(&input, kind),
                "{:?} as {:?}", input, kind
            );
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_the_parsers(input in "\\PC{0,80}") {
        let _ = normalize_url(&input);
        let _ = parse_mask(&input);
        let _ = detect_kind(&input);
        let _ = parse_indicator(&input, None);
        let _ = parse_lookup(&input, None);
    }

}

proptest! {
    // Cheap cases, and the pairs that collide are rare: many of them.
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Two different byte strings, each percent-encoded whole after a host, never share a key:
    /// the key of each decodes back to it. Bytes come from a small alphabet of what has meaning
    /// in a URL (dots, separators, `%`, spaces, controls, bytes that are not UTF-8), so that
    /// near-equal pairs (`.` and ``, `x` and `x `) are tried often.
    #[test]
    fn distinct_paths_never_share_a_key(p in url_bytes(), q in url_bytes()) {
        let (key_p, key_q) = (path_key(&p), path_key(&q));
        prop_assert_eq!(decoded_path(&key_p), p.clone(), "key {:?}", key_p);
        if p != q {
            prop_assert_ne!(&key_p, &key_q, "{:?} and {:?}", p, q);
        }
    }
}
