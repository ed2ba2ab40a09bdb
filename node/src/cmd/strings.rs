//! String commands.

use std::collections::HashMap;

use super::{eq_ic, err, int_arg, parse_f64, parse_i64, Access, CmdError, CmdResult, Ctx, Entry};
use super::{NOT_FLOAT, NOT_INTEGER, OVERFLOW, SYNTAX, WRONGTYPE};
use crate::engine::{ValueRef, View};

pub fn register(m: &mut HashMap<&'static str, Entry>) {
    let k = |run| Entry {
        run,
        access: Access::Keys,
    };
    m.insert("get", k(get));
    m.insert("set", k(set));
    m.insert("setnx", k(setnx));
    m.insert("setex", k(setex));
    m.insert("psetex", k(psetex));
    m.insert("getset", k(getset));
    m.insert("getdel", k(getdel));
    m.insert("getex", k(getex));
    m.insert("mget", k(mget));
    m.insert("mset", k(mset));
    m.insert("msetnx", k(msetnx));
    m.insert("append", k(append));
    m.insert("strlen", k(strlen));
    m.insert("incr", k(incr));
    m.insert("decr", k(decr));
    m.insert("incrby", k(incrby));
    m.insert("decrby", k(decrby));
    m.insert("incrbyfloat", k(incrbyfloat));
    m.insert("getrange", k(getrange));
    m.insert("substr", k(getrange));
    m.insert("setrange", k(setrange));
}

/// Reads a string value; WRONGTYPE for other types.
pub fn read_str<'v>(view: &'v mut View<'_>, key: &[u8]) -> Result<Option<&'v [u8]>, CmdError> {
    match view.get(key) {
        None => Ok(None),
        Some(ValueRef::Str(s)) => Ok(Some(s)),
        Some(ValueRef::Obj(_)) => err(WRONGTYPE),
    }
}

fn read_str_w<'v>(view: &'v mut View<'_>, key: &[u8]) -> Result<Option<&'v [u8]>, CmdError> {
    match view.get_for_write(key) {
        None => Ok(None),
        Some(ValueRef::Str(s)) => Ok(Some(s)),
        Some(ValueRef::Obj(_)) => err(WRONGTYPE),
    }
}

fn get(ctx: &mut Ctx) -> CmdResult {
    let key = ctx.args[1].clone();
    let v = ctx.view()?;
    match read_str(v, &key)? {
        Some(s) => {
            let s = s.to_vec();
            ctx.out.bulk(&s);
        }
        None => ctx.out.null(),
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cond {
    None,
    Nx,
    Xx,
}

/// Expiry argument forms shared by SET and GETEX.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Exp {
    None,
    Keep,
    Persist,
    At(i64),
}

/// Converts an EX/PX/EXAT/PXAT amount into an absolute unix ms time,
/// rejecting what redis rejects.
fn expire_time(now: i64, unit: &[u8], amount: &[u8], cmd: &str) -> Result<i64, CmdError> {
    let n = int_arg(amount)?;
    let bad = || CmdError(format!("ERR invalid expire time in '{cmd}' command"));
    if n <= 0 {
        return Err(bad());
    }
    let ms = if eq_ic(unit, "ex") || eq_ic(unit, "exat") {
        n.checked_mul(1000).ok_or_else(bad)?
    } else {
        n
    };
    let at = if eq_ic(unit, "ex") || eq_ic(unit, "px") {
        ms.checked_add(now).ok_or_else(bad)?
    } else {
        ms
    };
    Ok(at)
}

/// Option flags of SET and GETEX, parsed like redis's
/// `parseExtendedStringArgumentsOrReply`: an option may repeat (the last
/// expiry wins) but conflicting options are a syntax error.
#[derive(Default)]
struct StrOpts {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    /// EX/PX/EXAT/PXAT and its amount (validated after parsing).
    expire: Option<(usize, usize)>,
}

fn parse_str_opts(args: &[bytes::Bytes], first: usize, is_set: bool) -> Result<StrOpts, CmdError> {
    let mut o = StrOpts::default();
    let mut i = first;
    while i < args.len() {
        let a = &args[i];
        let has_next = i + 1 < args.len();
        // Another expiry form was given before (repeating the same one is
        // allowed).
        let other_exp = o
            .expire
            .is_some_and(|(k, _)| !args[k].eq_ignore_ascii_case(a));
        if eq_ic(a, "nx") && !o.xx && is_set {
            o.nx = true;
        } else if eq_ic(a, "xx") && !o.nx && is_set {
            o.xx = true;
        } else if eq_ic(a, "get") && is_set {
            o.get = true;
        } else if eq_ic(a, "keepttl") && !o.persist && o.expire.is_none() && is_set {
            o.keepttl = true;
        } else if eq_ic(a, "persist") && !is_set && o.expire.is_none() && !o.keepttl {
            o.persist = true;
        } else if ["ex", "px", "exat", "pxat"].iter().any(|u| eq_ic(a, u))
            && !o.keepttl
            && !o.persist
            && !other_exp
            && has_next
        {
            o.expire = Some((i, i + 1));
            i += 1;
        } else {
            return err(SYNTAX);
        }
        i += 1;
    }
    Ok(o)
}

fn set(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let opts = parse_str_opts(args, 3, true)?;
    let now = ctx.view()?.now_ms;
    let cond = if opts.nx {
        Cond::Nx
    } else if opts.xx {
        Cond::Xx
    } else {
        Cond::None
    };
    let want_get = opts.get;
    let exp = match opts.expire {
        Some((u, a)) => Exp::At(expire_time(now, &args[u], &args[a], "set")?),
        None if opts.keepttl => Exp::Keep,
        None => Exp::None,
    };
    let key = &args[1];
    let value = &args[2];
    let view = ctx.view()?;
    let old: Option<Vec<u8>> = if want_get {
        read_str_w(view, key)?.map(|s| s.to_vec())
    } else {
        None
    };
    // Only NX and XX need to know whether the key is there.
    let exists = if want_get {
        old.is_some()
    } else {
        cond != Cond::None && view.lookup_quiet(key)
    };
    let blocked = match cond {
        Cond::Nx => exists,
        Cond::Xx => !exists,
        Cond::None => false,
    };
    if !blocked {
        let keep = exp == Exp::Keep;
        view.set_str(key, value, keep);
        if let Exp::At(at) = exp {
            view.set_expire(key, Some(at));
            let ms = at.to_string();
            view.propagate(&[b"SET", key, value, b"PXAT", ms.as_bytes()]);
        } else if keep {
            view.propagate(&[b"SET", key, value, b"KEEPTTL"]);
        } else {
            view.propagate(&[b"SET", key, value]);
        }
    }
    if want_get {
        match old {
            Some(o) => ctx.out.bulk(&o),
            None => ctx.out.null(),
        }
    } else if blocked {
        ctx.out.null();
    } else {
        ctx.out.ok();
    }
    Ok(())
}

fn setnx(ctx: &mut Ctx) -> CmdResult {
    let (key, value) = (&ctx.args[1], &ctx.args[2]);
    let view = ctx.view()?;
    if view.lookup_quiet(key) {
        ctx.out.int(0);
    } else {
        view.set_str(key, value, false);
        ctx.out.int(1);
    }
    Ok(())
}

fn setex_generic(ctx: &mut Ctx, unit: &[u8], name: &str) -> CmdResult {
    let (key, amount, value) = (&ctx.args[1], &ctx.args[2], &ctx.args[3]);
    let now = ctx.view()?.now_ms;
    let at = expire_time(now, unit, amount, name)?;
    let view = ctx.view()?;
    view.set_str(key, value, false);
    view.set_expire(key, Some(at));
    let ms = at.to_string();
    view.propagate(&[b"SET", key, value, b"PXAT", ms.as_bytes()]);
    ctx.out.ok();
    Ok(())
}

fn setex(ctx: &mut Ctx) -> CmdResult {
    setex_generic(ctx, b"ex", "setex")
}

fn psetex(ctx: &mut Ctx) -> CmdResult {
    setex_generic(ctx, b"px", "psetex")
}

fn getset(ctx: &mut Ctx) -> CmdResult {
    let (key, value) = (&ctx.args[1], &ctx.args[2]);
    let view = ctx.view()?;
    let old = read_str_w(view, key)?.map(|s| s.to_vec());
    view.set_str(key, value, false);
    view.propagate(&[b"SET", key, value]);
    match old {
        Some(o) => ctx.out.bulk(&o),
        None => ctx.out.null(),
    }
    Ok(())
}

fn getdel(ctx: &mut Ctx) -> CmdResult {
    let key = &ctx.args[1];
    let view = ctx.view()?;
    let old = read_str(view, key)?.map(|s| s.to_vec());
    match old {
        Some(o) => {
            view.delete(key);
            view.propagate(&[b"DEL", key]);
            ctx.out.bulk(&o);
        }
        None => ctx.out.null(),
    }
    Ok(())
}

fn getex(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let opts = parse_str_opts(args, 2, false)?;
    let now = ctx.view()?.now_ms;
    let key = &args[1];
    let view = ctx.view()?;
    let Some(val) = read_str(view, key)?.map(|s| s.to_vec()) else {
        ctx.out.null();
        return Ok(());
    };
    // Like redis, the expiry is validated only once the key was found.
    let exp = match opts.expire {
        Some((u, a)) => Exp::At(expire_time(now, &args[u], &args[a], "getex")?),
        None if opts.persist => Exp::Persist,
        None => Exp::None,
    };
    match exp {
        Exp::At(at) if at <= now => {
            view.delete(key);
            view.propagate(&[b"DEL", key]);
        }
        Exp::At(at) => {
            view.set_expire(key, Some(at));
            let ms = at.to_string();
            view.propagate(&[b"PEXPIREAT", key, ms.as_bytes()]);
        }
        Exp::Persist if view.expire_at(key).is_some() => {
            view.set_expire(key, None);
            view.propagate(&[b"PERSIST", key]);
        }
        _ => {}
    }
    ctx.out.bulk(&val);
    Ok(())
}

fn mget(ctx: &mut Ctx) -> CmdResult {
    let n = ctx.args.len() - 1;
    ctx.out.array(n);
    for i in 1..=n {
        let key = &ctx.args[i];
        let view = ctx.view()?;
        match view.get(key) {
            Some(ValueRef::Str(s)) => {
                let s = s.to_vec();
                ctx.out.bulk(&s);
            }
            _ => ctx.out.null(),
        }
    }
    Ok(())
}

fn mset_check(ctx: &Ctx) -> CmdResult {
    if ctx.args.len() % 2 == 0 {
        return Err(CmdError(format!(
            "ERR wrong number of arguments for '{}' command",
            ctx.spec.name
        )));
    }
    Ok(())
}

fn mset(ctx: &mut Ctx) -> CmdResult {
    mset_check(ctx)?;
    let args = ctx.args;
    let view = ctx.view()?;
    for pair in args[1..].chunks(2) {
        view.set_str(&pair[0], &pair[1], false);
    }
    ctx.out.ok();
    Ok(())
}

fn msetnx(ctx: &mut Ctx) -> CmdResult {
    mset_check(ctx)?;
    let args = ctx.args;
    let view = ctx.view()?;
    for pair in args[1..].chunks(2) {
        if view.lookup_quiet(&pair[0]) {
            ctx.out.int(0);
            return Ok(());
        }
    }
    for pair in args[1..].chunks(2) {
        view.set_str(&pair[0], &pair[1], false);
    }
    ctx.out.int(1);
    Ok(())
}

fn max_len(ctx: &Ctx) -> u64 {
    ctx.node
        .hot
        .proto_max_bulk_len
        .load(std::sync::atomic::Ordering::Relaxed)
}

fn append(ctx: &mut Ctx) -> CmdResult {
    let (key, tail) = (&ctx.args[1], &ctx.args[2]);
    let limit = max_len(ctx);
    let view = ctx.view()?;
    let cur = read_str_w(view, key)?.map(|s| s.to_vec());
    let len = match cur {
        Some(mut s) => {
            if (s.len() + tail.len()) as u64 > limit {
                return err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
            }
            s.extend_from_slice(tail);
            let n = s.len();
            view.update_str(key, s, true);
            n
        }
        None => {
            view.set_str(key, tail, false);
            tail.len()
        }
    };
    ctx.out.int(len as i64);
    Ok(())
}

fn strlen(ctx: &mut Ctx) -> CmdResult {
    let key = &ctx.args[1];
    let view = ctx.view()?;
    let n = read_str(view, key)?.map_or(0, |s| s.len());
    ctx.out.int(n as i64);
    Ok(())
}

fn incr_by(ctx: &mut Ctx, by: i64) -> CmdResult {
    let key = &ctx.args[1];
    let view = ctx.view()?;
    let cur = match read_str_w(view, key)? {
        Some(s) => parse_i64(s).ok_or_else(|| CmdError::new(NOT_INTEGER))?,
        None => 0,
    };
    let new = cur.checked_add(by).ok_or_else(|| CmdError::new(OVERFLOW))?;
    let mut b = itoa::Buffer::new();
    let s = b.format(new).as_bytes().to_vec();
    view.update_str(key, s, false);
    ctx.out.int(new);
    Ok(())
}

fn incr(ctx: &mut Ctx) -> CmdResult {
    incr_by(ctx, 1)
}

fn decr(ctx: &mut Ctx) -> CmdResult {
    incr_by(ctx, -1)
}

fn incrby(ctx: &mut Ctx) -> CmdResult {
    let by = int_arg(&ctx.args[2])?;
    incr_by(ctx, by)
}

fn decrby(ctx: &mut Ctx) -> CmdResult {
    let by = int_arg(&ctx.args[2])?;
    if by == i64::MIN {
        return err("ERR decrement would overflow");
    }
    incr_by(ctx, -by)
}

/// Formats a float for INCRBYFLOAT/HINCRBYFLOAT replies: plain decimal
/// notation, no exponent, shortest form that round-trips.
pub fn format_human_float(v: f64) -> String {
    let s = format!("{v}");
    if s == "-0" {
        return "0".into();
    }
    s
}

/// Parses a C99 hexadecimal float (`0x1.8p3`, `-0x10`), which redis accepts
/// because it parses INCRBYFLOAT operands with `strtold`.
fn parse_hex_float(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let rest = rest
        .strip_prefix("0x")
        .or_else(|| rest.strip_prefix("0X"))?;
    let (mant, exp) = match rest.find(['p', 'P']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (ip, fp) = match mant.find('.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, ""),
    };
    if ip.is_empty() && fp.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in ip.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in fp.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    if let Some(e) = exp {
        if !e
            .trim_start_matches(['+', '-'])
            .bytes()
            .all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let e: i32 = e.parse().ok()?;
        v *= 2f64.powi(e);
    }
    Some(if neg { -v } else { v })
}

/// INCRBYFLOAT operand parsing (redis's `strtold` based string2ld).
fn parse_ld(b: &[u8]) -> Option<f64> {
    parse_hex_float(b).or_else(|| parse_f64(b))
}

fn incrbyfloat(ctx: &mut Ctx) -> CmdResult {
    let key = &ctx.args[1];
    let by = parse_ld(&ctx.args[2]).ok_or_else(|| CmdError::new(NOT_FLOAT))?;
    let view = ctx.view()?;
    let cur = match read_str_w(view, key)? {
        Some(s) => parse_ld(s).ok_or_else(|| CmdError::new(NOT_FLOAT))?,
        None => 0.0,
    };
    let new = cur + by;
    if new.is_nan() || new.is_infinite() {
        return err("ERR increment would produce NaN or Infinity");
    }
    let s = format_human_float(new);
    view.update_str(key, s.as_bytes().to_vec(), false);
    view.mark_noint(key);
    view.propagate(&[b"SET", key, s.as_bytes(), b"KEEPTTL"]);
    ctx.out.bulk(s.as_bytes());
    Ok(())
}

fn getrange(ctx: &mut Ctx) -> CmdResult {
    let key = &ctx.args[1];
    let start = int_arg(&ctx.args[2])?;
    let end = int_arg(&ctx.args[3])?;
    let view = ctx.view()?;
    let Some(s) = read_str(view, key)? else {
        ctx.out.bulk(b"");
        return Ok(());
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        ctx.out.bulk(b"");
        return Ok(());
    }
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    if start < 0 {
        start = 0;
    }
    if end < 0 {
        end = 0;
    }
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        ctx.out.bulk(b"");
        return Ok(());
    }
    let part = s[start as usize..=end as usize].to_vec();
    ctx.out.bulk(&part);
    Ok(())
}

fn setrange(ctx: &mut Ctx) -> CmdResult {
    let key = &ctx.args[1];
    let offset = int_arg(&ctx.args[2])?;
    let patch = &ctx.args[3];
    if offset < 0 {
        return err("ERR offset is out of range");
    }
    let limit = max_len(ctx);
    let view = ctx.view()?;
    let cur = read_str_w(view, key)?.map(|s| s.to_vec());
    let mut s = cur.unwrap_or_default();
    if patch.is_empty() {
        ctx.out.int(s.len() as i64);
        return Ok(());
    }
    let end = offset as u64 + patch.len() as u64;
    if end > limit {
        return err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    }
    let end = end as usize;
    if s.len() < end {
        s.resize(end, 0);
    }
    s[offset as usize..end].copy_from_slice(patch);
    let n = s.len();
    view.update_str(key, s, true);
    ctx.out.int(n as i64);
    Ok(())
}
