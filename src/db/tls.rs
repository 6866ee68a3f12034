//! Builds the rustls client configuration for an sslmode: which certificates to trust and check.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, verify_tls13_signature_with_raw_key,
    WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use x509_cert::der::{Decode, Encode};

/// Where the trusted root certificates come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// A PEM file of one or more CA certificates.
    File(PathBuf),
    /// The operating system's trust store (`sslrootcert=system`, which implies verify-full).
    System,
}

/// How much of the server's certificate to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Encrypt but accept any certificate (libpq's prefer / require without a root certificate).
    Nothing,
    /// The chain must lead to a trusted root; the host name is not checked (verify-ca).
    Chain,
    /// Chain and host name (verify-full).
    ChainAndName,
}

/// A client configuration that checks the server certificate as `check` says.
pub(crate) fn client_config(check: Check, roots: Option<&RootCerts>) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match check {
        Check::Nothing => None,
        Check::Chain | Check::ChainAndName => {
            let Some(roots) = roots else {
                bail!(
                    "checking the server certificate needs root certificates: set sslrootcert \
                     (or PGSSLROOTCERT); without HOME there is no ~/.postgresql/root.crt"
                );
            };
            Some(Arc::new(load_roots(roots)?))
        }
    };
    let verifier = Verifier {
        roots,
        check_name: check == Check::ChainAndName,
        algorithms: provider.signature_verification_algorithms,
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("the TLS provider supports no safe protocol version")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

fn load_roots(roots: &RootCerts) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::File(path) => {
            let shown = path.display();
            let pem = std::fs::read(path).with_context(|| {
                format!(
                    "cannot read root certificate file \"{shown}\"; provide it, use sslrootcert=system for the \
                     system's trusted roots, or choose an sslmode that does not verify the server certificate"
                )
            })?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.with_context(|| {
                    format!("root certificate file \"{shown}\" is not valid PEM")
                })?;
                store.add(cert).with_context(|| {
                    format!("root certificate file \"{shown}\" holds an unusable certificate")
                })?;
            }
            if store.is_empty() {
                bail!("root certificate file \"{shown}\" holds no certificate");
            }
        }
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            for err in &found.errors {
                tracing::warn!("system trust store: {err}");
            }
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                bail!("sslrootcert=system: no trusted root certificate found in the system's trust store");
            }
        }
    }
    Ok(store)
}

/// Whether there are root certificates to check against (libpq upgrades sslmode=require to
/// verify-ca then).
pub(crate) fn roots_exist(roots: Option<&RootCerts>) -> bool {
    match roots {
        Some(RootCerts::File(path)) => path.is_file(),
        Some(RootCerts::System) => true,
        None => false,
    }
}

/// Checks the server certificate like libpq: optionally the chain, optionally the host name.
/// Handshake signatures are always verified, so the server must hold the certificate's key.
#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity).map_err(explain_v1)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )
            .map_err(explain_v1)?;
            if self.check_name {
                verify_server_name(&cert, server_name)?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if self.roots.is_some() {
            return verify_tls12_signature(message, cert, dss, &self.algorithms);
        }
        let spki = public_key_of(cert)?;
        let key = webpki::RawPublicKeyEntity::try_from(&spki)
            .map_err(|error| bad_certificate(format!("its public key: {error}")))?;
        // TLS 1.2 names no single algorithm for a scheme: try each, as rustls does.
        let candidates = self
            .algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algorithms)| *algorithms)
            .ok_or(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
        for algorithm in candidates {
            match key.verify_signature(*algorithm, message, dss.signature()) {
                Ok(()) => return Ok(HandshakeSignatureValid::assertion()),
                Err(webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)) => continue,
                Err(error) => return Err(bad_certificate(format!("handshake signature: {error}"))),
            }
        }
        Err(bad_certificate(
            "no supported algorithm verifies the handshake signature with its key".to_owned(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if self.roots.is_some() {
            return verify_tls13_signature(message, cert, dss, &self.algorithms);
        }
        let spki = public_key_of(cert)?;
        verify_tls13_signature_with_raw_key(message, &spki, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The certificate's subject public key, read whatever the certificate's version: without root
/// certificates (sslmode=prefer/require) the handshake is checked against this key alone, as
/// libpq (OpenSSL) checks it, so that a server with an X.509 v1 certificate is reached too.
fn public_key_of(
    cert: &CertificateDer<'_>,
) -> Result<SubjectPublicKeyInfoDer<'static>, rustls::Error> {
    let parsed = x509_cert::Certificate::from_der(cert.as_ref())
        .map_err(|error| bad_certificate(format!("cannot read it: {error}")))?;
    let spki = parsed
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|error| bad_certificate(format!("cannot read its public key: {error}")))?;
    Ok(SubjectPublicKeyInfoDer::from(spki))
}

fn bad_certificate(what: String) -> rustls::Error {
    rustls::Error::General(format!("the server's certificate: {what}"))
}

/// Certificate verification (verify-ca, verify-full) needs X.509 v3: say so, and what to do,
/// instead of webpki's `UnsupportedCertVersion`.
fn explain_v1(error: rustls::Error) -> rustls::Error {
    let is_v1 = matches!(
        &error,
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))
            if format!("{other:?}").contains("UnsupportedCertVersion")
    );
    match is_v1 {
        true => rustls::Error::General(
            "the server's certificate is X.509 v1, which certificate verification (sslmode=verify-ca \
             or verify-full) does not accept: reissue it as an X.509 v3 certificate (for instance \
             with `openssl req -x509`), or use sslmode=require, which encrypts without verifying it"
                .to_owned(),
        ),
        false => error,
    }
}

/// Certificates for tests, made once with openssl; their keys were not kept.
#[cfg(test)]
pub(crate) mod test_certs {
    /// A self-signed CA ("campaign-elt test CA").
    pub(crate) const CA: &str = "\
-----BEGIN CERTIFICATE-----
MIIBlDCCATugAwIBAgIUIgkxSkQuf9ut5d8IUOenrDTxHgMwCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUY2FtcGFpZ24tZWx0IHRlc3QgQ0EwIBcNMjYxMTI5MjE1MTUw
WhgPMjEyNjExMDUyMTUxNTBaMB8xHTAbBgNVBAMMFGNhbXBhaWduLWVsdCB0ZXN0
IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEOylb/UogKj9s6d4cXNxchfKt
83I9xoALNRPbS9S9FaL57mOqRONyXnk0kRjUTTkSI+sUYeN/F8cOgfPlnl6vqaNT
MFEwHQYDVR0OBBYEFHl84MNmwv5ihglBDa40ybJbH89FMB8GA1UdIwQYMBaAFHl8
4MNmwv5ihglBDa40ybJbH89FMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID
RwAwRAIgEde6UM8HTKGb3R4uVZzXEa9LQ5AWFPQKkXmzk1IkMEUCIGgTfeeLmm+6
ZFytO2wwmwiVoBw+79RKPzfmDuAMbdXy
-----END CERTIFICATE-----
";
    /// A server certificate for `db.test`, signed by [`CA`].
    pub(crate) const LEAF_DB_TEST: &str = "\
-----BEGIN CERTIFICATE-----
MIIBvzCCAWagAwIBAgIUGUmoyYnwZcOY1txpu6FkgzH7oeswCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUY2FtcGFpZ24tZWx0IHRlc3QgQ0EwIBcNMjYxMTI5MjE1NTAy
WhgPMjEyNjExMDUyMTU1MDJaMBIxEDAOBgNVBAMMB2RiLnRlc3QwWTATBgcqhkjO
PQIBBggqhkjOPQMBBwNCAAQNjqd/s5xKyIPBUa/8Ojxrf5euT5mAX6sanrWKl2Nh
LhSOvSbPSUGzTwm+PHm+ipCg9KXFHdLHW1PIjN4Ajkg+o4GKMIGHMAwGA1UdEwEB
/wQCMAAwDgYDVR0PAQH/BAQDAgeAMBMGA1UdJQQMMAoGCCsGAQUFBwMBMBIGA1Ud
EQQLMAmCB2RiLnRlc3QwHQYDVR0OBBYEFHHZUOYAd4QFBIRTrMAZDmNAbLzQMB8G
A1UdIwQYMBaAFHl84MNmwv5ihglBDa40ybJbH89FMAoGCCqGSM49BAMCA0cAMEQC
IDAAlc1Zcrfm42CJqcSMOj/41zbzfgSq0BUr0JA38ybmAiAnWCb86ytR8Q5FOZQn
MbSPeA4MviN0ijojuHXYY3SUDA==
-----END CERTIFICATE-----
";
    /// Another self-signed CA, which signed nothing here.
    pub(crate) const OTHER_CA: &str = include_str!("../../tests/fixtures/unrelated-ca.pem");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    fn verifier(check: Check, root_pem: &str) -> Verifier {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.crt");
        std::fs::write(&path, root_pem).unwrap();
        let roots = match check {
            Check::Nothing => None,
            _ => Some(Arc::new(load_roots(&RootCerts::File(path)).unwrap())),
        };
        Verifier {
            roots,
            check_name: check == Check::ChainAndName,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }

    fn verify(verifier: &Verifier, name: &str) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let now = UnixTime::now();
        verifier.verify_server_cert(&der(test_certs::LEAF_DB_TEST), &[], &name, &[], now)
    }

    #[test]
    fn nothing_accepts_any_certificate() {
        assert!(verify(&verifier(Check::Nothing, ""), "other.test").is_ok());
    }

    #[test]
    fn chain_checks_the_issuer_but_not_the_name() {
        assert!(verify(&verifier(Check::Chain, test_certs::CA), "other.test").is_ok());
        let err = verify(&verifier(Check::Chain, test_certs::OTHER_CA), "db.test").unwrap_err();
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    }

    #[test]
    fn chain_and_name_checks_both() {
        let full = verifier(Check::ChainAndName, test_certs::CA);
        assert!(verify(&full, "db.test").is_ok());
        let err = verify(&full, "other.test").unwrap_err();
        assert!(err.to_string().contains("not valid for name"), "{err}");
        let other = verifier(Check::ChainAndName, test_certs::OTHER_CA);
        assert!(verify(&other, "db.test").is_err());
    }

    #[test]
    fn client_configs_build_for_every_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.crt");
        std::fs::write(
            &path,
            format!("{}\n{}", test_certs::CA, test_certs::OTHER_CA),
        )
        .unwrap();
        let roots = RootCerts::File(path);
        for check in [Check::Nothing, Check::Chain, Check::ChainAndName] {
            client_config(check, Some(&roots)).unwrap();
        }
        assert_eq!(load_roots(&roots).unwrap().len(), 2);
        client_config(Check::Nothing, None).unwrap();
        let err = client_config(Check::Chain, None).unwrap_err().to_string();
        assert!(err.contains("sslrootcert"), "{err}");
    }

    #[test]
    fn unreadable_or_empty_root_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.crt");
        let err = format!(
            "{:#}",
            load_roots(&RootCerts::File(missing.clone())).unwrap_err()
        );
        assert!(err.contains(&missing.display().to_string()), "{err}");
        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "").unwrap();
        let err = load_roots(&RootCerts::File(empty)).unwrap_err().to_string();
        assert!(err.contains("holds no certificate"), "{err}");
    }

    #[test]
    fn require_uses_roots_only_if_the_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.crt");
        assert!(!roots_exist(Some(&RootCerts::File(path.clone()))));
        std::fs::write(&path, test_certs::CA).unwrap();
        assert!(roots_exist(Some(&RootCerts::File(path))));
        assert!(roots_exist(Some(&RootCerts::System)));
        assert!(!roots_exist(None));
    }
}
