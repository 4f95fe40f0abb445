//! TLS for tokio-postgres with rustls (no OpenSSL): the client configuration each `sslmode`
//! needs, and the `MakeTlsConnect` adapter that drives the handshake.
//!
//! Verification follows libpq: `verify-full` checks the chain and the host name, `verify-ca`
//! the chain only, `require`/`prefer`/`allow` nothing unless root certificates were given (then
//! the chain, as libpq does when a root file exists). Channel binding is not offered
//! (`SCRAM-SHA-256` without `-PLUS`, as libpq's `channel_binding=prefer` falls back to).

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct as Dss, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Socket;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::ConnectError;
use crate::params::{RootCerts, SslMode, TlsParams};

/// Builds the rustls configuration for `params` (reads the certificate files now, so a missing
/// or unreadable file is reported before any connection).
pub(crate) fn client_config(params: &TlsParams) -> Result<Arc<ClientConfig>, ConnectError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &params.root_certs {
        Some(r) => Some(Arc::new(root_store(r)?)),
        None => None,
    };
    let chain = match roots {
        Some(roots) => Some(
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| {
                    ConnectError::InvalidSettings(format!("root certificates unusable: {e}"))
                })?,
        ),
        None => None,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match chain {
        Some(webpki) if params.mode == SslMode::VerifyFull => webpki,
        chain => Arc::new(WithoutHostName {
            chain,
            provider: provider.clone(),
        }),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::InvalidSettings(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &params.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = read_certs(cert, "sslcert")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                ConnectError::InvalidSettings(format!(
                    "sslkey {}: no usable PEM private key ({e})",
                    key.display()
                ))
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                ConnectError::InvalidSettings(format!("sslcert/sslkey do not match: {e}"))
            })?
        }
    };
    Ok(Arc::new(config))
}

fn root_store(roots: &RootCerts) -> Result<RootCertStore, ConnectError> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::File(path) => {
            for cert in read_certs(path, "sslrootcert")? {
                store.add(cert).map_err(|e| {
                    ConnectError::InvalidSettings(format!(
                        "sslrootcert {}: a certificate is unusable ({e})",
                        path.display()
                    ))
                })?;
            }
        }
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(ConnectError::InvalidSettings(
                    "sslrootcert=system: the platform's trust store holds no usable certificate \
                     (install ca-certificates, or give sslrootcert=PATH)"
                        .into(),
                ));
            }
        }
    }
    Ok(store)
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let unusable = |reason: String| {
        ConnectError::InvalidSettings(format!("{what} {}: {reason}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| unusable(format!("cannot be read ({e})")))?
        .collect::<Result<_, _>>()
        .map_err(|e| unusable(format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(unusable("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The verifier of every mode short of `verify-full`: without roots (`require` and weaker)
/// the certificate is not checked, as libpq; with roots (`verify-ca`, or a weaker mode given
/// a root file) the chain must lead to a trusted root and the host name is not checked. The
/// handshake's signatures are always checked.
#[derive(Debug)]
struct WithoutHostName {
    /// The chain check, when roots were given.
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

/// What a check of a handshake signature answers.
type Verdict = Result<HandshakeSignatureValid, rustls::Error>;

impl WithoutHostName {
    /// The algorithms handshake signatures are checked with: the crypto provider's.
    fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }
}

impl ServerCertVerifier for WithoutHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // The chain is checked before the name: a name error means the chain was good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(&self, msg: &[u8], cert: &CertificateDer<'_>, dss: &Dss) -> Verdict {
        verify_tls12_signature(msg, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(&self, msg: &[u8], cert: &CertificateDer<'_>, dss: &Dss) -> Verdict {
        verify_tls13_signature(msg, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}

/// tokio-postgres's TLS hook over a rustls configuration.
#[derive(Clone)]
pub(crate) struct MakeRustls(pub(crate) Arc<ClientConfig>);

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnect {
            config: self.0.clone(),
            name,
        })
    }
}

/// One handshake towards one host.
pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let stream = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// An established TLS session.
pub(crate) struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// What a failed handshake means, from the rustls error inside a connection error.
pub(crate) fn handshake_failure(err: &(dyn std::error::Error + 'static)) -> Option<TlsProblem> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(TlsProblem::from_rustls(tls));
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(TlsProblem::from_rustls(tls));
        }
        cur = e.source();
    }
    None
}

/// A TLS failure that retrying cannot fix, and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsProblem {
    /// `require`/`verify-*` against a server that does not accept TLS.
    ServerWithoutTls,
    /// Plaintext against a server that accepts only TLS.
    ServerRequiresTls,
    /// The chain does not lead to a trusted root.
    UntrustedCertificate,
    /// The certificate does not name the host connected to.
    WrongHostName,
    /// Expired or not yet valid.
    CertificateExpired,
    /// Another handshake failure (protocol, alert, client certificate refused).
    Handshake(String),
}

impl TlsProblem {
    fn from_rustls(e: &rustls::Error) -> TlsProblem {
        match e {
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    TlsProblem::UntrustedCertificate
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => TlsProblem::WrongHostName,
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => TlsProblem::CertificateExpired,
                other => TlsProblem::Handshake(format!("certificate refused: {other:?}")),
            },
            other => TlsProblem::Handshake(other.to_string()),
        }
    }

    /// What went wrong and what to change, for the error message.
    pub fn advice(&self) -> String {
        match self {
            TlsProblem::ServerWithoutTls => "the server does not accept TLS connections, and \
                the URL's sslmode requires TLS: enable ssl on the server, or (only on a trusted \
                network) use sslmode=prefer"
                .into(),
            TlsProblem::ServerRequiresTls => "the server requires TLS: add sslmode=require (or \
                verify-full with sslrootcert=PATH) to the URL"
                .into(),
            TlsProblem::UntrustedCertificate => "the server's certificate is not signed by a \
                trusted root: set sslrootcert to the CA bundle that signed it (for Amazon RDS, \
                the RDS global bundle)"
                .into(),
            TlsProblem::WrongHostName => "the server's certificate does not name the host in \
                the URL: connect by a name the certificate holds (for Amazon RDS, the instance's \
                endpoint), or use sslmode=verify-ca to check the CA only"
                .into(),
            TlsProblem::CertificateExpired => "the server's certificate has expired or is not \
                valid yet: renew it (or check this machine's clock)"
                .into(),
            TlsProblem::Handshake(what) => format!("the TLS handshake failed: {what}"),
        }
    }
}
