//! Unit tests for the command table, key extraction and COMMAND replies.
//! Expected bytes were captured from redis-server 7.0.15.

#![allow(clippy::unwrap_used)]
use super::*;
use crate::resp::Proto;
use bytes::BytesMut;

fn args(s: &str) -> Vec<Bytes> {
    s.split(' ')
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect()
}

fn run(proto: Proto, line: &str) -> Vec<u8> {
    run_args(proto, &args(line))
}

fn run_args(proto: Proto, a: &[Bytes]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let mut w = ReplyWriter::new(&mut buf, proto);
    if let Err(e) = reply_command(&mut w, a) {
        w.error(&e);
    }
    buf.to_vec()
}

#[test]
fn table_is_sorted_and_consistent() {
    let all = all();
    assert!(all.windows(2).all(|p| p[0].name < p[1].name));
    for c in all {
        assert!(std::ptr::eq(lookup(c.name.as_bytes()).unwrap(), c));
        let upper = c.name.to_ascii_uppercase();
        assert!(std::ptr::eq(lookup(upper.as_bytes()).unwrap(), c));
        assert!(c.subcommands.windows(2).all(|p| p[0].name < p[1].name));
        for s in c.subcommands {
            assert!(s.name.starts_with(c.name));
            assert!(std::ptr::eq(
                lookup_sub(c, s.short_name().as_bytes()).unwrap(),
                s
            ));
            assert!(std::ptr::eq(lookup_full(s.name.as_bytes()).unwrap(), s));
        }
    }
}

#[test]
fn lookup_is_case_insensitive() {
    assert_eq!(lookup(b"GeT").unwrap().name, "get");
    assert_eq!(lookup(b"ZUNIONSTORE").unwrap().arity, -4);
    assert!(lookup(b"nosuch").is_none());
    assert!(lookup(b"").is_none());
    let config = lookup(b"CONFIG").unwrap();
    assert_eq!(lookup_sub(config, b"GET").unwrap().name, "config|get");
    assert!(lookup_sub(config, b"nosuch").is_none());
    assert!(lookup_full(b"get|x").is_none());
    assert!(lookup_full(b"config|get|x").is_none());
}

#[test]
fn count() {
    assert_eq!(
        run(Proto::Resp2, "COMMAND COUNT"),
        format!(":{}\r\n", all().len()).into_bytes()
    );
}

#[test]
fn info_get_resp2_and_resp3() {
    let resp2: &[u8] = b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n";
    assert_eq!(run(Proto::Resp2, "COMMAND INFO get"), resp2);
    let resp3: &[u8] = b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n~3\r\n+@read\r\n+@string\r\n+@fast\r\n~0\r\n~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n%3\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n~0\r\n";
    assert_eq!(run(Proto::Resp3, "command info GET"), resp3);
}

#[test]
fn info_unknown_is_null() {
    assert_eq!(run(Proto::Resp2, "COMMAND INFO nosuch"), b"*1\r\n*-1\r\n");
    assert_eq!(run(Proto::Resp3, "COMMAND INFO nosuch"), b"*1\r\n_\r\n");
}

#[test]
fn getkeys() {
    let cases: &[(&str, &[u8])] = &[
        ("COMMAND GETKEYS get k", b"*1\r\n$1\r\nk\r\n"),
        (
            "COMMAND GETKEYS mset a 1 b 2",
            b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            "COMMAND GETKEYS zunionstore d 2 a b",
            b"*3\r\n$1\r\nd\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            "COMMAND GETKEYS zunionstore d 1abc a",
            b"*2\r\n$1\r\na\r\n$1\r\nd\r\n",
        ),
        (
            "COMMAND GETKEYS zunionstore d 0 a",
            b"-ERR Invalid arguments specified for command\r\n",
        ),
        (
            "COMMAND GETKEYS blmpop 0 2 a b left",
            b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        (
            "COMMAND GETKEYS sort k store x store y",
            b"*2\r\n$1\r\nk\r\n$1\r\ny\r\n",
        ),
        (
            "COMMAND GETKEYS migrate h p  0 5 keys a b",
            b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        ("COMMAND GETKEYS object encoding k", b"*1\r\n$1\r\nk\r\n"),
        (
            "COMMAND GETKEYS object foo k",
            b"-ERR Invalid command specified\r\n",
        ),
        (
            "COMMAND GETKEYS get a b",
            b"-ERR Invalid number of arguments specified for command\r\n",
        ),
        (
            "COMMAND GETKEYS config get x",
            b"-ERR The command has no key arguments\r\n",
        ),
        (
            "COMMAND GETKEYS get",
            b"-ERR wrong number of arguments for 'command|getkeys' command\r\n",
        ),
        (
            "COMMAND foo",
            b"-ERR unknown subcommand 'foo'. Try COMMAND HELP.\r\n",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(
            String::from_utf8_lossy(&run(Proto::Resp2, line)),
            String::from_utf8_lossy(want),
            "{line}"
        );
    }
}

#[test]
fn getkeysandflags_set() {
    assert_eq!(
        run(Proto::Resp3, "COMMAND GETKEYSANDFLAGS set k v get"),
        b"*1\r\n*2\r\n$1\r\nk\r\n~3\r\n+RW\r\n+access\r\n+update\r\n"
    );
    assert_eq!(
        run(Proto::Resp2, "COMMAND GETKEYSANDFLAGS set k v"),
        b"*1\r\n*2\r\n$1\r\nk\r\n*2\r\n+OW\r\n+update\r\n"
    );
}

#[test]
fn key_indices_for_routing() {
    let get = lookup(b"get").unwrap();
    assert_eq!(key_indices(get, &args("GET k")), Ok(vec![1]));
    let ping = lookup(b"ping").unwrap();
    assert_eq!(key_indices(ping, &args("PING")), Ok(vec![]));
    let lmpop = lookup(b"lmpop").unwrap();
    assert_eq!(
        key_indices(lmpop, &args("LMPOP 2 a b LEFT")),
        Ok(vec![2, 3])
    );
    assert_eq!(
        key_indices(lmpop, &args("LMPOP 5 a b LEFT")),
        Err(ERR_INVALID_ARGS.to_string())
    );
    let object = lookup(b"object").unwrap();
    assert_eq!(key_indices(object, &args("OBJECT ENCODING k")), Ok(vec![2]));
    assert_eq!(key_indices(object, &args("OBJECT HELP")), Ok(vec![]));
    let xs = lookup(b"sintercard").unwrap();
    assert_eq!(
        key_indices(xs, &args("SINTERCARD 2 a b LIMIT 1")),
        Ok(vec![2, 3])
    );
}

#[test]
fn list_filters() {
    let out = run(Proto::Resp2, "COMMAND LIST FILTERBY PATTERN config|*");
    let s = String::from_utf8(out).unwrap();
    assert!(s.starts_with("*5\r\n"), "{s}");
    assert_eq!(
        run(Proto::Resp2, "COMMAND LIST FILTERBY ACLCAT nosuch"),
        b"*0\r\n"
    );
    assert_eq!(
        run(Proto::Resp2, "COMMAND LIST FILTERBY MODULE m"),
        b"*0\r\n"
    );
    assert_eq!(
        run(Proto::Resp2, "COMMAND LIST FILTERBY foo bar"),
        b"-ERR syntax error\r\n"
    );
    let s = String::from_utf8(run(
        Proto::Resp2,
        "COMMAND LIST FILTERBY ACLCAT transaction",
    ))
    .unwrap();
    assert!(s.starts_with("*5\r\n"), "{s}");
}

#[test]
fn glob() {
    assert!(glob_match(b"z*store", b"zunionstore"));
    assert!(glob_match(b"Z?DD", b"zadd"));
    assert!(glob_match(b"[a-c]*", b"client"));
    assert!(!glob_match(b"[^a-c]*", b"client"));
    assert!(glob_match(b"\\*", b"*"));
    assert!(!glob_match(b"get", b"getex"));
}

/// Used by node/tools/check_cmdspec.py: reads requests from the file in
/// CMDSPEC_CHECK_IN (one per line: protocol, then hex-encoded args, tab
/// separated) and writes each reply hex-encoded, one per line, to
/// CMDSPEC_CHECK_OUT.
#[test]
#[ignore]
fn dump_for_check() {
    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
    let input = std::env::var("CMDSPEC_CHECK_IN").expect("CMDSPEC_CHECK_IN");
    let output = std::env::var("CMDSPEC_CHECK_OUT").expect("CMDSPEC_CHECK_OUT");
    let mut out = String::new();
    for line in std::fs::read_to_string(input).unwrap().lines() {
        let mut parts = line.split('\t');
        let proto = match parts.next() {
            Some("3") => Proto::Resp3,
            _ => Proto::Resp2,
        };
        let a: Vec<Bytes> = parts.map(|p| Bytes::from(unhex(p))).collect();
        for b in run_args(proto, &a) {
            out.push_str(&format!("{b:02x}"));
        }
        out.push('\n');
    }
    std::fs::write(output, out).unwrap();
}

#[test]
fn lookup_rejects_unknown_and_overlong_names() {
    assert!(lookup(b"nosuchcommand").is_none());
    assert!(lookup(b"").is_none());
    assert!(lookup(&[b'g'; 100]).is_none());
    assert!(lookup(b"mIgRaTeSlOtS").is_some());
}

/// The data path takes a command's keys from its (first, last, step) range
/// when that range is exact; it must agree with the key specs for every
/// command and argument count.
#[test]
fn legacy_key_range_agrees_with_key_specs() {
    let mut checked = 0;
    for top in all() {
        let specs: Vec<&CommandSpec> = if top.subcommands.is_empty() {
            vec![top]
        } else {
            top.subcommands.iter().collect()
        };
        for spec in specs {
            let min = spec.arity.unsigned_abs() as usize;
            for argc in min..min + 7 {
                let mut a: Vec<Bytes> = vec![Bytes::from_static(top.name.as_bytes())];
                if !top.subcommands.is_empty() {
                    a.push(Bytes::copy_from_slice(spec.short_name().as_bytes()));
                }
                while a.len() < argc {
                    a.push(Bytes::from(format!("a{}", a.len())));
                }
                let Some(range) = crate::cmd::legacy_key_range(spec, a.len()) else {
                    continue;
                };
                let Ok(want) = key_indices(spec, &a) else {
                    continue;
                };
                let got: Vec<usize> = range.filter(|&i| i < a.len()).collect();
                assert_eq!(got, want, "{} with {} arguments", spec.name, a.len());
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "only {checked} cases checked");
}
