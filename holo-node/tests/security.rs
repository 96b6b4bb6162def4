//! `[security]`: the cluster secret on the gRPC port, between real nodes over real sockets.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Cluster, bulk, counter, eventually, metrics};
use holo_node::peer_auth::ClusterToken;
use holo_proto::v1 as pb;
use holo_resp::Frame;

const SECRET: &str = "the cluster secret of this test, long enough\n";
const OTHER: &str = "another cluster's secret, also long enough\n";

fn secret_file(dir: &Path, name: &str, secret: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, secret).unwrap();
    format!(
        "\n[security]\ncluster_secret_file = {:?}\n",
        path.display().to_string()
    )
}

/// A metric of the node `i` answers, once it has one.
async fn metric(cluster: &Cluster, i: usize, name: &str) -> Option<u64> {
    let mut c = cluster.client(i).await;
    counter(&metrics(&mut c).await?, name)
}

async fn channel(grpc: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A Deliver stream from node 9 (no member) to node 1: why it was refused.
async fn deliver_as_node_9<T>(mut client: pb::peer_client::PeerClient<T>) -> tonic::Status
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let stranger = pb::Envelope {
        from: 9,
        to: 1,
        messages: Vec::new(),
    };
    client
        .deliver(tokio_stream::iter([stranger]))
        .await
        .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_and_admin_calls_need_the_cluster_secret() {
    let secrets = tempfile::tempdir().unwrap();
    let right = secret_file(secrets.path(), "cluster.secret", SECRET);
    let wrong = secret_file(secrets.path(), "other.secret", OTHER);
    // Node 3 holds another cluster's secret: nodes 1 and 2 are a majority without it.
    let mut cluster = Cluster::start_each("redb", vec![right.clone(), right.clone(), wrong]).await;

    let mut c1 = cluster.client(0).await;
    assert_eq!(c1.cmd(&["SET", "k", "v1"]).await.unwrap(), Frame::ok());
    let mut c2 = cluster.client(1).await;
    assert_eq!(c2.cmd(&["GET", "k"]).await.unwrap(), bulk("v1"));

    // Node 3 was refused by both (and says so), and each of them counted its calls.
    for peer in ["1", "2"] {
        let name = format!("holo_peer_auth_refused_total{{peer=\"{peer}\"}}");
        eventually(
            &format!("node 3 refused by node {peer}"),
            Duration::from_secs(10),
            || {
                let name = name.clone();
                let cluster = &cluster;
                async move { metric(cluster, 2, &name).await.filter(|&n| n > 0) }
            },
        )
        .await;
        let connected = format!("holo_peer_connected{{peer=\"{peer}\"}}");
        assert_eq!(metric(&cluster, 2, &connected).await, Some(0));
    }
    for i in [0, 1] {
        let refused = metric(&cluster, i, "holo_grpc_auth_refused_total").await;
        assert!(refused > Some(0), "node {} counted {refused:?}", i + 1);
    }

    // A process without the token reaches neither service; with it, both answer.
    let grpc = &cluster.grpcs()[0];
    let hello = pb::HelloRequest { from: 9, to: 1 };
    let mut bare = pb::peer_client::PeerClient::new(channel(grpc).await);
    let status = bare.hello(hello).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status}");
    assert!(status.message().contains("cluster secret"), "{status}");
    let bare = pb::peer_client::PeerClient::new(channel(grpc).await);
    let status = deliver_as_node_9(bare).await;
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status}");
    let mut bare_admin = pb::admin_client::AdminClient::new(channel(grpc).await);
    let status = bare_admin
        .topology(pb::TopologyRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status}");
    let token = ClusterToken::from_secret(SECRET.as_bytes()).unwrap();
    let mut admin =
        pb::admin_client::AdminClient::with_interceptor(channel(grpc).await, token.clone());
    let topology = admin.topology(pb::TopologyRequest {}).await.unwrap();
    assert_eq!(topology.into_inner().members.len(), 3);
    // With the token, only members may speak for themselves: node 9 is no member.
    let mut peer =
        pb::peer_client::PeerClient::with_interceptor(channel(grpc).await, token.clone());
    let status = peer
        .hello(pb::HelloRequest { from: 9, to: 1 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status}");
    assert!(
        status.message().contains("node 9 is not a member"),
        "{status}"
    );
    peer.hello(pb::HelloRequest { from: 2, to: 1 })
        .await
        .unwrap();
    let status = deliver_as_node_9(peer).await;
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status}");
    // holoctl: refused without the secret, served with it (flag or environment).
    let secret = secrets.path().join("cluster.secret").display().to_string();
    let ctl = |args: Vec<String>, env: Option<String>| {
        let grpc = grpc.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            holoctl(&grpc, &args, env.as_deref())
        })
    };
    let (code, text) = ctl(Vec::new(), None).await.unwrap();
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("cluster secret missing or wrong"), "{text}");
    let flag = vec!["--cluster-secret-file".to_owned(), secret.clone()];
    let (code, text) = ctl(flag, None).await.unwrap();
    assert!(code == Some(0) && text.contains("3 members"), "{text}");
    let (code, text) = ctl(Vec::new(), Some(secret)).await.unwrap();
    assert!(code == Some(0) && text.contains("3 members"), "{text}");

    // Given the cluster's secret, node 3 joins in and catches up.
    cluster.stop(2).await;
    cluster.extras[2] = right;
    cluster.restart(2).await;
    let mut c3 = cluster.client(2).await;
    assert_eq!(c3.cmd(&["SET", "k", "v3"]).await.unwrap(), Frame::ok());
    assert_eq!(c1.cmd(&["GET", "k"]).await.unwrap(), bulk("v3"));
    cluster.shutdown().await;
}

/// A CA and the PEM files of certificates it signed, in one directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, pem: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    }

    /// A CA certificate (its PEM file under `name`) and its signer.
    fn ca(&self, name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        self.write(name, &ca.pem());
        ca
    }

    /// A certificate for 127.0.0.1 signed by `ca`: (cert file, key file).
    fn issue(
        &self,
        name: &str,
        ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    ) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, ca)
            .unwrap();
        (
            self.write(&format!("{name}.pem"), &cert.pem()),
            self.write(&format!("{name}.key"), &key.serialize_pem()),
        )
    }
}

fn tls_extra((cert, key): &(String, String), ca: &str) -> String {
    format!(
        "\n[security]\ntls_cert_file = {cert:?}\ntls_key_file = {key:?}\ntls_ca_file = {ca:?}\n"
    )
}

/// holoctl's `topology` against `grpc` with `args` before it (and the secret file in the
/// environment, if given): its exit code and output.
fn holoctl(grpc: &str, args: &[&str], secret_env: Option<&str>) -> (Option<i32>, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_holoctl"));
    command.env_remove("HOLO_CLUSTER_SECRET_FILE");
    if let Some(path) = secret_env {
        command.env("HOLO_CLUSTER_SECRET_FILE", path);
    }
    let out = command
        .arg("--target")
        .arg(grpc)
        .args(args)
        .arg("topology")
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_keeps_out_callers_without_a_cluster_certificate() {
    let pki = Pki::new();
    let ca = pki.ca("ca.pem");
    let ca_file = pki.dir.path().join("ca.pem").display().to_string();
    let node = pki.issue("node", &ca);
    let client = pki.issue("client", &ca);
    let foreign_ca = pki.ca("foreign-ca.pem");
    let foreign = pki.issue("foreign", &foreign_ca);
    let right = tls_extra(&node, &ca_file);
    // Node 3 holds a certificate of another CA: nodes 1 and 2 are a majority without it.
    let mut cluster = Cluster::start_each(
        "redb",
        vec![right.clone(), right.clone(), tls_extra(&foreign, &ca_file)],
    )
    .await;
    let mut c1 = cluster.client(0).await;
    assert_eq!(c1.cmd(&["SET", "k", "v1"]).await.unwrap(), Frame::ok());
    let mut c2 = cluster.client(1).await;
    assert_eq!(c2.cmd(&["GET", "k"]).await.unwrap(), bulk("v1"));

    // Node 3 and the others never complete a handshake either way, and count the attempts.
    for (i, peer) in [(2, "1"), (0, "3")] {
        let failures = format!("holo_peer_link_failures_total{{peer=\"{peer}\"}}");
        eventually(
            "failed TLS handshakes counted",
            Duration::from_secs(10),
            || {
                let failures = failures.clone();
                let cluster = &cluster;
                async move { metric(cluster, i, &failures).await.filter(|&n| n > 0) }
            },
        )
        .await;
        let connected = format!("holo_peer_connected{{peer=\"{peer}\"}}");
        assert_eq!(metric(&cluster, i, &connected).await, Some(0));
    }
    eventually("node 1's link to node 2", Duration::from_secs(10), || {
        let cluster = &cluster;
        async move {
            let up = metric(cluster, 0, "holo_peer_connected{peer=\"2\"}").await;
            (up == Some(1)).then_some(())
        }
    })
    .await;

    let grpc = cluster.grpcs()[0].clone();
    let (ca_arg, cert, key) = (&ca_file, &client.0, &client.1);
    let with = |cert: &str, key: &str| {
        vec![
            "--tls-ca".to_owned(),
            ca_arg.clone(),
            "--tls-cert".to_owned(),
            cert.to_owned(),
            "--tls-key".to_owned(),
            key.to_owned(),
        ]
    };
    let grpc2 = grpc.clone();
    let run = move |args: Vec<String>| {
        let grpc = grpc2.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            holoctl(&grpc, &args, None)
        })
    };
    // In clear, or with a certificate of another CA: refused. With a cluster one: served.
    let (code, text) = run(Vec::new()).await.unwrap();
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("may serve gRPC over TLS"), "{text}");
    let (code, text) = run(with(&foreign.0, &foreign.1)).await.unwrap();
    assert_eq!(code, Some(2), "{text}");
    assert!(!text.contains("3 members"), "{text}");
    let (code, text) = run(with(cert, key)).await.unwrap();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("3 members"), "{text}");

    // Given a certificate of the cluster's CA, node 3 joins in and catches up.
    cluster.stop(2).await;
    cluster.extras[2] = right;
    cluster.restart(2).await;
    let mut c3 = cluster.client(2).await;
    assert_eq!(c3.cmd(&["GET", "k"]).await.unwrap(), bulk("v1"));
    assert_eq!(c3.cmd(&["SET", "k", "v3"]).await.unwrap(), Frame::ok());
    assert_eq!(c1.cmd(&["GET", "k"]).await.unwrap(), bulk("v3"));
    cluster.shutdown().await;
}
