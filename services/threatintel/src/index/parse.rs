//! Reading a value as an indicator (to store) or as a lookup (to answer), by its kind or by its
//! shape when no kind is given.

use std::{borrow::Cow, net::IpAddr};

use ipnet::IpNet;

use super::{
    canonical,
    domain::normalize_domain,
    error::{IndicatorError, MAX_VALUE_LEN},
    hash::{HashKey, parse_hash},
    ip::parse_ip_indicator,
    mask::{MaskPattern, parse_mask},
    model::IndicatorKind,
    url::{NormalizedUrl, UrlHost, normalize_url},
};

/// Where an indicator is filed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndicatorKey {
    Ip(IpNet),
    Url(NormalizedUrl),
    UrlMask(MaskPattern),
    Domain(String),
    Hash(HashKey),
}

impl IndicatorKey {
    /// The key as text, the same for every spelling of one indicator: how the indicator is
    /// shown as matched, and how the Internal TI store names it.
    pub fn canonical(&self) -> String {
        match self {
            IndicatorKey::Ip(net) if net.prefix_len() == net.max_prefix_len() => {
                net.addr().to_string()
            }
            IndicatorKey::Ip(net) => net.to_string(),
            IndicatorKey::Url(url) => url.text.clone(),
            IndicatorKey::UrlMask(mask) => mask.pattern.clone(),
            IndicatorKey::Domain(domain) => domain.clone(),
            IndicatorKey::Hash(hash) => hash.to_hex(),
        }
    }

    /// The category of an analyst's Internal TI entry that names none, as CyberTrace names
    /// them (`KL_InternalTI_URL`, `KL_InternalTI_IP`, `KL_InternalTI_Hash_MD5`, ...).
    pub fn internal_ti_category(&self) -> String {
        match self {
            IndicatorKey::Ip(_) => "KL_InternalTI_IP".to_owned(),
            IndicatorKey::Url(_) | IndicatorKey::UrlMask(_) | IndicatorKey::Domain(_) => {
                "KL_InternalTI_URL".to_owned()
            }
            IndicatorKey::Hash(hash) => format!("KL_InternalTI_Hash_{}", hash.algorithm()),
        }
    }

    pub fn kind(&self) -> IndicatorKind {
        match self {
            IndicatorKey::Ip(_) => IndicatorKind::Ip,
            IndicatorKey::Url(_) | IndicatorKey::UrlMask(_) => IndicatorKind::Url,
            IndicatorKey::Domain(_) => IndicatorKind::Domain,
            IndicatorKey::Hash(_) => IndicatorKind::Hash,
        }
    }
}

/// What a lookup asks for: its text borrowed from the value when the value is canonical
/// already ([`canonical`]), else normalized into a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupKey<'v> {
    Ip(IpAddr),
    Url {
        text: Cow<'v, str>,
        host: LookupHost<'v>,
    },
    Domain(Cow<'v, str>),
    Hash(HashKey),
}

/// A URL lookup's host, which is also looked up as a domain or an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupHost<'v> {
    Domain(Cow<'v, str>),
    Ip(IpAddr),
}

impl From<NormalizedUrl> for LookupKey<'_> {
    fn from(url: NormalizedUrl) -> Self {
        let host = match url.host {
            UrlHost::Domain(domain) => LookupHost::Domain(Cow::Owned(domain)),
            UrlHost::Ip(ip) => LookupHost::Ip(ip),
        };
        LookupKey::Url {
            text: Cow::Owned(url.text),
            host,
        }
    }
}

fn checked(value: &str) -> Result<&str, IndicatorError> {
    // Only what a URL parser trims too, so a stored normalized value reads back unchanged.
    let value = value.trim_matches(|c: char| c <= ' ');
    if value.is_empty() {
        return Err(IndicatorError::Empty);
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(IndicatorError::TooLong(value.len()));
    }
    Ok(value)
}

/// The kind a value has by its shape: hex of hash length, an address or network, something
/// with a path, scheme or `*` (a URL), else a domain.
pub fn detect_kind(value: &str) -> Result<IndicatorKind, IndicatorError> {
    let value = checked(value)?;
    let is_hex = value.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex && matches!(value.len(), 32 | 40 | 64) {
        Ok(IndicatorKind::Hash)
    } else if value.parse::<IpAddr>().is_ok() || value.parse::<IpNet>().is_ok() {
        Ok(IndicatorKind::Ip)
    } else if value.contains(['/', '*', '?']) || value.contains("://") {
        Ok(IndicatorKind::Url)
    } else if value.contains('.') && !value.contains(char::is_whitespace) {
        Ok(IndicatorKind::Domain)
    } else {
        Err(IndicatorError::Unrecognized(value.to_owned()))
    }
}

pub fn parse_indicator(
    value: &str,
    kind: Option<IndicatorKind>,
) -> Result<IndicatorKey, IndicatorError> {
    let value = checked(value)?;
    Ok(match kind.map_or_else(|| detect_kind(value), Ok)? {
        IndicatorKind::Ip => IndicatorKey::Ip(parse_ip_indicator(value)?),
        IndicatorKind::Url if value.contains('*') => IndicatorKey::UrlMask(parse_mask(value)?),
        IndicatorKind::Url => IndicatorKey::Url(normalize_url(value)?),
        IndicatorKind::Domain => IndicatorKey::Domain(normalize_domain(value)?),
        IndicatorKind::Hash => IndicatorKey::Hash(parse_hash(value)?),
    })
}

pub fn parse_lookup(
    value: &str,
    kind: Option<IndicatorKind>,
) -> Result<LookupKey<'_>, IndicatorError> {
    let value = checked(value)?;
    Ok(match kind.map_or_else(|| detect_kind(value), Ok)? {
        IndicatorKind::Ip => LookupKey::Ip(value.parse().map_err(|_| IndicatorError::BadIp {
            value: value.to_owned(),
            reason: "a lookup takes one address".to_owned(),
        })?),
        IndicatorKind::Url => match canonical::url(value) {
            Some((text, host)) => LookupKey::Url {
                text: Cow::Borrowed(text),
                host: match host {
                    canonical::Host::Domain(domain) => LookupHost::Domain(Cow::Borrowed(domain)),
                    canonical::Host::Ip(ip) => LookupHost::Ip(ip),
                },
            },
            None => normalize_url(value)?.into(),
        },
        IndicatorKind::Domain => LookupKey::Domain(match canonical::domain(value) {
            Some(domain) => Cow::Borrowed(domain),
            None => Cow::Owned(normalize_domain(value)?),
        }),
        IndicatorKind::Hash => LookupKey::Hash(parse_hash(value)?),
    })
}

/// `value` looked up by the full normalization only, never the fast path: what the fast
/// path must agree with.
#[cfg(test)]
pub fn parse_lookup_slowly(
    value: &str,
    kind: IndicatorKind,
) -> Result<LookupKey<'static>, IndicatorError> {
    let value = checked(value)?;
    Ok(match kind {
        IndicatorKind::Url => normalize_url(value)?.into(),
        IndicatorKind::Domain => LookupKey::Domain(Cow::Owned(normalize_domain(value)?)),
        _ => unreachable!("only URLs and domains have a fast path"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_from_shapes() {
        let cases = [
            ("192.0.2.1", IndicatorKind::Ip),
            ("10.0.0.0/8", IndicatorKind::Ip),
            ("2001:db8::1", IndicatorKind::Ip),
            ("http://fakess123.nu", IndicatorKind::Url),
            ("example.com/testpage/*", IndicatorKind::Url),
            ("*.example.com", IndicatorKind::Url),
            ("fakess123.nu", IndicatorKind::Domain),
            ("d41d8cd98f00b204e9800998ecf8427e", IndicatorKind::Hash),
        ];
        for (value, kind) in cases {
            assert_eq!(detect_kind(value), Ok(kind), "{value}");
        }
        assert_eq!(
            detect_kind("hello"),
            Err(IndicatorError::Unrecognized("hello".into()))
        );
        assert_eq!(detect_kind("  "), Err(IndicatorError::Empty));
        assert_eq!(
            detect_kind(&"a.".repeat(5000)),
            Err(IndicatorError::TooLong(10000))
        );
    }

    #[test]
    fn a_lookup_takes_one_address_not_a_network() {
        assert!(parse_lookup("10.0.0.0/8", Some(IndicatorKind::Ip)).is_err());
        assert!(parse_lookup("10.0.0.1", None).is_ok());
    }
}
