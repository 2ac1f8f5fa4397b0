//! Foreign-architecture RUN steps: which platforms this machine runs natively, and which
//! registered `binfmt_misc` handler (usually QEMU user mode) runs the others.
//!
//! A handler is matched the way the kernel matches it: its `magic` and `mask` are applied at
//! `offset` to the ELF header of an executable of the wanted architecture. A handler with the
//! `F` (fix binary) flag keeps its interpreter open, so it works inside any root filesystem;
//! without `F` the kernel opens the interpreter path inside the RUN step's root, where it
//! must exist.

use crate::error::{Error, ExitCode};
use crate::image::oci::Platform;
use std::path::{Path, PathBuf};

/// Where the kernel exposes `binfmt_misc`.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// One registered `binfmt_misc` handler (a file in [`BINFMT_DIR`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    /// The handler's name (`qemu-aarch64`).
    pub name: String,
    /// Whether the handler is enabled.
    pub enabled: bool,
    /// The interpreter the kernel runs.
    pub interpreter: PathBuf,
    /// The flags (`F`, `O`, `C`, `P`).
    pub flags: String,
    /// Byte offset of the magic.
    pub offset: usize,
    /// The magic bytes (empty for extension handlers).
    pub magic: Vec<u8>,
    /// The mask applied before comparing (all ones when absent).
    pub mask: Vec<u8>,
}

impl Handler {
    /// Parse a handler file's text (as the kernel prints it).
    pub fn parse(name: &str, text: &str) -> Option<Handler> {
        let mut h = Handler {
            name: name.to_string(),
            enabled: false,
            interpreter: PathBuf::new(),
            flags: String::new(),
            offset: 0,
            magic: Vec::new(),
            mask: Vec::new(),
        };
        for line in text.lines() {
            let line = line.trim();
            if line == "enabled" {
                h.enabled = true;
            } else if let Some(v) = line.strip_prefix("interpreter ") {
                h.interpreter = PathBuf::from(v.trim());
            } else if let Some(v) = line.strip_prefix("flags:") {
                h.flags = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("offset ") {
                h.offset = v.trim().parse().ok()?;
            } else if let Some(v) = line.strip_prefix("magic ") {
                h.magic = hex::decode(v.trim()).ok()?;
            } else if let Some(v) = line.strip_prefix("mask ") {
                h.mask = hex::decode(v.trim()).ok()?;
            }
        }
        Some(h)
    }

    /// Whether the handler keeps its interpreter open (`F`), so it works in any root.
    pub fn fix_binary(&self) -> bool {
        self.flags.contains('F')
    }

    /// Whether the kernel would hand an executable of `arch` to this handler.
    pub fn matches(&self, platform: &Platform) -> bool {
        let Some(headers) = elf_headers(platform) else {
            return false;
        };
        if self.magic.is_empty() {
            return false;
        }
        headers.iter().any(|header| {
            self.magic.iter().enumerate().all(|(i, m)| {
                let mask = self.mask.get(i).copied().unwrap_or(0xff);
                header
                    .get(self.offset + i)
                    .is_some_and(|b| b & mask == m & mask)
            })
        })
    }
}

/// ELF identification of an architecture: class (1 = 32-bit, 2 = 64-bit), data (1 = little,
/// 2 = big endian) and `e_machine`.
fn elf_ident(platform: &Platform) -> Option<(u8, u8, u16)> {
    Some(match platform.architecture.as_str() {
        "amd64" => (2, 1, 0x3e),
        "386" => (1, 1, 0x03),
        "arm64" => (2, 1, 0xb7),
        "arm" => (1, 1, 0x28),
        "ppc64le" => (2, 1, 0x15),
        "ppc64" => (2, 2, 0x15),
        "s390x" => (2, 2, 0x16),
        "riscv64" => (2, 1, 0xf3),
        "mips64le" => (2, 1, 0x08),
        "mips64" => (2, 2, 0x08),
        "mipsle" => (1, 1, 0x08),
        "mips" => (1, 2, 0x08),
        "loong64" => (2, 1, 0x102),
        _ => return None,
    })
}

/// The first 20 bytes of an executable and of a position-independent executable for the
/// platform: what a handler's magic is compared with.
fn elf_headers(platform: &Platform) -> Option<[[u8; 20]; 2]> {
    let (class, data, machine) = elf_ident(platform)?;
    let header = |e_type: u16| {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = data;
        h[6] = 1;
        let (t, m) = if data == 1 {
            (e_type.to_le_bytes(), machine.to_le_bytes())
        } else {
            (e_type.to_be_bytes(), machine.to_be_bytes())
        };
        h[16..18].copy_from_slice(&t);
        h[18..20].copy_from_slice(&m);
        h
    };
    Some([header(2), header(3)])
}

/// The enabled handlers in `dir` (none when `binfmt_misc` is absent, unmounted or disabled).
pub fn handlers_in(dir: &Path) -> Vec<Handler> {
    let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
    if status.trim() != "enabled" {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Handler> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            if name == "status" || name == "register" {
                return None;
            }
            let text = std::fs::read_to_string(e.path()).ok()?;
            Handler::parse(&name, &text)
        })
        .filter(|h| h.enabled)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Whether `host` runs executables of `target` without an emulator: the same OS and
/// architecture, or 32-bit x86 on amd64 and 32-bit Arm on arm64 (the kernel's compat modes).
pub fn runs_natively(host: &Platform, target: &Platform) -> bool {
    let (h, t) = (host.normalize(), target.normalize());
    if h.os != t.os {
        return false;
    }
    h.architecture == t.architecture
        || (h.architecture == "amd64" && t.architecture == "386")
        || (h.architecture == "arm64" && t.architecture == "arm")
}

/// How RUN steps for a platform execute here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emulation {
    /// Natively.
    Native,
    /// Through this `binfmt_misc` handler.
    Handler(Handler),
}

/// How RUN steps for `target` run on `host`, given the handlers in `dir`; a configuration
/// error (exit code 5) that names the platform and the fix when nothing can run them.
pub fn emulation_for(host: &Platform, target: &Platform, dir: &Path) -> Result<Emulation, Error> {
    if runs_natively(host, target) {
        return Ok(Emulation::Native);
    }
    let handlers = handlers_in(dir);
    // A handler that works in every root first.
    let mut matching: Vec<&Handler> = handlers.iter().filter(|h| h.matches(target)).collect();
    matching.sort_by_key(|h| !h.fix_binary());
    match matching.first() {
        Some(h) => Ok(Emulation::Handler((*h).clone())),
        None => Err(Error::new(
            ExitCode::Configuration,
            format!(
                "RUN steps for platform {target} cannot run on this {host} machine: no enabled \
                 binfmt_misc handler for {arch} is registered in {dir}. Register an emulator on \
                 the node (Debian/Ubuntu: `apt-get install qemu-user-static binfmt-support`; in \
                 Kubernetes, on the node, not in the pod), build {target} on a node of that \
                 architecture, or drop RUN steps for it (COPY-only stages need no emulator)",
                arch = target.architecture,
                dir = dir.display()
            ),
        )),
    }
}

/// For a handler without the `F` flag, the kernel opens the interpreter inside the step's
/// root: fail with a clear message when `rootfs` does not have it.
pub fn check_interpreter_in_root(
    handler: &Handler,
    target: &Platform,
    rootfs: &Path,
) -> Result<(), Error> {
    if handler.fix_binary() {
        return Ok(());
    }
    let inside = handler.interpreter.to_string_lossy().to_string();
    let found = crate::exec::Root::open_host(rootfs)
        .ok()
        .is_some_and(|root| root.lstat(&inside).is_ok());
    if found {
        return Ok(());
    }
    Err(Error::new(
        ExitCode::Configuration,
        format!(
            "RUN steps for platform {target} need the binfmt_misc handler {name}'s interpreter \
             {inside} inside the image, because the handler lacks the F (fix binary) flag. \
             Re-register it with the F flag (Debian's qemu-user-static with binfmt-support does \
             this), or build {target} on a node of that architecture",
            name = handler.name
        ),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const QEMU_AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n\
        flags: POCF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n\
        mask ffffffffffffff00fffffffffffffffffeffffff\n";
    const QEMU_S390X: &str = "enabled\ninterpreter /usr/bin/qemu-s390x-static\nflags: \n\
        offset 0\nmagic 7f454c4602020100000000000000000000020016\n\
        mask ffffffffffffff00fffffffffffffffffffeffff\n";

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn handlers_match_the_architecture_their_magic_names() {
        let arm = Handler::parse("qemu-aarch64", QEMU_AARCH64).unwrap();
        assert!(arm.enabled && arm.fix_binary());
        assert!(arm.matches(&p("linux/arm64")));
        assert!(!arm.matches(&p("linux/amd64")));
        assert!(!arm.matches(&p("linux/arm/v7")));
        let s390 = Handler::parse("qemu-s390x", QEMU_S390X).unwrap();
        assert!(!s390.fix_binary());
        assert!(s390.matches(&p("linux/s390x")));
        assert!(!s390.matches(&p("linux/ppc64le")));
    }

    #[test]
    fn a_disabled_binfmt_misc_or_handler_counts_as_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("status"), "enabled\n").ok();
        std::fs::write(dir.path().join("register"), "").ok();
        std::fs::write(dir.path().join("qemu-aarch64"), QEMU_AARCH64).ok();
        std::fs::write(
            dir.path().join("qemu-s390x"),
            QEMU_S390X.replace("enabled", "disabled"),
        )
        .ok();
        let found = handlers_in(dir.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "qemu-aarch64");
        let host = p("linux/amd64");
        assert!(matches!(
            emulation_for(&host, &p("linux/arm64"), dir.path()),
            Ok(Emulation::Handler(_))
        ));
        let err = emulation_for(&host, &p("linux/s390x"), dir.path()).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Configuration);
        let msg = err.to_string();
        assert!(
            msg.contains("linux/s390x") && msg.contains("qemu-user-static"),
            "{msg}"
        );
        std::fs::write(dir.path().join("status"), "disabled\n").ok();
        assert!(emulation_for(&host, &p("linux/arm64"), dir.path()).is_err());
        assert_eq!(
            emulation_for(&host, &p("linux/386"), dir.path()).ok(),
            Some(Emulation::Native)
        );
    }

    #[test]
    fn an_interpreter_without_fix_binary_must_be_in_the_root() {
        let s390 = Handler::parse("qemu-s390x", QEMU_S390X).unwrap();
        let root = tempfile::tempdir().unwrap();
        let err = check_interpreter_in_root(&s390, &p("linux/s390x"), root.path()).unwrap_err();
        assert!(err.to_string().contains("F (fix binary)"), "{err}");
        std::fs::create_dir_all(root.path().join("usr/bin")).ok();
        std::fs::write(root.path().join("usr/bin/qemu-s390x-static"), "").ok();
        assert!(check_interpreter_in_root(&s390, &p("linux/s390x"), root.path()).is_ok());
    }
}
