//! Just enough of the DNS wire format (RFC 1035 §4) to read the question of
//! a message: names with compression pointers, defended against loops,
//! out-of-range pointers, long names and reserved label types.
//!
//! Names come out in presentation form with a trailing dot
//! (`www.Example.com.`, the root as `.`), case untouched. Label bytes are
//! copied as they are, except that a `.` or `\` inside a label is escaped as
//! `\.` / `\\`, so a label containing a dot can never be mistaken for two
//! labels by the matcher. Other bytes, printable or not, stay raw: names are
//! bytes, not text.

use crate::DecodeError;

/// Longest name in wire form (RFC 1035 §2.3.4).
pub const MAX_NAME_WIRE: usize = 255;
/// Most compression pointers followed while reading one name. Real
/// messages chain two or three; anything longer is an attack or a loop.
pub const MAX_POINTER_HOPS: usize = 32;
/// Length of the fixed DNS header.
pub const HEADER_LEN: usize = 12;

/// Reads the name at `offset` in `message`, appending its presentation form
/// to `out`. Returns the offset just after the name where it started (after
/// the first pointer, if the name was compressed).
pub fn read_name(message: &[u8], offset: usize, out: &mut Vec<u8>) -> Result<usize, DecodeError> {
    let start_len = out.len();
    let mut pos = offset;
    let mut end_of_name: Option<usize> = None;
    let mut hops = 0usize;
    // Wire length so far, counting each label's length byte and the root.
    let mut wire_len = 1usize;
    loop {
        let Some(&len) = message.get(pos) else {
            return Err(DecodeError::DnsTruncated {
                what: "name label length",
                offset: pos,
            });
        };
        match len & 0xC0 {
            0x00 => {
                if len == 0 {
                    if out.len() == start_len {
                        out.push(b'.');
                    }
                    return Ok(end_of_name.unwrap_or(pos + 1));
                }
                let len = usize::from(len);
                wire_len += len + 1;
                if wire_len > MAX_NAME_WIRE {
                    return Err(DecodeError::DnsNameTooLong { offset });
                }
                let Some(label) = message.get(pos + 1..pos + 1 + len) else {
                    return Err(DecodeError::DnsTruncated {
                        what: "name label",
                        offset: pos + 1,
                    });
                };
                for &b in label {
                    if b == b'.' || b == b'\\' {
                        out.push(b'\\');
                    }
                    out.push(b);
                }
                out.push(b'.');
                pos += 1 + len;
            }
            0xC0 => {
                let Some(&low) = message.get(pos + 1) else {
                    return Err(DecodeError::DnsTruncated {
                        what: "compression pointer",
                        offset: pos,
                    });
                };
                let target = (usize::from(len & 0x3F) << 8) | usize::from(low);
                if target >= message.len() {
                    return Err(DecodeError::DnsNameBadPointer {
                        offset: pos,
                        target,
                    });
                }
                hops += 1;
                if hops > MAX_POINTER_HOPS || target == pos {
                    return Err(DecodeError::DnsNamePointerLoop { offset: pos });
                }
                if end_of_name.is_none() {
                    end_of_name = Some(pos + 2);
                }
                pos = target;
            }
            _ => {
                return Err(DecodeError::DnsNameBadLabel {
                    offset: pos,
                    byte: len,
                });
            }
        }
    }
}

/// Reads the first question of a DNS message: its name (presentation form,
/// written to `out` after clearing it) and its QTYPE. `Ok(None)` when the
/// message has no question (QDCOUNT 0).
pub fn question_name(message: &[u8], out: &mut Vec<u8>) -> Result<Option<u16>, DecodeError> {
    out.clear();
    if message.len() < HEADER_LEN {
        return Err(DecodeError::DnsTruncated {
            what: "header",
            offset: message.len(),
        });
    }
    let qdcount = u16::from_be_bytes([message[4], message[5]]);
    if qdcount == 0 {
        return Ok(None);
    }
    let after = read_name(message, HEADER_LEN, out)?;
    let Some(qtype) = message.get(after..after + 2) else {
        out.clear();
        return Err(DecodeError::DnsTruncated {
            what: "question type",
            offset: after,
        });
    };
    Ok(Some(u16::from_be_bytes([qtype[0], qtype[1]])))
}

/// Appends the wire form of a presentation-form name (`www.example.com.`
/// or without the trailing dot; `\.`, `\\` and `\DDD` escapes understood)
/// to `out`. The inverse of [`read_name`] for uncompressed names.
pub fn encode_name(name: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let start = out.len();
    if name == b"." || name.is_empty() {
        out.push(0);
        return Ok(());
    }
    let mut label_at = out.len();
    out.push(0);
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        let byte = match b {
            b'\\' => {
                let esc = name.get(i + 1..).unwrap_or_default();
                match esc {
                    [d0, d1, d2, ..]
                        if d0.is_ascii_digit() && d1.is_ascii_digit() && d2.is_ascii_digit() =>
                    {
                        let v = u32::from(d0 - b'0') * 100
                            + u32::from(d1 - b'0') * 10
                            + u32::from(d2 - b'0');
                        let Ok(v) = u8::try_from(v) else {
                            return Err(DecodeError::DnsNameBadLabel { offset: i, byte: b });
                        };
                        i += 4;
                        v
                    }
                    [c, ..] => {
                        i += 2;
                        *c
                    }
                    [] => return Err(DecodeError::DnsNameBadLabel { offset: i, byte: b }),
                }
            }
            b'.' => {
                let len = out.len() - label_at - 1;
                if len == 0 {
                    out.truncate(start);
                    return Err(DecodeError::DnsNameBadLabel { offset: i, byte: 0 });
                }
                out[label_at] = len as u8; // at most 63, checked on push
                i += 1;
                if i == name.len() {
                    out.push(0);
                    return finish(out, start);
                }
                label_at = out.len();
                out.push(0);
                continue;
            }
            _ => {
                i += 1;
                b
            }
        };
        if out.len() - label_at > 63 {
            out.truncate(start);
            return Err(DecodeError::DnsNameBadLabel {
                offset: i,
                byte: 64,
            });
        }
        out.push(byte);
    }
    let len = out.len() - label_at - 1;
    if len == 0 {
        out.truncate(start);
        return Err(DecodeError::DnsNameBadLabel { offset: i, byte: 0 });
    }
    out[label_at] = len as u8;
    out.push(0);
    finish(out, start)
}

fn finish(out: &mut Vec<u8>, start: usize) -> Result<(), DecodeError> {
    if out.len() - start > MAX_NAME_WIRE {
        out.truncate(start);
        return Err(DecodeError::DnsNameTooLong { offset: 0 });
    }
    Ok(())
}

/// A minimal query message (id, RD set, one question of class IN) for tests
/// and generators.
pub fn encode_query(id: u16, qname: &[u8], qtype: u16) -> Result<Vec<u8>, DecodeError> {
    let mut m = Vec::with_capacity(HEADER_LEN + qname.len() + 6);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(qname, &mut m)?;
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    Ok(m)
}

/// The QTYPE number of a mnemonic as logs print it (`A`, `AAAA`,
/// `TYPE65534`); `None` for unknown mnemonics.
pub fn qtype_from_name(s: &[u8]) -> Option<u16> {
    let v = match s {
        b"A" => 1,
        b"NS" => 2,
        b"CNAME" => 5,
        b"SOA" => 6,
        b"NULL" => 10,
        b"PTR" => 12,
        b"HINFO" => 13,
        b"MX" => 15,
        b"TXT" => 16,
        b"AAAA" => 28,
        b"LOC" => 29,
        b"SRV" => 33,
        b"NAPTR" => 35,
        b"DS" => 43,
        b"SSHFP" => 44,
        b"RRSIG" => 46,
        b"NSEC" => 47,
        b"DNSKEY" => 48,
        b"NSEC3" => 50,
        b"TLSA" => 52,
        b"SVCB" => 64,
        b"HTTPS" => 65,
        b"SPF" => 99,
        b"AXFR" => 252,
        b"ANY" | b"*" => 255,
        b"CAA" => 257,
        _ => {
            let num = s
                .strip_prefix(b"TYPE")
                .or_else(|| s.strip_prefix(b"type="))?;
            if num.is_empty() || num.len() > 5 || !num.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let v = num.iter().fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'));
            return u16::try_from(v).ok();
        }
    };
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(qdcount: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00];
        m.extend_from_slice(&qdcount.to_be_bytes());
        m.extend_from_slice(&[0; 6]);
        m
    }

    #[test]
    fn reads_a_plain_question() {
        let m = encode_query(7, b"www.Example.com", 28).unwrap();
        let mut out = Vec::new();
        assert_eq!(question_name(&m, &mut out), Ok(Some(28)));
        assert_eq!(out, b"www.Example.com.");
    }

    #[test]
    fn root_is_a_dot() {
        let mut m = header(1);
        m.extend_from_slice(&[0, 0, 2, 0, 1]);
        let mut out = Vec::new();
        assert_eq!(question_name(&m, &mut out), Ok(Some(2)));
        assert_eq!(out, b".");
    }

    #[test]
    fn no_question_is_none() {
        let mut out = Vec::new();
        assert_eq!(question_name(&header(0), &mut out), Ok(None));
    }

    #[test]
    fn follows_a_backward_pointer() {
        // "example.com" at 12 (as a first question), then "www" + pointer to 12.
        let mut m = header(2);
        m.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        let second = m.len();
        m.extend_from_slice(b"\x03www\xC0\x0C\x00\x01\x00\x01");
        let mut out = Vec::new();
        let end = read_name(&m, second, &mut out).unwrap();
        assert_eq!(out, b"www.example.com.");
        assert_eq!(end, second + 6);
    }

    #[test]
    fn rejects_pointer_loop() {
        let mut m = header(1);
        m.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
        let mut out = Vec::new();
        assert_eq!(
            question_name(&m, &mut out).unwrap_err().kind(),
            "dns_name_pointer_loop"
        );
        // Two pointers pointing at each other, with a label in between.
        let mut m = header(1);
        m.extend_from_slice(&[1, b'a', 0xC0, 0x0C]);
        assert_eq!(
            question_name(&m, &mut out).unwrap_err().kind(),
            "dns_name_pointer_loop"
        );
    }

    #[test]
    fn rejects_pointer_outside_message() {
        let mut m = header(1);
        m.extend_from_slice(&[0xC1, 0x00]);
        let mut out = Vec::new();
        assert_eq!(
            question_name(&m, &mut out).unwrap_err().kind(),
            "dns_name_bad_pointer"
        );
    }

    #[test]
    fn rejects_reserved_label_types() {
        let mut m = header(1);
        m.extend_from_slice(&[0x40, b'a', 0]);
        let mut out = Vec::new();
        assert_eq!(
            question_name(&m, &mut out).unwrap_err().kind(),
            "dns_name_bad_label"
        );
    }

    #[test]
    fn rejects_names_over_255_octets() {
        let mut m = header(1);
        for _ in 0..5 {
            m.push(63);
            m.extend_from_slice(&[b'x'; 63]);
        }
        m.push(0);
        let mut out = Vec::new();
        assert_eq!(
            question_name(&m, &mut out).unwrap_err().kind(),
            "dns_name_too_long"
        );
    }

    #[test]
    fn escapes_dots_inside_labels_and_round_trips() {
        let mut m = header(1);
        m.extend_from_slice(b"\x03a.b\x03c\\d\x00\x00\x01\x00\x01");
        let mut out = Vec::new();
        question_name(&m, &mut out).unwrap();
        assert_eq!(out, b"a\\.b.c\\\\d.");
        let again = encode_query(0x1234, &out, 1).unwrap();
        assert_eq!(&again[12..], &m[12..]);
    }

    #[test]
    fn truncated_messages_are_errors() {
        let m = encode_query(1, b"evil.example", 1).unwrap();
        let mut out = Vec::new();
        for cut in 0..m.len() - 2 {
            let r = question_name(&m[..cut], &mut out);
            assert_eq!(r.map_err(|e| e.kind()), Err("dns_truncated"), "cut {cut}");
        }
    }

    #[test]
    fn encoder_refuses_bad_names() {
        let mut out = Vec::new();
        assert!(encode_name(b"a..b", &mut out).is_err());
        assert!(encode_name(&[b'x'; 64], &mut out).is_err());
        assert!(out.is_empty());
        assert!(encode_name(b"\\256x", &mut out).is_err());
    }

    #[test]
    fn qtype_names() {
        assert_eq!(qtype_from_name(b"AAAA"), Some(28));
        assert_eq!(qtype_from_name(b"TYPE65534"), Some(65534));
        assert_eq!(qtype_from_name(b"type=65"), Some(65));
        assert_eq!(qtype_from_name(b"TYPE99999"), None);
        assert_eq!(qtype_from_name(b"BOGUS"), None);
    }
}
