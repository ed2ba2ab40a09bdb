//! List commands, blocking ones included (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH,
//! BLMPOP).
//!
//! A blocking command that finds nothing asks the dispatcher to block it
//! (`Ctx::block`); when a key it waits on is pushed to, the dispatcher runs
//! the same handler again on the client's behalf (`client.serving_blocked`)
//! and the handler then serves from the key that became ready, as redis
//! 7.0 does, or blocks again if it is empty or of another type.

use std::collections::HashMap;

use bytes::Bytes;

use super::{eq_ic, err, int_arg, parse_i64, Access, CmdError, CmdResult, Ctx, Entry, Handler};
use super::{SYNTAX, WRONGTYPE};
use crate::blocking::{parse_timeout, TimeoutReply};
use crate::engine::types::list::{ListObj, Needle};
use crate::engine::{Object, Value, ValueRef, View};
use crate::resp::ReplyWriter;

pub fn register(m: &mut HashMap<&'static str, Entry>) {
    let cmds: [(&'static str, Handler); 22] = [
        ("lpush", lpush),
        ("rpush", rpush),
        ("lpushx", lpushx),
        ("rpushx", rpushx),
        ("lpop", lpop),
        ("rpop", rpop),
        ("lrange", lrange),
        ("llen", llen),
        ("lindex", lindex),
        ("lset", lset),
        ("lrem", lrem),
        ("ltrim", ltrim),
        ("linsert", linsert),
        ("lpos", lpos),
        ("lmove", lmove),
        ("rpoplpush", rpoplpush),
        ("lmpop", lmpop),
        ("blpop", blpop),
        ("brpop", brpop),
        ("blmove", blmove),
        ("brpoplpush", brpoplpush),
        ("blmpop", blmpop),
    ];
    for (name, run) in cmds {
        m.insert(
            name,
            Entry {
                run,
                access: Access::Keys,
            },
        );
    }
}

const NO_VIEW: &str = "ERR internal error: command ran without its keys locked";

/// The view and the reply writer, borrowed together.
fn parts<'a, 'n, 'o>(
    ctx: &'a mut Ctx<'n, '_, 'o>,
) -> Result<(&'a mut View<'n>, &'a mut ReplyWriter<'o>), CmdError> {
    let Ctx { view, out, .. } = ctx;
    let v = view.as_mut().ok_or_else(|| CmdError::new(NO_VIEW))?;
    Ok((v, out))
}

fn fill(ctx: &Ctx) -> i64 {
    ctx.node.hot.limits().list_max_listpack_size
}

/// A list for reading (counts a hit or miss).
fn list_ref<'v>(view: &'v mut View<'_>, key: &[u8]) -> Result<Option<&'v ListObj>, CmdError> {
    match view.get(key) {
        None => Ok(None),
        Some(ValueRef::Obj(Object::List(l))) => Ok(Some(l)),
        Some(_) => err(WRONGTYPE),
    }
}

/// A list for writing.
fn list_mut<'v>(view: &'v mut View<'_>, key: &[u8]) -> Result<Option<&'v mut ListObj>, CmdError> {
    match view.get_for_write(key) {
        None => return Ok(None),
        Some(ValueRef::Obj(Object::List(_))) => {}
        Some(_) => return err(WRONGTYPE),
    }
    match view.obj_mut(key) {
        Some(Object::List(l)) => Ok(Some(l)),
        _ => Ok(None),
    }
}

/// Runs `f` on a list with a single lookup in the common case (the key
/// holds a list). `None` when the key does not exist.
fn with_list<R>(
    view: &mut View<'_>,
    key: &[u8],
    f: impl FnOnce(&mut ListObj) -> R,
) -> Result<Option<R>, CmdError> {
    match view.obj_mut(key) {
        Some(Object::List(l)) => return Ok(Some(f(l))),
        Some(_) => return err(WRONGTYPE),
        None => {}
    }
    // Missing, or a string.
    if view.get_for_write(key).is_some() {
        return err(WRONGTYPE);
    }
    Ok(None)
}

/// After removing elements: deletes the key if the list became empty,
/// else records the change.
fn after_removal(view: &mut View<'_>, key: &[u8], empty: bool) {
    if empty {
        view.delete(key);
    } else {
        view.modified(key);
    }
}

fn wrong_args(name: &str) -> CmdError {
    CmdError(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

// ---------------------------------------------------------------------------
// Push
// ---------------------------------------------------------------------------

fn push_generic(ctx: &mut Ctx, head: bool, only_existing: bool) -> CmdResult {
    let fill = fill(ctx);
    let args = ctx.args;
    let key = &args[1];
    let (view, out) = parts(ctx)?;
    let len = with_list(view, key, |l| {
        for v in &args[2..] {
            l.push(v, head, fill);
        }
        l.shrink_small();
        l.len()
    })?;
    match len {
        Some(n) => {
            view.modified(key);
            out.int(n as i64);
        }
        None if only_existing => out.int(0),
        None => {
            let mut l = ListObj::new();
            for v in &args[2..] {
                l.push(v, head, fill);
            }
            l.shrink_small();
            let n = l.len();
            view.set(key, Value::Obj(Object::List(l)), false);
            out.int(n as i64);
        }
    }
    Ok(())
}

fn lpush(ctx: &mut Ctx) -> CmdResult {
    push_generic(ctx, true, false)
}
fn rpush(ctx: &mut Ctx) -> CmdResult {
    push_generic(ctx, false, false)
}
fn lpushx(ctx: &mut Ctx) -> CmdResult {
    push_generic(ctx, true, true)
}
fn rpushx(ctx: &mut Ctx) -> CmdResult {
    push_generic(ctx, false, true)
}

/// Pushes one element, creating the list if needed (LMOVE's destination).
fn push_one(view: &mut View<'_>, key: &[u8], v: &[u8], head: bool, fill: i64) {
    let done = match view.obj_mut(key) {
        Some(Object::List(l)) => {
            l.push(v, head, fill);
            true
        }
        _ => false,
    };
    if done {
        view.modified(key);
    } else {
        let mut l = ListObj::new();
        l.push(v, head, fill);
        view.set(key, Value::Obj(Object::List(l)), false);
    }
}

// ---------------------------------------------------------------------------
// Pop
// ---------------------------------------------------------------------------

fn pop_generic(ctx: &mut Ctx, head: bool) -> CmdResult {
    let args = ctx.args;
    if args.len() > 3 {
        return Err(wrong_args(ctx.spec.name));
    }
    let count = match args.get(2) {
        Some(a) => Some(
            parse_i64(a)
                .filter(|c| *c >= 0)
                .ok_or_else(|| CmdError::new("ERR value is out of range, must be positive"))?,
        ),
        None => None,
    };
    let key = &args[1];
    let (view, out) = parts(ctx)?;
    let res = with_list(view, key, |l| {
        match count {
            None => match l.pop(head) {
                Some(v) => out.bulk(&v),
                None => out.null(),
            },
            Some(0) => {
                out.array(0);
                return None;
            }
            Some(c) => {
                let n = usize::try_from(c).unwrap_or(usize::MAX).min(l.len());
                out.array(n);
                for _ in 0..n {
                    if let Some(v) = l.pop(head) {
                        out.bulk(&v);
                    }
                }
            }
        }
        Some(l.is_empty())
    })?;
    match res {
        None if count.is_some() => out.null_array(),
        None => out.null(),
        Some(None) => {}
        Some(Some(empty)) => after_removal(view, key, empty),
    }
    Ok(())
}

fn lpop(ctx: &mut Ctx) -> CmdResult {
    pop_generic(ctx, true)
}
fn rpop(ctx: &mut Ctx) -> CmdResult {
    pop_generic(ctx, false)
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

/// Resolves a redis start/stop range against `len`: (first, count).
fn range(start: i64, end: i64, len: usize) -> (usize, usize) {
    let len = len as i64;
    let mut s = if start < 0 { start + len } else { start };
    let mut e = if end < 0 { end + len } else { end };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return (0, 0);
    }
    if e >= len {
        e = len - 1;
    }
    (s as usize, (e - s + 1) as usize)
}

fn lrange(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let start = int_arg(&args[2])?;
    let end = int_arg(&args[3])?;
    let (view, out) = parts(ctx)?;
    let Some(l) = list_ref(view, &args[1])? else {
        out.array(0);
        return Ok(());
    };
    let (first, n) = range(start, end, l.len());
    out.array(n);
    if n == 0 {
        return Ok(());
    }
    // Reserve the whole reply once: packed size scaled to the range plus
    // the per-element framing.
    let avg = l.packed_bytes() / l.len().max(1);
    out.buf.reserve(n.saturating_mul(avg + 16).min(16 << 20));
    for e in l.iter_from(first).take(n) {
        e.write_bulk(out.buf);
    }
    Ok(())
}

fn llen(ctx: &mut Ctx) -> CmdResult {
    let key = &ctx.args[1];
    let (view, out) = parts(ctx)?;
    let n = list_ref(view, key)?.map_or(0, |l| l.len());
    out.int(n as i64);
    Ok(())
}

/// An index into a list of `len` elements, negative from the tail.
fn index(i: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if i < 0 { i + len } else { i };
    (0..len).contains(&i).then_some(i as usize)
}

fn lindex(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    let Some(l) = list_ref(view, &args[1])? else {
        out.null();
        return Ok(());
    };
    let i = int_arg(&args[2])?;
    match index(i, l.len()).and_then(|i| l.get(i)) {
        Some(e) => e.write_bulk(out.buf),
        None => out.null(),
    }
    Ok(())
}

fn lpos(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let mut rank: i64 = 1;
    let mut count: i64 = -1;
    let mut maxlen: i64 = 0;
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        let opt = &args[j];
        if eq_ic(opt, "rank") && more {
            j += 1;
            rank = int_arg(&args[j])?;
            if rank == 0 {
                return err(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                );
            }
        } else if eq_ic(opt, "count") && more {
            j += 1;
            count = parse_i64(&args[j])
                .filter(|c| *c >= 0)
                .ok_or_else(|| CmdError::new("ERR COUNT can't be negative"))?;
        } else if eq_ic(opt, "maxlen") && more {
            j += 1;
            maxlen = parse_i64(&args[j])
                .filter(|c| *c >= 0)
                .ok_or_else(|| CmdError::new("ERR MAXLEN can't be negative"))?;
        } else {
            return err(SYNTAX);
        }
        j += 1;
    }
    // A negative rank searches from the tail. The arithmetic below wraps
    // like redis's for RANK -9223372036854775808.
    let from_tail = rank < 0;
    if from_tail {
        rank = rank.wrapping_neg();
    }
    let (view, out) = parts(ctx)?;
    let Some(l) = list_ref(view, &args[1])? else {
        if count != -1 {
            out.array(0);
        } else {
            out.null();
        }
        return Ok(());
    };
    let needle = Needle::new(&args[2]);
    let llen = l.len() as i64;
    let mut found: Vec<i64> = Vec::new();
    let mut matches: i64 = 0;
    let mut single = None;
    let iter: Box<dyn Iterator<Item = _>> = if from_tail {
        Box::new(l.iter_rev())
    } else {
        Box::new(l.iter_from(0))
    };
    for (index, e) in iter.enumerate() {
        let index = index as i64;
        if maxlen != 0 && index >= maxlen {
            break;
        }
        if e.matches(&needle) {
            matches += 1;
            let at = if from_tail { llen - index - 1 } else { index };
            if matches >= rank {
                if count != -1 {
                    found.push(at);
                    if count != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= count {
                        break;
                    }
                } else {
                    single = Some(at);
                    break;
                }
            }
        }
    }
    if count != -1 {
        out.array(found.len());
        for i in found {
            out.int(i);
        }
    } else {
        match single {
            Some(i) => out.int(i),
            None => out.null(),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// In-place changes
// ---------------------------------------------------------------------------

fn lset(ctx: &mut Ctx) -> CmdResult {
    let fill = fill(ctx);
    let args = ctx.args;
    let key = &args[1];
    let (view, out) = parts(ctx)?;
    let Some(l) = list_mut(view, key)? else {
        return err(super::NO_SUCH_KEY);
    };
    let i = int_arg(&args[2])?;
    let ok = match index(i, l.len()) {
        Some(i) => l.set(i, &args[3], fill),
        None => false,
    };
    if !ok {
        return err("ERR index out of range");
    }
    view.modified(key);
    out.ok();
    Ok(())
}

fn lrem(ctx: &mut Ctx) -> CmdResult {
    let fill = fill(ctx);
    let args = ctx.args;
    let key = &args[1];
    let count = int_arg(&args[2])?;
    let (view, out) = parts(ctx)?;
    let Some(l) = list_mut(view, key)? else {
        out.int(0);
        return Ok(());
    };
    let removed = l.remove(&Needle::new(&args[3]), count, fill);
    let empty = l.is_empty();
    if removed > 0 {
        after_removal(view, key, empty);
    }
    out.int(removed as i64);
    Ok(())
}

fn ltrim(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let key = &args[1];
    let start = int_arg(&args[2])?;
    let end = int_arg(&args[3])?;
    let (view, out) = parts(ctx)?;
    let Some(l) = list_mut(view, key)? else {
        out.ok();
        return Ok(());
    };
    let len = l.len();
    let (first, n) = range(start, end, len);
    let (front, back) = if n == 0 {
        (len, 0)
    } else {
        (first, len - first - n)
    };
    l.trim(front, back);
    let empty = l.is_empty();
    if front + back > 0 {
        after_removal(view, key, empty);
    } else {
        view.touch_modified(key);
    }
    out.ok();
    Ok(())
}

fn linsert(ctx: &mut Ctx) -> CmdResult {
    let fill = fill(ctx);
    let args = ctx.args;
    let key = &args[1];
    let after = if eq_ic(&args[2], "after") {
        true
    } else if eq_ic(&args[2], "before") {
        false
    } else {
        return err(SYNTAX);
    };
    let (view, out) = parts(ctx)?;
    let Some(l) = list_mut(view, key)? else {
        out.int(0);
        return Ok(());
    };
    if l.insert(&Needle::new(&args[3]), &args[4], after, fill) {
        let n = l.len();
        view.modified(key);
        out.int(n as i64);
    } else {
        out.int(-1);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// LMOVE family
// ---------------------------------------------------------------------------

/// LEFT (true) or RIGHT (false).
fn side(a: &[u8]) -> Result<bool, CmdError> {
    if eq_ic(a, "left") {
        Ok(true)
    } else if eq_ic(a, "right") {
        Ok(false)
    } else {
        err(SYNTAX)
    }
}

/// Moves one element from `src` (known to be a non-empty list) to `dst`,
/// replying with it. Fails with WRONGTYPE, moving nothing, when `dst`
/// holds another type. Propagates `prop`.
#[allow(clippy::too_many_arguments)]
fn move_one(
    view: &mut View<'_>,
    out: &mut ReplyWriter<'_>,
    src: &[u8],
    dst: &[u8],
    from_head: bool,
    to_head: bool,
    fill: i64,
    prop: &[&[u8]],
) -> CmdResult {
    // The source is checked first: a missing source replies nil whatever
    // the destination holds.
    let has = match view.get_for_write(src) {
        None => false,
        Some(ValueRef::Obj(Object::List(l))) => !l.is_empty(),
        Some(_) => return err(WRONGTYPE),
    };
    if !has {
        out.null();
        return Ok(());
    }
    match view.get_for_write(dst) {
        None | Some(ValueRef::Obj(Object::List(_))) => {}
        Some(_) => return err(WRONGTYPE),
    }
    let Some(l) = list_mut(view, src)? else {
        out.null();
        return Ok(());
    };
    let Some(v) = l.pop(from_head) else {
        out.null();
        return Ok(());
    };
    if src == dst {
        l.push(&v, to_head, fill);
        view.modified(src);
    } else {
        let empty = l.is_empty();
        after_removal(view, src, empty);
        push_one(view, dst, &v, to_head, fill);
    }
    out.bulk(&v);
    if !prop.is_empty() {
        view.propagate(prop);
    }
    Ok(())
}

fn lmove(ctx: &mut Ctx) -> CmdResult {
    let fill = fill(ctx);
    let args = ctx.args;
    let from = side(&args[3])?;
    let to = side(&args[4])?;
    let (view, out) = parts(ctx)?;
    move_one(view, out, &args[1], &args[2], from, to, fill, &[])
}

fn rpoplpush(ctx: &mut Ctx) -> CmdResult {
    let fill = fill(ctx);
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    move_one(view, out, &args[1], &args[2], false, true, fill, &[])
}

fn blmove_generic(
    ctx: &mut Ctx,
    from: bool,
    to: bool,
    timeout: &[u8],
    prop: &[&[u8]],
) -> CmdResult {
    let fill = fill(ctx);
    let deadline = parse_timeout(timeout).map_err(CmdError)?;
    let args = ctx.args;
    let serving = ctx.client.serving_blocked;
    let (src, dst) = (&args[1], &args[2]);
    let (view, out) = parts(ctx)?;
    let ready = match view.get_for_write(src) {
        None => false,
        Some(ValueRef::Obj(Object::List(l))) => !l.is_empty(),
        Some(_) if serving => false,
        Some(_) => return err(WRONGTYPE),
    };
    if ready {
        return move_one(view, out, src, dst, from, to, fill, prop);
    }
    // Inside MULTI redis 7.0 replies a null bulk, but a timed out wait
    // replies a null array (as for every list blocking command).
    if ctx.client.in_exec {
        ctx.out.null();
        return Ok(());
    }
    ctx.block(vec![src.clone()], deadline, TimeoutReply::NullArray)
}

fn blmove(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let from = side(&args[3])?;
    let to = side(&args[4])?;
    blmove_generic(
        ctx,
        from,
        to,
        &args[5],
        &[b"LMOVE", &args[1], &args[2], &args[3], &args[4]],
    )
}

fn brpoplpush(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    blmove_generic(
        ctx,
        false,
        true,
        &args[3],
        &[b"RPOPLPUSH", &args[1], &args[2]],
    )
}

// ---------------------------------------------------------------------------
// Blocking pops
// ---------------------------------------------------------------------------

/// Pops from the first non-empty list among `keys` (only the key that
/// became ready when serving a blocked client). Returns false if nothing
/// could be popped. `count` None: BLPOP reply; Some: LMPOP reply.
fn pop_first(
    ctx: &mut Ctx,
    keys: &[Bytes],
    head: bool,
    count: Option<usize>,
) -> Result<bool, CmdError> {
    let serving_key = ctx.client.serving_key.clone();
    let serving = ctx.client.serving_blocked;
    let (view, out) = parts(ctx)?;
    for key in keys {
        if let Some(k) = &serving_key {
            if k != key {
                continue;
            }
        }
        if !view.owns(key) {
            return err(SYNTAX);
        }
        let l = match list_mut(view, key) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(_) if serving => continue,
            Err(e) => return Err(e),
        };
        if l.is_empty() {
            continue;
        }
        let cmd: &[u8] = if head { b"LPOP" } else { b"RPOP" };
        match count {
            None => {
                let Some(v) = l.pop(head) else { continue };
                out.array(2);
                out.bulk(key);
                out.bulk(&v);
                let empty = l.is_empty();
                after_removal(view, key, empty);
                view.propagate(&[cmd, key]);
            }
            Some(c) => {
                let n = c.min(l.len());
                out.array(2);
                out.bulk(key);
                out.array(n);
                for _ in 0..n {
                    if let Some(v) = l.pop(head) {
                        out.bulk(&v);
                    }
                }
                let empty = l.is_empty();
                after_removal(view, key, empty);
                let mut b = itoa::Buffer::new();
                view.propagate(&[cmd, key, b.format(n).as_bytes()]);
            }
        }
        return Ok(true);
    }
    Ok(false)
}

fn bpop_generic(ctx: &mut Ctx, head: bool) -> CmdResult {
    let args = ctx.args;
    let n = args.len();
    let deadline = parse_timeout(&args[n - 1]).map_err(CmdError)?;
    let keys = &args[1..n - 1];
    if pop_first(ctx, keys, head, None)? {
        return Ok(());
    }
    ctx.block(keys.to_vec(), deadline, TimeoutReply::NullArray)
}

fn blpop(ctx: &mut Ctx) -> CmdResult {
    bpop_generic(ctx, true)
}
fn brpop(ctx: &mut Ctx) -> CmdResult {
    bpop_generic(ctx, false)
}

/// Parses `numkeys key... LEFT|RIGHT [COUNT n]` starting at `at`:
/// (keys, head, count).
fn parse_mpop(args: &[Bytes], at: usize) -> Result<(&[Bytes], bool, usize), CmdError> {
    let numkeys = parse_i64(&args[at])
        .filter(|n| *n >= 1)
        .ok_or_else(|| CmdError::new("ERR numkeys should be greater than 0"))?;
    let where_idx = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(at + 1))
        .filter(|w| *w < args.len())
        .ok_or_else(|| CmdError::new(SYNTAX))?;
    let head = side(&args[where_idx])?;
    let mut count: Option<i64> = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        let more = j + 1 < args.len();
        if count.is_none() && eq_ic(&args[j], "count") && more {
            j += 1;
            count = Some(
                parse_i64(&args[j])
                    .filter(|c| *c >= 1)
                    .ok_or_else(|| CmdError::new("ERR count should be greater than 0"))?,
            );
        } else {
            return err(SYNTAX);
        }
        j += 1;
    }
    let count = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    Ok((&args[at + 1..where_idx], head, count))
}

fn lmpop(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (keys, head, count) = parse_mpop(args, 1)?;
    if !pop_first(ctx, keys, head, Some(count))? {
        ctx.out.null_array();
    }
    Ok(())
}

fn blmpop(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (keys, head, count) = parse_mpop(args, 2)?;
    let deadline = parse_timeout(&args[1]).map_err(CmdError)?;
    if pop_first(ctx, keys, head, Some(count))? {
        return Ok(());
    }
    ctx.block(keys.to_vec(), deadline, TimeoutReply::NullArray)
}
