//! OSSB test harness (dev only).
//!
//! * [`Registry`]: a real Distribution registry (`docker-registry`) on a free loopback port,
//!   plain or with TLS and htpasswd, stopped on drop;
//! * [`require_tool`]: skip a test when a tool is missing, unless `OSSB_REQUIRE_REAL=1` or `CI`
//!   is set, in which case a missing tool fails the test;
//! * [`busybox_rootfs`]: a minimal root filesystem made from the static busybox binary;
//! * [`podsim`]: runs a command as a container runtime runs a pod (masked `/proc`, dropped
//!   capabilities, `no_new_privs`, the default seccomp profile), root only.

mod conformance;
pub mod podsim;
mod registry;
mod rootfs;
mod tools;

pub use conformance::conformance_path;
pub use registry::{Registry, RegistryStartError};
pub use rootfs::{BUSYBOX_APPLETS, busybox_rootfs};
pub use tools::{find_tool, require_real, require_tool};
