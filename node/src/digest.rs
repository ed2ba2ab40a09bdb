//! DEBUG DIGEST-VALUE: redis's SHA1-based digest of a value, so that
//! `redis-cli --cluster fix` (which compares a key's value on two nodes
//! when a migration left it on both) works across our nodes and
//! redis-server alike. The digest ignores encodings and, for sets, hashes
//! and sorted sets, element order; it reflects whether the key has a TTL,
//! not the TTL itself.

use sha1::{Digest, Sha1};

use crate::engine::object::Object;
use crate::engine::types::{hash, list};
use crate::engine::ValueRef;

/// XORs SHA1(`data`) into `digest` (order-independent accumulation).
fn xor_digest(digest: &mut [u8; 20], data: &[u8]) {
    let h = Sha1::digest(data);
    for (d, x) in digest.iter_mut().zip(h.iter()) {
        *d ^= x;
    }
}

/// XORs SHA1(`data`) in, then replaces the digest by its own SHA1
/// (order-dependent accumulation).
fn mix_digest(digest: &mut [u8; 20], data: &[u8]) {
    xor_digest(digest, data);
    let h = Sha1::digest(&digest[..]);
    digest.copy_from_slice(&h);
}

fn hash_elem(e: hash::Elem<'_>, f: impl FnOnce(&[u8])) {
    match e {
        hash::Elem::Str(s) => f(s),
        hash::Elem::Int(i) => f(itoa::Buffer::new().format(i).as_bytes()),
    }
}

/// The digest of one value (redis's xorObjectDigest), 20 bytes.
pub fn value_digest(v: ValueRef<'_>, has_expire: bool) -> [u8; 20] {
    let mut d = [0u8; 20];
    let type_code: u32 = match v {
        ValueRef::Str(_) => 0,
        ValueRef::Obj(Object::List(_)) => 1,
        ValueRef::Obj(Object::Set(_)) => 2,
        ValueRef::Obj(Object::ZSet(_)) => 3,
        ValueRef::Obj(Object::Hash(_)) => 4,
    };
    mix_digest(&mut d, &type_code.to_be_bytes());
    match v {
        ValueRef::Str(s) => mix_digest(&mut d, s),
        ValueRef::Obj(Object::List(l)) => {
            for e in l.iter_from(0) {
                match e {
                    list::Elem::Str(s) => mix_digest(&mut d, s),
                    list::Elem::Int(i) => {
                        mix_digest(&mut d, itoa::Buffer::new().format(i).as_bytes())
                    }
                }
            }
        }
        ValueRef::Obj(Object::Set(s)) => s.for_each(|e| hash_elem(e, |b| xor_digest(&mut d, b))),
        ValueRef::Obj(Object::ZSet(z)) => z.for_each(|m, score| {
            let mut e = [0u8; 20];
            mix_digest(&mut e, m);
            mix_digest(&mut e, crate::resp::format_double(score).as_bytes());
            xor_digest(&mut d, &e);
        }),
        ValueRef::Obj(Object::Hash(h)) => h.for_each(|k, v| {
            let mut e = [0u8; 20];
            hash_elem(k, |b| mix_digest(&mut e, b));
            hash_elem(v, |b| mix_digest(&mut e, b));
            xor_digest(&mut d, &e);
        }),
    }
    if has_expire {
        xor_digest(&mut d, b"!!expire!!");
    }
    d
}

/// Lowercase hex, as DEBUG DIGEST-VALUE replies.
pub fn hex(d: &[u8; 20]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}
