#![no_main]
//! Feeds arbitrary bytes to the RESP request parser, whole and split into
//! reads at positions taken from the input, and checks that it never panics
//! and that the split does not change the outcome.

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shardline_node::resp::{ParseLimits, ProtocolError, RequestParser};

type Parsed = Result<Vec<Vec<bytes::Bytes>>, ProtocolError>;

fn run(data: &[u8], step: usize, limits: &ParseLimits) -> Parsed {
    let mut p = RequestParser::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in data.chunks(step.max(1)) {
        buf.extend_from_slice(chunk);
        while let Some(req) = p.parse(&mut buf, limits)? {
            assert!(!req.is_empty());
            out.push(req);
        }
    }
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let limits = ParseLimits {
        max_bulk_len: 1 << 20,
    };
    let whole = run(rest, rest.len().max(1), &limits);
    let split = run(rest, usize::from(first % 16) + 1, &limits);
    assert_eq!(whole, split);
});
