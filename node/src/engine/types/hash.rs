//! Placeholder for the hash type (implemented by the data-types issue).

#[derive(Clone, Default)]
pub struct HashObj {
    len: usize,
}

impl HashObj {
    pub fn encoding(&self) -> &'static str {
        "listpack"
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn memory_usage(&self) -> usize {
        0
    }
}
