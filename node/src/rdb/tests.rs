#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::listpack::{self, LpBuilder};
use super::read::lzf_decompress;
use super::*;
use crate::engine::types::hash::HashObj;
use crate::engine::types::list::ListObj;
use crate::engine::types::set::SetObj;
use crate::engine::types::zset::ZSetObj;
use crate::engine::Object;

// ---------------------------------------------------------------------------
// Helpers

/// A value in a comparable form.
#[derive(Debug, Clone, PartialEq)]
enum Canon {
    Str(Vec<u8>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    List(Vec<Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
    /// Ascending (member, score bits), -0 folded into 0.
    ZSet(Vec<(Vec<u8>, u64)>),
}

fn canon(v: &Value) -> Canon {
    match v {
        Value::Str(s) => Canon::Str(s.clone()),
        Value::Obj(Object::Hash(h)) => {
            let mut m = BTreeMap::new();
            h.for_each(|k, v| {
                m.insert(k.to_vec(), v.to_vec());
            });
            Canon::Hash(m)
        }
        Value::Obj(Object::List(l)) => Canon::List(l.iter_from(0).map(|e| e.to_vec()).collect()),
        Value::Obj(Object::Set(s)) => Canon::Set(s.members().into_iter().collect()),
        Value::Obj(Object::ZSet(z)) => Canon::ZSet(
            z.entries()
                .into_iter()
                .map(|(m, s)| (m, if s == 0.0 { 0.0f64 } else { s }.to_bits()))
                .collect(),
        ),
    }
}

/// Builds an engine value from its comparable form.
fn build(c: &Canon, limits: &EncodingLimits) -> Value {
    match c {
        Canon::Str(s) => Value::Str(s.clone()),
        Canon::Hash(m) => {
            let mut h = HashObj::default();
            for (k, v) in m {
                h.set(k, v, limits);
            }
            Value::Obj(Object::Hash(h))
        }
        Canon::List(v) => {
            let mut l = ListObj::new();
            for e in v {
                l.push(e, false, limits.list_max_listpack_size);
            }
            Value::Obj(Object::List(l))
        }
        Canon::Set(s) => Value::Obj(Object::Set(SetObj::build(s.iter().map(|m| &m[..]), limits))),
        Canon::ZSet(v) => {
            let mut z = ZSetObj::default();
            for (m, s) in v {
                z.insert_new(m, f64::from_bits(*s), limits);
            }
            Value::Obj(Object::ZSet(z))
        }
    }
}

fn as_ref(v: &Value) -> ValueRef<'_> {
    match v {
        Value::Str(s) => ValueRef::Str(s),
        Value::Obj(o) => ValueRef::Obj(o),
    }
}

type Entries = Vec<(usize, Vec<u8>, Canon, Option<i64>)>;

fn write_rdb(entries: &[(usize, Vec<u8>, Value, Option<i64>)], compress: bool) -> Vec<u8> {
    let mut w = RdbWriter::new().with_compression(compress);
    let mut out = Vec::new();
    w.header(&mut out, &[("redis-ver", b"7.0.15"), ("redis-bits", b"64")]);
    let mut dbs: Vec<usize> = entries.iter().map(|e| e.0).collect();
    dbs.sort_unstable();
    dbs.dedup();
    for db in dbs {
        w.select_db(&mut out, db);
        let n = entries.iter().filter(|e| e.0 == db).count() as u64;
        w.resize_db(&mut out, n, 0);
        for (_, k, v, exp) in entries.iter().filter(|e| e.0 == db) {
            // Exercise chunked output: a fresh buffer per entry.
            let mut chunk = Vec::new();
            w.entry(&mut chunk, k, as_ref(v), *exp);
            out.extend_from_slice(&chunk);
        }
    }
    w.finish(&mut out);
    out
}

fn load_all(bytes: &[u8]) -> Result<(Entries, Vec<Item>, LoadSummary), RdbError> {
    let mut entries = Vec::new();
    let mut others = Vec::new();
    let mut r = bytes;
    let s = load(&mut r, &EncodingLimits::default(), &mut |it| {
        match it {
            Item::Entry {
                db,
                key,
                value,
                expire_ms,
            } => entries.push((db, key, canon(&value), expire_ms)),
            other => others.push(other),
        }
        Ok(())
    })?;
    Ok((entries, others, s))
}

fn sample_entries() -> Vec<(usize, Vec<u8>, Value, Option<i64>)> {
    sample(false)
}

/// A few keys of every type and encoding; `small` keeps the file short
/// (for tests that load it once per byte offset).
fn sample(small: bool) -> Vec<(usize, Vec<u8>, Value, Option<i64>)> {
    let l = EncodingLimits::default();
    let (nfields, big_elem) = if small { (140, 70) } else { (300, 9000) };
    let big_hash = Canon::Hash(
        (0..nfields)
            .map(|i| (format!("f{i}").into_bytes(), vec![b'v'; i % 90 / 10]))
            .collect(),
    );
    let small_hash = Canon::Hash(
        [
            (b"a".to_vec(), b"1".to_vec()),
            (b"-5".to_vec(), vec![0, 255]),
        ]
        .into_iter()
        .collect(),
    );
    let list = Canon::List(
        (0..500)
            .map(|i| {
                if i % 97 == 0 {
                    vec![b'x'; big_elem]
                } else {
                    i.to_string().into_bytes()
                }
            })
            .collect(),
    );
    let ints = Canon::Set(
        (0..100)
            .map(|i| (i * 1000).to_string().into_bytes())
            .collect(),
    );
    let strs = Canon::Set((0..20).map(|i| format!("m{i}").into_bytes()).collect());
    let zs = Canon::ZSet(vec![
        (b"a".to_vec(), 1.5f64.to_bits()),
        (b"b".to_vec(), f64::INFINITY.to_bits()),
        (b"c".to_vec(), (-3.0f64).to_bits()),
    ]);
    let bigz = Canon::ZSet(
        (0..200)
            .map(|i| (format!("z{i}").into_bytes(), (f64::from(i) / 7.0).to_bits()))
            .collect(),
    );
    vec![
        (0, b"s".to_vec(), Value::Str(b"hello".to_vec()), None),
        (
            0,
            b"n".to_vec(),
            Value::Str(b"-123456".to_vec()),
            Some(1_700_000_000_123),
        ),
        (0, b"h".to_vec(), build(&small_hash, &l), None),
        (0, b"H".to_vec(), build(&big_hash, &l), Some(42)),
        (0, b"l".to_vec(), build(&list, &l), None),
        (3, b"i".to_vec(), build(&ints, &l), None),
        (3, b"S".to_vec(), build(&strs, &l), None),
        (3, b"z".to_vec(), build(&zs, &l), None),
        (3, b"Z".to_vec(), build(&bigz, &l), None),
        (3, vec![0, 1, 2, 255], Value::Str(vec![b'q'; 300]), None),
    ]
}

fn canon_entries(v: &[(usize, Vec<u8>, Value, Option<i64>)]) -> Entries {
    v.iter()
        .map(|(d, k, v, e)| (*d, k.clone(), canon(v), *e))
        .collect()
}

/// RDB bytes of a single raw object of type `t` with body `body` (key "k").
fn raw_rdb(t: u8, body: &[u8]) -> Vec<u8> {
    let mut out = b"REDIS0010".to_vec();
    out.push(t);
    out.extend_from_slice(&[1, b'k']);
    out.extend_from_slice(body);
    out.push(0xFF);
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn rdb_string(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write::write_len(&mut out, b.len() as u64);
    out.extend_from_slice(b);
    out
}

// ---------------------------------------------------------------------------
// Primitives

#[test]
fn writer_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<RdbWriter>();
}

#[test]
fn crc64_test_vector() {
    assert_eq!(crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
}

#[test]
fn listpack_known_bytes() {
    let mut b = Vec::new();
    let mut lp = LpBuilder::new(&mut b);
    lp.push_int(5);
    lp.push_int(-1);
    lp.push_str(b"ab");
    lp.push_str(&[b'x'; 200]);
    lp.finish();
    assert_eq!(&b[4..6], &[4, 0]);
    assert_eq!(
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
        b.len()
    );
    assert_eq!(&b[6..8], &[0x05, 0x01]);
    assert_eq!(&b[8..11], &[0xDF, 0xFF, 0x02]);
    assert_eq!(&b[11..15], &[0x82, b'a', b'b', 0x03]);
    // 12-bit string: 2 header bytes + 200, backlen of 202 in two bytes.
    assert_eq!(&b[15..17], &[0xE0, 200]);
    assert_eq!(&b[217..219], &[1, 202 - 128 + 128]);
    assert_eq!(b[219], 0xFF);
}

fn elem_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string().into_bytes()),
        (-5000i64..5000).prop_map(|i| i.to_string().into_bytes()),
        (-9_000_000i64..9_000_000).prop_map(|i| i.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..80),
        (0usize..3).prop_map(|k| vec![b'y'; [100, 5000, 70000][k]]),
        Just(b"007".to_vec()),
        Just(b"-0".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn listpack_round_trip(v in proptest::collection::vec(elem_strategy(), 0..100)) {
        let mut b = Vec::new();
        let mut lp = LpBuilder::new(&mut b);
        let mut size = 7;
        for e in &v {
            size += listpack::entry_size(Elem::Str(e));
            lp.push_str(e);
        }
        lp.finish();
        prop_assert_eq!(size, b.len());
        let mut got = Vec::new();
        let n = listpack::for_each(&b, |e| { got.push(e.to_vec()); Ok(()) }).unwrap();
        prop_assert_eq!(n, v.len());
        prop_assert_eq!(got, v);
    }

    #[test]
    fn ziplist_round_trip(v in proptest::collection::vec(elem_strategy(), 0..100)) {
        let elems: Vec<Elem<'_>> = v
            .iter()
            .map(|e| match parse_canonical_int(e) { Some(i) => Elem::Int(i), None => Elem::Str(e) })
            .collect();
        let zl = ziplist::build(&elems);
        let mut got = Vec::new();
        ziplist::for_each(&zl, |e| { got.push(e.to_vec()); Ok(()) }).unwrap();
        prop_assert_eq!(got, v);
    }

    #[test]
    fn intset_round_trip(s in proptest::collection::btree_set(any::<i64>(), 0..50), small in any::<bool>()) {
        let v: Vec<i64> = s.into_iter().map(|x| if small { x % 30000 } else { x }).collect::<BTreeSet<_>>().into_iter().collect();
        let mut b = Vec::new();
        intset::encode(&mut b, &v);
        if small { prop_assert_eq!(b[0], 2); }
        let mut got = Vec::new();
        intset::for_each(&b, |x| { got.push(x); Ok(()) }).unwrap();
        prop_assert_eq!(got, v);
    }

    #[test]
    fn lzf_round_trip(v in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), any::<u8>()], 1..3000)) {
        if let Ok(c) = lzf::compress(&v) {
            prop_assert_eq!(lzf_decompress(&c, v.len()).unwrap(), v.clone());
            prop_assert!(lzf_decompress(&c, v.len() + 1).is_err());
            if v.len() > 1 {
                prop_assert!(lzf_decompress(&c, v.len() - 1).is_err());
            }
        }
    }
}

#[test]
fn listpack_count_saturates() {
    let mut b = Vec::new();
    let mut lp = LpBuilder::new(&mut b);
    for i in 0..70_000 {
        lp.push_int(i);
    }
    lp.finish();
    assert_eq!(&b[4..6], &[0xFF, 0xFF]);
    let mut sum = 0;
    let n = listpack::for_each(&b, |e| {
        if let Elem::Int(i) = e {
            sum += i;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!((n, sum), (70_000, 70_000 * 69_999 / 2));
    // A long list round-trips through many quicklist nodes.
    let l = EncodingLimits::default();
    let c = Canon::List((0..70_000).map(|i| i.to_string().into_bytes()).collect());
    let v = build(&c, &l);
    let back = restore_payload(&dump_payload(as_ref(&v)), &l).unwrap();
    assert_eq!(canon(&back), c);
}

#[test]
fn listpack_rejects_garbage() {
    let mut b = Vec::new();
    let mut lp = LpBuilder::new(&mut b);
    lp.push_str(b"hello");
    lp.push_int(1000);
    lp.finish();
    for i in 0..b.len() {
        assert!(listpack::for_each(&b[..i], |_| Ok(())).is_err());
    }
    let mut bad = b.clone();
    bad[4] = 3; // count
    assert!(listpack::for_each(&bad, |_| Ok(())).is_err());
    let mut bad = b.clone();
    bad[12] = 9; // backlen of "hello"
    assert!(listpack::for_each(&bad, |_| Ok(())).is_err());
}

#[test]
fn hand_built_ziplist() {
    // "a", 5 (4-bit immediate), -2 (int8), 300 (int16)
    let zl: Vec<u8> = vec![
        0x17, 0, 0, 0, // zlbytes = 23
        0x12, 0, 0, 0, // zltail = 18
        4, 0, // zllen
        0x00, 0x01, b'a', // prevlen 0, 1-byte string
        0x03, 0xF6, // prevlen 3, immediate 5
        0x02, 0xFE, 0xFE, // prevlen 2, int8 -2
        0x03, 0xC0, 0x2C, 0x01, // prevlen 3, int16 300
        0xFF,
    ];
    let mut got = Vec::new();
    ziplist::for_each(&zl, |e| {
        got.push(e.to_vec());
        Ok(())
    })
    .unwrap();
    assert_eq!(
        got,
        vec![
            b"a".to_vec(),
            b"5".to_vec(),
            b"-2".to_vec(),
            b"300".to_vec()
        ]
    );
    assert_eq!(
        ziplist::build(&[Elem::Str(b"a"), Elem::Int(5), Elem::Int(-2), Elem::Int(300)]),
        zl
    );
    let mut bad = zl.clone();
    bad[4] = 13; // wrong tail
    assert!(ziplist::for_each(&bad, |_| Ok(())).is_err());
    let mut bad = zl.clone();
    bad[13] = 4; // wrong prevlen
    assert!(ziplist::for_each(&bad, |_| Ok(())).is_err());
}

#[test]
fn hand_built_zipmap_and_rdb_types() {
    let zm: Vec<u8> = vec![
        2, 3, b'f', b'o', b'o', 3, 0, b'b', b'a', b'r', 1, b'x', 1, 2, b'y', 0, 0, 0xFF,
    ];
    let mut got = Vec::new();
    ziplist::zipmap_for_each(&zm, |k, v| {
        got.push((k.to_vec(), v.to_vec()));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        got,
        vec![
            (b"foo".to_vec(), b"bar".to_vec()),
            (b"x".to_vec(), b"y".to_vec())
        ]
    );
    let (e, _, _) = load_all(&raw_rdb(ty::HASH_ZIPMAP, &rdb_string(&zm))).unwrap();
    assert_eq!(e[0].2, Canon::Hash(got.into_iter().collect()),);

    // Ziplist-encoded zset, hash and list; quicklist of ziplists.
    let zl = ziplist::build(&[
        Elem::Str(b"m"),
        Elem::Int(2),
        Elem::Str(b"n"),
        Elem::Str(b"1.5"),
    ]);
    let (e, _, _) = load_all(&raw_rdb(ty::ZSET_ZIPLIST, &rdb_string(&zl))).unwrap();
    assert_eq!(
        e[0].2,
        Canon::ZSet(vec![
            (b"n".to_vec(), 1.5f64.to_bits()),
            (b"m".to_vec(), 2f64.to_bits())
        ])
    );
    let (e, _, _) = load_all(&raw_rdb(ty::HASH_ZIPLIST, &rdb_string(&zl))).unwrap();
    assert_eq!(
        e[0].2,
        Canon::Hash(
            [
                (b"m".to_vec(), b"2".to_vec()),
                (b"n".to_vec(), b"1.5".to_vec())
            ]
            .into_iter()
            .collect()
        )
    );
    let (e, _, _) = load_all(&raw_rdb(ty::LIST_ZIPLIST, &rdb_string(&zl))).unwrap();
    assert_eq!(
        e[0].2,
        Canon::List(vec![
            b"m".to_vec(),
            b"2".to_vec(),
            b"n".to_vec(),
            b"1.5".to_vec()
        ])
    );
    let mut body = vec![2];
    body.extend(rdb_string(&zl));
    body.extend(rdb_string(&ziplist::build(&[Elem::Int(7)])));
    let (e, _, _) = load_all(&raw_rdb(ty::LIST_QUICKLIST, &body)).unwrap();
    assert_eq!(
        e[0].2,
        Canon::List(vec![
            b"m".to_vec(),
            b"2".to_vec(),
            b"n".to_vec(),
            b"1.5".to_vec(),
            b"7".to_vec()
        ])
    );

    // Quicklist 2 with a plain node.
    let mut body = vec![2, 1];
    body.extend(rdb_string(b"plain"));
    body.push(2);
    let mut lp = Vec::new();
    let mut b = LpBuilder::new(&mut lp);
    b.push_str(b"packed");
    b.finish();
    body.extend(rdb_string(&lp));
    let (e, _, _) = load_all(&raw_rdb(ty::LIST_QUICKLIST_2, &body)).unwrap();
    assert_eq!(
        e[0].2,
        Canon::List(vec![b"plain".to_vec(), b"packed".to_vec()])
    );

    // Type 3 zset with string doubles (inf encodings).
    let mut body = vec![3];
    body.extend(rdb_string(b"a"));
    body.push(254);
    body.extend(rdb_string(b"b"));
    body.push(255);
    body.extend(rdb_string(b"c"));
    body.extend([4, b'2', b'.', b'5', b'0']);
    let (e, _, _) = load_all(&raw_rdb(ty::ZSET, &body)).unwrap();
    assert_eq!(
        e[0].2,
        Canon::ZSet(vec![
            (b"b".to_vec(), f64::NEG_INFINITY.to_bits()),
            (b"c".to_vec(), 2.5f64.to_bits()),
            (b"a".to_vec(), f64::INFINITY.to_bits()),
        ])
    );
    // NaN score is corrupt.
    let mut body = vec![1];
    body.extend(rdb_string(b"a"));
    body.push(253);
    assert!(matches!(
        load_all(&raw_rdb(ty::ZSET, &body)),
        Err(RdbError::Corrupt(_))
    ));

    // Type 1 linked list; integer-encoded and LZF strings.
    let mut body = vec![3, 0xC0, 0xFE, 0xC1, 0x2C, 0x01];
    let long = b"abcabcabcabcabcabcabcabcabcabcabcabc".to_vec();
    let c = lzf::compress(&long).unwrap();
    body.push(0xC3);
    write::write_len(&mut body, c.len() as u64);
    write::write_len(&mut body, long.len() as u64);
    body.extend(&c);
    let (e, _, _) = load_all(&raw_rdb(ty::LIST, &body)).unwrap();
    assert_eq!(
        e[0].2,
        Canon::List(vec![b"-2".to_vec(), b"300".to_vec(), long])
    );
}

#[test]
fn lzf_hand_built() {
    // literal "abc", then a back reference of 6 bytes at distance 3.
    let c = [0x02, b'a', b'b', b'c', 0x80, 0x02];
    assert_eq!(lzf_decompress(&c, 9).unwrap(), b"abcabcabc");
    assert!(lzf_decompress(&[0x80, 0x00], 3).is_err());
    assert!(lzf_decompress(&[0x05, b'a'], 6).is_err());
}

#[test]
fn compact_encodings_reject_duplicates_and_skip_empty() {
    let l = EncodingLimits::default();
    let mut lp = Vec::new();
    let mut b = LpBuilder::new(&mut lp);
    for e in [b"f", b"1", b"f", b"2"] {
        b.push_str(e);
    }
    b.finish();
    assert!(matches!(
        load_all(&raw_rdb(ty::HASH_LISTPACK, &rdb_string(&lp))),
        Err(RdbError::Corrupt(_))
    ));
    assert!(matches!(
        load_all(&raw_rdb(ty::ZSET_LISTPACK, &rdb_string(&lp))),
        Err(RdbError::Corrupt(_))
    ));
    assert!(matches!(
        load_all(&raw_rdb(ty::SET_LISTPACK, &rdb_string(&lp))),
        Err(RdbError::Corrupt(_))
    ));
    // Odd element count.
    let mut lp = Vec::new();
    let mut b = LpBuilder::new(&mut lp);
    b.push_str(b"f");
    b.finish();
    assert!(load_all(&raw_rdb(ty::HASH_LISTPACK, &rdb_string(&lp))).is_err());
    // Empty collections are skipped.
    let (e, _, s) = load_all(&raw_rdb(ty::SET, &[0])).unwrap();
    assert!(e.is_empty());
    assert_eq!((s.keys, s.empty_keys_skipped), (0, 1));
    let _ = l;
}

#[test]
fn unsupported_and_unknown() {
    for t in [15, 19, 21] {
        let r = load_all(&raw_rdb(t, &[0]));
        assert!(matches!(r, Err(RdbError::Unsupported(ref m)) if m.contains("stream")));
    }
    assert!(matches!(
        load_all(&raw_rdb(7, &[0])),
        Err(RdbError::Unsupported(_))
    ));
    assert!(matches!(
        load_all(&raw_rdb(8, &[0])),
        Err(RdbError::UnknownType(8))
    ));
    assert!(matches!(load_all(b"RUBIS0010"), Err(RdbError::BadMagic)));
    assert!(matches!(
        load_all(b"REDIS0012\xff"),
        Err(RdbError::UnsupportedVersion(12))
    ));
}

// ---------------------------------------------------------------------------
// Whole files

#[test]
fn sample_round_trip_and_items() {
    let entries = sample_entries();
    for compress in [false, true] {
        let bytes = write_rdb(&entries, compress);
        let (got, others, summary) = load_all(&bytes).unwrap();
        assert_eq!(got, canon_entries(&entries));
        assert_eq!(summary.bytes as usize, bytes.len());
        assert_eq!(summary.keys as usize, entries.len());
        assert_eq!(summary.version, RDB_VERSION);
        assert!(
            matches!(&others[0], Item::Aux { key, value } if key == b"redis-ver" && value == b"7.0.15")
        );
        assert!(
            matches!(&others[1], Item::Aux { key, value } if key == b"redis-bits" && value == b"64")
        );
        assert!(others.iter().any(|i| matches!(i, Item::SelectDb(3))));
    }
}

#[test]
fn load_stops_after_checksum() {
    let mut bytes = write_rdb(&sample_entries(), false);
    let len = bytes.len();
    bytes.extend_from_slice(&[0xAB; 40]);
    let mut r = &bytes[..];
    let s = load(&mut r, &EncodingLimits::default(), &mut |_| Ok(())).unwrap();
    assert_eq!(s.bytes as usize, len);
    assert_eq!(r.len(), 40);
}

#[test]
fn truncated_input_is_an_error() {
    let bytes = write_rdb(&sample(true), true);
    for i in 0..bytes.len() {
        assert!(load_all(&bytes[..i]).is_err(), "prefix of {i} bytes loaded");
    }
}

#[test]
fn checksum_mismatch_and_zero_checksum() {
    let bytes = write_rdb(&sample_entries(), false);
    // The 300-byte 'q' string is stored raw: flipping one of its bytes
    // only changes the checksum.
    let pos = bytes.windows(8).position(|w| w == [b'q'; 8]).unwrap() + 4;
    let mut bad = bytes.clone();
    bad[pos] = b'r';
    assert!(matches!(
        load_all(&bad),
        Err(RdbError::ChecksumMismatch { .. })
    ));
    let n = bad.len();
    bad[n - 8..].fill(0);
    assert!(load_all(&bad).is_ok());
    // Version 4 files have no checksum.
    let mut v4 = b"REDIS0004".to_vec();
    v4.extend_from_slice(&[0, 1, b'k', 1, b'v', 0xFF]);
    let (e, _, _) = load_all(&v4).unwrap();
    assert_eq!(e[0].2, Canon::Str(b"v".to_vec()));
}

#[test]
fn function_and_opcodes() {
    let mut out = b"REDIS0010".to_vec();
    out.push(op::FUNCTION2);
    out.extend(rdb_string(b"#!lua name=x"));
    out.extend([
        op::FREQ,
        5,
        op::IDLE,
        7,
        op::EXPIRETIME,
        1,
        0,
        0,
        0,
        0,
        1,
        b'k',
        1,
        b'v',
    ]);
    out.push(0xFF);
    let crc = crc64(&out);
    out.extend(crc.to_le_bytes());
    let (e, others, _) = load_all(&out).unwrap();
    assert!(matches!(&others[0], Item::Function(c) if c == b"#!lua name=x"));
    assert_eq!(e[0].3, Some(1000));
    let mut out = b"REDIS0010".to_vec();
    out.push(op::MODULE_AUX);
    assert!(matches!(load_all(&out), Err(RdbError::Unsupported(_))));
    let mut out = b"REDIS0010".to_vec();
    out.push(op::FUNCTION);
    assert!(matches!(load_all(&out), Err(RdbError::Unsupported(_))));
}

#[test]
fn dump_restore_round_trip_and_errors() {
    let l = EncodingLimits::default();
    for (_, _, v, _) in sample_entries() {
        let p = dump_payload(as_ref(&v));
        let back = restore_payload(&p, &l).unwrap();
        assert_eq!(canon(&back), canon(&v));
        let mut bad = p.clone();
        bad[0] ^= 0x40;
        assert!(restore_payload(&bad, &l).is_err());
        for i in 0..p.len() {
            assert!(restore_payload(&p[..i], &l).is_err());
        }
    }
    // Newer version.
    let mut p = b"\x00\x01x".to_vec();
    p.extend(11u16.to_le_bytes());
    let crc = crc64(&p);
    p.extend(crc.to_le_bytes());
    assert!(matches!(
        restore_payload(&p, &l),
        Err(RdbError::UnsupportedVersion(11))
    ));
}

// ---------------------------------------------------------------------------
// Properties

fn canon_strategy() -> impl Strategy<Value = Canon> {
    let member = prop_oneof![
        3 => (0u32..2000).prop_map(|i| format!("m{i}").into_bytes()),
        2 => any::<i64>().prop_map(|i| i.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..100),
    ];
    let score = prop_oneof![
        (-1000i64..1000).prop_map(|i| i as f64),
        any::<f64>().prop_filter("no NaN", |f| !f.is_nan()),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(1e300),
        Just(4_503_599_627_370_496.0),
    ];
    prop_oneof![
        elem_strategy().prop_map(Canon::Str),
        proptest::collection::btree_map(member.clone(), elem_strategy(), 0..300)
            .prop_map(Canon::Hash),
        proptest::collection::vec(elem_strategy(), 0..600).prop_map(Canon::List),
        proptest::collection::btree_set(
            (-100000i64..100000).prop_map(|i| i.to_string().into_bytes()),
            0..700
        )
        .prop_map(Canon::Set),
        proptest::collection::btree_set(
            any::<i64>().prop_map(|i| i.to_string().into_bytes()),
            0..20
        )
        .prop_map(Canon::Set),
        proptest::collection::btree_set(member.clone(), 0..300).prop_map(Canon::Set),
        proptest::collection::btree_map(member, score, 0..300)
            .prop_map(|m| Canon::ZSet(m.into_iter().map(|(k, s)| (k, s.to_bits())).collect())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn values_round_trip(
        vals in proptest::collection::vec(
            (0usize..4, proptest::collection::vec(any::<u8>(), 0..20), canon_strategy(), proptest::option::of(any::<i64>())),
            1..6,
        ),
        compress in any::<bool>(),
    ) {
        let l = EncodingLimits::default();
        let mut seen = BTreeSet::new();
        let entries: Vec<_> = vals
            .into_iter()
            .filter(|(db, k, _, _)| seen.insert((*db, k.clone())))
            .map(|(db, k, c, e)| (db, k, build(&c, &l), e))
            .filter(|(_, _, v, _)| !matches!(v, Value::Obj(o) if o.is_empty()))
            .collect();
        let bytes = write_rdb(&entries, compress);
        let (got, _, _) = load_all(&bytes).unwrap();
        let mut want = canon_entries(&entries);
        want.sort_by_key(|e| e.0);
        prop_assert_eq!(got, want);
        for (_, _, v, _) in &entries {
            let back = restore_payload(&dump_payload(as_ref(v)), &l).unwrap();
            prop_assert_eq!(canon(&back), canon(v));
        }
    }

    #[test]
    fn byte_flips_do_not_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4), fix_crc in any::<bool>()) {
        let mut bytes = write_rdb(&sample_entries(), true);
        for (i, b) in &flips {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        if fix_crc {
            // Zero checksum: decoding goes all the way.
            let n = bytes.len();
            bytes[n - 8..].fill(0);
        }
        let _ = load_all(&bytes);
        let p = dump_payload(as_ref(&sample_entries()[4].2));
        let mut p2 = p.clone();
        let (i, b) = flips[0];
        let i = i.index(p2.len() - 10);
        p2[i] = b;
        let n = p2.len();
        let crc = crc64(&p2[..n - 8]);
        p2[n - 8..].copy_from_slice(&crc.to_le_bytes());
        let _ = restore_payload(&p2, &EncodingLimits::default());
    }
}

/// Our tables iterate in hash order; loading that order into an undersized
/// table used to cluster quadratically (35 s for 300k fields).
#[test]
fn large_tables_in_hash_order_load_fast() {
    let l = EncodingLimits::default();
    for c in [
        Canon::Hash(
            (0..200_000)
                .map(|j| (format!("f{j}").into_bytes(), b"x".to_vec()))
                .collect(),
        ),
        Canon::Set((0..200_000).map(|j| format!("m{j}").into_bytes()).collect()),
    ] {
        let v = build(&c, &l);
        let bytes = write_rdb(&[(0, b"k".to_vec(), v, None)], false);
        let t = std::time::Instant::now();
        let (e, _, _) = load_all(&bytes).unwrap();
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(e[0].2, c);
    }
}
