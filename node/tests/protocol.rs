//! Wire protocol tests: pipelining, inline commands, RESP3, protocol errors,
//! large values, connection limits and idle timeouts.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{encode, info_int, wait_until, Conn, Reply, Server};

/// Sends `input` on a fresh connection and returns everything the server
/// wrote back until it closed the connection (panics if it stays open).
fn reply_then_close(port: u16, input: &[u8]) -> Vec<u8> {
    let mut c = Conn::connect(port);
    c.send(input);
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "connection should be closed after {:?}",
        String::from_utf8_lossy(input)
    );
    c.pending().to_vec()
}

#[test]
fn pipelining_thousands_of_commands_in_one_write() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    let n = 5000;
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend_from_slice(&encode(&[b"INCR", b"ctr"]));
        let k = format!("k{i}");
        let v = format!("v{i}");
        batch.extend_from_slice(&encode(&[b"SET", k.as_bytes(), v.as_bytes()]));
        batch.extend_from_slice(&encode(&[b"GET", k.as_bytes()]));
    }
    c.send(&batch);
    for i in 0..n {
        assert_eq!(c.read(), Reply::Int(i + 1), "INCR reply {i}");
        assert_eq!(c.read(), Reply::ok());
        assert_eq!(c.read(), Reply::bulk(&format!("v{i}")));
    }
    assert!(c.nothing_within(Duration::from_millis(100)));
}

#[test]
fn pipelined_requests_split_across_writes() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    let mut batch = Vec::new();
    for i in 0..200 {
        let v = format!("{i}");
        batch.extend_from_slice(&encode(&[b"SET", b"x", v.as_bytes()]));
        batch.extend_from_slice(&encode(&[b"GET", b"x"]));
    }
    for chunk in batch.chunks(7) {
        c.send(chunk);
    }
    for i in 0..200 {
        assert_eq!(c.read(), Reply::ok());
        assert_eq!(c.read(), Reply::bulk(&i.to_string()));
    }
}

#[test]
fn inline_commands() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    c.send(b"PING\r\n");
    assert_eq!(c.read_raw(), b"+PONG\r\n");
    c.send(b"set a \"b c\"\n");
    assert_eq!(c.read_raw(), b"+OK\r\n");
    c.send(b"GET a\r\n");
    assert_eq!(c.read_raw(), b"$3\r\nb c\r\n");
    // Blank lines are skipped; quoting with escapes and single quotes.
    c.send(b"\r\n   \r\nset b 'x y' \r\nget b\r\nset c \"\\x41\\n\"\nget c\n");
    assert_eq!(c.read_raw(), b"+OK\r\n");
    assert_eq!(c.read_raw(), b"$3\r\nx y\r\n");
    assert_eq!(c.read_raw(), b"+OK\r\n");
    assert_eq!(c.read_raw(), b"$2\r\nA\n\r\n");
    // Inline and multibulk requests mixed in one write.
    let mut mixed = b"PING\r\n".to_vec();
    mixed.extend_from_slice(&encode(&[b"ECHO", b"hi"]));
    mixed.extend_from_slice(b"ECHO there\r\n");
    c.send(&mixed);
    assert_eq!(c.read_raw(), b"+PONG\r\n");
    assert_eq!(c.read_raw(), b"$2\r\nhi\r\n");
    assert_eq!(c.read_raw(), b"$5\r\nthere\r\n");
}

#[test]
fn resp3_hello_map_null_and_push() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    c.send(&encode(&[b"HELLO", b"3"]));
    let raw = c.read_raw();
    assert!(
        raw.starts_with(b"%7\r\n"),
        "HELLO 3 must reply with a map: {raw:?}"
    );
    let (hello, _) = common::parse_reply(&raw, 0).unwrap().unwrap();
    let Reply::Map(pairs) = hello else {
        panic!("not a map")
    };
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| *key == Reply::bulk(k))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("proto"), Some(Reply::Int(3)));
    assert_eq!(get("server"), Some(Reply::bulk("redis")));
    assert_eq!(get("mode"), Some(Reply::bulk("standalone")));
    // Null is `_` in RESP3.
    assert_eq!(c.call_raw(&[b"GET", b"missing"]), b"_\r\n");
    assert_eq!(c.call_raw(&[b"SET", b"k", b"v"]), b"+OK\r\n");

    // Pub/sub: confirmations and messages are pushes.
    c.send(&encode(&[b"SUBSCRIBE", b"ch"]));
    assert_eq!(c.read_raw(), b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
    // RESP3 clients may run normal commands while subscribed.
    assert_eq!(c.call_raw(&[b"GET", b"k"]), b"$1\r\nv\r\n");
    let mut p = s.conn();
    assert_eq!(p.cmd(&["PUBLISH", "ch", "hello"]), Reply::Int(1));
    assert_eq!(
        c.read_raw(),
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n"
    );
    // Back to RESP2: HELLO 2 replies with a flat array.
    let mut d = s.conn();
    let raw = d.call_raw(&[b"HELLO", b"2"]);
    assert!(raw.starts_with(b"*14\r\n"), "{raw:?}");
    assert_eq!(d.call_raw(&[b"GET", b"missing"]), b"$-1\r\n");
    assert_eq!(
        d.call(&[b"HELLO", b"4"]),
        Reply::Error("NOPROTO unsupported protocol version".into())
    );
}

/// Protocol errors get the exact redis reply and the connection is closed.
#[test]
fn malformed_input_is_rejected_like_redis() {
    let s = Server::start(&[]);
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"*1\r\n$x\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*2\r\n$3\r\nGET\r\n:1\r\n",
            b"-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"set \"a b\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"set 'a\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"*x\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$-3\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*3000000000\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        // Default proto-max-bulk-len is 512mb.
        (
            b"*1\r\n$536870913\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
    ];
    for (input, want) in cases {
        let got = reply_then_close(s.port, input);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
    // Replies to the requests before the bad one are still delivered.
    let got = reply_then_close(s.port, b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n");
    assert_eq!(
        got,
        b"+PONG\r\n+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    );
    // An inline request without a newline that grows past 64k.
    let mut c = s.conn();
    let _ = c.try_send(&vec![b'a'; 70 * 1024]);
    assert!(c.closed_within(Duration::from_secs(5)));
    assert_eq!(
        c.pending(),
        b"-ERR Protocol error: too big inline request\r\n"
    );
    // The server is still fine.
    assert_eq!(s.conn().cmd(&["PING"]), Reply::Status("PONG".into()));
}

/// Inline parsing corner cases give the same replies as redis-server. A NUL
/// byte in an inline request used to make the node loop forever.
#[test]
fn inline_corner_cases_match_redis_server() {
    let node = Server::start(&[]);
    let redis = Server::start_redis();
    let lines: &[&[u8]] = &[
        b"ECHO a\"b c\"\r\n",
        b"ECHO a'b c'\r\n",
        b"ECHO \x0bx\x0b\r\n",
        b"ECHO\x0bx\r\n",
        b"ECHO\x0c\"y\"\x0c\r\n",
        b"ECHO 'it\\'s'\r\n",
        b"ECHO \"\\x41\\x4\\q\\n\"\r\n",
        b"ECHO  \t x \t\r\n",
        b"ECHO x\n",
    ];
    // A NUL before the newline: redis (strchr) sees no complete line and
    // waits; once the buffer passes 64k it reports a too big request.
    for s in [&node, &redis] {
        for line in [&b"ECHO a\x00b\r\n"[..], b"\x00\r\nPING\r\n"] {
            let mut c = s.conn();
            c.send(line);
            assert!(
                c.nothing_within(Duration::from_millis(300)),
                "port {}",
                s.port
            );
            let _ = c.try_send(&vec![b'a'; 70 * 1024]);
            assert!(c.closed_within(Duration::from_secs(5)));
            assert_eq!(
                c.pending(),
                b"-ERR Protocol error: too big inline request\r\n",
                "port {}",
                s.port
            );
        }
    }
    let mut n = node.conn();
    let mut r = redis.conn();
    for line in lines {
        n.send(line);
        r.send(line);
        let a = n.read_raw();
        let b = r.read_raw();
        assert_eq!(
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b),
            "line {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

/// The same malformed inputs against redis-server, to keep the expectations
/// above honest.
#[test]
fn malformed_input_replies_match_redis_server() {
    let node = Server::start(&[]);
    let redis = Server::start_redis();
    let inputs: &[&[u8]] = &[
        b"*1\r\n$x\r\n",
        b"*2\r\n$3\r\nGET\r\n:1\r\n",
        b"*2\r\n$3\r\nGET\r\nfoo\r\n",
        b"set \"a b\r\n",
        b"set \"a\"b\r\n",
        b"*x\r\n",
        b"*1\r\n$-3\r\n",
        b"*-1\r\n*1\r\n$x\r\n",
        b"*1\r\n$+3\r\n",
        b"*1\r\n$3 \r\n",
    ];
    for input in inputs {
        let a = reply_then_close(node.port, input);
        let b = reply_then_close(redis.port, input);
        assert_eq!(
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn bulk_over_proto_max_bulk_len_is_refused() {
    let s = Server::start(&["--proto-max-bulk-len", "1mb"]);
    let got = reply_then_close(s.port, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n");
    assert_eq!(got, b"-ERR Protocol error: invalid bulk length\r\n");
    // A bulk right at the limit is fine.
    let mut c = s.conn();
    let v = vec![b'x'; 1024 * 1024];
    assert_eq!(c.call(&[b"SET", b"k", &v]), Reply::ok());
}

#[test]
fn fifty_megabyte_value_round_trip() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    let v: Vec<u8> = (0..50 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let started = Instant::now();
    assert_eq!(c.call(&[b"SET", b"big", &v]), Reply::ok());
    let got = c.call(&[b"GET", b"big"]);
    let elapsed = started.elapsed();
    match got {
        Reply::Bulk(b) => assert!(b == v, "value differs"),
        other => panic!("unexpected {:?}", std::mem::discriminant(&other)),
    }
    assert!(
        elapsed < Duration::from_secs(15),
        "50MB SET+GET took {elapsed:?}"
    );
}

#[test]
fn maxclients_rejects_extra_connection() {
    let s = Server::start(&["--maxclients", "5"]);
    // Wait for the start-up probe connection to be gone.
    let mut probe = s.conn();
    assert!(wait_until(Duration::from_secs(5), || info_int(
        &mut probe,
        "clients",
        "connected_clients"
    ) == 1));
    let mut conns = vec![probe];
    for _ in 0..4 {
        let mut c = s.conn();
        assert_eq!(c.cmd(&["PING"]), Reply::Status("PONG".into()));
        conns.push(c);
    }
    let mut sixth = s.conn();
    assert!(sixth.closed_within(Duration::from_secs(5)));
    assert_eq!(sixth.pending(), b"-ERR max number of clients reached\r\n");
    assert_eq!(info_int(&mut conns[0], "stats", "rejected_connections"), 1);
    // Closing one makes room again.
    conns.pop();
    assert!(wait_until(Duration::from_secs(5), || {
        let mut c = s.conn();
        matches!(c.try_call(&[b"PING"]), Ok(Reply::Status(p)) if p == "PONG")
    }));
}

#[test]
fn idle_clients_are_closed_after_timeout() {
    let s = Server::start(&["--timeout", "1"]);
    let mut idle = s.conn();
    assert_eq!(idle.cmd(&["PING"]), Reply::Status("PONG".into()));
    let mut busy = s.conn();
    let started = Instant::now();
    let mut closed_at = None;
    while started.elapsed() < Duration::from_secs(4) {
        assert_eq!(busy.cmd(&["PING"]), Reply::Status("PONG".into()));
        if closed_at.is_none() && idle.closed_within(Duration::from_millis(200)) {
            closed_at = Some(started.elapsed());
        }
    }
    let at = closed_at.expect("idle client was not closed");
    assert!(at >= Duration::from_millis(900), "closed too early: {at:?}");
    // The active client survived.
    assert_eq!(busy.cmd(&["PING"]), Reply::Status("PONG".into()));
}

#[test]
fn two_hundred_concurrent_clients_incr() {
    let s = Server::start(&[]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let total: i64 = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let mut con = s.redis_async().await;
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    let _: i64 = redis::cmd("INCR")
                        .arg("shared")
                        .query_async(&mut con)
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut con = s.redis_async().await;
        redis::cmd("GET")
            .arg("shared")
            .query_async(&mut con)
            .await
            .unwrap()
    });
    assert_eq!(total, 200 * 50);
}

#[test]
fn query_buffer_limit_closes_client() {
    let s = Server::start(&["--client-query-buffer-limit", "1mb"]);
    let mut c = s.conn();
    let mut req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10485760\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    let _ = c.try_send(&req);
    assert!(c.closed_within(Duration::from_secs(5)));
    assert_eq!(s.conn().cmd(&["GET", "k"]), Reply::Nil);
}

/// The redis crate as a client (RESP2 and pipelines).
#[test]
fn redis_crate_client_works() {
    let s = Server::start(&[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut con = s.redis_async().await;
        let (a, b): (String, Option<String>) = redis::pipe()
            .cmd("SET")
            .arg("a")
            .arg("1")
            .ignore()
            .cmd("GET")
            .arg("a")
            .cmd("GET")
            .arg("nope")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(a, "1");
        assert_eq!(b, None);
        let err = redis::cmd("INCR")
            .arg("a")
            .arg("extra")
            .query_async::<i64>(&mut con)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("wrong number of arguments"),
            "{err}"
        );
    });
}
