//! `[security]`: who may talk to a node's gRPC port (peer traffic and administration).
//!
//! The gRPC port carries the Accord messages between the members and the admin service
//! behind `holoctl` (split, merge, status). Two checks, either or both:
//!
//! - **mutual TLS** ([`tls`]): callers present a certificate signed by the cluster's CA, and
//!   the traffic is encrypted;
//! - **the cluster secret**, below.
//!
//! With `cluster_secret_file` set, every call on the port must carry the cluster's token: a
//! process without the secret can neither send Accord messages nor administer the cluster,
//! and a member configured with another secret is refused by the others (it logs why, and
//! so do they).
//!
//! The token sent is a SHA-256 digest of the secret under a fixed label, not the secret: a
//! file that holds some other system's key as well does not leave in the clear. The token is
//! still a bearer credential: anyone who can read the traffic can replay it. On a network
//! that others can observe, the secret keeps out processes that merely reach the port;
//! keeping out eavesdroppers needs the traffic encrypted as well (a private network or a
//! tunnel between the hosts); `docs/security.md` says how to generate, install and rotate it.
//!
//! Protected mode, as for the Redis port: a node whose gRPC port listens on an address
//! other than loopback refuses to start with neither a cluster secret nor TLS unless
//! `allow_unauthenticated_peers = true` says so (named for what it gives up).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tonic::transport::{Endpoint, ServerTlsConfig};

pub mod tls;

use tls::{Tls, TlsFiles};

/// The gRPC metadata key that carries the token.
pub const TOKEN_HEADER: &str = "x-holo-cluster-token";
/// Shortest secret accepted, in bytes (after trailing whitespace is trimmed).
pub const MIN_SECRET_BYTES: usize = 32;
/// What a node answers a call without the right token: says what is missing, not which
/// part was wrong.
pub const REFUSAL: &str = "cluster secret missing or wrong: this node requires the cluster's \
     token on its gRPC port (security.cluster_secret_file on nodes, --cluster-secret-file for holoctl)";

/// `[security]` in the node's TOML.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// A file holding the cluster secret (at least 32 bytes; generate one with
    /// `openssl rand -base64 48`). Every member and every `holoctl` must use the same one.
    pub cluster_secret_file: Option<PathBuf>,
    /// Secrets accepted besides it but never sent: for rotating the secret without
    /// stopping the cluster (docs/security.md).
    pub also_accept_secret_files: Vec<PathBuf>,
    /// Mutual TLS: this node's certificate (PEM), its key, and the cluster's CA
    /// certificate, which every caller's certificate must be signed by. All three or none.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_ca_file: Option<PathBuf>,
    /// The DNS name every node's certificate carries, checked when dialling a peer instead
    /// of the peer's address (which its certificate must otherwise name as an IP SAN).
    pub tls_server_name: Option<String>,
    /// GIVES UP PEER AUTHENTICATION: let a node whose gRPC port listens beyond loopback
    /// start without a cluster secret (anyone who reaches the port can send it Accord
    /// messages and administer the cluster).
    pub allow_unauthenticated_peers: bool,
}

impl SecurityConfig {
    /// Checks protected mode for a node whose gRPC port is `grpc`.
    ///
    /// # Errors
    /// The port listens beyond loopback with neither a secret nor the explicit opt-out.
    pub fn validate(&self, grpc: &SocketAddr) -> anyhow::Result<()> {
        if self.cluster_secret_file.is_none() && !self.also_accept_secret_files.is_empty() {
            anyhow::bail!(
                "security.also_accept_secret_files is set without security.cluster_secret_file: a node without a secret accepts every call"
            );
        }
        let tls = self.tls_files()?;
        if self.cluster_secret_file.is_none()
            && tls.is_none()
            && !self.allow_unauthenticated_peers
            && !grpc.ip().is_loopback()
        {
            anyhow::bail!(
                "security: the gRPC port listens on {grpc}, beyond loopback, with neither a cluster secret nor TLS; \
                 set security.cluster_secret_file or the tls_*_file settings (see docs/security.md), or \
                 security.allow_unauthenticated_peers = true on a network only the cluster reaches"
            );
        }
        Ok(())
    }

    /// The TLS files, when TLS is configured.
    ///
    /// # Errors
    /// Some but not all of the three files are set.
    pub fn tls_files(&self) -> anyhow::Result<Option<TlsFiles>> {
        match (&self.tls_cert_file, &self.tls_key_file, &self.tls_ca_file) {
            (Some(cert), Some(key), Some(ca)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
                server_name: self.tls_server_name.clone(),
            })),
            (None, None, None) if self.tls_server_name.is_none() => Ok(None),
            _ => anyhow::bail!(
                "security: tls_cert_file, tls_key_file and tls_ca_file go together (tls_server_name needs them)"
            ),
        }
    }

    /// Reads the secrets and the TLS files: what this node's gRPC server checks (refusals
    /// of the token counted in `refused`) and how it calls its peers.
    ///
    /// # Errors
    /// A file cannot be read, a secret is too short, a certificate does not parse (the
    /// message names the file).
    pub fn load(&self, refused: Arc<AtomicU64>) -> anyhow::Result<GrpcSecurity> {
        let client = self.client()?;
        // Without a secret of its own a node lets every call in.
        let mut accepted: Vec<Arc<str>> = client.token.0.iter().cloned().collect();
        if client.token.is_set() {
            for path in &self.also_accept_secret_files {
                accepted.extend(ClusterToken::from_file(path)?.0);
            }
        }
        Ok(GrpcSecurity {
            client,
            require: RequireToken {
                accepted: accepted.into(),
                refused,
                last_logged: Arc::default(),
            },
        })
    }

    /// Reads the secret and the TLS files a caller needs: how a node calls its peers, and
    /// how holoctl calls a node (its flags fill these fields).
    ///
    /// # Errors
    /// As [`SecurityConfig::load`].
    pub fn client(&self) -> anyhow::Result<ClientSecurity> {
        Ok(ClientSecurity {
            token: self
                .cluster_secret_file
                .as_deref()
                .map(ClusterToken::from_file)
                .transpose()?
                .unwrap_or_default(),
            tls: self.tls_files()?.map(|f| Tls::load(&f)).transpose()?,
        })
    }
}

/// A node's side of `[security]`, loaded.
pub struct GrpcSecurity {
    /// How this node calls its peers (and forwards admin calls).
    pub client: ClientSecurity,
    /// The token check its server applies.
    pub require: RequireToken,
}

impl GrpcSecurity {
    /// The TLS its server listens with, if any.
    pub fn server_tls(&self) -> Option<ServerTlsConfig> {
        self.client.tls.as_ref().map(Tls::server)
    }
}

/// What a caller (a peer link, a forwarded admin call, holoctl) needs to reach a node: the
/// token its calls carry and the TLS it dials with.
#[derive(Clone, Debug, Default)]
pub struct ClientSecurity {
    pub token: ClusterToken,
    tls: Option<Tls>,
}

impl ClientSecurity {
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// An endpoint for the node at `addr` (host:port): plain HTTP/2, or TLS.
    ///
    /// # Errors
    /// `addr` is not an address an endpoint can be made of.
    pub fn endpoint(&self, addr: &str) -> anyhow::Result<Endpoint> {
        match &self.tls {
            Some(tls) => tls.client_endpoint(addr),
            None => Ok(Endpoint::from_shared(format!("http://{addr}"))?),
        }
    }
}

/// The token derived from the cluster secret, or none. Added to every outgoing call (as a
/// tonic interceptor on clients).
#[derive(Clone, Default)]
pub struct ClusterToken(Option<Arc<str>>);

impl std::fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ClusterToken(set)"
        } else {
            "ClusterToken(none)"
        })
    }
}

impl ClusterToken {
    /// No secret: calls go without a token.
    pub fn none() -> ClusterToken {
        ClusterToken(None)
    }

    /// The token of `secret` (trailing whitespace, such as a file's last newline, is not
    /// part of it).
    ///
    /// # Errors
    /// The secret is shorter than [`MIN_SECRET_BYTES`].
    pub fn from_secret(secret: &[u8]) -> anyhow::Result<ClusterToken> {
        let secret = secret.trim_ascii_end();
        if secret.len() < MIN_SECRET_BYTES {
            anyhow::bail!(
                "the cluster secret is {} bytes; use at least {MIN_SECRET_BYTES} (generate one with `openssl rand -base64 48`)",
                secret.len()
            );
        }
        let mut hash = Sha256::new();
        hash.update(b"holostore cluster token v1\0");
        hash.update(secret);
        let token: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(ClusterToken(Some(token.into())))
    }

    /// Reads the secret from `path`.
    ///
    /// # Errors
    /// The file cannot be read or its secret is too short; the message names the file.
    pub fn from_file(path: &Path) -> anyhow::Result<ClusterToken> {
        let secret = std::fs::read(path).map_err(|e| {
            anyhow::anyhow!("cannot read the cluster secret {}: {e}", path.display())
        })?;
        warn_if_readable_by_others(path);
        ClusterToken::from_secret(&secret).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

impl tonic::service::Interceptor for ClusterToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value = token
                .parse()
                .map_err(|_| tonic::Status::internal("cluster token is not ASCII"))?;
            request.metadata_mut().insert(TOKEN_HEADER, value);
        }
        Ok(request)
    }
}

/// The server side: every call must carry one of the accepted tokens (when the node has
/// any), compared in constant time. Refusals are counted (`holo_grpc_auth_refused_total`)
/// and logged with the caller's address, at most once per [`REFUSAL_LOG_EVERY`].
#[derive(Clone)]
pub struct RequireToken {
    /// Empty: every call is let in.
    accepted: Arc<[Arc<str>]>,
    refused: Arc<AtomicU64>,
    last_logged: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// At most one log line per this long for refused calls (a misconfigured peer retries every
/// second).
pub const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

impl RequireToken {
    fn log_refusal(&self, request: &tonic::Request<()>) {
        let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY) {
            *last = Some(std::time::Instant::now());
            let from = request
                .remote_addr()
                .map_or_else(|| "an unknown address".to_owned(), |a| a.to_string());
            tracing::warn!(
                "refused a gRPC call from {from}: cluster secret missing or wrong ({} refused so far)",
                self.refused.load(Ordering::Relaxed)
            );
        }
    }
}

impl tonic::service::Interceptor for RequireToken {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if self.accepted.is_empty() {
            return Ok(request);
        }
        let presented = request
            .metadata()
            .get(TOKEN_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        // Every accepted token is compared, whichever matches.
        let matched = self.accepted.iter().fold(false, |found, token| {
            equal_in_constant_time(presented, token.as_bytes()) | found
        });
        if matched {
            Ok(request)
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            self.log_refusal(&request);
            Err(tonic::Status::unauthenticated(REFUSAL))
        }
    }
}

/// An error with every cause under it, for a message that says what failed (a transport
/// error alone does not say that a certificate was refused).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// Byte equality whose time does not depend on where the first difference is (the length
/// of a token is public: it is a fixed-size digest).
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "the cluster secret {} can be read by other users (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

    #[test]
    fn short_secrets_are_refused_and_the_newline_is_not_part_of_it() {
        let err = ClusterToken::from_secret(b"short\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("5 bytes"), "{err}");
        let with_newline = ClusterToken::from_secret(&[SECRET, b"\n"].concat()).unwrap();
        let without = ClusterToken::from_secret(SECRET).unwrap();
        assert_eq!(with_newline.0, without.0);
        assert_ne!(
            without.0.as_deref(),
            Some(std::str::from_utf8(SECRET).unwrap()),
            "the secret itself is never sent"
        );
    }

    #[test]
    fn a_server_with_a_token_refuses_calls_without_it_or_with_another() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, secret: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, secret).unwrap();
            path
        };
        let config = SecurityConfig {
            cluster_secret_file: Some(file("current", SECRET)),
            also_accept_secret_files: vec![file(
                "previous",
                b"the previous secret, long enough to use",
            )],
            ..SecurityConfig::default()
        };
        let refused = Arc::new(AtomicU64::new(0));
        let loaded = config.load(Arc::clone(&refused)).unwrap();
        let (token, mut server) = (loaded.client.token, loaded.require);
        let previous =
            ClusterToken::from_secret(b"the previous secret, long enough to use").unwrap();
        let other =
            ClusterToken::from_secret(b"another secret, long enough to be accepted").unwrap();
        let signed = |mut t: ClusterToken| t.call(tonic::Request::new(())).unwrap();

        assert_eq!(token.0, ClusterToken::from_secret(SECRET).unwrap().0);
        assert!(server.call(signed(token.clone())).is_ok());
        assert!(
            server.call(signed(previous)).is_ok(),
            "a rotated-out secret is still accepted"
        );
        for request in [
            tonic::Request::new(()),
            signed(other),
            signed(ClusterToken::none()),
        ] {
            let status = server.call(request).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            assert!(status.message().contains("cluster secret"), "{status}");
        }
        assert_eq!(refused.load(Ordering::Relaxed), 3);

        let loaded = SecurityConfig::default()
            .load(Arc::new(AtomicU64::new(0)))
            .unwrap();
        let (none, mut open) = (loaded.client.token, loaded.require);
        assert!(!none.is_set());
        assert!(open.call(tonic::Request::new(())).is_ok());
        assert!(open.call(signed(token)).is_ok());
    }

    #[test]
    fn protected_mode_needs_a_secret_beyond_loopback() {
        let loopback: SocketAddr = "127.0.0.1:15051".parse().unwrap();
        let wide: SocketAddr = "0.0.0.0:15051".parse().unwrap();
        let none = SecurityConfig::default();
        assert!(none.validate(&loopback).is_ok());
        let err = none.validate(&wide).unwrap_err().to_string();
        assert!(err.contains("cluster_secret_file"), "{err}");
        let opted_out = SecurityConfig {
            allow_unauthenticated_peers: true,
            ..SecurityConfig::default()
        };
        assert!(opted_out.validate(&wide).is_ok());
        let secret = SecurityConfig {
            cluster_secret_file: Some("/etc/holostore/cluster.secret".into()),
            ..SecurityConfig::default()
        };
        assert!(secret.validate(&wide).is_ok());
        let accept_only = SecurityConfig {
            also_accept_secret_files: vec!["/etc/holostore/old.secret".into()],
            allow_unauthenticated_peers: true,
            ..SecurityConfig::default()
        };
        let err = accept_only.validate(&loopback).unwrap_err().to_string();
        assert!(err.contains("also_accept_secret_files"), "{err}");
    }

    #[test]
    fn a_bad_secret_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.secret");
        let err = ClusterToken::from_file(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.secret"), "{err}");
        let short = dir.path().join("short.secret");
        std::fs::write(&short, "abc\n").unwrap();
        let err = ClusterToken::from_file(&short).unwrap_err().to_string();
        assert!(
            err.contains("short.secret") && err.contains("3 bytes"),
            "{err}"
        );
        let good = dir.path().join("good.secret");
        std::fs::write(&good, SECRET).unwrap();
        assert!(ClusterToken::from_file(&good).unwrap().is_set());
    }

    #[test]
    fn tls_files_go_together_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("node.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let partial = SecurityConfig {
            tls_cert_file: Some(not_pem.clone()),
            ..SecurityConfig::default()
        };
        let err = partial.tls_files().unwrap_err().to_string();
        assert!(err.contains("go together"), "{err}");
        let bad = SecurityConfig {
            tls_cert_file: Some(not_pem.clone()),
            tls_key_file: Some(not_pem.clone()),
            tls_ca_file: Some(dir.path().join("missing-ca.pem")),
            ..SecurityConfig::default()
        };
        let err = match bad.load(Arc::new(AtomicU64::new(0))) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a file that is not PEM loaded"),
        };
        assert!(err.contains("node.pem") && err.contains("not PEM"), "{err}");
        // TLS alone satisfies protected mode.
        let wide: SocketAddr = "0.0.0.0:15051".parse().unwrap();
        assert!(bad.validate(&wide).is_ok());
    }

    #[test]
    fn equality_needs_every_byte() {
        assert!(equal_in_constant_time(b"abc", b"abc"));
        assert!(!equal_in_constant_time(b"abc", b"abd"));
        assert!(!equal_in_constant_time(b"abc", b"ab"));
        assert!(!equal_in_constant_time(b"", b"a"));
    }
}
