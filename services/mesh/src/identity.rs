//! Mesh identities: the SPIFFE URI SAN of a certificate, `spiffe://xdr.local/<name>`.

use std::fmt;

use x509_parser::{certificate::X509Certificate, extensions::GeneralName, prelude::FromDer};

/// The trust domain of every mesh identity.
pub const TRUST_DOMAIN: &str = "xdr.local";

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("the peer certificate cannot be parsed: {0}")]
    Unparseable(String),
    #[error("the peer certificate has no spiffe://{TRUST_DOMAIN}/ URI SAN")]
    Missing,
    #[error("`{0}` is not a mesh identity: expected spiffe://{TRUST_DOMAIN}/<name>")]
    Invalid(String),
}

/// Who is calling: the last segment of the SPIFFE id (`enrichment`, `operator`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    name: String,
}

impl Identity {
    /// The identity of human operators and scripts (`xdrctl`, grpcurl).
    pub const OPERATOR: &'static str = crate::directory::OPERATOR;

    /// An identity by name; `name` is lower-case letters, digits and `-`.
    pub fn new(name: &str) -> Result<Self, IdentityError> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Identity {
                name: name.to_owned(),
            })
        } else {
            Err(IdentityError::Invalid(name.to_owned()))
        }
    }

    /// The identity of a mesh service named in [`crate::directory`].
    pub fn service(name: &str) -> Self {
        Identity::new(name).expect("service names are valid identity names")
    }

    pub fn operator() -> Self {
        Identity::service(Self::OPERATOR)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn spiffe_uri(&self) -> String {
        format!("spiffe://{TRUST_DOMAIN}/{}", self.name)
    }

    pub fn from_spiffe_uri(uri: &str) -> Result<Self, IdentityError> {
        let name = uri
            .strip_prefix("spiffe://")
            .and_then(|rest| rest.strip_prefix(TRUST_DOMAIN))
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| IdentityError::Invalid(uri.to_owned()))?;
        Identity::new(name).map_err(|_| IdentityError::Invalid(uri.to_owned()))
    }

    /// The identity named by the URI SANs of a DER certificate. A certificate carrying a
    /// SPIFFE URI of another trust domain, or none, has no mesh identity.
    pub fn from_certificate(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| IdentityError::Unparseable(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| IdentityError::Unparseable(e.to_string()))?
            .ok_or(IdentityError::Missing)?;
        let mut uris = san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some(*uri),
                _ => None,
            });
        let uri = uris.next().ok_or(IdentityError::Missing)?;
        if uris.next().is_some() {
            // Two identities in one certificate would make every allow list ambiguous.
            return Err(IdentityError::Invalid(
                "a certificate with several SPIFFE URIs".to_owned(),
            ));
        }
        Identity::from_spiffe_uri(uri)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spiffe_uri())
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair, SanType};

    use super::*;
    use crate::pki::{CertificateAuthority, Usage, Validity};

    fn cert_with_sans(sans: Vec<SanType>) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().unwrap())
    }

    #[test]
    fn issued_service_certificate_carries_its_identity() {
        let ca = CertificateAuthority::generate("test").unwrap();
        let issued = ca
            .issue_service(&Identity::service("enrichment"), Validity::days_from_now(1))
            .unwrap();
        let der = rustls_pki_der(&issued.cert_pem);
        assert_eq!(
            Identity::from_certificate(&der).unwrap(),
            Identity::service("enrichment")
        );
    }

    #[test]
    fn operator_certificate_carries_operator_identity() {
        let ca = CertificateAuthority::generate("test").unwrap();
        let issued = ca
            .issue(
                Some(&Identity::operator()),
                &[],
                &[],
                Usage::Client,
                Validity::days_from_now(1),
            )
            .unwrap();
        let der = rustls_pki_der(&issued.cert_pem);
        assert_eq!(Identity::from_certificate(&der).unwrap().name(), "operator");
    }

    #[test]
    fn identities_are_read_from_uri_sans() {
        let cases: Vec<(Vec<SanType>, Result<&str, IdentityError>)> = vec![
            (
                vec![uri("spiffe://xdr.local/threatintel")],
                Ok("threatintel"),
            ),
            (
                vec![
                    SanType::DnsName("localhost".try_into().unwrap()),
                    uri("spiffe://xdr.local/gateway"),
                ],
                Ok("gateway"),
            ),
            (
                vec![SanType::DnsName("enrichment".try_into().unwrap())],
                Err(IdentityError::Missing),
            ),
            (vec![], Err(IdentityError::Missing)),
            (
                vec![uri("https://xdr.local/enrichment")],
                Err(IdentityError::Missing),
            ),
            (
                vec![uri("spiffe://evil.example/enrichment")],
                Err(IdentityError::Invalid(
                    "spiffe://evil.example/enrichment".into(),
                )),
            ),
            (
                vec![uri("spiffe://xdr.local/Enrichment")],
                Err(IdentityError::Invalid(
                    "spiffe://xdr.local/Enrichment".into(),
                )),
            ),
            (
                vec![uri("spiffe://xdr.local/a/b")],
                Err(IdentityError::Invalid("spiffe://xdr.local/a/b".into())),
            ),
            (
                vec![
                    uri("spiffe://xdr.local/collector"),
                    uri("spiffe://xdr.local/operator"),
                ],
                Err(IdentityError::Invalid(
                    "a certificate with several SPIFFE URIs".into(),
                )),
            ),
        ];
        for (sans, expected) in cases {
            let got = Identity::from_certificate(&cert_with_sans(sans.clone()));
            assert_eq!(
                got.as_ref().map(Identity::name).map_err(Clone::clone),
                expected,
                "SANs {sans:?}"
            );
        }
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(matches!(
            Identity::from_certificate(b"not der"),
            Err(IdentityError::Unparseable(_))
        ));
    }

    fn rustls_pki_der(pem: &str) -> Vec<u8> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }
}
