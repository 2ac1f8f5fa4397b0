//! A pod simulator: runs a command the way a container runtime runs a pod's container, on this
//! machine, so the execution ladder can be tested without Kubernetes (root only).
//!
//! [`Pod::command`] returns a [`Command`] whose child, before `execve`:
//!
//! 1. enters a new mount namespace (mounts stay private to it);
//! 2. masks `/proc` like runc's defaults: `/dev/null` bound over `kcore`, `keys`,
//!    `timer_list`, `latency_stats`, `sched_debug`, `timer_stats`; a read-only tmpfs over
//!    `acpi`, `asound`, `scsi`; read-only binds of `bus`, `fs`, `irq`, `sys`, `sysrq-trigger`
//!    (so a fresh procfs is refused in a user namespace, as in a real pod);
//! 3. hides `/etc/subuid` and `/etc/subgid` (empty files bound over them: no ranges);
//! 4. switches to the pod's uid/gid and capability set: none for a non-root pod (Kubernetes
//!    `restricted`: drop ALL), or the container runtime's default set for uid 0; the bounding
//!    set is cut to the same set;
//! 5. sets `no_new_privs` (`allowPrivilegeEscalation: false`);
//! 6. applies the seccomp profile: [`Seccomp::RuntimeDefault`] is a transcription of the
//!    Docker/containerd default profile's refusals (below), [`Seccomp::Unconfined`] none.
//!
//! The default profile is an allow-list; what it refuses to a process with the capability set
//! `caps` is transcribed here as a deny-list for x86_64 (other architectures' calls and the x32
//! ABI are refused outright): `clone` with any namespace flag and `clone3` (`ENOSYS`, so libc
//! falls back to `clone`) unless `CAP_SYS_ADMIN`; `unshare`, `setns`, `mount`, `umount2`,
//! the new mount API, `sethostname`, `bpf`, `perf_event_open`, `fanotify_init`, `quotactl`,
//! `syslog` unless `CAP_SYS_ADMIN`; `chroot` unless `CAP_SYS_CHROOT`; `kcmp`, `pidfd_getfd`,
//! `process_madvise` unless `CAP_SYS_PTRACE` (`ptrace` and `process_vm_*` are allowed on
//! Linux 4.8+); module, reboot, accounting, time, raw I/O, NUMA-policy and `vhangup` calls
//! unless their capabilities; never `pivot_root`, `keyctl`/`add_key`/`request_key`, `kexec_*`,
//! `swapon`/`swapoff`, `userfaultfd`, `io_uring_*`, `uselib`, `ustat`, `sysfs`, `_sysctl`,
//! `nfsservctl`; `personality` only with 0, 8, 0x20000, 0x20008 or 0xffffffff; `socket` not
//! with `AF_VSOCK`. Refusals return `EPERM`.

use std::ffi::CString;
use std::io;
use std::path::Path;
use std::process::Command;

/// Capability numbers (`<linux/capability.h>`).
pub mod cap {
    /// `CAP_CHOWN`
    pub const CHOWN: u32 = 0;
    /// `CAP_DAC_OVERRIDE`
    pub const DAC_OVERRIDE: u32 = 1;
    /// `CAP_DAC_READ_SEARCH`
    pub const DAC_READ_SEARCH: u32 = 2;
    /// `CAP_FOWNER`
    pub const FOWNER: u32 = 3;
    /// `CAP_FSETID`
    pub const FSETID: u32 = 4;
    /// `CAP_KILL`
    pub const KILL: u32 = 5;
    /// `CAP_SETGID`
    pub const SETGID: u32 = 6;
    /// `CAP_SETUID`
    pub const SETUID: u32 = 7;
    /// `CAP_SETPCAP`
    pub const SETPCAP: u32 = 8;
    /// `CAP_NET_BIND_SERVICE`
    pub const NET_BIND_SERVICE: u32 = 10;
    /// `CAP_NET_RAW`
    pub const NET_RAW: u32 = 13;
    /// `CAP_SYS_MODULE`
    pub const SYS_MODULE: u32 = 16;
    /// `CAP_SYS_RAWIO`
    pub const SYS_RAWIO: u32 = 17;
    /// `CAP_SYS_CHROOT`
    pub const SYS_CHROOT: u32 = 18;
    /// `CAP_SYS_PTRACE`
    pub const SYS_PTRACE: u32 = 19;
    /// `CAP_SYS_PACCT`
    pub const SYS_PACCT: u32 = 20;
    /// `CAP_SYS_ADMIN`
    pub const SYS_ADMIN: u32 = 21;
    /// `CAP_SYS_BOOT`
    pub const SYS_BOOT: u32 = 22;
    /// `CAP_SYS_NICE`
    pub const SYS_NICE: u32 = 23;
    /// `CAP_SYS_TIME`
    pub const SYS_TIME: u32 = 25;
    /// `CAP_SYS_TTY_CONFIG`
    pub const SYS_TTY_CONFIG: u32 = 26;
    /// `CAP_MKNOD`
    pub const MKNOD: u32 = 27;
    /// `CAP_AUDIT_WRITE`
    pub const AUDIT_WRITE: u32 = 29;
    /// `CAP_SETFCAP`
    pub const SETFCAP: u32 = 31;
    /// `CAP_SYSLOG`
    pub const SYSLOG: u32 = 34;

    /// The container runtime's default capability set (Docker, containerd).
    pub const RUNTIME_DEFAULT: &[u32] = &[
        CHOWN,
        DAC_OVERRIDE,
        FSETID,
        FOWNER,
        MKNOD,
        NET_RAW,
        SETGID,
        SETUID,
        SETFCAP,
        SETPCAP,
        NET_BIND_SERVICE,
        SYS_CHROOT,
        KILL,
        AUDIT_WRITE,
    ];
}

/// The pod's seccomp profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seccomp {
    /// `seccompProfile: {type: RuntimeDefault}`: the container runtime's default profile.
    RuntimeDefault,
    /// `seccompProfile: {type: Unconfined}`: no filter.
    Unconfined,
}

/// One simulated pod's security settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// `runAsUser` (the gid is the same).
    pub uid: u32,
    /// The container's capabilities (numbers from [`cap`]).
    pub caps: Vec<u32>,
    /// The seccomp profile.
    pub seccomp: Seccomp,
}

impl Pod {
    /// The Kubernetes `restricted` profile: uid 1000, capabilities drop ALL,
    /// `allowPrivilegeEscalation: false`, seccomp `RuntimeDefault`, masked `/proc`.
    pub fn restricted() -> Pod {
        Pod {
            uid: 1000,
            caps: Vec::new(),
            seccomp: Seccomp::RuntimeDefault,
        }
    }

    /// `restricted` but with seccomp `Unconfined`.
    pub fn unconfined() -> Pod {
        Pod {
            seccomp: Seccomp::Unconfined,
            ..Pod::restricted()
        }
    }

    /// uid 0 with the runtime's default capabilities and seccomp profile (a plain
    /// `docker run` / a pod without a security context).
    pub fn root_default() -> Pod {
        Pod {
            uid: 0,
            caps: cap::RUNTIME_DEFAULT.to_vec(),
            seccomp: Seccomp::RuntimeDefault,
        }
    }

    /// Whether pods can be simulated here (`Err` names why not: the harness needs root).
    pub fn available() -> Result<(), String> {
        #[allow(unsafe_code)]
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return Err(format!(
                "the pod simulator needs root (it mounts and sets up seccomp); running as uid {euid}"
            ));
        }
        Ok(())
    }

    /// `program` to be run in this pod. Everything the child does before `execve` is prepared
    /// here, so the child only makes system calls.
    pub fn command(&self, program: impl AsRef<Path>) -> io::Result<Command> {
        let plan = Plan::new(self)?;
        let mut cmd = Command::new(program.as_ref());
        #[allow(unsafe_code)]
        // SAFETY: the closure runs in the forked child before execve and only makes raw system
        // calls on data prepared above (no allocation, no locks).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || plan.apply());
        }
        Ok(cmd)
    }
}

/// Everything the child needs, prepared before the fork.
struct Plan {
    files: Vec<CString>,
    dirs: Vec<CString>,
    readonly: Vec<CString>,
    dev_null: CString,
    tmpfs: CString,
    uid: u32,
    caps: u64,
    filter: Option<Vec<libc::sock_filter>>,
}

const MASKED_FILES: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/etc/subuid",
    "/etc/subgid",
];
const MASKED_DIRS: &[&str] = &["/proc/acpi", "/proc/asound", "/proc/scsi"];
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn existing(paths: &[&str]) -> io::Result<Vec<CString>> {
    paths
        .iter()
        .filter(|p| Path::new(p).exists())
        .map(|p| CString::new(*p).map_err(io::Error::other))
        .collect()
}

impl Plan {
    fn new(pod: &Pod) -> io::Result<Plan> {
        let caps = pod.caps.iter().fold(0u64, |m, c| m | (1u64 << c));
        Ok(Plan {
            files: existing(MASKED_FILES)?,
            dirs: existing(MASKED_DIRS)?,
            readonly: existing(READONLY)?,
            dev_null: CString::new("/dev/null").map_err(io::Error::other)?,
            tmpfs: CString::new("tmpfs").map_err(io::Error::other)?,
            uid: pod.uid,
            caps,
            filter: match pod.seccomp {
                Seccomp::RuntimeDefault => Some(runtime_default_filter(caps)),
                Seccomp::Unconfined => None,
            },
        })
    }

    #[allow(unsafe_code)]
    fn apply(&self) -> io::Result<()> {
        let check = |rc: libc::c_int| {
            if rc == -1 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        let null = std::ptr::null::<libc::c_char>();
        // SAFETY: every pointer is a NUL-terminated string owned by `self` or null where the
        // call allows it; the structs passed to capset/prctl are fully initialised.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            let root = c"/".as_ptr();
            check(libc::mount(
                null,
                root,
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            for f in &self.files {
                check(libc::mount(
                    self.dev_null.as_ptr(),
                    f.as_ptr(),
                    null,
                    libc::MS_BIND,
                    std::ptr::null(),
                ))?;
            }
            for d in &self.dirs {
                check(libc::mount(
                    self.tmpfs.as_ptr(),
                    d.as_ptr(),
                    self.tmpfs.as_ptr(),
                    libc::MS_RDONLY,
                    std::ptr::null(),
                ))?;
            }
            for p in &self.readonly {
                check(libc::mount(
                    p.as_ptr(),
                    p.as_ptr(),
                    null,
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?;
                check(libc::mount(
                    p.as_ptr(),
                    p.as_ptr(),
                    null,
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC,
                    std::ptr::null(),
                ))?;
            }
            // The bounding set first (needs CAP_SETPCAP, which the switch below drops).
            for c in 0..64u32 {
                if self.caps & (1u64 << c) != 0 {
                    continue;
                }
                if libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) == -1 {
                    // EINVAL: past the last capability this kernel knows.
                    break;
                }
            }
            check(libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            ))?;
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setresgid(self.uid, self.uid, self.uid))?;
            // Leaving uid 0 clears every capability (no PR_SET_KEEPCAPS).
            check(libc::setresuid(self.uid, self.uid, self.uid))?;
            if self.uid == 0 {
                let header = CapHeader {
                    version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
                    pid: 0,
                };
                let lo = self.caps as u32;
                let hi = (self.caps >> 32) as u32;
                let data = [
                    CapData {
                        effective: lo,
                        permitted: lo,
                        inheritable: 0,
                    },
                    CapData {
                        effective: hi,
                        permitted: hi,
                        inheritable: 0,
                    },
                ];
                check(libc::syscall(libc::SYS_capset, &header, data.as_ptr()) as libc::c_int)?;
            }
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            if let Some(filter) = &self.filter {
                let prog = libc::sock_fprog {
                    len: filter.len() as u16,
                    filter: filter.as_ptr() as *mut libc::sock_filter,
                };
                check(libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                    &prog as *const libc::sock_fprog as libc::c_ulong,
                    0,
                    0,
                ))?;
            }
        }
        Ok(())
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// How a rule treats a call.
enum Rule {
    /// Refused with this errno.
    Errno(u32),
    /// `clone` is refused when its flags (argument 0) have any of these bits.
    CloneFlags(u32),
    /// Allowed only when argument 0 is one of these values.
    OnlyArg0(&'static [u32]),
    /// Refused when argument 0 is this value.
    NotArg0(u32),
}

/// The refusals of the runtime's default profile for a process with `caps`, x86_64 numbers.
fn runtime_default_rules(caps: u64) -> Vec<(libc::c_long, Rule)> {
    let has = |c: u32| caps & (1u64 << c) != 0;
    let eperm = libc::EPERM as u32;
    let mut rules: Vec<(libc::c_long, Rule)> = Vec::new();
    let mut deny = |calls: &[libc::c_long], allowed: bool| {
        if !allowed {
            rules.extend(calls.iter().map(|n| (*n, Rule::Errno(eperm))));
        }
    };
    deny(
        &[
            libc::SYS_bpf,
            libc::SYS_fanotify_init,
            libc::SYS_fsconfig,
            libc::SYS_fsmount,
            libc::SYS_fsopen,
            libc::SYS_fspick,
            libc::SYS_lookup_dcookie,
            libc::SYS_mount,
            libc::SYS_mount_setattr,
            libc::SYS_move_mount,
            libc::SYS_open_tree,
            libc::SYS_perf_event_open,
            libc::SYS_quotactl,
            libc::SYS_quotactl_fd,
            libc::SYS_setdomainname,
            libc::SYS_sethostname,
            libc::SYS_setns,
            libc::SYS_syslog,
            libc::SYS_umount2,
            libc::SYS_unshare,
        ],
        has(cap::SYS_ADMIN),
    );
    deny(&[libc::SYS_reboot], has(cap::SYS_BOOT));
    deny(&[libc::SYS_chroot], has(cap::SYS_CHROOT));
    deny(
        &[
            libc::SYS_delete_module,
            libc::SYS_init_module,
            libc::SYS_finit_module,
        ],
        has(cap::SYS_MODULE),
    );
    deny(&[libc::SYS_acct], has(cap::SYS_PACCT));
    deny(
        &[
            libc::SYS_kcmp,
            libc::SYS_pidfd_getfd,
            libc::SYS_process_madvise,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
        ],
        has(cap::SYS_PTRACE),
    );
    deny(&[libc::SYS_iopl, libc::SYS_ioperm], has(cap::SYS_RAWIO));
    deny(
        &[libc::SYS_settimeofday, libc::SYS_clock_settime],
        has(cap::SYS_TIME),
    );
    deny(&[libc::SYS_vhangup], has(cap::SYS_TTY_CONFIG));
    deny(
        &[
            libc::SYS_get_mempolicy,
            libc::SYS_mbind,
            libc::SYS_set_mempolicy,
        ],
        has(cap::SYS_NICE),
    );
    deny(&[libc::SYS_open_by_handle_at], has(cap::DAC_READ_SEARCH));
    deny(
        &[
            libc::SYS_pivot_root,
            libc::SYS_add_key,
            libc::SYS_keyctl,
            libc::SYS_request_key,
            libc::SYS_kexec_load,
            libc::SYS_kexec_file_load,
            libc::SYS_swapon,
            libc::SYS_swapoff,
            libc::SYS_userfaultfd,
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
            libc::SYS_uselib,
            libc::SYS_ustat,
            libc::SYS_sysfs,
            libc::SYS__sysctl,
            libc::SYS_nfsservctl,
        ],
        false,
    );
    if !has(cap::SYS_ADMIN) {
        // CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET (the profile's mask).
        rules.push((libc::SYS_clone, Rule::CloneFlags(0x7E02_0000)));
        rules.push((libc::SYS_clone3, Rule::Errno(libc::ENOSYS as u32)));
    }
    rules.push((
        libc::SYS_personality,
        Rule::OnlyArg0(&[0, 8, 0x2_0000, 0x2_0008, 0xffff_ffff]),
    ));
    rules.push((libc::SYS_socket, Rule::NotArg0(libc::AF_VSOCK as u32)));
    rules
}

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

/// The classic BPF program of [`runtime_default_rules`].
fn runtime_default_filter(caps: u64) -> Vec<libc::sock_filter> {
    const LD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let eperm = RET_ERRNO | libc::EPERM as u32;
    let mut p = vec![
        op(LD, 0, 0, 4), // arch
        op(JEQ, 1, 0, AUDIT_ARCH_X86_64),
        op(RET, 0, 0, eperm),
        op(LD, 0, 0, 0), // nr
        op(JGE, 0, 1, X32_SYSCALL_BIT),
        op(RET, 0, 0, eperm),
    ];
    for (nr, rule) in runtime_default_rules(caps) {
        // Argument 0, low 32 bits (little endian), is at offset 16 of seccomp_data.
        let body: Vec<libc::sock_filter> = match rule {
            Rule::Errno(e) => vec![op(RET, 0, 0, RET_ERRNO | e)],
            Rule::CloneFlags(mask) => vec![
                op(LD, 0, 0, 16),
                op(JSET, 0, 1, mask),
                op(RET, 0, 0, eperm),
                op(RET, 0, 0, RET_ALLOW),
            ],
            Rule::OnlyArg0(values) => {
                let n = values.len();
                let mut b = vec![op(LD, 0, 0, 16)];
                for (i, v) in values.iter().enumerate() {
                    // On a match jump over the remaining compares and the refusal.
                    b.push(op(JEQ, (n - i) as u8, 0, *v));
                }
                b.push(op(RET, 0, 0, eperm));
                b.push(op(RET, 0, 0, RET_ALLOW));
                b
            }
            Rule::NotArg0(v) => vec![
                op(LD, 0, 0, 16),
                op(JEQ, 0, 1, v),
                op(RET, 0, 0, eperm),
                op(RET, 0, 0, RET_ALLOW),
            ],
        };
        p.push(op(JEQ, 0, body.len() as u8, nr as u32));
        p.extend(body);
        // Bodies that load an argument end in a return, so `nr` need not be reloaded.
    }
    p.push(op(RET, 0, 0, RET_ALLOW));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_profile_gates_namespaces_on_cap_sys_admin() {
        let rules = runtime_default_rules(0);
        let refused = |nr| rules.iter().any(|(n, _)| *n == nr);
        assert!(refused(libc::SYS_unshare) && refused(libc::SYS_mount));
        assert!(refused(libc::SYS_chroot) && refused(libc::SYS_clone3));
        let root = runtime_default_rules(cap::RUNTIME_DEFAULT.iter().fold(0, |m, c| m | 1 << c));
        let refused_root = |nr| root.iter().any(|(n, _)| *n == nr);
        assert!(refused_root(libc::SYS_unshare) && !refused_root(libc::SYS_chroot));
        let filter = runtime_default_filter(0);
        assert!(filter.len() < 4096);
        assert_eq!(filter.last().map(|i| i.k), Some(RET_ALLOW));
    }
}
