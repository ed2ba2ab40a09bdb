//! The admin library against real servers: shardline-node and redis-server
//! 7.0, alone and mixed.

mod common;

use std::time::{Duration, Instant};

use common::servers::{key_slot, start_servers, Kind, Server};
use shardline_operator::admin::Admin;
use shardline_operator::model::{MemberName, Observed, PlatformMember, Role, SlotRange};

fn admin() -> Admin {
    // RUST_LOG=shardline_operator=debug shows every command.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    Admin::new(None, Duration::from_secs(5))
}

fn addrs(servers: &[Server]) -> Vec<String> {
    servers.iter().map(|s| s.addr.clone()).collect()
}

/// Polls `check` (an async block producing `Result<(), String>`) until it
/// is `Ok` or `secs` pass; panics with the last message.
macro_rules! eventually {
    ($secs:expr, $check:expr) => {{
        let deadline = Instant::now() + Duration::from_secs($secs);
        loop {
            let r: Result<(), String> = $check.await;
            match r {
                Ok(()) => break,
                Err(e) if Instant::now() >= deadline => panic!("not within {}s: {e}", $secs),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }};
}

/// Every member knows every other one (none in handshake).
async fn all_know_all(admin: &mut Admin, addrs: &[String]) -> Result<(), String> {
    for a in addrs {
        let view = admin.observe_member(a).await.map_err(|e| e.to_string())?;
        for b in addrs {
            match view.node_at(b) {
                Some(n) if !n.handshake => {}
                _ => return Err(format!("{a} does not know {b} yet")),
            }
        }
    }
    Ok(())
}

/// Every member reports cluster_state ok.
async fn state_ok(admin: &mut Admin, addrs: &[String]) -> Result<(), String> {
    for a in addrs {
        let view = admin.observe_member(a).await.map_err(|e| e.to_string())?;
        if !view.state_ok {
            return Err(format!("{a}: cluster_state not ok"));
        }
    }
    Ok(())
}

/// Meets every server from the first, gives the first `masters` servers
/// equal shares of the slots, and makes each of the others a replica of
/// the masters in turn. Returns the node IDs.
async fn form_cluster(admin: &mut Admin, servers: &[Server], masters: usize) -> Vec<String> {
    let all = addrs(servers);
    for s in &servers[1..] {
        admin.meet(&all[0], &s.addr).await.expect("meet");
    }
    eventually!(10, all_know_all(admin, &all));
    let per = 16384 / masters as u32;
    for (i, s) in servers[..masters].iter().enumerate() {
        let a = i as u32 * per;
        let b = if i + 1 == masters { 16383 } else { a + per - 1 };
        admin
            .add_slots(&s.addr, &[(a as u16, b as u16)])
            .await
            .expect("add slots");
    }
    let mut ids = Vec::new();
    for s in servers {
        let view = admin.observe_member(&s.addr).await.expect("observe");
        ids.push(view.myself().expect("myself").id.clone());
    }
    for (i, s) in servers[masters..].iter().enumerate() {
        let master = &ids[i % masters];
        admin.replicate(&s.addr, master).await.expect("replicate");
    }
    eventually!(15, state_ok(admin, &all));
    ids
}

fn platform(servers: &[Server]) -> Vec<PlatformMember> {
    servers
        .iter()
        .enumerate()
        .map(|(i, s)| PlatformMember {
            name: MemberName::new(0, i as u32),
            addr: s.addr.clone(),
            running: true,
            up_to_date: true,
            host: None,
            zone: None,
        })
        .collect()
}

/// Every member sees a healthy cluster: state ok, the masters with their
/// slots, each replica of its master with the link up.
fn healthy(observed: &Observed, ids: &[String], masters: usize) -> Result<(), String> {
    for (i, m) in observed.members.values().enumerate() {
        let view = m
            .view
            .as_ref()
            .ok_or_else(|| format!("{} did not answer", m.platform.addr))?;
        if !view.state_ok {
            return Err(format!("{}: cluster_state not ok", m.platform.addr));
        }
        if m.node_id.as_deref() != Some(ids[i].as_str()) {
            return Err(format!("{}: node id {:?}", m.platform.addr, m.node_id));
        }
        for (j, id) in ids.iter().enumerate() {
            let n = view
                .node(id)
                .ok_or_else(|| format!("{} does not know {id}", m.platform.addr))?;
            let want_master = j < masters;
            if n.master != want_master {
                return Err(format!("{} sees {id} master={}", m.platform.addr, n.master));
            }
            if !want_master && n.master_id.as_deref() != Some(ids[(j - masters) % masters].as_str())
            {
                return Err(format!(
                    "{} sees {id} replicate {:?}",
                    m.platform.addr, n.master_id
                ));
            }
        }
        if i >= masters {
            if view.repl.role != Role::Replica || !view.repl.link_up {
                return Err(format!("{}: replication {:?}", m.platform.addr, view.repl));
            }
        } else if view.repl.role != Role::Master {
            return Err(format!("{}: not a master", m.platform.addr));
        }
    }
    Ok(())
}

async fn meet_add_slots_replicate_observe(net: u8, kind: Kind) {
    let servers = start_servers(net, &[kind, kind, kind]);
    let mut admin = admin();
    let ids = form_cluster(&mut admin, &servers, 2).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut previous = Observed::default();
    loop {
        let observed = admin.observe(platform(&servers), &previous).await;
        match healthy(&observed, &ids, 2) {
            Ok(()) => {
                let view = observed
                    .members
                    .values()
                    .next()
                    .and_then(|m| m.view.clone());
                let view = view.expect("view");
                assert_eq!(view.migrateslots, kind == Kind::Shardline);
                assert_eq!(
                    view.node(&ids[0]).map(|n| n.slots.clone()),
                    Some(vec![(0, 8191)])
                );
                assert_eq!(
                    view.node(&ids[1]).map(|n| n.slots.clone()),
                    Some(vec![(8192, 16383)])
                );
                break;
            }
            Err(e) if Instant::now() >= deadline => panic!("cluster not healthy: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
        previous = observed;
    }
    // Idempotent: asking again is fine.
    admin
        .add_slots(&servers[0].addr, &[(0, 100)])
        .await
        .expect("add slots again");
    admin
        .replicate(&servers[2].addr, &ids[0])
        .await
        .expect("replicate again");
    // A master with slots cannot become a replica.
    let e = admin
        .replicate(&servers[0].addr, &ids[1])
        .await
        .expect_err("master with slots");
    assert!(e.to_string().contains("still owns slots"), "{e}");
    // A member that does not answer keeps its previous node id.
    let observed = admin.observe(platform(&servers), &previous).await;
    let mut servers = servers;
    servers[2].kill();
    let after = admin.observe(platform(&servers), &observed).await;
    let m = after.members.values().nth(2).expect("member");
    assert!(m.view.is_none());
    assert_eq!(m.node_id.as_deref(), Some(ids[2].as_str()));
    assert!(!admin.ping(&servers[2].addr).await);
    assert!(admin.ping(&servers[0].addr).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_formed_cluster_shardline() {
    meet_add_slots_replicate_observe(70, Kind::Shardline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_formed_cluster_redis() {
    meet_add_slots_replicate_observe(71, Kind::Redis).await;
}

/// `n` keys whose slots are in `lo..=hi`.
fn keys_in(lo: u16, hi: u16, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("key:{i}"))
        .filter(|k| (lo..=hi).contains(&key_slot(k.as_bytes())))
        .take(n)
        .collect()
}

async fn connection(addr: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}"))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

async fn write_keys(addr: &str, keys: &[String]) {
    let mut c = connection(addr).await;
    for chunk in keys.chunks(500) {
        let mut p = redis::pipe();
        for k in chunk {
            p.cmd("SET").arg(k).arg(format!("value of {k}")).ignore();
        }
        let _: () = p.query_async(&mut c).await.expect("write keys");
    }
}

/// Every key reads back from `addr`.
async fn check_keys(addr: &str, keys: &[String]) {
    let mut c = connection(addr).await;
    for chunk in keys.chunks(500) {
        let mut p = redis::pipe();
        for k in chunk {
            p.cmd("GET").arg(k);
        }
        let values: Vec<Option<String>> = p.query_async(&mut c).await.expect("read keys");
        for (k, v) in chunk.iter().zip(values) {
            assert_eq!(
                v.as_deref(),
                Some(format!("value of {k}").as_str()),
                "key {k} on {addr}"
            );
        }
    }
}

/// Every member says `owner` owns every slot of `ranges`, none open.
async fn owner_agreed(
    admin: &mut Admin,
    all: &[String],
    owner: &str,
    ranges: &[SlotRange],
) -> Result<(), String> {
    for a in all {
        let view = admin.observe_member(a).await.map_err(|e| e.to_string())?;
        let n = view
            .node(owner)
            .ok_or_else(|| format!("{a} does not know {owner}"))?;
        for &(lo, hi) in ranges {
            if !(lo..=hi).all(|s| n.owns(s)) {
                return Err(format!("{a} does not show {owner} owning {lo}-{hi}"));
            }
        }
        let me = view.myself().ok_or("no myself")?;
        if !me.migrating.is_empty() || !me.importing.is_empty() {
            return Err(format!(
                "{a} has open slots {:?} {:?}",
                me.migrating, me.importing
            ));
        }
    }
    Ok(())
}

/// A two-master cluster (plus a third master with no slots, to be told),
/// 2000 keys in slots 0-999 of the first; moves them to the second.
async fn move_slots_between(net: u8, from: Kind, to: Kind, half_done: bool) {
    let servers = start_servers(net, &[from, to, Kind::Redis]);
    let mut admin = admin();
    let all = addrs(&servers);
    let ids = form_cluster(&mut admin, &servers[..2], 2).await;
    admin.meet(&all[0], &all[2]).await.expect("meet the third");
    eventually!(10, all_know_all(&mut admin, &all));
    let keys = keys_in(0, 999, 2000);
    write_keys(&all[0], &keys).await;
    let ranges = [(0u16, 999u16)];
    if half_done {
        // An interrupted move: slots 0-9 open, some of their keys moved.
        for s in 0..10u16 {
            let mut c = connection(&all[1]).await;
            let _: () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(s)
                .arg("IMPORTING")
                .arg(&ids[0])
                .query_async(&mut c)
                .await
                .expect("importing");
            let mut c = connection(&all[0]).await;
            let _: () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(s)
                .arg("MIGRATING")
                .arg(&ids[1])
                .query_async(&mut c)
                .await
                .expect("migrating");
        }
        let by_hand: Vec<&String> = keys
            .iter()
            .filter(|k| key_slot(k.as_bytes()) < 10)
            .step_by(2)
            .collect();
        assert!(!by_hand.is_empty());
        // MIGRATE takes the keys of one slot at a time.
        let mut c = connection(&all[0]).await;
        for s in 0..10u16 {
            let mut m = redis::cmd("MIGRATE");
            m.arg(&servers[1].ip)
                .arg(servers[1].port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS");
            let mut any = false;
            for k in by_hand.iter().filter(|k| key_slot(k.as_bytes()) == s) {
                m.arg(k.as_str());
                any = true;
            }
            if any {
                let _: redis::Value = m.query_async(&mut c).await.expect("migrate by hand");
            }
        }
        // A stale copy of a key still on the source is on the target (a
        // MIGRATE whose reply was lost): the move replaces it (BUSYKEY).
        let stale = keys
            .iter()
            .find(|k| key_slot(k.as_bytes()) < 10 && !by_hand.contains(k))
            .expect("a key left on the source");
        let mut t = connection(&all[1]).await;
        let _: () = redis::pipe()
            .cmd("ASKING")
            .ignore()
            .cmd("SET")
            .arg(stale)
            .arg("stale")
            .ignore()
            .query_async(&mut t)
            .await
            .expect("stale copy");
        let view = admin.observe_member(&all[0]).await.expect("observe");
        assert_eq!(view.myself().map(|n| n.migrating.len()), Some(10));
        assert!(!view.keys_in_slot.is_empty());
    }
    let mut calls = Vec::new();
    let moved = admin
        .move_slots(&all[0], &all[1], &ranges, &all, &mut |done, total| {
            calls.push((done, total))
        })
        .await
        .expect("move slots");
    assert!(moved > 0 && moved <= 2000, "moved {moved}");
    assert_eq!(calls.last(), Some(&(1000, 1000)));
    eventually!(10, owner_agreed(&mut admin, &all, &ids[1], &ranges));
    check_keys(&all[1], &keys).await;
    // Moving again is a no-op.
    let moved = admin
        .move_slots(&all[0], &all[1], &ranges, &all, &mut |_, _| {})
        .await
        .expect("move again");
    assert_eq!(moved, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_slots_shardline_to_shardline() {
    move_slots_between(72, Kind::Shardline, Kind::Shardline, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_slots_redis_to_redis() {
    move_slots_between(73, Kind::Redis, Kind::Redis, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_slots_mixed() {
    move_slots_between(74, Kind::Redis, Kind::Shardline, false).await;
    move_slots_between(75, Kind::Shardline, Kind::Redis, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_slots_finishes_half_done_move() {
    move_slots_between(76, Kind::Redis, Kind::Redis, true).await;
    move_slots_between(77, Kind::Shardline, Kind::Shardline, true).await;
}

async fn failover_flips_roles(net: u8, kind: Kind) {
    let servers = start_servers(net, &[kind, kind]);
    let mut admin = admin();
    let ids = form_cluster(&mut admin, &servers, 1).await;
    let (m, r) = (&servers[0].addr, &servers[1].addr);
    write_keys(m, &keys_in(0, 16383, 100)).await;
    eventually!(15, async {
        let v = admin.observe_member(r).await.map_err(|e| e.to_string())?;
        if v.repl.link_up {
            Ok(())
        } else {
            Err(format!("replica link down: {:?}", v.repl))
        }
    });
    admin
        .failover(r, m, Duration::from_secs(15))
        .await
        .expect("failover");
    let new = admin.observe_member(r).await.expect("observe");
    assert_eq!(new.repl.role, Role::Master);
    assert_eq!(
        new.myself().map(|n| n.slots.clone()),
        Some(vec![(0, 16383)])
    );
    let old = admin.observe_member(m).await.expect("observe");
    assert_eq!(old.repl.role, Role::Replica);
    assert_eq!(
        old.myself().and_then(|n| n.master_id.clone()),
        Some(ids[1].clone())
    );
    // Confirming again (a retry) succeeds without another failover.
    admin
        .failover(r, m, Duration::from_secs(5))
        .await
        .expect("failover again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_flips_roles_shardline() {
    failover_flips_roles(78, Kind::Shardline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_flips_roles_redis() {
    failover_flips_roles(79, Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_removes_a_node_everywhere() {
    // 127.0.70.1-3 belong to observe_formed_cluster_shardline.
    let servers: Vec<Server> = [Kind::Shardline, Kind::Redis, Kind::Shardline]
        .iter()
        .enumerate()
        .map(|(i, &k)| Server::start(k, &format!("127.0.70.{}", 11 + i)))
        .collect();
    let mut admin = admin();
    let ids = form_cluster(&mut admin, &servers, 2).await;
    let all = addrs(&servers);
    let mut servers = servers;
    servers[2].kill();
    let alive = all[..2].to_vec();
    // The list may name the node itself (skipped) and unknown nodes are
    // fine.
    admin.forget(&ids[2], &alive).await.expect("forget");
    admin.forget(&ids[2], &alive).await.expect("forget again");
    for a in &alive {
        let view = admin.observe_member(a).await.expect("observe");
        assert!(view.node(&ids[2]).is_none(), "{a} still knows {}", ids[2]);
    }
    // An unreachable member is reported.
    let e = admin
        .forget(&ids[2], &all)
        .await
        .expect_err("unreachable member");
    assert!(e.to_string().contains(&all[2]), "{e}");
}
