//! What an alert is about, taken from its events: every threat-intel match (the URL's host
//! too, as a domain to block with it), and the addresses, URLs, host names and hashes in the
//! event's KUMA fields. Deduplicated by type and value; a matched observable wins over the
//! same value seen unmatched.

use std::net::IpAddr;

use xdr_mesh::quote::truncated;
use xdr_proto::pb::{Event, IndicatorType, Observable, field_value::Kind};

/// The most observables an alert keeps.
pub const MAX_OBSERVABLES: usize = 1000;

/// Longer values are not taken as observables (nothing to block there).
const MAX_VALUE_BYTES: usize = 2048;
/// A match's category, indicator, supplier and field are kept to this many bytes each.
const MAX_LABEL_BYTES: usize = 256;
/// KUMA fields read for observables, with the type of what they hold.
const FIELDS: [(&str, IndicatorType); 9] = [
    ("SourceAddress", IndicatorType::Ip),
    ("DestinationAddress", IndicatorType::Ip),
    ("DeviceAddress", IndicatorType::Ip),
    ("RequestUrl", IndicatorType::Url),
    ("DestinationHostName", IndicatorType::Domain),
    ("SourceHostName", IndicatorType::Domain),
    ("DestinationDnsDomain", IndicatorType::Domain),
    ("FileHash", IndicatorType::Hash),
    ("OldFileHash", IndicatorType::Hash),
];

/// The observables of `event`, matched ones first.
pub fn of_event(event: &Event) -> Vec<Observable> {
    let mut found = Vec::new();
    for ti in event
        .ti
        .iter()
        .filter(|ti| ti.value.len() <= MAX_VALUE_BYTES)
    {
        let kind = IndicatorType::try_from(ti.indicator_type).unwrap_or(IndicatorType::Unspecified);
        let short = |text: &str| truncated(text, MAX_LABEL_BYTES).into_owned();
        let matched = |r#type: IndicatorType, value: String| Observable {
            r#type: r#type as i32,
            value,
            category: short(&ti.category),
            matched_indicator: short(&ti.matched_indicator),
            supplier: short(&ti.supplier),
            field: short(&ti.field),
        };
        found.push(matched(kind, ti.value.clone()));
        if kind == IndicatorType::Url
            && let Some(host) = host_of(&ti.value)
        {
            found.push(matched(host.0, host.1));
        }
    }
    for (name, r#type) in FIELDS {
        let Some(Kind::Text(value)) = event.fields.get(name).and_then(|v| v.kind.as_ref()) else {
            continue;
        };
        if value.is_empty() || value.len() > MAX_VALUE_BYTES {
            continue;
        }
        found.push(Observable {
            r#type: r#type as i32,
            value: value.clone(),
            field: name.to_owned(),
            ..Observable::default()
        });
    }
    found
}

/// Adds `more` to `into`, skipping values present (a matched one replaces an unmatched one),
/// up to [`MAX_OBSERVABLES`].
pub fn merge(into: &mut Vec<Observable>, more: impl IntoIterator<Item = Observable>) {
    for observable in more {
        let present = into
            .iter()
            .position(|o| o.r#type == observable.r#type && o.value == observable.value);
        match present {
            Some(i) if into[i].category.is_empty() && !observable.category.is_empty() => {
                into[i] = observable;
            }
            Some(_) => {}
            None if into.len() < MAX_OBSERVABLES => into.push(observable),
            None => {}
        }
    }
}

/// The host of a URL (with or without a scheme), as a domain or an IP address observable.
pub fn host_of(url: &str) -> Option<(IndicatorType, String)> {
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| u.has_host())
        .or_else(|| url::Url::parse(&format!("http://{url}")).ok())?;
    match parsed.host()? {
        url::Host::Domain(domain) => Some((IndicatorType::Domain, domain.to_owned())),
        url::Host::Ipv4(ip) => Some((IndicatorType::Ip, IpAddr::V4(ip).to_string())),
        url::Host::Ipv6(ip) => Some((IndicatorType::Ip, IpAddr::V6(ip).to_string())),
    }
}

#[cfg(test)]
mod tests {
    use xdr_proto::pb::{FieldValue, TiMatch};

    use super::*;

    fn text(value: &str) -> FieldValue {
        FieldValue {
            kind: Some(Kind::Text(value.into())),
        }
    }

    #[test]
    fn a_matched_url_brings_its_host_and_fields_their_values() {
        let event = Event {
            fields: [
                ("RequestUrl".to_owned(), text("http://fakess123bn.nu")),
                ("DestinationAddress".to_owned(), text("198.51.100.7")),
            ]
            .into(),
            ti: vec![TiMatch {
                field: "RequestUrl".into(),
                value: "http://fakess123bn.nu".into(),
                indicator_type: IndicatorType::Url as i32,
                category: "KL_Malicious_URL".into(),
                matched_indicator: "fakess123bn.nu".into(),
                supplier: "Demo".into(),
                ..TiMatch::default()
            }],
            ..Event::default()
        };
        let mut observables = Vec::new();
        merge(&mut observables, of_event(&event));
        let seen: Vec<_> = observables
            .iter()
            .map(|o| (o.r#type, o.value.as_str(), o.category.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    IndicatorType::Url as i32,
                    "http://fakess123bn.nu",
                    "KL_Malicious_URL"
                ),
                (
                    IndicatorType::Domain as i32,
                    "fakess123bn.nu",
                    "KL_Malicious_URL"
                ),
                (IndicatorType::Ip as i32, "198.51.100.7", ""),
            ]
        );
    }

    #[test]
    fn hosts_come_from_urls_with_or_without_a_scheme() {
        assert_eq!(
            host_of("example.com/a?b"),
            Some((IndicatorType::Domain, "example.com".into()))
        );
        assert_eq!(
            host_of("https://192.0.2.1:8443/x"),
            Some((IndicatorType::Ip, "192.0.2.1".into()))
        );
    }
}
