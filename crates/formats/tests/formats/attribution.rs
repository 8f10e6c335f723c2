//! Attribution files: FreeRADIUS detail, RADIUS CSV, dhcpd and Kea leases,
//! CGNAT port blocks — committed samples that look like what the daemons
//! write, cut and dirty variants, and arbitrary bytes into every reader.

use std::path::Path;

use khien_formats::Error;
use khien_formats::attribution::{
    AddressAction, AddressEvent, AttributionEvent, AttributionFormat, AttributionOptions,
    AttributionSummary, read_attribution,
};
use khien_formats::read::MAX_LINE;
use khien_model::Timestamp;
use proptest::prelude::*;

use AddressAction::{Interim, Lease, Start, Stop};
use AttributionFormat::{CgnatCsv, CgnatJuniper, DhcpdLeases, KeaCsv, RadiusCsv, RadiusDetail};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/attribution")
            .join(name),
    )
    .expect("fixture")
}

fn options() -> AttributionOptions {
    AttributionOptions::new(2026)
}

struct Run {
    events: Vec<AttributionEvent>,
    result: Result<AttributionSummary, Error>,
}

impl Run {
    fn addresses(&self) -> Vec<AddressEvent> {
        self.events
            .iter()
            .filter_map(|e| match e {
                AttributionEvent::Address(a) => Some(a.clone()),
                _ => None,
            })
            .collect()
    }

    fn skips(&self) -> Vec<(u64, &str)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                AttributionEvent::Skipped { line, reason } => Some((*line, *reason)),
                _ => None,
            })
            .collect()
    }

    fn rejections(&self) -> Vec<(u64, &str)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                AttributionEvent::Rejected { line, reason } => Some((*line, reason.as_str())),
                _ => None,
            })
            .collect()
    }

    fn summary(&self) -> AttributionSummary {
        match &self.result {
            Ok(s) => *s,
            Err(e) => panic!("reader failed: {e}"),
        }
    }
}

fn run(format: AttributionFormat, data: &[u8]) -> Run {
    let mut events = Vec::new();
    let mut sink = |e: AttributionEvent| -> Result<(), String> {
        events.push(e);
        Ok(())
    };
    let result = read_attribution(format, data, &options(), &mut sink);
    Run { events, result }
}

fn t(s: &str) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&chrono::Utc)
}

/// An event with only the fields every event has.
fn ev(line: u64, action: AddressAction, at: &str, network: &str) -> AddressEvent {
    AddressEvent {
        line,
        action,
        at: t(at),
        start: None,
        end: None,
        network: network.parse().expect("network"),
        ports: None,
        identity: None,
        inside: None,
        session: None,
        calling_station: None,
    }
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

fn lease(line: u64, start: &str, end: Option<&str>, network: &str, id: &str) -> AddressEvent {
    AddressEvent {
        start: Some(t(start)),
        end: end.map(t),
        identity: some(id),
        ..ev(line, Lease, start, network)
    }
}

fn block(
    line: u64,
    action: AddressAction,
    at: &str,
    public: &str,
    ports: (u16, u16),
    inside: &str,
) -> AddressEvent {
    AddressEvent {
        ports: Some(ports),
        inside: Some(inside.parse().expect("inside")),
        session: Some(format!("{public}:{}-{}", ports.0, ports.1)),
        ..ev(line, action, at, &format!("{public}/32"))
    }
}

#[test]
fn freeradius_detail_two_subscribers_dual_stack() {
    let r = run(RadiusDetail, &fixture("radius.detail"));
    let alice = |line, action, at: &str, start: Option<&str>, net: &str| AddressEvent {
        start: start.map(t),
        identity: some("alice@fpt.vn"),
        session: some("10.0.0.1/0A000001"),
        calling_station: some("00-11-22-33-44-55"),
        ..ev(line, action, at, net)
    };
    let bob = |line, action, at: &str, start: Option<&str>| AddressEvent {
        start: start.map(t),
        identity: some("bob@fpt.vn"),
        session: some("10.0.0.1/0A000002"),
        calling_station: some("HN-OLT01 xpon 0/1/2:15"),
        ..ev(line, action, at, "100.64.1.3/32")
    };
    let (v4, v6) = ("100.64.1.2/32", "2001:db8:100::/56");
    assert_eq!(
        r.addresses(),
        vec![
            alice(1, Start, "2026-11-24T03:00:00Z", None, v4),
            alice(1, Start, "2026-11-24T03:00:00Z", None, v6),
            // Event-Timestamp as unix seconds.
            bob(16, Start, "2026-11-24T03:00:05Z", None),
            // Interim: Acct-Session-Time gives the start.
            alice(
                34,
                Interim,
                "2026-11-24T03:05:00Z",
                Some("2026-11-24T03:00:00Z"),
                v4
            ),
            alice(
                34,
                Interim,
                "2026-11-24T03:05:00Z",
                Some("2026-11-24T03:00:00Z"),
                v6
            ),
            // No Event-Timestamp: Timestamp (10:30:02) less Acct-Delay-Time 2.
            bob(
                56,
                Stop,
                "2026-11-24T03:30:00Z",
                Some("2026-11-24T03:00:05Z")
            ),
            alice(
                68,
                Stop,
                "2026-11-24T05:00:00Z",
                Some("2026-11-24T03:00:00Z"),
                v4
            ),
            alice(
                68,
                Stop,
                "2026-11-24T05:00:00Z",
                Some("2026-11-24T03:00:00Z"),
                v6
            ),
        ]
    );
    assert_eq!(r.skips(), vec![(26, "accounting on/off")]);
    assert_eq!(
        r.rejections(),
        vec![(
            48,
            "record at line 48 has no Framed-IP-Address or Framed-IPv6-Prefix"
        )]
    );
    assert_eq!(
        r.summary(),
        AttributionSummary {
            events: 8,
            skipped: 1,
            rejected: 1
        }
    );
}

#[test]
fn detail_time_fallbacks_and_zones() {
    let data = "Tue Nov 24 10:00:00 2026\n\tAcct-Status-Type = Start\n\tFramed-IP-Address = 100.64.1.2\n\tAcct-Delay-Time = 5\n\n\
                Tue Nov 24 10:00:00 2026\n\tAcct-Status-Type = Alive\n\tFramed-IPv6-Prefix = 2001:db8:1:2::1/64\n\tEvent-Timestamp = \"Nov 24 2026 03:00:09 UTC\"\n\n\
                Tue Nov 24 10:00:00 2026\n\tAcct-Status-Type = 2\n\tFramed-IPv6-Address = 2001:db8::9\n\tAcct-Session-Id = \"s\"\n\tNAS-IPv6-Address = 2001:db8::1\n\tEvent-Timestamp = \"Nov 24 2026 10:00:10 SGT\"\n";
    let r = run(RadiusDetail, data.as_bytes());
    assert_eq!(
        r.addresses(),
        vec![
            // The date line (local +07) less the delay.
            ev(1, Start, "2026-11-24T02:59:55Z", "100.64.1.2/32"),
            // Alive is an interim update; the prefix is put in network form.
            ev(6, Interim, "2026-11-24T03:00:09Z", "2001:db8:1:2::/64"),
            // An unknown abbreviation is the server's own zone.
            AddressEvent {
                session: some("2001:db8::1/s"),
                ..ev(11, Stop, "2026-11-24T03:00:10Z", "2001:db8::9/128")
            },
        ]
    );
    assert!(r.rejections().is_empty(), "{:?}", r.rejections());
}

#[test]
fn detail_bad_records_are_rejected_by_name_and_line() {
    let data = "\tUser-Name = \"orphan\"\n\tFramed-IP-Address = 100.64.9.9\n\n\
                Tue Nov 24 10:00:00 2026\n\tUser-Name = \"no-status\"\n\tFramed-IP-Address = 100.64.1.2\n\n\
                Tue Nov 24 10:00:00 2026\n\tAcct-Status-Type = Start\n\tFramed-IP-Address = 100.64.1.256\n\n\
                Tue Nov 24 10:00:00 2026\n\tAcct-Status-Type = Start\n\tFramed-IP-Address = 0.0.0.0\n\n\
                Tue Nov 24 10:00:00 2026\n\tAcct-Status-Type = Stop\n\tFramed-IP-Address = 100.64.1.2\n\tEvent-Timestamp = \"soon\"\n\n\
                Someday soon\n\tAcct-Status-Type = Start\n\tFramed-IP-Address = 100.64.1.2\n\n\
                Tue Nov 24 10:00:00 2026\n\tAcct-Status-Type = Begin\n\tFramed-IP-Address = 100.64.1.2\n\n\
                Tue Nov 24 10:00:00 2026\n\tAcct-Status-Type = Start\n\tUser-Name = \"unterminated\n\tFramed-IP-Address = 100.64.1.2\n\n\
                Tue Nov 24 10:00:00 1980\n\tAcct-Status-Type = Start\n\tFramed-IP-Address = 100.64.1.2\n\n\
                Tue Nov 24 10:00:00 2026\n\tAcct-Status-Type = Tunnel-Start\n\tFramed-IP-Address = 100.64.1.2\n";
    let r = run(RadiusDetail, data.as_bytes());
    assert_eq!(r.addresses(), vec![]);
    assert_eq!(
        r.rejections(),
        vec![
            (1, "attribute lines without a record date line"),
            (4, "record at line 4 has no Acct-Status-Type"),
            (
                8,
                "record at line 8: Framed-IP-Address on line 10 is not an IPv4 address: \"100.64.1.256\""
            ),
            (
                12,
                "record at line 12 has no assigned address (Framed-IP-Address 0.0.0.0)"
            ),
            (
                16,
                "record at line 16: Event-Timestamp on line 19 is not a time: \"soon\""
            ),
            (21, "record date line \"Someday soon\" is not a date"),
            (
                25,
                "record at line 25: Acct-Status-Type on line 26 is unknown: \"Begin\""
            ),
            (
                29,
                "record at line 29: User-Name on line 31 cannot be read: unterminated quoted value"
            ),
            (34, "time 1980-11-24T03:00:00Z is outside 1990–2100"),
        ]
    );
    assert_eq!(r.skips(), vec![(38, "not a session start, update or stop")]);
}

#[test]
fn detail_cut_record_and_dirty_lines() {
    // A file copied while FreeRADIUS wrote it: the last record's last line
    // has no newline and may hold half a value ("100.64.1.2" of ".23").
    let mut data = b"Tue Nov 24 10:00:00 2026\n\tAcct-Status-Type = Start\n\tUser-Name = \"a\xff\"\n\tFramed-IP-Address = 100.64.1.1\n\n".to_vec();
    data.extend_from_slice(format!("\tReply-Message = \"{}\"\n", "x".repeat(MAX_LINE)).as_bytes());
    data.extend_from_slice(
        b"\nTue Nov 24 10:01:00 2026\n\tAcct-Status-Type = Start\n\tFramed-IP-Address = 100.64.1.2",
    );
    let r = run(RadiusDetail, &data);
    assert_eq!(
        r.addresses(),
        vec![ev(1, Start, "2026-11-24T03:00:00Z", "100.64.1.1/32")]
    );
    assert_eq!(
        r.rejections(),
        vec![
            (3, "line is not UTF-8"),
            (6, "line longer than 65536 bytes"),
            (8, "record at line 8 is cut at the end of the file"),
        ]
    );
    // The same record ended by a newline is complete.
    data.push(b'\n');
    assert_eq!(run(RadiusDetail, &data).addresses().len(), 2);
}

#[test]
fn radius_csv_columns_and_rows() {
    let data = "Timestamp,Acct-Status-Type,User-Name,Framed-IP-Address,Framed-IPv6-Prefix,Calling-Station-Id,Acct-Session-Id,NAS-IP-Address,Acct-Session-Time\n\
                2026-11-24 10:00:00,Start,alice@fpt.vn,100.64.1.2,2001:db8:100::/56,00-11-22-33-44-55,0A000001,10.0.0.1,\n\
                2026-11-24T05:00:00Z,Stop,\"alice@fpt.vn\",100.64.1.2,,\"00-11-22-33-44-55\",0A000001,10.0.0.1,7200\n\
                1795489260,Accounting-On,,,,,,10.0.0.2,\n\
                yesterday,Start,bob,100.64.1.3,,,,,\n\
                2026-11-24 10:00:00,Start,bob,100.64.1.999,,,,,\n\
                2026-11-24 10:00:00,Start,bob,,,,,,\n\
                2026-11-24 10:00:00,,bob,100.64.1.3,,,,,\n\
                2026-11-24 10:00:00,Stop,bob,100.64.1.3,,,,,forever\n\
                2026-11-24 10:00:00,Start,bob\n";
    let r = run(RadiusCsv, data.as_bytes());
    let alice = |action, at: &str, start: Option<&str>, net: &str| AddressEvent {
        start: start.map(t),
        identity: some("alice@fpt.vn"),
        session: some("10.0.0.1/0A000001"),
        calling_station: some("00-11-22-33-44-55"),
        ..ev(2, action, at, net)
    };
    assert_eq!(
        r.addresses(),
        vec![
            alice(Start, "2026-11-24T03:00:00Z", None, "100.64.1.2/32"),
            alice(Start, "2026-11-24T03:00:00Z", None, "2001:db8:100::/56"),
            AddressEvent {
                line: 3,
                ..alice(
                    Stop,
                    "2026-11-24T05:00:00Z",
                    Some("2026-11-24T03:00:00Z"),
                    "100.64.1.2/32"
                )
            },
        ]
    );
    assert_eq!(r.skips(), vec![(1, "header"), (4, "accounting on/off")]);
    assert_eq!(
        r.rejections(),
        vec![
            (5, "column Timestamp: \"yesterday\" is not a time"),
            (
                6,
                "column Framed-IP-Address: \"100.64.1.999\" is not an IP address"
            ),
            (7, "no assigned address in the address columns"),
            (8, "column Acct-Status-Type is empty"),
            (
                9,
                "column Acct-Session-Time: \"forever\" is not a number of seconds"
            ),
            (10, "row has 3 fields, the header has 9"),
        ]
    );
}

#[test]
fn radius_csv_short_names_and_missing_columns() {
    let data = "time,status,user,ip,session\n2026-11-24 10:00:00,interim,bob,100.64.1.3,77\n";
    let r = run(RadiusCsv, data.as_bytes());
    assert_eq!(
        r.addresses(),
        vec![AddressEvent {
            identity: some("bob"),
            session: some("77"),
            ..ev(2, Interim, "2026-11-24T03:00:00Z", "100.64.1.3/32")
        }]
    );
    let r = run(RadiusCsv, b"# export\nwhen,user,ip\n");
    match r.result {
        Err(Error::Malformed {
            format,
            location,
            reason,
        }) => {
            assert_eq!(format, "radius-csv");
            assert_eq!(location, khien_formats::Location::Line(2));
            assert_eq!(
                reason,
                "no column time (time, timestamp or event_timestamp); no column status (status or acct_status_type)"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dhcpd_leases_v4() {
    let r = run(DhcpdLeases, &fixture("dhcpd.leases"));
    assert_eq!(
        r.addresses(),
        vec![
            // uid before hardware; `;` and `}` inside the hostname are text.
            lease(
                14,
                "2026-11-24T03:00:00Z",
                Some("2026-11-24T15:00:00Z"),
                "10.10.0.21/32",
                "01:00:1a:2b:3c:4d:5e"
            ),
            // The relay's remote-id before everything else.
            lease(
                26,
                "2026-11-24T03:10:00Z",
                Some("2026-11-24T15:10:00Z"),
                "10.10.0.22/32",
                "FPT-CUST-000123"
            ),
            // db-time-format local, `ends never`, a binary circuit-id, and
            // an `on expiry` block inside the lease.
            lease(
                47,
                "2026-11-24T03:00:00Z",
                None,
                "10.10.0.24/32",
                "00:01:00:04:00:00:00:0f"
            ),
            lease(
                58,
                "2026-11-24T04:00:00Z",
                Some("2026-11-24T16:00:00Z"),
                "10.10.0.25/32",
                "01:00:11:22:33:44:77"
            ),
        ]
    );
    assert_eq!(
        r.skips(),
        vec![
            (1, "comment"),
            (2, "comment"),
            (4, "comment"),
            (5, "not a lease"),
            (7, "not a lease"),
            (9, "not a lease"),
            (38, "lease is free"),
            (70, "lease is free, held for the failover peer"),
        ]
    );
    assert_eq!(
        r.rejections(),
        vec![(
            64,
            "lease at line 64: \"10.10.0.299\" is not an IPv4 address"
        )]
    );
}

#[test]
fn dhcpd6_leases_ia_na_and_ia_pd() {
    let r = run(DhcpdLeases, &fixture("dhcpd6.leases"));
    // The IA's key is the IAID (4 bytes) then the client's DUID.
    let duid = "00:01:00:01:2a:8a:15:07:00:11:22:33:44:55";
    let (start, end) = ("2026-11-24T03:00:00Z", Some("2026-11-24T15:00:00Z"));
    assert_eq!(
        r.addresses(),
        vec![
            lease(11, start, end, "2001:db8:1::105/128", duid),
            lease(21, start, end, "2001:db8:8000:100::/56", duid),
            // `starts` inside the iaaddr wins over the IA's cltt.
            lease(
                32,
                "2026-11-24T04:00:00Z",
                Some("2026-11-24T06:00:00Z"),
                "2001:db8:1::106/128",
                "00:03:00:01:00:11:22:33:44:77"
            ),
        ]
    );
    assert_eq!(
        r.skips(),
        vec![
            (1, "comment"),
            (2, "comment"),
            (4, "comment"),
            (5, "not a lease"),
            (7, "not a lease"),
            (39, "lease is abandoned"),
        ]
    );
    assert!(r.rejections().is_empty(), "{:?}", r.rejections());
}

#[test]
fn dhcpd_file_cut_mid_record_keeps_earlier_leases() {
    let r = run(DhcpdLeases, &fixture("dhcpd-cut.leases"));
    assert_eq!(
        r.addresses(),
        vec![
            lease(
                4,
                "2026-11-24T05:00:00Z",
                Some("2026-11-24T17:00:00Z"),
                "10.10.0.31/32",
                "00:11:22:33:44:31"
            ),
            lease(
                10,
                "2026-11-24T05:01:00Z",
                Some("2026-11-24T17:01:00Z"),
                "10.10.0.32/32",
                "00:11:22:33:44:32"
            ),
        ]
    );
    assert_eq!(r.rejections(), vec![(16, "lease record is not closed")]);
    assert_eq!(
        r.summary(),
        AttributionSummary {
            events: 2,
            skipped: 2,
            rejected: 1
        }
    );
}

#[test]
fn dhcpd_unclosed_lease_followed_by_another() {
    // Two files concatenated, the first cut: the open lease is rejected and
    // the next one read normally.
    let data = "lease 10.0.0.1 {\n  starts 2 2026/11/24 03:00:00;\n  ends 2 2026/11/24 04:0\n\
                lease 10.0.0.2 {\n  starts 2 2026/11/24 03:00:00;\n  ends 2 2026/11/24 04:00:00;\n}\n\
                }\n\
                lease 10.0.0.3 {\n  starts 2 2026/13/24 03:00:00;\n  ends 2 2026/11/24 04:00:00;\n}\n\
                lease 10.0.0.4 {\n  ends 2 2026/11/24 04:00:00;\n}\n\
                lease 10.0.0.5 {\n  starts 2 2026/11/24 05:00:00;\n  ends 2 2026/11/24 04:00:00;\n}\n\
                ia-na \"\\001\\000\\000\\000\\000\\001\" {\n  iaaddr 2001:db8::1 {\n    binding state active;\n    ends never;\n  }\n}\n\
                ia-pd \"\\001\\000\\000\\000\\000\\001\" {\n  iaprefix 2001:db8:1::/48 {\n";
    let r = run(DhcpdLeases, data.as_bytes());
    assert_eq!(
        r.addresses(),
        vec![AddressEvent {
            identity: None,
            ..lease(
                4,
                "2026-11-24T03:00:00Z",
                Some("2026-11-24T04:00:00Z"),
                "10.0.0.2/32",
                ""
            )
        }]
    );
    assert_eq!(
        r.rejections(),
        vec![
            (1, "lease record is not closed"),
            (8, "'}' without an open block"),
            (9, "lease at line 9: starts on line 10 is not a time"),
            (13, "lease at line 13 has no starts"),
            (16, "the interval ends before it starts"),
            (
                21,
                "address at line 21 has no start time (starts, cltt or max-life)"
            ),
            (26, "lease record is not closed"),
        ]
    );
}

#[test]
fn kea_v4_memfile() {
    let r = run(KeaCsv, &fixture("kea-leases4.csv"));
    assert_eq!(
        r.addresses(),
        vec![
            lease(
                2,
                "2026-11-24T03:00:00Z",
                Some("2026-11-24T04:00:00Z"),
                "10.20.0.10/32",
                "00:1a:2b:3c:4d:10"
            ),
            // No hwaddr: the client id, lower case.
            lease(
                3,
                "2026-11-24T03:01:00Z",
                Some("2026-11-24T04:01:00Z"),
                "10.20.0.11/32",
                "ff:00:00:00:01:00:01:2a:8a"
            ),
            // Infinite lifetime: no end; Kea's escaped commas stay in
            // their column.
            lease(
                7,
                "2026-11-24T03:00:00Z",
                None,
                "10.20.0.14/32",
                "00:1a:2b:3c:4d:14"
            ),
        ]
    );
    assert_eq!(
        r.skips(),
        vec![
            (1, "header"),
            (4, "lease declined"),
            (5, "lease expired and reclaimed"),
            (6, "lease deleted"),
        ]
    );
    assert_eq!(
        r.rejections(),
        vec![
            (8, "column expire: \"soon\" is not unix seconds"),
            (9, "row has 10 fields, the header has 12"),
        ]
    );
}

#[test]
fn kea_v6_prefixes_and_cut_last_row() {
    let data = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source,pool_id\n\
                2001:db8:1::105,00:01:00:01:2A:8A:15:07:00:11:22:33:44:55,43200,1795532400,1,27000,0,1,128,0,0,,00:11:22:33:44:55,0,,1,2,0\n\
                2001:db8:8000:100::,00:01:00:01:2a:8a:15:07:00:11:22:33:44:55,43200,1795532400,1,27000,2,1,56,0,0,,,0,,1,0,0\n\
                2001:db8:1::106,00:03:00:01:00:11:22:33:44:77,7200,1795496400,1,3600,0,2,128,0,0,,,3,,1,0,0\n\
                10.0.0.1,00:03:00:01:00:11:22:33:44:77,7200,1795496400,1,3600,0,2,128,0,0,,,0,,1,0,0\n\
                2001:db8:1::107,00:03:00:01:00:11:22:33:44:77,7200,1795496400,1,3600,0,2,128,0,0,,,0,,1,0,0";
    let r = run(KeaCsv, data.as_bytes());
    let duid = "00:01:00:01:2a:8a:15:07:00:11:22:33:44:55";
    let (start, end) = ("2026-11-24T03:00:00Z", Some("2026-11-24T15:00:00Z"));
    assert_eq!(
        r.addresses(),
        vec![
            lease(2, start, end, "2001:db8:1::105/128", duid),
            lease(3, start, end, "2001:db8:8000:100::/56", duid),
        ]
    );
    assert_eq!(r.skips(), vec![(1, "header"), (4, "lease released")]);
    assert_eq!(
        r.rejections(),
        vec![
            (5, "address 10.0.0.1 in a DHCPv6 lease file"),
            (6, "line is cut at the end of the file (no newline)"),
        ]
    );
    match run(KeaCsv, b"address,hwaddr,expire\n").result {
        Err(Error::Malformed { reason, .. }) => {
            assert_eq!(reason, "no column valid_lifetime")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cgnat_csv_port_blocks() {
    let r = run(CgnatCsv, &fixture("cgnat.csv"));
    let alice = |line, action, at| AddressEvent {
        identity: some("alice@fpt.vn"),
        ..block(line, action, at, "203.0.113.5", (2048, 2559), "100.64.1.2")
    };
    assert_eq!(
        r.addresses(),
        vec![
            alice(3, Start, "2026-11-24T03:00:00Z"),
            block(
                4,
                Start,
                "2026-11-24T03:00:05Z",
                "203.0.113.5",
                (2560, 3071),
                "100.64.1.3"
            ),
            AddressEvent {
                identity: some("bob@fpt.vn"),
                ..block(
                    5,
                    Stop,
                    "2026-11-24T03:30:00Z",
                    "203.0.113.5",
                    (2560, 3071),
                    "100.64.1.3"
                )
            },
            alice(6, Stop, "2026-11-24T05:00:00Z"),
        ]
    );
    assert_eq!(r.skips(), vec![(1, "comment"), (2, "header")]);
    assert_eq!(
        r.rejections(),
        vec![
            (7, "port block 4096-3583: first port above last"),
            (8, "time 1970-01-01T17:00:00Z is outside 1990–2100"),
            (9, "no inside address or subscriber"),
            (
                10,
                "column event: \"reserve\" is not alloc, release or interim"
            ),
        ]
    );
    match run(CgnatCsv, b"time,event,public_ip,port_start,port_end\n").result {
        Err(Error::Malformed { reason, .. }) => assert_eq!(
            reason,
            "no column inside_ip or subscriber (one of them is needed)"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn juniper_port_block_syslog() {
    let r = run(CgnatJuniper, &fixture("juniper-pba.log"));
    let (a, b) = ((2048, 2559), (2560, 3071));
    assert_eq!(
        r.addresses(),
        vec![
            // The 0x… stamp is unix seconds.
            block(
                1,
                Start,
                "2026-11-24T03:00:00Z",
                "203.0.113.5",
                a,
                "100.64.1.2"
            ),
            block(
                3,
                Start,
                "2026-11-24T03:00:05Z",
                "203.0.113.5",
                b,
                "100.64.1.3"
            ),
            block(
                4,
                Interim,
                "2026-11-24T03:30:00Z",
                "203.0.113.5",
                a,
                "100.64.1.2"
            ),
            block(
                5,
                Stop,
                "2026-11-24T03:30:00Z",
                "203.0.113.5",
                b,
                "100.64.1.3"
            ),
            // No stamp: the PIC's UTC time.
            block(
                7,
                Start,
                "2026-11-24T03:45:00Z",
                "203.0.113.6",
                (1024, 1535),
                "100.64.1.10"
            ),
            // MS-DPC's ASP_ message, only the syslog header's time
            // (default year, local offset).
            block(
                8,
                Stop,
                "2026-11-24T05:00:00Z",
                "203.0.113.5",
                a,
                "100.64.1.2"
            ),
        ]
    );
    assert_eq!(r.skips(), vec![(2, "not a port-block message")]);
    assert_eq!(
        r.rejections(),
        vec![
            (6, "port block 4096-3583: first port above last"),
            (9, "time 1970-01-01T00:00:01Z is outside 1990–2100"),
            (10, "inside address \"100.64.1.300\" is not an IP address"),
        ]
    );
    // A line cut by the copy is not read as a shorter valid one.
    let mut cut = fixture("juniper-pba.log");
    cut.truncate(cut.len() - 90);
    let r = run(CgnatJuniper, &cut);
    assert_eq!(
        r.rejections().last(),
        Some(&(10, "line is cut at the end of the file (no newline)"))
    );
}

#[test]
fn every_fixture_is_detected() {
    for (name, format) in [
        ("radius.detail", RadiusDetail),
        ("dhcpd.leases", DhcpdLeases),
        ("dhcpd6.leases", DhcpdLeases),
        ("dhcpd-cut.leases", DhcpdLeases),
        ("kea-leases4.csv", KeaCsv),
        ("cgnat.csv", CgnatCsv),
        ("juniper-pba.log", CgnatJuniper),
    ] {
        assert_eq!(
            AttributionFormat::detect(&fixture(name)),
            Some(format),
            "{name}"
        );
    }
}

#[test]
fn sink_can_stop_the_reader() {
    let mut seen = 0;
    let mut sink = |e: AttributionEvent| -> Result<(), String> {
        seen += 1;
        match e {
            AttributionEvent::Rejected { .. } => Err("strict".into()),
            _ => Ok(()),
        }
    };
    let r = read_attribution(
        RadiusDetail,
        &fixture("radius.detail")[..],
        &options(),
        &mut sink,
    );
    match r {
        Err(Error::Stopped { location, reason }) => {
            assert_eq!(location, khien_formats::Location::Line(48));
            assert_eq!(reason, "strict");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(seen, 7);
}

#[test]
fn events_serialize_for_the_store() {
    let r = run(CgnatJuniper, &fixture("juniper-pba.log"));
    let json = serde_json::to_value(&r.events[0]).expect("json");
    assert_eq!(
        json,
        serde_json::json!({
            "kind": "address",
            "line": 1,
            "action": "start",
            "at": "2026-11-24T03:00:00Z",
            "start": null,
            "end": null,
            "network": "203.0.113.5/32",
            "ports": [2048, 2559],
            "identity": null,
            "inside": "100.64.1.2",
            "session": "203.0.113.5:2048-2559",
            "calling_station": null
        })
    );
    let json = serde_json::to_value(&r.events[1]).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"kind": "skipped", "line": 2, "reason": "not a port-block message"})
    );
}

/// Lines as the readers count them: a last line without a newline counts.
fn line_count(data: &[u8]) -> u64 {
    let newlines = data.iter().filter(|b| **b == b'\n').count() as u64;
    newlines + u64::from(data.last().is_some_and(|b| *b != b'\n'))
}

/// Every reader on `data`: no panic, no error but "not this format", every
/// line in range, counts that match, no event a real record cannot be.
fn check_all(data: &[u8]) {
    let lines = line_count(data);
    for format in AttributionFormat::ALL {
        let r = run(format, data);
        match &r.result {
            Ok(s) => {
                let events = r.addresses().len() as u64;
                assert_eq!(
                    (s.events, s.skipped, s.rejected),
                    (events, r.skips().len() as u64, r.rejections().len() as u64)
                );
            }
            Err(Error::Malformed { .. }) => {}
            Err(e) => panic!("{format}: {e}"),
        }
        for e in &r.events {
            assert!(
                (1..=lines).contains(&e.line()),
                "{format}: line {} of {lines}: {e:?}",
                e.line()
            );
            if let AttributionEvent::Address(a) = e {
                let year = |t: Timestamp| chrono::Datelike::year(&t);
                for time in [Some(a.at), a.start, a.end].into_iter().flatten() {
                    assert!((1990..2100).contains(&year(time)), "{format}: {a:?}");
                }
                if let Some((first, last)) = a.ports {
                    assert!(first <= last, "{format}: {a:?}");
                }
            }
        }
    }
}

fn fixture_lines() -> Vec<Vec<u8>> {
    [
        "radius.detail",
        "dhcpd.leases",
        "dhcpd6.leases",
        "kea-leases4.csv",
        "cgnat.csv",
        "juniper-pba.log",
    ]
    .iter()
    .flat_map(|n| {
        fixture(n)
            .split(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>()
    })
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check_all(&data);
    }

    /// Real lines, shuffled, cut and salted: deeper into each parser than
    /// random bytes get.
    #[test]
    fn spliced_real_lines_never_panic(
        picks in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..5, any::<prop::sample::Index>()), 0..80)
    ) {
        let pool = fixture_lines();
        let mut data = Vec::new();
        for (i, byte, how, at) in picks {
            let mut line = pool[i.index(pool.len())].clone();
            match how {
                1 => line.truncate(at.index(line.len() + 1)),
                2 => line.insert(at.index(line.len() + 1), byte),
                3 => line.extend_from_slice(b" { \" ; }"),
                _ => {}
            }
            data.extend_from_slice(&line);
            if how != 4 {
                data.push(b'\n');
            }
        }
        check_all(&data);
    }
}
