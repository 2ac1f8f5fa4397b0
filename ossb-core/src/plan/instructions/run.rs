//! `RUN` and its flags: `--mount`, `--network`, `--security`, `--device`.

use super::Req;
use super::command::{CommandLine, shell_dependent};
use crate::plan::flags::FlagKind;
use serde::Serialize;
use std::collections::BTreeSet;

/// The kind of a `RUN --mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A read-only (by default) view of the context, a stage or an image.
    Bind,
    /// A persistent cache directory.
    Cache,
    /// An empty in-memory file system.
    Tmpfs,
    /// A secret file (or environment variable).
    Secret,
    /// An SSH agent socket.
    Ssh,
}

impl MountType {
    /// The name as written in `type=`.
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheSharing {
    /// Shared by all writers (the default).
    Shared,
    /// Each writer gets its own copy when busy.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// One `RUN --mount=...`, parsed like BuildKit's `ParseMount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// `type=` (default bind).
    pub mount_type: MountType,
    /// `from=`: a stage name or an image to mount from (bind, cache).
    pub from: Option<String>,
    /// `source=`/`src=`: path in `from`, or the secret id.
    pub source: Option<String>,
    /// `target=`/`dst=`/`destination=`/`dest=`: where it appears.
    pub target: Option<String>,
    /// Read-only; defaults to false for cache and tmpfs, true otherwise.
    pub read_only: bool,
    /// `id=`: cache id, secret id or ssh id.
    pub id: Option<String>,
    /// `sharing=` (cache only).
    pub sharing: Option<CacheSharing>,
    /// `required` (secret and ssh only).
    pub required: bool,
    /// `size=` in bytes (tmpfs only).
    pub size_limit: Option<i64>,
    /// `mode=` (octal; secret, ssh, cache).
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
    /// `env=`: expose a secret as this environment variable.
    pub env: Option<String>,
}

/// `RUN --network=` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The default network.
    Default,
    /// No network.
    None,
    /// The host's network.
    Host,
}

/// `RUN --security=` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// The normal sandbox.
    Sandbox,
    /// Privileged (needs the `security.insecure` entitlement).
    Insecure,
}

/// `RUN --device=name[,required]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// The CDI device name.
    pub name: String,
    /// True when the build must fail without the device.
    pub required: bool,
}

/// A `RUN` instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// The command.
    pub cmd: CommandLine,
    /// The `--mount` values as written.
    pub mount_specs: Vec<String>,
    /// The parsed mounts (after expansion when the step was expanded).
    pub mounts: Vec<Mount>,
    /// `--network`, as written (`default` when absent).
    pub network_spec: String,
    /// `--network`.
    pub network: Network,
    /// `--security`, as written (`sandbox` when absent).
    pub security_spec: String,
    /// `--security`.
    pub security: Security,
    /// `--device`.
    pub devices: Vec<Device>,
    /// Names of the flags given (`mount`, `network`, ...).
    pub flags_used: BTreeSet<String>,
}

/// Split a comma-separated list like Go's `encoding/csv` (double quotes group, `""` escapes).
pub(crate) fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut at_start = true;
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            ',' => {
                out.push(std::mem::take(&mut cur));
                at_start = true;
                continue;
            }
            '"' if at_start => in_quotes = true,
            '"' => return Err(format!("parse error: bare \" in non-quoted field in {s:?}")),
            c => cur.push(c),
        }
        at_start = false;
    }
    if in_quotes {
        return Err(format!(
            "parse error: extraneous or missing \" in quoted field in {s:?}"
        ));
    }
    out.push(cur);
    Ok(out)
}

fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// docker/go-units `RAMInBytes`: `64m`, `1g`, `512kb`, `100` (binary multiples).
fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let err = || format!("invalid size: '{s}'");
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(num_end);
    if num.is_empty() {
        return Err(err());
    }
    let value: f64 = num.parse().map_err(|_| err())?;
    let unit = unit.trim_start_matches(' ').to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(err()),
    };
    Ok((value * mult) as i64)
}

/// Expands one word (used to expand `--mount` values).
pub type WordExpand<'a> = dyn Fn(&str) -> Result<String, String> + 'a;

/// Parse one `--mount` value. With `expand` set, every value is expanded first; without it,
/// values are only checked where they do not depend on variables (BuildKit's deferred mode).
pub fn parse_mount(val: &str, expand: Option<&WordExpand<'_>>) -> Result<Mount, String> {
    let mut m = Mount {
        mount_type: MountType::Bind,
        from: None,
        source: None,
        target: None,
        read_only: false,
        id: None,
        sharing: None,
        required: false,
        size_limit: None,
        mode: None,
        uid: None,
        gid: None,
        env: None,
    };
    let mut ro_auto = true;
    for field in csv_fields(val)? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(value) = value else {
            if expand.is_none() {
                continue;
            }
            match key.as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    ro_auto = false;
                }
                "required" => {
                    if matches!(m.mount_type, MountType::Secret | MountType::Ssh) {
                        m.required = true;
                    } else {
                        return Err(unexpected_key(&key, m.mount_type));
                    }
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let value = match expand {
            Some(f) => f(&value)?,
            None => {
                if key == "from" && value.find('$').is_some_and(|i| i != value.len() - 1) {
                    return Err(format!(
                        "'{key}' doesn't support variable expansion, define alias stage instead"
                    ));
                }
                continue;
            }
        };
        match key.as_str() {
            "type" => {
                m.mount_type = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => return Err(format!("unsupported mount type {value:?}")),
                }
            }
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" | "dest" => m.target = Some(value),
            "readonly" | "ro" => {
                m.read_only = parse_go_bool(&value)
                    .ok_or_else(|| format!("invalid value for {key}: {value}"))?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                let rw = parse_go_bool(&value)
                    .ok_or_else(|| format!("invalid value for {key}: {value}"))?;
                m.read_only = !rw;
                ro_auto = false;
            }
            "required" => {
                if matches!(m.mount_type, MountType::Secret | MountType::Ssh) {
                    m.required = parse_go_bool(&value)
                        .ok_or_else(|| format!("invalid value for {key}: {value}"))?;
                } else {
                    return Err(unexpected_key(&key, m.mount_type));
                }
            }
            "size" => {
                if m.mount_type == MountType::Tmpfs {
                    m.size_limit = Some(ram_in_bytes(&value)?);
                } else {
                    return Err(unexpected_key(&key, m.mount_type));
                }
            }
            "id" => m.id = Some(value),
            "sharing" => {
                if m.mount_type != MountType::Cache {
                    return Err(unexpected_key(&key, m.mount_type));
                }
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => return Err(format!("unsupported sharing value {value:?}")),
                });
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .map_err(|_| format!("invalid value {value} for mode"))?,
                )
            }
            "uid" => {
                m.uid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for uid"))?,
                )
            }
            "gid" => {
                m.gid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for gid"))?,
                )
            }
            "env" => m.env = Some(value),
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if expand.is_none() {
        return Ok(m);
    }
    let file_info_allowed = matches!(
        m.mount_type,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        let t = m.mount_type.as_str();
        if m.mode.is_some() {
            return Err(format!("mode not allowed for {t:?} type mounts"));
        }
        if m.uid.is_some() {
            return Err(format!("uid not allowed for {t:?} type mounts"));
        }
        if m.gid.is_some() {
            return Err(format!("gid not allowed for {t:?} type mounts"));
        }
    }
    if ro_auto {
        m.read_only = !matches!(m.mount_type, MountType::Cache | MountType::Tmpfs);
    }
    match m.mount_type {
        MountType::Secret => {
            if m.from.is_some() {
                return Err("secret mount should not have a from".to_string());
            }
            if m.source.is_none() && m.target.is_none() && m.id.is_none() && m.env.is_none() {
                return Err("invalid secret mount. one of source, target required".to_string());
            }
            if m.source.is_some() && m.id.is_some() {
                return Err("both source and id can't be set".to_string());
            }
        }
        MountType::Ssh => {
            if m.from.is_some() {
                return Err("ssh mount should not have a from".to_string());
            }
        }
        MountType::Bind | MountType::Cache | MountType::Tmpfs => {
            if m.target.as_deref().unwrap_or("").is_empty() {
                return Err(format!(
                    "mount type {:?} requires a target: add target=<path> to --mount",
                    m.mount_type.as_str()
                ));
            }
        }
    }
    Ok(m)
}

fn unexpected_key(key: &str, t: MountType) -> String {
    format!("unexpected key '{key}' for mount type '{}'", t.as_str())
}

/// Parse one `--device` value like BuildKit's `ParseDevice`.
pub fn parse_device(val: &str) -> Result<Device, String> {
    let mut name = String::new();
    let mut required = false;
    for field in csv_fields(val)? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        match (key.as_str(), value) {
            ("name", Some(v)) => {
                if !name.is_empty() {
                    return Err(format!("device name already set to {name}"));
                }
                name = v.to_string();
            }
            ("required", None) => required = true,
            ("required", Some(v)) => {
                required =
                    parse_go_bool(v).ok_or_else(|| format!("invalid value for required: {v}"))?;
            }
            _ => {
                if !name.is_empty() {
                    return Err(format!("device name already set to {name}"));
                }
                name = field.clone();
            }
        }
    }
    if name.is_empty() {
        return Err(format!("invalid device {val:?}: a device name is required"));
    }
    Ok(Device { name, required })
}

pub(crate) fn parse_network(v: &str) -> Result<Network, String> {
    match v {
        "default" => Ok(Network::Default),
        "none" => Ok(Network::None),
        "host" => Ok(Network::Host),
        _ => Err(format!("unsupported network mode {v:?}")),
    }
}

pub(crate) fn parse_security(v: &str) -> Result<Security, String> {
    match v {
        "sandbox" => Ok(Security::Sandbox),
        "insecure" => Ok(Security::Insecure),
        _ => Err(format!("unsupported security mode {v:?}")),
    }
}

pub(super) fn parse_run(req: &Req<'_>) -> Result<Run, String> {
    let flags = req.flags(&[
        ("mount", FlagKind::Strings),
        ("network", FlagKind::String),
        ("security", FlagKind::String),
        ("device", FlagKind::Strings),
    ])?;
    let mount_specs = flags.strings("mount");
    let identity = |s: &str| -> Result<String, String> { Ok(s.to_string()) };
    let mut mounts = Vec::new();
    for spec in &mount_specs {
        // Deferred check always; a full parse when nothing depends on variables.
        parse_mount(spec, None)?;
        if !spec.contains('$') {
            mounts.push(parse_mount(spec, Some(&identity))?);
        }
    }
    let network_spec = flags.string("network").unwrap_or_else(|| "default".into());
    let network = if network_spec.contains('$') {
        Network::Default
    } else {
        parse_network(&network_spec)?
    };
    let security_spec = flags.string("security").unwrap_or_else(|| "sandbox".into());
    let security = if security_spec.contains('$') {
        Security::Sandbox
    } else {
        parse_security(&security_spec)?
    };
    let devices = flags
        .strings("device")
        .iter()
        .map(|d| parse_device(d))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Run {
        cmd: shell_dependent(req, true),
        mount_specs,
        mounts,
        network_spec,
        network,
        security_spec,
        security,
        devices,
        flags_used: flags.used(),
    })
}
