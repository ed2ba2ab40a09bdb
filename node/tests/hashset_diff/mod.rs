//! Differential-test driver shared by the hash and set tests: sends the
//! same commands to shardline and to redis-server 7.0 and compares the
//! replies, byte for byte where redis's reply is deterministic.

#![allow(dead_code)]

use crate::common::{parse_reply, Conn, Reply, Server};

pub fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn show(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|a| {
            let s = String::from_utf8_lossy(a);
            if s.len() > 24 {
                format!("{}..({})", &s[..20], s.len())
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse(raw: &[u8]) -> Reply {
    parse_reply(raw, 0).expect("parse").expect("complete").0
}

/// Sort key of a reply element.
fn key_of(r: &Reply) -> String {
    format!("{r:?}")
}

/// The reply with the order of collection elements removed. With `pairs`,
/// flat arrays are treated as field/value pairs.
pub fn unordered(r: Reply, pairs: bool) -> Reply {
    match r {
        Reply::Array(v)
            if pairs && v.len() % 2 == 0 && v.iter().all(|e| !matches!(e, Reply::Array(_))) =>
        {
            let mut ps: Vec<Reply> = v.chunks(2).map(|c| Reply::Array(c.to_vec())).collect();
            ps.sort_by_key(key_of);
            Reply::Array(ps)
        }
        Reply::Array(mut v) => {
            v.sort_by_key(key_of);
            Reply::Array(v)
        }
        Reply::Set(mut v) => {
            v.sort_by_key(key_of);
            Reply::Set(v)
        }
        Reply::Map(mut v) => {
            v.sort_by_key(|(k, _)| key_of(k));
            Reply::Map(v)
        }
        other => other,
    }
}

/// Types and lengths of a reply, without contents.
pub fn shape(r: &Reply) -> String {
    match r {
        Reply::Array(v) => format!(
            "*{}[{}]",
            v.len(),
            v.iter().map(shape).collect::<Vec<_>>().join(",")
        ),
        Reply::Set(v) => format!(
            "~{}[{}]",
            v.len(),
            v.iter().map(shape).collect::<Vec<_>>().join(",")
        ),
        Reply::Map(v) => format!("%{}", v.len()),
        Reply::Bulk(_) => "$".into(),
        Reply::Error(e) => format!("-{e}"),
        Reply::Int(i) => format!(":{i}"),
        other => format!("{other:?}"),
    }
}

/// Bulk strings anywhere in a reply.
pub fn bulks(r: &Reply, out: &mut Vec<Vec<u8>>) {
    match r {
        Reply::Bulk(b) => out.push(b.clone()),
        Reply::Array(v) | Reply::Set(v) => v.iter().for_each(|e| bulks(e, out)),
        Reply::Map(v) => v.iter().for_each(|(k, e)| {
            bulks(k, out);
            bulks(e, out);
        }),
        _ => {}
    }
}

pub struct Pair {
    pub ours: Conn,
    pub redis: Conn,
    pub resp3: bool,
    pub checked: usize,
    history: Vec<String>,
}

impl Pair {
    pub fn new(ours: &Server, redis: &Server) -> Pair {
        Pair {
            ours: ours.conn(),
            redis: redis.conn(),
            resp3: false,
            checked: 0,
            history: Vec::new(),
        }
    }

    /// Records a command sent outside `both` in the failure history.
    pub fn note_only(&mut self, args: &[Vec<u8>]) {
        self.note(args);
    }

    fn note(&mut self, args: &[Vec<u8>]) {
        self.history.push(show(args));
        if self.history.len() > 30 {
            self.history.remove(0);
        }
    }

    fn fail(
        &mut self,
        what: &str,
        args: &[Vec<u8>],
        redis: &dyn std::fmt::Debug,
        ours: &dyn std::fmt::Debug,
    ) -> ! {
        let rk = self.redis.cmd(&["KEYS", "*"]);
        let ok = self.ours.cmd(&["KEYS", "*"]);
        panic!(
            "{what} differs for `{}` (resp3={})\n redis: {redis:?}\n ours:  {ours:?}\nlast commands:\n  {}\nkeys: redis {rk:?}\n      ours  {ok:?}",
            show(args),
            self.resp3,
            self.history.join("\n  ")
        );
    }

    pub fn both(&mut self, args: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
        self.note(args);
        let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        let o = self.ours.call_raw(&refs);
        let r = self.redis.call_raw(&refs);
        (r, o)
    }

    pub fn redis_only(&mut self, args: &[&str]) -> Reply {
        self.redis.cmd(args)
    }

    pub fn ours_only(&mut self, args: &[&str]) -> Reply {
        self.ours.cmd(args)
    }

    /// Both replies must be byte-identical.
    pub fn exact(&mut self, args: &[Vec<u8>]) -> Reply {
        let (r, o) = self.both(args);
        if r != o {
            self.fail(
                "reply",
                args,
                &String::from_utf8_lossy(&r),
                &String::from_utf8_lossy(&o),
            );
        }
        self.checked += 1;
        self.paranoid(args);
        parse(&r)
    }

    /// With HASHSET_DIFF_PARANOID set, compares the key sets after every
    /// command (slow; for debugging a divergence).
    fn paranoid(&mut self, args: &[Vec<u8>]) {
        if std::env::var_os("HASHSET_DIFF_PARANOID").is_none() {
            return;
        }
        let rk = unordered(self.redis.cmd(&["KEYS", "*"]), false);
        let ok = unordered(self.ours.cmd(&["KEYS", "*"]), false);
        if rk != ok {
            self.fail("key set", args, &rk, &ok);
        }
        let txt: Vec<String> = rk.array().iter().map(|k| k.text()).collect();
        let ttls: Vec<String> = txt
            .iter()
            .map(|k| format!("{:?}", self.ours.cmd(&["PTTL", k])))
            .collect();
        let exp = crate::common::info_int(&mut self.ours, "stats", "expired_keys");
        self.history
            .push(format!("    keys: {txt:?} ttls {ttls:?} expired {exp}"));
    }

    /// Same elements, any order.
    pub fn unordered(&mut self, args: &[Vec<u8>], pairs: bool) -> Reply {
        let (r, o) = self.both(args);
        if r.first() != o.first() {
            self.fail(
                "reply type",
                args,
                &String::from_utf8_lossy(&r),
                &String::from_utf8_lossy(&o),
            );
        }
        let (rr, oo) = (unordered(parse(&r), pairs), unordered(parse(&o), pairs));
        if rr != oo {
            self.fail("unordered reply", args, &rr, &oo);
        }
        self.checked += 1;
        parse(&r)
    }

    /// Same shape (types and lengths); returns (redis, ours).
    pub fn same_shape(&mut self, args: &[Vec<u8>]) -> (Reply, Reply) {
        let (r, o) = self.both(args);
        let (rr, oo) = (parse(&r), parse(&o));
        if shape(&rr) != shape(&oo) {
            self.fail("reply shape", args, &rr, &oo);
        }
        self.checked += 1;
        (rr, oo)
    }

    /// OBJECT ENCODING of a key on redis ("" if missing).
    pub fn redis_encoding(&mut self, key: &[u8]) -> String {
        match self.redis.call(&[b"OBJECT", b"ENCODING", key]) {
            Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        }
    }

    pub fn redis_type(&mut self, key: &[u8]) -> String {
        self.redis.call(&[b"TYPE", key]).text()
    }

    pub fn set_proto(&mut self, resp3: bool) {
        let v = if resp3 { "3" } else { "2" };
        self.ours.cmd(&["HELLO", v]);
        self.redis.cmd(&["HELLO", v]);
        self.resp3 = resp3;
    }

    /// Runs a complete SCAN-family iteration on both servers and compares
    /// the sets of returned elements (cursors are implementation details).
    pub fn full_scan(&mut self, cmd: &str, key: &[u8], pairs: bool, opts: &[Vec<u8>]) {
        let collect = |c: &mut Conn| -> Result<Vec<String>, String> {
            let mut cursor = b"0".to_vec();
            let mut all = std::collections::BTreeSet::new();
            for _ in 0..100_000 {
                let mut args: Vec<&[u8]> = vec![cmd.as_bytes(), key, &cursor];
                args.extend(opts.iter().map(|o| &o[..]));
                let r = c.call(&args);
                let Reply::Array(v) = r else {
                    return Err(format!("{r:?}"));
                };
                let next = v[0].text();
                let items = v[1].array();
                if pairs {
                    for p in items.chunks(2) {
                        all.insert(format!("{:?}={:?}", p[0], p[1]));
                    }
                } else {
                    for e in items {
                        all.insert(format!("{e:?}"));
                    }
                }
                if next == "0" {
                    return Ok(all.into_iter().collect());
                }
                cursor = next.into_bytes();
            }
            Err("scan did not terminate".into())
        };
        let r = collect(&mut self.redis);
        let o = collect(&mut self.ours);
        if r != o {
            let args = vec![cmd.as_bytes().to_vec(), key.to_vec()];
            self.fail("full scan", &args, &r, &o);
        }
        self.checked += 1;
    }
}

/// Starts shardline (2 shards) and redis-server.
/// redis-server without a config file uses its compiled-in defaults, which
/// differ from the shipped redis.conf (and from shardline's defaults) for
/// hash-max-listpack-entries (512 vs 128): align redis with shardline.
pub fn servers() -> (Server, Server) {
    let ours = Server::start(&["--shards", "2"]);
    let redis = Server::start_redis();
    let (mut o, mut r) = (ours.conn(), redis.conn());
    for name in [
        "hash-max-listpack-entries",
        "hash-max-listpack-value",
        "set-max-intset-entries",
    ] {
        let v = o.cmd(&["CONFIG", "GET", name]);
        let val = v.array()[1].text();
        assert_eq!(r.cmd(&["CONFIG", "SET", name, &val]), Reply::ok());
    }
    (ours, redis)
}
