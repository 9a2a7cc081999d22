//! TLS setup: rustls with the ring provider (small enough for a router; aws-lc is not),
//! certificate and host-name verification always on, roots from CA_FILE or the system bundle.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[cfg(feature = "tls")]
pub use rustls::ClientConfig;
#[cfg(feature = "tls")]
use rustls::{
    pki_types::{pem::PemObject, CertificateDer},
    RootCertStore,
};

/// Without the tls feature: a config that is never built.
#[cfg(not(feature = "tls"))]
pub struct ClientConfig;
#[cfg(not(feature = "tls"))]
pub struct RootCertStore;

/// Debian's and OpenWrt's (ca-bundle) bundle of trusted CAs.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why TLS cannot be set up.
#[derive(Debug)]
pub enum TlsError {
    /// The bundle cannot be read.
    Read {
        /// The bundle.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The bundle holds no usable certificate.
    Empty {
        /// The bundle.
        path: PathBuf,
        /// Certificates that could not be used.
        skipped: usize,
    },
    /// rustls refused the setup (should not happen with the ring provider).
    Setup(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, source } => write!(
                f,
                "{}: cannot read the CA bundle: {source} (install ca-bundle / ca-certificates or set CA_FILE)",
                path.display()
            ),
            TlsError::Empty { path, skipped } => write!(
                f,
                "{}: no usable CA certificate in the bundle ({skipped} unreadable)",
                path.display()
            ),
            TlsError::Setup(m) => write!(f, "TLS setup: {m}"),
        }
    }
}

#[cfg(not(feature = "tls"))]
pub fn roots(_ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    Err(TlsError::Setup(
        "this netmon-agent was built without TLS (feature tls): https:// and wss:// are not available".into(),
    ))
}

#[cfg(not(feature = "tls"))]
pub fn client_config(_roots: RootCertStore) -> Result<Arc<ClientConfig>, TlsError> {
    Err(TlsError::Setup("built without TLS".into()))
}

#[cfg(not(feature = "tls"))]
pub fn explain(e: &io::Error, _host: &str) -> String {
    e.to_string()
}

/// The roots: every certificate of the PEM bundle (CA_FILE, or the system bundle).
#[cfg(feature = "tls")]
pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let path = ca_file.unwrap_or(Path::new(SYSTEM_BUNDLE));
    // A regular file of at most 4 MiB (the Mozilla bundle is ~220 KB): never a FIFO or a
    // device, never read without end.
    let mut pem = Vec::new();
    crate::sys::fs::read_regular(path, true, 4 << 20, &mut pem).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        source: e.into_io(),
    })?;
    let mut store = RootCertStore::empty();
    let mut skipped = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        match cert {
            Ok(c) => {
                if store.add(c).is_err() {
                    skipped += 1;
                }
            }
            Err(_) => skipped += 1,
        }
    }
    if store.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_owned(),
            skipped,
        });
    }
    Ok(store)
}

/// A client config with the ring provider, safe default protocol versions and `roots`.
#[cfg(feature = "tls")]
pub fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, TlsError> {
    // ring's default provider, minus its key loader: the agent never presents a client
    // certificate, and ring's RSA/ECDSA/Ed25519 signing code would otherwise be linked in
    // through the provider's vtable (about 20 kB on mipsel).
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        key_provider: &NoClientKeys,
        ..rustls::crypto::ring::default_provider()
    });
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// A key provider that loads no private key (there is none to load: no client auth).
#[cfg(feature = "tls")]
#[derive(Debug)]
struct NoClientKeys;

#[cfg(feature = "tls")]
impl rustls::crypto::KeyProvider for NoClientKeys {
    fn load_private_key(
        &self,
        _key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "client certificates are not supported".into(),
        ))
    }
}

/// Turns a handshake failure into a sentence naming the host and the reason.
#[cfg(feature = "tls")]
pub fn explain(e: &io::Error, host: &str) -> String {
    use rustls::{CertificateError as C, Error as E};
    let Some(tls) = e.get_ref().and_then(|x| x.downcast_ref::<E>()) else {
        return e.to_string();
    };
    let why = describe(tls);
    match tls {
        E::InvalidCertificate(C::UnknownIssuer) => format!(
            "the certificate of {host} is not signed by a trusted CA (unknown issuer; set CA_FILE to the CA that signed it)"
        ),
        E::InvalidCertificate(C::NotValidForName) => {
            format!("the certificate is not valid for the host name {host}")
        }
        E::InvalidCertificate(C::NotValidForNameContext { presented, .. }) => format!(
            "the certificate is not valid for the host name {host} (it is valid for {})",
            if presented.is_empty() {
                "no name".to_owned()
            } else {
                presented.join(", ")
            }
        ),
        E::InvalidCertificate(C::Expired) | E::InvalidCertificate(C::ExpiredContext { .. }) => {
            format!("the certificate of {host} has expired ({why})")
        }
        E::InvalidCertificate(C::NotValidYet)
        | E::InvalidCertificate(C::NotValidYetContext { .. }) => format!(
            "the certificate of {host} is not valid yet: is the clock set? ({why})"
        ),
        _ => why,
    }
}

/// rustls's error as a sentence. rustls's own Display shows several reasons with Debug
/// formatting, which the size-tuned router builds compile out (-Zfmt-debug=none prints
/// nothing): those get a sentence of their own here, plus the Debug text where it exists.
#[cfg(feature = "tls")]
pub fn describe(e: &rustls::Error) -> String {
    use rustls::{CertificateError as C, Error as E};
    match e {
        E::AlertReceived(a) => format!(
            "received fatal alert: {}",
            a.as_str().unwrap_or("an unknown alert")
        ),
        E::PeerIncompatible(w) => with(
            "peer is incompatible",
            format!("{w:?}"),
            "no TLS version, cipher suite, key exchange or signature scheme in common",
        ),
        E::PeerMisbehaved(w) => with(
            "peer misbehaved",
            format!("{w:?}"),
            "it broke the TLS protocol",
        ),
        E::InvalidMessage(w) => with(
            "received a corrupt message",
            format!("{w:?}"),
            "is the server speaking TLS?",
        ),
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => with(
            "received an unexpected message",
            format!("{e:?}"),
            "out of order",
        ),
        E::InvalidCertificate(
            c @ (C::NotValidForNameContext { .. }
            | C::ExpiredContext { .. }
            | C::NotValidYetContext { .. }
            | C::InvalidPurposeContext { .. }),
        ) => format!("invalid peer certificate: {c}"),
        E::InvalidCertificate(c) => {
            let reason = match c {
                C::BadEncoding => "badly encoded",
                C::Expired => "expired",
                C::NotValidYet => "not valid yet",
                C::Revoked => "revoked",
                C::UnhandledCriticalExtension => "an unknown critical extension",
                C::UnknownIssuer => "unknown issuer",
                C::NotValidForName => "not valid for the name",
                C::InvalidPurpose => "not for server authentication",
                C::UnsupportedSignatureAlgorithmContext { .. }
                | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                    "an unsupported signature algorithm"
                }
                _ => "rejected",
            };
            with("invalid peer certificate", format!("{c:?}"), reason)
        }
        other => other.to_string(),
    }
}

/// "what: debug", or "what: fallback" where Debug formatting is compiled out.
#[cfg(feature = "tls")]
fn with(what: &str, debug: String, fallback: &str) -> String {
    if debug.is_empty() {
        format!("{what}: {fallback}")
    } else {
        format!("{what}: {debug}")
    }
}

/// An I/O error from the TLS stream, with a rustls error inside described by `describe`.
#[cfg(feature = "tls")]
pub fn io_error(e: io::Error) -> io::Error {
    match e.get_ref().and_then(|x| x.downcast_ref::<rustls::Error>()) {
        Some(t) => io::Error::new(e.kind(), describe(t)),
        None => e,
    }
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_bundles_are_clear_errors() {
        let e = roots(Some(Path::new("/nonexistent/ca.pem")))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/ca.pem: cannot read"), "{e}");
        let empty = std::env::temp_dir().join(format!("netmon-empty-ca-{}", std::process::id()));
        std::fs::write(&empty, "").unwrap();
        let e = roots(Some(&empty)).unwrap_err().to_string();
        let _ = std::fs::remove_file(&empty);
        assert!(e.contains("no usable CA certificate"), "{e}");
        // A device is not read at all (/dev/zero would never end).
        let e = roots(Some(Path::new("/dev/zero"))).unwrap_err().to_string();
        assert!(
            e.contains("is a character device, not a regular file"),
            "{e}"
        );
    }

    #[test]
    fn explains_certificate_errors_with_the_host() {
        let io = |c| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(c),
            )
        };
        let m = explain(&io(rustls::CertificateError::UnknownIssuer), "h.example");
        assert!(
            m.contains("h.example") && m.contains("unknown issuer"),
            "{m}"
        );
        let m = explain(&io(rustls::CertificateError::NotValidForName), "h.example");
        assert!(m.contains("not valid for the host name h.example"), "{m}");
        let m = explain(&io::Error::from(io::ErrorKind::ConnectionReset), "h");
        assert!(!m.is_empty());
    }

    #[test]
    fn describes_errors_without_relying_on_debug() {
        use rustls::{AlertDescription, Error as E, PeerIncompatible};
        assert_eq!(
            describe(&E::AlertReceived(AlertDescription::HandshakeFailure)),
            "received fatal alert: HandshakeFailure"
        );
        let m = describe(&E::PeerIncompatible(
            PeerIncompatible::NoCipherSuitesInCommon,
        ));
        assert_eq!(m, "peer is incompatible: NoCipherSuitesInCommon");
        // Where Debug prints nothing (-Zfmt-debug=none), the sentence still says something.
        assert_eq!(
            with("peer misbehaved", String::new(), "why"),
            "peer misbehaved: why"
        );
        let m = describe(&E::InvalidCertificate(
            rustls::CertificateError::BadEncoding,
        ));
        assert_eq!(m, "invalid peer certificate: BadEncoding");
        // An I/O error around a rustls error carries the sentence; others pass unchanged.
        let e = io_error(io::Error::new(
            io::ErrorKind::InvalidData,
            E::AlertReceived(AlertDescription::ProtocolVersion),
        ));
        assert_eq!(e.to_string(), "received fatal alert: ProtocolVersion");
        let e = io_error(io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
