//! Collection values (hashes, lists, sets, sorted sets). Their compact and
//! full encodings live in the per-type modules; this enum is what a slot
//! table stores for a non-string key.

use std::collections::{HashMap, HashSet, VecDeque};

#[derive(Clone)]
pub enum Object {
    Hash(HashMap<Vec<u8>, Vec<u8>>),
    List(VecDeque<Vec<u8>>),
    Set(HashSet<Vec<u8>>),
}

impl Object {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Object::Hash(_) => "hash",
            Object::List(_) => "list",
            Object::Set(_) => "set",
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Object::Hash(_) => "hashtable",
            Object::List(_) => "quicklist",
            Object::Set(_) => "hashtable",
        }
    }

    /// Approximate heap bytes held by the object.
    pub fn memory_usage(&self) -> usize {
        match self {
            Object::Hash(h) => h.iter().map(|(k, v)| k.len() + v.len() + 48).sum(),
            Object::List(l) => l.iter().map(|v| v.len() + 24).sum(),
            Object::Set(s) => s.iter().map(|v| v.len() + 32).sum(),
        }
    }

    /// Number of elements (used to decide whether freeing is deferred).
    pub fn len(&self) -> usize {
        match self {
            Object::Hash(h) => h.len(),
            Object::List(l) => l.len(),
            Object::Set(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
