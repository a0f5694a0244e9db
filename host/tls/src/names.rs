//! Which member names and hosts a certificate may carry: a member name is one DNS label (it is
//! the certificate's CN, a DNS subject alternative name, and the stem of its file names), an
//! extra host is an IP address or a DNS name.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rcgen::SanType;
use rustls_pki_types::DnsName;

use crate::error::{Result, TlsError};

/// The longest DNS label (RFC 1035).
const MAX_LABEL: usize = 63;

/// Checks that `name` is one DNS label: 1 to 63 ASCII letters, digits and hyphens, neither
/// starting nor ending with a hyphen, not all digits (it would read as an address), and not
/// `ca`, whose files would be the CA's.
pub fn validate_member_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(TlsError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > MAX_LABEL {
        return invalid("a DNS label has at most 63 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return invalid("a DNS label has only ASCII letters, digits and hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return invalid("a DNS label neither starts nor ends with a hyphen");
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return invalid("a name of digits only would read as an address");
    }
    if name.eq_ignore_ascii_case("ca") {
        return invalid("the files ca.crt and ca.key are the cluster CA's");
    }
    Ok(())
}

/// Checks every name, and that none is given twice (ignoring case, since DNS does, and so may
/// the file system).
pub fn validate_member_names(names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Err(TlsError::NoNames);
    }
    for (i, name) in names.iter().enumerate() {
        validate_member_name(name)?;
        if names[..i].iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(TlsError::DuplicateName(name.clone()));
        }
    }
    Ok(())
}

/// Reads an extra host as a subject alternative name: an IP address (IPv6 with or without
/// brackets) or a DNS name.
pub fn parse_host(host: &str) -> Result<SanType> {
    let trimmed = host.trim();
    let unbracketed = trimmed
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(trimmed);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let invalid = || TlsError::InvalidHost(host.to_string());
    DnsName::try_from(trimmed).map_err(|_| invalid())?;
    let ia5 = trimmed.to_string().try_into().map_err(|_| invalid())?;
    Ok(SanType::DnsName(ia5))
}

/// The subject alternative names of a member's certificate: its name, every extra host, and
/// the loopback names (so a dev cluster on one machine verifies by address too), without
/// duplicates.
pub fn member_sans(name: &str, hosts: &[String]) -> Result<Vec<SanType>> {
    validate_member_name(name)?;
    let mut sans = vec![parse_host(name)?];
    for host in hosts {
        sans.push(parse_host(host)?);
    }
    sans.push(parse_host("localhost")?);
    sans.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    sans.push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    let mut unique: Vec<SanType> = Vec::with_capacity(sans.len());
    for san in sans {
        let seen = unique.iter().any(|u| match (u, &san) {
            (SanType::DnsName(a), SanType::DnsName(b)) => {
                a.as_str().eq_ignore_ascii_case(b.as_str())
            }
            (a, b) => a == b,
        });
        if !seen {
            unique.push(san);
        }
    }
    Ok(unique)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn member_names_are_dns_labels() {
        for good in ["n1", "infra-0", "A", "x".repeat(63).as_str(), "1a"] {
            assert!(validate_member_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-n1",
            "n1-",
            "n.1",
            "n_1",
            "n 1",
            "é",
            "123",
            "ca",
            "CA",
            "../x",
            "x".repeat(64).as_str(),
        ] {
            let err = validate_member_name(bad).err();
            assert!(
                matches!(err, Some(TlsError::InvalidName { .. })),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn names_are_unique_and_present() {
        assert!(validate_member_names(&names(&["n1", "n2"])).is_ok());
        assert!(matches!(
            validate_member_names(&names(&["n1", "N1"])),
            Err(TlsError::DuplicateName(n)) if n == "N1"
        ));
        assert!(matches!(validate_member_names(&[]), Err(TlsError::NoNames)));
    }

    #[test]
    fn hosts_are_addresses_or_dns_names() {
        assert_eq!(
            parse_host("10.0.0.1").ok(),
            Some(SanType::IpAddress("10.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            parse_host("[fe80::1]").ok(),
            Some(SanType::IpAddress("fe80::1".parse().unwrap()))
        );
        assert!(matches!(
            parse_host("node.example.com"),
            Ok(SanType::DnsName(_))
        ));
        for bad in ["", "a b", "http://x", "-x.com", "x..y"] {
            assert!(
                matches!(parse_host(bad), Err(TlsError::InvalidHost(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn sans_hold_name_hosts_and_loopback_once() {
        let sans = member_sans("n1", &names(&["localhost", "10.0.0.1", "127.0.0.1"])).unwrap();
        let text: Vec<String> = sans
            .iter()
            .map(|s| match s {
                SanType::DnsName(d) => d.as_str().to_string(),
                SanType::IpAddress(ip) => ip.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(text, ["n1", "localhost", "10.0.0.1", "127.0.0.1", "::1"]);
    }
}
