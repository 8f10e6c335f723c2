//! The attribution formats by name, and a guess from a file's first bytes.

use std::fmt;
use std::str::FromStr;

use super::table::normalize;
use super::time;

/// The attribution file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttributionFormat {
    /// FreeRADIUS `detail` module output.
    RadiusDetail,
    /// RADIUS accounting exported as CSV with a header.
    RadiusCsv,
    /// ISC dhcpd `dhcpd.leases` / `dhcpd6.leases`.
    DhcpdLeases,
    /// Kea memfile `kea-leases4.csv` / `kea-leases6.csv`.
    KeaCsv,
    /// CGNAT port-block allocations as CSV with a header.
    CgnatCsv,
    /// Juniper MX/SRX `…_NAT_PORT_BLOCK_…` syslog lines.
    CgnatJuniper,
}

/// A format name that is none of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown attribution format {0:?} (radius-detail, radius-csv, dhcpd-leases, kea-csv, cgnat-csv, cgnat-juniper)"
)]
pub struct UnknownAttributionFormat(pub String);

impl AttributionFormat {
    /// Every format, in the order the docs list them.
    pub const ALL: [Self; 6] = [
        Self::RadiusDetail,
        Self::RadiusCsv,
        Self::DhcpdLeases,
        Self::KeaCsv,
        Self::CgnatCsv,
        Self::CgnatJuniper,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RadiusDetail => "radius-detail",
            Self::RadiusCsv => "radius-csv",
            Self::DhcpdLeases => "dhcpd-leases",
            Self::KeaCsv => "kea-csv",
            Self::CgnatCsv => "cgnat-csv",
            Self::CgnatJuniper => "cgnat-juniper",
        }
    }

    /// Best-effort sniffing of the start of a file (a few KiB is plenty):
    ///
    /// - a first record line that is a ctime date followed by an indented
    ///   `Attribute = value` line is a FreeRADIUS detail file;
    /// - `lease <address> {`, `ia-na "…" {` (and `ia-ta`, `ia-pd`),
    ///   `server-duid` or dhcpd's own header comment is a leases file;
    /// - a line with a `_PORT_BLOCK_ALLOC:`/`_RELEASE:`/`_ACTIVE:` message is
    ///   Juniper syslog;
    /// - a CSV header is Kea's (`address`, `valid_lifetime`, `expire`), a
    ///   CGNAT log (`public_ip`, `port_start`) or RADIUS accounting (a status
    ///   column and an address column), by its column names.
    ///
    /// `None` when nothing fits: the caller asks the user instead of
    /// guessing further.
    pub fn detect(first_bytes: &[u8]) -> Option<Self> {
        let head = first_bytes
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(first_bytes);
        let text = String::from_utf8_lossy(&head[..head.len().min(64 * 1024)]);
        let mut lines = text.lines().map(|l| l.trim_end_matches('\r')).peekable();
        let mut checked = 0;
        while let Some(line) = lines.next() {
            checked += 1;
            if checked > 200 {
                break;
            }
            let t = line.trim();
            if t.is_empty() {
                continue;
            }
            if t.contains("_PORT_BLOCK_ALLOC:")
                || t.contains("_PORT_BLOCK_RELEASE:")
                || t.contains("_PORT_BLOCK_ACTIVE:")
            {
                return Some(Self::CgnatJuniper);
            }
            if t.starts_with('#') {
                if t.contains("dhcpd.leases") || t.contains("isc-dhcp") {
                    return Some(Self::DhcpdLeases);
                }
                continue;
            }
            if is_dhcpd_statement(t) {
                return Some(Self::DhcpdLeases);
            }
            if !line.starts_with([' ', '\t'])
                && time::ctime(t, chrono::FixedOffset::east_opt(0)?).is_some()
            {
                if lines
                    .peek()
                    .is_some_and(|next| next.starts_with([' ', '\t']) && next.contains(" = "))
                {
                    return Some(Self::RadiusDetail);
                }
                continue;
            }
            if t.contains(',')
                && let Some(f) = from_header(t)
            {
                return Some(f);
            }
            // Syslog lines of other programs come before the first
            // port-block message; anything else decides on its first line.
            if !looks_like_syslog(t) {
                return None;
            }
        }
        None
    }
}

fn is_dhcpd_statement(t: &str) -> bool {
    let mut words = t.split_whitespace();
    match (words.next(), words.next()) {
        (Some("lease"), Some(addr)) => {
            addr.parse::<std::net::Ipv4Addr>().is_ok() && t.trim_end().ends_with('{')
        }
        (Some("ia-na" | "ia-ta" | "ia-pd"), Some(id)) => id.starts_with('"'),
        (Some("server-duid" | "authoring-byte-order"), Some(_)) => t.ends_with(';'),
        _ => false,
    }
}

fn looks_like_syslog(t: &str) -> bool {
    let t = t
        .strip_prefix('<')
        .map_or(t, |r| r.split_once('>').map_or(r, |(_, rest)| rest));
    let mut words = t.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(m), Some(d), Some(hms)) => {
            time::month(m).is_some() && d.parse::<u8>().is_ok() && hms.len() == 8
        }
        (Some(stamp), _, _) => chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
        _ => false,
    }
}

fn from_header(line: &str) -> Option<AttributionFormat> {
    let names: Vec<String> = line
        .split(',')
        .map(|f| normalize(f.trim().trim_matches('"')))
        .collect();
    let has = |n: &str| names.iter().any(|f| f == n);
    let any = |ns: &[&str]| ns.iter().any(|n| has(n));
    if has("address") && has("valid_lifetime") && has("expire") {
        return Some(AttributionFormat::KeaCsv);
    }
    if has("public_ip") && has("port_start") {
        return Some(AttributionFormat::CgnatCsv);
    }
    if any(&["status", "acct_status_type"])
        && any(&[
            "address",
            "framed_ip_address",
            "ip",
            "framed_ipv6_prefix",
            "delegated_ipv6_prefix",
        ])
    {
        return Some(AttributionFormat::RadiusCsv);
    }
    None
}

impl fmt::Display for AttributionFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AttributionFormat {
    type Err = UnknownAttributionFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Self::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownAttributionFormat(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in AttributionFormat::ALL {
            assert_eq!(f.as_str().parse::<AttributionFormat>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        assert_eq!(
            "KEA-CSV".parse::<AttributionFormat>(),
            Ok(AttributionFormat::KeaCsv)
        );
        assert!("radius".parse::<AttributionFormat>().is_err());
    }

    #[test]
    fn detects_each_format() {
        let detail = b"Tue Nov 24 10:00:00 2026\n\tAcct-Status-Type = Start\n";
        assert_eq!(
            AttributionFormat::detect(detail),
            Some(AttributionFormat::RadiusDetail)
        );
        let leases =
            b"# The format of this file is documented in the dhcpd.leases(5) manual page.\n";
        assert_eq!(
            AttributionFormat::detect(leases),
            Some(AttributionFormat::DhcpdLeases)
        );
        assert_eq!(
            AttributionFormat::detect(b"\nlease 10.0.0.5 {\n"),
            Some(AttributionFormat::DhcpdLeases)
        );
        assert_eq!(
            AttributionFormat::detect(b"server-duid \"\\000\\001\";\n\nia-pd \"x\" {\n"),
            Some(AttributionFormat::DhcpdLeases)
        );
        let kea = b"address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id\n";
        assert_eq!(
            AttributionFormat::detect(kea),
            Some(AttributionFormat::KeaCsv)
        );
        assert_eq!(
            AttributionFormat::detect(
                b"\xEF\xBB\xBFtime,event,public_ip,port_start,port_end,inside_ip\n"
            ),
            Some(AttributionFormat::CgnatCsv)
        );
        assert_eq!(
            AttributionFormat::detect(b"Timestamp,Acct-Status-Type,User-Name,Framed-IP-Address\n"),
            Some(AttributionFormat::RadiusCsv)
        );
        let juniper = b"Nov 24 09:59:58 cgnat-1 sshd[12]: accepted\nNov 24 10:00:00 cgnat-1 (FPC Slot 1, PIC Slot 0) 2026-11-24 03:00:00: {nat-set}[jservices-nat]: JSERVICES_NAT_PORT_BLOCK_ALLOC: 100.64.1.2 -> 203.0.113.5:2048-2559 0x6b04fdb0\n";
        assert_eq!(
            AttributionFormat::detect(juniper),
            Some(AttributionFormat::CgnatJuniper)
        );
        assert_eq!(AttributionFormat::detect(b"evil.com\n"), None);
        assert_eq!(AttributionFormat::detect(b"a,b,c\n1,2,3\n"), None);
        assert_eq!(AttributionFormat::detect(b""), None);
        assert_eq!(AttributionFormat::detect(b"\xff\xfe\x00\x01"), None);
    }
}
