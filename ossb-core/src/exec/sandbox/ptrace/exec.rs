//! `execve` in the guest: the kernel would read `#!` interpreters and the ELF `PT_INTERP`
//! loader from the *host*, so the tracer works out the real program chain itself and
//! executes the rootfs's loader with the program as its argument, as PRoot does.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Most `#!` levels (the kernel allows 4 since 5.x: `BINPRM_MAX_RECURSION`).
const MAX_SCRIPT_DEPTH: usize = 4;

/// What to execute instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Host path for the kernel.
    pub host: Vec<u8>,
    /// New leading argv strings, replacing `argv[0]`; the rest of the original argv
    /// (`argv[1..]`) follows unchanged.
    pub head: Vec<Vec<u8>>,
    /// The guest path of the program `/proc/self/exe` should show.
    pub exe: Vec<u8>,
}

/// The header facts of an executable.
enum Kind {
    Script {
        interp: Vec<u8>,
        arg: Option<Vec<u8>>,
    },
    Elf {
        interp: Option<Vec<u8>>,
    },
    Other,
}

fn inspect(host: &Path) -> std::io::Result<Kind> {
    let mut f = std::fs::File::open(host)?;
    let mut head = vec![0u8; 256];
    let n = read_full(&mut f, &mut head)?;
    head.truncate(n);
    if head.starts_with(b"#!") {
        let line = head[2..].split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line: &[u8] = trim(line);
        let (interp, arg) = match line.iter().position(|b| *b == b' ' || *b == b'\t') {
            Some(i) => {
                let a = trim(&line[i..]);
                (&line[..i], (!a.is_empty()).then(|| a.to_vec()))
            }
            None => (line, None),
        };
        if interp.is_empty() {
            return Err(std::io::Error::from_raw_os_error(libc::ENOEXEC));
        }
        return Ok(Kind::Script {
            interp: interp.to_vec(),
            arg,
        });
    }
    if head.len() >= 64 && head.starts_with(b"\x7fELF") {
        return Ok(Kind::Elf {
            interp: elf_interp(&mut f, &head)?,
        });
    }
    Ok(Kind::Other)
}

fn trim(s: &[u8]) -> &[u8] {
    let s = match s.iter().position(|b| !b.is_ascii_whitespace()) {
        Some(i) => &s[i..],
        None => return &[],
    };
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &s[..end]
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// `PT_INTERP` of a 64-bit little-endian ELF (others run as they are).
fn elf_interp(f: &mut std::fs::File, head: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::{Seek, SeekFrom};
    const PT_INTERP: u32 = 3;
    if head[4] != 2 || head[5] != 1 {
        return Ok(None);
    }
    let u16_at = |o: usize| u16::from_le_bytes([head[o], head[o + 1]]);
    let phoff = u64::from_le_bytes(head[32..40].try_into().unwrap_or([0; 8]));
    let phentsize = u64::from(u16_at(54));
    let phnum = u64::from(u16_at(56));
    if phentsize < 56 || phnum > 4096 {
        return Ok(None);
    }
    let mut table = vec![0u8; (phentsize * phnum) as usize];
    f.seek(SeekFrom::Start(phoff))?;
    if read_full(f, &mut table)? != table.len() {
        return Ok(None);
    }
    for ph in table.chunks(phentsize as usize) {
        let p_type = u32::from_le_bytes(ph[0..4].try_into().unwrap_or([0; 4]));
        if p_type != PT_INTERP {
            continue;
        }
        let off = u64::from_le_bytes(ph[8..16].try_into().unwrap_or([0; 8]));
        let size = u64::from_le_bytes(ph[32..40].try_into().unwrap_or([0; 8]));
        if size == 0 || size > 4096 {
            return Ok(None);
        }
        let mut buf = vec![0u8; size as usize];
        f.seek(SeekFrom::Start(off))?;
        read_full(f, &mut buf)?;
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        buf.truncate(end);
        return Ok(Some(buf));
    }
    Ok(None)
}

/// Maps a guest path to its `(host, guest)` paths, following links, or an errno.
pub type Resolver<'a> = dyn FnMut(&[u8]) -> Result<(Vec<u8>, Vec<u8>), i32> + 'a;

/// Caches whether a loader understands `--argv0` (glibc 2.33+, musl), by its host path.
#[derive(Default)]
pub struct LoaderCache {
    argv0: HashMap<Vec<u8>, bool>,
}

impl LoaderCache {
    fn supports_argv0(&mut self, host: &[u8]) -> bool {
        if let Some(v) = self.argv0.get(host) {
            return *v;
        }
        let p = Path::new(std::ffi::OsStr::from_bytes_compat(host));
        let v = std::fs::read(p)
            .map(|b| b.windows(7).any(|w| w == b"--argv0"))
            .unwrap_or(false);
        self.argv0.insert(host.to_vec(), v);
        v
    }
}

trait FromBytesCompat {
    fn from_bytes_compat(b: &[u8]) -> &Self;
}

impl FromBytesCompat for std::ffi::OsStr {
    fn from_bytes_compat(b: &[u8]) -> &Self {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

/// `EACCES` unless `host` is a regular file with an execute bit (the kernel checks only the
/// loader it is given).
fn check_executable(host: &[u8]) -> Result<(), i32> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::metadata(std::ffi::OsStr::from_bytes_compat(host))
        .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOENT))?;
    if !md.is_file() || md.permissions().mode() & 0o111 == 0 {
        return Err(libc::EACCES);
    }
    Ok(())
}

/// Works out the chain for executing the guest program `path` (as the caller wrote it) with
/// original `argv0`. `resolve` maps a guest path to `(host, guest)` paths, following links.
pub fn plan(
    path: &[u8],
    argv0: &[u8],
    resolve: &mut Resolver<'_>,
    loaders: &mut LoaderCache,
) -> Result<Plan, i32> {
    let (mut host, mut guest) = resolve(path)?;
    check_executable(&host)?;
    // argv as the kernel would build it: `#!` lines prepend the interpreter (and its
    // argument) and replace argv[0] by the script path as written.
    let mut head: Vec<Vec<u8>> = vec![argv0.to_vec()];
    let mut written = path.to_vec();
    for _ in 0..=MAX_SCRIPT_DEPTH {
        let kind = inspect(Path::new(std::ffi::OsStr::from_bytes_compat(&host)))
            .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOEXEC))?;
        match kind {
            Kind::Script { interp, arg } => {
                let mut new = vec![interp.clone()];
                new.extend(arg);
                new.push(written.clone());
                new.extend(head.into_iter().skip(1));
                head = new;
                written = interp.clone();
                (host, guest) = resolve(&interp)?;
                check_executable(&host)?;
            }
            Kind::Elf {
                interp: Some(loader),
            } => {
                let (lhost, lguest) = resolve(&loader)?;
                let mut new = vec![lguest];
                if loaders.supports_argv0(&lhost) {
                    new.push(b"--argv0".to_vec());
                    new.push(head[0].clone());
                }
                new.push(guest.clone());
                new.extend(head.into_iter().skip(1));
                return Ok(Plan {
                    host: lhost,
                    head: new,
                    exe: guest,
                });
            }
            Kind::Elf { interp: None } | Kind::Other => {
                return Ok(Plan {
                    host,
                    head,
                    exe: guest,
                });
            }
        }
    }
    Err(libc::ELOOP)
}
