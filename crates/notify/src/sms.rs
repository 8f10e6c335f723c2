//! How long an SMS is, and how to make Vietnamese fit GSM-7.
//!
//! A text made only of the GSM 03.38 default alphabet travels as GSM-7:
//! 160 units in one message, 153 per part of a multipart message (the user
//! data header takes the rest). The extension table (`^{}\[~]|€` and form
//! feed) costs two units each, an escape and the character, and the pair is
//! never split across parts. Any other character switches the whole message
//! to UCS-2: 70 UTF-16 code units alone, 67 per part, a surrogate pair kept
//! in one part.
//!
//! Vietnamese with its diacritics is almost always UCS-2, so a 300-character
//! warning costs five parts; "không dấu" (without marks) it costs two.
//! [`without_diacritics`] gives that form; the gateway uses it when the
//! configuration allows and it saves parts.

use serde::Serialize;

/// How an SMS is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsEncoding {
    /// The GSM 03.38 7-bit default alphabet (with its extension table).
    Gsm7,
    /// UCS-2 (UTF-16 code units).
    Ucs2,
}

impl SmsEncoding {
    pub fn as_str(self) -> &'static str {
        match self {
            SmsEncoding::Gsm7 => "gsm7",
            SmsEncoding::Ucs2 => "ucs2",
        }
    }
}

impl std::fmt::Display for SmsEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The size of a text as an SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SmsInfo {
    pub encoding: SmsEncoding,
    /// Septets for GSM-7 (extension characters count two), UTF-16 code
    /// units for UCS-2.
    pub units: usize,
    /// Messages the network bills: 1 for an empty or short text.
    pub segments: u32,
}

/// The GSM 03.38 default alphabet, without the escape (0x1B).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The extension table, reached through the escape: two septets each.
const GSM_EXTENSION: &str = "\x0c^{}\\[~]|€";

/// Septets `c` takes in GSM-7, or `None` when it has no GSM-7 form.
fn gsm_units(c: char) -> Option<usize> {
    if c.is_ascii_alphanumeric() || c == ' ' {
        Some(1)
    } else if GSM_EXTENSION.contains(c) {
        Some(2)
    } else if GSM_BASIC.contains(c) {
        Some(1)
    } else {
        None
    }
}

/// Packs character costs into parts of `multi` units when the total is
/// above `single`; a character never straddles two parts.
fn pack(costs: impl Iterator<Item = usize>, single: usize, multi: usize) -> (usize, u32) {
    let costs: Vec<usize> = costs.collect();
    let total: usize = costs.iter().sum();
    if total <= single {
        return (total, 1);
    }
    let mut segments = 1u32;
    let mut used = 0usize;
    for cost in costs {
        if used + cost > multi {
            segments += 1;
            used = 0;
        }
        used += cost;
    }
    (total, segments)
}

/// The encoding, length and number of parts of `text` as an SMS.
pub fn measure(text: &str) -> SmsInfo {
    if text.chars().all(|c| gsm_units(c).is_some()) {
        let (units, segments) = pack(text.chars().filter_map(gsm_units), 160, 153);
        SmsInfo {
            encoding: SmsEncoding::Gsm7,
            units,
            segments,
        }
    } else {
        let (units, segments) = pack(text.chars().map(char::len_utf16), 70, 67);
        SmsInfo {
            encoding: SmsEncoding::Ucs2,
            units,
            segments,
        }
    }
}

/// The base letter of a precomposed Vietnamese letter, if it is one.
fn vietnamese_base(c: char) -> Option<char> {
    Some(match c {
        'à' | 'á' | 'ả' | 'ã' | 'ạ' | 'ă' | 'ằ' | 'ắ' | 'ẳ' | 'ẵ' | 'ặ' | 'â' | 'ầ' | 'ấ' | 'ẩ'
        | 'ẫ' | 'ậ' => 'a',
        'À' | 'Á' | 'Ả' | 'Ã' | 'Ạ' | 'Ă' | 'Ằ' | 'Ắ' | 'Ẳ' | 'Ẵ' | 'Ặ' | 'Â' | 'Ầ' | 'Ấ' | 'Ẩ'
        | 'Ẫ' | 'Ậ' => 'A',
        'è' | 'é' | 'ẻ' | 'ẽ' | 'ẹ' | 'ê' | 'ề' | 'ế' | 'ể' | 'ễ' | 'ệ' => 'e',
        'È' | 'É' | 'Ẻ' | 'Ẽ' | 'Ẹ' | 'Ê' | 'Ề' | 'Ế' | 'Ể' | 'Ễ' | 'Ệ' => 'E',
        'ì' | 'í' | 'ỉ' | 'ĩ' | 'ị' => 'i',
        'Ì' | 'Í' | 'Ỉ' | 'Ĩ' | 'Ị' => 'I',
        'ò' | 'ó' | 'ỏ' | 'õ' | 'ọ' | 'ô' | 'ồ' | 'ố' | 'ổ' | 'ỗ' | 'ộ' | 'ơ' | 'ờ' | 'ớ' | 'ở'
        | 'ỡ' | 'ợ' => 'o',
        'Ò' | 'Ó' | 'Ỏ' | 'Õ' | 'Ọ' | 'Ô' | 'Ồ' | 'Ố' | 'Ổ' | 'Ỗ' | 'Ộ' | 'Ơ' | 'Ờ' | 'Ớ' | 'Ở'
        | 'Ỡ' | 'Ợ' => 'O',
        'ù' | 'ú' | 'ủ' | 'ũ' | 'ụ' | 'ư' | 'ừ' | 'ứ' | 'ử' | 'ữ' | 'ự' => 'u',
        'Ù' | 'Ú' | 'Ủ' | 'Ũ' | 'Ụ' | 'Ư' | 'Ừ' | 'Ứ' | 'Ử' | 'Ữ' | 'Ự' => 'U',
        'ỳ' | 'ý' | 'ỷ' | 'ỹ' | 'ỵ' => 'y',
        'Ỳ' | 'Ý' | 'Ỷ' | 'Ỹ' | 'Ỵ' => 'Y',
        'đ' => 'd',
        'Đ' => 'D',
        _ => return None,
    })
}

/// Vietnamese "không dấu": tone and vowel marks removed (precomposed or
/// combining), `đ`→`d`, `Đ`→`D`. Typographic quotes, dashes, the ellipsis
/// and non-breaking spaces become their ASCII forms too, since any of them
/// would force UCS-2 on their own. Everything else is kept, so a text with
/// other scripts or emoji still measures as UCS-2.
pub fn without_diacritics(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if let Some(base) = vietnamese_base(c) {
            out.push(base);
            continue;
        }
        match c {
            // Combining diacritical marks (decomposed input).
            '\u{0300}'..='\u{036f}' => {}
            '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{2032}' | '`' => out.push('\''),
            '\u{201c}' | '\u{201d}' | '\u{201e}' | '«' | '»' => out.push('"'),
            '\u{2010}'..='\u{2015}' | '\u{2212}' => out.push('-'),
            '\u{2026}' => out.push_str("..."),
            '\u{00a0}' | '\u{2007}' | '\u{2009}' | '\u{202f}' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(encoding: SmsEncoding, units: usize, segments: u32) -> SmsInfo {
        SmsInfo {
            encoding,
            units,
            segments,
        }
    }

    #[test]
    fn plain_ascii_is_gsm7() {
        assert_eq!(measure(""), info(SmsEncoding::Gsm7, 0, 1));
        assert_eq!(measure("Hello, world!"), info(SmsEncoding::Gsm7, 13, 1));
        assert_eq!(measure("@£$¥_§¿à"), info(SmsEncoding::Gsm7, 8, 1));
    }

    #[test]
    fn gsm7_boundaries() {
        assert_eq!(measure(&"a".repeat(160)), info(SmsEncoding::Gsm7, 160, 1));
        assert_eq!(measure(&"a".repeat(161)), info(SmsEncoding::Gsm7, 161, 2));
        assert_eq!(measure(&"a".repeat(306)), info(SmsEncoding::Gsm7, 306, 2));
        assert_eq!(measure(&"a".repeat(307)), info(SmsEncoding::Gsm7, 307, 3));
    }

    #[test]
    fn extension_characters_count_two() {
        assert_eq!(measure("€"), info(SmsEncoding::Gsm7, 2, 1));
        assert_eq!(measure("^{}\\[~]|\x0c"), info(SmsEncoding::Gsm7, 18, 1));
        // 159 + 2 = 161: over a single message.
        let s = format!("{}€", "a".repeat(159));
        assert_eq!(measure(&s), info(SmsEncoding::Gsm7, 161, 2));
        // 158 + 2 = 160 still fits one.
        let s = format!("{}€", "a".repeat(158));
        assert_eq!(measure(&s), info(SmsEncoding::Gsm7, 160, 1));
    }

    #[test]
    fn extension_character_is_not_split_across_parts() {
        // 152 units, then a 2-unit '€' that cannot take units 153-154 of
        // the first part: it opens the second, and 306 units need three
        // parts where 306 single units need two.
        let s = format!("{}€{}", "a".repeat(152), "b".repeat(152));
        let m = measure(&s);
        assert_eq!(m.units, 306);
        assert_eq!(m.segments, 3);
        // Without the boundary effect the same units fit two parts.
        let s = format!("{}€{}", "a".repeat(151), "b".repeat(153));
        assert_eq!(measure(&s), info(SmsEncoding::Gsm7, 306, 2));
    }

    #[test]
    fn ucs2_boundaries() {
        assert_eq!(measure(&"ế".repeat(70)), info(SmsEncoding::Ucs2, 70, 1));
        assert_eq!(measure(&"ế".repeat(71)), info(SmsEncoding::Ucs2, 71, 2));
        assert_eq!(measure(&"ế".repeat(134)), info(SmsEncoding::Ucs2, 134, 2));
        assert_eq!(measure(&"ế".repeat(135)), info(SmsEncoding::Ucs2, 135, 3));
        // One non-GSM character turns the whole text UCS-2.
        let s = format!("{}ư", "a".repeat(69));
        assert_eq!(measure(&s), info(SmsEncoding::Ucs2, 70, 1));
        let s = format!("{}ư", "a".repeat(70));
        assert_eq!(measure(&s), info(SmsEncoding::Ucs2, 71, 2));
    }

    #[test]
    fn surrogate_pairs_count_two_and_stay_whole() {
        assert_eq!(measure("🛡"), info(SmsEncoding::Ucs2, 2, 1));
        let s = format!("{}🛡{}", "ư".repeat(66), "ư".repeat(66));
        let m = measure(&s);
        assert_eq!(m.units, 134);
        assert_eq!(m.segments, 3);
    }

    #[test]
    fn backtick_is_not_gsm() {
        assert_eq!(measure("`").encoding, SmsEncoding::Ucs2);
    }

    #[test]
    fn vietnamese_sentences() {
        let vi = "Thiết bị trong mạng của quý khách có dấu hiệu nhiễm mã độc Mirai. \
                  Vui lòng đổi mật khẩu quản trị của bộ định tuyến.";
        let m = measure(vi);
        assert_eq!(m.encoding, SmsEncoding::Ucs2);
        assert_eq!(m.units, vi.chars().count());
        assert_eq!(m.segments, 2);

        let plain = without_diacritics(vi);
        assert_eq!(
            plain,
            "Thiet bi trong mang cua quy khach co dau hieu nhiem ma doc Mirai. \
             Vui long doi mat khau quan tri cua bo dinh tuyen."
        );
        let m = measure(&plain);
        assert_eq!(m.encoding, SmsEncoding::Gsm7);
        assert_eq!(m.segments, 1);
    }

    #[test]
    fn every_vietnamese_letter_folds() {
        let lower = "aàáảãạăằắẳẵặâầấẩẫậeèéẻẽẹêềếểễệiìíỉĩịoòóỏõọôồốổỗộơờớởỡợuùúủũụưừứửữựyỳýỷỹỵđ";
        let folded = without_diacritics(lower);
        assert!(folded.chars().all(|c| "aeiouyd".contains(c)), "{folded}");
        let upper = lower.to_uppercase();
        let folded = without_diacritics(&upper);
        assert!(folded.chars().all(|c| "AEIOUYD".contains(c)), "{folded}");
        assert_eq!(without_diacritics("Đà Nẵng, Hà Nội"), "Da Nang, Ha Noi");
        assert_eq!(without_diacritics("ĐƯỜNG ĐIỆN THOẠI"), "DUONG DIEN THOAI");
    }

    #[test]
    fn decomposed_marks_are_removed() {
        // "Việt" with e + circumflex (U+0302) + dot below (U+0323).
        assert_eq!(without_diacritics("Vie\u{0302}\u{0323}t"), "Viet");
        // "mã" with a + combining tilde.
        assert_eq!(without_diacritics("ma\u{0303}"), "ma");
    }

    #[test]
    fn typography_becomes_ascii() {
        assert_eq!(
            without_diacritics("“Khiên” – ‘an toàn’… 24\u{a0}giờ"),
            "\"Khien\" - 'an toan'... 24 gio"
        );
        assert_eq!(
            measure(&without_diacritics("“Khiên” – ‘an toàn’…")).encoding,
            SmsEncoding::Gsm7
        );
    }

    #[test]
    fn other_scripts_are_kept() {
        assert_eq!(without_diacritics("Привет 🛡"), "Привет 🛡");
    }
}
