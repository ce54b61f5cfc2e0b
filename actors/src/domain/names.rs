//! Names a certificate can carry: DNS names (internationalized names converted to their ASCII
//! A-label form, a leading `*.` wildcard allowed), IP addresses and e-mail addresses. Each is
//! normalized to one canonical spelling, so equal names are stored equal.

use std::net::IpAddr;

/// The longest DNS name (RFC 1035) and label.
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// The canonical form of a certificate name, or why it is not one.
pub fn normalize_name(value: &str) -> Result<String, &'static str> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if let Some((local, domain)) = value.rsplit_once('@') {
        if local.is_empty()
            || local.len() > 64
            || local.chars().any(|c| c.is_whitespace() || super::validation::is_unsafe_char(c) || c == '@')
        {
            return Err("must be a DNS name, an IP address or an e-mail address (the part before @ is invalid)");
        }
        return dns_name(domain, false).map(|d| format!("{local}@{d}"));
    }
    dns_name(value, true)
}

/// A DNS name in A-label form: labels of letters, digits, '-' (and '_', which internal names
/// use), `*.` allowed as the leftmost label when `wildcard` is true.
fn dns_name(value: &str, wildcard: bool) -> Result<String, &'static str> {
    const MESSAGE: &str = "must be a DNS name (labels of 1 to 63 letters, digits or '-', up to 253 characters; \
        a leading '*.' is allowed), an IP address or an e-mail address";
    let (prefix, rest) = match value.strip_prefix("*.") {
        Some(rest) if wildcard => ("*.", rest),
        _ => ("", value),
    };
    if rest.is_empty() || rest.ends_with('.') || rest.starts_with('.') {
        return Err(MESSAGE);
    }
    // UTS #46 processing: lower-cases, maps and converts Unicode labels to xn-- A-labels. The
    // non-strict form keeps '_', which the strict STD3 rules would refuse.
    let ascii = idna::domain_to_ascii(rest).map_err(|_| MESSAGE)?;
    let valid_labels = ascii.split('.').all(|label| {
        (1..=MAX_LABEL).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    let name = format!("{prefix}{ascii}");
    if !valid_labels || name.len() > MAX_NAME {
        return Err(MESSAGE);
    }
    // The rightmost label is a top-level domain, never a number: `1.2.3.256` and `0x7f.0.0.1`
    // are IP addresses some resolvers read in their own way, not DNS names.
    let top = ascii.rsplit('.').next().unwrap_or_default();
    let hex = top.len() > 2 && top[..2].eq_ignore_ascii_case("0x") && top[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if top.bytes().all(|b| b.is_ascii_digit()) || hex {
        return Err("must be a DNS name whose last label is not a number (or a valid IP address)");
    }
    // A wildcard covers names under a registered domain, never a whole top-level domain.
    if !prefix.is_empty() && !ascii.contains('.') {
        return Err("a wildcard must stand for one label under a domain of at least two labels (*.example.com)");
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized() {
        assert_eq!(normalize_name("API.Example.COM").unwrap(), "api.example.com");
        assert_eq!(normalize_name("*.example.com").unwrap(), "*.example.com");
        assert_eq!(normalize_name("bücher.example").unwrap(), "xn--bcher-kva.example");
        assert_eq!(normalize_name("2001:DB8::1").unwrap(), "2001:db8::1");
        assert_eq!(normalize_name("10.0.0.1").unwrap(), "10.0.0.1");
        assert_eq!(normalize_name("ops@Example.COM").unwrap(), "ops@example.com");
        assert_eq!(normalize_name("svc_internal.corp").unwrap(), "svc_internal.corp");
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in [
            "",
            "a..b",
            "-lead.example.com",
            "trail-.example.com",
            "foo.*.example.com",
            "has space.com",
            "x.",
            "@example.com",
            "*.com",
            "1.2.3.256",
            "0x7f.0.0.1",
            "10.0.0.0x10",
            "0x7f000001",
            "a\u{202e}b.example.com",
        ] {
            assert!(normalize_name(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_name(&format!("{}.com", "a".repeat(64))).is_err());
    }
}
