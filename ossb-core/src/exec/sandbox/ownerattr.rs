//! The `user.rootlesscontainers` xattr (<https://github.com/rootless-containers/proto>): the
//! owner a rootless tool could not apply, stored on the file itself.
//!
//! The value is the proto3 message `Resource { uint32 uid = 1; uint32 gid = 2; }`: a missing
//! field is 0 (proto3 default), and `0xFFFFFFFF` ("noop id") means "keep the file's real id".
//! umoci and the rootless-containers PRoot fork read and write the same format.

/// Name of the xattr.
pub const ROOTLESS_XATTR: &str = "user.rootlesscontainers";

/// The "keep the real id" value of a field.
pub const NOOP_ID: u32 = u32::MAX;

/// Encodes an owner; zero fields are omitted, as proto3 encoders do.
pub fn encode_owner(uid: u32, gid: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    for (field, v) in [(1u8, uid), (2u8, gid)] {
        if v == 0 {
            continue;
        }
        out.push(field << 3);
        let mut x = v;
        while x >= 0x80 {
            out.push((x as u8 & 0x7f) | 0x80);
            x >>= 7;
        }
        out.push(x as u8);
    }
    out
}

/// Decodes an owner: `None` for a field that keeps the real id (the noop id). Malformed
/// values decode to `(None, None)` (the file keeps its real owner).
pub fn decode_owner(v: &[u8]) -> (Option<u32>, Option<u32>) {
    let (mut uid, mut gid) = (0u32, 0u32);
    let mut i = 0;
    let varint = |i: &mut usize| -> Option<u64> {
        let mut x = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *v.get(*i)?;
            *i += 1;
            x |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(x);
            }
        }
        None
    };
    while i < v.len() {
        let Some(key) = varint(&mut i) else {
            return (None, None);
        };
        if key & 7 != 0 {
            return (None, None);
        }
        let Some(val) = varint(&mut i) else {
            return (None, None);
        };
        let Ok(val) = u32::try_from(val) else {
            return (None, None);
        };
        match key >> 3 {
            1 => uid = val,
            2 => gid = val,
            _ => {}
        }
    }
    let keep = |x: u32| (x != NOOP_ID).then_some(x);
    (keep(uid), keep(gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        // uid 1000 (0x08 0xe8 0x07), gid 5 (0x10 0x05)
        assert_eq!(encode_owner(1000, 5), vec![0x08, 0xe8, 0x07, 0x10, 0x05]);
        assert_eq!(
            decode_owner(&[0x08, 0xe8, 0x07, 0x10, 0x05]),
            (Some(1000), Some(5))
        );
        for (u, g) in [(0, 0), (0, 7), (65534, 0), (u32::MAX - 1, 1)] {
            assert_eq!(decode_owner(&encode_owner(u, g)), (Some(u), Some(g)));
        }
        assert_eq!(decode_owner(&[]), (Some(0), Some(0)));
        assert_eq!(decode_owner(&encode_owner(NOOP_ID, 3)), (None, Some(3)));
        assert_eq!(decode_owner(&[0xff]), (None, None));
    }
}
