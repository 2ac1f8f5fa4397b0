//! Tests of the harness itself.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use ossb_testkit::{
    BUSYBOX_APPLETS, Registry, Signing, TOKEN_SERVICE, TokenAuth, busybox_rootfs, find_tool,
    require_tool,
};

#[test]
fn busybox_rootfs_has_a_working_shell_and_users() {
    if !std::path::Path::new("/bin/busybox").exists() {
        assert!(!ossb_testkit::require_real(), "/bin/busybox is required");
        eprintln!("SKIPPED: /bin/busybox missing");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    busybox_rootfs(dir.path()).expect("rootfs");
    for applet in BUSYBOX_APPLETS {
        let link = dir.path().join("bin").join(applet);
        assert_eq!(
            std::fs::read_link(&link).expect("symlink").to_str(),
            Some("busybox")
        );
    }
    let tmp_mode = std::fs::metadata(dir.path().join("tmp"))
        .expect("tmp")
        .permissions()
        .mode();
    assert_eq!(tmp_mode & 0o7777, 0o1777);
    let passwd = std::fs::read_to_string(dir.path().join("etc/passwd")).expect("passwd");
    assert!(passwd.contains("root:x:0:0:") && passwd.contains(":1000:1000:"));
    // The shell runs (outside a chroot, through the busybox binary in the rootfs).
    let out = Command::new(dir.path().join("bin/sh"))
        .args(["-c", "echo $((6 * 7)) | tr 4 x"])
        .output()
        .expect("run sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "x2");
    // Laying it out twice is harmless.
    busybox_rootfs(dir.path()).expect("rootfs again");
}

#[test]
fn tools_are_found_on_path() {
    assert!(find_tool("sh").is_some());
    assert!(find_tool("definitely-not-a-tool-ossb").is_none());
    assert!(require_tool("sh"));
}

#[test]
fn plain_registry_starts_answers_and_stops() {
    if !require_tool("docker-registry") || !require_tool("curl") {
        return;
    }
    let reg = Registry::start_plain().expect("start");
    assert!(reg.host().starts_with("127.0.0.1:"));
    assert!(reg.ca_cert_path().is_none());
    let code = |url: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let url = format!("http://{}/v2/", reg.host());
    assert_eq!(code(&url), "200");
    drop(reg);
    assert_eq!(code(&url), "000", "the registry must be stopped on drop");
}

#[test]
fn tls_registry_requires_the_password() {
    for tool in ["docker-registry", "curl", "openssl", "htpasswd"] {
        if !require_tool(tool) {
            return;
        }
    }
    let reg = Registry::start_tls_htpasswd("alice", "s3cret").expect("start");
    let ca = reg.ca_cert_path().expect("ca").to_path_buf();
    let url = format!("https://{}/v2/", reg.host());
    let code = |user: Option<&str>| {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&ca);
        if let Some(u) = user {
            cmd.args(["-u", u]);
        }
        String::from_utf8_lossy(&cmd.arg(&url).output().expect("curl").stdout).to_string()
    };
    assert_eq!(code(None), "401");
    assert_eq!(code(Some("alice:s3cret")), "200");
    assert_eq!(code(Some("alice:wrong")), "401");
    assert_eq!(reg.credentials(), Some(("alice", "s3cret")));
    assert!(!format!("{reg:?}").contains("s3cret"));
}

/// The whole token dance with curl: the registry challenges with the token server as realm,
/// the token server refuses a wrong password and issues a token Distribution accepts, in
/// both signing modes.
#[test]
fn token_registry_accepts_the_token_servers_tokens() {
    for tool in ["docker-registry", "curl", "openssl"] {
        if !require_tool(tool) {
            return;
        }
    }
    for signing in [Signing::Rs256CertChain, Signing::Es256KeyId] {
        let policy = TokenAuth::new()
            .user("alice", "s3cret")
            .grant("alice", "a/b", &["pull"])
            .signing(signing);
        let reg = Registry::start_token_auth(policy).expect("start");
        let ts = reg.token_server().expect("token server");
        let ca = reg.ca_cert_path().expect("ca").to_path_buf();
        let curl = |args: &[&str]| {
            let out = Command::new("curl")
                .args(["-s", "--cacert"])
                .arg(&ca)
                .args(args)
                .output()
                .expect("curl");
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        let v2 = format!("https://{}/v2/", reg.host());
        let head = curl(&["-D", "-", "-o", "/dev/null", &v2]);
        assert!(
            head.contains(&format!(
                "realm=\"{}\",service=\"{TOKEN_SERVICE}\"",
                ts.url()
            )),
            "{head}"
        );
        let token_url = format!(
            "{}?service={TOKEN_SERVICE}&scope=repository:a/b:pull,push",
            ts.url()
        );
        let code =
            |args: &[&str]| curl(&[&["-o", "/dev/null", "-w", "%{http_code}"], args].concat());
        assert_eq!(code(&["-u", "alice:wrong", &token_url]), "401");
        let body = curl(&["-u", "alice:s3cret", &token_url]);
        let json: serde_json::Value = serde_json::from_str(&body).expect("token json");
        let token = json["token"].as_str().expect("token").to_string();
        let bearer = format!("Authorization: Bearer {token}");
        assert_eq!(code(&["-H", &bearer, &v2]), "200", "{signing:?}");
        let tags = format!("https://{}/v2/a/b/tags/list", reg.host());
        // Authorised (pull granted); the repository does not exist yet.
        assert_eq!(code(&["-H", &bearer, &tags]), "404", "{signing:?}");
        let other = format!("https://{}/v2/c/d/tags/list", reg.host());
        assert_eq!(code(&["-H", &bearer, &other]), "401", "{signing:?}");
        let reqs = ts.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].status, 401);
        assert_eq!(reqs[1].granted, ["repository:a/b:pull"]);
        assert_eq!(reqs[1].scopes, ["repository:a/b:pull,push"]);
        assert_eq!(ts.issued_tokens(), [token]);
    }
}
