//! The set type.
//!
//! Encodings, following redis 7.0 as seen through OBJECT ENCODING:
//! * `intset`: a sorted vector of the narrowest integer width that holds
//!   every member, while all members are integers and there are at most
//!   `set-max-intset-entries` of them.
//! * `hashtable`: everything else. Small sets of short members are kept in
//!   a [`Listpack`] (one allocation) until they exceed
//!   `set-max-listpack-entries` / `set-max-listpack-value`, and in a
//!   [`RhTable`] beyond that; both report `hashtable`, as redis 7.0 has no
//!   listpack sets. Redis never converts a hashtable set back, and neither
//!   do we.

use super::hash::{lp_encode, BlobKey, Elem, Listpack, Probe, RhTable};
use super::EncodingLimits;
use crate::cmd::parse_i64;

/// Sorted integers of one width.
#[derive(Clone, Debug)]
pub enum IntSet {
    W16(Vec<i16>),
    W32(Vec<i32>),
    W64(Vec<i64>),
}

impl Default for IntSet {
    fn default() -> Self {
        IntSet::W16(Vec::new())
    }
}

fn vec_insert<T: Ord + Copy>(v: &mut Vec<T>, x: T) -> bool {
    match v.binary_search(&x) {
        Ok(_) => false,
        Err(i) => {
            v.reserve_exact(1);
            v.insert(i, x);
            true
        }
    }
}

fn vec_remove<T: Ord + Copy>(v: &mut Vec<T>, x: T) -> bool {
    match v.binary_search(&x) {
        Ok(i) => {
            v.remove(i);
            true
        }
        Err(_) => false,
    }
}

impl IntSet {
    pub fn len(&self) -> usize {
        match self {
            IntSet::W16(v) => v.len(),
            IntSet::W32(v) => v.len(),
            IntSet::W64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn get(&self, i: usize) -> Option<i64> {
        match self {
            IntSet::W16(v) => v.get(i).map(|&x| i64::from(x)),
            IntSet::W32(v) => v.get(i).map(|&x| i64::from(x)),
            IntSet::W64(v) => v.get(i).copied(),
        }
    }
    pub fn contains(&self, x: i64) -> bool {
        match self {
            IntSet::W16(v) => i16::try_from(x).is_ok_and(|x| v.binary_search(&x).is_ok()),
            IntSet::W32(v) => i32::try_from(x).is_ok_and(|x| v.binary_search(&x).is_ok()),
            IntSet::W64(v) => v.binary_search(&x).is_ok(),
        }
    }
    fn upgrade(&mut self, x: i64) {
        let need = if i16::try_from(x).is_ok() {
            0
        } else if i32::try_from(x).is_ok() {
            1
        } else {
            2
        };
        let have = match self {
            IntSet::W16(_) => 0,
            IntSet::W32(_) => 1,
            IntSet::W64(_) => 2,
        };
        if need <= have {
            return;
        }
        let all: Vec<i64> = self.iter().collect();
        *self = if need == 1 {
            IntSet::W32(all.iter().map(|&v| v as i32).collect())
        } else {
            IntSet::W64(all)
        };
    }
    pub fn insert(&mut self, x: i64) -> bool {
        self.upgrade(x);
        match self {
            IntSet::W16(v) => vec_insert(v, x as i16),
            IntSet::W32(v) => vec_insert(v, x as i32),
            IntSet::W64(v) => vec_insert(v, x),
        }
    }
    pub fn remove(&mut self, x: i64) -> bool {
        match self {
            IntSet::W16(v) => i16::try_from(x).is_ok_and(|x| vec_remove(v, x)),
            IntSet::W32(v) => i32::try_from(x).is_ok_and(|x| vec_remove(v, x)),
            IntSet::W64(v) => vec_remove(v, x),
        }
    }
    pub fn remove_at(&mut self, i: usize) -> i64 {
        match self {
            IntSet::W16(v) => i64::from(v.remove(i)),
            IntSet::W32(v) => i64::from(v.remove(i)),
            IntSet::W64(v) => v.remove(i),
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
    fn bytes(&self) -> usize {
        match self {
            IntSet::W16(v) => v.capacity() * 2,
            IntSet::W32(v) => v.capacity() * 4,
            IntSet::W64(v) => v.capacity() * 8,
        }
    }
}

/// Blob layout of a set table entry: the member itself.
#[derive(Clone)]
pub struct MemberKey;

impl BlobKey for MemberKey {
    fn key(blob: &[u8]) -> &[u8] {
        blob
    }
}

#[derive(Clone)]
pub enum SetObj {
    Ints(IntSet),
    /// Reported as `hashtable` (redis 7.0 has no listpack sets).
    Listpack(Listpack),
    Table(Box<RhTable<MemberKey>>),
}

impl Default for SetObj {
    fn default() -> Self {
        SetObj::Ints(IntSet::default())
    }
}

impl SetObj {
    /// An empty set of the encoding redis picks for a set whose first
    /// member is `first` (intset for integers).
    pub fn for_first(first: &[u8]) -> Self {
        if parse_i64(first).is_some() {
            SetObj::Ints(IntSet::default())
        } else {
            SetObj::Listpack(Listpack::default())
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            SetObj::Ints(_) => "intset",
            SetObj::Listpack(_) | SetObj::Table(_) => "hashtable",
        }
    }
    pub fn len(&self) -> usize {
        match self {
            SetObj::Ints(s) => s.len(),
            SetObj::Listpack(lp) => lp.len(),
            SetObj::Table(t) => t.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn memory_usage(&self) -> usize {
        match self {
            SetObj::Ints(s) => s.bytes(),
            SetObj::Listpack(lp) => lp.bytes(),
            SetObj::Table(t) => std::mem::size_of::<RhTable<MemberKey>>() + t.memory_usage(),
        }
    }
    pub fn is_intset(&self) -> bool {
        matches!(self, SetObj::Ints(_))
    }

    fn convert_to_table(&mut self) {
        let mut t = RhTable::with_capacity(self.len() + 1);
        self.for_each(|e| {
            let v = e.to_vec();
            t.insert(&v, v.clone().into_boxed_slice());
        });
        *self = SetObj::Table(Box::new(t));
    }

    /// Leaves the intset encoding for `extra` more members, the longest of
    /// which is `longest` bytes.
    fn leave_intset(&mut self, extra: usize, longest: usize, limits: &EncodingLimits) {
        let SetObj::Ints(s) = self else { return };
        if s.len() + extra <= limits.set_max_listpack_entries
            && longest <= limits.set_max_listpack_value
        {
            let mut enc = Vec::with_capacity(s.len() * 4);
            let mut buf = itoa::Buffer::new();
            for x in s.iter() {
                lp_encode(&mut enc, buf.format(x).as_bytes());
            }
            let n = s.len();
            *self = SetObj::Listpack(Listpack::from_encoded(enc, n));
        } else {
            self.convert_to_table();
        }
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match self {
            SetObj::Ints(s) => parse_i64(m).is_some_and(|x| s.contains(x)),
            SetObj::Listpack(lp) => lp.find(&Probe::new(m), 1).is_some(),
            SetObj::Table(t) => t.contains(m),
        }
    }

    /// Adds a member; true if it is new. Converts like redis 7.0: an intset
    /// becomes a hashtable on a non-integer member or past
    /// `set-max-intset-entries`.
    pub fn add(&mut self, m: &[u8], limits: &EncodingLimits) -> bool {
        if let SetObj::Ints(s) = self {
            match parse_i64(m) {
                Some(x) => {
                    if !s.insert(x) {
                        return false;
                    }
                    let max = limits.set_max_intset_entries.min(1 << 30);
                    if s.len() > max {
                        self.convert_to_table();
                    }
                    return true;
                }
                None => {
                    let longest = m.len().max(20);
                    self.leave_intset(1, longest, limits);
                }
            }
        }
        if let SetObj::Listpack(lp) = self {
            let p = Probe::new(m);
            if lp.find(&p, 1).is_some() {
                return false;
            }
            if lp.len() < limits.set_max_listpack_entries
                && m.len() <= limits.set_max_listpack_value
            {
                let mut enc = Vec::with_capacity(m.len() + 5);
                lp_encode(&mut enc, m);
                lp.append_encoded(&enc, 1);
                return true;
            }
            self.convert_to_table();
        }
        match self {
            SetObj::Table(t) => t.insert(m, m.to_vec().into_boxed_slice()),
            _ => false,
        }
    }

    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            SetObj::Ints(s) => parse_i64(m).is_some_and(|x| s.remove(x)),
            SetObj::Listpack(lp) => match lp.find(&Probe::new(m), 1) {
                Some(pos) => {
                    let (_, end) = lp.at(pos);
                    lp.splice(pos, end, &[], -1);
                    true
                }
                None => false,
            },
            SetObj::Table(t) => t.remove(m).is_some(),
        }
    }

    /// Visits every member in storage order (ascending for intsets).
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(Elem<'a>)) {
        match self {
            SetObj::Ints(s) => s.iter().for_each(|x| f(Elem::Int(x))),
            SetObj::Listpack(lp) => lp.iter().for_each(|(_, e)| f(e)),
            SetObj::Table(t) => t.iter().for_each(|b| f(Elem::Str(b))),
        }
    }

    /// Every member as bytes.
    pub fn members(&self) -> Vec<Vec<u8>> {
        let mut v = Vec::with_capacity(self.len());
        self.for_each(|e| v.push(e.to_vec()));
        v
    }

    /// A uniformly random member.
    pub fn random(&self, rnd: &mut impl FnMut(usize) -> usize) -> Option<Elem<'_>> {
        match self {
            SetObj::Ints(s) => {
                if s.is_empty() {
                    None
                } else {
                    s.get(rnd(s.len())).map(Elem::Int)
                }
            }
            SetObj::Listpack(lp) => {
                if lp.is_empty() {
                    None
                } else {
                    lp.nth(rnd(lp.len()))
                }
            }
            SetObj::Table(t) => t.random(rnd).map(Elem::Str),
        }
    }

    /// Removes and returns a uniformly random member.
    pub fn pop_random(&mut self, rnd: &mut impl FnMut(usize) -> usize) -> Option<Vec<u8>> {
        match self {
            SetObj::Ints(s) => {
                if s.is_empty() {
                    return None;
                }
                let i = rnd(s.len());
                let x = s.remove_at(i);
                Some(itoa::Buffer::new().format(x).as_bytes().to_vec())
            }
            SetObj::Listpack(lp) => {
                if lp.is_empty() {
                    return None;
                }
                let i = rnd(lp.len());
                let (pos, e) = lp.iter().nth(i)?;
                let v = e.to_vec();
                let (_, end) = lp.at(pos);
                lp.splice(pos, end, &[], -1);
                Some(v)
            }
            SetObj::Table(t) => t.pop_random(rnd).map(|b| b.into_vec()),
        }
    }

    /// One SSCAN step: compact encodings return everything at once.
    pub fn scan<'a>(&'a self, cursor: u64, count: usize, mut f: impl FnMut(Elem<'a>)) -> u64 {
        match self {
            SetObj::Table(t) => t.scan(cursor, count, |b| f(Elem::Str(b))),
            _ => {
                self.for_each(f);
                0
            }
        }
    }

    /// Builds a set from members the way redis 7.0 builds a new set
    /// (SUNIONSTORE, SINTERSTORE, SPOP's rebuild...): start as an intset
    /// and convert on the first non-integer or past the intset limit.
    pub fn build<'a>(members: impl IntoIterator<Item = &'a [u8]>, limits: &EncodingLimits) -> Self {
        let mut s = SetObj::default();
        for m in members {
            s.add(m, limits);
        }
        s
    }
}
