//! Content store behaviour: verification, crash safety, garbage collection.

use std::io::{Read, Write};
use std::process::Command;

use ossb_core::image::ImageError;
use ossb_core::image::builder::ImageBuilder;
use ossb_core::image::entry::{Entry, EntryKind, Source};
use ossb_core::image::layer::{LayerOptions, write_layer};
use ossb_core::image::oci::{History, Platform};
use ossb_core::image::store::Store;

fn file(path: &str, content: &str) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::File {
            source: Source::Bytes(content.as_bytes().to_vec()),
            size: content.len() as u64,
        },
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        mtime_nsec: 0,
        xattrs: Default::default(),
    }
}

fn image(store: &Store, content: &str) -> ossb_core::image::builder::BuiltImage {
    let platform = Platform::parse("linux/arm64").expect("platform");
    let mut b = ImageBuilder::scratch(&platform);
    let l = write_layer(
        store,
        vec![file("a.txt", content)],
        &LayerOptions::default(),
    )
    .expect("layer");
    b.add_layer(&l, History::default());
    b.write(store).expect("image")
}

#[test]
fn corrupted_blob_is_detected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("store");
    let blob = store.put_bytes(b"some content here").expect("put");
    assert!(store.fsck().expect("fsck").is_clean());
    let path = store.blob_path(&blob.digest);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[0] ^= 0xff;
    std::fs::write(&path, bytes).expect("corrupt");

    let report = store.fsck().expect("fsck");
    assert_eq!(report.corrupt, vec![blob.digest.clone()]);
    let mut out = Vec::new();
    let err = store
        .open_blob(&blob.digest)
        .expect("open")
        .read_to_end(&mut out);
    assert!(err.is_err(), "corrupt read succeeded");
    assert!(matches!(
        store.read_blob(&blob.digest),
        Err(ImageError::DigestMismatch { .. })
    ));
    assert!(matches!(
        store.verify_blob(&blob.digest),
        Err(ImageError::DigestMismatch { .. })
    ));
}

#[test]
fn commit_rejects_wrong_digest_and_size() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("store");
    let other = ossb_core::image::Digest::of(b"other");
    let mut w = store.blob_writer().expect("writer");
    w.write_all(b"data").expect("write");
    assert!(matches!(
        w.commit(Some(&other)),
        Err(ImageError::DigestMismatch { .. })
    ));
    let mut w = store.blob_writer().expect("writer");
    w.write_all(b"data").expect("write");
    let d = ossb_core::image::Digest::of(b"data");
    assert!(matches!(
        w.commit_sized(Some(&d), Some(5)),
        Err(ImageError::SizeMismatch { .. })
    ));
    assert!(!store.has(&d));
    assert_eq!(
        std::fs::read_dir(tmp.path().join("tmp"))
            .expect("tmp")
            .count(),
        0
    );
}

/// Run in a child process by `killed_writer_leaves_no_blob`: writes half a blob and dies.
#[test]
#[ignore = "helper run as a child process"]
fn helper_write_and_die() {
    let Some(root) = std::env::var_os("OSSB_TEST_DIE_STORE") else {
        return;
    };
    let store = Store::open(root).expect("store");
    let mut w = store.blob_writer().expect("writer");
    w.write_all(&vec![7u8; 1 << 20]).expect("write");
    w.flush().expect("flush");
    std::process::abort();
}

#[test]
fn killed_writer_leaves_no_blob() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("store");
    let exe = std::env::current_exe().expect("exe");
    let status = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "helper_write_and_die",
            "--nocapture",
        ])
        .env("OSSB_TEST_DIE_STORE", tmp.path())
        .status()
        .expect("spawn");
    assert!(!status.success(), "helper should have aborted");
    assert_eq!(
        std::fs::read_dir(store.blobs_dir()).expect("blobs").count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("tmp"))
            .expect("tmp")
            .count(),
        1
    );
    let report = store.gc().expect("gc");
    assert_eq!(report.removed_temp_files, 1);
    assert_eq!(
        std::fs::read_dir(tmp.path().join("tmp"))
            .expect("tmp")
            .count(),
        0
    );
}

#[test]
fn gc_keeps_referenced_and_removes_the_rest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("store");
    let keep = image(&store, "kept\n");
    let drop = image(&store, "dropped\n");
    store
        .set_ref("example/keep:v1", &keep.manifest)
        .expect("ref");
    // A live writer's temp file must survive gc.
    let mut live = store.blob_writer().expect("writer");
    live.write_all(b"in progress").expect("write");
    live.flush().expect("flush");

    let want_kept = store.closure(&keep.manifest).expect("closure");
    let want_removed = store.closure(&drop.manifest).expect("closure");
    let report = store.gc().expect("gc");
    let mut removed: Vec<_> = want_removed.iter().map(|d| d.digest.clone()).collect();
    removed.sort();
    assert_eq!(report.removed_blobs, removed);
    assert_eq!(report.removed_temp_files, 0);
    for d in &want_kept {
        assert!(store.has(&d.digest), "{} was removed", d.digest);
    }
    assert!(live.commit(None).is_ok());
    assert_eq!(
        store.get_ref("example/keep:v1").expect("ref").digest,
        keep.manifest.digest
    );
    assert!(store.remove_ref("example/keep:v1").expect("remove"));
    let report = store.gc().expect("gc");
    assert_eq!(report.removed_blobs.len(), want_kept.len() + 1);
}
