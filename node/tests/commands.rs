//! Behaviour tests of the node's commands, over raw RESP connections.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{info_field, info_int, wait_until, Conn, Reply, Server};

fn ok() -> Reply {
    Reply::ok()
}

fn bulk(s: &str) -> Reply {
    Reply::bulk(s)
}

fn err(s: &str) -> Reply {
    Reply::Error(s.into())
}

#[test]
fn strings_basic() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.run("GET nope"), Reply::Nil);
    assert_eq!(c.run("SET a 1"), ok());
    assert_eq!(c.run("GET a"), bulk("1"));
    assert_eq!(c.run("INCR a"), Reply::Int(2));
    assert_eq!(c.run("INCR fresh"), Reply::Int(1));
    assert_eq!(c.run("MSET x 1 y 2 z 3"), ok());
    assert_eq!(
        c.run("MGET x nope y z"),
        Reply::Array(vec![bulk("1"), Reply::Nil, bulk("2"), bulk("3")])
    );
    assert_eq!(
        c.run("MSET x 1 y"),
        err("ERR wrong number of arguments for 'mset' command")
    );
    assert_eq!(c.run("SET s hello"), ok());
    assert_eq!(
        c.run("INCR s"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.run("SET m 9223372036854775807"), ok());
    assert_eq!(
        c.run("INCR m"),
        err("ERR increment or decrement would overflow")
    );
    assert_eq!(c.run("GET m"), bulk("9223372036854775807"));
    assert_eq!(c.run("DEL x y nope"), Reply::Int(2));
    assert_eq!(c.run("EXISTS x y z z"), Reply::Int(2));
    assert_eq!(
        c.run("GET"),
        err("ERR wrong number of arguments for 'get' command")
    );
    // Binary-safe keys and values.
    let key = b"k\x00\r\n\xff";
    let val = b"\x00\x01\r\n\xfe";
    assert_eq!(c.call(&[b"SET", key, val]), ok());
    assert_eq!(c.call(&[b"GET", key]), Reply::Bulk(val.to_vec()));
}

#[test]
fn set_options() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.run("SET k v NX"), ok());
    assert_eq!(c.run("SET k w NX"), Reply::Nil);
    assert_eq!(c.run("SET k w XX"), ok());
    assert_eq!(c.run("SET other w XX"), Reply::Nil);
    assert_eq!(c.run("GET other"), Reply::Nil);
    assert_eq!(c.run("SET k x GET"), bulk("w"));
    assert_eq!(c.run("SET new x GET"), Reply::Nil);
    assert_eq!(c.run("SET k v EX 100"), ok());
    let ttl = c.run("TTL k").int();
    assert!((99..=100).contains(&ttl), "ttl {ttl}");
    assert_eq!(c.run("SET k v2 KEEPTTL"), ok());
    assert!(c.run("PTTL k").int() > 98_000);
    assert_eq!(c.run("SET k v3"), ok());
    assert_eq!(c.run("TTL k"), Reply::Int(-1));
    assert_eq!(c.run("SET k v PX 5000 XX GET"), bulk("v3"));
    assert!(c.run("PTTL k").int() > 4000);
    let at = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1000)
        .to_string();
    assert_eq!(c.cmd(&["SET", "k", "v", "EXAT", &at]), ok());
    assert!(c.run("TTL k").int() > 990);
    assert_eq!(
        c.run("SET k v EX 0"),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        c.run("SET k v PX -5"),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        c.run("SET k v EX abc"),
        err("ERR value is not an integer or out of range")
    );
    for bad in [
        "SET k v NX XX",
        "SET k v EX 10 PX 10",
        "SET k v KEEPTTL EX 10",
        "SET k v EX",
        "SET k v FOO",
    ] {
        assert_eq!(c.run(bad), err("ERR syntax error"), "{bad}");
    }
}

#[test]
fn strings_extended() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.run("APPEND a hello"), Reply::Int(5));
    assert_eq!(c.run("APPEND a _world"), Reply::Int(11));
    assert_eq!(c.run("STRLEN a"), Reply::Int(11));
    assert_eq!(c.run("GETRANGE a 0 4"), bulk("hello"));
    assert_eq!(c.run("GETRANGE a -5 -1"), bulk("world"));
    assert_eq!(c.run("SETRANGE a 6 W"), Reply::Int(11));
    assert_eq!(c.run("GET a"), bulk("hello_World"));
    assert_eq!(c.run("SETRANGE pad 3 x"), Reply::Int(4));
    assert_eq!(c.call(&[b"GET", b"pad"]), Reply::Bulk(b"\0\0\0x".to_vec()));
    assert_eq!(c.run("INCRBY n 10"), Reply::Int(10));
    assert_eq!(c.run("DECRBY n 3"), Reply::Int(7));
    assert_eq!(c.run("DECR n"), Reply::Int(6));
    assert_eq!(c.run("INCRBYFLOAT f 1.5"), bulk("1.5"));
    assert_eq!(c.run("INCRBYFLOAT f 0.1"), bulk("1.6"));
    assert_eq!(c.run("GETSET n 1"), bulk("6"));
    assert_eq!(c.run("GETDEL n"), bulk("1"));
    assert_eq!(c.run("EXISTS n"), Reply::Int(0));
    assert_eq!(c.run("SETNX n 1"), Reply::Int(1));
    assert_eq!(c.run("SETNX n 2"), Reply::Int(0));
    assert_eq!(c.run("SETEX e 100 v"), ok());
    assert!(c.run("TTL e").int() > 98);
    assert_eq!(c.run("GETEX e PERSIST"), bulk("v"));
    assert_eq!(c.run("TTL e"), Reply::Int(-1));
    assert_eq!(c.run("GETEX e PX 5000"), bulk("v"));
    assert!(c.run("PTTL e").int() > 4000);
    assert_eq!(c.run("PSETEX p 5000 v"), ok());
    assert_eq!(c.run("MSETNX m1 a m2 b"), Reply::Int(1));
    assert_eq!(c.run("MSETNX m2 x m3 y"), Reply::Int(0));
    assert_eq!(c.run("EXISTS m3"), Reply::Int(0));
}

#[test]
fn keys_and_dbsize() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    for k in ["user:1", "user:2", "user:10", "order:1", "h?llo", "hello"] {
        assert_eq!(c.cmd(&["SET", k, "v"]), ok());
    }
    let sorted = |r: Reply| {
        let mut v: Vec<String> = r.array().iter().map(|x| x.text()).collect();
        v.sort();
        v
    };
    assert_eq!(
        sorted(c.run("KEYS user:*")),
        ["user:1", "user:10", "user:2"]
    );
    assert_eq!(sorted(c.run("KEYS user:?")), ["user:1", "user:2"]);
    assert_eq!(sorted(c.run("KEYS *")).len(), 6);
    assert_eq!(c.run("DBSIZE"), Reply::Int(6));
    assert_eq!(c.run("FLUSHDB"), ok());
    assert_eq!(c.run("DBSIZE"), Reply::Int(0));
    assert_eq!(c.run("KEYS *"), Reply::Array(vec![]));
}

#[test]
fn keys_glob_classes_and_escapes() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    for k in ["h?llo", "hello", "hallo", "hxllo"] {
        assert_eq!(c.cmd(&["SET", k, "v"]), ok());
    }
    let sorted = |r: Reply| {
        let mut v: Vec<String> = r.array().iter().map(|x| x.text()).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(c.run("KEYS h\\?llo")), ["h?llo"]);
    assert_eq!(sorted(c.run("KEYS h[ae]llo")), ["hallo", "hello"]);
    assert_eq!(sorted(c.run("KEYS h[^ae?]llo")), ["hxllo"]);
    assert_eq!(sorted(c.run("KEYS h[a-f]llo")), ["hallo", "hello"]);
}

#[test]
fn expire_options_and_ttl() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.run("TTL missing"), Reply::Int(-2));
    assert_eq!(c.run("PTTL missing"), Reply::Int(-2));
    assert_eq!(c.run("EXPIRE missing 10"), Reply::Int(0));
    assert_eq!(c.run("SET k v"), ok());
    assert_eq!(c.run("TTL k"), Reply::Int(-1));
    assert_eq!(c.run("EXPIRE k 100 XX"), Reply::Int(0));
    assert_eq!(c.run("EXPIRE k 100 GT"), Reply::Int(0));
    assert_eq!(c.run("EXPIRE k 100 NX"), Reply::Int(1));
    assert_eq!(c.run("EXPIRE k 200 NX"), Reply::Int(0));
    assert_eq!(c.run("EXPIRE k 50 GT"), Reply::Int(0));
    assert_eq!(c.run("EXPIRE k 200 GT"), Reply::Int(1));
    assert_eq!(c.run("EXPIRE k 300 LT"), Reply::Int(0));
    assert_eq!(c.run("EXPIRE k 150 LT"), Reply::Int(1));
    let t = c.run("TTL k").int();
    assert!((149..=150).contains(&t), "{t}");
    assert_eq!(
        c.run("EXPIRE k 10 NX XX"),
        err("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        c.run("EXPIRE k 10 GT LT"),
        err("ERR GT and LT options at the same time are not compatible")
    );
    assert_eq!(c.run("EXPIRE k 10 FOO"), err("ERR Unsupported option FOO"));
    assert_eq!(
        c.run("EXPIRE k abc"),
        err("ERR value is not an integer or out of range")
    );
    // A non-positive TTL deletes the key.
    assert_eq!(c.run("EXPIRE k -1"), Reply::Int(1));
    assert_eq!(c.run("EXISTS k"), Reply::Int(0));
}

#[test]
fn lazy_expiry() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    let before = info_int(&mut c, "stats", "expired_keys");
    assert_eq!(c.run("SET k v PX 100"), ok());
    assert_eq!(c.run("GET k"), bulk("v"));
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(c.run("GET k"), Reply::Nil);
    assert_eq!(c.run("TTL k"), Reply::Int(-2));
    assert!(info_int(&mut c, "stats", "expired_keys") > before);
}

#[test]
fn active_expiry_removes_keys_without_access() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    let n = 2000;
    let mut batch = Vec::new();
    for i in 0..n {
        let k = format!("vol:{i}");
        batch.extend_from_slice(&common::encode(&[b"SET", k.as_bytes(), b"v", b"PX", b"50"]));
    }
    batch.extend_from_slice(&common::encode(&[b"SET", b"keep", b"v"]));
    c.send(&batch);
    for _ in 0..=n {
        assert_eq!(c.read(), ok());
    }
    // Only DBSIZE and INFO: neither touches the volatile keys.
    let gone = wait_until(Duration::from_secs(10), || c.run("DBSIZE") == Reply::Int(1));
    assert!(
        gone,
        "volatile keys were not actively expired: {:?}",
        c.run("DBSIZE")
    );
    assert!(info_int(&mut c, "stats", "expired_keys") >= n);
    let keyspace = c.cmd(&["INFO", "keyspace"]);
    assert_eq!(
        info_field(&keyspace, "db0").as_deref(),
        Some("keys=1,expires=0,avg_ttl=0")
    );
}

#[test]
fn transactions() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.run("MULTI"), ok());
    assert_eq!(c.run("SET a 1"), Reply::Status("QUEUED".into()));
    assert_eq!(c.run("INCR a"), Reply::Status("QUEUED".into()));
    assert_eq!(c.run("GET a"), Reply::Status("QUEUED".into()));
    assert_eq!(
        c.run("EXEC"),
        Reply::Array(vec![ok(), Reply::Int(2), bulk("2")])
    );
    // Errors at run time do not abort the rest.
    assert_eq!(c.run("MULTI"), ok());
    c.run("SET s x");
    c.run("INCR s");
    c.run("GET s");
    assert_eq!(
        c.run("EXEC"),
        Reply::Array(vec![
            ok(),
            err("ERR value is not an integer or out of range"),
            bulk("x")
        ])
    );
    assert_eq!(c.run("MULTI"), ok());
    assert_eq!(c.run("MULTI"), err("ERR MULTI calls can not be nested"));
    c.run("SET d 1");
    assert_eq!(c.run("DISCARD"), ok());
    assert_eq!(c.run("GET d"), Reply::Nil);
    assert_eq!(c.run("EXEC"), err("ERR EXEC without MULTI"));
    assert_eq!(c.run("DISCARD"), err("ERR DISCARD without MULTI"));
    // Queueing errors abort EXEC.
    assert_eq!(c.run("MULTI"), ok());
    c.run("SET e 1");
    assert_eq!(
        c.run("NOSUCHCMD x"),
        err("ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' ")
    );
    assert_eq!(
        c.run("EXEC"),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(c.run("GET e"), Reply::Nil);
    assert_eq!(c.run("MULTI"), ok());
    assert_eq!(
        c.run("GET"),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        c.run("EXEC"),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(c.run("MULTI"), ok());
    assert_eq!(
        c.run("WATCH a"),
        err("ERR WATCH inside MULTI is not allowed")
    );
    assert_eq!(c.run("EXEC"), Reply::Array(vec![]));
}

/// UNWATCH and INFO queued in a transaction used to deadlock the whole
/// node: EXEC holds every shard lock and they took the locks again.
#[test]
fn commands_that_lock_the_keyspace_inside_exec() {
    let s = Server::start(&["--shards", "4"]);
    let mut c = s.conn();
    c.run("SET k v");
    c.run("WATCH k");
    assert_eq!(c.run("MULTI"), ok());
    for cmd in ["UNWATCH", "INFO keyspace", "DBSIZE", "GET k"] {
        assert_eq!(c.run(cmd), Reply::Status("QUEUED".into()));
    }
    let r = c.run("EXEC");
    let items = r.array();
    assert_eq!(items[0], ok());
    assert!(items[1].text().contains("db0:keys=1,"), "{:?}", items[1]);
    assert_eq!(items[2], Reply::Int(1));
    assert_eq!(items[3], bulk("v"));
    // The node is still responsive and the watch is gone.
    let mut d = s.conn();
    assert_eq!(d.run("SET k w"), ok());
    c.run("MULTI");
    c.run("GET k");
    assert_eq!(c.run("EXEC"), Reply::Array(vec![bulk("w")]));
}

#[test]
fn watch_aborts_exec_when_key_changes() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    let mut other = s.conn();
    c.run("SET k 1");
    // Untouched: EXEC runs.
    assert_eq!(c.run("WATCH k"), ok());
    c.run("MULTI");
    c.run("INCR k");
    assert_eq!(c.run("EXEC"), Reply::Array(vec![Reply::Int(2)]));
    // Modified by another client: EXEC returns a null array.
    assert_eq!(c.run("WATCH k"), ok());
    assert_eq!(other.run("SET k 10"), ok());
    c.run("MULTI");
    c.run("INCR k");
    assert_eq!(c.call_raw(&[b"EXEC"]), b"*-1\r\n");
    assert_eq!(c.run("GET k"), bulk("10"));
    // Deleting a watched key counts as a change; so does FLUSHALL.
    c.run("WATCH k");
    other.run("DEL k");
    c.run("MULTI");
    c.run("SET k 1");
    assert_eq!(c.run("EXEC"), Reply::Nil);
    c.run("SET k 1");
    c.run("WATCH k");
    other.run("FLUSHALL");
    c.run("MULTI");
    c.run("SET k 1");
    assert_eq!(c.run("EXEC"), Reply::Nil);
    // UNWATCH forgets.
    c.run("WATCH k");
    other.run("SET k 2");
    assert_eq!(c.run("UNWATCH"), ok());
    c.run("MULTI");
    c.run("GET k");
    assert_eq!(c.run("EXEC"), Reply::Array(vec![bulk("2")]));
    // A watched key that is missing and stays missing does not abort.
    c.run("WATCH ghost");
    c.run("MULTI");
    c.run("GET ghost");
    assert_eq!(c.run("EXEC"), Reply::Array(vec![Reply::Nil]));
}

/// A watched key that expires between WATCH and EXEC aborts the
/// transaction (redis 7.0), checked against redis-server too.
#[test]
fn watch_with_expiry() {
    let node = Server::start(&[]);
    let redis = Server::start_redis();
    for s in [&node, &redis] {
        let mut c = s.conn();
        c.run("SET k v PX 100");
        assert_eq!(c.run("WATCH k"), ok());
        std::thread::sleep(Duration::from_millis(200));
        c.run("MULTI");
        c.run("SET x 1");
        assert_eq!(c.run("EXEC"), Reply::Nil, "server on port {}", s.port);
        // Already expired at WATCH time: not a change.
        c.run("SET j v PX 10");
        std::thread::sleep(Duration::from_millis(50));
        c.run("WATCH j");
        c.run("MULTI");
        c.run("SET x 1");
        assert_eq!(c.run("EXEC"), Reply::Array(vec![ok()]), "port {}", s.port);
    }
}

#[test]
fn pubsub_subscribe_publish_and_resp2_restrictions() {
    let node = Server::start(&[]);
    let redis = Server::start_redis();
    for s in [&node, &redis] {
        let mut sub = s.conn();
        let mut publ = s.conn();
        assert_eq!(
            sub.run("SUBSCRIBE a b"),
            Reply::Array(vec![bulk("subscribe"), bulk("a"), Reply::Int(1)])
        );
        assert_eq!(
            sub.read(),
            Reply::Array(vec![bulk("subscribe"), bulk("b"), Reply::Int(2)])
        );
        assert_eq!(publ.run("PUBLISH a hi"), Reply::Int(1));
        assert_eq!(publ.run("PUBLISH nobody hi"), Reply::Int(0));
        assert_eq!(
            sub.read(),
            Reply::Array(vec![bulk("message"), bulk("a"), bulk("hi")])
        );
        assert_eq!(
            sub.run("GET k"),
            err("ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
        );
        assert_eq!(sub.run("PING"), Reply::Array(vec![bulk("pong"), bulk("")]));
        assert_eq!(
            sub.run("PING x"),
            Reply::Array(vec![bulk("pong"), bulk("x")])
        );
        // Subscribed clients are exempt from the arity-free restriction
        // on QUIT.
        assert_eq!(sub.run("QUIT"), ok());
    }
}

#[test]
fn pubsub_patterns_shard_channels_and_introspection() {
    let s = Server::start(&[]);
    let mut sub = s.conn();
    let mut psub = s.conn();
    let mut ssub = s.conn();
    let mut c = s.conn();
    sub.run("SUBSCRIBE news.tech news.art");
    sub.read();
    assert_eq!(
        psub.run("PSUBSCRIBE news.*"),
        Reply::Array(vec![bulk("psubscribe"), bulk("news.*"), Reply::Int(1)])
    );
    assert_eq!(
        ssub.run("SSUBSCRIBE {s}1"),
        Reply::Array(vec![bulk("ssubscribe"), bulk("{s}1"), Reply::Int(1)])
    );
    assert_eq!(c.run("PUBLISH news.tech hi"), Reply::Int(2));
    assert_eq!(
        sub.read(),
        Reply::Array(vec![bulk("message"), bulk("news.tech"), bulk("hi")])
    );
    assert_eq!(
        psub.read(),
        Reply::Array(vec![
            bulk("pmessage"),
            bulk("news.*"),
            bulk("news.tech"),
            bulk("hi")
        ])
    );
    // PUBLISH does not reach shard channels and SPUBLISH only reaches them.
    assert_eq!(c.run("PUBLISH {s}1 x"), Reply::Int(0));
    assert_eq!(c.run("SPUBLISH {s}1 y"), Reply::Int(1));
    assert_eq!(
        ssub.read(),
        Reply::Array(vec![bulk("smessage"), bulk("{s}1"), bulk("y")])
    );
    let mut chans: Vec<String> = c
        .run("PUBSUB CHANNELS")
        .array()
        .iter()
        .map(|r| r.text())
        .collect();
    chans.sort();
    assert_eq!(chans, ["news.art", "news.tech"]);
    assert_eq!(
        c.run("PUBSUB CHANNELS *art"),
        Reply::Array(vec![bulk("news.art")])
    );
    assert_eq!(
        c.run("PUBSUB NUMSUB news.tech nope"),
        Reply::Array(vec![
            bulk("news.tech"),
            Reply::Int(1),
            bulk("nope"),
            Reply::Int(0)
        ])
    );
    assert_eq!(c.run("PUBSUB NUMPAT"), Reply::Int(1));
    assert_eq!(
        c.run("PUBSUB SHARDCHANNELS"),
        Reply::Array(vec![bulk("{s}1")])
    );
    assert_eq!(
        c.run("PUBSUB SHARDNUMSUB {s}1"),
        Reply::Array(vec![bulk("{s}1"), Reply::Int(1)])
    );
    assert_eq!(
        sub.run("UNSUBSCRIBE news.tech"),
        Reply::Array(vec![bulk("unsubscribe"), bulk("news.tech"), Reply::Int(1)])
    );
    assert_eq!(
        c.run("PUBSUB NUMSUB news.tech"),
        Reply::Array(vec![bulk("news.tech"), Reply::Int(0)])
    );
    // Closing the connection drops the subscriptions.
    drop(psub);
    assert!(wait_until(Duration::from_secs(5), || c
        .run("PUBSUB NUMPAT")
        == Reply::Int(0)));
}

#[test]
fn auth_and_requirepass() {
    let s = Server::start(&["--requirepass", "s3cret"]);
    let mut c = s.conn();
    assert_eq!(c.run("GET k"), err("NOAUTH Authentication required."));
    assert_eq!(c.run("SET k v"), err("NOAUTH Authentication required."));
    assert_eq!(
        c.run("AUTH wrong"),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(
        c.run("AUTH bob s3cret"),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(c.run("AUTH s3cret"), ok());
    assert_eq!(c.run("SET k v"), ok());
    let mut d = s.conn();
    assert_eq!(
        d.run("AUTH default s3cret"),
        ok(),
        "AUTH with the default user"
    );
    let mut h = s.conn();
    assert!(matches!(h.run("HELLO 3"), Reply::Error(e) if e.starts_with("NOAUTH")));
    let r = h.run("HELLO 3 AUTH default s3cret");
    assert!(matches!(r, Reply::Map(_)), "{r:?}");
    assert_eq!(h.run("GET k"), bulk("v"));
    // Without requirepass.
    let open = Server::start(&[]);
    assert_eq!(
        open.conn().run("AUTH x"),
        err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
    );
}

#[test]
fn select_and_databases() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    c.run("SET k zero");
    assert_eq!(c.run("SELECT 1"), ok());
    assert_eq!(c.run("GET k"), Reply::Nil);
    c.run("SET k one");
    assert_eq!(c.run("DBSIZE"), Reply::Int(1));
    assert_eq!(c.run("SELECT 15"), ok());
    assert_eq!(c.run("SELECT 16"), err("ERR DB index is out of range"));
    assert_eq!(c.run("SELECT -1"), err("ERR DB index is out of range"));
    assert_eq!(
        c.run("SELECT x"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.run("SELECT 0"), ok());
    assert_eq!(c.run("GET k"), bulk("zero"));
    // Each connection has its own current database.
    let mut d = s.conn();
    d.run("SELECT 1");
    assert_eq!(d.run("GET k"), bulk("one"));
    assert_eq!(c.run("GET k"), bulk("zero"));
    let ks = c.cmd(&["INFO", "keyspace"]);
    assert_eq!(
        info_field(&ks, "db1").as_deref(),
        Some("keys=1,expires=0,avg_ttl=0")
    );
}

#[test]
fn databases_directive() {
    let s = Server::start(&["--databases", "4"]);
    let mut c = s.conn();
    assert_eq!(c.run("SELECT 3"), ok());
    assert_eq!(c.run("SELECT 4"), err("ERR DB index is out of range"));
}

#[test]
fn client_commands() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    let mut d = s.conn();
    let cid = c.run("CLIENT ID").int();
    let did = d.run("CLIENT ID").int();
    assert!(cid > 0 && did > cid);
    assert_eq!(c.run("CLIENT GETNAME"), Reply::Nil);
    assert_eq!(c.run("CLIENT SETNAME alpha"), ok());
    assert_eq!(c.run("CLIENT GETNAME"), bulk("alpha"));
    assert_eq!(
        c.cmd(&["CLIENT", "SETNAME", "has space"]),
        err("ERR Client names cannot contain spaces, newlines or special characters.")
    );
    let info = c.run("CLIENT INFO").text();
    assert!(info.contains(&format!("id={cid} ")), "{info}");
    assert!(info.contains(" name=alpha "), "{info}");
    assert!(info.contains(" cmd=client|info "), "{info}");
    let list = d.run("CLIENT LIST").text();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains(" name=alpha "), "{list}");
    assert!(list.contains(&format!("id={did} ")));
    // KILL by id closes the other connection.
    assert_eq!(
        c.cmd(&["CLIENT", "KILL", "ID", &did.to_string()]),
        Reply::Int(1)
    );
    assert!(d.closed_within(Duration::from_secs(5)));
    assert_eq!(
        c.cmd(&["CLIENT", "KILL", "ID", &did.to_string()]),
        Reply::Int(0)
    );
    // Old form by address.
    let mut e = s.conn();
    let line = e.run("CLIENT INFO").text();
    let addr = line
        .split(' ')
        .find_map(|f| f.strip_prefix("addr="))
        .unwrap()
        .to_string();
    assert_eq!(c.cmd(&["CLIENT", "KILL", &addr]), ok());
    assert!(e.closed_within(Duration::from_secs(5)));
    assert_eq!(
        c.cmd(&["CLIENT", "KILL", "127.0.0.1:1"]),
        err("ERR No such client")
    );
    assert!(
        matches!(c.run("CLIENT NOSUCH"), Reply::Error(e) if e.starts_with("ERR unknown subcommand"))
    );
}

#[test]
fn client_reply_modes() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    c.send(&common::encode(&[b"CLIENT", b"REPLY", b"OFF"]));
    c.send(&common::encode(&[b"SET", b"a", b"1"]));
    c.send(&common::encode(&[b"GET", b"a"]));
    c.send(&common::encode(&[b"CLIENT", b"REPLY", b"ON"]));
    assert_eq!(c.read_raw(), b"+OK\r\n");
    c.send(&common::encode(&[b"CLIENT", b"REPLY", b"SKIP"]));
    c.send(&common::encode(&[b"INCR", b"a"]));
    c.send(&common::encode(&[b"GET", b"a"]));
    assert_eq!(c.read_raw(), b"$1\r\n2\r\n");
    assert!(c.nothing_within(Duration::from_millis(100)));
}

#[test]
fn client_pause_write_blocks_writes_not_reads() {
    let s = Server::start(&[]);
    let mut admin = s.conn();
    let mut c = s.conn();
    c.run("SET k v");
    assert_eq!(admin.run("CLIENT PAUSE 5000 WRITE"), ok());
    let t = Instant::now();
    assert_eq!(c.run("GET k"), bulk("v"));
    assert!(t.elapsed() < Duration::from_millis(1000));
    // A write waits.
    c.send(&common::encode(&[b"SET", b"k", b"w"]));
    assert!(c.nothing_within(Duration::from_millis(400)));
    let mut reader = s.conn();
    assert_eq!(reader.run("GET k"), bulk("v"));
    assert_eq!(admin.run("CLIENT UNPAUSE"), ok());
    assert_eq!(c.read(), ok());
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "UNPAUSE did not resume"
    );
    assert_eq!(reader.run("GET k"), bulk("w"));
    // A short pause of everything ends by itself.
    assert_eq!(admin.run("CLIENT PAUSE 300"), ok());
    let t = Instant::now();
    assert_eq!(c.run("GET k"), bulk("w"));
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn info_fields_are_present_and_real() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    let _others: Vec<Conn> = (0..3).map(|_| s.conn()).collect();
    let all = c.run("INFO");
    for f in [
        "redis_version",
        "tcp_port",
        "uptime_in_seconds",
        "connected_clients",
        "used_memory",
        "total_commands_processed",
        "keyspace_hits",
        "keyspace_misses",
        "expired_keys",
        "role",
    ] {
        assert!(info_field(&all, f).is_some(), "INFO lacks {f}");
    }
    assert_eq!(info_field(&all, "tcp_port"), Some(s.port.to_string()));
    assert!(info_int(&mut c, "memory", "used_memory") > 0);
    assert!(wait_until(Duration::from_secs(5), || info_int(
        &mut c,
        "clients",
        "connected_clients"
    ) == 4));
    let before = info_int(&mut c, "stats", "total_commands_processed");
    for _ in 0..10 {
        c.run("PING");
    }
    let after = info_int(&mut c, "stats", "total_commands_processed");
    assert!(after >= before + 10, "{before} -> {after}");
    let hits = info_int(&mut c, "stats", "keyspace_hits");
    let misses = info_int(&mut c, "stats", "keyspace_misses");
    c.run("SET k v");
    c.run("GET k");
    c.run("GET k");
    c.run("GET nope");
    assert_eq!(info_int(&mut c, "stats", "keyspace_hits"), hits + 2);
    assert_eq!(info_int(&mut c, "stats", "keyspace_misses"), misses + 1);
    // Section filtering.
    let only = c.run("INFO memory").text();
    assert!(only.contains("# Memory") && !only.contains("# Stats"));
}

#[test]
fn allocator_figures_report_and_purge() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    // Some heap to see: 2000 hashes.
    for i in 0..2000 {
        c.run(&format!("HSET h:{i} a 1 b 2"));
    }
    let allocated = info_int(&mut c, "memory", "allocator_allocated");
    let active = info_int(&mut c, "memory", "allocator_active");
    let resident = info_int(&mut c, "memory", "allocator_resident");
    assert!(allocated > 100_000, "{allocated}");
    assert!(
        active >= allocated && resident >= active,
        "{allocated} {active} {resident}"
    );
    let used = info_int(&mut c, "memory", "used_memory");
    assert!(
        used.abs_diff(allocated) < allocated.unsigned_abs() / 4,
        "{used} {allocated}"
    );
    let report = c.run("MEMORY MALLOC-STATS").text();
    assert!(report.contains("jemalloc statistics"), "{report}");
    assert_eq!(c.run("MEMORY PURGE"), ok());
    assert!(matches!(c.run("MEMORY PURGE now"), Reply::Error(_)));
    // Purging frees no live data.
    assert_eq!(c.run("HGET h:1999 b"), bulk("2"));
    // The allocator's background threads follow the directive.
    assert_eq!(c.run("CONFIG SET jemalloc-bg-thread no"), ok());
    assert_eq!(
        c.run("CONFIG GET jemalloc-bg-thread"),
        Reply::Array(vec![bulk("jemalloc-bg-thread"), bulk("no")])
    );
}

#[test]
fn config_get() {
    let s = Server::start(&["--maxclients", "77"]);
    let mut c = s.conn();
    assert_eq!(
        c.run("CONFIG GET maxclients"),
        Reply::Array(vec![bulk("maxclients"), bulk("77")])
    );
    assert_eq!(
        c.run("CONFIG GET port"),
        Reply::Array(vec![bulk("port"), bulk(&s.port.to_string())])
    );
    assert_eq!(c.run("CONFIG GET no-such-directive"), Reply::Array(vec![]));
}

#[test]
fn config_set() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.run("CONFIG SET maxclients 50"), ok());
    assert_eq!(
        c.run("CONFIG GET maxclients"),
        Reply::Array(vec![bulk("maxclients"), bulk("50")])
    );
    assert_eq!(c.run("CONFIG SET timeout 30 hz 20"), ok());
    assert_eq!(
        c.run("CONFIG GET hz"),
        Reply::Array(vec![bulk("hz"), bulk("20")])
    );
    assert!(c.run("CONFIG SET maxclients notanumber").is_error());
    assert!(c.run("CONFIG SET no-such-thing 1").is_error());
}

#[test]
fn command_count() {
    let s = Server::start(&[]);
    assert!(s.conn().run("COMMAND COUNT").int() > 0);
}

#[test]
fn slowlog_records_commands() {
    let s = Server::start(&["--slowlog-log-slower-than", "0"]);
    let mut c = s.conn();
    assert_eq!(c.run("SLOWLOG RESET"), ok());
    c.run("SET slowkey v");
    let log = c.run("SLOWLOG GET 10");
    let entries = log.array();
    assert!(!entries.is_empty());
    let found = entries
        .iter()
        .any(|e| e.array()[3] == Reply::Array(vec![bulk("SET"), bulk("slowkey"), bulk("v")]));
    assert!(found, "{log:?}");
    assert!(c.run("SLOWLOG LEN").int() >= 1);
    assert_eq!(c.run("SLOWLOG RESET"), ok());
    assert!(c.run("SLOWLOG LEN").int() <= 1);
}

#[test]
fn monitor_sees_other_clients() {
    let s = Server::start(&[]);
    let mut m = s.conn();
    assert_eq!(m.run("MONITOR"), ok());
    let mut c = s.conn();
    c.cmd(&["SET", "mon", "a b\"c"]);
    let line = m.read().text();
    assert!(
        line.ends_with(r#"] "SET" "mon" "a b\"c""#),
        "monitor line {line}"
    );
    assert!(line.contains("[0 127.0.0.1:"), "{line}");
}

#[test]
fn debug_sleep_blocks_the_keyspace() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    let t = Instant::now();
    c.send(&common::encode(&[b"DEBUG", b"SLEEP", b"0.5"]));
    std::thread::sleep(Duration::from_millis(50));
    let mut d = s.conn();
    assert_eq!(d.run("GET k"), Reply::Nil);
    assert!(
        t.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(c.read(), ok());
    assert_eq!(c.run("DEBUG SLEEP 0"), ok());
}

#[test]
fn shutdown_nosave_exits() {
    let mut s = Server::start(&[]);
    let mut c = s.conn();
    c.send(&common::encode(&[b"SHUTDOWN", b"NOSAVE"]));
    assert!(c.closed_within(Duration::from_secs(5)));
    assert!(c.pending().is_empty(), "SHUTDOWN should not reply");
    assert!(
        s.exited_within(Duration::from_secs(5)),
        "process still running"
    );
    assert!(common::Conn::try_connect(s.port).is_err());
}

#[test]
fn flushall_async() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    for i in 0..1000 {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    c.run("SELECT 2");
    c.run("SET x y");
    assert_eq!(c.run("FLUSHALL ASYNC"), ok());
    assert_eq!(c.run("DBSIZE"), Reply::Int(0));
    c.run("SELECT 0");
    assert_eq!(c.run("DBSIZE"), Reply::Int(0));
    assert_eq!(c.run("GET k1"), Reply::Nil);
    assert_eq!(c.run("FLUSHALL SYNC"), ok());
    assert_eq!(c.run("FLUSHALL LAZY"), err("ERR syntax error"));
}

/// Tokio worker threads of a running node, by thread name.
fn worker_thread_count(pid: u32) -> usize {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("proc");
    tasks
        .filter_map(|t| t.ok())
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "tokio-rt-worker")
        })
        .count()
}

#[test]
fn worker_threads_follow_the_directive_and_default_to_cores_but_one() {
    let s = Server::start(&["--worker-threads", "3", "--shards", "2"]);
    let mut c = s.conn();
    let info = c.run("INFO server");
    assert_eq!(info_field(&info, "worker_threads").as_deref(), Some("3"));
    assert_eq!(worker_thread_count(s.pid()), 3);
    // Clients spread over the workers all get served.
    let mut conns: Vec<Conn> = (0..8).map(|_| s.conn()).collect();
    for (i, k) in conns.iter_mut().enumerate() {
        assert_eq!(k.cmd(&["SET", &format!("k{i}"), "v"]), ok());
    }
    assert_eq!(c.run("DBSIZE"), Reply::Int(8));

    let d = Server::start(&[]);
    let mut c = d.conn();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let want = cores.saturating_sub(1).max(1);
    let info = c.run("INFO server");
    assert_eq!(info_field(&info, "worker_threads"), Some(want.to_string()));
    assert_eq!(worker_thread_count(d.pid()), want);
    assert_eq!(
        c.run("CONFIG SET worker-threads 2"),
        err("ERR CONFIG SET failed (possibly related to argument 'worker-threads') - can't set immutable config")
    );
}

#[test]
fn swapdb_copy_rename_across_shards() {
    let s = Server::start(&["--shards", "4"]);
    let mut c = s.conn();
    let info = c.run("INFO server");
    assert_eq!(info_field(&info, "shard_engines").as_deref(), Some("4"));
    // Keys chosen to live on different shards (slot % 4 differs).
    let a = "foo"; // slot 12182 -> shard 2
    let b = "bar"; // slot 5061 -> shard 1
    c.cmd(&["SET", a, "1"]);
    c.cmd(&["EXPIRE", a, "100"]);
    assert_eq!(c.cmd(&["RENAME", a, b]), ok());
    assert_eq!(c.cmd(&["GET", b]), bulk("1"));
    assert!(c.cmd(&["TTL", b]).int() > 90);
    assert_eq!(c.cmd(&["EXISTS", a]), Reply::Int(0));
    assert_eq!(c.cmd(&["RENAMENX", b, a]), Reply::Int(1));
    c.cmd(&["SET", b, "2"]);
    assert_eq!(c.cmd(&["RENAMENX", a, b]), Reply::Int(0));
    assert_eq!(c.cmd(&["RENAME", "nope", b]), err("ERR no such key"));
    // COPY across shards and databases.
    assert_eq!(c.cmd(&["COPY", a, "baz"]), Reply::Int(1));
    assert_eq!(c.cmd(&["GET", "baz"]), bulk("1"));
    assert_eq!(c.cmd(&["COPY", a, "baz"]), Reply::Int(0));
    assert_eq!(c.cmd(&["COPY", b, "baz", "REPLACE"]), Reply::Int(1));
    assert_eq!(c.cmd(&["GET", "baz"]), bulk("2"));
    assert_eq!(c.cmd(&["COPY", a, a, "DB", "3"]), Reply::Int(1));
    c.run("SELECT 3");
    assert_eq!(c.cmd(&["GET", a]), bulk("1"));
    assert!(c.cmd(&["TTL", a]).int() > 90);
    // SWAPDB.
    c.run("SET only3 x");
    assert_eq!(c.run("SWAPDB 3 0"), ok());
    assert_eq!(c.run("GET only3"), Reply::Nil);
    assert_eq!(c.run("GET baz"), bulk("2"));
    c.run("SELECT 0");
    assert_eq!(c.run("GET only3"), bulk("x"));
    assert_eq!(c.run("SWAPDB 0 99"), err("ERR DB index is out of range"));
}

fn scan_all(c: &mut Conn, extra: &[&str]) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    let mut calls = 0;
    loop {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(extra);
        let r = c.cmd(&args);
        calls += 1;
        let parts = r.array();
        let next = parts[0].text();
        keys.extend(parts[1].array().iter().map(|k| k.text()));
        if next == "0" {
            return (keys, calls);
        }
        cursor = next;
        assert!(calls < 100_000, "SCAN does not terminate");
    }
}

#[test]
fn scan_returns_every_key_exactly_once() {
    let s = Server::start(&["--shards", "4"]);
    let mut c = s.conn();
    let n = 3000;
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend_from_slice(&common::encode(&[
            b"SET",
            format!("key:{i}").as_bytes(),
            b"v",
        ]));
    }
    c.send(&batch);
    for _ in 0..n {
        c.read();
    }
    let (keys, calls) = scan_all(&mut c, &["COUNT", "50"]);
    assert!(calls > 10, "only {calls} SCAN calls");
    assert_eq!(keys.len(), n, "duplicates or missing keys");
    let set: HashSet<_> = keys.iter().cloned().collect();
    assert_eq!(set.len(), n);
    let (matched, _) = scan_all(&mut c, &["MATCH", "key:1??", "COUNT", "1000"]);
    assert_eq!(matched.len(), 100);
    assert!(matched
        .iter()
        .all(|k| k.starts_with("key:1") && k.len() == 7));
    let (typed, _) = scan_all(&mut c, &["TYPE", "string", "COUNT", "1000"]);
    assert_eq!(typed.len(), n);
    let (none, _) = scan_all(&mut c, &["TYPE", "list"]);
    assert!(none.is_empty());
    assert_eq!(c.run("SCAN abc"), err("ERR invalid cursor"));
    assert_eq!(c.run("SCAN 0 COUNT 0"), err("ERR syntax error"));
}

#[test]
fn scan_under_concurrent_modification() {
    let s = Server::start(&["--shards", "4"]);
    let mut c = s.conn();
    let n = 2000;
    for i in 0..n {
        c.cmd(&["SET", &format!("stable:{i}"), "v"]);
    }
    let port = s.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let churn = std::thread::spawn(move || {
        let mut w = Conn::connect(port);
        let mut i = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            w.cmd(&["SET", &format!("tmp:{i}"), "v"]);
            if i >= 50 {
                w.cmd(&["DEL", &format!("tmp:{}", i - 50)]);
            }
            i += 1;
        }
        i
    });
    for _ in 0..3 {
        let (keys, _) = scan_all(&mut c, &["COUNT", "20"]);
        let set: HashSet<_> = keys.into_iter().collect();
        for i in 0..n {
            assert!(set.contains(&format!("stable:{i}")), "stable:{i} missed");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let churned = churn.join().unwrap();
    assert!(churned > 50, "the writer did not run concurrently");
}

/// CPU time (user + system, in clock ticks) the process used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// `busy-poll-us`: the node polls after requests while allowed, stops
/// polling once clients go quiet, and CONFIG SET turns it off.
#[test]
fn busy_polling_follows_clients_and_stops_when_they_go_quiet() {
    let s = Server::start(&["--busy-poll-us", "5000"]);
    let mut c = s.conn();
    let armed_before = info_int(&mut c, "stats", "busy_poll_armed");
    for i in 0..2000 {
        assert_eq!(c.run(&format!("SET k{} v", i % 10)), ok());
    }
    let armed_after = info_int(&mut c, "stats", "busy_poll_armed");
    if armed_before == 1 && armed_after == 1 {
        // Armed throughout (two CPUs or more, no CPU pressure meanwhile).
        assert!(info_int(&mut c, "stats", "busy_poll_episodes") >= 1);
    }
    // Quiet: after the window the node sleeps. A node still polling
    // would use a whole CPU, 100 ticks a second.
    std::thread::sleep(Duration::from_millis(100));
    let a = cpu_ticks(s.pid());
    std::thread::sleep(Duration::from_millis(1000));
    let used = cpu_ticks(s.pid()) - a;
    assert!(used < 30, "an idle node used {used} ticks in 1 s");
    // CONFIG SET busy-poll-us 0 disarms it, and no more episodes start.
    assert_eq!(c.run("CONFIG SET busy-poll-us 0"), ok());
    assert_eq!(info_int(&mut c, "stats", "busy_poll_armed"), 0);
    let episodes = info_int(&mut c, "stats", "busy_poll_episodes");
    for _ in 0..200 {
        assert_eq!(c.run("GET k1"), bulk("v"));
    }
    assert_eq!(info_int(&mut c, "stats", "busy_poll_episodes"), episodes);
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "busy-poll-us"]),
        Reply::Array(vec![bulk("busy-poll-us"), bulk("0")])
    );
}
