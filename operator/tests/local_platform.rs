//! The local platform with real members: shardline-node and redis-server.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{free_port, kill9, process_alive, processes_in, MemberRoot};
use shardline_operator::model::{MemberName, PlatformMember};
use shardline_operator::platform::local::{LocalOptions, LocalPlatform};
use shardline_operator::platform::{Platform, PlatformError};
use shardline_operator::RedisClusterSpec;

fn spec(image: &str, config: &[(&str, &str)]) -> RedisClusterSpec {
    let config: serde_json::Map<String, serde_json::Value> = config
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect();
    serde_json::from_value(serde_json::json!({
        "image": image,
        "nodeTimeoutMs": 5000,
        "config": config,
    }))
    .expect("spec")
}

fn options(root: &MemberRoot, first_ip: Ipv4Addr, password: Option<&str>) -> LocalOptions {
    LocalOptions {
        root: root.path(),
        port: free_port(first_ip),
        first_ip,
        node_binary: common::shardline_node_binary(),
        password: password.map(str::to_owned),
    }
}

async fn member(p: &mut LocalPlatform, spec: &RedisClusterSpec, m: MemberName) -> PlatformMember {
    let members = p.members(spec).await.expect("members");
    members
        .into_iter()
        .find(|x| x.name == m)
        .unwrap_or_else(|| panic!("{m} not listed"))
}

async fn connect(addr: &str, password: Option<&str>) -> redis::aio::MultiplexedConnection {
    let (host, port) = addr.rsplit_once(':').expect("ip:port");
    let info = redis::ConnectionInfo {
        addr: redis::ConnectionAddr::Tcp(host.to_owned(), port.parse().expect("port")),
        redis: redis::RedisConnectionInfo {
            password: password.map(str::to_owned),
            ..Default::default()
        },
    };
    let client = redis::Client::open(info).expect("client");
    client
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

async fn config_get(con: &mut redis::aio::MultiplexedConnection, name: &str) -> String {
    let reply: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(con)
        .await
        .expect("CONFIG GET");
    reply.get(1).cloned().unwrap_or_default()
}

async fn node_id(con: &mut redis::aio::MultiplexedConnection) -> String {
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(con)
        .await
        .expect("CLUSTER NODES");
    nodes
        .lines()
        .find(|l| l.contains("myself"))
        .and_then(|l| l.split_whitespace().next())
        .expect("myself line")
        .to_owned()
}

/// The single live process of member directory `dir`.
fn only_process(dir: &Path) -> u32 {
    let pids = processes_in(dir);
    assert_eq!(pids.len(), 1, "processes in {}: {pids:?}", dir.display());
    pids[0]
}

/// Create, PING, SIGKILL, start (same node ID), replace with a new config,
/// adoption by a new platform, delete: with the binary `image` resolves to.
async fn lifecycle(first_ip: Ipv4Addr, image: &str, password: Option<&str>, exe: &Path) {
    let root = MemberRoot::new();
    let opts = options(&root, first_ip, password);
    let addr = format!("{first_ip}:{}", opts.port);
    let mut p = LocalPlatform::new(opts.clone()).expect("platform");
    let spec1 = spec(image, &[]);
    let m = MemberName::new(0, 0);
    let dir = p.member_dir(m);
    assert_eq!(dir, root.path().join("shard-0-0"));

    // Create: running, reachable, at the first address, from the right binary.
    p.create(m, &spec1).await.expect("create");
    let pm = member(&mut p, &spec1, m).await;
    assert_eq!(pm.addr, addr);
    assert!(pm.running && pm.up_to_date, "{pm:?}");
    assert_eq!(pm.host.as_deref(), Some("localhost"));
    assert_eq!(pm.zone, None);
    let pid = only_process(&dir);
    let running_exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
    assert_eq!(running_exe, exe.canonicalize().expect("canonical exe"));
    assert!(p.log_path(m).is_file());
    let config = std::fs::read_to_string(dir.join("redis.conf")).expect("redis.conf");
    for line in [
        format!("port {}", opts.port),
        format!("bind {first_ip}"),
        "cluster-enabled yes".to_owned(),
        "cluster-node-timeout 5000".to_owned(),
    ] {
        assert!(
            config.lines().any(|l| l == line),
            "no `{line}` in\n{config}"
        );
    }
    let mut con = connect(&addr, password).await;
    let pong: String = redis::cmd("PING")
        .query_async(&mut con)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");
    assert_eq!(config_get(&mut con, "appendonly").await, "yes");
    assert_eq!(config_get(&mut con, "cluster-node-timeout").await, "5000");
    let id = node_id(&mut con).await;
    drop(con);
    assert!(
        p.create(m, &spec1).await.is_err(),
        "create of an existing member"
    );

    // SIGKILL: not running; start: running again, same node ID.
    kill9(pid);
    let deadline = Instant::now() + Duration::from_secs(5);
    while member(&mut p, &spec1, m).await.running {
        assert!(Instant::now() < deadline, "still running after SIGKILL");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.start(m, &spec1).await.expect("start");
    assert!(member(&mut p, &spec1, m).await.running);
    let mut con = connect(&addr, password).await;
    assert_eq!(node_id(&mut con).await, id);
    drop(con);

    // A new config: out of date until replaced; then live, same node ID.
    let spec2 = spec(
        image,
        &[
            ("maxmemory-samples", "7"),
            ("save", ""),
            ("appendonly", "no"),
        ],
    );
    let pm = member(&mut p, &spec2, m).await;
    assert!(pm.running && !pm.up_to_date, "{pm:?}");
    p.replace(m, &spec2).await.expect("replace");
    let pm = member(&mut p, &spec2, m).await;
    assert!(pm.running && pm.up_to_date, "{pm:?}");
    assert!(!member(&mut p, &spec1, m).await.up_to_date);
    let mut con = connect(&addr, password).await;
    assert_eq!(config_get(&mut con, "maxmemory-samples").await, "7");
    assert_eq!(config_get(&mut con, "save").await, "");
    assert_eq!(config_get(&mut con, "appendonly").await, "no");
    assert_eq!(node_id(&mut con).await, id);
    drop(con);
    let pid = only_process(&dir);

    // A new platform over the same root (the old one gone without stopping
    // anything) adopts the running member; start does not start another.
    drop(p);
    let mut p = LocalPlatform::new(opts).expect("second platform");
    let pm = member(&mut p, &spec2, m).await;
    assert!(pm.running && pm.up_to_date, "{pm:?}");
    assert_eq!(pm.addr, addr);
    p.start(m, &spec2).await.expect("start of a running member");
    assert_eq!(only_process(&dir), pid);

    // Delete: the process and the directory go.
    p.delete(m).await.expect("delete");
    assert!(!dir.exists());
    assert!(!process_alive(pid), "member process {pid} survived delete");
    assert!(p.members(&spec2).await.expect("members").is_empty());
}

#[tokio::test]
async fn lifecycle_with_shardline_node() {
    let exe = common::shardline_node_binary();
    // A container image names no local program: the node binary runs.
    lifecycle(
        Ipv4Addr::new(127, 0, 60, 1),
        "shardline/node:0.1",
        None,
        &exe,
    )
    .await;
}

#[tokio::test]
async fn lifecycle_with_redis_server() {
    let Some(exe) = common::redis_server_binary() else {
        eprintln!("redis-server not installed; skipped");
        return;
    };
    // Found on PATH, with a password.
    lifecycle(
        Ipv4Addr::new(127, 0, 61, 1),
        "redis-server",
        Some("s3cret pass"),
        &exe,
    )
    .await;
}

#[tokio::test]
async fn addresses_are_allocated_lowest_first_and_kept() {
    let root = MemberRoot::new();
    let first_ip = Ipv4Addr::new(127, 0, 62, 1);
    let opts = options(&root, first_ip, None);
    let port = opts.port;
    let spec = spec("", &[]);
    let mut p = LocalPlatform::new(opts.clone()).expect("platform");
    std::fs::create_dir(root.path().join("not-a-member")).expect("mkdir");

    let (a, b, c, d) = (
        MemberName::new(0, 0),
        MemberName::new(1, 0),
        MemberName::new(0, 1),
        MemberName::new(2, 0),
    );
    for m in [a, b, c] {
        p.create(m, &spec).await.expect("create");
    }
    let addrs = |members: &[PlatformMember]| -> Vec<(MemberName, String)> {
        members.iter().map(|m| (m.name, m.addr.clone())).collect()
    };
    let at = |last: u8| format!("127.0.62.{last}:{port}");
    assert_eq!(
        addrs(&p.members(&spec).await.expect("members")),
        vec![(a, at(1)), (c, at(3)), (b, at(2))]
    );

    // The lowest free address is reused.
    p.delete(b).await.expect("delete");
    p.create(d, &spec).await.expect("create");
    let members = p.members(&spec).await.expect("members");
    assert_eq!(addrs(&members), vec![(a, at(1)), (c, at(3)), (d, at(2))]);
    assert!(members.iter().all(|m| m.running && m.up_to_date));

    // stop_all stops every member; a new platform finds them stopped, at
    // the same addresses, and starts them there.
    let dirs: Vec<_> = [a, c, d].iter().map(|&m| p.member_dir(m)).collect();
    p.stop_all().await;
    for dir in &dirs {
        assert!(processes_in(dir).is_empty(), "{} still runs", dir.display());
    }
    let mut p = LocalPlatform::new(opts).expect("second platform");
    let members = p.members(&spec).await.expect("members");
    assert_eq!(addrs(&members), vec![(a, at(1)), (c, at(3)), (d, at(2))]);
    assert!(members.iter().all(|m| !m.running && m.up_to_date));
    p.start(d, &spec).await.expect("start");
    let mut con = connect(&at(2), None).await;
    let pong: String = redis::cmd("PING")
        .query_async(&mut con)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");
    p.stop_all().await;
    assert!(processes_in(&p.member_dir(d)).is_empty());
}

#[tokio::test]
async fn a_member_that_cannot_start_reports_its_log() {
    let root = MemberRoot::new();
    let opts = options(&root, Ipv4Addr::new(127, 0, 63, 1), None);
    let mut p = LocalPlatform::new(opts).expect("platform");
    let m = MemberName::new(0, 0);

    let bad = spec("", &[("maxmemory-samples", "many")]);
    let err = p.create(m, &bad).await.expect_err("a bad config value");
    let text = err.to_string();
    assert!(text.contains("maxmemory-samples"), "{text}");
    assert!(matches!(err, PlatformError::Member { member, .. } if member == m));
    let pm = member(&mut p, &bad, m).await;
    assert!(!pm.running);

    // Directives the platform owns are refused before anything starts.
    let reserved = spec("", &[("port", "1")]);
    let n = MemberName::new(1, 0);
    assert!(p.create(n, &reserved).await.is_err());
    assert!(!p.member_dir(n).exists());
}

const HELPER_ROOT: &str = "SHARDLINE_LOCAL_HELPER_ROOT";
const HELPER_PORT: &str = "SHARDLINE_LOCAL_HELPER_PORT";
const HELPER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 64, 1);

/// Run by `a_member_survives_a_killed_operator_and_is_adopted` in a child
/// process: creates a member, then SIGKILLs its own process, as an operator
/// killed without a chance to clean up. Does nothing when run directly.
#[tokio::test]
#[ignore = "a helper run by another test"]
async fn helper_create_a_member_then_die() {
    let (Some(root), Some(port)) = (std::env::var_os(HELPER_ROOT), std::env::var_os(HELPER_PORT))
    else {
        return;
    };
    let opts = LocalOptions {
        root: root.into(),
        port: port.to_str().and_then(|p| p.parse().ok()).expect("port"),
        first_ip: HELPER_IP,
        node_binary: common::shardline_node_binary(),
        password: None,
    };
    let mut p = LocalPlatform::new(opts).expect("platform");
    p.create(MemberName::new(0, 0), &spec("", &[]))
        .await
        .expect("create");
    kill9(std::process::id());
}

#[tokio::test]
async fn a_member_survives_a_killed_operator_and_is_adopted() {
    let root = MemberRoot::new();
    let opts = options(&root, HELPER_IP, None);
    let exe = std::env::current_exe().expect("test binary");
    let status = tokio::process::Command::new(exe)
        .args([
            "--exact",
            "helper_create_a_member_then_die",
            "--ignored",
            "--nocapture",
        ])
        .env(HELPER_ROOT, root.path())
        .env(HELPER_PORT, opts.port.to_string())
        .status()
        .await
        .expect("run the helper");
    assert!(!status.success(), "the helper should die by SIGKILL");

    let m = MemberName::new(0, 0);
    let spec = spec("", &[]);
    let mut p = LocalPlatform::new(opts.clone()).expect("platform");
    let dir = p.member_dir(m);
    let pid = only_process(&dir);
    let pm = member(&mut p, &spec, m).await;
    assert!(pm.running && pm.up_to_date, "{pm:?}");
    let addr = format!("{HELPER_IP}:{}", opts.port);
    assert_eq!(pm.addr, addr);
    let mut con = connect(&addr, None).await;
    let pong: String = redis::cmd("PING")
        .query_async(&mut con)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");
    drop(con);

    // The adopted member is stopped and started like any other.
    p.replace(m, &spec).await.expect("replace");
    let new_pid = only_process(&dir);
    assert_ne!(new_pid, pid);
    assert!(!process_alive(pid));
    p.delete(m).await.expect("delete");
    assert!(!process_alive(new_pid));
}
