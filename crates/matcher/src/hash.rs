//! The hash functions and the Bloom filter of the file format.
//!
//! Builder and reader must agree bit for bit: changing anything here
//! changes the format, so bump [`crate::FORMAT_VERSION`].

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seeds per key class, so a domain and a URL with the same bytes, or an
/// address and a network, never share a key.
pub(crate) const SEED_DOMAIN: u64 = 0x243F_6A88_85A3_08D3;
const SEED_IPV4: u64 = 0x1319_8A2E_0370_7344;
const SEED_IPV6: u64 = 0xA409_3822_299F_31D0;
const SEED_CIDR4: u64 = 0x082E_FA98_EC4E_6C89;
const SEED_CIDR6: u64 = 0x4528_21E6_38D0_1377;
const SEED_URL: u64 = 0xBE54_66CF_34E9_0C6C;
const SEED_HASH: u64 = 0xC0AC_29B7_C97C_50DD;

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;

/// Bits set per key in the Bloom filter.
const FILTER_K: u32 = 4;
/// Filter bits per key: about 0.55 % false positives with 64-bit blocks
/// and 4 bits per key (12 bits give 1 %; a false positive costs a DRAM
/// miss in the table; a fifth bit costs more instructions than it saves).
pub(crate) const FILTER_BITS_PER_KEY: u64 = 16;

/// The folded 128-bit product (wyhash's mix): every output bit depends on
/// every input bit, so it serves as the final step of every key hash here.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte: set somewhere means not ASCII.
pub(crate) const HIGH_BITS: u64 = ONES * 0x80;

/// Eight bytes of `b` from `at`; the caller makes sure they exist.
#[inline(always)]
pub(crate) fn load(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map_or(0, |w| u64::from_le_bytes(w.try_into().unwrap_or_default()))
}

/// `b[at..end]`, one to eight bytes, as a word padded with zeros: one
/// load of the eight bytes ending at `end`, or starting at `at`, whichever
/// the slice holds; byte by byte only for slices shorter than a word.
#[inline(always)]
pub(crate) fn tail(b: &[u8], at: usize, end: usize) -> u64 {
    let rem = end - at;
    if end >= 8 {
        load(b, end - 8) >> ((8 - rem) * 8)
    } else if b.len() >= at + 8 {
        load(b, at) & ((1u64 << (rem * 8)) - 1)
    } else {
        let mut w = [0u8; 8];
        for (d, s) in w.iter_mut().zip(b.get(at..end).unwrap_or(&[])) {
            *d = *s;
        }
        u64::from_le_bytes(w)
    }
}

/// ASCII lowercase of eight ASCII bytes at once.
#[inline(always)]
fn lower(w: u64) -> u64 {
    // The high bit of each byte: at least 'A', and above 'Z'. Bytes are
    // below 0x80, so the additions never carry into the next byte.
    let at_least_a = w + ONES * (0x80 - u64::from(b'A'));
    let above_z = w + ONES * (0x80 - u64::from(b'Z') - 1);
    w | ((at_least_a & !above_z & HIGH_BITS) >> 2)
}

/// The high bit of each byte of `w` that is a dot (exact for any byte).
#[inline(always)]
pub(crate) fn dot_bits(w: u64) -> u64 {
    let x = w ^ (ONES * u64::from(b'.'));
    !(((x & !HIGH_BITS) + !HIGH_BITS) | x) & HIGH_BITS
}

/// Folds the label `b[start..end]` (ASCII, any case) into `state`, the
/// hash of the labels to its right. Names are hashed label by label from
/// the right, so a lookup gets the hash of every suffix in one pass over
/// the name, eight bytes per multiply, without copying it.
#[inline(always)]
pub(crate) fn label_step(state: u64, b: &[u8], start: usize, end: usize) -> u64 {
    let len = end - start;
    if len <= 8 {
        return short_label_step(state, tail(b, start, end));
    }
    let mut h = state ^ (len as u64).wrapping_mul(K2);
    let mut at = start;
    while end - at > 8 {
        h = fold_mul(h ^ lower(load(b, at)), K1);
        at += 8;
    }
    fold_mul(h ^ lower(tail(b, at, end)), K1)
}

/// [`label_step`] for a label of at most 8 bytes given as a word padded
/// with zeros, which a lookup often has at hand already. The padding says
/// where the label ends (names hold no NUL bytes; one that does costs a
/// probe of the table, never a false hit), so only labels longer than a
/// word mix in their length. The result is the suffix's key: a folded
/// 128-bit product is mixed well enough, so there is no final step.
#[inline(always)]
pub(crate) fn short_label_step(state: u64, label: u64) -> u64 {
    fold_mul(state ^ lower(label), K1)
}

/// The key hash of a whole (normalised) domain name.
pub(crate) fn domain_hash(name: &[u8]) -> u64 {
    let mut state = SEED_DOMAIN;
    let mut end = name.len();
    for start in (0..name.len()).rev() {
        if name.get(start) == Some(&b'.') {
            state = label_step(state, name, start + 1, end);
            end = start;
        }
    }
    label_step(state, name, 0, end)
}

pub(crate) fn ipv4_hash(addr: u32) -> u64 {
    fold_mul(u64::from(addr) ^ SEED_IPV4, K1)
}

pub(crate) fn ipv6_hash(addr: u128) -> u64 {
    fold_mul((addr >> 64) as u64 ^ SEED_IPV6, addr as u64 ^ K2)
}

/// `network` must have its host bits cleared.
pub(crate) fn cidr4_hash(network: u32, len: u8) -> u64 {
    fold_mul((u64::from(network) << 8 | u64::from(len)) ^ SEED_CIDR4, K1)
}

/// `network` must have its host bits cleared.
pub(crate) fn cidr6_hash(network: u128, len: u8) -> u64 {
    let h = fold_mul((network >> 64) as u64 ^ SEED_CIDR6, network as u64 ^ K2);
    fold_mul(h ^ u64::from(len), K1)
}

pub(crate) fn url_hash(url: &[u8]) -> u64 {
    xxh3_64_with_seed(url, SEED_URL)
}

/// Of a lowercase hex digest.
pub(crate) fn digest_hash(hex: &[u8]) -> u64 {
    xxh3_64_with_seed(hex, SEED_HASH)
}

/// The table slot's fingerprint: never 0, which marks an empty slot. The
/// low half of the hash, as the slot position comes from the high half.
#[inline(always)]
pub(crate) fn fingerprint(h: u64) -> u32 {
    (h as u32) | 1
}

/// Maps a hash onto `0..n` without a division (Lemire's fast range). It
/// is monotonic in the hash, which the builder uses to fill the table in
/// order.
#[inline(always)]
pub(crate) fn fast_range(h: u64, n: u64) -> u64 {
    ((u128::from(h) * u128::from(n)) >> 64) as u64
}

/// Filter words for `keys` keys: none for none.
pub(crate) fn filter_words(keys: u64) -> u64 {
    (keys * FILTER_BITS_PER_KEY).div_ceil(64)
}

/// The Bloom filter word of `h` (from the low half, as the bits come from
/// the top), for a filter of `words` words (< 2^32).
#[inline(always)]
pub(crate) fn filter_word(h: u64, words: u64) -> usize {
    (((h & 0xFFFF_FFFF) * words) >> 32) as usize
}

/// The bits `h` sets in its filter word.
#[inline(always)]
pub(crate) fn filter_mask(h: u64) -> u64 {
    // The top 24 bits; the word index comes from the low 32.
    let x = h >> 40;
    let mut m = 0u64;
    for i in 0..FILTER_K {
        m |= 1 << ((x >> (6 * i)) & 63);
    }
    m
}

/// Whether `h` may be in `filter` (little-endian words); an empty filter
/// holds nothing.
#[inline(always)]
pub(crate) fn filter_has(filter: &[u8], h: u64) -> bool {
    let words = (filter.len() / 8) as u64;
    let at = filter_word(h, words) * 8;
    let mask = filter_mask(h);
    match filter.get(at..at + 8) {
        Some(w) => u64::from_le_bytes(w.try_into().unwrap_or_default()) & mask == mask,
        None => false,
    }
}

/// Adds `h` to `filter`, a slice of words.
pub(crate) fn filter_add(filter: &mut [u64], h: u64) {
    let at = filter_word(h, filter.len() as u64);
    if let Some(w) = filter.get_mut(at) {
        *w |= filter_mask(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_hashes_from_the_right_equal_whole_name_hashes() {
        let name = b"a.very-long-label-of-many-bytes.b.example.com.vn";
        let mut state = SEED_DOMAIN;
        let mut end = name.len();
        for start in (0..name.len()).rev() {
            if name[start] == b'.' {
                state = label_step(state, name, start + 1, end);
                assert_eq!(state, domain_hash(&name[start + 1..]));
                end = start;
            }
        }
    }

    #[test]
    fn finds_every_dot() {
        for pattern in 0u64..256 {
            let bytes: Vec<u8> = (0..8)
                .map(|i| {
                    if pattern >> i & 1 == 1 {
                        b'.'
                    } else {
                        b'a' + i as u8
                    }
                })
                .collect();
            let w = u64::from_le_bytes(bytes.clone().try_into().unwrap());
            let want = (0..8)
                .filter(|i| pattern >> i & 1 == 1)
                .fold(0u64, |m, i| m | 0x80 << (8 * i));
            assert_eq!(dot_bits(w), want, "{:?}", String::from_utf8(bytes));
        }
        // Neighbours of '.' and bytes with the high bit are not dots.
        assert_eq!(
            dot_bits(u64::from_le_bytes(*b"-/\xae\xaen.\x00\x2f")),
            0x80 << 40
        );
    }

    #[test]
    fn lowercases_ascii_words() {
        let w = u64::from_le_bytes(*b"AZaz@[`{");
        assert_eq!(lower(w).to_le_bytes(), *b"azaz@[`{");
        let all: Vec<u8> = (0u8..0x80).collect();
        for chunk in all.chunks(8) {
            let got = lower(u64::from_le_bytes(chunk.try_into().unwrap())).to_le_bytes();
            assert_eq!(got.to_vec(), chunk.to_ascii_lowercase());
        }
    }

    #[test]
    fn bytes_around_a_label_and_its_case_do_not_change_its_hash() {
        // The same name inside a longer buffer, in another case.
        let a = domain_hash(b"evil.com");
        let mut state = SEED_DOMAIN;
        let buf = b"XXXXXXXXEvIl.cOmXXXXXXXX";
        state = label_step(state, buf, 13, 16);
        assert_eq!(label_step(state, buf, 8, 12), a);
        let short = b"EVIL.COM";
        let mut state = SEED_DOMAIN;
        state = label_step(state, short, 5, 8);
        assert_eq!(label_step(state, short, 0, 4), a);
        assert_ne!(domain_hash(b"evil.co"), a);
        assert_ne!(domain_hash(b"evilcom"), a);
        assert_ne!(domain_hash(b"com.evil"), a);
    }

    #[test]
    fn filter_false_positive_rate_is_below_one_percent() {
        let n = 100_000u64;
        let mut words = vec![0u64; filter_words(n) as usize];
        for i in 0..n {
            filter_add(
                &mut words,
                domain_hash(format!("listed{i}.example").as_bytes()),
            );
        }
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        for i in 0..n {
            assert!(filter_has(
                &bytes,
                domain_hash(format!("listed{i}.example").as_bytes())
            ));
        }
        let fp = (0..n)
            .filter(|i| filter_has(&bytes, domain_hash(format!("other{i}.example").as_bytes())))
            .count();
        assert!(fp < (n / 100) as usize, "{fp} false positives in {n}");
    }
}
