//! Receiving a snapshot in chunks: the chunks of one snapshot in order make the same state on
//! a disk node and a RAM node; a chunk that does not follow is refused and the sender's
//! retry from offset 0 succeeds; an abandoned receipt leaves no file behind.

use std::io::Read;

use super::tests::workload;
use super::*;

/// A disk node with the workload applied, its snapshot built, and the snapshot's bytes.
fn source(dir: &Path) -> (BrokerStateMachine, Snap, Vec<u8>) {
    let sm = BrokerStateMachine::open(dir).expect("open");
    workload(&sm, 1);
    let built = sm.build_and_write().expect("build");
    let current = sm.read_current().expect("read").expect("a snapshot");
    assert!(
        matches!(current.snapshot, SnapshotData::File { .. }),
        "a disk node hands out its snapshot file, not its bytes"
    );
    let mut bytes = Vec::new();
    let mut reader = current.snapshot.into_reader();
    reader.read_to_end(&mut bytes).expect("read the file");
    (sm, built, bytes)
}

/// Sends `bytes` to `to` in chunks of `size` as snapshot `id`; the last chunk's result.
fn send(to: &BrokerStateMachine, id: &str, bytes: &[u8], size: usize) -> SnapshotData {
    let n = bytes.len().div_ceil(size);
    for (i, chunk) in bytes.chunks(size).enumerate() {
        let received = to
            .receive_snapshot_chunk(id, (i * size) as u64, chunk, i + 1 == n)
            .expect("chunk taken");
        match received {
            Some(data) if i + 1 == n => return data,
            None if i + 1 < n => {}
            other => panic!("chunk {i} of {n}: {other:?}"),
        }
    }
    panic!("no chunks")
}

fn received_files(dir: &Path) -> Vec<String> {
    let names = std::fs::read_dir(dir).expect("read dir");
    let names = names.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned());
    names.filter(|n| n.starts_with("received-")).collect()
}

#[test]
fn chunks_in_order_install_the_same_state_on_a_disk_and_a_ram_node() {
    let from = tempfile::tempdir().expect("tempdir");
    let (origin, built, bytes) = source(from.path());
    assert!(bytes.len() > 10 * 4096, "a snapshot of many chunks");

    let to = tempfile::tempdir().expect("tempdir");
    let disk = BrokerStateMachine::open(to.path()).expect("open");
    let data = send(&disk, "s1", &bytes, 4096);
    assert_eq!(data.len().expect("len"), bytes.len() as u64);
    disk.install_received(&built.meta, data).expect("install");
    assert_eq!(disk.digest(), origin.digest());
    let installed = std::fs::read(to.path().join(SNAPSHOT_FILE)).expect("snapshot file");
    assert!(
        installed == bytes,
        "the received file became the snapshot file"
    );
    assert_eq!(received_files(to.path()), Vec::<String>::new());

    let ram = BrokerStateMachine::in_memory();
    let data = send(&ram, "s1", &bytes, 4096);
    ram.install_received(&built.meta, data).expect("install");
    assert_eq!(ram.digest(), origin.digest());
}

#[test]
fn a_chunk_that_does_not_follow_is_refused_and_a_retry_from_the_start_succeeds() {
    let from = tempfile::tempdir().expect("tempdir");
    let (origin, built, bytes) = source(from.path());
    let to = tempfile::tempdir().expect("tempdir");
    let disk = BrokerStateMachine::open(to.path()).expect("open");

    assert!(disk
        .receive_snapshot_chunk("s1", 0, &bytes[..100], false)
        .expect("first")
        .is_none());
    let gap = disk.receive_snapshot_chunk("s1", 200, &bytes[200..300], false);
    assert_eq!(gap.expect_err("a gap").kind(), io::ErrorKind::InvalidInput);
    let other = disk.receive_snapshot_chunk("s2", 100, &bytes[100..200], false);
    assert!(
        other.is_err(),
        "another sender's chunk does not continue this one"
    );
    assert_eq!(received_files(to.path()).len(), 1);

    let data = send(&disk, "s1", &bytes, 1000);
    assert_eq!(
        received_files(to.path()).len(),
        1,
        "the abandoned receipt's file was removed"
    );
    disk.install_received(&built.meta, data).expect("install");
    assert_eq!(disk.digest(), origin.digest());
}

#[test]
fn an_unfinished_receipt_is_removed_at_open() {
    let from = tempfile::tempdir().expect("tempdir");
    let (_origin, _built, bytes) = source(from.path());
    let to = tempfile::tempdir().expect("tempdir");
    let disk = BrokerStateMachine::open(to.path()).expect("open");
    disk.receive_snapshot_chunk("s1", 0, &bytes[..100], false)
        .expect("chunk");
    assert_eq!(received_files(to.path()).len(), 1);
    drop(disk);
    let reopened = BrokerStateMachine::open(to.path()).expect("reopen");
    assert_eq!(received_files(to.path()), Vec::<String>::new());
    assert_eq!(reopened.digest().0, None, "nothing was installed");
}
