//! OSSB test harness (dev only).
//!
//! * [`Registry`]: a real Distribution registry (`docker-registry`) on a free loopback port,
//!   plain or with TLS and htpasswd, stopped on drop;
//! * [`require_tool`]: skip a test when a tool is missing, unless `OSSB_REQUIRE_REAL=1` or `CI`
//!   is set, in which case a missing tool fails the test;
//! * [`busybox_rootfs`]: a minimal root filesystem made from the static busybox binary.

mod conformance;
mod registry;
mod rootfs;
mod tools;

pub use conformance::conformance_path;
pub use registry::{Registry, RegistryStartError, make_certs};
pub use rootfs::{BUSYBOX_APPLETS, busybox_rootfs};
pub use tools::{find_tool, require_real, require_tool};
