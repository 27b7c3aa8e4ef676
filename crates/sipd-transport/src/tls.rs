//! The certificate for TLS and WSS: loaded from PEM files or generated self-signed, and
//! swapped without a restart. New handshakes use the certificate current when they start.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{signal, SignalKind};
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, version};
use tokio_rustls::TlsAcceptor;
use tracing::{error, info, warn};

use crate::config::CertificateFiles;
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
