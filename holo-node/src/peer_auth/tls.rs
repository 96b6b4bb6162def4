//! Mutual TLS on the gRPC port: every node presents a certificate signed by the cluster's
//! CA and accepts only callers that present one too (peers and holoctl alike). Unlike the
//! cluster secret alone, it also encrypts the traffic, so nothing on the wire can be read
//! or replayed.
//!
//! Peers are dialled by the addresses in `[[members]]`; the certificate a node presents
//! must name that address (an IP SAN), or every certificate names one shared DNS name given
//! as `tls_server_name` (simpler to issue; any holder of a cluster certificate can then
//! stand in for any member, as with the secret).

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// The PEM files of one node or client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// The name every node's certificate carries, checked instead of the dialled address.
    pub server_name: Option<String>,
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read the TLS {what} {}: {e}", path.display()))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        anyhow::bail!("{}: the TLS {what} is not PEM", path.display());
    }
    Ok(bytes)
}

/// How long a TLS handshake may take, either side: a caller that never finishes one holds
/// no task for longer.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The loaded files: what a client dials with and what a server listens with.
#[derive(Clone)]
pub struct Tls {
    identity: Identity,
    ca: Certificate,
    server_name: Option<String>,
}

/// Never prints the key (tonic's `Identity` would).
impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the files.
    ///
    /// # Errors
    /// A file cannot be read or is not PEM; the message names it.
    pub fn load(files: &TlsFiles) -> anyhow::Result<Tls> {
        let cert = read(&files.cert, "certificate")?;
        let key = read(&files.key, "key")?;
        let ca = read(&files.ca, "CA certificate")?;
        let tls = Tls {
            identity: Identity::from_pem(cert, key),
            ca: Certificate::from_pem(ca),
            server_name: files.server_name.clone(),
        };
        // Both configurations are built here once, so a certificate that does not parse or
        // does not match its key stops the node (or holoctl) at start, naming the files.
        let describe = || {
            format!(
                "TLS files {}, {}, {}",
                files.cert.display(),
                files.key.display(),
                files.ca.display()
            )
        };
        tonic::transport::Server::builder()
            .tls_config(tls.server())
            .map_err(|e| anyhow::anyhow!("{}: {e}", describe()))?;
        tls.client_endpoint("127.0.0.1:1")
            .map_err(|e| anyhow::anyhow!("{}: {e}", describe()))?;
        Ok(tls)
    }

    /// The server side: this node's identity, and callers must present a certificate
    /// signed by the CA.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// An endpoint that dials `addr` over TLS, presenting this identity and checking the
    /// server's certificate against the CA (and the shared name, if one is set).
    ///
    /// # Errors
    /// `addr` is not a host:port, or the TLS configuration does not build.
    pub fn client_endpoint(&self, addr: &str) -> anyhow::Result<Endpoint> {
        let host = match &self.server_name {
            Some(name) => name.clone(),
            None => addr
                .rsplit_once(':')
                .map(|(host, _)| host.trim_matches(['[', ']']).to_owned())
                .ok_or_else(|| anyhow::anyhow!("{addr} is not a host:port address"))?,
        };
        let config = ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(host)
            .timeout(HANDSHAKE_TIMEOUT);
        Ok(Endpoint::from_shared(format!("https://{addr}"))?.tls_config(config)?)
    }
}
