//! Set commands.

use std::collections::HashMap;

use bytes::Bytes;

use super::hash::{
    check_owned, empty_scan, matches, parse_cursor, parse_scan_opts, parts, put, rand_count,
    rnd_fn, sample_indexes,
};
use super::{eq_ic, err, parse_i64, Access, CmdError, CmdResult, Ctx, Entry, SYNTAX, WRONGTYPE};
use crate::engine::types::hash::Elem;
use crate::engine::types::set::SetObj;
use crate::engine::types::EncodingLimits;
use crate::engine::{Object, Value, ValueRef, View};
use crate::resp::ReplyWriter;

pub fn register(m: &mut HashMap<&'static str, Entry>) {
    let k = |run| Entry {
        run,
        access: Access::Keys,
    };
    m.insert("sadd", k(sadd));
    m.insert("srem", k(srem));
    m.insert("smembers", k(smembers));
    m.insert("sismember", k(sismember));
    m.insert("smismember", k(smismember));
    m.insert("scard", k(scard));
    m.insert("spop", k(spop));
    m.insert("srandmember", k(srandmember));
    m.insert("smove", k(smove));
    m.insert("sunion", k(sunion));
    m.insert("sinter", k(sinter));
    m.insert("sdiff", k(sdiff));
    m.insert("sunionstore", k(sunionstore));
    m.insert("sinterstore", k(sinterstore));
    m.insert("sdiffstore", k(sdiffstore));
    m.insert("sintercard", k(sintercard));
    m.insert("sscan", k(sscan));
}

fn read_set<'v>(view: &'v mut View<'_>, key: &[u8]) -> Result<Option<&'v SetObj>, CmdError> {
    match view.get(key) {
        None => Ok(None),
        Some(ValueRef::Obj(Object::Set(s))) => Ok(Some(s)),
        Some(_) => err(WRONGTYPE),
    }
}

/// A set already type-checked by this command (no statistics).
fn peek_set<'v>(view: &'v mut View<'_>, key: &[u8]) -> Option<&'v SetObj> {
    match view.peek(key) {
        Some(ValueRef::Obj(Object::Set(s))) => Some(s),
        _ => None,
    }
}

fn check_write_type(view: &mut View<'_>, key: &[u8]) -> Result<bool, CmdError> {
    match view.get_for_write(key) {
        None => Ok(false),
        Some(ValueRef::Obj(Object::Set(_))) => Ok(true),
        Some(_) => err(WRONGTYPE),
    }
}

fn write_set<'v>(view: &'v mut View<'_>, key: &[u8]) -> Result<Option<&'v mut SetObj>, CmdError> {
    if !check_write_type(view, key)? {
        return Ok(None);
    }
    match view.obj_mut(key) {
        Some(Object::Set(s)) => Ok(Some(s)),
        _ => Ok(None),
    }
}

fn sadd(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let limits = ctx.node.hot.limits();
    let (view, out) = parts(ctx)?;
    let key = &args[1];
    let mut added = 0;
    match write_set(view, key)? {
        Some(s) => {
            for m in &args[2..] {
                if s.add(m, &limits) {
                    added += 1;
                }
            }
            if added > 0 {
                view.modified(key);
            }
        }
        None => {
            let mut s = SetObj::for_first(&args[2]);
            for m in &args[2..] {
                if s.add(m, &limits) {
                    added += 1;
                }
            }
            view.set(key, Value::Obj(Object::Set(s)), false);
        }
    }
    out.int(added);
    Ok(())
}

/// Deletes the key if the set became empty, else records the change.
fn after_removal(view: &mut View<'_>, key: &[u8], empty: bool) {
    if empty {
        view.delete(key);
    } else {
        view.modified(key);
    }
}

fn srem(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    let key = &args[1];
    let Some(s) = write_set(view, key)? else {
        out.int(0);
        return Ok(());
    };
    let mut n = 0;
    for m in &args[2..] {
        if s.remove(m) {
            n += 1;
            if s.is_empty() {
                break;
            }
        }
    }
    let empty = s.is_empty();
    if n > 0 {
        after_removal(view, key, empty);
    }
    out.int(n);
    Ok(())
}

fn reply_set(out: &mut ReplyWriter<'_>, s: &SetObj) {
    out.set(s.len());
    s.for_each(|e| put(out, e));
}

fn smembers(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    match read_set(view, &args[1])? {
        Some(s) => reply_set(out, s),
        None => out.set(0),
    }
    Ok(())
}

fn sismember(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    let found = read_set(view, &args[1])?.is_some_and(|s| s.contains(&args[2]));
    out.int(i64::from(found));
    Ok(())
}

fn smismember(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    let s = read_set(view, &args[1])?;
    out.array(args.len() - 2);
    for m in &args[2..] {
        out.int(i64::from(s.is_some_and(|s| s.contains(m))));
    }
    Ok(())
}

fn scard(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    let n = read_set(view, &args[1])?.map_or(0, |s| s.len());
    out.int(n as i64);
    Ok(())
}

fn spop(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    if args.len() > 3 {
        return err(SYNTAX);
    }
    let count = match args.get(2) {
        None => None,
        Some(a) => match parse_i64(a) {
            Some(c) if c >= 0 => Some(c as u64),
            _ => return err("ERR value is out of range, must be positive"),
        },
    };
    let limits = ctx.node.hot.limits();
    let (view, out) = parts(ctx)?;
    let key = &args[1];
    let mut rnd = rnd_fn();
    let Some(s) = write_set(view, key)? else {
        match count {
            None => out.null(),
            Some(_) => out.set(0),
        }
        return Ok(());
    };
    let Some(count) = count else {
        let Some(m) = s.pop_random(&mut rnd) else {
            out.null();
            return Ok(());
        };
        let empty = s.is_empty();
        after_removal(view, key, empty);
        view.propagate(&[b"SREM", key, &m]);
        out.bulk(&m);
        return Ok(());
    };
    let size = s.len() as u64;
    if count == 0 {
        out.set(0);
        return Ok(());
    }
    if count >= size {
        // The whole set, in the order of a freshly built copy (what redis's
        // SUNION of the single key replies).
        let members = s.members();
        let copy = SetObj::build(members.iter().map(|m| &m[..]), &limits);
        reply_set(out, &copy);
        view.delete(key);
        view.propagate(&[b"DEL", key]);
        return Ok(());
    }
    let mut popped = Vec::with_capacity(count as usize);
    for _ in 0..count {
        if let Some(m) = s.pop_random(&mut rnd) {
            popped.push(m);
        }
    }
    if count * 5 > size {
        // Redis builds a new set from the remaining members here, so the
        // encoding may go back to intset.
        let rest = s.members();
        *s = SetObj::build(rest.iter().map(|m| &m[..]), &limits);
    }
    view.modified(key);
    out.set(popped.len());
    for m in &popped {
        out.bulk(m);
        view.propagate(&[b"SREM", key, m]);
    }
    Ok(())
}

fn srandmember(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let mut rnd = rnd_fn();
    if args.len() == 2 {
        let (view, out) = parts(ctx)?;
        match read_set(view, &args[1])?.and_then(|s| s.random(&mut rnd)) {
            Some(e) => put(out, e),
            None => out.null(),
        }
        return Ok(());
    }
    if args.len() > 3 {
        return err(SYNTAX);
    }
    let l = rand_count(&args[2])?;
    let (view, out) = parts(ctx)?;
    let Some(s) = read_set(view, &args[1])? else {
        out.array(0);
        return Ok(());
    };
    if l == 0 {
        out.array(0);
    } else if l < 0 {
        let n = l.unsigned_abs() as usize;
        out.array(n);
        for _ in 0..n {
            if let Some(e) = s.random(&mut rnd) {
                put(out, e);
            }
        }
    } else if l as usize >= s.len() {
        out.array(s.len());
        s.for_each(|e| put(out, e));
    } else {
        let mut all: Vec<Elem<'_>> = Vec::with_capacity(s.len());
        s.for_each(|e| all.push(e));
        let picks = sample_indexes(all.len(), l as usize, &mut rnd);
        out.array(picks.len());
        for i in picks {
            put(out, all[i]);
        }
    }
    Ok(())
}

fn smove(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let limits = ctx.node.hot.limits();
    let (view, out) = parts(ctx)?;
    check_owned(view, &args[1..3])?;
    let (src, dst, m) = (&args[1], &args[2], &args[3]);
    let src_exists = view.lookup_quiet(src);
    if !src_exists {
        out.int(0);
        return Ok(());
    }
    check_write_type(view, src)?;
    let dst_exists = check_write_type(view, dst)?;
    if src == dst {
        let found = peek_set(view, src).is_some_and(|s| s.contains(m));
        out.int(i64::from(found));
        return Ok(());
    }
    let Some(s) = write_set(view, src)? else {
        out.int(0);
        return Ok(());
    };
    if !s.remove(m) {
        out.int(0);
        return Ok(());
    }
    let empty = s.is_empty();
    after_removal(view, src, empty);
    if dst_exists {
        if let Some(d) = write_set(view, dst)? {
            if d.add(m, &limits) {
                view.modified(dst);
            }
        }
    } else {
        let mut d = SetObj::for_first(m);
        d.add(m, &limits);
        view.set(dst, Value::Obj(Object::Set(d)), false);
    }
    out.int(1);
    Ok(())
}

/// Type-checks every key (in order, like redis) and returns the sizes of
/// the existing sets (None for missing keys).
fn collect_sizes(
    view: &mut View<'_>,
    keys: &[Bytes],
    write: bool,
) -> Result<Vec<Option<usize>>, CmdError> {
    check_owned(view, keys)?;
    let mut sizes = Vec::with_capacity(keys.len());
    for k in keys {
        let v = if write {
            view.get_for_write(k)
        } else {
            view.get(k)
        };
        sizes.push(match v {
            None => None,
            Some(ValueRef::Obj(Object::Set(s))) => Some(s.len()),
            Some(_) => return err(WRONGTYPE),
        });
    }
    Ok(sizes)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Diff,
}

/// SUNION/SDIFF result, built the way redis builds it (which decides the
/// encoding of the stored result).
fn union_diff(
    view: &mut View<'_>,
    keys: &[Bytes],
    op: Op,
    write: bool,
    limits: &EncodingLimits,
) -> Result<SetObj, CmdError> {
    let sizes = collect_sizes(view, keys, write)?;
    let mut result = SetObj::default();
    match op {
        Op::Union => {
            for k in keys {
                if let Some(s) = peek_set(view, k) {
                    s.for_each(|e| {
                        e.with_bytes(|b| result.add(b, limits));
                    });
                }
            }
        }
        Op::Diff => {
            let Some(size0) = sizes[0] else {
                return Ok(result);
            };
            let present = sizes.iter().flatten().count();
            let algo_one = (size0 * present) / 2;
            let algo_two: usize = sizes.iter().flatten().sum();
            if algo_one <= algo_two {
                // Keep each member of the first set found in no other set.
                let mut cand: Vec<Vec<u8>> = peek_set(view, &keys[0])
                    .map(|s| s.members())
                    .unwrap_or_default();
                for k in &keys[1..] {
                    if *k == keys[0] {
                        cand.clear();
                        break;
                    }
                    if let Some(s) = peek_set(view, k) {
                        cand.retain(|m| !s.contains(m));
                    }
                }
                for m in &cand {
                    result.add(m, limits);
                }
            } else {
                // Add the first set, then remove the others.
                if let Some(s) = peek_set(view, &keys[0]) {
                    s.for_each(|e| {
                        e.with_bytes(|b| result.add(b, limits));
                    });
                }
                for k in &keys[1..] {
                    if result.is_empty() {
                        break;
                    }
                    if let Some(s) = peek_set(view, k) {
                        s.for_each(|e| {
                            e.with_bytes(|b| result.remove(b));
                        });
                    }
                }
            }
        }
    }
    Ok(result)
}

/// Members of the intersection (in the order of the smallest set), up to
/// `limit` of them when non-zero.
fn inter(
    view: &mut View<'_>,
    keys: &[Bytes],
    write: bool,
    limit: usize,
) -> Result<Vec<Vec<u8>>, CmdError> {
    let sizes = collect_sizes(view, keys, write)?;
    if sizes.iter().any(|s| s.is_none()) {
        return Ok(Vec::new());
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| sizes[i].unwrap_or(0));
    let first = order[0];
    let mut cand: Vec<Vec<u8>> = peek_set(view, &keys[first])
        .map(|s| s.members())
        .unwrap_or_default();
    for &i in &order[1..] {
        if keys[i] == keys[first] {
            continue;
        }
        if let Some(s) = peek_set(view, &keys[i]) {
            cand.retain(|m| s.contains(m));
        }
        if cand.is_empty() {
            break;
        }
    }
    if limit > 0 {
        cand.truncate(limit);
    }
    Ok(cand)
}

fn store_result(view: &mut View<'_>, out: &mut ReplyWriter<'_>, dst: &[u8], s: SetObj) {
    if s.is_empty() {
        view.delete(dst);
        out.int(0);
    } else {
        let n = s.len();
        view.set(dst, Value::Obj(Object::Set(s)), false);
        out.int(n as i64);
    }
}

fn union_diff_cmd(ctx: &mut Ctx, op: Op, store: bool) -> CmdResult {
    let args = ctx.args;
    let limits = ctx.node.hot.limits();
    let (view, out) = parts(ctx)?;
    if store {
        check_owned(view, &args[1..2])?;
        let s = union_diff(view, &args[2..], op, true, &limits)?;
        store_result(view, out, &args[1], s);
        // Redis counts a change even when nothing changed.
        view.dirty += 1;
    } else {
        let s = union_diff(view, &args[1..], op, false, &limits)?;
        reply_set(out, &s);
    }
    Ok(())
}

fn sunion(ctx: &mut Ctx) -> CmdResult {
    union_diff_cmd(ctx, Op::Union, false)
}
fn sdiff(ctx: &mut Ctx) -> CmdResult {
    union_diff_cmd(ctx, Op::Diff, false)
}
fn sunionstore(ctx: &mut Ctx) -> CmdResult {
    union_diff_cmd(ctx, Op::Union, true)
}
fn sdiffstore(ctx: &mut Ctx) -> CmdResult {
    union_diff_cmd(ctx, Op::Diff, true)
}

fn sinter(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    let r = inter(view, &args[1..], false, 0)?;
    out.set(r.len());
    for m in &r {
        out.bulk(m);
    }
    Ok(())
}

fn sinterstore(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let limits = ctx.node.hot.limits();
    let (view, out) = parts(ctx)?;
    check_owned(view, &args[1..2])?;
    let r = inter(view, &args[2..], true, 0)?;
    let s = SetObj::build(r.iter().map(|m| &m[..]), &limits);
    store_result(view, out, &args[1], s);
    Ok(())
}

fn sintercard(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let numkeys = match parse_i64(&args[1]) {
        Some(n) if n >= 1 => n as usize,
        _ => return err("ERR numkeys should be greater than 0"),
    };
    if numkeys > args.len() - 2 {
        return err("ERR Number of keys can't be greater than number of args");
    }
    let mut limit = 0usize;
    let mut i = 2 + numkeys;
    while i < args.len() {
        if eq_ic(&args[i], "limit") && i + 1 < args.len() {
            limit = match parse_i64(&args[i + 1]) {
                Some(l) if l >= 0 => l as usize,
                _ => return err("ERR LIMIT can't be negative"),
            };
            i += 2;
        } else {
            return err(SYNTAX);
        }
    }
    let (view, out) = parts(ctx)?;
    let r = inter(view, &args[2..2 + numkeys], false, limit)?;
    out.int(r.len() as i64);
    Ok(())
}

fn sscan(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let cursor = parse_cursor(&args[2])?;
    let (view, out) = parts(ctx)?;
    let Some(s) = read_set(view, &args[1])? else {
        empty_scan(out);
        return Ok(());
    };
    let (pattern, count) = parse_scan_opts(args, 3)?;
    let mut found: Vec<Elem<'_>> = Vec::new();
    let next = s.scan(cursor, count, |e| {
        if matches(pattern, e) {
            found.push(e);
        }
    });
    out.array(2);
    out.bulk(itoa::Buffer::new().format(next).as_bytes());
    out.array(found.len());
    for e in found {
        put(out, e);
    }
    Ok(())
}
