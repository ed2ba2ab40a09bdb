//! Blocking list commands with several real clients: FIFO serving, wake-ups
//! by other connections, by MULTI/EXEC and by pushes to any of the keys,
//! BLMOVE chains, timeouts, clients killed or gone while blocked, blocking
//! commands inside MULTI. Most scenarios run against both shardline (four
//! shards, so a client's keys live on different shards) and redis-server
//! 7.0, and their raw transcripts are compared.

mod common;

use std::time::{Duration, Instant};

use common::{encode, info_int, wait_until, Conn, Server};

fn servers() -> (Server, Server) {
    (Server::start(&["--shards", "4"]), Server::start_redis())
}

fn blocked(c: &mut Conn) -> i64 {
    info_int(c, "clients", "blocked_clients")
}

/// Waits until exactly `n` clients are blocked.
fn wait_blocked(c: &mut Conn, n: i64) {
    assert!(
        wait_until(Duration::from_secs(5), || blocked(c) == n),
        "expected {n} blocked clients, have {}",
        blocked(c)
    );
}

fn send(c: &mut Conn, args: &[&str]) {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    c.send(&encode(&a));
}

fn raw(c: &mut Conn, args: &[&str]) -> String {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    String::from_utf8_lossy(&c.call_raw(&a)).into_owned()
}

fn read(c: &mut Conn) -> String {
    String::from_utf8_lossy(&c.read_raw()).into_owned()
}

/// Runs a scenario on both servers and checks they agree.
fn both(f: impl Fn(&Server) -> Vec<String>) -> Vec<String> {
    let (sl, rd) = servers();
    let a = f(&sl);
    let b = f(&rd);
    assert_eq!(a, b, "shardline vs redis");
    a
}

fn fifo_scenario(s: &Server) -> Vec<String> {
    let mut out = Vec::new();
    let mut p = s.conn();
    let mut cs: Vec<Conn> = (0..5).map(|_| s.conn()).collect();
    for (i, c) in cs.iter_mut().enumerate() {
        send(c, &["BLPOP", "q", "0"]);
        wait_blocked(&mut p, i as i64 + 1);
    }
    out.push(raw(
        &mut p,
        &["RPUSH", "q", "e0", "e1", "e2", "e3", "e4", "e5"],
    ));
    for c in cs.iter_mut() {
        out.push(read(c));
    }
    out.push(raw(&mut p, &["LRANGE", "q", "0", "-1"]));
    out.push(raw(&mut p, &["DEL", "q"]));
    // One LPUSH of several elements serves several clients, in order.
    for (i, c) in cs.iter_mut().take(3).enumerate() {
        send(c, &["BRPOP", "q", "0"]);
        wait_blocked(&mut p, i as i64 + 1);
    }
    out.push(raw(&mut p, &["LPUSH", "q", "a", "b"]));
    out.push(read(&mut cs[0]));
    out.push(read(&mut cs[1]));
    assert!(cs[2].nothing_within(Duration::from_millis(200)));
    out.push(raw(&mut p, &["EXISTS", "q"]));
    out.push(raw(&mut p, &["RPUSH", "q", "c"]));
    out.push(read(&mut cs[2]));
    wait_blocked(&mut p, 0);
    out
}

#[test]
fn fifo_fairness_five_clients() {
    let t = both(fifo_scenario);
    for (i, r) in t[1..6].iter().enumerate() {
        assert_eq!(r, &format!("*2\r\n$1\r\nq\r\n$2\r\ne{i}\r\n"));
    }
}

fn timeout_scenario(s: &Server, slack: f64) -> Vec<String> {
    let mut out = Vec::new();
    let mut c = s.conn();
    for (cmd, secs) in [
        (&["BLPOP", "nokey", "nokey2", "0.2"][..], 0.2),
        (&["BRPOP", "nokey", "0.15"][..], 0.15),
        (&["BLMOVE", "nokey", "dst", "LEFT", "RIGHT", "0.1"][..], 0.1),
        (&["BRPOPLPUSH", "nokey", "dst", "0.1"][..], 0.1),
        (
            &["BLMPOP", "0.3", "2", "nokey", "x", "LEFT", "COUNT", "2"][..],
            0.3,
        ),
    ] {
        for proto in ["2", "3"] {
            c.cmd(&["HELLO", proto]);
            let t0 = Instant::now();
            out.push(raw(&mut c, cmd));
            let el = t0.elapsed().as_secs_f64();
            assert!(
                el >= secs - 0.005 && el < secs + slack,
                "{cmd:?} took {el:.3}s, timeout {secs}"
            );
        }
    }
    out
}

#[test]
fn timeouts() {
    // Shardline times out within 100 ms; redis 7.0 notices timeouts on its
    // 10 Hz cron, hence the looser bound for it.
    let (sl, rd) = servers();
    let t = timeout_scenario(&sl, 0.1);
    assert_eq!(t, timeout_scenario(&rd, 0.25));
    // Every list blocking command times out with a null array in 7.0.
    assert_eq!(t[0], "*-1\r\n");
    assert_eq!(t[1], "_\r\n");
    assert_eq!(t[4], "*-1\r\n");
}

fn multi_scenario(s: &Server) -> Vec<String> {
    let mut out = Vec::new();
    let mut a = s.conn();
    let mut b = s.conn();
    send(&mut a, &["BLPOP", "k", "0"]);
    wait_blocked(&mut b, 1);
    // Served after EXEC, with the final state.
    out.push(raw(&mut b, &["MULTI"]));
    out.push(raw(&mut b, &["RPUSH", "k", "a", "b"]));
    out.push(raw(&mut b, &["LPOP", "k"]));
    out.push(raw(&mut b, &["EXEC"]));
    out.push(read(&mut a));
    out.push(raw(&mut b, &["EXISTS", "k"]));
    // A transaction that leaves the key empty serves nobody.
    send(&mut a, &["BLPOP", "k", "0"]);
    wait_blocked(&mut b, 1);
    out.push(raw(&mut b, &["MULTI"]));
    out.push(raw(&mut b, &["RPUSH", "k", "x"]));
    out.push(raw(&mut b, &["DEL", "k"]));
    out.push(raw(&mut b, &["EXEC"]));
    assert!(a.nothing_within(Duration::from_millis(200)));
    out.push(raw(&mut b, &["RPUSH", "k", "y"]));
    out.push(read(&mut a));
    // Blocking commands inside MULTI do not block.
    for proto in ["2", "3"] {
        b.cmd(&["HELLO", proto]);
        out.push(raw(&mut b, &["MULTI"]));
        for cmd in [
            &["BLPOP", "k", "0"][..],
            &["BRPOP", "k", "k2", "0"],
            &["BLMOVE", "k", "d", "LEFT", "LEFT", "0"],
            &["BRPOPLPUSH", "k", "d", "0"],
            &["BLMPOP", "0", "1", "k", "LEFT"],
        ] {
            out.push(raw(&mut b, cmd));
        }
        out.push(raw(&mut b, &["EXEC"]));
    }
    out
}

#[test]
fn wakeup_by_multi_exec() {
    let t = both(multi_scenario);
    assert_eq!(t[4], "*2\r\n$1\r\nk\r\n$1\r\nb\r\n");
}

fn keys_scenario(s: &Server) -> Vec<String> {
    let mut out = Vec::new();
    let mut a = s.conn();
    let mut b = s.conn();
    // k1..k4 hash to different shards of a 4-shard node.
    send(&mut a, &["BLPOP", "k1", "k2", "k3", "k4", "0"]);
    wait_blocked(&mut b, 1);
    out.push(raw(&mut b, &["RPUSH", "k3", "v"]));
    out.push(read(&mut a));
    // Served from the key that became ready first, not the first key.
    send(&mut a, &["BRPOP", "k1", "k2", "0"]);
    wait_blocked(&mut b, 1);
    out.push(raw(&mut b, &["MULTI"]));
    out.push(raw(&mut b, &["RPUSH", "k2", "x"]));
    out.push(raw(&mut b, &["RPUSH", "k1", "y"]));
    out.push(raw(&mut b, &["EXEC"]));
    out.push(read(&mut a));
    out.push(raw(&mut b, &["LRANGE", "k1", "0", "-1"]));
    out.push(raw(&mut b, &["DEL", "k1"]));
    // BLMPOP with COUNT.
    send(
        &mut a,
        &["BLMPOP", "0", "2", "k1", "k2", "LEFT", "COUNT", "3"],
    );
    wait_blocked(&mut b, 1);
    out.push(raw(&mut b, &["RPUSH", "k2", "a", "b", "c", "d"]));
    out.push(read(&mut a));
    out.push(raw(&mut b, &["LRANGE", "k2", "0", "-1"]));
    out.push(raw(&mut b, &["DEL", "k2"]));
    // A key turned into a string keeps the client blocked.
    send(&mut a, &["BLPOP", "k4", "0"]);
    wait_blocked(&mut b, 1);
    out.push(raw(&mut b, &["SET", "k4", "str"]));
    assert!(a.nothing_within(Duration::from_millis(200)));
    out.push(raw(&mut b, &["DEL", "k4"]));
    out.push(raw(&mut b, &["LPUSH", "k4", "z"]));
    out.push(read(&mut a));
    // Requests pipelined behind a blocked one run after it is served.
    a.send(&[encode(&[b"BLPOP", b"k1", b"0"]), encode(&[b"PING"])].concat());
    wait_blocked(&mut b, 1);
    out.push(raw(&mut b, &["RPUSH", "k1", "p"]));
    out.push(read(&mut a));
    out.push(read(&mut a));
    out
}

#[test]
fn wakeup_by_any_key() {
    let t = both(keys_scenario);
    assert_eq!(t[1], "*2\r\n$2\r\nk3\r\n$1\r\nv\r\n");
    assert_eq!(t[6], "*2\r\n$2\r\nk2\r\n$1\r\nx\r\n");
}

fn chain_scenario(s: &Server) -> Vec<String> {
    // k3 -> k2 -> k4, three different shards.
    let mut out = Vec::new();
    let mut a = s.conn();
    let mut b = s.conn();
    let mut c = s.conn();
    let mut p = s.conn();
    send(&mut a, &["BLMOVE", "k3", "k2", "RIGHT", "LEFT", "0"]);
    wait_blocked(&mut p, 1);
    send(&mut b, &["BRPOPLPUSH", "k2", "k4", "0"]);
    wait_blocked(&mut p, 2);
    send(&mut c, &["BLPOP", "k4", "0"]);
    wait_blocked(&mut p, 3);
    out.push(raw(&mut p, &["RPUSH", "k3", "v1", "v2"]));
    out.push(read(&mut a));
    out.push(read(&mut b));
    out.push(read(&mut c));
    for k in ["k3", "k2", "k4"] {
        out.push(raw(&mut p, &["LRANGE", k, "0", "-1"]));
    }
    // A rotation of a key onto itself wakes the next client of that key.
    send(&mut a, &["BLMOVE", "r", "r", "LEFT", "RIGHT", "0"]);
    wait_blocked(&mut p, 1);
    send(&mut b, &["BLPOP", "r", "0"]);
    wait_blocked(&mut p, 2);
    out.push(raw(&mut p, &["RPUSH", "r", "x"]));
    out.push(read(&mut a));
    out.push(read(&mut b));
    out.push(raw(&mut p, &["EXISTS", "r"]));
    out
}

#[test]
fn blmove_chain_wakeups() {
    let t = both(chain_scenario);
    assert_eq!(t[1], "$2\r\nv2\r\n");
    assert_eq!(t[2], "$2\r\nv2\r\n");
    assert_eq!(t[3], "*2\r\n$2\r\nk4\r\n$2\r\nv2\r\n");
}

fn killed_scenario(s: &Server) -> Vec<String> {
    let mut out = Vec::new();
    let mut p = s.conn();
    let mut a = s.conn();
    let id = a.cmd(&["CLIENT", "ID"]).int();
    send(&mut a, &["BLPOP", "k", "0"]);
    wait_blocked(&mut p, 1);
    out.push(raw(&mut p, &["CLIENT", "KILL", "ID", &id.to_string()]));
    wait_blocked(&mut p, 0);
    out.push(raw(&mut p, &["RPUSH", "k", "v"]));
    out.push(raw(&mut p, &["LRANGE", "k", "0", "-1"]));
    assert!(a.closed_within(Duration::from_secs(2)));
    // A connection closed while blocked.
    let mut b = s.conn();
    send(&mut b, &["BRPOPLPUSH", "k2", "d", "0"]);
    wait_blocked(&mut p, 1);
    drop(b);
    wait_blocked(&mut p, 0);
    out.push(raw(&mut p, &["RPUSH", "k2", "w"]));
    out.push(raw(&mut p, &["LRANGE", "k2", "0", "-1"]));
    out.push(raw(&mut p, &["EXISTS", "d"]));
    out
}

#[test]
fn killed_while_blocked_loses_nothing() {
    let t = both(killed_scenario);
    assert_eq!(t[2], "*1\r\n$1\r\nv\r\n");
    assert_eq!(t[4], "*1\r\n$1\r\nw\r\n");
}

/// Consumers with short timeouts, some killed or disconnected mid-wait,
/// race with producers: every element is consumed exactly once or still
/// in a list.
#[test]
fn no_element_lost_under_races() {
    let s = Server::start(&["--shards", "4"]);
    let port = s.port;
    let produced = 3000;
    let consumed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut handles = Vec::new();
    for t in 0..6 {
        let consumed = consumed.clone();
        handles.push(std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(6);
            let mut c = Conn::connect(port);
            let mut n = 0u32;
            while Instant::now() < deadline {
                n += 1;
                let r = if t % 2 == 0 {
                    c.cmd(&["BLPOP", "q1", "q2", "0.05"])
                } else {
                    c.cmd(&["BLMPOP", "0.05", "2", "q2", "q1", "RIGHT", "COUNT", "3"])
                };
                match r {
                    common::Reply::Array(v) if t % 2 == 0 => {
                        consumed.lock().unwrap().push(v[1].text());
                    }
                    common::Reply::Array(v) => {
                        for e in v[1].array() {
                            consumed.lock().unwrap().push(e.text());
                        }
                    }
                    _ => {}
                }
                if n % 7 == 0 {
                    // Leave while blocked (on q3, pushed to at the end):
                    // the wait must be given up.
                    let mut d = Conn::connect(port);
                    send(&mut d, &["BLPOP", "q3", "0"]);
                    std::thread::sleep(Duration::from_millis(2));
                    drop(d);
                }
            }
        }));
    }
    let mut p = Conn::connect(port);
    for i in 0..produced {
        let k = if i % 3 == 0 { "q2" } else { "q1" };
        p.cmd(&["RPUSH", k, &format!("e{i}")]);
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for h in handles {
        h.join().unwrap();
    }
    wait_blocked(&mut p, 0);
    assert_eq!(p.cmd(&["RPUSH", "q3", "a", "b", "c"]).int(), 3);
    assert_eq!(p.cmd(&["LLEN", "q3"]).int(), 3);
    let mut all = consumed.lock().unwrap().clone();
    for k in ["q1", "q2"] {
        for e in p.cmd(&["LRANGE", k, "0", "-1"]).array() {
            all.push(e.text());
        }
    }
    all.sort();
    let mut expected: Vec<String> = (0..produced).map(|i| format!("e{i}")).collect();
    expected.sort();
    assert_eq!(all.len(), expected.len());
    assert_eq!(all, expected);
}
