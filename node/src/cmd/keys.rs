//! Generic key commands.

use std::collections::HashMap;

use bytes::Bytes;
use rand::Rng;

use super::{eq_ic, err, int_arg, parse_i64, Access, CmdError, CmdResult, Ctx, Entry, SYNTAX};
use crate::engine::{Value, ValueRef};
use crate::glob::glob_match;

pub fn register(m: &mut HashMap<&'static str, Entry>) {
    let k = |run| Entry {
        run,
        access: Access::Keys,
    };
    let all = |run| Entry {
        run,
        access: Access::All,
    };
    m.insert("del", k(del));
    m.insert("unlink", k(unlink));
    m.insert("exists", k(exists));
    m.insert("type", k(type_cmd));
    m.insert("expire", k(expire));
    m.insert("pexpire", k(pexpire));
    m.insert("expireat", k(expireat));
    m.insert("pexpireat", k(pexpireat));
    m.insert("ttl", k(ttl));
    m.insert("pttl", k(pttl));
    m.insert("expiretime", k(expiretime));
    m.insert("pexpiretime", k(pexpiretime));
    m.insert("persist", k(persist));
    m.insert("rename", k(rename));
    m.insert("renamenx", k(renamenx));
    m.insert("copy", all(copy));
    m.insert("touch", k(touch));
    m.insert("object", k(object));
    m.insert("memory", k(memory));
    m.insert("keys", all(keys));
    m.insert("scan", all(scan));
    m.insert("randomkey", all(randomkey));
    m.insert("dbsize", all(dbsize));
    m.insert("flushdb", all(flushdb));
    m.insert("flushall", all(flushall));
    m.insert("swapdb", all(swapdb));
}

fn del_generic(ctx: &mut Ctx, lazy: bool) -> CmdResult {
    let args = ctx.args;
    let view = ctx.view()?;
    let mut n = 0;
    for key in &args[1..] {
        let removed = if lazy {
            view.delete_lazy(key)
        } else {
            view.delete(key).is_some()
        };
        if removed {
            n += 1;
        }
    }
    ctx.out.int(n);
    Ok(())
}

fn del(ctx: &mut Ctx) -> CmdResult {
    // Large values are always freed off the engine thread; DEL and UNLINK
    // differ only in name.
    del_generic(ctx, true)
}

fn unlink(ctx: &mut Ctx) -> CmdResult {
    del_generic(ctx, true)
}

fn exists(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let view = ctx.view()?;
    let mut n = 0;
    for key in &args[1..] {
        if view.lookup_quiet(key) {
            n += 1;
        }
    }
    ctx.out.int(n);
    Ok(())
}

pub fn type_name(v: &ValueRef) -> &'static str {
    match v {
        ValueRef::Str(_) => "string",
        ValueRef::Obj(o) => o.type_name(),
    }
}

fn type_cmd(ctx: &mut Ctx) -> CmdResult {
    let key = &ctx.args[1];
    let view = ctx.view()?;
    let t = view.peek(key).map_or("none", |v| type_name(&v));
    ctx.out.simple(t);
    Ok(())
}

/// EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT with NX XX GT LT.
fn expire_generic(ctx: &mut Ctx, unit_ms: i64, absolute: bool) -> CmdResult {
    let args = ctx.args;
    let key = &args[1];
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &args[3..] {
        if eq_ic(a, "nx") {
            nx = true;
        } else if eq_ic(a, "xx") {
            xx = true;
        } else if eq_ic(a, "gt") {
            gt = true;
        } else if eq_ic(a, "lt") {
            lt = true;
        } else {
            return Err(CmdError(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(a)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return err("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return err("ERR GT and LT options at the same time are not compatible");
    }
    // Options are validated before the amount, as redis does.
    let amount = int_arg(&args[2])?;
    let name = ctx.spec.name;
    let bad = || CmdError(format!("ERR invalid expire time in '{name}' command"));
    let view = ctx.view()?;
    let now = view.now_ms;
    let mut when = amount.checked_mul(unit_ms).ok_or_else(bad)?;
    if !absolute {
        when = when.checked_add(now).ok_or_else(bad)?;
    }
    if !view.lookup_quiet(key) {
        ctx.out.int(0);
        return Ok(());
    }
    let cur = view.expire_at(key);
    let ok = match cur {
        Some(c) => !(nx || (gt && when <= c) || (lt && when >= c)),
        // A key without TTL counts as an infinite TTL.
        None => !xx && !gt,
    };
    if !ok {
        ctx.out.int(0);
        return Ok(());
    }
    if when <= now {
        view.delete(key);
        view.propagate(&[b"DEL", key]);
    } else {
        view.set_expire(key, Some(when));
        let ms = when.to_string();
        view.propagate(&[b"PEXPIREAT", key, ms.as_bytes()]);
    }
    ctx.out.int(1);
    Ok(())
}

fn expire(ctx: &mut Ctx) -> CmdResult {
    expire_generic(ctx, 1000, false)
}
fn pexpire(ctx: &mut Ctx) -> CmdResult {
    expire_generic(ctx, 1, false)
}
fn expireat(ctx: &mut Ctx) -> CmdResult {
    expire_generic(ctx, 1000, true)
}
fn pexpireat(ctx: &mut Ctx) -> CmdResult {
    expire_generic(ctx, 1, true)
}

/// TTL-family reply: -2 missing, -1 persistent.
fn ttl_generic(ctx: &mut Ctx, ms: bool, absolute: bool) -> CmdResult {
    let key = &ctx.args[1];
    let view = ctx.view()?;
    let now = view.now_ms;
    if !view.lookup_quiet(key) {
        ctx.out.int(-2);
        return Ok(());
    }
    let r = match view.expire_at(key) {
        None => -1,
        Some(at) => {
            let v = if absolute { at } else { (at - now).max(0) };
            if ms {
                v
            } else {
                // Rounded for TTL and EXPIRETIME alike, as redis does.
                (v + 500) / 1000
            }
        }
    };
    ctx.out.int(r);
    Ok(())
}

fn ttl(ctx: &mut Ctx) -> CmdResult {
    ttl_generic(ctx, false, false)
}
fn pttl(ctx: &mut Ctx) -> CmdResult {
    ttl_generic(ctx, true, false)
}
fn expiretime(ctx: &mut Ctx) -> CmdResult {
    ttl_generic(ctx, false, true)
}
fn pexpiretime(ctx: &mut Ctx) -> CmdResult {
    ttl_generic(ctx, true, true)
}

fn persist(ctx: &mut Ctx) -> CmdResult {
    let key = &ctx.args[1];
    let view = ctx.view()?;
    let had = view.expire_at(key).is_some();
    if had {
        view.set_expire(key, None);
    }
    ctx.out.int(i64::from(had));
    Ok(())
}

fn rename_generic(ctx: &mut Ctx, nx: bool) -> CmdResult {
    let (src, dst) = (&ctx.args[1], &ctx.args[2]);
    let view = ctx.view()?;
    if !view.lookup_quiet(src) {
        return err("ERR no such key");
    }
    if src == dst {
        if nx {
            ctx.out.int(0);
        } else {
            ctx.out.ok();
        }
        return Ok(());
    }
    if nx && view.lookup_quiet(dst) {
        ctx.out.int(0);
        return Ok(());
    }
    let ttl = view.expire_at(src);
    let Some(v) = view.delete(src) else {
        return err("ERR no such key");
    };
    if let Some(Value::Obj(o)) = view.set(dst, v, false) {
        view.keyspace.free_later(Box::new(o));
    }
    if ttl.is_some() {
        view.set_expire(dst, ttl);
    }
    if nx {
        ctx.out.int(1);
    } else {
        ctx.out.ok();
    }
    Ok(())
}

fn rename(ctx: &mut Ctx) -> CmdResult {
    rename_generic(ctx, false)
}
fn renamenx(ctx: &mut Ctx) -> CmdResult {
    rename_generic(ctx, true)
}

fn copy(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (src, dst) = (&args[1], &args[2]);
    let mut replace = false;
    let mut dbid = None;
    let mut i = 3;
    while i < args.len() {
        if eq_ic(&args[i], "replace") {
            replace = true;
        } else if eq_ic(&args[i], "db") && i + 1 < args.len() {
            let id = parse_i64(&args[i + 1])
                .ok_or_else(|| CmdError::new("ERR value is not an integer or out of range"))?;
            // Checked here, before later options, like redis.
            if id < 0 || id >= ctx.node.keyspace.databases as i64 {
                return err("ERR DB index is out of range");
            }
            dbid = Some(id);
            i += 1;
        } else {
            return err(SYNTAX);
        }
        i += 1;
    }
    let ndb = ctx.node.keyspace.databases as i64;
    let src_db = ctx.client.db;
    let dst_db = match dbid {
        Some(id) if id < 0 || id >= ndb => return err("ERR DB index is out of range"),
        Some(id) => id as usize,
        None => src_db,
    };
    if src == dst && src_db == dst_db {
        return err("ERR source and destination objects are the same");
    }
    let view = ctx.view()?;
    let Some(val) = view.peek(src).map(clone_value) else {
        ctx.out.int(0);
        return Ok(());
    };
    let ttl = view.expire_at(src);
    view.db = dst_db;
    let res = (|| {
        if view.lookup_quiet(dst) {
            if !replace {
                return 0;
            }
            view.delete(dst);
        }
        view.set(dst, val, false);
        if ttl.is_some() {
            view.set_expire(dst, ttl);
        }
        1
    })();
    view.db = src_db;
    ctx.out.int(res);
    Ok(())
}

/// Deep copy of a value (COPY).
pub fn clone_value(v: ValueRef) -> Value {
    match v {
        ValueRef::Str(s) => Value::Str(s.to_vec()),
        ValueRef::Obj(o) => Value::Obj(o.clone()),
    }
}

fn touch(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let view = ctx.view()?;
    let mut n = 0;
    for key in &args[1..] {
        if view.get(key).is_some() {
            n += 1;
        }
    }
    ctx.out.int(n);
    Ok(())
}

/// OBJECT ENCODING name of a string, as redis would have stored it.
pub fn string_encoding(s: &[u8], raw: bool) -> &'static str {
    // Strings modified in place (APPEND, SETRANGE) stay raw in redis even
    // when they look like integers.
    if raw {
        "raw"
    } else if s.len() <= 20 && parse_i64(s).is_some() {
        "int"
    } else if s.len() > 44 {
        "raw"
    } else {
        "embstr"
    }
}

fn object(ctx: &mut Ctx) -> CmdResult {
    let sub = ctx.args[1].to_ascii_lowercase();
    if sub == b"help" {
        let lines = [
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Prints this help.",
        ];
        super::reply_lines(&mut ctx.out, &lines);
        return Ok(());
    }
    let key = ctx.args[2].clone();
    let lfu = ctx
        .node
        .config
        .read()
        .maxmemory_policy
        .as_str()
        .contains("lfu");
    let clock = ctx.node.lru_clock();
    let view = ctx.view()?;
    let Some(meta) = view.meta(&key) else {
        ctx.out.null();
        return Ok(());
    };
    match &sub[..] {
        b"encoding" => {
            let enc = match view.peek(&key) {
                Some(ValueRef::Str(s)) if meta.noint && !meta.raw_encoding => {
                    if s.len() > 44 {
                        "raw"
                    } else {
                        "embstr"
                    }
                }
                Some(ValueRef::Str(s)) => string_encoding(s, meta.raw_encoding),
                Some(ValueRef::Obj(o)) => o.encoding(),
                None => "none",
            };
            ctx.out.bulk_str(enc);
        }
        b"refcount" => {
            let shared = !meta.raw_encoding
                && !meta.noint
                && matches!(view.peek(&key), Some(ValueRef::Str(s)) if s.len() <= 5 && parse_i64(s).is_some_and(|n| (0..10000).contains(&n)));
            ctx.out.int(if shared { i64::from(i32::MAX) } else { 1 });
        }
        b"idletime" => {
            if lfu {
                return err("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
            }
            let idle = if clock >= meta.lru {
                clock - meta.lru
            } else {
                clock + (crate::engine::table::LRU_CLOCK_MAX - meta.lru)
            };
            ctx.out.int(i64::from(idle));
        }
        b"freq" => {
            if !lfu {
                return err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
            }
            let p = ctx
                .node
                .hot
                .lfu()
                .unwrap_or(crate::engine::table::LfuParams {
                    log_factor: 10,
                    decay_minutes: 1,
                });
            let freq = crate::engine::table::lfu_decayed(meta.lru, crate::engine::now_minutes(), p);
            ctx.out.int(i64::from(freq));
        }
        _ => {
            return Err(CmdError(format!(
                "ERR unknown subcommand '{}'. Try OBJECT HELP.",
                String::from_utf8_lossy(&ctx.args[1])
            )))
        }
    }
    Ok(())
}

fn memory(ctx: &mut Ctx) -> CmdResult {
    let sub = ctx.args[1].to_ascii_lowercase();
    match &sub[..] {
        b"usage" => {
            let args = ctx.args;
            if args.len() != 3 && !(args.len() == 5 && eq_ic(&args[3], "samples")) {
                return err(SYNTAX);
            }
            if args.len() == 5 {
                int_arg(&args[4])?;
            }
            let key = &args[2];
            let view = ctx.view()?;
            match view.memory_usage(key) {
                Some(n) => ctx.out.int(n as i64),
                None => ctx.out.null(),
            }
        }
        b"malloc-stats" if ctx.args.len() == 2 => {
            let text = super::server::allocator_report();
            ctx.out.verbatim(&text);
        }
        b"purge" if ctx.args.len() == 2 => {
            super::server::allocator_purge();
            ctx.out.ok();
        }
        b"help" => {
            let lines = [
                "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value. Nested values are",
                "    sampled up to <count> times (default: 5, 0 means sample all).",
                "MALLOC-STATS",
                "    Return internal statistics report from the memory allocator.",
                "PURGE",
                "    Attempt to purge dirty pages for reclamation by the allocator.",
                "HELP",
                "    Prints this help.",
            ];
            super::reply_lines(&mut ctx.out, &lines);
        }
        _ => {
            return Err(CmdError(format!(
                "ERR unknown subcommand '{}'. Try MEMORY HELP.",
                String::from_utf8_lossy(&ctx.args[1])
            )))
        }
    }
    Ok(())
}

fn keys(ctx: &mut Ctx) -> CmdResult {
    let pattern = ctx.args[1].clone();
    let view = ctx.view()?;
    let mut found: Vec<Bytes> = Vec::new();
    let all = pattern[..] == b"*"[..];
    for slot in 0..crate::engine::SLOTS {
        view.for_each_key_in_slot(slot, |k| {
            if all || glob_match(&pattern, k, false) {
                found.push(Bytes::copy_from_slice(k));
            }
        });
    }
    found.retain(|k| view.lookup_quiet(k));
    ctx.out.array(found.len());
    for k in found {
        ctx.out.bulk(&k);
    }
    Ok(())
}

fn scan(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let cursor = parse_cursor(&args[1]).ok_or_else(|| CmdError::new("ERR invalid cursor"))?;
    let mut pattern: Option<Bytes> = None;
    let mut count = 10usize;
    let mut type_filter: Option<Vec<u8>> = None;
    let mut i = 2;
    while i < args.len() {
        let has_val = i + 1 < args.len();
        if eq_ic(&args[i], "match") && has_val {
            pattern = Some(args[i + 1].clone());
        } else if eq_ic(&args[i], "count") && has_val {
            let c = int_arg(&args[i + 1])?;
            if c < 1 {
                return err(SYNTAX);
            }
            count = c as usize;
        } else if eq_ic(&args[i], "type") && has_val {
            type_filter = Some(args[i + 1].to_ascii_lowercase());
        } else {
            return err(SYNTAX);
        }
        i += 2;
    }
    let view = ctx.view()?;
    let mut keys: Vec<Bytes> = Vec::new();
    let next = if cursor as usize >= crate::engine::SLOTS {
        0
    } else {
        view.scan_slots(cursor as usize, count, |k| {
            keys.push(Bytes::copy_from_slice(k))
        })
    };
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        if let Some(p) = &pattern {
            if !glob_match(p, &k, false) {
                continue;
            }
        }
        let Some(v) = view.peek(&k) else { continue };
        if let Some(t) = &type_filter {
            if type_name(&v).as_bytes() != &t[..] {
                continue;
            }
        }
        out.push(k);
    }
    ctx.out.array(2);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.array(out.len());
    for k in out {
        ctx.out.bulk(&k);
    }
    Ok(())
}

/// Parses a SCAN cursor like redis (C `strtoul`): an optional sign (a
/// negative value wraps around), decimal digits, no surrounding spaces.
pub fn parse_cursor(b: &[u8]) -> Option<u64> {
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

fn randomkey(ctx: &mut Ctx) -> CmdResult {
    let view = ctx.view()?;
    let mut rng = rand::thread_rng();
    match view.random_key(|n| rng.gen_range(0..n.max(1))) {
        Some(k) => ctx.out.bulk(&k),
        None => ctx.out.null(),
    }
    Ok(())
}

fn dbsize(ctx: &mut Ctx) -> CmdResult {
    let n = ctx.view()?.dbsize();
    ctx.out.int(n as i64);
    Ok(())
}

fn flush_mode(ctx: &Ctx) -> Result<bool, CmdError> {
    match ctx.args.get(1) {
        None => Ok(false),
        Some(a) if eq_ic(a, "async") && ctx.args.len() == 2 => Ok(true),
        Some(a) if eq_ic(a, "sync") && ctx.args.len() == 2 => Ok(false),
        _ => err(SYNTAX),
    }
}

fn flushdb(ctx: &mut Ctx) -> CmdResult {
    let lazy = flush_mode(ctx)?;
    let view = ctx.view()?;
    view.flush(false, lazy);
    view.propagate(&[b"FLUSHDB"]);
    ctx.out.ok();
    Ok(())
}

fn flushall(ctx: &mut Ctx) -> CmdResult {
    let lazy = flush_mode(ctx)?;
    let view = ctx.view()?;
    view.flush(true, lazy);
    view.propagate(&[b"FLUSHALL"]);
    ctx.out.ok();
    Ok(())
}

fn swapdb(ctx: &mut Ctx) -> CmdResult {
    let ndb = ctx.node.keyspace.databases as i64;
    // Indexes must fit a C int (redis's getIntFromObjectOrReply).
    let as_int = |a: &[u8]| parse_i64(a).filter(|n| i32::try_from(*n).is_ok());
    let a = as_int(&ctx.args[1]).ok_or_else(|| CmdError::new("ERR invalid first DB index"))?;
    let b = as_int(&ctx.args[2]).ok_or_else(|| CmdError::new("ERR invalid second DB index"))?;
    if a < 0 || a >= ndb || b < 0 || b >= ndb {
        return err("ERR DB index is out of range");
    }
    let view = ctx.view()?;
    if a != b {
        view.swap_db(a as usize, b as usize);
        view.dirty += 1;
    }
    ctx.out.ok();
    Ok(())
}
