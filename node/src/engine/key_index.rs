//! The index of one slot's keys.
//!
//! With 100k keys a slot holds six on average, and a hash table that small
//! is mostly spare buckets and control bytes (about 47 bytes per key for
//! 24-byte entries). A slot of up to [`SMALL_MAX`] keys therefore keeps its
//! entries in an exactly sized array searched linearly (lengths are compared
//! before bytes, so a miss rarely reads a key); a slot that grows past it
//! switches to a hash table, and goes back to the array when it shrinks to
//! half of that.

use hashbrown::HashTable;

use super::table::{hash_key, Entry};

/// The most keys a slot keeps in its array.
pub const SMALL_MAX: usize = 8;

pub enum KeyIndex {
    Small(Vec<Entry>),
    Hashed(Box<HashTable<Entry>>),
}

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex::Small(Vec::new())
    }
}

/// Slice equality compares the lengths first, so a key of another length
/// is rejected without reading its bytes.
#[inline]
fn matches(e: &Entry, key: &[u8]) -> bool {
    e.key() == key
}

impl KeyIndex {
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            KeyIndex::Small(v) => v.len(),
            KeyIndex::Hashed(t) => t.len(),
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn find(&self, key: &[u8]) -> Option<&Entry> {
        match self {
            KeyIndex::Small(v) => v.iter().find(|e| matches(e, key)),
            KeyIndex::Hashed(t) => t.find(hash_key(key), |e| matches(e, key)),
        }
    }

    #[inline]
    pub fn find_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        match self {
            KeyIndex::Small(v) => v.iter_mut().find(|e| matches(e, key)),
            KeyIndex::Hashed(t) => t.find_mut(hash_key(key), |e| matches(e, key)),
        }
    }

    /// Adds an entry whose key is not in the index.
    pub fn insert_unique(&mut self, entry: Entry) {
        match self {
            KeyIndex::Small(v) if v.len() < SMALL_MAX => {
                if v.len() == v.capacity() {
                    v.reserve_exact(1);
                }
                v.push(entry);
            }
            KeyIndex::Small(v) => {
                let mut t = HashTable::with_capacity(v.len() + 1);
                for e in v.drain(..) {
                    t.insert_unique(hash_key(e.key()), e, |e| hash_key(e.key()));
                }
                t.insert_unique(hash_key(entry.key()), entry, |e| hash_key(e.key()));
                *self = KeyIndex::Hashed(Box::new(t));
            }
            KeyIndex::Hashed(t) => {
                t.insert_unique(hash_key(entry.key()), entry, |e| hash_key(e.key()));
            }
        }
    }

    /// Removes and returns the entry of `key`.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        match self {
            KeyIndex::Small(v) => {
                let i = v.iter().position(|e| matches(e, key))?;
                let e = v.swap_remove(i);
                if v.is_empty() {
                    *v = Vec::new();
                }
                Some(e)
            }
            KeyIndex::Hashed(t) => {
                let e = match t.find_entry(hash_key(key), |e| matches(e, key)) {
                    Ok(occ) => occ.remove().0,
                    Err(_) => return None,
                };
                if t.len() <= SMALL_MAX / 2 {
                    let mut v = Vec::with_capacity(t.len());
                    v.extend(t.drain());
                    *self = KeyIndex::Small(v);
                }
                Some(e)
            }
        }
    }

    pub fn iter(&self) -> KeyIter<'_> {
        match self {
            KeyIndex::Small(v) => KeyIter::Small(v.iter()),
            KeyIndex::Hashed(t) => KeyIter::Hashed(t.iter()),
        }
    }
}

pub enum KeyIter<'a> {
    Small(std::slice::Iter<'a, Entry>),
    Hashed(hashbrown::hash_table::Iter<'a, Entry>),
}

impl<'a> Iterator for KeyIter<'a> {
    type Item = &'a Entry;
    #[inline]
    fn next(&mut self) -> Option<&'a Entry> {
        match self {
            KeyIter::Small(i) => i.next(),
            KeyIter::Hashed(i) => i.next(),
        }
    }
}
