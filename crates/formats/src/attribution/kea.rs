//! Kea's memfile lease files, `kea-leases4.csv` and `kea-leases6.csv`.
//!
//! Kea appends a row on every change (and a row with `valid_lifetime` 0
//! when it deletes a lease), compacting the file now and then, so like
//! dhcpd's file it is a journal: every row is an event. Columns are found
//! by the header, because Kea versions add columns (`pool_id`). A file
//! with a `duid` column is the IPv6 one.
//!
//! The interval is `expire - valid_lifetime` to `expire` (unix seconds); a
//! `valid_lifetime` of 4294967295 is Kea's infinite lease, which has no
//! end. States: 0 (default) and 4 (registered, IPv6) are leases; 1
//! (declined), 2 (expired-reclaimed) and 3 (released) are skipped.

use std::io::BufRead;
use std::net::IpAddr;

use chrono::TimeDelta;
use ipnet::IpNet;

use super::table::{self, Header, Outcome, Row, Style};
use super::{AddressAction, AddressEvent, AttributionFormat, Out, time};
use crate::Error;

/// Kea's infinite valid lifetime.
const INFINITE: u32 = u32::MAX;

#[derive(Debug)]
struct Columns {
    address: usize,
    valid_lifetime: usize,
    expire: usize,
    state: Option<usize>,
    /// v4: hwaddr then client_id; v6: duid.
    identity: Vec<usize>,
    /// v6 only.
    prefix_len: Option<usize>,
    lease_type: Option<usize>,
    v6: bool,
}

fn columns(h: &Header) -> Result<Columns, String> {
    let mut missing = Vec::new();
    let mut need = |n: &str| h.require(&[n]).map_err(|m| missing.push(m)).ok();
    let address = need("address");
    let valid_lifetime = need("valid_lifetime");
    let expire = need("expire");
    let duid = h.find(&["duid"]);
    let v6 = duid.is_some();
    let identity: Vec<usize> = if v6 {
        duid.into_iter().collect()
    } else {
        [h.find(&["hwaddr"]), h.find(&["client_id"])]
            .into_iter()
            .flatten()
            .collect()
    };
    if identity.is_empty() {
        missing.push("no column hwaddr, client_id or duid".into());
    }
    let (Some(address), Some(valid_lifetime), Some(expire), true) =
        (address, valid_lifetime, expire, missing.is_empty())
    else {
        return Err(missing.join("; "));
    };
    Ok(Columns {
        address,
        valid_lifetime,
        expire,
        state: h.find(&["state"]),
        identity,
        prefix_len: h.find(&["prefix_len"]).filter(|_| v6),
        lease_type: h.find(&["lease_type"]).filter(|_| v6),
        v6,
    })
}

/// Reads a Kea memfile lease file (v4 or v6).
pub(super) fn read_kea(input: impl BufRead, out: &mut Out<'_>) -> Result<(), Error> {
    let style = Style {
        quoted: false,
        daemon: true,
    };
    table::read_table(AttributionFormat::KeaCsv, input, out, style, columns, row)
}

fn row(c: &Columns, r: &Row<'_>) -> Result<Outcome, String> {
    match r.parse(c.state, "a lease state", |v| v.parse::<u32>().ok())? {
        None | Some(0 | 4) => {}
        Some(1) => return Ok(Outcome::Skip("lease declined")),
        Some(2) => return Ok(Outcome::Skip("lease expired and reclaimed")),
        Some(3) => return Ok(Outcome::Skip("lease released")),
        Some(n) => return Err(format!("unknown lease state {n}")),
    }
    let address = r.require(c.address, "an IP address", |v| v.parse::<IpAddr>().ok())?;
    if address.is_ipv6() != c.v6 {
        return Err(format!(
            "address {address} in a {} lease file",
            if c.v6 { "DHCPv6" } else { "DHCPv4" }
        ));
    }
    let lifetime = r.require(c.valid_lifetime, "a number of seconds", |v| {
        v.parse::<u32>().ok()
    })?;
    if lifetime == 0 {
        return Ok(Outcome::Skip("lease deleted"));
    }
    let expire = r.require(c.expire, "unix seconds", time::unix)?;
    let start = expire
        .checked_sub_signed(TimeDelta::seconds(lifetime.into()))
        .ok_or_else(|| "valid_lifetime reaches before the epoch".to_string())?;
    let end = (lifetime != INFINITE).then_some(expire);
    let network = match address {
        IpAddr::V6(a) => {
            let pd = r.get(c.lease_type) == Some("2");
            let len = r.parse(c.prefix_len, "a prefix length", |v| {
                v.parse::<u8>().ok().filter(|n| *n <= 128)
            })?;
            match len {
                Some(len) if len < 128 || pd => IpNet::new(IpAddr::V6(a), len)
                    .map_err(|e| e.to_string())?
                    .trunc(),
                _ => IpNet::from(address),
            }
        }
        IpAddr::V4(_) => IpNet::from(address),
    };
    let identity = c
        .identity
        .iter()
        .find_map(|i| r.get(Some(*i)))
        .map(str::to_ascii_lowercase);
    Ok(Outcome::Events(vec![AddressEvent {
        line: r.line,
        action: AddressAction::Lease,
        at: start,
        start: Some(start),
        end,
        network,
        ports: None,
        identity,
        inside: None,
        session: None,
        calling_station: None,
    }]))
}

#[cfg(test)]
mod tests {
    use super::super::{AttributionEvent, collect};
    use super::*;

    fn rows(data: &str) -> Vec<String> {
        collect(AttributionFormat::KeaCsv, data)
            .into_iter()
            .map(|e| match e {
                AttributionEvent::Address(a) => format!(
                    "{} {} {:?} {:?} {:?}",
                    a.line,
                    a.network,
                    a.start.map(|t| t.timestamp()),
                    a.end.map(|t| t.timestamp()),
                    a.identity
                ),
                AttributionEvent::Skipped { line, reason } => format!("{line} skip {reason}"),
                AttributionEvent::Rejected { line, reason } => format!("{line} reject {reason}"),
            })
            .collect()
    }

    #[test]
    fn columns_by_header_in_any_order() {
        // An older Kea without pool_id, columns moved: the header decides.
        let data = "expire,valid_lifetime,address,client_id,state\n\
                    1795492800,3600,10.20.0.10,01:AA:BB,0\n\
                    1795492800,3600,10.20.0.11,,\n";
        assert_eq!(
            rows(data),
            vec![
                "1 skip header",
                "2 10.20.0.10/32 Some(1795489200) Some(1795492800) Some(\"01:aa:bb\")",
                "3 10.20.0.11/32 Some(1795489200) Some(1795492800) None",
            ]
        );
    }

    #[test]
    fn v6_prefix_lengths_and_states() {
        let h = "address,duid,valid_lifetime,expire,lease_type,prefix_len,state\n";
        let data = format!(
            "{h}2001:db8::,00:01,60,1795489260,2,129,0\n\
             2001:db8:1::1,00:01,60,1795489260,0,64,0\n\
             2001:db8:2::,00:01,60,1795489260,2,,4\n\
             2001:db8:3::,00:01,60,1795489260,0,128,9\n"
        );
        assert_eq!(
            rows(&data),
            vec![
                "1 skip header",
                "2 reject column prefix_len: \"129\" is not a prefix length",
                // A prefix length below 128 makes a prefix whatever the type.
                "3 2001:db8:1::/64 Some(1795489200) Some(1795489260) Some(\"00:01\")",
                "4 2001:db8:2::/128 Some(1795489200) Some(1795489260) Some(\"00:01\")",
                "5 reject unknown lease state 9",
            ]
        );
    }

    #[test]
    fn kea_quotes_are_data() {
        // Kea does not quote; a `"` in user_context must not swallow commas.
        let data = "address,hwaddr,valid_lifetime,expire,user_context\n\
                    10.0.0.1,00:11:22:33:44:55,60,1795489260,{ \"a\": 1 }\n";
        assert_eq!(
            rows(data)[1],
            "2 10.0.0.1/32 Some(1795489200) Some(1795489260) Some(\"00:11:22:33:44:55\")"
        );
    }
}
