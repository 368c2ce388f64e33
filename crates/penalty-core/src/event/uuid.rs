//! Event ids: UUIDs in the 8-4-4-4-12 hex form, read eight digits at a
//! time (every line has one) and written in lower case.

/// The id of a UUID in the 8-4-4-4-12 hex form, and whether its hex digits
/// are all lower case (upper case is accepted too, as the `uuid` crate
/// reads it).
pub(super) fn parse_event_id(bytes: &[u8]) -> Option<(u128, bool)> {
    let bytes: &[u8; 36] = bytes.try_into().ok()?;
    if [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
        return None;
    }
    // The 32 digits, eight at a time (every line has an id, so this runs
    // millions of times): the groups of four are paired into words. The
    // first digit goes to the word's top byte, so that it ends up the most
    // significant.
    let word = |at: usize| {
        u64::from(u32::from_be_bytes([
            bytes[at],
            bytes[at + 1],
            bytes[at + 2],
            bytes[at + 3],
        ]))
    };
    let words = [
        word(0) << 32 | word(4),
        word(9) << 32 | word(14),
        word(19) << 32 | word(24),
        word(28) << 32 | word(32),
    ];
    let mut value: u128 = 0;
    let mut upper = false;
    for word in words {
        let (digits, word_upper) = hex_word(word)?;
        value = value << 32 | u128::from(digits);
        upper |= word_upper;
    }
    Some((value, !upper))
}

/// The value of eight ASCII hex digits, the first in the top byte, and
/// whether any is an upper-case letter; `None` when a byte is not a hex
/// digit. All eight bytes are classified at once: with every byte below
/// 0x80, adding a constant to each byte cannot carry into the next, so the
/// top bit of each byte's sum tells whether the byte is above a bound.
fn hex_word(word: u64) -> Option<(u32, bool)> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    if word & HIGHS != 0 {
        return None;
    }
    // The top bit of each byte at least `low`, and of each at most `high`.
    let at_least = |w: u64, low: u8| w.wrapping_add(ONES * u64::from(0x80 - low)) & HIGHS;
    let at_most = |w: u64, high: u8| !w.wrapping_add(ONES * u64::from(0x7f - high)) & HIGHS;
    let digit = at_least(word, b'0') & at_most(word, b'9');
    // Setting bit 0x20 folds `A`-`F` onto `a`-`f` and moves no other byte
    // into that range.
    let folded = word | (ONES * 0x20);
    let letter = at_least(folded, b'a') & at_most(folded, b'f');
    if digit | letter != HIGHS {
        return None;
    }
    // An upper-case letter is a letter without bit 0x20.
    let upper = letter & ((!word & (ONES * 0x20)) << 2) != 0;
    // A digit's value is its low four bits, a letter's those plus 9.
    let nibbles = (word & (ONES * 0x0f)) + (letter >> 7) * 9;
    // Pack the eight nibbles, the top one first: pairs into bytes, bytes
    // into 16-bit halves, halves into the 32-bit value.
    let bytes = (nibbles | nibbles >> 4) & 0x00ff_00ff_00ff_00ff;
    let halves = (bytes | bytes >> 8) & 0x0000_ffff_0000_ffff;
    let value = (halves | halves >> 16) & 0xffff_ffff;
    Some((value as u32, upper))
}

/// Formats a 128-bit event id in the 8-4-4-4-12 form.
pub fn format_event_id(event_id: u128) -> String {
    uuid::Uuid::from_u128(event_id).hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_ids_parse_as_the_uuid_crate_reads_the_hyphenated_form() {
        let good = "0b6f3c1e-6a53-4f43-9f0e-2d1c7f4a9b10";
        let mut cases = vec![
            good.to_string(),
            good.to_uppercase(),
            "00000000-0000-0000-0000-000000000000".to_string(),
            "ffffffff-ffff-ffff-ffff-ffffffffffff".to_string(),
            good.replace('-', ""),
            good[1..].to_string(),
            format!("{good}0"),
            good.replacen('-', "x", 1),
        ];
        // Every position holding every interesting byte.
        for position in 0..36 {
            for byte in [
                b'0', b'9', b'a', b'f', b'A', b'F', b'g', b'G', b'-', b' ', b'/', b':', b'`', b'@',
                0xff,
            ] {
                let mut bytes = good.as_bytes().to_vec();
                bytes[position] = byte;
                if let Ok(text) = String::from_utf8(bytes) {
                    cases.push(text);
                }
            }
        }
        for case in cases {
            let expected = if case.len() == 36 {
                uuid::Uuid::try_parse(&case).ok().map(|u| u.as_u128())
            } else {
                None
            };
            assert_eq!(
                super::parse_event_id(case.as_bytes()).map(|(id, _)| id),
                expected,
                "{case:?}"
            );
            if let Some((_, lowercase)) = super::parse_event_id(case.as_bytes()) {
                assert_eq!(
                    lowercase,
                    !case.bytes().any(|b| b.is_ascii_uppercase()),
                    "{case:?}"
                );
            }
        }
    }

    /// What `hex_word` answers, digit by digit.
    fn hex_word_bytewise(word: u64) -> Option<(u32, bool)> {
        let mut value = 0u32;
        let mut upper = false;
        for byte in word.to_be_bytes() {
            value = value << 4 | char::from(byte).to_digit(16)?;
            upper |= byte.is_ascii_uppercase();
        }
        Some((value, upper))
    }

    proptest::proptest! {
        /// The word-at-a-time hex reading answers as the digit-by-digit one
        /// over every kind of byte: digits, both cases of letters, the
        /// bytes just outside each range, and any byte at all.
        #[test]
        fn hex_word_is_the_bytewise_reading(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    4 => proptest::sample::select(b"0123456789abcdefABCDEF".to_vec()),
                    1 => proptest::sample::select(b"/:@G`g-\x00\x7f\x80\xb0\xc1\xe6\xff".to_vec()),
                    1 => proptest::prelude::any::<u8>(),
                ],
                8,
            ),
        ) {
            let word = u64::from_be_bytes(bytes.clone().try_into().unwrap());
            proptest::prop_assert_eq!(super::hex_word(word), hex_word_bytewise(word), "{:?}", bytes);
        }
    }
}
