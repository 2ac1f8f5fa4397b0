//! EXPOSE port specifications (`80`, `8080/udp`, `1000-1002/tcp`, `0.0.0.0:80:80`).

use std::net::IpAddr;

/// Expand one port spec into `port/proto` entries; the host part is checked and ignored.
pub fn parse_port_spec(raw: &str) -> Result<Vec<String>, String> {
    let (ip, host_port, container) = split_parts(raw);
    let (proto, port) = split_proto_port(&container);
    if port.is_empty() {
        return Err(format!("invalid port: {raw:?}: no port specified"));
    }
    let mut ip = ip.as_str();
    if ip.len() >= 2 && ip.starts_with('[') && ip.ends_with(']') {
        ip = &ip[1..ip.len() - 1];
    }
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    let (start, end) =
        parse_port_range(&port).map_err(|_| format!("invalid containerPort: {port}"))?;
    if !host_port.is_empty() {
        parse_port_range(&host_port).map_err(|_| format!("invalid hostPort: {host_port}"))?;
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Expand a list of specs, keeping the first occurrence of each `port/proto`.
pub fn parse_port_specs(specs: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for spec in specs {
        for p in parse_port_spec(spec)? {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

fn split_parts(raw: &str) -> (String, String, String) {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.len() {
        1 => (String::new(), String::new(), parts[0].to_string()),
        2 => (String::new(), parts[0].to_string(), parts[1].to_string()),
        3 => (
            parts[0].to_string(),
            parts[1].to_string(),
            parts[2].to_string(),
        ),
        n => (
            parts[..n - 2].join(":"),
            parts[n - 2].to_string(),
            parts[n - 1].to_string(),
        ),
    }
}

fn split_proto_port(raw: &str) -> (String, String) {
    let (port, proto) = raw.split_once('/').unwrap_or((raw, ""));
    if port.is_empty() {
        return (String::new(), String::new());
    }
    let proto = if proto.is_empty() { "tcp" } else { proto };
    (proto.to_ascii_lowercase(), port.to_string())
}

fn parse_port_range(s: &str) -> Result<(u32, u32), ()> {
    let num = |v: &str| v.parse::<u16>().map(u32::from).map_err(|_| ());
    match s.split_once('-') {
        None => {
            let p = num(s)?;
            Ok((p, p))
        }
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a { Err(()) } else { Ok((a, b)) }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(parse_port_spec("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_port_spec("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(
            parse_port_spec("1-3/udp").unwrap(),
            vec!["1/udp", "2/udp", "3/udp"]
        );
        assert!(parse_port_spec("3-1").is_err());
        assert!(parse_port_spec("localhost:80:80").is_err());
        assert!(parse_port_spec("70000").is_err());
    }
}
