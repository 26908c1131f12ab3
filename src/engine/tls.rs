//! TLS for the client engine (rustls): the client configuration, built once per run from the
//! options, and the handshake on a new connection, timed, with what was negotiated.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub use crate::plan::{TlsOptions, TlsVersion};

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {what} '{path}': {message}")]
    File {
        what: &'static str,
        path: String,
        message: String,
    },
    #[error("--tls-min is above --tls-max")]
    EmptyRange,
    #[error("'{0}' is not a valid TLS server name")]
    BadName(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// What a handshake negotiated; `&'static str`s so a sample stays `Copy` and allocation-free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub version: &'static str,
    pub cipher: &'static str,
    pub alpn: &'static str,
}

/// A run's TLS client: the connector and the name it presents.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl TlsClient {
    /// Builds the client configuration once for the run. `host` is the URL's host; `alpn` the
    /// protocols to offer, most preferred first.
    pub fn new(opts: &TlsOptions, host: &str, alpn: Vec<Vec<u8>>) -> Result<TlsClient, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
        let lo = opts.min.unwrap_or(TlsVersion::V1_2);
        let hi = opts.max.unwrap_or(TlsVersion::V1_3);
        if lo > hi {
            return Err(TlsError::EmptyRange);
        }
        if lo <= TlsVersion::V1_2 && TlsVersion::V1_2 <= hi {
            versions.push(&rustls::version::TLS12);
        }
        if TlsVersion::V1_3 <= hi {
            versions.push(&rustls::version::TLS13);
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if opts.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            match &opts.cacert {
                Some(path) => {
                    for cert in read_certs(path, "--cacert")? {
                        roots
                            .add(cert)
                            .map_err(|e| TlsError::Config(e.to_string()))?;
                    }
                }
                None => {
                    for cert in rustls_native_certs::load_native_certs().certs {
                        // A system certificate rustls cannot use is skipped, as browsers do.
                        let _ = roots.add(cert);
                    }
                }
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match &opts.client_cert {
            Some((cert, key)) => {
                let chain = read_certs(cert, "--cert")?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
                    what: "--key",
                    path: key.display().to_string(),
                    message: e.to_string(),
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError::Config(e.to_string()))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn;
        config.resumption = if opts.resumption {
            rustls::client::Resumption::in_memory_sessions(256)
        } else {
            rustls::client::Resumption::disabled()
        };
        let sni = opts.sni.clone().unwrap_or_else(|| host.to_string());
        let name = ServerName::try_from(sni.clone()).map_err(|_| TlsError::BadName(sni))?;
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }

    /// The handshake on a connected socket: its duration, whether the session was resumed, and
    /// what was negotiated.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
    ) -> std::io::Result<(TlsStream<TcpStream>, Duration, bool, Negotiated)> {
        let t0 = Instant::now();
        let stream = self.connector.connect(self.name.clone(), tcp).await?;
        let took = t0.elapsed();
        let (_, conn) = stream.get_ref();
        let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let negotiated = Negotiated {
            version: match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "other",
            },
            cipher: conn
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("other"),
            alpn: match conn.alpn_protocol() {
                Some(b"http/1.1") => "http/1.1",
                Some(b"h2") => "h2",
                Some(_) => "other",
                None => "none",
            },
        };
        Ok((stream, took, resumed, negotiated))
    }
}

/// Did the server refuse every protocol ALPN offered (a `no_application_protocol` alert)?
pub fn is_no_application_protocol(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)
            )
        })
}

/// Is this I/O error a TLS failure (a handshake or record error wrapped by tokio-rustls)? By type,
/// never by message.
pub fn is_tls_error(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError::File {
        what,
        path: path.display().to_string(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// `--insecure`: accepts any certificate, but still checks the handshake signatures (so the
/// handshake costs what a verified one does, minus chain validation).
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
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
