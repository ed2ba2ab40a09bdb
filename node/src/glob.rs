//! Glob-style pattern matching with the exact semantics of redis's
//! `stringmatchlen` (used by KEYS, SCAN MATCH, PSUBSCRIBE, CONFIG GET ...).
//!
//! Supported syntax:
//! * `*` any run of bytes, `?` any single byte;
//! * `[abc]`, `[^abc]` byte classes, with `a-z` ranges (reversed ranges such
//!   as `z-a` are accepted) and `\x` escapes inside the class;
//! * `\x` matches `x` literally.
//!
//! Quirks kept on purpose so results equal redis's: a pattern can never
//! match the empty string unless it is empty itself (`*` does not match
//! `""`), an unterminated `[` class runs to the end of the pattern, and
//! range bounds compare as C `char` (signed) values.
//!
//! Work is bounded: once the rest of the pattern after a `*` has failed to
//! match at every later offset, no earlier `*` retries (a longer match for
//! it could only move the remainder further right), so patterns such as
//! `a*a*a*a*b` run in polynomial time. Like redis, recursion through `*`
//! is capped at [`MAX_NESTING`] levels; deeper patterns do not match.

/// Maximum number of nested `*` expansions, as in redis.
pub const MAX_NESTING: usize = 1000;

/// Returns true when `s` matches the glob `pattern` (ASCII case-insensitive
/// when `nocase`).
pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, s, nocase, &mut skip_longer, 0)
}

#[inline]
fn lower(c: u8) -> u8 {
    c.to_ascii_lowercase()
}

/// Byte as redis sees it in a range comparison: C `char` is signed.
#[inline]
fn as_c_char(c: u8) -> i32 {
    i32::from(c as i8)
}

#[inline]
fn lower_c(c: i32) -> i32 {
    if (i32::from(b'A')..=i32::from(b'Z')).contains(&c) {
        c + 32
    } else {
        c
    }
}

fn match_impl(
    mut p: &[u8],
    mut s: &[u8],
    nocase: bool,
    skip_longer: &mut bool,
    nesting: usize,
) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if match_impl(&p[1..], s, nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s = &s[1..];
                }
                *skip_longer = true;
                return false;
            }
            b'?' => {
                s = &s[1..];
            }
            b'[' => {
                p = &p[1..];
                let not = p.first() == Some(&b'^');
                if not {
                    p = &p[1..];
                }
                let c = s[0];
                let mut matched = false;
                // `i` indexes the class; an unterminated class runs to the
                // end of the pattern.
                let mut i = 0;
                loop {
                    let rest = p.len() - i;
                    if rest == 0 {
                        break;
                    }
                    let pc = p[i];
                    if pc == b'\\' && rest >= 2 {
                        i += 1;
                        if p[i] == c {
                            matched = true;
                        }
                    } else if pc == b']' {
                        break;
                    } else if rest >= 3 && p[i + 1] == b'-' {
                        let mut start = as_c_char(pc);
                        let mut end = as_c_char(p[i + 2]);
                        let mut ch = as_c_char(c);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        if nocase {
                            start = lower_c(start);
                            end = lower_c(end);
                            ch = lower_c(ch);
                        }
                        i += 2;
                        if ch >= start && ch <= end {
                            matched = true;
                        }
                    } else if (!nocase && pc == c) || (nocase && lower(pc) == lower(c)) {
                        matched = true;
                    }
                    i += 1;
                }
                p = &p[i..];
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s = &s[1..];
            }
            b => {
                let lit = if b == b'\\' && p.len() >= 2 {
                    p = &p[1..];
                    p[0]
                } else {
                    b
                };
                let c = s[0];
                if (!nocase && lit != c) || (nocase && lower(lit) != lower(c)) {
                    return false;
                }
                s = &s[1..];
            }
        }
        // Consume the pattern byte the cursor is on (nothing is left after
        // an unterminated class).
        p = p.get(1..).unwrap_or_default();
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Straightforward exponential port of redis's matcher without the
    /// "skip longer matches" shortcut or nesting cap, used as an oracle.
    fn naive(p: &[u8], s: &[u8], nocase: bool) -> bool {
        let (mut p, mut s) = (p, s);
        while !p.is_empty() && !s.is_empty() {
            match p[0] {
                b'*' => {
                    while p.len() > 1 && p[1] == b'*' {
                        p = &p[1..];
                    }
                    if p.len() == 1 {
                        return true;
                    }
                    while !s.is_empty() {
                        if naive(&p[1..], s, nocase) {
                            return true;
                        }
                        s = &s[1..];
                    }
                    return false;
                }
                b'?' => s = &s[1..],
                b'[' => {
                    p = &p[1..];
                    let not = p.first() == Some(&b'^');
                    if not {
                        p = &p[1..];
                    }
                    let mut m = false;
                    loop {
                        if p.is_empty() {
                            break;
                        }
                        if p[0] == b'\\' && p.len() >= 2 {
                            p = &p[1..];
                            m |= p[0] == s[0];
                        } else if p[0] == b']' {
                            break;
                        } else if p.len() >= 3 && p[1] == b'-' {
                            let (mut a, mut b) = (p[0] as i8 as i32, p[2] as i8 as i32);
                            let mut c = s[0] as i8 as i32;
                            if a > b {
                                std::mem::swap(&mut a, &mut b);
                            }
                            if nocase {
                                a = lower_c(a);
                                b = lower_c(b);
                                c = lower_c(c);
                            }
                            p = &p[2..];
                            m |= c >= a && c <= b;
                        } else if nocase {
                            m |= lower(p[0]) == lower(s[0]);
                        } else {
                            m |= p[0] == s[0];
                        }
                        p = &p[1..];
                    }
                    if m == not {
                        return false;
                    }
                    s = &s[1..];
                    if p.is_empty() {
                        // Unterminated class consumed the whole pattern.
                        return s.is_empty();
                    }
                }
                _ => {
                    if p[0] == b'\\' && p.len() >= 2 {
                        p = &p[1..];
                    }
                    let ok = if nocase {
                        lower(p[0]) == lower(s[0])
                    } else {
                        p[0] == s[0]
                    };
                    if !ok {
                        return false;
                    }
                    s = &s[1..];
                }
            }
            p = &p[1..];
            if s.is_empty() {
                while p.first() == Some(&b'*') {
                    p = &p[1..];
                }
                break;
            }
        }
        p.is_empty() && s.is_empty()
    }

    #[test]
    fn table() {
        // (pattern, string, nocase, expected) — checked against redis 7.0
        // KEYS / CONFIG GET behaviour.
        let cases: &[(&[u8], &[u8], bool, bool)] = &[
            (b"", b"", false, true),
            (b"*", b"", false, false),
            (b"", b"a", false, false),
            (b"*", b"anything", false, true),
            (b"h?llo", b"hello", false, true),
            (b"h?llo", b"hllo", false, false),
            (b"h*llo", b"hllo", false, true),
            (b"h*llo", b"heeeello", false, true),
            (b"h[ae]llo", b"hallo", false, true),
            (b"h[ae]llo", b"hillo", false, false),
            (b"h[^e]llo", b"hallo", false, true),
            (b"h[^e]llo", b"hello", false, false),
            (b"h[a-b]llo", b"hbllo", false, true),
            (b"h[b-a]llo", b"hallo", false, true),
            (b"h[a-b]llo", b"hcllo", false, false),
            (b"h\\*llo", b"h*llo", false, true),
            (b"h\\*llo", b"hello", false, false),
            (b"[\\]]", b"]", false, true),
            (b"[a-]", b"]", false, true),
            (b"[abc", b"a", false, true),
            (b"[abc", b"ab", false, false),
            (b"a\\", b"a\\", false, true),
            (b"HELLO", b"hello", true, true),
            (b"HELLO", b"hello", false, false),
            (b"[A-Z]", b"q", true, true),
            (b"[A-Z]", b"q", false, false),
            (b"*max-*-entries*", b"hash-max-listpack-entries", true, true),
            (b"*max-*-entries*", b"maxmemory", true, false),
            (b"a*", b"a", false, true),
            (b"a**", b"a", false, true),
            (b"a*b", b"a", false, false),
            (b"*a", b"bba", false, true),
            (b"[^]", b"x", false, true),
            (b"[\xff-a]", b"\x01", false, true),
            (b"[\xff-a]", b"\x80", false, false),
            (b"[a-\xff]", b"b", false, false),
            (b"[", b"a", false, false),
            (b"[^", b"a", false, true),
        ];
        for &(p, s, nc, want) in cases {
            assert_eq!(
                glob_match(p, s, nc),
                want,
                "pattern {:?} string {:?} nocase {nc}",
                String::from_utf8_lossy(p),
                String::from_utf8_lossy(s)
            );
            assert_eq!(naive(p, s, nc), want, "oracle disagrees on {p:?} {s:?}");
        }
    }

    #[test]
    fn pathological_is_fast() {
        let s = vec![b'a'; 20_000];
        let p = b"a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let t = std::time::Instant::now();
        assert!(!glob_match(p, &s, false));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn nesting_is_capped() {
        let mut p = Vec::new();
        for _ in 0..(MAX_NESTING + 10) {
            p.extend_from_slice(b"a*");
        }
        let s = vec![b'a'; MAX_NESTING + 20];
        // Too deep: redis gives up and reports no match; must not overflow.
        assert!(!glob_match(&p, &s, false));
        let short = b"a*a*a*".repeat(10);
        assert!(glob_match(&short, &s, false));
    }

    proptest! {
        #[test]
        fn agrees_with_oracle(
            p in proptest::collection::vec(
                prop::sample::select(vec![b'a', b'b', b'A', b'*', b'?', b'[', b']', b'^', b'-', b'\\']),
                0..9),
            s in proptest::collection::vec(prop::sample::select(vec![b'a', b'b', b'B', b'-', b']', b'*']), 0..9),
            nocase in any::<bool>(),
        ) {
            prop_assert_eq!(glob_match(&p, &s, nocase), naive(&p, &s, nocase));
        }
    }
}
