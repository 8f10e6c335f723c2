//! Every log line format on arbitrary bytes: never panics, and a DNS
//! record always carries a non-empty name.
#![no_main]

use khien_telemetry::{LineDecoder, LineFormat, Record};
use libfuzzer_sys::fuzz_target;

const FORMATS: &[&str] = &[
    "unbound",
    "bind",
    "dnsmasq",
    "zeek",
    "zeek-json",
    "eve",
    "csv:time=0,client=1,name=2,qtype=3,port=4",
    "csv:client=0,ip=1,dport=2,proto=3,packets=4,bytes=5,sep=tab",
    "json:time=ts,client=src_ip,name=dns.rrname,qtype=dns.rrtype,port=src_port",
    "json:client=a.b.0,ip=c,proto=d,packets=e,bytes=f",
];

fuzz_target!(|data: &[u8]| {
    for f in FORMATS {
        let Ok(format) = f.parse::<LineFormat>() else { return };
        let mut d = LineDecoder::new(format).with_reference_time(1_795_575_600_000);
        // Several lines through one decoder, so Zeek headers take effect.
        for line in data.split(|&b| b == b'\n') {
            if let Ok(Some(Record::Dns(q))) = d.decode(line) {
                assert!(!q.qname.is_empty());
            }
        }
    }
});
