//! Hand-written tar headers: ustar, preceded by a PAX extended header when a value does not
//! fit (long names or link targets, large ids or sizes, sub-second mtimes, xattrs).

use std::collections::BTreeMap;

use crate::image::entry::{Entry, EntryKind};
use crate::image::error::Result;

/// Largest value of an 8-byte octal field (7 digits).
const MAX_OCTAL_8: u64 = 0o7777777;
/// Largest value of a 12-byte octal field (11 digits).
const MAX_OCTAL_12: u64 = 0o77777777777;

/// The header block(s) for `entry`, written under `name`.
pub fn encode(entry: &Entry, name: &str) -> Result<Vec<u8>> {
    let is_dir = matches!(entry.kind, EntryKind::Dir);
    let full_name = if is_dir {
        format!("{name}/")
    } else {
        name.to_string()
    };
    let (typeflag, size, link, dev) = match &entry.kind {
        EntryKind::File { size, .. } => (b'0', *size, "", (0, 0)),
        EntryKind::Whiteout | EntryKind::OpaqueDir => (b'0', 0, "", (0, 0)),
        EntryKind::Hardlink { target } => (b'1', 0, target.as_str(), (0, 0)),
        EntryKind::Symlink { target } => (b'2', 0, target.as_str(), (0, 0)),
        EntryKind::CharDevice { major, minor } => (b'3', 0, "", (*major, *minor)),
        EntryKind::BlockDevice { major, minor } => (b'4', 0, "", (*major, *minor)),
        EntryKind::Dir => (b'5', 0, "", (0, 0)),
        EntryKind::Fifo => (b'6', 0, "", (0, 0)),
    };

    let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if full_name.len() > 100 {
        pax.insert("path".into(), full_name.as_bytes().to_vec());
    }
    if link.len() > 100 {
        pax.insert("linkpath".into(), link.as_bytes().to_vec());
    }
    if u64::from(entry.uid) > MAX_OCTAL_8 {
        pax.insert("uid".into(), entry.uid.to_string().into_bytes());
    }
    if u64::from(entry.gid) > MAX_OCTAL_8 {
        pax.insert("gid".into(), entry.gid.to_string().into_bytes());
    }
    if size > MAX_OCTAL_12 {
        pax.insert("size".into(), size.to_string().into_bytes());
    }
    let mtime_fits = entry.mtime >= 0 && (entry.mtime as u64) <= MAX_OCTAL_12;
    if entry.mtime_nsec != 0 || !mtime_fits {
        pax.insert(
            "mtime".into(),
            pax_time(entry.mtime, entry.mtime_nsec).into_bytes(),
        );
    }
    for (k, v) in &entry.xattrs {
        pax.insert(format!("SCHILY.xattr.{k}"), v.clone());
    }

    let mut out = Vec::with_capacity(1536);
    if !pax.is_empty() {
        let body = pax_body(&pax);
        let pax_name = pax_header_name(name);
        let mut h = ustar(&pax_name, 0, 0, 0, body.len() as u64, 0, b'x', "", (0, 0));
        checksum(&mut h);
        out.extend_from_slice(&h);
        out.extend_from_slice(&body);
        out.resize(out.len() + (512 - body.len() % 512) % 512, 0);
    }
    let mtime = if mtime_fits { entry.mtime as u64 } else { 0 };
    let mut h = ustar(
        &full_name,
        entry.mode & 0o7777,
        clamp(u64::from(entry.uid), MAX_OCTAL_8),
        clamp(u64::from(entry.gid), MAX_OCTAL_8),
        clamp(size, MAX_OCTAL_12),
        mtime,
        typeflag,
        link,
        dev,
    );
    checksum(&mut h);
    out.extend_from_slice(&h);
    Ok(out)
}

fn clamp(v: u64, max: u64) -> u64 {
    if v > max { 0 } else { v }
}

/// PAX time: seconds, then the nanoseconds with trailing zeros trimmed (as Go writes it).
fn pax_time(secs: i64, nsec: u32) -> String {
    if nsec == 0 {
        return secs.to_string();
    }
    let frac = format!("{nsec:09}");
    let frac = frac.trim_end_matches('0');
    if secs < 0 {
        // -1.5 means 1.5 s before the epoch: the fraction is subtracted.
        let whole = secs + 1;
        let inv = 1_000_000_000 - nsec;
        let f = format!("{inv:09}");
        return format!("-{}.{}", whole.unsigned_abs(), f.trim_end_matches('0'));
    }
    format!("{secs}.{frac}")
}

/// `"<len> key=value\n"` records, where `len` counts the whole record.
fn pax_body(records: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in records {
        let rest = k.len() + v.len() + 3; // ' ' '=' '\n'
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        body.extend_from_slice(len.to_string().as_bytes());
        body.push(b' ');
        body.extend_from_slice(k.as_bytes());
        body.push(b'=');
        body.extend_from_slice(v);
        body.push(b'\n');
    }
    body
}

/// `dir/PaxHeaders.0/base`, cut to 100 bytes, as Go names PAX headers.
fn pax_header_name(name: &str) -> String {
    let (dir, base) = match name.rsplit_once('/') {
        Some((d, b)) => (format!("{d}/"), b),
        None => (String::new(), name),
    };
    truncate(&format!("{dir}PaxHeaders.0/{base}"), 100)
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[allow(clippy::too_many_arguments)]
fn ustar(
    name: &str,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    link: &str,
    dev: (u32, u32),
) -> [u8; 512] {
    let mut h = [0u8; 512];
    put_str(&mut h[0..100], name);
    put_octal(&mut h[100..108], u64::from(mode));
    put_octal(&mut h[108..116], uid);
    put_octal(&mut h[116..124], gid);
    put_octal(&mut h[124..136], size);
    put_octal(&mut h[136..148], mtime);
    h[156] = typeflag;
    put_str(&mut h[157..257], link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // uname and gname stay empty.
    put_octal(&mut h[329..337], u64::from(dev.0).min(MAX_OCTAL_8));
    put_octal(&mut h[337..345], u64::from(dev.1).min(MAX_OCTAL_8));
    h
}

/// Copies as much of `s` as fits (the full value is in the PAX header when it does not).
fn put_str(field: &mut [u8], s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(field.len());
    field[..n].copy_from_slice(&b[..n]);
}

/// Zero-padded octal, NUL-terminated, filling the field.
fn put_octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

fn checksum(h: &mut [u8; 512]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut r = BTreeMap::new();
        r.insert("path".to_string(), vec![b'a'; 93]);
        let body = pax_body(&r);
        let text = String::from_utf8_lossy(&body);
        let len: usize = text
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert_eq!(len, body.len());
        assert_eq!(pax_time(5, 500_000_000), "5.5");
        assert_eq!(pax_time(-2, 500_000_000), "-1.5");
    }
}
