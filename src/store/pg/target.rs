//! Where the `PostgreSQL` state is: the URL from the environment or a credentials file, parsed
//! once, its password kept out of every message. `sslmode` (`disable`, `require`,
//! `verify-full`) and `sslrootcert` are read here, not by the driver, which knows neither
//! `verify-full` nor a root file: TLS is rustls, verifying against the system roots or the file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::Url;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use tokio_postgres::config::{Host, SslMode};

use super::PgError;

/// Where the URL is read from: `[store] url_env` or `url_file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlSource {
    Env(String),
    File(PathBuf),
}

impl fmt::Display for UrlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlSource::Env(v) => write!(f, "${v}"),
            UrlSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// How the connection is protected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    Disable,
    /// Encrypted, the certificate not checked (libpq's `require`).
    Require,
    /// Encrypted, the chain and the host name checked against these roots (none: the system's).
    VerifyFull(Option<PathBuf>),
}

/// A database to connect to. Its `Display` names user, host, port and database, never the
/// password.
#[derive(Clone)]
pub struct Target {
    pub(super) config: tokio_postgres::Config,
    pub tls: Tls,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user(), self.host())?;
        if let Some(db) = self.config.get_dbname() {
            write!(f, "/{db}")?;
        }
        Ok(())
    }
}

impl Target {
    /// Reads and parses the URL from where `[store]` says it is.
    pub fn resolve(source: &UrlSource) -> Result<Target, PgError> {
        let text = match source {
            UrlSource::Env(var) => std::env::var(var).map_err(|_| {
                PgError::config(format!(
                    "[store] url_env: the variable {var} is not set (or not UTF-8)"
                ))
            })?,
            UrlSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
                PgError::config(format!("[store] url_file {}: {e}", path.display()))
            })?,
        };
        Target::parse(text.trim()).map_err(|e| PgError::config(format!("{source}: {}", e.message)))
    }

    /// The same server and credentials, another database.
    #[must_use]
    pub fn database(&self, name: &str) -> Target {
        let mut t = self.clone();
        t.config.dbname(name);
        t
    }

    /// The same, its sessions named `name` in `pg_stat_activity` (a cluster node's own).
    #[must_use]
    pub fn named(&self, name: &str) -> Target {
        let mut t = self.clone();
        t.config.application_name(name);
        t
    }

    /// Parses `postgres://user:password@host:port/db?sslmode=...`.
    pub fn parse(text: &str) -> Result<Target, PgError> {
        let url = Url::parse(text).map_err(|e| {
            PgError::config(format!(
                "not a PostgreSQL URL ({e}); expected postgres://user@host:port/db"
            ))
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(PgError::config(format!(
                "the URL's scheme is {:?}; expected postgres://",
                url.scheme()
            )));
        }
        let mut mode = None;
        let mut root = None;
        let mut rest = url.clone();
        rest.set_query(None);
        {
            let mut q = rest.query_pairs_mut();
            for (k, v) in url.query_pairs() {
                match &*k {
                    "sslmode" => mode = Some(v.into_owned()),
                    "sslrootcert" => root = Some(PathBuf::from(&*v)),
                    _ => {
                        q.append_pair(&k, &v);
                    }
                }
            }
        }
        let mut plain = rest.to_string();
        if plain.ends_with('?') {
            plain.pop();
        }
        let mut config: tokio_postgres::Config = plain
            .parse()
            .map_err(|e| PgError::config(format!("the URL for {}: {e}", redacted(&url))))?;
        if config.get_hosts().is_empty() {
            return Err(PgError::config("the URL names no host"));
        }
        if config.get_user().is_none() {
            return Err(PgError::config(format!(
                "the URL {} names no user",
                redacted(&url)
            )));
        }
        let tls = match mode.as_deref() {
            None | Some("disable") if root.is_none() => Tls::Disable,
            Some("require") if root.is_none() => Tls::Require,
            None | Some("verify-full") => Tls::VerifyFull(root),
            Some(m @ ("disable" | "require")) => {
                return Err(PgError::config(format!(
                    "sslrootcert is only read with sslmode=verify-full, not {m}"
                )));
            }
            Some(other) => {
                return Err(PgError::config(format!(
                    "sslmode={other} is not supported: disable, require or verify-full"
                )));
            }
        };
        config.ssl_mode(if tls == Tls::Disable {
            SslMode::Disable
        } else {
            SslMode::Require
        });
        config.connect_timeout(std::time::Duration::from_secs(10));
        config.application_name("watchbell");
        Ok(Target { config, tls })
    }

    /// The user the URL connects as.
    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or("")
    }

    /// `host:port` (the first host of the URL).
    pub fn host(&self) -> String {
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => format!("{h}:{port}"),
            Some(Host::Unix(p)) => format!("{}:{port}", p.display()),
            None => String::new(),
        }
    }

    /// The rustls configuration for this target's mode, `None` without TLS.
    pub(super) fn rustls(&self) -> Result<Option<rustls::ClientConfig>, PgError> {
        let builder = rustls::ClientConfig::builder();
        Ok(match &self.tls {
            Tls::Disable => None,
            Tls::Require => Some(
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Unverified::new()))
                    .with_no_client_auth(),
            ),
            Tls::VerifyFull(root) => {
                let roots = roots(root.as_deref())?;
                Some(builder.with_root_certificates(roots).with_no_client_auth())
            }
        })
    }
}

/// The URL with its password replaced, for messages.
fn redacted(url: &Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    u.to_string()
}

fn roots(file: Option<&Path>) -> Result<rustls::RootCertStore, PgError> {
    let mut store = rustls::RootCertStore::empty();
    if let Some(path) = file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| PgError::config(format!("sslrootcert {}: {e}", path.display())))?;
        let (_, bad) = store.add_parsable_certificates(certs);
        if store.is_empty() || bad > 0 {
            return Err(PgError::config(format!(
                "sslrootcert {}: no usable certificate ({bad} refused)",
                path.display()
            )));
        }
    } else {
        store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if store.is_empty() {
            return Err(PgError::config(
                "sslmode=verify-full: the system has no root certificates; name one with sslrootcert",
            ));
        }
    }
    Ok(store)
}

/// `sslmode=require`: the session is encrypted and its signatures checked, the certificate's
/// chain and name are not (as libpq does without a root file).
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl Unverified {
    fn new() -> Unverified {
        Unverified(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
    }
}

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_never_shows_the_password() {
        let t =
            Target::parse("postgres://wb:s3cret@db.example:6543/state?sslmode=require").unwrap();
        assert_eq!(t.to_string(), "wb@db.example:6543/state");
        assert_eq!(t.tls, Tls::Require);
        assert!(!format!("{t:?}").contains("s3cret"));
        let t = Target::parse("postgresql://wb@10.0.0.5/state").unwrap();
        assert_eq!(t.tls, Tls::Disable);
        assert_eq!(t.host(), "10.0.0.5:5432");
        let t = Target::parse("postgres://wb@h/s?sslrootcert=/etc/ca.pem").unwrap();
        assert_eq!(t.tls, Tls::VerifyFull(Some("/etc/ca.pem".into())));
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        for (url, says) in [
            ("mysql://wb@h/s", "scheme"),
            ("postgres://h/s", "no user"),
            ("postgres://wb:pw@h/s?sslmode=prefer", "sslmode=prefer"),
            (
                "postgres://wb:pw@h/s?sslmode=require&sslrootcert=/x",
                "only read with",
            ),
            ("postgres://wb:pw@h/s?bogus=1", "***"),
            ("not a url", "not a PostgreSQL URL"),
        ] {
            let e = Target::parse(url).unwrap_err();
            assert!(e.message.contains(says), "{url}: {}", e.message);
            assert!(!e.message.contains(":pw@"), "{url}: {}", e.message);
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn resolves_from_the_environment_or_a_file() {
        let e = Target::resolve(&UrlSource::Env("WATCHBELL_TEST_NO_SUCH_VAR".into())).unwrap_err();
        assert!(
            e.message.contains("WATCHBELL_TEST_NO_SUCH_VAR is not set"),
            "{}",
            e.message
        );
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("url");
        let e = Target::resolve(&UrlSource::File(missing.clone())).unwrap_err();
        assert!(
            e.message.contains(&missing.display().to_string()),
            "{}",
            e.message
        );
        std::fs::write(&missing, "postgres://wb:pw@h:1/s\n").unwrap();
        let t = Target::resolve(&UrlSource::File(missing)).unwrap();
        assert_eq!(t.to_string(), "wb@h:1/s");
    }
}
