//! Collection values (hashes, lists, sets, sorted sets). Each type lives in
//! its own module under `engine::types`, with its compact (listpack/intset)
//! and full encodings; this enum is what a slot table stores for a
//! non-string key.

use super::types::{hash::HashObj, list::ListObj, set::SetObj, zset::ZSetObj};

#[derive(Clone)]
pub enum Object {
    Hash(HashObj),
    List(ListObj),
    Set(SetObj),
    ZSet(ZSetObj),
}

impl Object {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Object::Hash(_) => "hash",
            Object::List(_) => "list",
            Object::Set(_) => "set",
            Object::ZSet(_) => "zset",
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Object::Hash(o) => o.encoding(),
            Object::List(o) => o.encoding(),
            Object::Set(o) => o.encoding(),
            Object::ZSet(o) => o.encoding(),
        }
    }

    /// Approximate heap bytes held by the object (MEMORY USAGE).
    pub fn memory_usage(&self) -> usize {
        match self {
            Object::Hash(o) => o.memory_usage(),
            Object::List(o) => o.memory_usage(),
            Object::Set(o) => o.memory_usage(),
            Object::ZSet(o) => o.memory_usage(),
        }
    }

    /// Number of elements (also decides whether freeing is deferred to the
    /// lazy-free thread).
    pub fn len(&self) -> usize {
        match self {
            Object::Hash(o) => o.len(),
            Object::List(o) => o.len(),
            Object::Set(o) => o.len(),
            Object::ZSet(o) => o.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
