//! The rungs of the execution ladder: how a RUN step is isolated, best first.
//!
//! The ladder is probed once per build (`exec::doctor`), the first rung whose probe passed
//! runs every step, and `--sandbox` can force one. See `docs/execution-ladder.md`.

use serde::{Deserialize, Serialize};

/// One way to run a RUN step.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Rung {
    /// User, mount, PID, IPC and UTS namespaces with a fresh `/proc` of the step's PID
    /// namespace.
    #[default]
    Full,
    /// The same namespaces, but `/proc` is a recursive bind of the existing one (a fresh procfs
    /// is refused where the container runtime masked `/proc`); OSSB's own process is made
    /// non-dumpable so a step cannot read its memory, environment or files through it.
    Reduced,
    /// No namespaces: OSSB is uid 0 without `CAP_SYS_ADMIN`; the step is `chroot`ed into the
    /// rootfs with its capabilities to leave the chroot dropped.
    Chroot,
    /// No namespaces and no privileges: a ptrace supervisor translates the step's paths into
    /// the rootfs and emulates uid 0.
    Ptrace,
}

impl Rung {
    /// Every rung, best first.
    pub const ALL: [Rung; 4] = [Rung::Full, Rung::Reduced, Rung::Chroot, Rung::Ptrace];

    /// The name used by `--sandbox`, the log and the status file.
    pub fn name(self) -> &'static str {
        match self {
            Rung::Full => "full",
            Rung::Reduced => "reduced",
            Rung::Chroot => "chroot",
            Rung::Ptrace => "ptrace",
        }
    }

    /// Whether the rung mounts (and can therefore use the overlay snapshotter).
    pub fn mounts(self) -> bool {
        matches!(self, Rung::Full | Rung::Reduced)
    }

    /// Whether the sandbox init creates namespaces (and the parent writes its id maps).
    pub fn namespaces(self) -> bool {
        self.mounts()
    }

    /// What the rung isolates, in a few words (for the log and `ossb doctor`).
    pub fn summary(self) -> &'static str {
        match self {
            Rung::Full => "user+mount+PID namespaces, fresh /proc",
            Rung::Reduced => {
                "user+mount+PID namespaces, the existing /proc bound in, OSSB non-dumpable"
            }
            Rung::Chroot => "chroot as uid 0, no namespaces, no /proc",
            Rung::Ptrace => "ptrace path translation, no namespaces",
        }
    }

    /// The pod settings that make this rung available.
    pub fn enabled_by(self) -> &'static str {
        match self {
            Rung::Full => {
                "a seccomp profile that allows unshare/clone with namespace flags (seccompProfile \
                 type Unconfined, or a Localhost profile that allows them) and \
                 securityContext.procMount: Unmasked (or hostUsers: false, which lets the \
                 runtime mount an unmasked /proc)"
            }
            Rung::Reduced => {
                "a seccomp profile that allows unshare/clone with namespace flags (seccompProfile \
                 type Unconfined or a Localhost profile); user namespaces enabled on the node \
                 (user.max_user_namespaces > 0)"
            }
            Rung::Chroot => {
                "runAsUser: 0 with CAP_SYS_CHROOT (in the container runtime's default capability \
                 set; best with hostUsers: false so uid 0 is not the node's root), or \
                 capabilities add SYS_ADMIN for the namespace rungs"
            }
            Rung::Ptrace => {
                "ptrace allowed by the seccomp profile (RuntimeDefault allows it on Linux 4.8+) \
                 and an ossb built with the ptrace sandbox"
            }
        }
    }
}

impl std::fmt::Display for Rung {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Rung {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rung::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                format!("unknown sandbox {s:?}: use auto, full, reduced, chroot or ptrace")
            })
    }
}

/// How the rung is chosen (`--sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SandboxMode {
    /// The best rung whose probe passed.
    #[default]
    Auto,
    /// This rung; the build fails with the probe's reason when it is not available.
    Force(Rung),
}

impl std::str::FromStr for SandboxMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            Ok(SandboxMode::Auto)
        } else {
            s.parse().map(SandboxMode::Force)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_is_best_first() {
        for r in Rung::ALL {
            assert_eq!(r.name().parse::<Rung>(), Ok(r));
            assert_eq!(
                serde_json::to_string(&r).ok(),
                Some(format!("\"{}\"", r.name()))
            );
        }
        assert!(Rung::Full < Rung::Reduced && Rung::Chroot < Rung::Ptrace);
        assert_eq!("auto".parse::<SandboxMode>(), Ok(SandboxMode::Auto));
        assert_eq!(
            "chroot".parse::<SandboxMode>(),
            Ok(SandboxMode::Force(Rung::Chroot))
        );
        let err = "gvisor".parse::<SandboxMode>().err().unwrap_or_default();
        assert!(
            err.contains("auto, full, reduced, chroot or ptrace"),
            "{err}"
        );
    }
}
