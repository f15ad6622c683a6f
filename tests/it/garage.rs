//! A 3-node Garage cluster on loopback for the object-storage tests: free ports, a temporary
//! directory per node, replication factor 3, a layout assigned and applied, a bucket and a
//! key; every node is a child process killed (and reaped) on drop, also when a test fails.
//!
//! Garage is found as `$IIPSRV_GARAGE`, `garage` on the PATH, `~/.cargo/bin/garage` or
//! `${IIPSRV_TOOLS:-~/.cache/iipsrv-tools}/bin/garage` (`.ci/run` builds it there once per
//! machine with `cargo install garage --locked`).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;

use super::support::free_port;

/// The bucket every test cluster has.
pub const BUCKET: &str = "masters-b1";
/// The access key every test cluster has (test-only values, generated for the cluster).
pub const KEY_ID: &str = "GK31c2f218a2e44f485b94239e";
pub const SECRET: &str = "b892c0665f0ada8a4755dae98baa3b133590e11dae3bcc1f9d38d9c2af57b9f3";
/// Garage's region name (the signature covers it).
pub const REGION: &str = "garage";

/// The Garage binary, or `None` when the object-storage tests are knowingly skipped.
pub fn binary() -> Option<PathBuf> {
    if std::env::var_os("IIPSRV_SKIP_DEPLOYMENT_TESTS").is_some() {
        eprintln!("skipping: IIPSRV_SKIP_DEPLOYMENT_TESTS is set");
        return None;
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let tools = std::env::var_os("IIPSRV_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/iipsrv-tools"));
    let mut candidates: Vec<PathBuf> = std::env::var_os("IIPSRV_GARAGE")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("garage")));
    }
    candidates.push(home.join(".cargo/bin/garage"));
    candidates.push(tools.join("bin/garage"));
    let found = candidates.into_iter().find(|c| c.is_file());
    assert!(
        found.is_some(),
        "garage is needed for the object-storage tests: `cargo install garage --locked` \
         (bash .ci/run does it once per machine), or set IIPSRV_GARAGE"
    );
    found
}

/// One Garage node.
struct Node {
    child: Option<Child>,
    config: PathBuf,
    s3_port: u16,
}

/// A running 3-node cluster.
pub struct Garage {
    bin: PathBuf,
    nodes: Vec<Node>,
    pub dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
}

impl Garage {
    /// Start the cluster, apply a layout with replication factor 3, create the bucket and the
    /// key. Panics (after ending the nodes already started) when Garage does not come up.
    pub fn start(bin: &Path) -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let secret: String = (0..32)
            .map(|i| format!("{:02x}", (i * 37 + std::process::id() as usize) % 251))
            .collect();
        let mut garage = Garage {
            bin: bin.to_path_buf(),
            nodes: Vec::new(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            dir,
        };
        for i in 0..3 {
            let node_dir = garage.dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let (rpc, s3, admin) = (free_port(), free_port(), free_port());
            let config = node_dir.join("garage.toml");
            std::fs::write(
                &config,
                format!(
                    "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
                     replication_factor = 3\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                     rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
                     [s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                     root_domain = \".s3.garage.localhost\"\n\
                     [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n",
                    d = node_dir.display()
                ),
            )
            .unwrap();
            // Garage refuses secrets in world-readable files.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
            let log = std::fs::File::create(node_dir.join("log")).unwrap();
            let child = Command::new(bin)
                .arg("-c")
                .arg(&config)
                .arg("server")
                .env("RUST_LOG", "garage=warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start garage");
            garage.nodes.push(Node {
                child: Some(child),
                config,
                s3_port: s3,
            });
        }
        for n in 0..3 {
            garage.wait_port(garage.nodes[n].s3_port);
        }
        let ids: Vec<String> = (0..3)
            .map(|n| garage.cli(n, &["node", "id", "-q"]).trim().to_string())
            .collect();
        for id in &ids[1..] {
            garage.cli(0, &["node", "connect", id]);
        }
        for id in &ids {
            let short = &id[..16];
            garage.cli(0, &["layout", "assign", "-z", "dc1", "-c", "1G", short]);
        }
        garage.cli(0, &["layout", "apply", "--version", "1"]);
        garage.cli(0, &["bucket", "create", BUCKET]);
        garage.cli(
            0,
            &[
                "key",
                "import",
                "--yes",
                KEY_ID,
                SECRET,
                "-n",
                "iipsrv-test",
            ],
        );
        garage.cli(
            0,
            &[
                "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_ID,
            ],
        );
        garage.wait_writable();
        garage
    }

    fn wait_port(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "garage did not listen on {port}: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run a `garage` command against node `n`; its standard output (panics when it fails).
    pub fn cli(&self, n: usize, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.nodes[n].config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run garage");
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The logs of every node (for failure messages).
    pub fn logs(&self) -> String {
        (0..self.nodes.len())
            .map(|n| {
                let log = self.dir.path().join(format!("node{n}/log"));
                format!(
                    "--- node {n} ---\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            })
            .collect()
    }

    /// The S3 endpoint of node `n`.
    pub fn endpoint(&self, n: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[n].s3_port)
    }

    /// The environment that points iipsrv at node `n` (`FILESYSTEM_PREFIX` not included).
    pub fn env(&self, n: usize) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET.into()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_ENDPOINT_URL".into(), self.endpoint(n)),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
        ]
    }

    fn client(&self, n: usize) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_access_key_id(KEY_ID)
            .with_secret_access_key(SECRET)
            .with_region(REGION)
            .with_endpoint(self.endpoint(n))
            .with_allow_http(true)
            .build()
            .unwrap()
    }

    /// Store `bytes` under `key` (through node 0).
    pub fn put(&self, key: &str, bytes: Vec<u8>) {
        let store = self.client(0);
        let path = object_store::path::Path::parse(key).unwrap();
        self.runtime
            .block_on(store.put(&path, bytes.into()))
            .unwrap_or_else(|e| panic!("PUT {key}: {e}\n{}", self.logs()));
    }

    /// Delete `key`.
    pub fn delete(&self, key: &str) {
        let store = self.client(0);
        let path = object_store::path::Path::parse(key).unwrap();
        self.runtime
            .block_on(store.delete(&path))
            .unwrap_or_else(|e| panic!("DELETE {key}: {e}"));
    }

    /// Upload every file of `dir` (not recursive) under `prefix`.
    pub fn upload_dir(&self, dir: &Path, prefix: &str) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if e.path().is_file() {
                let name = e.file_name().to_string_lossy().into_owned();
                self.put(&format!("{prefix}{name}"), std::fs::read(e.path()).unwrap());
            }
        }
    }

    /// A layout takes a moment to reach every node: retry a first write until it works.
    fn wait_writable(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let store = self.client(0);
        let path = object_store::path::Path::parse("ready").unwrap();
        loop {
            match self
                .runtime
                .block_on(store.put(&path, b"ok".to_vec().into()))
            {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("garage never accepted a write: {e}\n{}", self.logs())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Stop node `n` (kill and reap it).
    pub fn stop(&mut self, n: usize) {
        if let Some(mut child) = self.nodes[n].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        for n in 0..self.nodes.len() {
            self.stop(n);
        }
    }
}
