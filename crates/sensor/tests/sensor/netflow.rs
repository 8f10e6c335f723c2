//! NetFlow v9 and IPFIX from a real exporter: Debian's softflowd reads a
//! capture this test writes and exports to the sensor's UDP port.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use khien_sensor::{BoundInput, Metrics};

use crate::support::*;

/// A classic pcap file of Ethernet/IPv4 packets.
struct Pcap {
    bytes: Vec<u8>,
}

impl Pcap {
    fn new() -> Pcap {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&65535u32.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
        Pcap { bytes }
    }

    #[allow(clippy::too_many_arguments)]
    fn packet(
        &mut self,
        t: u32,
        proto: u8,
        src: Ipv4Addr,
        sport: u16,
        dst: Ipv4Addr,
        dport: u16,
        tcp_flags: u8,
    ) {
        let l4 = if proto == 6 {
            let mut h = Vec::new();
            h.extend_from_slice(&sport.to_be_bytes());
            h.extend_from_slice(&dport.to_be_bytes());
            h.extend_from_slice(&1u32.to_be_bytes());
            h.extend_from_slice(&0u32.to_be_bytes());
            h.push(0x50);
            h.push(tcp_flags);
            h.extend_from_slice(&65535u16.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0, 0]);
            h
        } else {
            let mut h = Vec::new();
            h.extend_from_slice(&sport.to_be_bytes());
            h.extend_from_slice(&dport.to_be_bytes());
            h.extend_from_slice(&8u16.to_be_bytes());
            h.extend_from_slice(&[0, 0]);
            h
        };
        let total = 20 + l4.len();
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(total as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        let mut sum = 0u32;
        for pair in ip.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let checksum = !(sum as u16);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&l4);
        self.bytes.extend_from_slice(&t.to_le_bytes());
        self.bytes.extend_from_slice(&0u32.to_le_bytes());
        self.bytes
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(&frame);
    }
}

fn write_capture(path: &Path) {
    let now = chrono::Utc::now().timestamp() as u32 - 120;
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    let mut p = Pcap::new();
    // 10.1.2.3 talks to the listed C&C address over TCP.
    p.packet(now, 6, ip("10.1.2.3"), 40000, ip("198.51.100.7"), 443, 0x02);
    p.packet(now, 6, ip("198.51.100.7"), 443, ip("10.1.2.3"), 40000, 0x12);
    p.packet(
        now + 1,
        6,
        ip("10.1.2.3"),
        40000,
        ip("198.51.100.7"),
        443,
        0x10,
    );
    p.packet(
        now + 2,
        6,
        ip("10.1.2.3"),
        40000,
        ip("198.51.100.7"),
        443,
        0x11,
    );
    p.packet(
        now + 2,
        6,
        ip("198.51.100.7"),
        443,
        ip("10.1.2.3"),
        40000,
        0x11,
    );
    // 10.1.2.5 sends UDP into the listed network.
    p.packet(now + 3, 17, ip("10.1.2.5"), 5000, ip("203.0.113.9"), 53, 0);
    // 10.1.2.4 talks to an unlisted address only.
    p.packet(
        now + 4,
        6,
        ip("10.1.2.4"),
        40001,
        ip("192.0.2.200"),
        80,
        0x02,
    );
    p.packet(
        now + 4,
        6,
        ip("192.0.2.200"),
        80,
        ip("10.1.2.4"),
        40001,
        0x12,
    );
    std::fs::write(path, p.bytes).unwrap();
}

fn export_with_softflowd(version: &str) {
    if !require("softflowd", "softflowd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let snap = default_snapshot(dir.path());
    let out = dir.path().join("hits.ndjson");
    let mut c = config(
        dir.path(),
        &snap,
        &["netflow:udp:127.0.0.1:0".to_string()],
        &out,
    );
    c.flush_seconds = 1;
    let running = Running::start(c);
    let port = running
        .bound
        .iter()
        .find_map(|(_, b)| match b {
            BoundInput::Udp(a) => Some(a.port()),
            _ => None,
        })
        .expect("udp input");
    let pcap = dir.path().join("capture.pcap");
    write_capture(&pcap);
    // softflowd 1.1.0 reading a capture keeps its flows until told, and
    // waits on its control socket: expire them through softflowctl, then
    // shut it down.
    let ctl = dir.path().join("softflowd.ctl");
    let mut child = Command::new("softflowd")
        .args(["-d", "-r"])
        .arg(&pcap)
        .args(["-n", &format!("127.0.0.1:{port}"), "-v", version])
        .arg("-p")
        .arg(dir.path().join("softflowd.pid"))
        .arg("-c")
        .arg(&ctl)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start softflowd");
    let softflowctl = |command: &str| {
        Command::new("softflowctl")
            .arg("-c")
            .arg(&ctl)
            .arg(command)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    wait_for("softflowd control socket", Duration::from_secs(10), || {
        ctl.exists()
    });
    wait_for(
        "softflowd to expire the flows",
        Duration::from_secs(10),
        || softflowctl("expire-all").contains("Expired 3 flows"),
    );
    softflowctl("shutdown");
    let exited = child.wait().expect("softflowd exit");
    assert!(exited.success(), "softflowd: {exited}");
    let m = running.metrics.clone();
    wait_for("flows", Duration::from_secs(10), || {
        Metrics::get(&m.events) >= 4
    });
    wait_for("hits", Duration::from_secs(10), || {
        Metrics::get(&m.hits) >= 2
    });
    std::thread::sleep(Duration::from_millis(300));
    let s = running.finish();
    assert_eq!(s.decode_errors, 0, "version {version}");
    let hits = read_hits(&out);
    let t = totals(&hits);
    let clients: Vec<&str> = t.keys().map(|(c, _)| c.as_str()).collect();
    assert!(
        t.contains_key(&("10.1.2.3".into(), "198.51.100.7".into())),
        "version {version}: {t:?}"
    );
    assert!(
        t.contains_key(&("10.1.2.5".into(), "203.0.113.0/24".into())),
        "version {version}: {t:?}"
    );
    assert!(!clients.contains(&"10.1.2.4"), "version {version}: {t:?}");
    assert!(
        !clients.contains(&"198.51.100.7"),
        "the C&C itself is never the client: {t:?}"
    );
    // Both directions of the TCP flow name the client's port, never the
    // C&C's 443.
    for h in &hits {
        let expected = match h.client.to_string().as_str() {
            "10.1.2.3" => 40000,
            "10.1.2.5" => 5000,
            other => panic!("unexpected client {other}"),
        };
        assert_eq!(h.client_port, Some(expected), "version {version}: {h:?}");
    }
}

/// One NetFlow v5 record: source address and port, destination address
/// and port, IP protocol.
type V5Record = ([u8; 4], u16, [u8; 4], u16, u8);

/// A NetFlow v5 datagram as routers send it, built by hand so that each
/// record's direction is known.
fn v5_datagram(export_secs: u32, records: &[V5Record]) -> Vec<u8> {
    let uptime = 1_000_000u32;
    let mut m = 5u16.to_be_bytes().to_vec();
    m.extend_from_slice(&(records.len() as u16).to_be_bytes());
    m.extend_from_slice(&uptime.to_be_bytes());
    m.extend_from_slice(&export_secs.to_be_bytes());
    m.extend_from_slice(&0u32.to_be_bytes()); // nanoseconds
    m.extend_from_slice(&1u32.to_be_bytes()); // flow sequence
    m.extend_from_slice(&[0, 0, 0, 0]);
    for &(src, sport, dst, dport, proto) in records {
        let mut r = [0u8; 48];
        r[0..4].copy_from_slice(&src);
        r[4..8].copy_from_slice(&dst);
        r[16..20].copy_from_slice(&3u32.to_be_bytes()); // packets
        r[20..24].copy_from_slice(&180u32.to_be_bytes()); // bytes
        r[24..28].copy_from_slice(&(uptime - 2000).to_be_bytes()); // first
        r[28..32].copy_from_slice(&(uptime - 1000).to_be_bytes()); // last
        r[32..34].copy_from_slice(&sport.to_be_bytes());
        r[34..36].copy_from_slice(&dport.to_be_bytes());
        r[38] = proto;
        m.extend_from_slice(&r);
    }
    m
}

#[test]
fn netflow_v5_hit_carries_the_client_end_port() {
    let dir = tempfile::tempdir().unwrap();
    let snap = default_snapshot(dir.path());
    let out = dir.path().join("hits.ndjson");
    let running = Running::start(config(
        dir.path(),
        &snap,
        &["netflow:udp:127.0.0.1:0".to_string()],
        &out,
    ));
    let port = running
        .bound
        .iter()
        .find_map(|(_, b)| match b {
            BoundInput::Udp(a) => Some(a.port()),
            _ => None,
        })
        .expect("udp input");
    let cc = [198, 51, 100, 7];
    let datagram = v5_datagram(
        chrono::Utc::now().timestamp() as u32,
        &[
            // Towards the C&C: the client is the source.
            ([10, 1, 2, 3], 40000, cc, 443, 6),
            // From the C&C only (the request went another way): the client
            // is the destination, and so is its port.
            (cc, 443, [10, 1, 2, 4], 51000, 6),
            // ICMP puts type and code where the port would be.
            ([10, 1, 2, 5], 0, [203, 0, 113, 9], 0x0800, 1),
            (cc, 0, [10, 1, 2, 6], 0x0300, 1),
        ],
    );
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(&datagram, ("127.0.0.1", port)).unwrap();
    let m = running.metrics.clone();
    wait_for("flows", Duration::from_secs(10), || {
        Metrics::get(&m.hits) >= 4
    });
    let s = running.finish();
    assert_eq!(s.decode_errors, 0);
    let hits = read_hits(&out);
    assert_eq!(hits.len(), 4, "{hits:#?}");
    let port_of = |client: &str| {
        hits.iter()
            .find(|h| h.client.to_string() == client)
            .unwrap_or_else(|| panic!("no hit for {client}: {hits:#?}"))
            .client_port
    };
    assert_eq!(port_of("10.1.2.3"), Some(40000));
    assert_eq!(port_of("10.1.2.4"), Some(51000));
    assert_eq!(port_of("10.1.2.5"), None);
    assert_eq!(port_of("10.1.2.6"), None);
}

#[test]
fn softflowd_netflow_v9_hit_names_the_inside_client() {
    export_with_softflowd("9");
}

#[test]
fn softflowd_ipfix_hit_names_the_inside_client() {
    export_with_softflowd("10");
}
