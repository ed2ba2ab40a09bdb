//! Placeholder for the set type (implemented by the data-types issue).

#[derive(Clone, Default)]
pub struct SetObj {
    len: usize,
}

impl SetObj {
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
    /// Every member as bytes (sorted-set operations take sets as inputs
    /// with score 1).
    pub fn members(&self) -> Vec<Vec<u8>> {
        Vec::new()
    }
}
