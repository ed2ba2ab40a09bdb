//! Hash commands.

use std::collections::HashMap;

use rand::Rng;

use super::{eq_ic, err, int_arg, Access, CmdError, CmdResult, Ctx, Entry};
use super::{OVERFLOW, SYNTAX, WRONGTYPE};
use crate::engine::types::hash::{Elem, HashObj};
use crate::engine::{Object, Value, ValueRef, View};
use crate::glob::glob_match;
use crate::resp::ReplyWriter;

pub fn register(m: &mut HashMap<&'static str, Entry>) {
    let k = |run| Entry {
        run,
        access: Access::Keys,
    };
    m.insert("hset", k(hset));
    m.insert("hmset", k(hmset));
    m.insert("hsetnx", k(hsetnx));
    m.insert("hget", k(hget));
    m.insert("hmget", k(hmget));
    m.insert("hgetall", k(hgetall));
    m.insert("hkeys", k(hkeys));
    m.insert("hvals", k(hvals));
    m.insert("hdel", k(hdel));
    m.insert("hexists", k(hexists));
    m.insert("hlen", k(hlen));
    m.insert("hstrlen", k(hstrlen));
    m.insert("hincrby", k(hincrby));
    m.insert("hincrbyfloat", k(hincrbyfloat));
    m.insert("hscan", k(hscan));
    m.insert("hrandfield", k(hrandfield));
}

// ---------------------------------------------------------------------------
// Helpers shared with the set commands.

/// The view and the reply writer, borrowed separately.
pub(crate) fn parts<'a, 'n, 'o>(
    ctx: &'a mut Ctx<'n, '_, 'o>,
) -> Result<(&'a mut View<'n>, &'a mut ReplyWriter<'o>), CmdError> {
    let Ctx { view, out, .. } = ctx;
    let v = view
        .as_mut()
        .ok_or_else(|| CmdError::new("ERR internal error: command ran without its keys locked"))?;
    Ok((v, out))
}

/// Fails unless every key lives on a shard this command locked (guards
/// against argument forms the key extraction did not understand).
pub(crate) fn check_owned(view: &View<'_>, keys: &[bytes::Bytes]) -> CmdResult {
    if keys.iter().all(|k| view.owns(k)) {
        Ok(())
    } else {
        err(SYNTAX)
    }
}

/// Writes an element as a bulk string.
#[inline]
pub(crate) fn put(out: &mut ReplyWriter<'_>, e: Elem<'_>) {
    match e {
        Elem::Str(s) => out.bulk(s),
        Elem::Int(i) => out.bulk_int(i),
    }
}

/// A random index below `n`.
pub(crate) fn rnd_fn() -> impl FnMut(usize) -> usize {
    let mut rng = rand::thread_rng();
    move |n| rng.gen_range(0..n.max(1))
}

/// Parses a SCAN cursor as redis does (strtoul, base 10, whole string, no
/// leading space; a minus sign wraps around).
pub(crate) fn parse_cursor(b: &[u8]) -> Result<u64, CmdError> {
    let bad = || CmdError::new("ERR invalid cursor");
    if b.is_empty() {
        return Ok(0);
    }
    let (neg, digits) = match b[0] {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(bad)?;
    }
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// MATCH and COUNT options of HSCAN/SSCAN starting at `args[from]`.
pub(crate) fn parse_scan_opts(
    args: &[bytes::Bytes],
    from: usize,
) -> Result<(Option<&[u8]>, usize), CmdError> {
    let mut pattern = None;
    let mut count = 10usize;
    let mut i = from;
    while i < args.len() {
        let more = i + 1 < args.len();
        if eq_ic(&args[i], "count") && more {
            let c = int_arg(&args[i + 1])?;
            if c < 1 {
                return err(SYNTAX);
            }
            count = c as usize;
        } else if eq_ic(&args[i], "match") && more {
            let p = &args[i + 1][..];
            pattern = if p == b"*" { None } else { Some(p) };
        } else {
            return err(SYNTAX);
        }
        i += 2;
    }
    Ok((pattern, count))
}

pub(crate) fn matches(pattern: Option<&[u8]>, e: Elem<'_>) -> bool {
    match pattern {
        None => true,
        Some(p) => e.with_bytes(|b| glob_match(p, b, false)),
    }
}

/// The empty SCAN reply.
pub(crate) fn empty_scan(out: &mut ReplyWriter<'_>) {
    out.array(2);
    out.bulk(b"0");
    out.array(0);
}

/// Parses the count of SRANDMEMBER/HRANDFIELD: any integer but LONG_MIN.
pub(crate) fn rand_count(b: &[u8]) -> Result<i64, CmdError> {
    let l = int_arg(b)?;
    if l == i64::MIN {
        return err(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        );
    }
    Ok(l)
}

/// `count` distinct random indexes below `n` (count < n).
pub(crate) fn sample_indexes(
    n: usize,
    count: usize,
    rnd: &mut impl FnMut(usize) -> usize,
) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..count {
        let j = i + rnd(n - i);
        idx.swap(i, j);
    }
    idx.truncate(count);
    idx
}

// ---------------------------------------------------------------------------

fn read_hash<'v>(view: &'v mut View<'_>, key: &[u8]) -> Result<Option<&'v HashObj>, CmdError> {
    match view.get(key) {
        None => Ok(None),
        Some(ValueRef::Obj(Object::Hash(h))) => Ok(Some(h)),
        Some(_) => err(WRONGTYPE),
    }
}

fn write_hash<'v>(view: &'v mut View<'_>, key: &[u8]) -> Result<Option<&'v mut HashObj>, CmdError> {
    match view.get_for_write(key) {
        None => return Ok(None),
        Some(ValueRef::Obj(Object::Hash(_))) => {}
        Some(_) => return err(WRONGTYPE),
    }
    match view.obj_mut(key) {
        Some(Object::Hash(h)) => Ok(Some(h)),
        _ => Ok(None),
    }
}

/// Stores `h` under a new key, or records the in-place change.
fn commit(view: &mut View<'_>, key: &[u8], created: Option<HashObj>) {
    match created {
        Some(h) => {
            view.set(key, Value::Obj(Object::Hash(h)), false);
        }
        None => view.modified(key),
    }
}

fn hset_generic(ctx: &mut Ctx, ok_reply: bool) -> CmdResult {
    let args = ctx.args;
    if args.len() % 2 != 0 {
        return Err(CmdError(format!(
            "ERR wrong number of arguments for '{}' command",
            ctx.spec.name
        )));
    }
    let limits = ctx.node.hot.limits();
    let (view, out) = parts(ctx)?;
    let key = &args[1];
    let mut added = 0;
    let mut created = None;
    let h = match write_hash(view, key)? {
        Some(h) => h,
        None => created.insert(HashObj::default()),
    };
    for pair in args[2..].chunks(2) {
        if h.set(&pair[0], &pair[1], &limits) {
            added += 1;
        }
    }
    commit(view, key, created);
    if ok_reply {
        out.ok();
    } else {
        out.int(added);
    }
    Ok(())
}

fn hset(ctx: &mut Ctx) -> CmdResult {
    hset_generic(ctx, false)
}

fn hmset(ctx: &mut Ctx) -> CmdResult {
    hset_generic(ctx, true)
}

fn hsetnx(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let limits = ctx.node.hot.limits();
    let (view, out) = parts(ctx)?;
    let (key, field, value) = (&args[1], &args[2], &args[3]);
    let mut created = None;
    let h = match write_hash(view, key)? {
        Some(h) => h,
        None => created.insert(HashObj::default()),
    };
    if h.contains(field) {
        out.int(0);
        return Ok(());
    }
    h.set(field, value, &limits);
    commit(view, key, created);
    out.int(1);
    Ok(())
}

fn hget(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    match read_hash(view, &args[1])?.and_then(|h| h.get(&args[2])) {
        Some(v) => put(out, v),
        None => out.null(),
    }
    Ok(())
}

fn hmget(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    let h = read_hash(view, &args[1])?;
    out.array(args.len() - 2);
    for f in &args[2..] {
        match h.and_then(|h| h.get(f)) {
            Some(v) => put(out, v),
            None => out.null(),
        }
    }
    Ok(())
}

fn hgetall(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    match read_hash(view, &args[1])? {
        None => out.map(0),
        Some(h) => {
            out.map(h.len());
            h.for_each(|k, v| {
                put(out, k);
                put(out, v);
            });
        }
    }
    Ok(())
}

fn hkeys_vals(ctx: &mut Ctx, keys: bool) -> CmdResult {
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    match read_hash(view, &args[1])? {
        None => out.array(0),
        Some(h) => {
            out.array(h.len());
            h.for_each(|k, v| put(out, if keys { k } else { v }));
        }
    }
    Ok(())
}

fn hkeys(ctx: &mut Ctx) -> CmdResult {
    hkeys_vals(ctx, true)
}

fn hvals(ctx: &mut Ctx) -> CmdResult {
    hkeys_vals(ctx, false)
}

fn hdel(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    let key = &args[1];
    let Some(h) = write_hash(view, key)? else {
        out.int(0);
        return Ok(());
    };
    let mut n = 0;
    for f in &args[2..] {
        if h.remove(f) {
            n += 1;
            if h.is_empty() {
                break;
            }
        }
    }
    let empty = h.is_empty();
    if n > 0 {
        if empty {
            view.delete(key);
        } else {
            view.modified(key);
        }
    }
    out.int(n);
    Ok(())
}

fn hexists(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    let found = read_hash(view, &args[1])?.is_some_and(|h| h.contains(&args[2]));
    out.int(i64::from(found));
    Ok(())
}

fn hlen(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    let n = read_hash(view, &args[1])?.map_or(0, |h| h.len());
    out.int(n as i64);
    Ok(())
}

fn hstrlen(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (view, out) = parts(ctx)?;
    let n = read_hash(view, &args[1])?
        .and_then(|h| h.get(&args[2]))
        .map_or(0, |v| v.str_len());
    out.int(n as i64);
    Ok(())
}

fn hincrby(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let incr = int_arg(&args[3])?;
    let limits = ctx.node.hot.limits();
    let (view, out) = parts(ctx)?;
    let (key, field) = (&args[1], &args[2]);
    let mut created = None;
    let h = match write_hash(view, key)? {
        Some(h) => h,
        None => created.insert(HashObj::default()),
    };
    let cur = match h.get(field) {
        Some(v) => v
            .as_int()
            .ok_or_else(|| CmdError::new("ERR hash value is not an integer"))?,
        None => 0,
    };
    let new = cur
        .checked_add(incr)
        .ok_or_else(|| CmdError::new(OVERFLOW))?;
    let mut b = itoa::Buffer::new();
    h.set(field, b.format(new).as_bytes(), &limits);
    commit(view, key, created);
    out.int(new);
    Ok(())
}

fn hincrbyfloat(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let incr = match ld::parse(&args[3]) {
        None => return err(super::NOT_FLOAT),
        Some(ld::Value::Inf(_)) => return err("ERR value is NaN or Infinity"),
        Some(ld::Value::Finite(x)) => x,
    };
    let limits = ctx.node.hot.limits();
    let (view, out) = parts(ctx)?;
    let (key, field) = (&args[1], &args[2]);
    let mut created = None;
    let h = match write_hash(view, key)? {
        Some(h) => h,
        None => created.insert(HashObj::default()),
    };
    let nan_inf = || CmdError::new("ERR increment would produce NaN or Infinity");
    let cur = match h.get(field) {
        None => ld::Ld::from_i64(0),
        Some(Elem::Int(i)) => ld::Ld::from_i64(i),
        Some(Elem::Str(s)) => match ld::parse(s) {
            None => return err("ERR hash value is not a float"),
            Some(ld::Value::Inf(_)) => return Err(nan_inf()),
            Some(ld::Value::Finite(x)) => x,
        },
    };
    let sum = match ld::Ld::add(cur, incr) {
        Ok(s) => s,
        Err(ld::RangeError::Overflow) => return Err(nan_inf()),
        Err(ld::RangeError::Underflow) => ld::Ld::from_i64(0),
    };
    let s = sum.human();
    h.set(field, s.as_bytes(), &limits);
    commit(view, key, created);
    view.propagate(&[b"HSET", key, field, s.as_bytes()]);
    out.bulk(s.as_bytes());
    Ok(())
}

fn hscan(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let cursor = parse_cursor(&args[2])?;
    let (view, out) = parts(ctx)?;
    let Some(h) = read_hash(view, &args[1])? else {
        empty_scan(out);
        return Ok(());
    };
    let (pattern, count) = parse_scan_opts(args, 3)?;
    let mut found: Vec<(Elem<'_>, Elem<'_>)> = Vec::new();
    let next = h.scan(cursor, count, |k, v| {
        if matches(pattern, k) {
            found.push((k, v));
        }
    });
    out.array(2);
    out.bulk(itoa::Buffer::new().format(next).as_bytes());
    out.array(found.len() * 2);
    for (k, v) in found {
        put(out, k);
        put(out, v);
    }
    Ok(())
}

fn hrandfield(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let mut rnd = rnd_fn();
    if args.len() == 2 {
        let (view, out) = parts(ctx)?;
        match read_hash(view, &args[1])?.and_then(|h| h.random(&mut rnd)) {
            Some((k, _)) => put(out, k),
            None => out.null(),
        }
        return Ok(());
    }
    let l = rand_count(&args[2])?;
    if args.len() > 4 || (args.len() == 4 && !eq_ic(&args[3], "withvalues")) {
        return err(SYNTAX);
    }
    let withvalues = args.len() == 4;
    if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return err("ERR value is out of range");
    }
    let (view, out) = parts(ctx)?;
    let Some(h) = read_hash(view, &args[1])? else {
        out.array(0);
        return Ok(());
    };
    let resp3 = out.resp3();
    let emit = |out: &mut ReplyWriter<'_>, k: Elem<'_>, v: Elem<'_>| {
        if withvalues && resp3 {
            out.array(2);
        }
        put(out, k);
        if withvalues {
            put(out, v);
        }
    };
    let header = |out: &mut ReplyWriter<'_>, n: usize| {
        out.array(if withvalues && !resp3 { n * 2 } else { n });
    };
    if l == 0 {
        out.array(0);
    } else if l < 0 {
        // Repeats allowed.
        let n = l.unsigned_abs() as usize;
        header(out, n);
        for _ in 0..n {
            if let Some((k, v)) = h.random(&mut rnd) {
                emit(out, k, v);
            }
        }
    } else if l as usize >= h.len() {
        header(out, h.len());
        h.for_each(|k, v| emit(out, k, v));
    } else {
        let pairs = h.pairs();
        let picks = sample_indexes(pairs.len(), l as usize, &mut rnd);
        header(out, picks.len());
        for i in picks {
            let (k, v) = pairs[i];
            emit(out, k, v);
        }
    }
    Ok(())
}

/// Software x87 long double for HINCRBYFLOAT.
mod ld {
    // x87 80-bit `long double` arithmetic in software, as far as HINCRBYFLOAT
    // needs it: redis parses the operands with `strtold`, adds them in long
    // double precision (64-bit mantissa) and prints the sum with `%.17Lf`.
    // Doing the same here makes replies byte-identical to redis on x86-64
    // (for example 0.1 + 0.2 gives "0.3", not "0.30000000000000004").

    use std::cmp::Ordering;

    /// Unsigned big integer, little-endian 64-bit limbs, no trailing zeros.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    struct Big(Vec<u64>);

    impl Big {
        fn from_u64(v: u64) -> Big {
            let mut b = Big(vec![v]);
            b.trim();
            b
        }
        fn trim(&mut self) {
            while self.0.last() == Some(&0) {
                self.0.pop();
            }
        }
        fn is_zero(&self) -> bool {
            self.0.is_empty()
        }
        fn bits(&self) -> u64 {
            match self.0.last() {
                None => 0,
                Some(&top) => (self.0.len() as u64) * 64 - u64::from(top.leading_zeros()),
            }
        }
        fn bit(&self, i: u64) -> bool {
            let limb = (i / 64) as usize;
            self.0.get(limb).is_some_and(|l| (l >> (i % 64)) & 1 == 1)
        }
        /// True if any bit below `i` is set.
        fn any_below(&self, i: u64) -> bool {
            let full = (i / 64) as usize;
            if self.0.iter().take(full).any(|&l| l != 0) {
                return true;
            }
            let rem = i % 64;
            rem > 0
                && self
                    .0
                    .get(full)
                    .is_some_and(|l| l & ((1u64 << rem) - 1) != 0)
        }
        fn mul_small(&mut self, m: u64) {
            let mut carry = 0u128;
            for l in self.0.iter_mut() {
                let v = u128::from(*l) * u128::from(m) + carry;
                *l = v as u64;
                carry = v >> 64;
            }
            if carry > 0 {
                self.0.push(carry as u64);
            }
            self.trim();
        }
        fn add_small(&mut self, a: u64) {
            let mut carry = a;
            for l in self.0.iter_mut() {
                let (v, c) = l.overflowing_add(carry);
                *l = v;
                carry = u64::from(c);
                if carry == 0 {
                    break;
                }
            }
            if carry > 0 {
                self.0.push(carry);
            }
        }
        fn mul_pow10(&mut self, mut n: u64) {
            while n >= 19 {
                self.mul_small(10_000_000_000_000_000_000);
                n -= 19;
            }
            if n > 0 {
                self.mul_small(10u64.pow(n as u32));
            }
        }
        fn shl(&self, n: u64) -> Big {
            if self.is_zero() {
                return Big::default();
            }
            let limbs = (n / 64) as usize;
            let bits = n % 64;
            let mut out = vec![0u64; limbs];
            let mut carry = 0u64;
            for &l in &self.0 {
                if bits == 0 {
                    out.push(l);
                } else {
                    out.push((l << bits) | carry);
                    carry = l >> (64 - bits);
                }
            }
            if carry > 0 {
                out.push(carry);
            }
            let mut b = Big(out);
            b.trim();
            b
        }
        fn shr(&self, n: u64) -> Big {
            let limbs = (n / 64) as usize;
            if limbs >= self.0.len() {
                return Big::default();
            }
            let bits = n % 64;
            let src = &self.0[limbs..];
            let mut out = Vec::with_capacity(src.len());
            for i in 0..src.len() {
                let lo = src[i] >> bits;
                let hi = if bits > 0 {
                    src.get(i + 1).map_or(0, |h| h << (64 - bits))
                } else {
                    0
                };
                out.push(lo | hi);
            }
            let mut b = Big(out);
            b.trim();
            b
        }
        fn low_u64(&self) -> u64 {
            self.0.first().copied().unwrap_or(0)
        }
        fn cmp(&self, o: &Big) -> Ordering {
            if self.0.len() != o.0.len() {
                return self.0.len().cmp(&o.0.len());
            }
            for (a, b) in self.0.iter().rev().zip(o.0.iter().rev()) {
                if a != b {
                    return a.cmp(b);
                }
            }
            Ordering::Equal
        }
        /// self -= o (requires self >= o).
        fn sub(&mut self, o: &Big) {
            let mut borrow = false;
            for i in 0..self.0.len() {
                let b = o.0.get(i).copied().unwrap_or(0);
                let (v1, c1) = self.0[i].overflowing_sub(b);
                let (v2, c2) = v1.overflowing_sub(u64::from(borrow));
                self.0[i] = v2;
                borrow = c1 || c2;
            }
            self.trim();
        }
        fn add(&mut self, o: &Big) {
            let mut carry = false;
            if self.0.len() < o.0.len() {
                self.0.resize(o.0.len(), 0);
            }
            for i in 0..self.0.len() {
                let b = o.0.get(i).copied().unwrap_or(0);
                let (v1, c1) = self.0[i].overflowing_add(b);
                let (v2, c2) = v1.overflowing_add(u64::from(carry));
                self.0[i] = v2;
                carry = c1 || c2;
            }
            if carry {
                self.0.push(1);
            }
        }
        /// Divides by a small number, returning the remainder.
        fn divrem_small(&mut self, d: u64) -> u64 {
            let mut rem = 0u128;
            for l in self.0.iter_mut().rev() {
                let cur = (rem << 64) | u128::from(*l);
                *l = (cur / u128::from(d)) as u64;
                rem = cur % u128::from(d);
            }
            self.trim();
            rem as u64
        }
        /// Quotient and whether the remainder is non-zero.
        fn div(&self, den: &Big) -> (Big, bool) {
            if self.cmp(den) == Ordering::Less {
                return (Big::default(), !self.is_zero());
            }
            let qbits = self.bits() - den.bits() + 1;
            let mut rem = self.clone();
            let mut q = vec![0u64; (qbits / 64 + 1) as usize];
            let mut d = den.shl(qbits - 1);
            for i in (0..qbits).rev() {
                if rem.cmp(&d) != Ordering::Less {
                    rem.sub(&d);
                    q[(i / 64) as usize] |= 1 << (i % 64);
                }
                d = d.shr(1);
            }
            let mut q = Big(q);
            q.trim();
            (q, !rem.is_zero())
        }
        fn to_decimal(&self) -> String {
            if self.is_zero() {
                return "0".into();
            }
            let mut n = self.clone();
            let mut chunks = Vec::new();
            while !n.is_zero() {
                chunks.push(n.divrem_small(10_000_000_000_000_000_000));
            }
            let mut s = String::new();
            for (i, c) in chunks.iter().rev().enumerate() {
                if i == 0 {
                    s.push_str(&c.to_string());
                } else {
                    s.push_str(&format!("{c:019}"));
                }
            }
            s
        }
    }

    /// A finite long double: (-1)^neg * mant * 2^exp.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Ld {
        neg: bool,
        mant: u64,
        exp: i32,
    }

    /// Exponent of the smallest denormal (value = mant * 2^MIN_EXP).
    const MIN_EXP: i64 = -16445;
    /// Largest exponent with a 64-bit mantissa.
    const MAX_EXP: i64 = 16383 - 63;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Value {
        Finite(Ld),
        Inf(bool),
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum RangeError {
        Overflow,
        Underflow,
    }

    impl Ld {
        pub fn from_i64(v: i64) -> Ld {
            let neg = v < 0;
            let m = v.unsigned_abs();
            if m == 0 {
                return Ld {
                    neg: false,
                    mant: 0,
                    exp: 0,
                };
            }
            let z = m.leading_zeros();
            Ld {
                neg,
                mant: m << z,
                exp: -(z as i32),
            }
        }

        /// Rounds (-1)^neg * n * 2^e (plus a sticky non-zero tail below n) to
        /// the nearest long double, ties to even.
        fn round(neg: bool, n: &Big, e: i64, sticky: bool) -> Result<Ld, RangeError> {
            if n.is_zero() {
                return if sticky {
                    Err(RangeError::Underflow)
                } else {
                    Ok(Ld {
                        neg,
                        mant: 0,
                        exp: 0,
                    })
                };
            }
            let bl = n.bits() as i64;
            let mut shift = bl - 64;
            let mut exp = e + shift;
            if exp < MIN_EXP {
                shift += MIN_EXP - exp;
                exp = MIN_EXP;
            }
            let mut mant: u64;
            if shift <= 0 {
                mant = n.shl((-shift) as u64).low_u64();
                if sticky && shift < 0 {
                    // Exact bits below are zero but the tail is not: it lies
                    // below half an ulp, so it only matters for ties (none).
                }
            } else {
                let s = shift as u64;
                mant = n.shr(s).low_u64();
                let half = n.bit(s - 1);
                let rest = sticky || n.any_below(s - 1);
                if half && (rest || mant & 1 == 1) {
                    let (m, over) = mant.overflowing_add(1);
                    if over {
                        mant = 1 << 63;
                        exp += 1;
                    } else {
                        mant = m;
                    }
                }
            }
            if mant == 0 {
                return Err(RangeError::Underflow);
            }
            if exp > MAX_EXP {
                return Err(RangeError::Overflow);
            }
            Ok(Ld {
                neg,
                mant,
                exp: exp as i32,
            })
        }

        pub fn is_zero(&self) -> bool {
            self.mant == 0
        }

        /// The correctly rounded sum.
        pub fn add(a: Ld, b: Ld) -> Result<Ld, RangeError> {
            if a.is_zero() {
                return Ok(if b.is_zero() {
                    Ld {
                        neg: a.neg && b.neg,
                        ..a
                    }
                } else {
                    b
                });
            }
            if b.is_zero() {
                return Ok(a);
            }
            // Order by magnitude.
            let mag = |x: &Ld| i64::from(x.exp) + 64 - i64::from(x.mant.leading_zeros());
            let (hi, lo) = if (mag(&a), a.mant) >= (mag(&b), b.mant) {
                (a, b)
            } else {
                (b, a)
            };
            if mag(&hi) - mag(&lo) > 130 {
                // The smaller operand is below a quarter ulp of the larger.
                return Ok(hi);
            }
            let e = i64::from(hi.exp.min(lo.exp));
            let nh = Big::from_u64(hi.mant).shl((i64::from(hi.exp) - e) as u64);
            let nl = Big::from_u64(lo.mant).shl((i64::from(lo.exp) - e) as u64);
            if hi.neg == lo.neg {
                let mut s = nh;
                s.add(&nl);
                Ld::round(hi.neg, &s, e, false)
            } else {
                match nh.cmp(&nl) {
                    Ordering::Equal => Ok(Ld {
                        neg: false,
                        mant: 0,
                        exp: 0,
                    }),
                    Ordering::Greater => {
                        let mut d = nh;
                        d.sub(&nl);
                        Ld::round(hi.neg, &d, e, false)
                    }
                    Ordering::Less => {
                        let mut d = nl;
                        d.sub(&nh);
                        Ld::round(lo.neg, &d, e, false)
                    }
                }
            }
        }

        /// `%.17Lf` followed by redis's trimming of trailing zeros (and of the
        /// point), with "-0" printed as "0".
        pub fn human(self) -> String {
            let e = i64::from(self.exp);
            let mut p = Big::from_u64(self.mant);
            p.mul_pow10(17);
            let x = if e >= 0 {
                p.shl(e as u64)
            } else {
                let s = (-e) as u64;
                let mut q = p.shr(s);
                let half = p.bit(s - 1);
                let rest = p.any_below(s - 1);
                if half && (rest || q.low_u64() & 1 == 1) {
                    q.add_small(1);
                }
                q
            };
            let digits = x.to_decimal();
            let digits = if digits.len() < 18 {
                format!("{}{}", "0".repeat(18 - digits.len()), digits)
            } else {
                digits
            };
            let (int_part, frac) = digits.split_at(digits.len() - 17);
            let frac = frac.trim_end_matches('0');
            let mut s = String::with_capacity(digits.len() + 2);
            if self.neg {
                s.push('-');
            }
            s.push_str(int_part);
            if !frac.is_empty() {
                s.push('.');
                s.push_str(frac);
            }
            if s == "-0" {
                s = "0".into();
            }
            s
        }
    }

    /// Parses like redis's `string2ld`: the whole input must be a number that
    /// `strtold` accepts (decimal, hexadecimal, inf, infinity), without
    /// leading space; NaN and values that overflow or underflow to zero are
    /// rejected.
    pub fn parse(s: &[u8]) -> Option<Value> {
        if s.is_empty() || s.len() >= 5 * 1024 || s[0].is_ascii_whitespace() {
            return None;
        }
        let (neg, body) = match s[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let lower = body.to_ascii_lowercase();
        if lower == b"inf" || lower == b"infinity" {
            return Some(Value::Inf(neg));
        }
        if lower.len() > 2 && lower.starts_with(b"0x") {
            return parse_hex(neg, &lower[2..]).map(Value::Finite);
        }
        parse_dec(neg, body).map(Value::Finite)
    }

    fn parse_exp(b: &[u8]) -> Option<i64> {
        let (neg, d) = match b.first() {
            Some(b'-') => (true, &b[1..]),
            Some(b'+') => (false, &b[1..]),
            _ => (false, b),
        };
        if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut v: i64 = 0;
        for &c in d {
            v = (v * 10 + i64::from(c - b'0')).min(1 << 40);
        }
        Some(if neg { -v } else { v })
    }

    fn parse_dec(neg: bool, b: &[u8]) -> Option<Ld> {
        let (mant, exp) = match b.iter().position(|&c| c == b'e' || c == b'E') {
            Some(i) => (&b[..i], parse_exp(&b[i + 1..])?),
            None => (b, 0),
        };
        let (ip, fp) = match mant.iter().position(|&c| c == b'.') {
            Some(i) => (&mant[..i], &mant[i + 1..]),
            None => (mant, &b""[..]),
        };
        if ip.is_empty() && fp.is_empty() {
            return None;
        }
        if !ip.iter().chain(fp.iter()).all(u8::is_ascii_digit) {
            return None;
        }
        let mut d = Big::default();
        let mut nd: i64 = 0;
        let mut pending = 0u64;
        let mut pending_n = 0u32;
        for &c in ip.iter().chain(fp.iter()) {
            if nd == 0 && c == b'0' && pending_n == 0 {
                continue;
            }
            pending = pending * 10 + u64::from(c - b'0');
            pending_n += 1;
            nd += 1;
            if pending_n == 19 {
                d.mul_small(10_000_000_000_000_000_000);
                d.add_small(pending);
                pending = 0;
                pending_n = 0;
            }
        }
        if pending_n > 0 {
            d.mul_small(10u64.pow(pending_n));
            d.add_small(pending);
        }
        d.trim();
        let k = exp - fp.len() as i64;
        if d.is_zero() {
            return Some(Ld {
                neg,
                mant: 0,
                exp: 0,
            });
        }
        // Magnitude is about 10^(nd + k - 1).
        if nd + k > 4940 {
            return None;
        }
        if nd + k < -4960 {
            return None;
        }
        if k >= 0 {
            let mut n = d;
            n.mul_pow10(k as u64);
            Ld::round(neg, &n, 0, false).ok()
        } else {
            let mut den = Big::from_u64(1);
            den.mul_pow10((-k) as u64);
            let s = (den.bits() as i64 - d.bits() as i64 + 66).max(0) as u64;
            let (q, sticky) = d.shl(s).div(&den);
            Ld::round(neg, &q, -(s as i64), sticky).ok()
        }
    }

    fn parse_hex(neg: bool, b: &[u8]) -> Option<Ld> {
        let (mant, exp) = match b.iter().position(|&c| c == b'p') {
            Some(i) => (&b[..i], parse_exp(&b[i + 1..])?),
            None => (b, 0),
        };
        let (ip, fp) = match mant.iter().position(|&c| c == b'.') {
            Some(i) => (&mant[..i], &mant[i + 1..]),
            None => (mant, &b""[..]),
        };
        if ip.is_empty() && fp.is_empty() {
            return None;
        }
        let mut n = Big::default();
        for &c in ip.iter().chain(fp.iter()) {
            let v = (c as char).to_digit(16)?;
            n.mul_small(16);
            n.add_small(u64::from(v));
            n.trim();
        }
        let e = exp - 4 * fp.len() as i64;
        if n.is_zero() {
            return Some(Ld {
                neg,
                mant: 0,
                exp: 0,
            });
        }
        if n.bits() as i64 + e > 16400 || (n.bits() as i64 + e) < -16500 {
            return None;
        }
        Ld::round(neg, &n, e, false).ok()
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    mod tests {
        use super::*;

        fn p(s: &str) -> Ld {
            match parse(s.as_bytes()) {
                Some(Value::Finite(l)) => l,
                other => panic!("{s}: {other:?}"),
            }
        }

        fn sum(a: &str, b: &str) -> String {
            Ld::add(p(a), p(b)).unwrap().human()
        }

        #[test]
        fn matches_redis() {
            // Replies of redis 7.0 on x86-64.
            assert_eq!(sum("0.1", "0.2"), "0.3");
            assert_eq!(sum("0", "1.5"), "1.5");
            assert_eq!(sum("100000000000000000000", "0"), "100000000000000000000");
            assert_eq!(sum("0", "3.0e3"), "3000");
            assert_eq!(sum("0", "1.5e-10"), "0.00000000015");
            assert_eq!(sum("0", "1e-20"), "0");
            assert_eq!(sum("0", "-1e-20"), "0");
            assert_eq!(sum("0", "0.000000000000000015"), "0.00000000000000002");
            assert_eq!(sum("0", "1.123456789012345678"), "1.12345678901234568");
            assert_eq!(sum("0", "12345678901234567890.123"), "12345678901234567890");
            assert_eq!(sum("16", "1"), "17");
            assert_eq!(sum("17", "0x1p3"), "25");
            assert_eq!(sum("25", "+1.5"), "26.5");
            assert_eq!(sum("26.5", ".5"), "27");
            assert_eq!(sum("27", "5."), "32");
            assert!(sum("3000", "1e300").starts_with("100000000000000000000899732407955919387052394427329074793826008232126564659618093575584915208375049719035037250861427483590359255618467298391309626052074864628732713564184365329408425510760601678972665293237003055138294762099454029477278188962060617926761162709741065056718738610569008942491510"));
            assert!(parse(b"1e5000").is_none());
            assert!(parse(b"1e-5000").is_none());
            assert!(parse(b" 1").is_none());
            assert!(parse(b"1 ").is_none());
            assert!(parse(b"nan").is_none());
            assert!(parse(b"").is_none());
            assert!(parse(b"1e").is_none());
            assert!(parse(b".").is_none());
            assert_eq!(parse(b"-inf"), Some(Value::Inf(true)));
            assert_eq!(p("1e4000").human().len(), 4000);
        }
    }
}
