//! rustls client configurations: verified (system roots plus extra CAs) or unverified.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{RegistryError, Result};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trusted roots, loaded once per process.
fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for e in &loaded.errors {
            tracing::debug!(error = %e, "some system CA certificates could not be loaded");
        }
        loaded.certs
    })
}

/// Reads every certificate in a PEM file.
fn read_pem_certs(host: &str, path: &PathBuf) -> Result<Vec<CertificateDer<'static>>> {
    let data = std::fs::read(path).map_err(|e| {
        RegistryError::Config(format!(
            "cannot read ca file {} for registry {host}: {e}",
            path.display()
        ))
    })?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            RegistryError::Config(format!(
                "ca file {} for registry {host} is not valid pem: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(RegistryError::Config(format!(
            "ca file {} for registry {host} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn alpn(mut config: ClientConfig) -> ClientConfig {
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// A config that verifies servers against the system roots plus `extra_ca_files`.
pub(crate) fn verified(host: &str, extra_ca_files: &[PathBuf]) -> Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(native_roots().iter().cloned());
    for file in extra_ca_files {
        for cert in read_pem_certs(host, file)? {
            roots.add(cert).map_err(|e| {
                RegistryError::Config(format!(
                    "ca file {} for registry {host} holds an unusable certificate: {e}",
                    file.display()
                ))
            })?;
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Config(format!("tls setup for registry {host}: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(alpn(config))
}

/// A config that accepts any server certificate (insecure registries). Handshake signatures
/// are still checked, so the connection is encrypted, just not authenticated.
pub(crate) fn unverified(host: &str) -> Result<ClientConfig> {
    let provider = provider();
    let verifier = NoVerification(provider.signature_verification_algorithms);
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Config(format!("tls setup for registry {host}: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(alpn(config))
}

#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
