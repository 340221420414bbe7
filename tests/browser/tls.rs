//! HTTPS on loopback for browser tests that need a secure context the browser fully trusts
//! (Chromium only takes part in DBSC over HTTPS without certificate errors): a self-signed
//! certificate for `localhost` and `127.0.0.1`, made when the test runs, and a TLS-terminating
//! proxy in front of the app's plain HTTP port. Chromium is told to accept exactly this
//! certificate's key (`--ignore-certificate-errors-spki-list`), which it treats as a clean
//! connection, unlike `--ignore-certificate-errors`.
//!
//! A proxy rather than Rocket's own `tls` feature: that feature pulls rustls 0.21 and
//! rustls-webpki 0.101, which carry RustSec advisories, into Cargo.lock. The proxy uses current
//! rustls through tokio-rustls, and only the tests depend on it.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rocket::tokio::io::copy_bidirectional;
use rocket::tokio::net::{TcpListener, TcpStream};
use rocket::tokio::task::JoinHandle;
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{ServerConfig, crypto};

/// An HTTPS front for the app on 127.0.0.1; stops when dropped.
pub struct TlsProxy {
    pub port: u16,
    /// base64 SHA-256 of the certificate's SubjectPublicKeyInfo: the value Chromium pins.
    pub spki_sha256: String,
    accepting: JoinHandle<()>,
}

impl TlsProxy {
    pub async fn start(backend_port: u16) -> TlsProxy {
        let key =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a P-256 key");
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("certificate names");
        let certificate = params.self_signed(&key).expect("a self-signed certificate");
        let spki_sha256 = STANDARD.encode(Sha256::digest(key.public_key_der()));

        let provider = Arc::new(crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(certificate.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("the certificate and its key");
        // The app speaks HTTP/1.1 only; say so, or the browser would try HTTP/2 over TLS.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A failed handshake or a closed connection ends this connection only.
                    let (Ok(mut tls), Ok(mut app)) = (
                        acceptor.accept(client).await,
                        TcpStream::connect(("127.0.0.1", backend_port)).await,
                    ) else {
                        return;
                    };
                    copy_bidirectional(&mut tls, &mut app).await.ok();
                });
            }
        });
        TlsProxy {
            port,
            spki_sha256,
            accepting,
        }
    }

    /// The origin the browser sees.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}
