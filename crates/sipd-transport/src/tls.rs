//! The certificate for TLS and WSS: loaded from PEM files or generated self-signed, and
//! swapped without a restart. New handshakes use the certificate current when they start.
//! Also the client side of the TLS connections sipd opens: whom it trusts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{signal, SignalKind};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{
    self, version, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{error, info, warn};

use crate::config::{CertificateFiles, TlsClientConfig};
use crate::counters::bump;
use crate::transports::Shared;

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no usable PEM {what}: {reason}")]
    Pem {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("the key {key} does not fit the certificate {chain}: {source}")]
    Key {
        chain: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot generate a self-signed certificate: {0}")]
    SelfSigned(String),
    #[error("cannot set up TLS: {0}")]
    Tls(rustls::Error),
}

/// Hands the current certificate to each handshake.
#[derive(Debug)]
pub(crate) struct CertificateStore {
    current: RwLock<Arc<CertifiedKey>>,
    files: Option<CertificateFiles>,
    /// The files' stamps when last read, to notice changes.
    read_stamps: Mutex<FileStamps>,
    provider: Arc<CryptoProvider>,
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl CertificateStore {
    /// Loads the configured files, or generates a self-signed certificate for `domain`.
    pub(crate) fn new(
        files: Option<&CertificateFiles>,
        domain: &str,
    ) -> Result<Arc<CertificateStore>, CertificateError> {
        let provider = Arc::new(ring::default_provider());
        // Taken before reading, so that a write during the read shows as a change later.
        let read_stamps = files.map(stamps).unwrap_or_default();
        let certified = match files {
            Some(files) => load(files, &provider)?,
            None => {
                warn!(
                    %domain,
                    "no TLS certificate configured: using a generated self-signed certificate, \
                     which clients will not trust"
                );
                self_signed(domain, &provider)?
            }
        };
        Ok(Arc::new(CertificateStore {
            current: RwLock::new(Arc::new(certified)),
            files: files.cloned(),
            read_stamps: Mutex::new(read_stamps),
            provider,
        }))
    }

    pub(crate) fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, CertificateError> {
        let config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&version::TLS13, &version::TLS12])
            .map_err(CertificateError::Tls)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the files; on error the current certificate stays. A generated certificate
    /// has nothing to re-read.
    pub(crate) fn reload(&self) -> Result<(), CertificateError> {
        let Some(files) = &self.files else {
            return Ok(());
        };
        // Remembered even if the reload fails, so that a broken file is reported once and
        // the next write is tried again.
        *self
            .read_stamps
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = stamps(files);
        let certified = load(files, &self.provider)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
        Ok(())
    }

    pub(crate) fn files(&self) -> Option<&CertificateFiles> {
        self.files.as_ref()
    }

    /// Whether the files changed since they were last read.
    fn files_changed(&self) -> bool {
        self.files.as_ref().is_some_and(|files| {
            stamps(files)
                != *self
                    .read_stamps
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CertificateError> {
    std::fs::read(path).map_err(|source| CertificateError::Read {
        path: path.to_owned(),
        source,
    })
}

fn load(
    files: &CertificateFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertificateError> {
    let pem_error = |path: &Path, what, reason: String| CertificateError::Pem {
        path: path.to_owned(),
        what,
        reason,
    };
    let chain_pem = read(&files.chain)?;
    let chain = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(&files.chain, "certificate", error.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error(
            &files.chain,
            "certificate",
            "no CERTIFICATE section".to_owned(),
        ));
    }
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|error| pem_error(&files.key, "private key", error.to_string()))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| CertificateError::Key {
        chain: files.chain.clone(),
        key: files.key.clone(),
        source,
    })
}

fn self_signed(domain: &str, provider: &CryptoProvider) -> Result<CertifiedKey, CertificateError> {
    let generated = rcgen::generate_simple_self_signed(vec![domain.to_owned()])
        .map_err(|error| CertificateError::SelfSigned(error.to_string()))?;
    let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    CertifiedKey::from_der(vec![generated.cert.der().clone()], key, provider)
        .map_err(|error| CertificateError::SelfSigned(error.to_string()))
}

/// The connector for the TLS connections sipd opens. Verifying: Mozilla's public roots
/// (webpki-roots: the same trust on every host and in every image, updated with the crate)
/// plus the certificates of `ca_file`. Not verifying: any certificate, with a warning.
pub(crate) fn connector(config: &TlsClientConfig) -> Result<TlsConnector, CertificateError> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])
        .map_err(CertificateError::Tls)?;
    let client = if config.verify {
        let mut roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &config.ca_file {
            add_trust_anchors(&mut roots, path)?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        warn!(
            "TLS certificate verification is off for outbound connections: any server, or \
             anyone on the path, is accepted. For labs only"
        );
        let verifier = AcceptAnyCertificate(provider.signature_verification_algorithms);
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    };
    Ok(TlsConnector::from(Arc::new(client)))
}

/// Adds every certificate of a PEM file as a trust anchor.
fn add_trust_anchors(roots: &mut RootCertStore, path: &Path) -> Result<(), CertificateError> {
    let pem_error = |reason: String| CertificateError::Pem {
        path: path.to_owned(),
        what: "CA certificate",
        reason,
    };
    let pem = read(path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(error.to_string()))?;
    if certificates.is_empty() {
        return Err(pem_error("no CERTIFICATE section".to_owned()));
    }
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|error| pem_error(error.to_string()))?;
    }
    Ok(())
}

/// Accepts any server certificate; still checks that the server holds its key, as the
/// handshake requires.
#[derive(Debug)]
struct AcceptAnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, certificate, signature, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, certificate, signature, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// What identifies a version of the files: a changed modification time or size means a
/// new certificate may have been written.
type FileStamps = [Option<(SystemTime, u64)>; 2];

fn stamps(files: &CertificateFiles) -> FileStamps {
    [&files.chain, &files.key].map(|path| {
        let metadata = std::fs::metadata(path).ok()?;
        Some((metadata.modified().ok()?, metadata.len()))
    })
}

/// Listens for SIGHUP before the server starts, so that a SIGHUP right after start is not
/// the default action (exit).
pub(crate) fn hangups() -> std::io::Result<tokio::signal::unix::Signal> {
    signal(SignalKind::hangup())
}

/// Reloads on SIGHUP and whenever the files' stamps change, until shutdown.
pub(crate) async fn watch(
    shared: Arc<Shared>,
    store: Arc<CertificateStore>,
    mut hangups: tokio::signal::unix::Signal,
    poll_interval: Duration,
) {
    // A zero interval (which `interval` refuses) turns polling off.
    let mut poll = (!poll_interval.is_zero()).then(|| {
        let mut poll = tokio::time::interval(poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll
    });
    loop {
        tokio::select! {
            () = shared.closing.cancelled() => return,
            _ = hangups.recv() => info!("SIGHUP: reloading the TLS certificate"),
            () = next_tick(&mut poll) => {
                if !store.files_changed() {
                    continue;
                }
                info!("TLS certificate files changed: reloading");
            }
        }
        // Result logged and counted inside.
        let _ = reload_and_report(&shared, &store);
    }
}

async fn next_tick(poll: &mut Option<tokio::time::Interval>) {
    match poll {
        Some(poll) => {
            poll.tick().await;
        }
        None => std::future::pending().await,
    }
}

pub(crate) fn reload_and_report(
    shared: &Shared,
    store: &CertificateStore,
) -> Result<(), CertificateError> {
    match store.reload() {
        Ok(()) => {
            bump(&shared.counters.certificate_reloads);
            info!("TLS certificate reloaded; new connections use it");
            Ok(())
        }
        Err(reload_error) => {
            bump(&shared.counters.certificate_reload_failures);
            error!(error = %reload_error, "TLS certificate reload failed: keeping the current certificate");
            Err(reload_error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_change_when_a_file_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertificateFiles {
            chain: dir.path().join("chain.pem"),
            key: dir.path().join("key.pem"),
        };
        assert_eq!(stamps(&files), [None, None]);
        std::fs::write(&files.chain, "a").unwrap();
        std::fs::write(&files.key, "b").unwrap();
        let before = stamps(&files);
        assert!(before.iter().all(Option::is_some));
        // A different size is a change even within the file system's time granularity.
        std::fs::write(&files.key, "bb").unwrap();
        assert_ne!(stamps(&files), before);
    }

    #[test]
    fn bad_files_are_reported_and_the_current_certificate_stays() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertificateFiles {
            chain: dir.path().join("chain.pem"),
            key: dir.path().join("key.pem"),
        };
        let generated = rcgen::generate_simple_self_signed(vec!["a.test".to_owned()]).unwrap();
        std::fs::write(&files.chain, generated.cert.pem()).unwrap();
        std::fs::write(&files.key, generated.signing_key.serialize_pem()).unwrap();
        let store = CertificateStore::new(Some(&files), "a.test").unwrap();
        let before = store.current();

        std::fs::write(&files.chain, "garbage").unwrap();
        assert!(matches!(store.reload(), Err(CertificateError::Pem { .. })));
        let other = rcgen::generate_simple_self_signed(vec!["b.test".to_owned()]).unwrap();
        std::fs::write(&files.chain, other.cert.pem()).unwrap();
        assert!(matches!(store.reload(), Err(CertificateError::Key { .. })));
        std::fs::remove_file(&files.key).unwrap();
        assert!(matches!(store.reload(), Err(CertificateError::Read { .. })));
        assert!(Arc::ptr_eq(&before, &store.current()));
    }
}
