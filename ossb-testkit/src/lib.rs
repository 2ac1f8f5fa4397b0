//! OSSB test harness (dev only).
//!
//! * [`Registry`]: a real Distribution registry (`docker-registry`) on a free loopback port,
//!   plain, with TLS and htpasswd, or with TLS and Docker token authentication in front of a
//!   [`TokenServer`] of the tests' own (policy: [`TokenAuth`]), stopped on drop;
//! * [`require_tool`]: skip a test when a tool is missing, unless `OSSB_REQUIRE_REAL=1` or `CI`
//!   is set, in which case a missing tool fails the test;
//! * [`busybox_rootfs`]: a minimal root filesystem made from the static busybox binary
//!   ([`busybox_rootfs_from`] with another one, such as [`arm64_busybox`]);
//! * [`podsim`]: runs a command as a container runtime runs a pod (masked `/proc`, dropped
//!   capabilities, `no_new_privs`, the default seccomp profile), root only.

pub mod checks;
mod conformance;
mod jwt;
mod openssl;
pub mod podsim;
mod registry;
mod rootfs;
mod token_server;
mod tools;

pub use conformance::conformance_path;
pub use jwt::Signing;
pub use registry::{Registry, RegistryStartError, make_certs};
pub use rootfs::{
    ARM64_BUSYBOX, BUSYBOX_APPLETS, arm64_busybox, busybox_rootfs, busybox_rootfs_from,
};
pub use token_server::{TOKEN_ISSUER, TOKEN_SERVICE, TokenAuth, TokenRequest, TokenServer};
pub use tools::{find_tool, require_real, require_tool};
