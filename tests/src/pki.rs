//! A throw-away mesh PKI in a temporary folder, with the certificates that must be refused.

use std::path::{Path, PathBuf};

use time::{Duration, OffsetDateTime};
use xdr_mesh::{
    identity::Identity,
    pki::{self, CertificateAuthority, Usage, Validity},
};

pub struct TestPki {
    dir: tempfile::TempDir,
}

/// Extra client certificates written beside the mesh ones, by file stem.
pub const OTHER_CA_OPERATOR: &str = "other-ca-operator";
pub const EXPIRED_OPERATOR: &str = "expired-operator";
pub const NO_IDENTITY: &str = "no-identity";

impl TestPki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let certs = dir.path().join("certs");
        let ca = CertificateAuthority::generate("test mesh CA").expect("a CA");
        pki::write_pki_of(&certs, &ca).expect("the mesh PKI is written");

        let operator = Identity::operator();
        let other_ca = CertificateAuthority::generate("some other CA").expect("a second CA");
        let foreign = other_ca
            .issue(
                Some(&operator),
                &[],
                &[],
                Usage::Client,
                Validity::days_from_now(30),
            )
            .unwrap();
        pki::write_issued(&certs, OTHER_CA_OPERATOR, &foreign).unwrap();

        let now = OffsetDateTime::now_utc();
        let expired = Validity {
            not_before: now - Duration::days(30),
            not_after: now - Duration::days(1),
        };
        let expired = ca
            .issue(Some(&operator), &[], &[], Usage::Client, expired)
            .unwrap();
        pki::write_issued(&certs, EXPIRED_OPERATOR, &expired).unwrap();

        let anonymous = ca
            .issue(
                None,
                &["somebody".to_owned()],
                &[],
                Usage::Client,
                Validity::days_from_now(30),
            )
            .unwrap();
        pki::write_issued(&certs, NO_IDENTITY, &anonymous).unwrap();
        TestPki { dir }
    }

    /// The folder of every certificate and key (`--tls-dir`).
    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// A scratch folder for data directories, config files and the like.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}
