//! TLS without server authentication, for the two clients that must dial servers whose
//! certificates they cannot check: the node agent's `scheme: HTTPS` probes and hooks (as the
//! kubelet's, which set `InsecureSkipVerify`: pods serve self-signed certificates for names
//! the kubelet never dials) and the aggregator's proxy to an APIService with
//! `insecureSkipTLSVerify: true` (as upstream's kube-aggregator).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Accepts any server certificate, but still checks the handshake signatures with
/// `provider`'s algorithms, so the connection is at least to the holder of the presented key.
#[derive(Debug)]
pub struct InsecureVerifier(Arc<CryptoProvider>);

impl InsecureVerifier {
    pub fn new(provider: Arc<CryptoProvider>) -> Arc<InsecureVerifier> {
        Arc::new(InsecureVerifier(provider))
    }
}

impl ServerCertVerifier for InsecureVerifier {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_certificate_passes() {
        let verifier = InsecureVerifier::new(Arc::new(rustls::crypto::ring::default_provider()));
        let junk = CertificateDer::from(b"not a certificate".to_vec());
        let name = ServerName::try_from("pod.example").unwrap();
        assert!(verifier
            .verify_server_cert(&junk, &[], &name, &[], UnixTime::now())
            .is_ok());
        assert!(!verifier.supported_verify_schemes().is_empty());
    }
}
