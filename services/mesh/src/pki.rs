//! The development PKI: a mesh CA and one certificate per identity, made with rcgen so a
//! newcomer needs no openssl. `xdrctl certs`, `xdrctl up` and the test harness all use it.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::{directory::SERVICES, identity::Identity};

/// File names inside a certificate directory, shared by the writer and the readers.
pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";

pub fn cert_file(name: &str) -> String {
    format!("{name}.crt")
}

pub fn key_file(name: &str) -> String {
    format!("{name}.key")
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0} already holds a CA; pass --force to replace it (certificates it signed stop working)"
    )]
    Exists(PathBuf),
}

/// What a certificate may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A mesh service: serves TLS and dials other services.
    Service,
    /// A person or script calling services: client authentication only.
    Client,
}

/// A PEM certificate and its PEM private key.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Validity window of an issued certificate.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago (tolerates small clock skew between hosts) for `days` days.
    pub fn days_from_now(days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }
}

/// A certificate authority able to issue mesh certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl CertificateAuthority {
    /// A new self-signed CA, valid for ten years.
    pub fn generate(common_name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let validity = Validity::days_from_now(3650);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a certificate for `identity` (its SPIFFE URI SAN, when given) plus `dns_names`
    /// and `ips`.
    pub fn issue(
        &self,
        identity: Option<&Identity>,
        dns_names: &[String],
        ips: &[IpAddr],
        usage: Usage,
        validity: Validity,
    ) -> Result<IssuedCert, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let common_name = match identity {
            Some(identity) => identity.name(),
            None => dns_names.first().map_or("", String::as_str),
        };
        params.distinguished_name = distinguished_name(common_name);
        if let Some(identity) = identity {
            let uri = identity.spiffe_uri().try_into()?;
            params.subject_alt_names.push(SanType::URI(uri));
        }
        for dns in dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName(dns.clone().try_into()?));
        }
        params
            .subject_alt_names
            .extend(ips.iter().copied().map(SanType::IpAddress));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match usage {
            Usage::Service => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.use_authority_key_identifier_extension = true;
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The certificate a mesh service presents: its SPIFFE identity, and the names it is
    /// reached by on one machine (`localhost`, `127.0.0.1`) and in docker-compose (its name).
    pub fn issue_service(
        &self,
        service: &Identity,
        validity: Validity,
    ) -> Result<IssuedCert, PkiError> {
        self.issue(
            Some(service),
            &["localhost".to_owned(), service.name().to_owned()],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            Usage::Service,
            validity,
        )
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "xdr-mesh");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// The name of the gateway's HTTPS certificate files (`gateway-https.crt`, `.key`).
pub const GATEWAY_HTTPS: &str = "gateway-https";
/// The compose host name the HTTPS certificate also names.
const GATEWAY_HTTPS_HOST: &str = "gateway";

/// Writes the whole development PKI into `dir`: the CA, one certificate per mesh service and
/// one for the `operator` client. Refuses to replace an existing CA unless `force`.
pub fn write_dev_pki(dir: &Path, force: bool) -> Result<Vec<PathBuf>, PkiError> {
    let ca_path = dir.join(CA_CERT_FILE);
    if ca_path.exists() && !force {
        return Err(PkiError::Exists(dir.to_owned()));
    }
    let ca = CertificateAuthority::generate("xdr-mesh development CA")?;
    write_pki_of(dir, &ca)
}

/// Writes `ca`'s certificate and key and a fresh certificate for every mesh service and the
/// operator into `dir`, replacing what is there.
pub fn write_pki_of(dir: &Path, ca: &CertificateAuthority) -> Result<Vec<PathBuf>, PkiError> {
    fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut written = vec![
        write_file(&dir.join(CA_CERT_FILE), ca.cert_pem(), false)?,
        write_file(&dir.join(CA_KEY_FILE), &ca.key_pem, true)?,
    ];
    let validity = Validity::days_from_now(365);
    for service in SERVICES {
        let identity = Identity::service(service.name);
        let issued = ca.issue_service(&identity, validity)?;
        written.extend(write_issued(dir, service.name, &issued)?);
    }
    let operator = ca.issue(
        Some(&Identity::operator()),
        &[],
        &[],
        Usage::Client,
        validity,
    )?;
    written.extend(write_issued(dir, Identity::OPERATOR, &operator)?);
    // The gateway's HTTPS certificate for people and scripts: the names it is reached by,
    // no mesh identity (it is not a mesh credential).
    let https = ca.issue(
        None,
        &["localhost".to_owned(), GATEWAY_HTTPS_HOST.to_owned()],
        &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        Usage::Service,
        validity,
    )?;
    written.extend(write_issued(dir, GATEWAY_HTTPS, &https)?);
    Ok(written)
}

/// Writes `<name>.crt` and `<name>.key` into `dir`.
pub fn write_issued(dir: &Path, name: &str, issued: &IssuedCert) -> Result<[PathBuf; 2], PkiError> {
    Ok([
        write_file(&dir.join(cert_file(name)), &issued.cert_pem, false)?,
        write_file(&dir.join(key_file(name)), &issued.key_pem, true)?,
    ])
}

fn write_file(path: &Path, contents: &str, private: bool) -> Result<PathBuf, PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    // Private keys are created owner-only, never world-readable even for an instant.
    let mode = if private { 0o600 } else { 0o644 };
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    std::io::Write::write_all(&mut file, contents.as_bytes()).map_err(io)?;
    Ok(path.to_owned())
}
