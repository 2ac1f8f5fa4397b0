//! Pushes and pulls through a fault-injecting proxy in front of a real Distribution registry:
//! dropped connections (mid-request and mid-body), 500/502/503 and 429 answers at random
//! rates complete with correct digests; an always-failing registry makes operations give up
//! after a bounded, counted number of attempts with a message that says so.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultProxy, Mode, Rates};
use common::{build_image, write_pseudo_random};
use ossb_registry::manifest::OCI_MANIFEST;
use ossb_registry::{Digest, Reference, RegistryClient, RegistryConfig, RegistryError};
use ossb_testkit::{Registry, require_tool};

/// The size of the large blob: several MiB.
const BIG: usize = (5 << 20) + 12_345;
/// No test may take longer than this.
const TEST_LIMIT: Duration = Duration::from_secs(150);

fn start() -> Option<Registry> {
    if !require_tool("docker-registry") {
        return None;
    }
    Some(Registry::start_plain().expect("start registry"))
}

fn reference(host: &str, repo_tag: &str) -> Reference {
    Reference::parse(&format!("{host}/{repo_tag}")).expect("valid reference")
}

fn client(max_retries: u32, chunked: bool) -> RegistryClient {
    let mut config = RegistryConfig::default();
    config.transfer.max_retries = max_retries;
    config.transfer.backoff_base = Duration::from_millis(5);
    config.transfer.read_timeout = Duration::from_secs(20);
    if chunked {
        config.transfer.monolithic_max = 1 << 20;
        config.transfer.chunk_size = 1 << 20;
    }
    RegistryClient::new(config).expect("client")
}

async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, f)
        .await
        .expect("the test finished within its time limit")
}

const RANDOM: Rates = Rates {
    drop_request: 0.08,
    drop_response: 0.08,
    server_error: 0.08,
    too_many: 0.06,
};

/// Pushes a multi-MiB blob and an image through a faulty proxy, checks everything straight
/// from the registry, then pulls it back through the proxy.
/// `OSSB_FAULT_SEED` overrides the seed (to explore other fault sequences).
async fn push_and_pull_through_faults(chunked: bool, seed: u64) {
    let Some(reg) = start() else { return };
    let seed = std::env::var("OSSB_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(seed);
    let proxy = FaultProxy::start(reg.host(), Mode::Random(RANDOM), seed);
    proxy.set_max_consecutive_faults(Some(3));
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.bin");
    write_pseudo_random(&big, BIG, seed);
    let data = std::fs::read(&big).expect("read");
    let img = build_image(dir.path(), "faults");
    let c = client(8, chunked);
    let via = reference(&proxy.host(), "ossb/faults:v1");
    let direct = reference(reg.host(), "ossb/faults:v1");

    let pushed = c.put_blob(&via, &big).await;
    let digest = pushed.unwrap_or_else(|e| {
        let log: Vec<String> = proxy
            .seen()
            .iter()
            .map(|s| format!("{} {:.60} {:?} {:?}", s.method, s.target, s.fault, s.status))
            .collect();
        panic!("push the big blob: {e}\n{}", log.join("\n"))
    });
    assert_eq!(digest, Digest::sha256_of(&data));
    c.put_blob(&via, &img.layer_path).await.expect("push layer");
    c.put_blob(&via, &img.config_path)
        .await
        .expect("push config");
    let md = c
        .put_manifest(&via, &img.manifest, OCI_MANIFEST)
        .await
        .expect("push manifest");
    assert_eq!(md, Digest::sha256_of(&img.manifest));

    // Straight from the registry, no proxy: what was stored is exactly what was sent.
    let plain = client(0, false);
    let mut back = Vec::new();
    plain
        .get_blob_to(&direct, &digest, &mut back)
        .await
        .expect("pull big blob directly");
    assert!(back == data, "the stored blob differs from the file");
    let (bytes, _, d) = plain
        .get_manifest(&direct)
        .await
        .expect("manifest directly");
    assert_eq!((bytes, d), (img.manifest.clone(), md.clone()));

    // Pull back through the proxy.
    for _ in 0..4 {
        let mut back = Vec::new();
        let n = c
            .get_blob_to(&via, &digest, &mut back)
            .await
            .expect("pull big blob through faults");
        assert_eq!(n as usize, BIG);
        assert!(back == data, "the pulled blob differs");
        let (bytes, _, d) = c.get_manifest(&via).await.expect("pull manifest");
        assert_eq!((bytes, d), (img.manifest.clone(), md.clone()));
    }

    let seen = proxy.seen();
    let count = |f: &dyn Fn(&Fault) -> bool| {
        seen.iter()
            .filter(|s| s.fault.as_ref().is_some_and(f))
            .count()
    };
    let drops = count(&|f| matches!(f, Fault::DropRequest | Fault::DropResponse));
    let errors = count(&|f| matches!(f, Fault::Status(_) | Fault::TooMany { .. }));
    eprintln!(
        "{} requests, {drops} dropped, {errors} error answers",
        seen.len()
    );
    assert!(drops + errors > 0, "faults were injected: {seen:#?}");
    if chunked {
        assert!(
            seen.iter()
                .filter(|s| s.method == "PATCH" && s.fault.is_none())
                .count()
                >= 5,
            "the big blob went up in chunks"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monolithic_push_and_pull_survive_random_faults() {
    bounded(push_and_pull_through_faults(false, 11)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_push_and_pull_survive_random_faults() {
    bounded(push_and_pull_through_faults(true, 23)).await;
}

/// Pushes the big blob directly; returns (dir, path, digest, data).
async fn seed_big_blob(reg: &Registry, repo: &str) -> (tempfile::TempDir, Digest, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.bin");
    write_pseudo_random(&big, BIG, 5);
    let data = std::fs::read(&big).expect("read");
    let d = client(0, false)
        .put_blob(&reference(reg.host(), repo), &big)
        .await
        .expect("push directly");
    (dir, d, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_broken_mid_body_resumes_with_range() {
    bounded(async {
        let Some(reg) = start() else { return };
        let (_dir, digest, data) = seed_big_blob(&reg, "ossb/resume:v1").await;
        let proxy = FaultProxy::start(reg.host(), Mode::Random(Rates::NONE), 3);
        let c = client(3, false);
        let via = reference(&proxy.host(), "ossb/resume:v1");
        c.ping(&proxy.host()).await.expect("ping");
        // Every blob answer is cut halfway, but at most 2 in a row.
        proxy.set_mode(Mode::FailMethod("GET", Fault::DropResponse));
        proxy.set_max_consecutive_faults(Some(2));
        proxy.reset_seen();
        let mut back = Vec::new();
        let n = c
            .get_blob_to(&via, &digest, &mut back)
            .await
            .expect("resumed download");
        assert_eq!(n as usize, BIG);
        assert!(back == data, "the resumed blob differs");
        let seen = proxy.seen();
        let ranged: Vec<_> = seen.iter().filter_map(|s| s.range.clone()).collect();
        assert_eq!(seen.len(), 3, "{seen:#?}");
        assert_eq!(ranged.len(), 2, "two resumptions with Range: {seen:#?}");
        assert!(
            ranged
                .iter()
                .all(|r| r.starts_with("bytes=") && r != "bytes=0-"),
            "{ranged:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_chunks_resume_from_the_session_offset() {
    bounded(async {
        let Some(reg) = start() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big.bin");
        write_pseudo_random(&big, BIG, 17);
        let data = std::fs::read(&big).expect("read");
        let proxy = FaultProxy::start(reg.host(), Mode::Random(Rates::NONE), 4);
        let c = client(3, true);
        c.ping(&proxy.host()).await.expect("ping");
        // Every other PATCH is cut mid-request (the registry never sees it), and every other
        // final PUT answers 503 (it never reaches the registry).
        for (method, fault) in [("PATCH", Fault::DropRequest), ("PUT", Fault::Status(503))] {
            proxy.set_mode(Mode::FailMethod(method, fault));
            proxy.set_max_consecutive_faults(Some(1));
            proxy.reset_seen();
            let repo = format!("ossb/resume-{}:v1", method.to_lowercase());
            let d = c
                .put_blob(&reference(&proxy.host(), &repo), &big)
                .await
                .expect("chunked upload with failing steps");
            assert_eq!(d, Digest::sha256_of(&data));
            let seen = proxy.seen();
            let count = |m: &str| seen.iter().filter(|s| s.method == m).count();
            assert_eq!(count("POST"), 1, "one session, never restarted: {seen:#?}");
            assert!(
                seen.iter().any(|s| s.method == method && s.fault.is_some()),
                "{method} failed: {seen:#?}"
            );
            assert!(
                seen.iter()
                    .any(|s| s.method == "GET" && s.target.contains("/blobs/uploads/")),
                "the session's offset was asked for: {seen:#?}"
            );
            let mut back = Vec::new();
            client(0, false)
                .get_blob_to(&reference(reg.host(), &repo), &d, &mut back)
                .await
                .expect("pull directly");
            assert!(back == data, "the stored blob differs");
        }
    })
    .await;
}

/// Runs `op` against an always-failing proxy and checks the error and the attempt count.
async fn expect_give_up<F, Fut, T>(
    proxy: &FaultProxy,
    fault: Mode,
    what: &str,
    attempts: usize,
    counted: impl Fn(&common::fault_proxy::Seen) -> bool,
    op: F,
) -> (RegistryError, Duration)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, RegistryError>>,
{
    proxy.set_mode(fault);
    proxy.reset_seen();
    let started = Instant::now();
    let Err(err) = op().await else {
        panic!("{what} succeeded against an always-failing registry ({fault:?})");
    };
    let took = started.elapsed();
    let msg = err.to_string();
    assert!(
        matches!(err, RegistryError::GaveUp { .. }),
        "{fault:?}: {err:?}"
    );
    assert!(msg.contains(&proxy.host()), "names the registry: {msg}");
    assert!(msg.contains(what), "names the operation {what:?}: {msg}");
    assert!(
        msg.contains("gave up on") && msg.contains(&format!("after {attempts} attempts in ")),
        "says it gave up after {attempts} attempts and how long: {msg}"
    );
    let seen = proxy.seen();
    assert_eq!(
        seen.iter().filter(|s| counted(s)).count(),
        attempts,
        "{fault:?}: attempts counted in the proxy: {seen:#?}"
    );
    assert!(took < Duration::from_secs(30), "gave up quickly: {took:?}");
    (err, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_failing_registry_gives_up_after_the_retry_budget() {
    bounded(async {
        let Some(reg) = start() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let img = build_image(dir.path(), "give-up");
        let big = dir.path().join("big.bin");
        write_pseudo_random(&big, 3 << 20, 9);
        let proxy = FaultProxy::start(reg.host(), Mode::Random(Rates::NONE), 1);
        let c = client(3, false);
        let via = reference(&proxy.host(), "ossb/giveup:v1");
        c.ping(&proxy.host()).await.expect("ping while healthy");
        // The manifest exists, so only the faults make the pulls fail.
        c.put_blob(&via, &img.layer_path).await.expect("layer");
        c.put_blob(&via, &img.config_path).await.expect("config");
        c.put_manifest(&via, &img.manifest, OCI_MANIFEST)
            .await
            .expect("manifest");

        let all = |_: &common::fault_proxy::Seen| true;
        for fault in [
            Fault::Status(500),
            Fault::Status(502),
            Fault::Status(503),
            Fault::TooMany { retry_after: false },
            Fault::DropRequest,
            Fault::DropResponse,
        ] {
            expect_give_up(
                &proxy,
                Mode::AlwaysFail(fault),
                "get manifest",
                4,
                all,
                || c.get_manifest(&via),
            )
            .await;
        }
        // Retry-After is honoured: three waits of a second.
        let (_, took) = expect_give_up(
            &proxy,
            Mode::AlwaysFail(Fault::TooMany { retry_after: true }),
            "get manifest",
            4,
            all,
            || c.get_manifest(&via),
        )
        .await;
        assert!(
            took >= Duration::from_millis(2900),
            "waited as asked: {took:?}"
        );

        // A download that always breaks mid-body: the first try and three resumptions.
        expect_give_up(
            &proxy,
            Mode::FailMethod("GET", Fault::DropResponse),
            "get blob",
            4,
            |s| s.method == "GET",
            || async {
                c.get_blob_to(&via, &img.layer_digest, &mut Vec::new())
                    .await
            },
        )
        .await;

        // Uploads: monolithic PUTs that always fail restart the upload, at most 3 times.
        for fault in [Fault::Status(503), Fault::DropRequest] {
            expect_give_up(
                &proxy,
                Mode::FailMethod("PUT", fault),
                "upload blob",
                4,
                |s| s.method == "PUT",
                || c.put_blob(&via, &big),
            )
            .await;
        }
        // Chunked: a PATCH that always fails is resumed from the registry's offset, at most
        // 3 times.
        let chunked = client(3, true);
        for fault in [
            Fault::Status(502),
            Fault::DropRequest,
            Fault::TooMany { retry_after: false },
        ] {
            expect_give_up(
                &proxy,
                Mode::FailMethod("PATCH", fault),
                "upload blob",
                4,
                |s| s.method == "PATCH",
                || chunked.put_blob(&via, &big),
            )
            .await;
        }
        // Nothing of the failed uploads was stored.
        let d = Digest::sha256_of(&std::fs::read(&big).expect("read"));
        let plain = client(0, false);
        assert!(
            !plain
                .blob_exists(&reference(reg.host(), "ossb/giveup:v1"), &d)
                .await
                .expect("head")
        );
    })
    .await;
}
