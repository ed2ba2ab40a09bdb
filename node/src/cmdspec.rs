//! Temporary command metadata (replaced by the generated table).
use bytes::Bytes;

pub mod flag {
    pub const WRITE: u64 = 1;
    pub const READONLY: u64 = 2;
    pub const DENYOOM: u64 = 4;
    pub const ADMIN: u64 = 8;
    pub const PUBSUB: u64 = 16;
    pub const NOSCRIPT: u64 = 32;
    pub const BLOCKING: u64 = 64;
    pub const LOADING: u64 = 128;
    pub const STALE: u64 = 256;
    pub const FAST: u64 = 512;
    pub const NO_AUTH: u64 = 1024;
    pub const MAY_REPLICATE: u64 = 2048;
    pub const NO_MULTI: u64 = 4096;
    pub const SKIP_MONITOR: u64 = 8192;
    pub const SKIP_SLOWLOG: u64 = 16384;
}

pub struct CommandSpec {
    pub name: &'static str,
    pub arity: i32,
    pub flags: u64,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub subcommands: &'static [CommandSpec],
}

macro_rules! c {
    ($n:expr, $a:expr, $f:expr, $fk:expr, $lk:expr, $s:expr) => {
        CommandSpec {
            name: $n,
            arity: $a,
            flags: $f,
            first_key: $fk,
            last_key: $lk,
            step: $s,
            subcommands: &[],
        }
    };
}
use flag::*;
static TABLE: &[CommandSpec] = &[
    c!("get", 2, READONLY | FAST, 1, 1, 1),
    c!("set", -3, WRITE | DENYOOM, 1, 1, 1),
    c!("del", -2, WRITE, 1, -1, 1),
    c!("mget", -2, READONLY | FAST, 1, -1, 1),
    c!("mset", -3, WRITE | DENYOOM, 1, -1, 2),
    c!("incr", 2, WRITE | DENYOOM | FAST, 1, 1, 1),
    c!("ping", -1, FAST, 0, 0, 0),
    c!("command", -1, LOADING | STALE, 0, 0, 0),
    c!("config", -2, ADMIN, 0, 0, 0),
    c!("info", -1, LOADING | STALE, 0, 0, 0),
    c!("hello", -1, NO_AUTH | FAST, 0, 0, 0),
    c!("auth", -2, NO_AUTH | FAST, 0, 0, 0),
    c!("quit", -1, NO_AUTH | FAST, 0, 0, 0),
    c!("select", 2, LOADING | FAST, 0, 0, 0),
    c!("dbsize", 1, READONLY | FAST, 0, 0, 0),
    c!("flushall", -1, WRITE, 0, 0, 0),
    c!("flushdb", -1, WRITE, 0, 0, 0),
    c!("multi", 1, FAST | NO_MULTI, 0, 0, 0),
    c!("exec", 1, NO_MULTI, 0, 0, 0),
    c!("discard", 1, FAST | NO_MULTI, 0, 0, 0),
    c!("watch", -2, FAST | NO_MULTI, 1, -1, 1),
    c!("unwatch", 1, FAST, 0, 0, 0),
    c!("subscribe", -2, PUBSUB, 0, 0, 0),
    c!("publish", 3, PUBSUB | FAST, 0, 0, 0),
    c!("client", -2, ADMIN, 0, 0, 0),
    c!("echo", 2, FAST, 0, 0, 0),
    c!("expire", -3, WRITE | FAST, 1, 1, 1),
    c!("ttl", 2, READONLY | FAST, 1, 1, 1),
    c!("pttl", 2, READONLY | FAST, 1, 1, 1),
    c!("exists", -2, READONLY | FAST, 1, -1, 1),
    c!("keys", 2, READONLY, 0, 0, 0),
    c!("scan", -2, READONLY, 0, 0, 0),
    c!("debug", -2, ADMIN, 0, 0, 0),
    c!("shutdown", -1, ADMIN, 0, 0, 0),
];

pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    TABLE
        .iter()
        .find(|c| c.name.as_bytes().eq_ignore_ascii_case(name))
}
pub fn all() -> &'static [CommandSpec] {
    TABLE
}
pub fn key_indices(spec: &CommandSpec, args: &[Bytes]) -> Result<Vec<usize>, String> {
    if spec.first_key <= 0 {
        return Ok(vec![]);
    }
    let last = if spec.last_key < 0 {
        args.len() as i32 + spec.last_key
    } else {
        spec.last_key
    };
    let mut v = vec![];
    let mut i = spec.first_key;
    while i <= last && (i as usize) < args.len() {
        v.push(i as usize);
        i += spec.step.max(1);
    }
    Ok(v)
}
pub fn reply_command(w: &mut crate::resp::ReplyWriter, _args: &[Bytes]) -> Result<(), String> {
    w.int(TABLE.len() as i64);
    Ok(())
}
