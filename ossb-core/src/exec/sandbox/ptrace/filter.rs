//! The seccomp filter of traced steps: only the calls in the arch table stop in the tracer
//! (`SECCOMP_RET_TRACE`); everything else runs at full speed. Foreign-arch (i386 `int 0x80`)
//! and x32 calls are refused with `ENOSYS`, since their paths would not be translated.

use super::arch::{AUDIT_ARCH, X32_BIT};

/// The classic BPF program for these syscall numbers.
pub fn program(calls: &[u32]) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    const OFF_NR: u32 = 0;
    const OFF_ARCH: u32 = 4;
    let n = calls.len();
    let allow = 4 + n;
    let trace = allow + 1;
    let deny = trace + 1;
    let ins = |code, jt: usize, jf: usize, k| libc::sock_filter {
        code,
        jt: jt as u8,
        jf: jf as u8,
        k,
    };
    let mut p = vec![
        ins(LD_W_ABS, 0, 0, OFF_ARCH),
        ins(JEQ_K, 0, deny - 2, AUDIT_ARCH),
        ins(LD_W_ABS, 0, 0, OFF_NR),
        ins(JGE_K, deny - 4, 0, X32_BIT),
    ];
    for (i, c) in calls.iter().enumerate() {
        let at = 4 + i;
        p.push(ins(JEQ_K, trace - at - 1, 0, *c));
    }
    p.push(ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW));
    p.push(ins(RET_K, 0, 0, libc::SECCOMP_RET_TRACE));
    p.push(ins(
        RET_K,
        0,
        0,
        libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32 & libc::SECCOMP_RET_DATA),
    ));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_on_the_returns() {
        let calls = super::super::arch::trapped();
        assert!(calls.len() < 200, "jump offsets must fit a u8");
        let p = program(&calls);
        let n = calls.len();
        assert_eq!(p.len(), n + 7);
        assert_eq!(2 + p[1].jf as usize, n + 6);
        assert_eq!(4 + p[3].jt as usize, n + 6);
        for i in 0..n {
            let at = 4 + i;
            assert_eq!(at + 1 + p[at].jt as usize, n + 5);
        }
        assert_eq!(p[n + 4].k, libc::SECCOMP_RET_ALLOW);
        assert_eq!(p[n + 5].k, libc::SECCOMP_RET_TRACE);
    }
}
