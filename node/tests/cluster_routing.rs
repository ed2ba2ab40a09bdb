//! Cluster-mode routing compared with redis-server 7.0: the same command
//! sequences sent to one node of each kind in cluster mode, replies compared
//! byte for byte (CLUSTERDOWN, CROSSSLOT, MULTI/EXEC and WATCH limited to one
//! slot, reads when down, full coverage), and pub/sub across a mixed
//! two-node cluster.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{free_port, Conn, Reply, Server};

fn cluster_args(bus: &str) -> Vec<String> {
    vec![
        "--cluster-enabled".into(),
        "yes".into(),
        "--cluster-port".into(),
        bus.into(),
        "--cluster-node-timeout".into(),
        "2000".into(),
    ]
}

/// One shardline node and one redis-server, both in cluster mode.
fn pair() -> (Server, Server) {
    let bus = free_port().to_string();
    let args = cluster_args(&bus);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let ours = Server::start(&a);
    let bus = free_port().to_string();
    let args = cluster_args(&bus);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let redis = Server::start_redis_with(&a);
    (ours, redis)
}

fn wait_state(c: &mut Conn, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let info = c.cmd(&["CLUSTER", "INFO"]).text();
        if info.contains(&format!("cluster_state:{want}")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "state never became {want}: {info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `script` (one command per line) on both servers and compares the
/// raw replies.
fn same(ours: &mut Conn, redis: &mut Conn, script: &str) {
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        let a = ours.call_raw(&args);
        let b = redis.call_raw(&args);
        assert_eq!(
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b),
            "reply to `{line}` differs (left: shardline, right: redis)"
        );
    }
}

// Keys used below: "a" is slot 15495, "b" 3300, "{t}a"/"{t}b" 15891.

#[test]
fn routing_matches_redis_when_slots_are_missing_or_the_cluster_is_down() {
    let (o, r) = pair();
    let (mut ours, mut redis) = (o.conn(), r.conn());
    // Serve only the upper half of the slots.
    same(&mut ours, &mut redis, "CLUSTER ADDSLOTSRANGE 8192 16383");
    wait_state(&mut ours, "fail");
    wait_state(&mut redis, "fail");
    // Full coverage required: everything keyed is refused, unserved slots
    // first, then the state; keyless commands still run.
    same(
        &mut ours,
        &mut redis,
        "SET a 1
         GET b
         MSET a 1 b 2
         MSET b 1 a 2
         MSET {t}a 1 {t}b 2
         DBSIZE
         PING
         SELECT 0
         SELECT 1",
    );
    // Reads allowed while down: writes are still refused.
    same(
        &mut ours,
        &mut redis,
        "CONFIG SET cluster-allow-reads-when-down yes
         GET a
         SET a 1
         INCR a
         GET b
         EXISTS a
         MGET {t}a {t}b
         CONFIG SET cluster-allow-reads-when-down no
         GET a",
    );
    // Coverage not required: served slots work again.
    same(
        &mut ours,
        &mut redis,
        "CONFIG SET cluster-require-full-coverage no",
    );
    wait_state(&mut ours, "ok");
    wait_state(&mut redis, "ok");
    same(
        &mut ours,
        &mut redis,
        "SET a 1
         GET a
         GET b
         MSET {t}a 1 {t}b 2
         MGET {t}a {t}b
         MSET a 1 {t}a 2
         DEL a b
         EXISTS a {t}a
         WATCH a {t}a
         WATCH a
         MULTI
         SET a 2
         SET {t}a 3
         EXEC
         MULTI
         SET a 2
         GET b
         EXEC
         MULTI
         SET a 5
         INCR a
         EXEC
         GET a
         CLUSTER COUNTKEYSINSLOT 15495
         CLUSTER GETKEYSINSLOT 15495 10
         CLUSTER KEYSLOT {t}a
         RENAME a {t}a
         SPUBLISH b hello
         SPUBLISH a hello
         PUBLISH anything hello
         DBSIZE",
    );
}

#[test]
fn cluster_info_and_nodes_of_a_lone_node_match_redis_shapes() {
    let (o, r) = pair();
    let (mut ours, mut redis) = (o.conn(), r.conn());
    same(&mut ours, &mut redis, "CLUSTER ADDSLOTSRANGE 0 16383");
    wait_state(&mut ours, "ok");
    wait_state(&mut redis, "ok");
    let fields = |c: &mut Conn| -> Vec<String> {
        c.cmd(&["CLUSTER", "INFO"])
            .text()
            .lines()
            .take(9)
            .map(|l| l.to_string())
            .collect()
    };
    let mut a = fields(&mut ours);
    let mut b = fields(&mut redis);
    // The epochs are the only values that may differ at this point.
    for v in [&mut a, &mut b] {
        v.retain(|l| !l.contains("epoch"));
    }
    assert_eq!(a, b);
    let slots = |c: &mut Conn| {
        let r = c.cmd(&["CLUSTER", "SLOTS"]);
        let row = r.array()[0].array().to_vec();
        (row[0].clone(), row[1].clone(), row[2].array().len())
    };
    assert_eq!(slots(&mut ours), slots(&mut redis));
    let nodes = ours.cmd(&["CLUSTER", "NODES"]).text();
    let f: Vec<&str> = nodes.split_whitespace().collect();
    assert_eq!(f[2], "myself,master");
    assert_eq!(f[8], "0-16383");
    assert_eq!(
        ours.cmd(&["CLUSTER", "MYID"]).text(),
        f[0],
        "MYID is the id in CLUSTER NODES"
    );
}

fn wait_joined(c: &mut Conn, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let nodes = c.cmd(&["CLUSTER", "NODES"]).text();
        let good = nodes
            .lines()
            .filter(|l| !l.contains("handshake") && !l.contains("fail") && l.contains("connected"))
            .count();
        if good == n && !nodes.contains("disconnected") {
            return;
        }
        assert!(Instant::now() < deadline, "never joined: {nodes}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn subscribe(server: &Server, cmd: &str, channel: &str) -> Conn {
    let mut c = server.conn();
    let r = c.cmd(&[cmd, channel]);
    assert!(matches!(r, Reply::Array(_) | Reply::Push(_)), "{r:?}");
    c
}

fn expect_message(c: &mut Conn, kind: &str, channel: &str, payload: &str) {
    c.set_timeout(Duration::from_secs(5));
    let m = c.read();
    let v = m.array();
    assert_eq!(v[0].text(), kind);
    assert_eq!(v[1].text(), channel);
    assert_eq!(v[2].text(), payload);
}

#[test]
fn publish_crosses_a_mixed_cluster_in_both_directions() {
    let (o, r) = pair();
    let (mut ours, mut redis) = (o.conn(), r.conn());
    // "a" (15495) on ours, "b" (3300) on redis.
    ours.cmd(&["CLUSTER", "ADDSLOTSRANGE", "8192", "16383"]);
    redis.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]);
    let rbus = redis.cmd(&["CONFIG", "GET", "cluster-port"]).array()[1].text();
    let rport = r.port.to_string();
    assert_eq!(
        ours.cmd(&["CLUSTER", "MEET", "127.0.0.1", &rport, &rbus]),
        Reply::ok()
    );
    wait_joined(&mut ours, 2);
    wait_joined(&mut redis, 2);
    wait_state(&mut ours, "ok");
    wait_state(&mut redis, "ok");

    let mut sub_on_redis = subscribe(&r, "SUBSCRIBE", "news");
    let mut sub_on_ours = subscribe(&o, "SUBSCRIBE", "news");
    // PUBLISH counts local receivers only, and reaches the other node.
    assert_eq!(ours.cmd(&["PUBLISH", "news", "from-ours"]).int(), 1);
    expect_message(&mut sub_on_redis, "message", "news", "from-ours");
    expect_message(&mut sub_on_ours, "message", "news", "from-ours");
    assert_eq!(redis.cmd(&["PUBLISH", "news", "from-redis"]).int(), 1);
    expect_message(&mut sub_on_ours, "message", "news", "from-redis");
    expect_message(&mut sub_on_redis, "message", "news", "from-redis");

    // Shard channels live with their slot's master.
    let moved = redis.cmd(&["SPUBLISH", "a", "x"]);
    assert_eq!(
        moved,
        Reply::Error(format!("MOVED 15495 127.0.0.1:{}", o.port))
    );
    let moved = ours.cmd(&["SPUBLISH", "b", "x"]);
    assert_eq!(
        moved,
        Reply::Error(format!("MOVED 3300 127.0.0.1:{}", r.port))
    );
    let mut ssub = subscribe(&o, "SSUBSCRIBE", "a");
    assert_eq!(ours.cmd(&["SPUBLISH", "a", "shard"]).int(), 1);
    expect_message(&mut ssub, "smessage", "a", "shard");
}

#[test]
fn announced_port_and_hostname_reach_peers_and_redirects() {
    let bus_a = free_port().to_string();
    let mut args_a = cluster_args(&bus_a);
    args_a.extend([
        "--cluster-announce-hostname".into(),
        "node-a.example".into(),
    ]);
    let a: Vec<&str> = args_a.iter().map(String::as_str).collect();
    let na = Server::start(&a);
    let bus_b = free_port().to_string();
    let mut args_b = cluster_args(&bus_b);
    // B announces a client port that is not the one it listens on, as
    // behind a NAT or a Kubernetes Service.
    args_b.extend([
        "--cluster-announce-port".into(),
        "6999".into(),
        "--cluster-announce-hostname".into(),
        "node-b.example".into(),
    ]);
    let b: Vec<&str> = args_b.iter().map(String::as_str).collect();
    let nb = Server::start(&b);
    let (mut ca, mut cb) = (na.conn(), nb.conn());
    ca.cmd(&["CLUSTER", "ADDSLOTSRANGE", "8192", "16383"]);
    cb.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]);
    let port_b = nb.port.to_string();
    assert_eq!(
        ca.cmd(&["CLUSTER", "MEET", "127.0.0.1", &port_b, &bus_b]),
        Reply::ok()
    );
    wait_joined(&mut ca, 2);
    wait_joined(&mut cb, 2);
    wait_state(&mut ca, "ok");
    let nodes = ca.cmd(&["CLUSTER", "NODES"]).text();
    let line_b = nodes.lines().find(|l| !l.contains("myself")).unwrap();
    assert!(
        line_b.contains(&format!("127.0.0.1:6999@{bus_b},node-b.example")),
        "{line_b}"
    );
    // "b" (slot 3300) lives on B: redirected to its announced port.
    assert_eq!(
        ca.cmd(&["GET", "b"]),
        Reply::Error("MOVED 3300 127.0.0.1:6999".into())
    );
    // With hostnames preferred, redirects and CLUSTER SLOTS name hosts.
    ca.cmd(&[
        "CONFIG",
        "SET",
        "cluster-preferred-endpoint-type",
        "hostname",
    ]);
    assert_eq!(
        ca.cmd(&["GET", "b"]),
        Reply::Error("MOVED 3300 node-b.example:6999".into())
    );
    let slots = ca.cmd(&["CLUSTER", "SLOTS"]);
    let first = slots.array()[0].array();
    assert_eq!(first[2].array()[0].text(), "node-b.example");
    assert_eq!(first[2].array()[1].int(), 6999);
    // The hostname is kept in nodes.conf across a save.
    assert_eq!(ca.cmd(&["CLUSTER", "SAVECONFIG"]), Reply::ok());
    let conf = std::fs::read_to_string(na.dir().join("nodes.conf")).unwrap();
    assert!(conf.contains(",node-b.example "), "{conf}");
    assert!(conf.contains("vars currentEpoch"), "{conf}");
}

#[test]
fn corrupt_nodes_conf_stops_start_up_and_is_kept() {
    for bad in [&b"garbage line here\n"[..], &b"\xff\xfe\n"[..]] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes.conf");
        std::fs::write(&path, bad).unwrap();
        let port = free_port().to_string();
        let bus = free_port().to_string();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shardline-node"))
            .args(["--port", &port, "--bind", "127.0.0.1", "--dir"])
            .arg(dir.path())
            .args(["--cluster-enabled", "yes", "--cluster-port", &bus])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("node started on a corrupt nodes.conf");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!status.success());
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(err.contains("corrupted cluster config file"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bad, "the file was rewritten");
    }
}
