//! Property tests of the RESP request parser.

#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use proptest::prelude::*;
use shardline_node::resp::{ParseLimits, ProtocolError, RequestParser};

/// A small bulk limit: arbitrary input may announce huge bulks, for which
/// the parser reserves room up front.
const LIMITS: ParseLimits = ParseLimits {
    max_bulk_len: 1 << 20,
};

fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// Feeds `input` in pieces ending at `cuts` and collects every request.
fn feed(input: &[u8], cuts: &[usize]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
    let mut p = RequestParser::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    for c in cuts {
        if c < at {
            continue;
        }
        buf.extend_from_slice(&input[at..c]);
        at = c;
        while let Some(req) = p.parse(&mut buf, &LIMITS)? {
            assert!(!req.is_empty(), "the parser returned an empty request");
            out.push(req.into_iter().map(|b| b.to_vec()).collect());
        }
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn multibulk_round_trips_at_any_split(
        reqs in prop::collection::vec(
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6),
            1..5,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut input = Vec::new();
        for r in &reqs {
            input.extend_from_slice(&encode(r));
        }
        let got = feed(&input, &cuts).expect("valid input must parse");
        prop_assert_eq!(got, reqs);
    }

    #[test]
    fn large_bulks_round_trip(
        len in 30_000usize..70_000,
        byte in any::<u8>(),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let req = vec![b"SET".to_vec(), b"k".to_vec(), vec![byte; len]];
        let input = encode(&req);
        let got = feed(&input, &cuts).expect("valid input must parse");
        prop_assert_eq!(got, vec![req]);
    }

    #[test]
    fn inline_words_round_trip(
        words in prop::collection::vec("[a-zA-Z0-9_:.-]{1,12}", 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let line = format!("{}\r\n", words.join(" "));
        let got = feed(line.as_bytes(), &cuts).expect("valid inline request");
        let want: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        prop_assert_eq!(got, vec![want]);
    }

    /// Arbitrary input never panics: the parser yields requests, waits for
    /// more input, or reports a protocol error; and how the input is split
    /// into reads never changes the outcome.
    #[test]
    fn byte_soup_never_panics(
        soup in prop::collection::vec(any::<u8>(), 0..300),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = feed(&soup, &[]);
        let split = feed(&soup, &cuts);
        prop_assert_eq!(whole, split);
    }

    /// Protocol-shaped soup: valid framing characters mixed with junk.
    #[test]
    fn resp_shaped_soup_never_panics(
        parts in prop::collection::vec(
            prop_oneof![
                Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"\r\n".to_vec()),
                Just(b"\n".to_vec()), Just(b"-1".to_vec()), Just(b"0".to_vec()),
                Just(b"3".to_vec()), Just(b"99999999999999999999".to_vec()),
                Just(b"\"".to_vec()), Just(b"'".to_vec()), Just(b" ".to_vec()),
                Just(b"\\x4".to_vec()), prop::collection::vec(any::<u8>(), 0..5),
            ],
            0..40,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let soup: Vec<u8> = parts.concat();
        prop_assert_eq!(feed(&soup, &[]), feed(&soup, &cuts));
    }
}
