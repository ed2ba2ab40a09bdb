//! Replicas in cluster mode with real processes: `redis-cli --cluster
//! create --cluster-replicas 1` over our nodes, READONLY reads on replicas,
//! mixed master/replica pairs with redis-server 7.0, and CLUSTER REPLICATE
//! errors compared with redis.
//!
//! Addresses: 127.0.111.x .. 127.0.113.x.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::cluster::{index_of, key_slot, need, redis_cli, replica_layout, Cluster, Kind, CLI};
use common::Reply;

use Kind::{Ours, Redis};

const NODE_TIMEOUT: u64 = 2000;

/// On replica `r` of master `m`: READONLY + GET of `key` returns `want`
/// (waiting for replication), and without READONLY a GET is MOVED to `m`.
fn check_replica_reads(c: &Cluster, r: usize, m: usize, key: &str, want: &str) {
    let slot = key_slot(key.as_bytes());
    c.wait_for(
        &format!("{key} to reach the replica {}", c[r].name()),
        Duration::from_secs(20),
        |c| {
            let mut conn = c[r].conn();
            assert_eq!(conn.cmd(&["READONLY"]), Reply::ok());
            match conn.cmd(&["GET", key]) {
                Reply::Bulk(v) if v == want.as_bytes() => Ok(()),
                other => Err(format!("READONLY GET {key}: {other:?}")),
            }
        },
    );
    assert_eq!(
        c[r].cmd(&["GET", key]),
        Reply::Error(format!("MOVED {slot} {}", c[m].addr())),
        "GET {key} without READONLY on {}",
        c[r].name()
    );
    // Writes are redirected even with READONLY.
    let mut conn = c[r].conn();
    conn.cmd(&["READONLY"]);
    assert_eq!(
        conn.cmd(&["SET", key, "x"]),
        Reply::Error(format!("MOVED {slot} {}", c[m].addr()))
    );
    // READWRITE turns the redirections back on for reads.
    conn.cmd(&["READWRITE"]);
    assert!(conn.cmd(&["GET", key]).is_error());
}

#[test]
fn cluster_create_with_replicas_serves_readonly_reads() {
    need(CLI);
    let c = Cluster::start(111, NODE_TIMEOUT, &[Ours; 6]);
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.addr()).collect();
    let mut args = vec!["--cluster", "create"];
    args.extend(addrs.iter().map(String::as_str));
    args.extend(["--cluster-replicas", "1", "--cluster-yes"]);
    let (ok, out) = redis_cli(&args);
    assert!(
        ok,
        "redis-cli --cluster create failed:\n{out}\n{}",
        c.dump()
    );
    let all: Vec<usize> = (0..6).collect();
    let mut pairs = BTreeMap::new();
    c.wait_for("3 masters and 3 replicas", Duration::from_secs(40), |c| {
        pairs = replica_layout(c, &all, 3, 3)?;
        Ok(())
    });

    // Every replica knows it is one.
    for (r, m) in &pairs {
        let ri = index_of(&c, r);
        let role = c[ri].cmd(&["ROLE"]);
        assert_eq!(
            role.array()[0],
            Reply::bulk("slave"),
            "ROLE of {r}: {role:?}"
        );
        let mi = index_of(&c, m);
        let reps = c[mi].cmd(&["CLUSTER", "REPLICAS", m]);
        assert_eq!(reps.array().len(), 1, "CLUSTER REPLICAS {m}: {reps:?}");
        assert!(reps.array()[0].text().starts_with(r.as_str()));
    }

    // 1000 keys through a cluster client.
    let client = redis::cluster::ClusterClient::new(vec![format!("redis://{}/", c[0].addr())])
        .expect("cluster client");
    let mut con = client.get_connection().expect("cluster connection");
    for i in 0..1000 {
        let () = redis::cmd("SET")
            .arg(format!("k:{i}"))
            .arg(format!("v{i}"))
            .query(&mut con)
            .unwrap_or_else(|e| panic!("SET k:{i}: {e}\n{}", c.dump()));
    }

    // Each replica serves its master's keys to READONLY clients.
    for (r, m) in &pairs {
        let (ri, mi) = (index_of(&c, r), index_of(&c, m));
        let lines = c[ri].nodes().unwrap();
        let master_line = lines.iter().find(|l| &l.id == m).unwrap();
        let keys: Vec<usize> = (0..1000)
            .filter(|i| master_line.owns(key_slot(format!("k:{i}").as_bytes())))
            .collect();
        assert!(!keys.is_empty());
        for &i in keys.iter().step_by(37) {
            check_replica_reads(&c, ri, mi, &format!("k:{i}"), &format!("v{i}"));
        }
        // Every key arrived.
        c.wait_for("DBSIZE of the replica", Duration::from_secs(20), |c| {
            let (a, b) = (c[ri].cmd(&["DBSIZE"]), c[mi].cmd(&["DBSIZE"]));
            if a == b && a == Reply::Int(keys.len() as i64) {
                Ok(())
            } else {
                Err(format!("replica {a:?}, master {b:?}, want {}", keys.len()))
            }
        });
    }

    let (ok, out) = redis_cli(&["--cluster", "check", &addrs[0]]);
    assert!(ok, "redis-cli --cluster check failed:\n{out}");
    assert!(
        out.contains("[OK] All 16384 slots covered."),
        "check output:\n{out}"
    );

    // CLUSTER RESET on a replica makes it an empty master.
    let (r, _) = pairs.iter().next().unwrap();
    let ri = index_of(&c, r);
    assert_eq!(c[ri].cmd(&["CLUSTER", "RESET"]), Reply::ok());
    assert_eq!(c[ri].cmd(&["DBSIZE"]), Reply::Int(0));
    assert_eq!(c[ri].cmd(&["ROLE"]).array()[0], Reply::bulk("master"));
    let me = c[ri].nodes().unwrap();
    assert_eq!(me.len(), 1);
    assert!(me[0].has_flag("master"), "{me:?}");
}

#[test]
fn mixed_replicas_with_redis_server() {
    // 0: our master, 1: redis replica of 0; 2: redis master, 3: our
    // replica of 2.
    let c = Cluster::start(112, NODE_TIMEOUT, &[Ours, Redis, Redis, Ours]);
    c.assign_slots(&[0, 2]);
    c.meet(0, 1);
    c.meet(0, 2);
    c.meet(2, 3);
    c.meet(1, 3);
    let all: Vec<usize> = (0..4).collect();
    c.wait_for(
        "4 masters that know each other",
        Duration::from_secs(30),
        |c| replica_layout(c, &all, 4, 0).map(|_| ()),
    );
    let (id0, id2) = (c[0].myid(), c[2].myid());
    assert_eq!(c[1].cmd(&["CLUSTER", "REPLICATE", &id0]), Reply::ok());
    assert_eq!(c[3].cmd(&["CLUSTER", "REPLICATE", &id2]), Reply::ok());
    let mut pairs = BTreeMap::new();
    c.wait_for("2 masters and 2 replicas", Duration::from_secs(30), |c| {
        pairs = replica_layout(c, &all, 2, 2)?;
        Ok(())
    });
    assert_eq!(pairs.get(&c[1].myid()), Some(&id0));
    assert_eq!(pairs.get(&c[3].myid()), Some(&id2));
    // The redis node shows our replica as `slave <id>`.
    let line = c[2]
        .nodes_text()
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&c[3].myid()))
        .unwrap()
        .to_string();
    assert!(line.contains(&format!(" slave {id2} ")), "{line}");

    // Data written on each master reaches its replica.
    let lines = c[0].nodes().unwrap();
    let owns = |id: &str, s: u16| lines.iter().any(|l| l.id == id && l.owns(s));
    let keys_of = |id: &str, n: usize| -> Vec<String> {
        (0..100_000)
            .map(|i| format!("x{i}"))
            .filter(|k| owns(id, key_slot(k.as_bytes())))
            .take(n)
            .collect()
    };
    for (m, id) in [(0usize, &id0), (2, &id2)] {
        for k in keys_of(id, 50) {
            assert_eq!(c[m].cmd(&["SET", &k, "v"]), Reply::ok(), "SET {k}");
        }
    }
    for (r, m) in [(1usize, 0usize), (3, 2)] {
        c.wait_for("the replica's DBSIZE", Duration::from_secs(20), |c| {
            let (a, b) = (c[r].cmd(&["DBSIZE"]), c[m].cmd(&["DBSIZE"]));
            if a == b && a.int() > 0 {
                Ok(())
            } else {
                Err(format!("replica {a:?} master {b:?}"))
            }
        });
    }
    // READONLY reads on our replica of the redis master, and on the redis
    // replica of our master.
    let (x0, x2) = (keys_of(&id0, 1).remove(0), keys_of(&id2, 1).remove(0));
    assert_eq!(c[0].cmd(&["SET", &x0, "ours"]), Reply::ok());
    assert_eq!(c[2].cmd(&["SET", &x2, "theirs"]), Reply::ok());
    check_replica_reads(&c, 3, 2, &x2, "theirs");
    check_replica_reads(&c, 1, 0, &x0, "ours");
}

#[test]
fn cluster_replicate_errors_match_redis() {
    // Two separate two-node clusters: ours (0, 1) and redis (2, 3).
    // Partial coverage keeps them up, so that a key can be written.
    let mut c = Cluster::new(113, NODE_TIMEOUT);
    for kind in [Ours, Ours, Redis, Redis] {
        c.add(kind, &["--cluster-require-full-coverage", "no"], &[]);
    }
    c.meet(0, 1);
    c.meet(2, 3);
    for pair in [[0usize, 1], [2, 3]] {
        c.wait_for("the pair to meet", Duration::from_secs(20), |c| {
            for i in pair {
                let lines = c[i].nodes()?;
                if lines.len() != 2 || lines.iter().any(|l| l.has_flag("handshake")) {
                    return Err(format!("{}: {lines:?}", c[i].name()));
                }
            }
            Ok(())
        });
    }
    let mut diffs: Vec<String> = Vec::new();
    // Runs `args` (with `{me}` / `{peer}` replaced) on node a of each pair.
    let mut both = |a: usize, args: &[&str]| {
        let run = |base: usize| {
            let (me, peer) = (c[base + a].myid(), c[base + 1 - a].myid());
            let v: Vec<String> = args
                .iter()
                .map(|s| s.replace("{me}", &me).replace("{peer}", &peer))
                .collect();
            let v: Vec<&str> = v.iter().map(String::as_str).collect();
            c[base + a].cmd(&v)
        };
        let (ours, redis) = (run(0), run(2));
        if ours != redis {
            diffs.push(format!("{args:?}: ours {ours:?}, redis {redis:?}"));
        }
        ours
    };
    let zeros = "0".repeat(40);
    both(0, &["CLUSTER", "REPLICATE", &zeros]);
    both(0, &["CLUSTER", "REPLICATE", "nope"]);
    both(0, &["CLUSTER", "REPLICATE"]);
    both(0, &["CLUSTER", "REPLICATE", "a", "b"]);
    both(0, &["CLUSTER", "REPLICATE", "{me}"]);
    // A master with slots.
    both(0, &["CLUSTER", "ADDSLOTS", "100"]);
    both(0, &["CLUSTER", "REPLICATE", "{peer}"]);
    // A master with keys but no slots.
    let key = (0..100_000)
        .map(|n| format!("k{n}"))
        .find(|k| key_slot(k.as_bytes()) == 100)
        .unwrap();
    for i in [0usize, 2] {
        c.wait_for("cluster_state:ok", Duration::from_secs(20), |c| {
            match c[i].info_field("cluster_state")?.as_str() {
                "ok" => Ok(()),
                other => Err(other.to_string()),
            }
        });
    }
    both(0, &["SET", &key, "v"]);
    both(0, &["CLUSTER", "DELSLOTS", "100"]);
    both(0, &["CLUSTER", "REPLICATE", "{peer}"]);
    both(0, &["FLUSHALL"]);
    // Node 1 replicates node 0; then node 0 may not replicate node 1.
    let ok = both(1, &["CLUSTER", "REPLICATE", "{peer}"]);
    assert_eq!(ok, Reply::ok());
    for base in [0usize, 2] {
        let r = c[base + 1].myid();
        c.wait_for(
            "the master to see its replica",
            Duration::from_secs(20),
            |c| {
                let lines = c[base].nodes()?;
                if lines.iter().any(|l| l.id == r && l.has_flag("slave")) {
                    Ok(())
                } else {
                    Err(format!("{lines:?}"))
                }
            },
        );
    }
    both(0, &["CLUSTER", "REPLICATE", "{peer}"]);
    // A replica may switch back to master-less only via RESET; replicating
    // the same master again is fine.
    both(1, &["CLUSTER", "REPLICATE", "{peer}"]);
    let reps = |i: usize| {
        c[i].cmd(&["CLUSTER", "REPLICAS", &c[i].myid()])
            .array()
            .len()
    };
    assert_eq!((reps(0), reps(2)), (1, 1));
    assert!(
        diffs.is_empty(),
        "differences from redis:\n{}",
        diffs.join("\n")
    );
}
