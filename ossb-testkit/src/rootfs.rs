//! A minimal root filesystem made from a static busybox binary.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

/// The applets linked into `bin/` by [`busybox_rootfs`].
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh",
    "ls",
    "cat",
    "echo",
    "mkdir",
    "rm",
    "cp",
    "mv",
    "chmod",
    "chown",
    "touch",
    "sed",
    "tar",
    "gzip",
    "gunzip",
    "md5sum",
    "sha256sum",
    "seq",
    "find",
    "head",
    "tail",
    "wc",
    "ln",
    "true",
    "false",
    "id",
    "env",
    "stat",
    "sleep",
    "grep",
    "test",
    "[",
    "dd",
    "truncate",
    "printf",
    "tee",
    "sort",
    "uniq",
    "xargs",
    "uname",
    "whoami",
    "hostname",
    "pwd",
    "basename",
    "dirname",
    "readlink",
    "date",
    "cut",
    "tr",
    "awk",
    "diff",
    "expr",
    "kill",
    "ps",
    "which",
    "du",
    "df",
    "mktemp",
    "yes",
    "rmdir",
    "realpath",
    "vi",
    "wget",
    "chgrp",
    "cmp",
    "nproc",
    "od",
    "xxd",
    "zcat",
];

/// Where the static busybox binary is looked for.
const BUSYBOX: &str = "/bin/busybox";

/// Where `scripts/install-deps.sh` puts the arm64 static busybox (from Debian's
/// `busybox-static:arm64`); `OSSB_TEST_ARM64_BUSYBOX` overrides it.
pub const ARM64_BUSYBOX: &str = "/usr/local/lib/ossb-test/arm64/busybox";

/// The arm64 static busybox binary, or `None` (with the reason printed, for a skipped test)
/// when it is not installed.
pub fn arm64_busybox() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("OSSB_TEST_ARM64_BUSYBOX")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ARM64_BUSYBOX.into());
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: no arm64 busybox at {} (scripts/install-deps.sh extracts Debian's \
             busybox-static:arm64 there)",
            path.display()
        );
        None
    }
}

/// Lays out a minimal rootfs in `dir`: `bin/busybox` plus applet symlinks
/// ([`BUSYBOX_APPLETS`]), `/etc/passwd` with `root` and `user` (1000), `/etc/group`, `/tmp`
/// (mode 1777), `/root`, `/home/user`, `/usr/bin`, `/var`, `/dev`, `/proc`, `/sys`.
pub fn busybox_rootfs(dir: &Path) -> io::Result<()> {
    busybox_rootfs_from(dir, Path::new(BUSYBOX))
}

/// [`busybox_rootfs`] with the busybox binary taken from `busybox` (another architecture's,
/// for example [`arm64_busybox`]).
pub fn busybox_rootfs_from(dir: &Path, busybox: &Path) -> io::Result<()> {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin)?;
    fs::copy(busybox, bin.join("busybox"))?;
    fs::set_permissions(bin.join("busybox"), fs::Permissions::from_mode(0o755))?;
    for applet in BUSYBOX_APPLETS {
        let link = bin.join(applet);
        if link.symlink_metadata().is_err() {
            symlink("busybox", &link)?;
        }
    }
    for d in [
        "etc",
        "root",
        "home/user",
        "usr/bin",
        "var",
        "dev",
        "proc",
        "sys",
        "tmp",
    ] {
        fs::create_dir_all(dir.join(d))?;
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::set_permissions(dir.join("root"), fs::Permissions::from_mode(0o700))?;
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    fs::write(
        dir.join("etc/group"),
        "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n",
    )?;
    fs::write(dir.join("etc/hostname"), "ossb-test\n")?;
    Ok(())
}
