//! Collection types and their encodings.
//!
//! Every type keeps small collections in a compact encoding (a listpack: one
//! contiguous byte buffer, or an intset for small integer sets) and converts
//! to a full encoding when a threshold from [`EncodingLimits`] is crossed,
//! as redis does; OBJECT ENCODING reports redis's names.

pub mod hash;
pub mod list;
pub mod set;
pub mod zset;

/// Conversion thresholds (hash-max-listpack-entries and friends).
#[derive(Debug, Clone, Copy)]
pub struct EncodingLimits {
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    /// Positive: max entries per quicklist node; negative: size class
    /// (-1 = 4 KB ... -5 = 64 KB), like redis.
    pub list_max_listpack_size: i64,
    pub set_max_intset_entries: usize,
    pub set_max_listpack_entries: usize,
    pub set_max_listpack_value: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
}

impl Default for EncodingLimits {
    fn default() -> Self {
        EncodingLimits {
            hash_max_listpack_entries: 128,
            hash_max_listpack_value: 64,
            list_max_listpack_size: -2,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
        }
    }
}
