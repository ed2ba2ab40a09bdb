//! Graceful shutdown: SHUTDOWN's options and errors (compared with
//! redis-server 7.0), a master waiting for its replicas before it exits
//! (SHUTDOWN and SIGTERM) under writes, NOW, ABORT, a second SIGINT, and
//! the FAILOVER extension handing a cluster master's slots to its replica
//! before the process exits.
//!
//! Cluster addresses: 127.0.141.x .. 127.0.142.x.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, Kind};
use common::writer::{verify, Writer};
use common::{Conn, Reply, Server};

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is a
    // child of this test process that has not been reaped.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

/// Our master and our replica of it, link up.
fn pair(master_args: &[&str]) -> (Server, Server) {
    let m = Server::start(master_args);
    let port = m.port.to_string();
    let r = Server::start(&["--replicaof", "127.0.0.1", &port]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Up on both sides: the master counts the replica as online (a
        // SHUTDOWN that came earlier would not wait for it).
        let info = r.conn().cmd(&["INFO", "replication"]);
        let minfo = m.conn().cmd(&["INFO", "replication"]);
        if common::info_field(&info, "master_link_status").as_deref() == Some("up")
            && common::info_field(&minfo, "slave0").is_some_and(|v| v.contains("state=online"))
        {
            return (m, r);
        }
        assert!(Instant::now() < deadline, "replica link never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shutdown_errors_match_redis() {
    let ours = Server::start(&[]);
    let redis = Server::start_redis();
    for args in [
        vec!["SHUTDOWN", "ABORT"],
        vec!["SHUTDOWN", "SAVE", "NOSAVE"],
        vec!["SHUTDOWN", "ABORT", "NOW"],
        vec!["SHUTDOWN", "BOGUS"],
        vec!["SHUTDOWN", "NOW", "NOSAVE", "BOGUS"],
    ] {
        let a = ours.conn().cmd(&args);
        let b = redis.conn().cmd(&args);
        assert_eq!(a, b, "{args:?}");
        assert!(a.is_error());
    }
    // Our extension parses in the config too.
    let mut c = ours.conn();
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "shutdown-on-sigterm", "nosave failover"]),
        Reply::ok()
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "shutdown-on-sigterm"]),
        Reply::Array(vec![
            Reply::bulk("shutdown-on-sigterm"),
            Reply::bulk("nosave failover")
        ])
    );
    assert!(c
        .cmd(&["CONFIG", "SET", "shutdown-on-sigterm", "later"])
        .is_error());
    assert_eq!(
        common::info_field(&c.cmd(&["INFO", "server"]), "shutdown_in_milliseconds").as_deref(),
        Some("0")
    );
}

#[test]
fn shutdown_nosave_exits() {
    let mut s = Server::start(&[]);
    let mut c = s.conn();
    c.set_timeout(Duration::from_secs(5));
    let _ = c.try_call(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(s.exited_within(Duration::from_secs(5)));
    assert!(Conn::try_connect(s.port).is_err());
}

/// A writer on the master, then `stop` (SHUTDOWN or a signal): the master
/// exits, and every acknowledged write is on the replica.
fn master_waits_for_its_replica(stop: impl FnOnce(&Server)) {
    let (mut m, r) = pair(&[]);
    let writer = Writer::start(vec![m.addr()], "sd");
    assert!(writer.wait_acks(2000, Duration::from_secs(10)));
    stop(&m);
    assert!(
        m.exited_within(Duration::from_secs(15)),
        "master did not exit"
    );
    let rec = writer.stop();
    assert!(
        m.log_text()
            .contains("Waiting for replicas before shutting down"),
        "{}",
        m.log_text()
    );
    verify(&rec, vec![r.addr()]).unwrap_or_else(|e| panic!("lost writes: {e}"));
}

#[test]
fn shutdown_waits_until_the_replica_has_every_write() {
    master_waits_for_its_replica(|m| {
        let mut c = m.conn();
        c.set_timeout(Duration::from_secs(15));
        // The caller is blocked until the process exits.
        assert!(c.try_call(&[b"SHUTDOWN"]).is_err());
    });
}

#[test]
fn sigterm_waits_until_the_replica_has_every_write() {
    master_waits_for_its_replica(|m| signal(m.pid(), libc::SIGTERM));
}

#[test]
fn shutdown_now_does_not_wait_and_abort_cancels_a_wait() {
    let (mut m, r) = pair(&["--shutdown-timeout", "10"]);
    assert_eq!(m.conn().cmd(&["SET", "k", "1"]), Reply::ok());
    signal(r.pid(), libc::SIGSTOP);
    // SHUTDOWN blocks (the replica cannot acknowledge) until ABORT.
    let port = m.port;
    let blocked = std::thread::spawn(move || {
        let mut c = Conn::connect(port);
        c.set_timeout(Duration::from_secs(20));
        c.try_call(&[b"SHUTDOWN"]).map_err(|e| e.to_string())
    });
    let mut c = m.conn();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = common::info_field(&c.cmd(&["INFO", "server"]), "shutdown_in_milliseconds")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        if left > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the shutdown never started waiting"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Writes wait meanwhile; reads do not.
    assert_eq!(c.cmd(&["GET", "k"]), Reply::bulk("1"));
    assert_eq!(m.conn().cmd(&["SHUTDOWN", "ABORT"]), Reply::ok());
    assert_eq!(
        blocked.join().unwrap(),
        Ok(Reply::Error(
            "ERR Errors trying to SHUTDOWN. Check logs.".into()
        ))
    );
    assert_eq!(c.cmd(&["SET", "k", "2"]), Reply::ok());
    // NOW: no wait for the stopped replica.
    let t = Instant::now();
    let mut c2 = m.conn();
    c2.set_timeout(Duration::from_secs(5));
    let _ = c2.try_call(&[b"SHUTDOWN", b"NOW"]);
    assert!(m.exited_within(Duration::from_secs(3)));
    assert!(t.elapsed() < Duration::from_secs(3));
    signal(r.pid(), libc::SIGCONT);
}

#[test]
fn a_second_sigint_exits_at_once() {
    let (mut m, r) = pair(&["--shutdown-timeout", "30"]);
    signal(r.pid(), libc::SIGSTOP);
    // A write the stopped replica cannot acknowledge: without it a replica
    // that had already acknowledged everything lets the shutdown go at
    // once (as redis does).
    assert_eq!(m.conn().cmd(&["SET", "k", "1"]), Reply::ok());
    signal(m.pid(), libc::SIGINT);
    // Waiting for the stopped replica...
    assert!(!m.exited_within(Duration::from_millis(500)));
    signal(m.pid(), libc::SIGINT);
    assert!(m.exited_within(Duration::from_secs(3)));
    assert!(m.log_text().contains("You insist"));
    signal(r.pid(), libc::SIGCONT);
}

#[test]
fn sigterm_with_failover_hands_the_slots_to_the_replica_first() {
    let mut c = Cluster::new(141, 2000);
    c.add(Kind::Ours, &["--shutdown-on-sigterm", "failover"], &[]);
    c.add(Kind::Ours, &[], &[]);
    assert_eq!(
        c[0].cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]),
        Reply::ok()
    );
    c.meet(0, 1);
    let id = c[0].myid();
    c.wait_for(
        "the replica to know its master",
        Duration::from_secs(20),
        |c| {
            let lines = c[1].nodes()?;
            common::cluster::healthy(&c[1].name(), &lines)?;
            lines
                .iter()
                .any(|l| l.id == id)
                .then_some(())
                .ok_or("not met".to_string())
        },
    );
    assert_eq!(c[1].cmd(&["CLUSTER", "REPLICATE", &id]), Reply::ok());
    c.wait_for("the replica link", Duration::from_secs(20), |c| {
        let info = c[1].try_cmd(&["INFO", "replication"], Duration::from_secs(1))?;
        (common::info_field(&info, "master_link_status").as_deref() == Some("up"))
            .then_some(())
            .ok_or("link down".to_string())
    });
    let seeds = vec![c[0].addr(), c[1].addr()];
    let writer = Writer::start(seeds.clone(), "sdf");
    assert!(writer.wait_acks(2000, Duration::from_secs(10)));
    let pid = c[0].pid().unwrap();
    signal(pid, libc::SIGTERM);
    // When the old master's process is gone, the replica already is the
    // master of every slot.
    let deadline = Instant::now() + Duration::from_secs(15);
    while c[0].is_running() {
        assert!(Instant::now() < deadline, "the master did not exit");
        std::thread::sleep(Duration::from_millis(1));
    }
    let role = c[1].cmd(&["ROLE"]);
    assert_eq!(role.array()[0], Reply::bulk("master"), "{}", c.logs(20));
    assert!(writer.wait_acks(500, Duration::from_secs(10)));
    let rec = writer.stop();
    verify(&rec, vec![c[1].addr()]).unwrap_or_else(|e| panic!("lost writes: {e}\n{}", c.logs(30)));
    assert!(
        c[0].log_text().contains("is now master of our slots"),
        "{}",
        c.logs(20)
    );
}
