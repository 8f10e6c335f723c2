//! DNS wire names: compression, loops, limits.

use khien_telemetry::dns_wire::{self, question_name, read_name};

fn message(question: &[u8]) -> Vec<u8> {
    let mut m = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(question);
    m
}

#[test]
fn rejects_pointer_loop_between_two_names() {
    // A name at 12 points to 14, which points back to 12.
    let m = message(&[0xC0, 0x0E, 0xC0, 0x0C, 0, 1, 0, 1]);
    let mut out = Vec::new();
    assert_eq!(
        question_name(&m, &mut out).unwrap_err().kind(),
        "dns_name_pointer_loop"
    );
}

#[test]
fn rejects_forward_pointer_chains_beyond_the_hop_limit() {
    // 40 pointers each pointing to the next, then a root.
    let mut q = Vec::new();
    for i in 0..40u16 {
        let target = 12 + 2 * (i + 1);
        q.extend_from_slice(&(0xC000 | target).to_be_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let m = message(&q);
    let mut out = Vec::new();
    assert_eq!(
        question_name(&m, &mut out).unwrap_err().kind(),
        "dns_name_pointer_loop"
    );
    // A short forward chain is fine; the name ends after its first pointer.
    let m = message(&[0xC0, 0x0E, 0xC0, 0x10, 3, b'c', b'o', b'm', 0]);
    out.clear();
    assert_eq!(read_name(&m, 12, &mut out), Ok(14));
    assert_eq!(out, b"com.");
}

#[test]
fn valid_compression_pointers_decode_right() {
    // Answer-style layout: question "mail.example.org", then a name
    // "smtp" + pointer into the middle of the question ("example.org").
    let mut m = message(b"\x04mail\x07example\x03org\x00\x00\x0f\x00\x01");
    let at = m.len();
    m.extend_from_slice(b"\x04smtp\xC0\x11");
    let mut out = Vec::new();
    assert_eq!(question_name(&m, &mut out), Ok(Some(15)));
    assert_eq!(out, b"mail.example.org.");
    out.clear();
    assert_eq!(read_name(&m, at, &mut out), Ok(at + 7));
    assert_eq!(out, b"smtp.example.org.");
    // Pointer to a pointer.
    m.extend_from_slice(b"\x03www\xC0\x22");
    out.clear();
    read_name(&m, at + 7, &mut out).unwrap();
    assert_eq!(out, b"www.smtp.example.org.");
}

#[test]
fn names_keep_case_and_raw_bytes() {
    let m = dns_wire::encode_query(1, b"W\\255w.Example.COM.", 1).unwrap();
    let mut out = Vec::new();
    question_name(&m, &mut out).unwrap();
    assert_eq!(out, b"W\xffw.Example.COM.");
}
