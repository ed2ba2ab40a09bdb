//! Sorted set commands.

use std::collections::HashMap;

use bytes::Bytes;
use rand::Rng;

use super::{eq_ic, err, int_arg, parse_i64, Access, CmdError, CmdResult, Ctx, Entry};
use super::{NOT_FLOAT, NOT_INTEGER, SYNTAX, WRONGTYPE};
use crate::blocking::{parse_timeout, TimeoutReply};
use crate::engine::types::set::SetObj;
use crate::engine::types::zset::{LexRange, LexVal, ScoreRange, ZSetObj};
use crate::engine::types::EncodingLimits;
use crate::engine::{Object, Value, ValueRef, View};
use crate::glob::glob_match;
use crate::resp::{format_double, ReplyWriter};

const NAN_ERR: &str = "ERR resulting score is not a number (NaN)";
const RANGE_NOT_FLOAT: &str = "ERR min or max is not a float";
const RANGE_NOT_LEX: &str = "ERR min or max not valid string range item";

pub fn register(m: &mut HashMap<&'static str, Entry>) {
    let k = |run| Entry {
        run,
        access: Access::Keys,
    };
    m.insert("zadd", k(zadd));
    m.insert("zincrby", k(zincrby));
    m.insert("zrem", k(zrem));
    m.insert("zscore", k(zscore));
    m.insert("zmscore", k(zmscore));
    m.insert("zcard", k(zcard));
    m.insert("zcount", k(zcount));
    m.insert("zlexcount", k(zlexcount));
    m.insert("zrank", k(zrank));
    m.insert("zrevrank", k(zrevrank));
    m.insert("zrange", k(zrange));
    m.insert("zrangestore", k(zrangestore));
    m.insert("zrevrange", k(zrevrange));
    m.insert("zrangebyscore", k(zrangebyscore));
    m.insert("zrevrangebyscore", k(zrevrangebyscore));
    m.insert("zrangebylex", k(zrangebylex));
    m.insert("zrevrangebylex", k(zrevrangebylex));
    m.insert("zremrangebyscore", k(zremrangebyscore));
    m.insert("zremrangebyrank", k(zremrangebyrank));
    m.insert("zremrangebylex", k(zremrangebylex));
    m.insert("zpopmin", k(zpopmin));
    m.insert("zpopmax", k(zpopmax));
    m.insert("bzpopmin", k(bzpopmin));
    m.insert("bzpopmax", k(bzpopmax));
    m.insert("zmpop", k(zmpop));
    m.insert("bzmpop", k(bzmpop));
    m.insert("zunion", k(zunion));
    m.insert("zinter", k(zinter));
    m.insert("zdiff", k(zdiff));
    m.insert("zunionstore", k(zunionstore));
    m.insert("zinterstore", k(zinterstore));
    m.insert("zdiffstore", k(zdiffstore));
    m.insert("zintercard", k(zintercard));
    m.insert("zrandmember", k(zrandmember));
    m.insert("zscan", k(zscan));
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Parses a hexadecimal floating constant body (after "0x"), as strtod.
fn parse_hex_float(s: &[u8]) -> Option<f64> {
    let mut mant: u64 = 0;
    let mut exp: i64 = 0;
    let mut any = false;
    let mut i = 0;
    let mut seen_dot = false;
    let mut nonzero_dropped = false;
    while i < s.len() {
        let c = s[i];
        if c == b'.' && !seen_dot {
            seen_dot = true;
            i += 1;
            continue;
        }
        let Some(d) = (c as char).to_digit(16) else {
            break;
        };
        any = true;
        if mant >> 58 == 0 {
            mant = mant * 16 + u64::from(d);
            if seen_dot {
                exp -= 4;
            }
        } else {
            if d != 0 {
                nonzero_dropped = true;
            }
            if !seen_dot {
                exp += 4;
            }
        }
        i += 1;
    }
    if !any {
        return None;
    }
    if nonzero_dropped {
        mant |= 1;
    }
    if i < s.len() {
        if s[i] != b'p' && s[i] != b'P' {
            return None;
        }
        let rest = &s[i + 1..];
        let (neg, digits) = match rest.first() {
            Some(b'-') => (true, &rest[1..]),
            Some(b'+') => (false, &rest[1..]),
            _ => (false, rest),
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut e: i64 = 0;
        for &d in digits {
            e = (e * 10 + i64::from(d - b'0')).min(1 << 20);
        }
        exp += if neg { -e } else { e };
    }
    let exp = exp.clamp(-3000, 3000) as i32;
    // mant * 2^exp, scaled in two steps to avoid intermediate overflow.
    let half = exp / 2;
    Some(mant as f64 * 2f64.powi(half) * 2f64.powi(exp - half))
}

/// strtod over the whole input: `Some((value, erange))` when every byte
/// is consumed. Leading whitespace is accepted, as strtod does.
fn strtod_full(s: &[u8]) -> Option<(f64, bool)> {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let body = &s[i..];
    let (neg, rest) = match body.first() {
        Some(b'-') => (true, &body[1..]),
        Some(b'+') => (false, &body[1..]),
        _ => (false, body),
    };
    let lower = rest.to_ascii_lowercase();
    let sign = if neg { -1.0 } else { 1.0 };
    if lower == b"inf" || lower == b"infinity" {
        return Some((sign * f64::INFINITY, false));
    }
    if lower.starts_with(b"nan") {
        let tail = &lower[3..];
        let ok = tail.is_empty()
            || (tail.first() == Some(&b'(')
                && tail.last() == Some(&b')')
                && tail[1..tail.len() - 1]
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'_'));
        return if ok { Some((f64::NAN, false)) } else { None };
    }
    if lower.starts_with(b"0x") {
        let v = parse_hex_float(&lower[2..])?;
        return Some((sign * v, v.is_infinite()));
    }
    // Decimal: digits [. digits] [e [sign] digits], at least one digit.
    let mut j = 0;
    let mut digits = 0;
    let mut nonzero = false;
    while j < rest.len() && rest[j].is_ascii_digit() {
        nonzero |= rest[j] != b'0';
        j += 1;
        digits += 1;
    }
    if j < rest.len() && rest[j] == b'.' {
        j += 1;
        while j < rest.len() && rest[j].is_ascii_digit() {
            nonzero |= rest[j] != b'0';
            j += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if j < rest.len() && (rest[j] == b'e' || rest[j] == b'E') {
        let mut k = j + 1;
        if k < rest.len() && (rest[k] == b'+' || rest[k] == b'-') {
            k += 1;
        }
        let start = k;
        while k < rest.len() && rest[k].is_ascii_digit() {
            k += 1;
        }
        if k > start {
            j = k;
        }
    }
    if j != rest.len() {
        return None;
    }
    let text = std::str::from_utf8(rest).ok()?;
    let v: f64 = text.parse().ok()?;
    let erange = v.is_infinite() || (v == 0.0 && nonzero);
    Some((sign * v, erange))
}

/// A score argument, like redis's string2d: no leading space, the whole
/// string, no NaN, no overflow or underflow to zero.
fn parse_score(b: &[u8]) -> Option<f64> {
    if b.is_empty() || is_c_space(b[0]) {
        return None;
    }
    let (v, erange) = strtod_full(b)?;
    if v.is_nan() || (erange && (v.is_infinite() || v == 0.0)) {
        return None;
    }
    Some(v)
}

fn score_arg(b: &[u8]) -> Result<f64, CmdError> {
    parse_score(b).ok_or_else(|| CmdError::new(NOT_FLOAT))
}

/// One end of a score range: `(` for exclusive, then what strtod accepts
/// (the empty string is 0).
fn parse_range_item(b: &[u8]) -> Option<(f64, bool)> {
    let (ex, rest) = match b.first() {
        Some(b'(') => (true, &b[1..]),
        _ => (false, b),
    };
    let v = if rest.is_empty() {
        0.0
    } else {
        strtod_full(rest)?.0
    };
    if v.is_nan() {
        return None;
    }
    Some((v, ex))
}

fn parse_score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, CmdError> {
    let bad = || CmdError::new(RANGE_NOT_FLOAT);
    let (min, minex) = parse_range_item(min).ok_or_else(bad)?;
    let (max, maxex) = parse_range_item(max).ok_or_else(bad)?;
    Ok(ScoreRange {
        min,
        max,
        minex,
        maxex,
    })
}

fn parse_lex_item(b: &[u8]) -> Option<(LexVal, bool)> {
    match b.first() {
        Some(b'+') if b.len() == 1 => Some((LexVal::PosInf, true)),
        Some(b'-') if b.len() == 1 => Some((LexVal::NegInf, true)),
        Some(b'(') => Some((LexVal::Str(b[1..].to_vec()), true)),
        Some(b'[') => Some((LexVal::Str(b[1..].to_vec()), false)),
        _ => None,
    }
}

fn parse_lex_range(min: &[u8], max: &[u8]) -> Result<LexRange, CmdError> {
    let bad = || CmdError::new(RANGE_NOT_LEX);
    let (min, minex) = parse_lex_item(min).ok_or_else(bad)?;
    let (max, maxex) = parse_lex_item(max).ok_or_else(bad)?;
    Ok(LexRange {
        min,
        minex,
        max,
        maxex,
    })
}

/// getRangeLongFromObjectOrReply with a custom message for both failures.
fn range_long(b: &[u8], min: i64, max: i64, msg: &str) -> Result<i64, CmdError> {
    match parse_i64(b) {
        Some(v) if v >= min && v <= max => Ok(v),
        _ => Err(CmdError::new(msg)),
    }
}

fn positive_long(b: &[u8]) -> Result<i64, CmdError> {
    range_long(
        b,
        0,
        i64::MAX,
        "ERR value is out of range, must be positive",
    )
}

/// SCAN cursor, parsed like strtoul (sign allowed, "" is 0, wraps).
fn parse_cursor(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return Some(0);
    }
    if is_c_space(b[0]) {
        return None;
    }
    let (neg, digits) = match b[0] {
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

/// The text redis keeps for a score in a listpack (ZSCAN of a small set).
fn listpack_score_text(v: f64) -> String {
    const LIM: f64 = 4611686018427387904.0; // 2^62
    if v.is_finite() && (-LIM..=LIM).contains(&v) && v == v.trunc() {
        return (v as i64).to_string();
    }
    format_double(v)
}

// ---------------------------------------------------------------------------
// Key access
// ---------------------------------------------------------------------------

fn view<'a, 'n>(ctx: &'a mut Ctx<'n, '_, '_>) -> Result<&'a mut View<'n>, CmdError> {
    ctx.view
        .as_mut()
        .ok_or_else(|| CmdError::new("ERR internal error: command ran without its keys locked"))
}

/// Reads a sorted set (counting a hit or miss); WRONGTYPE for other types.
fn zread<'v>(view: &'v mut View<'_>, key: &[u8]) -> Result<Option<&'v ZSetObj>, CmdError> {
    match view.get(key) {
        None => Ok(None),
        Some(ValueRef::Obj(Object::ZSet(z))) => Ok(Some(z)),
        Some(_) => err(WRONGTYPE),
    }
}

/// Type check for a write: Some(len) if a sorted set exists.
fn zcheck_write(view: &mut View<'_>, key: &[u8]) -> Result<Option<usize>, CmdError> {
    match view.get_for_write(key) {
        None => Ok(None),
        Some(ValueRef::Obj(Object::ZSet(z))) => Ok(Some(z.len())),
        Some(_) => err(WRONGTYPE),
    }
}

fn zmut<'v>(view: &'v mut View<'_>, key: &[u8]) -> Option<&'v mut ZSetObj> {
    match view.obj_mut(key) {
        Some(Object::ZSet(z)) => Some(z),
        _ => None,
    }
}

/// After an in-place change: records it and deletes the key if empty.
fn finish_write(view: &mut View<'_>, key: &[u8]) {
    let empty = zmut(view, key).is_none_or(|z| z.is_empty());
    view.modified(key);
    if empty {
        view.delete(key);
    }
}

/// Stores a computed result (or deletes the destination when empty).
fn store_result(
    view: &mut View<'_>,
    dst: &[u8],
    mut entries: Vec<(Vec<u8>, f64)>,
    limits: &EncodingLimits,
    sorted: bool,
) -> usize {
    let n = entries.len();
    if n == 0 {
        view.delete(dst);
        return 0;
    }
    if !sorted {
        sort_entries(&mut entries);
    }
    let z = ZSetObj::from_sorted(&entries, limits);
    view.set(dst, Value::Obj(Object::ZSet(z)), false);
    n
}

fn sort_entries(v: &mut [(Vec<u8>, f64)]) {
    v.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
}

/// Writes (member, score) pairs: flat in RESP2, pairs in RESP3 when
/// `withscores`.
fn reply_pairs<'a>(
    out: &mut ReplyWriter<'_>,
    items: impl ExactSizeIterator<Item = (&'a [u8], f64)>,
    withscores: bool,
) {
    let n = items.len();
    if withscores && !out.resp3() {
        out.array(n * 2);
    } else {
        out.array(n);
    }
    for (m, s) in items {
        if withscores && out.resp3() {
            out.array(2);
        }
        out.bulk(m);
        if withscores {
            out.double(s);
        }
    }
}

// ---------------------------------------------------------------------------
// ZADD / ZINCRBY / ZREM
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    incr: bool,
}

#[derive(PartialEq, Eq)]
enum AddOut {
    Added,
    Updated,
    /// Processed without a change (same score).
    Same,
    Nop,
}

/// zsetAdd: Err on a NaN result.
fn add_one(
    z: &mut ZSetObj,
    score: f64,
    member: &[u8],
    f: AddFlags,
    limits: &EncodingLimits,
) -> Result<(AddOut, f64), ()> {
    match z.score(member) {
        Some(cur) => {
            if f.nx {
                return Ok((AddOut::Nop, 0.0));
            }
            let mut s = score;
            if f.incr {
                s += cur;
                if s.is_nan() {
                    return Err(());
                }
            }
            if (f.lt && s >= cur) || (f.gt && s <= cur) {
                return Ok((AddOut::Nop, 0.0));
            }
            if s != cur {
                z.update(member, s);
                Ok((AddOut::Updated, s))
            } else {
                Ok((AddOut::Same, s))
            }
        }
        None if !f.xx => {
            z.insert_new(member, score, limits);
            Ok((AddOut::Added, score))
        }
        None => Ok((AddOut::Nop, 0.0)),
    }
}

fn zadd_generic(ctx: &mut Ctx, mut f: AddFlags, ch_default: bool) -> CmdResult {
    let args = ctx.args;
    let key = &args[1];
    let mut idx = 2;
    let mut ch = ch_default;
    while idx < args.len() {
        let o = &args[idx];
        if eq_ic(o, "nx") {
            f.nx = true;
        } else if eq_ic(o, "xx") {
            f.xx = true;
        } else if eq_ic(o, "ch") {
            ch = true;
        } else if eq_ic(o, "incr") {
            f.incr = true;
        } else if eq_ic(o, "gt") {
            f.gt = true;
        } else if eq_ic(o, "lt") {
            f.lt = true;
        } else {
            break;
        }
        idx += 1;
    }
    let elements = args.len() - idx;
    if elements % 2 != 0 || elements == 0 {
        return err(SYNTAX);
    }
    let elements = elements / 2;
    if f.nx && f.xx {
        return err("ERR XX and NX options at the same time are not compatible");
    }
    if ((f.gt || f.lt) && f.nx) || (f.gt && f.lt) {
        return err("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && elements > 1 {
        return err("ERR INCR option supports a single increment-element pair");
    }
    let mut scores = Vec::with_capacity(elements);
    for j in 0..elements {
        scores.push(score_arg(&args[idx + j * 2])?);
    }
    let limits = ctx.node.hot.limits();
    let view = view(ctx)?;
    let exists = zcheck_write(view, key)?.is_some();
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last = 0.0;
    let mut nan = false;
    if !exists && f.xx {
        // No key and XX: nothing to do.
    } else {
        let mut fresh = ZSetObj::default();
        {
            let z: &mut ZSetObj = if exists {
                match zmut(view, key) {
                    Some(z) => z,
                    None => return err(WRONGTYPE),
                }
            } else {
                &mut fresh
            };
            if !f.xx && !f.incr {
                let members = scores
                    .iter()
                    .enumerate()
                    .map(|(j, &score)| (&args[idx + 1 + j * 2][..], score));
                z.reserve_for(members, &limits);
            }
            for (j, &score) in scores.iter().enumerate() {
                let member = &args[idx + 1 + j * 2];
                match add_one(z, score, member, f, &limits) {
                    Err(()) => {
                        nan = true;
                        break;
                    }
                    Ok((o, s)) => {
                        match o {
                            AddOut::Added => added += 1,
                            AddOut::Updated => updated += 1,
                            _ => {}
                        }
                        if o != AddOut::Nop {
                            processed += 1;
                            last = s;
                        }
                    }
                }
            }
            z.release_spare();
        }
        if exists {
            if added + updated > 0 {
                view.modified(key);
            }
        } else if !fresh.is_empty() {
            view.set(key, Value::Obj(Object::ZSet(fresh)), false);
        }
    }
    if nan {
        return err(NAN_ERR);
    }
    if f.incr {
        if processed > 0 {
            ctx.out.double(last);
        } else {
            ctx.out.null();
        }
    } else {
        ctx.out.int(if ch { added + updated } else { added });
    }
    Ok(())
}

fn zadd(ctx: &mut Ctx) -> CmdResult {
    zadd_generic(ctx, AddFlags::default(), false)
}

fn zincrby(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let incr = score_arg(&args[2])?;
    let key = &args[1];
    let member = &args[3];
    let limits = ctx.node.hot.limits();
    let view = view(ctx)?;
    let exists = zcheck_write(view, key)?.is_some();
    let f = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    let res = if exists {
        let Some(z) = zmut(view, key) else {
            return err(WRONGTYPE);
        };
        let r = add_one(z, incr, member, f, &limits);
        if matches!(r, Ok((AddOut::Added | AddOut::Updated, _))) {
            view.modified(key);
        }
        r
    } else {
        let mut z = ZSetObj::default();
        let r = add_one(&mut z, incr, member, f, &limits);
        view.set(key, Value::Obj(Object::ZSet(z)), false);
        r
    };
    match res {
        Err(()) => err(NAN_ERR),
        Ok((_, s)) => {
            ctx.out.double(s);
            Ok(())
        }
    }
}

fn zrem(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let key = &args[1];
    let view = view(ctx)?;
    if zcheck_write(view, key)?.is_none() {
        ctx.out.int(0);
        return Ok(());
    }
    let mut deleted = 0;
    if let Some(z) = zmut(view, key) {
        for m in &args[2..] {
            if z.remove(m) {
                deleted += 1;
            }
            if z.is_empty() {
                break;
            }
        }
    }
    if deleted > 0 {
        finish_write(view, key);
    }
    ctx.out.int(deleted);
    Ok(())
}

// ---------------------------------------------------------------------------
// Point reads
// ---------------------------------------------------------------------------

fn zscore(ctx: &mut Ctx) -> CmdResult {
    let (key, member) = (&ctx.args[1], &ctx.args[2]);
    let view = ctx.view.as_mut().ok_or_else(no_view)?;
    match zread(view, key)?.and_then(|z| z.score(member)) {
        Some(s) => ctx.out.double(s),
        None => ctx.out.null(),
    }
    Ok(())
}

fn no_view() -> CmdError {
    CmdError::new("ERR internal error: command ran without its keys locked")
}

fn zmscore(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let view = ctx.view.as_mut().ok_or_else(no_view)?;
    let z = zread(view, &args[1])?;
    ctx.out.array(args.len() - 2);
    for m in &args[2..] {
        match z.and_then(|z| z.score(m)) {
            Some(s) => ctx.out.double(s),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

fn zcard(ctx: &mut Ctx) -> CmdResult {
    let key = &ctx.args[1];
    let view = ctx.view.as_mut().ok_or_else(no_view)?;
    let n = zread(view, key)?.map_or(0, |z| z.len());
    ctx.out.int(n as i64);
    Ok(())
}

/// ZRANK / ZREVRANK key member [WITHSCORE]. WITHSCORE is redis 7.2's
/// (7.0 has no such option): the reply becomes [rank, score], and a
/// missing key or member a null array.
fn zrank_generic(ctx: &mut Ctx, rev: bool) -> CmdResult {
    let args = ctx.args;
    let with_score = match args.len() {
        3 => false,
        4 if eq_ic(&args[3], "withscore") => true,
        4 => return err(SYNTAX),
        _ => return Err(CmdError(crate::cmdspec::arity_error(ctx.spec.name))),
    };
    let (key, member) = (&args[1], &args[2]);
    let view = ctx.view.as_mut().ok_or_else(no_view)?;
    let found = zread(view, key)?.and_then(|z| {
        z.rank(member)
            .map(|(r, score)| (if rev { z.len() - 1 - r } else { r }, score))
    });
    match (found, with_score) {
        (Some((rank, _)), false) => ctx.out.int(rank as i64),
        (Some((rank, score)), true) => {
            ctx.out.array(2);
            ctx.out.int(rank as i64);
            ctx.out.double(score);
        }
        (None, false) => ctx.out.null(),
        (None, true) => ctx.out.null_array(),
    }
    Ok(())
}

fn zrank(ctx: &mut Ctx) -> CmdResult {
    zrank_generic(ctx, false)
}

fn zrevrank(ctx: &mut Ctx) -> CmdResult {
    zrank_generic(ctx, true)
}

fn zcount(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let r = parse_score_range(&args[2], &args[3])?;
    let view = ctx.view.as_mut().ok_or_else(no_view)?;
    let mut count = 0i64;
    if let Some(z) = zread(view, &args[1])? {
        if let Some(first) = z.first_in_score(&r) {
            match z {
                ZSetObj::Listpack(_) => z.walk(first, false, |_, s| {
                    if r.lte_max(s) {
                        count += 1;
                        true
                    } else {
                        false
                    }
                }),
                ZSetObj::Skiplist(_) => {
                    if let Some(last) = z.last_in_score(&r) {
                        count = last as i64 - first as i64 + 1;
                    }
                }
            }
        }
    }
    ctx.out.int(count);
    Ok(())
}

fn zlexcount(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let r = parse_lex_range(&args[2], &args[3])?;
    let view = ctx.view.as_mut().ok_or_else(no_view)?;
    let mut count = 0i64;
    if let Some(z) = zread(view, &args[1])? {
        if let Some(first) = z.first_in_lex(&r) {
            match z {
                ZSetObj::Listpack(_) => z.walk(first, false, |m, _| {
                    if r.lte_max(m) {
                        count += 1;
                        true
                    } else {
                        false
                    }
                }),
                ZSetObj::Skiplist(_) => {
                    let len = z.len() as i64;
                    count = len - first as i64;
                    if let Some(last) = z.last_in_lex(&r) {
                        count -= len - (last as i64 + 1);
                    }
                }
            }
        }
    }
    ctx.out.int(count);
    Ok(())
}

// ---------------------------------------------------------------------------
// ZRANGE family
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Auto,
    Forward,
    Reverse,
}

enum Parsed {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// Collects the elements a ZRANGE-style query selects, in reply order.
fn select_range<'z>(
    z: &'z ZSetObj,
    parsed: &Parsed,
    rev: bool,
    offset: i64,
    limit: i64,
) -> Vec<(&'z [u8], f64)> {
    let mut out: Vec<(&'z [u8], f64)> = Vec::new();
    match parsed {
        Parsed::Rank(start, end) => {
            let llen = z.len() as i64;
            let mut start = *start;
            let mut end = *end;
            if start < 0 {
                start += llen;
            }
            if end < 0 {
                end += llen;
            }
            if start < 0 {
                start = 0;
            }
            if start > end || start >= llen {
                return out;
            }
            if end >= llen {
                end = llen - 1;
            }
            let n = (end - start + 1) as usize;
            out.reserve(n);
            let first = if rev {
                (llen - 1 - start) as usize
            } else {
                start as usize
            };
            z.walk(first, rev, |m, s| {
                out.push((m, s));
                out.len() < n
            });
        }
        Parsed::Score(r) => {
            if offset > 0 && offset >= z.len() as i64 {
                return out;
            }
            let start = if rev {
                z.last_in_score(r)
            } else {
                z.first_in_score(r)
            };
            walk_in_range(z, start, rev, offset, limit, &mut out, |_, s| {
                if rev {
                    r.gte_min(s)
                } else {
                    r.lte_max(s)
                }
            });
        }
        Parsed::Lex(r) => {
            let start = if rev {
                z.last_in_lex(r)
            } else {
                z.first_in_lex(r)
            };
            walk_in_range(z, start, rev, offset, limit, &mut out, |m, _| {
                if rev {
                    r.gte_min(m)
                } else {
                    r.lte_max(m)
                }
            });
        }
    }
    out
}

/// Moves `offset` steps from `start`; None when that leaves the set (a
/// negative offset walks off the end, as in redis).
/// From the first element of a score or lex range (`start`, by rank),
/// skips `offset` elements and collects up to `limit` (negative: all)
/// while `inside` holds for the element.
fn walk_in_range<'z>(
    z: &'z ZSetObj,
    start: Option<usize>,
    rev: bool,
    offset: i64,
    limit: i64,
    out: &mut Vec<(&'z [u8], f64)>,
    inside: impl Fn(&[u8], f64) -> bool,
) {
    let Some(start) = start.and_then(|s| skip_offset(z.len(), s, rev, offset)) else {
        return;
    };
    let mut left = limit;
    z.walk(start, rev, |m, s| {
        if left == 0 || !inside(m, s) {
            return false;
        }
        left = left.wrapping_sub(1);
        out.push((m, s));
        true
    });
}

fn skip_offset(len: usize, start: usize, rev: bool, offset: i64) -> Option<usize> {
    if offset < 0 {
        return None;
    }
    let off = offset as u64;
    if rev {
        (start as u64).checked_sub(off).map(|v| v as usize)
    } else {
        let v = start as u64 + off;
        (v < len as u64).then_some(v as usize)
    }
}

fn zrange_generic(
    ctx: &mut Ctx,
    argc_start: usize,
    store: Option<&Bytes>,
    mut rangetype: RangeType,
    mut direction: Direction,
) -> CmdResult {
    let args = ctx.args;
    let key = &args[argc_start];
    let mut minidx = argc_start + 1;
    let mut maxidx = argc_start + 2;
    let mut withscores = false;
    let mut offset: i64 = 0;
    let mut limit: i64 = -1;
    let mut j = argc_start + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if store.is_none() && eq_ic(a, "withscores") {
            withscores = true;
        } else if eq_ic(a, "limit") && left >= 2 {
            offset = int_arg(&args[j + 1])?;
            limit = int_arg(&args[j + 2])?;
            j += 2;
        } else if direction == Direction::Auto && eq_ic(a, "rev") {
            direction = Direction::Reverse;
        } else if rangetype == RangeType::Auto && eq_ic(a, "bylex") {
            rangetype = RangeType::Lex;
        } else if rangetype == RangeType::Auto && eq_ic(a, "byscore") {
            rangetype = RangeType::Score;
        } else {
            return err(SYNTAX);
        }
        j += 1;
    }
    if direction == Direction::Auto {
        direction = Direction::Forward;
    }
    if rangetype == RangeType::Auto {
        rangetype = RangeType::Rank;
    }
    if limit != -1 && rangetype == RangeType::Rank {
        return err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
    }
    if withscores && rangetype == RangeType::Lex {
        return err("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    let rev = direction == Direction::Reverse;
    if rev && rangetype != RangeType::Rank {
        std::mem::swap(&mut minidx, &mut maxidx);
    }
    let parsed = match rangetype {
        RangeType::Score => Parsed::Score(parse_score_range(&args[minidx], &args[maxidx])?),
        RangeType::Lex => Parsed::Lex(parse_lex_range(&args[minidx], &args[maxidx])?),
        _ => Parsed::Rank(int_arg(&args[minidx])?, int_arg(&args[maxidx])?),
    };
    let limits = ctx.node.hot.limits();
    let view = ctx.view.as_mut().ok_or_else(no_view)?;
    match store {
        None => {
            let Some(z) = zread(view, key)? else {
                ctx.out.array(0);
                return Ok(());
            };
            let items = select_range(z, &parsed, rev, offset, limit);
            reply_pairs(&mut ctx.out, items.into_iter(), withscores);
        }
        Some(dst) => {
            // Like redis: the destination starts compact unless the rank
            // range is known to be too long, and elements are added in the
            // order the range emits them (which decides where a negative
            // zero keeps its sign).
            let (items, hint) = match zread(view, key)? {
                None => (Vec::new(), None),
                Some(z) => {
                    let v: Vec<(Vec<u8>, f64)> = select_range(z, &parsed, rev, offset, limit)
                        .into_iter()
                        .map(|(m, s)| (m.to_vec(), s))
                        .collect();
                    let hint = matches!(parsed, Parsed::Rank(..)).then_some(v.len());
                    (v, hint)
                }
            };
            if items.is_empty() {
                view.delete(dst);
                ctx.out.int(0);
                return Ok(());
            }
            let mut z = match hint {
                Some(n) if n > limits.zset_max_listpack_entries => ZSetObj::new_skiplist(),
                _ => ZSetObj::default(),
            };
            for (m, s) in &items {
                z.insert_new(m, *s, &limits);
            }
            view.set(dst, Value::Obj(Object::ZSet(z)), false);
            ctx.out.int(items.len() as i64);
        }
    }
    Ok(())
}

fn zrange(ctx: &mut Ctx) -> CmdResult {
    zrange_generic(ctx, 1, None, RangeType::Auto, Direction::Auto)
}

fn zrangestore(ctx: &mut Ctx) -> CmdResult {
    let dst = ctx.args[1].clone();
    zrange_generic(ctx, 2, Some(&dst), RangeType::Auto, Direction::Auto)
}

fn zrevrange(ctx: &mut Ctx) -> CmdResult {
    zrange_generic(ctx, 1, None, RangeType::Rank, Direction::Reverse)
}

fn zrangebyscore(ctx: &mut Ctx) -> CmdResult {
    zrange_generic(ctx, 1, None, RangeType::Score, Direction::Forward)
}

fn zrevrangebyscore(ctx: &mut Ctx) -> CmdResult {
    zrange_generic(ctx, 1, None, RangeType::Score, Direction::Reverse)
}

fn zrangebylex(ctx: &mut Ctx) -> CmdResult {
    zrange_generic(ctx, 1, None, RangeType::Lex, Direction::Forward)
}

fn zrevrangebylex(ctx: &mut Ctx) -> CmdResult {
    zrange_generic(ctx, 1, None, RangeType::Lex, Direction::Reverse)
}

// ---------------------------------------------------------------------------
// ZREMRANGEBY*
// ---------------------------------------------------------------------------

fn zremrange_generic(ctx: &mut Ctx, rangetype: RangeType) -> CmdResult {
    let args = ctx.args;
    let key = &args[1];
    let parsed = match rangetype {
        RangeType::Score => Parsed::Score(parse_score_range(&args[2], &args[3])?),
        RangeType::Lex => Parsed::Lex(parse_lex_range(&args[2], &args[3])?),
        _ => Parsed::Rank(int_arg(&args[2])?, int_arg(&args[3])?),
    };
    let view = view(ctx)?;
    let Some(llen) = zcheck_write(view, key)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let Some(z) = zmut(view, key) else {
        ctx.out.int(0);
        return Ok(());
    };
    let deleted = match &parsed {
        Parsed::Rank(start, end) => {
            let llen = llen as i64;
            let (mut start, mut end) = (*start, *end);
            if start < 0 {
                start += llen;
            }
            if end < 0 {
                end += llen;
            }
            if start < 0 {
                start = 0;
            }
            if start > end || start >= llen {
                0
            } else {
                if end >= llen {
                    end = llen - 1;
                }
                z.remove_rank_range(start as usize, (end - start + 1) as usize)
            }
        }
        Parsed::Score(r) => z.remove_score_range(r),
        Parsed::Lex(r) => z.remove_lex_range(r),
    };
    if deleted > 0 {
        finish_write(view, key);
    }
    ctx.out.int(deleted as i64);
    Ok(())
}

fn zremrangebyscore(ctx: &mut Ctx) -> CmdResult {
    zremrange_generic(ctx, RangeType::Score)
}

fn zremrangebyrank(ctx: &mut Ctx) -> CmdResult {
    zremrange_generic(ctx, RangeType::Rank)
}

fn zremrangebylex(ctx: &mut Ctx) -> CmdResult {
    zremrange_generic(ctx, RangeType::Lex)
}

// ---------------------------------------------------------------------------
// Pops
// ---------------------------------------------------------------------------

/// Pops up to `count` elements from `key` (which holds a non-empty set).
fn pop_n(view: &mut View<'_>, key: &[u8], max: bool, count: usize) -> Vec<(Vec<u8>, f64)> {
    let mut got = Vec::new();
    if let Some(z) = zmut(view, key) {
        let n = count.min(z.len());
        got.reserve(n);
        for _ in 0..n {
            match z.pop(max) {
                Some(e) => got.push(e),
                None => break,
            }
        }
    }
    if !got.is_empty() {
        finish_write(view, key);
    }
    got
}

fn pop_cmd_name(max: bool) -> &'static [u8] {
    if max {
        b"ZPOPMAX"
    } else {
        b"ZPOPMIN"
    }
}

fn zpop_generic(ctx: &mut Ctx, max: bool) -> CmdResult {
    let args = ctx.args;
    if args.len() > 3 {
        return err(SYNTAX);
    }
    let count = if args.len() == 3 {
        Some(positive_long(&args[2])?)
    } else {
        None
    };
    let key = &args[1];
    let view = view(ctx)?;
    if zcheck_write(view, key)?.is_none() || count == Some(0) {
        ctx.out.array(0);
        return Ok(());
    }
    let n = count.unwrap_or(1) as usize;
    let got = pop_n(view, key, max, n);
    let nested = ctx.out.resp3() && count.is_some();
    if nested {
        ctx.out.array(got.len());
    } else {
        ctx.out.array(got.len() * 2);
    }
    for (m, s) in &got {
        if nested {
            ctx.out.array(2);
        }
        ctx.out.bulk(m);
        ctx.out.double(*s);
    }
    Ok(())
}

fn zpopmin(ctx: &mut Ctx) -> CmdResult {
    zpop_generic(ctx, false)
}

fn zpopmax(ctx: &mut Ctx) -> CmdResult {
    zpop_generic(ctx, true)
}

/// BZPOPMIN / BZPOPMAX key [key ...] timeout
fn bzpop_generic(ctx: &mut Ctx, max: bool) -> CmdResult {
    let args = ctx.args;
    let deadline = parse_timeout(&args[args.len() - 1]).map_err(CmdError)?;
    let keys = &args[1..args.len() - 1];
    let view = view(ctx)?;
    for key in keys {
        match zcheck_write(view, key)? {
            None | Some(0) => continue,
            Some(_) => {
                let got = pop_n(view, key, max, 1);
                view.propagate(&[pop_cmd_name(max), key]);
                ctx.out.array(got.len() * 2 + 1);
                ctx.out.bulk(key);
                for (m, s) in &got {
                    ctx.out.bulk(m);
                    ctx.out.double(*s);
                }
                return Ok(());
            }
        }
    }
    ctx.block(keys.to_vec(), deadline, TimeoutReply::NullArray)
}

fn bzpopmin(ctx: &mut Ctx) -> CmdResult {
    bzpop_generic(ctx, false)
}

fn bzpopmax(ctx: &mut Ctx) -> CmdResult {
    bzpop_generic(ctx, true)
}

/// Writes the ZMPOP reply and propagates the pop.
fn zmpop_reply(ctx: &mut Ctx, key: &[u8], max: bool, count: usize) -> CmdResult {
    let view = view(ctx)?;
    let got = pop_n(view, key, max, count);
    let n = got.len().to_string();
    view.propagate(&[pop_cmd_name(max), key, n.as_bytes()]);
    ctx.out.array(2);
    ctx.out.bulk(key);
    ctx.out.array(got.len());
    for (m, s) in &got {
        ctx.out.array(2);
        ctx.out.bulk(m);
        ctx.out.double(*s);
    }
    Ok(())
}

/// Parses `numkeys key... MIN|MAX [COUNT n]` starting at `numkeys_idx`.
fn parse_mpop(args: &[Bytes], numkeys_idx: usize) -> Result<(Vec<Bytes>, bool, usize), CmdError> {
    let numkeys = range_long(
        &args[numkeys_idx],
        1,
        i64::MAX,
        "ERR numkeys should be greater than 0",
    )? as u64;
    let where_idx = (numkeys_idx as u64)
        .saturating_add(numkeys)
        .saturating_add(1);
    if where_idx >= args.len() as u64 {
        return err(SYNTAX);
    }
    let where_idx = where_idx as usize;
    let max = if eq_ic(&args[where_idx], "min") {
        false
    } else if eq_ic(&args[where_idx], "max") {
        true
    } else {
        return err(SYNTAX);
    };
    let mut count: i64 = -1;
    let mut j = where_idx + 1;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if count == -1 && eq_ic(&args[j], "count") && more > 0 {
            j += 1;
            count = range_long(&args[j], 1, i64::MAX, "ERR count should be greater than 0")?;
        } else {
            return err(SYNTAX);
        }
        j += 1;
    }
    if count == -1 {
        count = 1;
    }
    let keys = args[numkeys_idx + 1..where_idx].to_vec();
    Ok((keys, max, usize::try_from(count).unwrap_or(usize::MAX)))
}

fn zmpop(ctx: &mut Ctx) -> CmdResult {
    let (keys, max, count) = parse_mpop(ctx.args, 1)?;
    let view = view(ctx)?;
    let mut found = None;
    for key in &keys {
        if zcheck_write(view, key)?.is_some() {
            found = Some(key.clone());
            break;
        }
    }
    match found {
        None => {
            ctx.out.null_array();
            Ok(())
        }
        Some(key) => zmpop_reply(ctx, &key, max, count),
    }
}

fn bzmpop(ctx: &mut Ctx) -> CmdResult {
    let (keys, max, count) = parse_mpop(ctx.args, 2)?;
    let deadline = parse_timeout(&ctx.args[1]).map_err(CmdError)?;
    let view = view(ctx)?;
    for key in &keys {
        match zcheck_write(view, key)? {
            None | Some(0) => continue,
            Some(_) => return zmpop_reply(ctx, key, max, count),
        }
    }
    ctx.block(keys, deadline, TimeoutReply::NullArray)
}

// ---------------------------------------------------------------------------
// ZUNION / ZINTER / ZDIFF
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(target: &mut f64, val: f64, agg: Aggregate) {
    match agg {
        Aggregate::Sum => {
            *target += val;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggregate::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

/// An input of a set operation, copied out of the keyspace.
struct Source {
    key: Bytes,
    entries: Vec<(Vec<u8>, f64)>,
    index: Option<HashMap<Vec<u8>, f64>>,
    weight: f64,
}

impl Source {
    fn from_set(key: Bytes, s: &SetObj) -> Source {
        let entries = s.members().into_iter().map(|m| (m, 1.0)).collect();
        Source {
            key,
            entries,
            index: None,
            weight: 1.0,
        }
    }

    fn find(&mut self, m: &[u8]) -> Option<f64> {
        let idx = self
            .index
            .get_or_insert_with(|| self.entries.iter().cloned().collect());
        idx.get(m).copied()
    }
}

fn setop_generic(
    ctx: &mut Ctx,
    dst: Option<Bytes>,
    numkeys_idx: usize,
    op: SetOp,
    card_only: bool,
) -> CmdResult {
    let args = ctx.args;
    let setnum = int_arg(&args[numkeys_idx])?;
    if setnum < 1 {
        return Err(CmdError(format!(
            "ERR at least 1 input key is needed for '{}' command",
            ctx.spec.name
        )));
    }
    if setnum as u64 > (args.len() - (numkeys_idx + 1)) as u64 {
        return err(SYNTAX);
    }
    let setnum = setnum as usize;
    let limits = ctx.node.hot.limits();
    let view = ctx.view.as_mut().ok_or_else(no_view)?;
    let mut srcs: Vec<Source> = Vec::with_capacity(setnum);
    for key in &args[numkeys_idx + 1..numkeys_idx + 1 + setnum] {
        let src = match view.get(key) {
            None => Source {
                key: key.clone(),
                entries: Vec::new(),
                index: None,
                weight: 1.0,
            },
            Some(ValueRef::Obj(Object::ZSet(z))) => Source {
                key: key.clone(),
                entries: z.entries(),
                index: None,
                weight: 1.0,
            },
            Some(ValueRef::Obj(Object::Set(s))) => Source::from_set(key.clone(), s),
            Some(_) => return err(WRONGTYPE),
        };
        srcs.push(src);
    }
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut limit: i64 = 0;
    let mut j = numkeys_idx + 1 + setnum;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = &args[j];
        if op != SetOp::Diff && !card_only && remaining > setnum && eq_ic(a, "weights") {
            j += 1;
            for s in srcs.iter_mut() {
                s.weight = parse_score(&args[j])
                    .ok_or_else(|| CmdError::new("ERR weight value is not a float"))?;
                j += 1;
            }
        } else if op != SetOp::Diff && !card_only && remaining >= 2 && eq_ic(a, "aggregate") {
            let v = &args[j + 1];
            agg = if eq_ic(v, "sum") {
                Aggregate::Sum
            } else if eq_ic(v, "min") {
                Aggregate::Min
            } else if eq_ic(v, "max") {
                Aggregate::Max
            } else {
                return err(SYNTAX);
            };
            j += 2;
        } else if dst.is_none() && !card_only && eq_ic(a, "withscores") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && eq_ic(a, "limit") {
            limit = match parse_i64(&args[j + 1]) {
                Some(v) if v >= 0 => v,
                _ => return err("ERR LIMIT can't be negative"),
            };
            j += 2;
        } else {
            return err(SYNTAX);
        }
    }
    if op != SetOp::Diff {
        srcs.sort_by_key(|s| s.entries.len());
    }
    let mut result: Vec<(Vec<u8>, f64)> = Vec::new();
    let mut cardinality: i64 = 0;
    match op {
        SetOp::Inter => {
            if !srcs[0].entries.is_empty() {
                let (first, rest) = srcs.split_at_mut(1);
                let first = &first[0];
                for (m, s0) in &first.entries {
                    let mut score = first.weight * s0;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    let mut all = true;
                    for other in rest.iter_mut() {
                        let v = if other.key == first.key {
                            Some(*s0)
                        } else {
                            other.find(m)
                        };
                        match v {
                            Some(v) => aggregate(&mut score, v * other.weight, agg),
                            None => {
                                all = false;
                                break;
                            }
                        }
                    }
                    if !all {
                        continue;
                    }
                    if card_only {
                        cardinality += 1;
                        if limit > 0 && cardinality >= limit {
                            break;
                        }
                    } else {
                        result.push((m.clone(), score));
                    }
                }
            }
        }
        SetOp::Union => {
            let mut acc: HashMap<Vec<u8>, f64> = HashMap::new();
            for src in &srcs {
                for (m, s) in &src.entries {
                    let mut score = src.weight * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    match acc.get_mut(m) {
                        Some(t) => aggregate(t, score, agg),
                        None => {
                            acc.insert(m.clone(), score);
                        }
                    }
                }
            }
            result = acc.into_iter().collect();
        }
        SetOp::Diff => {
            let (first, rest) = srcs.split_at_mut(1);
            let first = &first[0];
            if !first.entries.is_empty() && !rest.iter().any(|s| s.key == first.key) {
                for (m, s) in &first.entries {
                    if !rest.iter_mut().any(|o| o.find(m).is_some()) {
                        result.push((m.clone(), *s));
                    }
                }
            }
        }
    }
    if card_only {
        ctx.out.int(cardinality);
        return Ok(());
    }
    sort_entries(&mut result);
    match dst {
        Some(dst) => {
            let n = store_result(view, &dst, result, &limits, true);
            ctx.out.int(n as i64);
        }
        None => {
            reply_pairs(
                &mut ctx.out,
                result.iter().map(|(m, s)| (m.as_slice(), *s)),
                withscores,
            );
        }
    }
    Ok(())
}

fn zunion(ctx: &mut Ctx) -> CmdResult {
    setop_generic(ctx, None, 1, SetOp::Union, false)
}

fn zinter(ctx: &mut Ctx) -> CmdResult {
    setop_generic(ctx, None, 1, SetOp::Inter, false)
}

fn zdiff(ctx: &mut Ctx) -> CmdResult {
    setop_generic(ctx, None, 1, SetOp::Diff, false)
}

fn zintercard(ctx: &mut Ctx) -> CmdResult {
    setop_generic(ctx, None, 1, SetOp::Inter, true)
}

fn zunionstore(ctx: &mut Ctx) -> CmdResult {
    let dst = ctx.args[1].clone();
    setop_generic(ctx, Some(dst), 2, SetOp::Union, false)
}

fn zinterstore(ctx: &mut Ctx) -> CmdResult {
    let dst = ctx.args[1].clone();
    setop_generic(ctx, Some(dst), 2, SetOp::Inter, false)
}

fn zdiffstore(ctx: &mut Ctx) -> CmdResult {
    let dst = ctx.args[1].clone();
    setop_generic(ctx, Some(dst), 2, SetOp::Diff, false)
}

// ---------------------------------------------------------------------------
// ZRANDMEMBER / ZSCAN
// ---------------------------------------------------------------------------

fn zrandmember(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let key = &args[1];
    if args.len() >= 3 {
        let l = match parse_i64(&args[2]) {
            None => return err(NOT_INTEGER),
            Some(i64::MIN) => {
                return err(
                    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                )
            }
            Some(v) => v,
        };
        let withscores = if args.len() > 4 || (args.len() == 4 && !eq_ic(&args[3], "withscores")) {
            return err(SYNTAX);
        } else if args.len() == 4 {
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
                return err("ERR value is out of range");
            }
            true
        } else {
            false
        };
        let view = ctx.view.as_mut().ok_or_else(no_view)?;
        let Some(z) = zread(view, key)? else {
            ctx.out.array(0);
            return Ok(());
        };
        let size = z.len();
        let out = &mut ctx.out;
        let uniq = l >= 0;
        let count = l.unsigned_abs();
        if count == 0 {
            out.array(0);
            return Ok(());
        }
        let mut rng = rand::thread_rng();
        let emit = |out: &mut ReplyWriter<'_>, m: &[u8], s: f64| {
            if withscores && out.resp3() {
                out.array(2);
            }
            out.bulk(m);
            if withscores {
                out.double(s);
            }
        };
        if !uniq || count == 1 {
            // Random picks with repetition.
            let count = count as usize;
            out.array(if withscores && !out.resp3() {
                count * 2
            } else {
                count
            });
            for _ in 0..count {
                z.walk(rng.gen_range(0..size), false, |m, s| {
                    emit(out, m, s);
                    false
                });
            }
            return Ok(());
        }
        let entries = z.entries();
        let count = count.min(size as u64) as usize;
        out.array(if withscores && !out.resp3() {
            count * 2
        } else {
            count
        });
        if count >= size {
            for e in &entries {
                emit(out, &e.0, e.1);
            }
            return Ok(());
        }
        // A random subset of distinct elements, in random order.
        let mut idx: Vec<usize> = (0..size).collect();
        for i in 0..count {
            let j = rng.gen_range(i..size);
            idx.swap(i, j);
        }
        for &i in &idx[..count] {
            emit(out, &entries[i].0, entries[i].1);
        }
        return Ok(());
    }
    let view = ctx.view.as_mut().ok_or_else(no_view)?;
    match zread(view, key)? {
        None => ctx.out.null(),
        Some(z) => {
            let i = rand::thread_rng().gen_range(0..z.len().max(1));
            let mut picked = None;
            z.walk(i, false, |m, _| {
                picked = Some(m.to_vec());
                false
            });
            match picked {
                Some(m) => ctx.out.bulk(&m),
                None => ctx.out.null(),
            }
        }
    }
    Ok(())
}

fn zscan(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let cursor = parse_cursor(&args[2]).ok_or_else(|| CmdError::new("ERR invalid cursor"))?;
    let view = ctx.view.as_mut().ok_or_else(no_view)?;
    let Some(z) = zread(view, &args[1])? else {
        ctx.out.array(2);
        ctx.out.bulk(b"0");
        ctx.out.array(0);
        return Ok(());
    };
    let mut count: i64 = 10;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 3;
    while i < args.len() {
        let left = args.len() - i;
        if eq_ic(&args[i], "count") && left >= 2 {
            count = int_arg(&args[i + 1])?;
            if count < 1 {
                return err(SYNTAX);
            }
            i += 2;
        } else if eq_ic(&args[i], "match") && left >= 2 {
            let p = &args[i + 1][..];
            pattern = if p == b"*" { None } else { Some(p) };
            i += 2;
        } else {
            return err(SYNTAX);
        }
    }
    let compact = matches!(z, ZSetObj::Listpack(_));
    let mut items: Vec<(Vec<u8>, String)> = Vec::new();
    let next = z.scan(cursor, count as usize, |m, s| {
        if let Some(p) = pattern {
            if !glob_match(p, m, false) {
                return;
            }
        }
        let text = if compact {
            listpack_score_text(s)
        } else {
            format_double(s)
        };
        items.push((m.to_vec(), text));
    });
    ctx.out.array(2);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.array(items.len() * 2);
    for (m, s) in &items {
        ctx.out.bulk(m);
        ctx.out.bulk(s.as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtod_forms() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"+Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_score(b"0x10"), Some(16.0));
        assert_eq!(parse_score(b"0x1p3"), Some(8.0));
        assert_eq!(parse_score(b"1e"), None);
        assert_eq!(parse_score(b" 1"), None);
        assert_eq!(parse_score(b"1 "), None);
        assert_eq!(parse_score(b"nan"), None);
        assert_eq!(parse_score(b"1e400"), None);
        assert_eq!(parse_score(b"1e-400"), None);
        assert_eq!(parse_score(b".5"), Some(0.5));
        assert_eq!(parse_score(b"5."), Some(5.0));
        assert_eq!(parse_score(b""), None);
        assert_eq!(parse_range_item(b""), Some((0.0, false)));
        assert_eq!(parse_range_item(b"("), Some((0.0, true)));
        assert_eq!(parse_range_item(b" 3"), Some((3.0, false)));
        assert_eq!(parse_range_item(b"1e400"), Some((f64::INFINITY, false)));
        assert_eq!(parse_range_item(b"(nan"), None);
    }

    #[test]
    fn cursors() {
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"+7"), Some(7));
        assert_eq!(parse_cursor(b" 7"), None);
        assert_eq!(parse_cursor(b"18446744073709551616"), None);
    }

    #[test]
    fn listpack_texts() {
        assert_eq!(listpack_score_text(1e17), "100000000000000000");
        assert_eq!(listpack_score_text(-0.0), "0");
        assert_eq!(listpack_score_text(0.5), "0.5");
        assert_eq!(listpack_score_text(1e300), "1.0000000000000001e+300");
    }
}
