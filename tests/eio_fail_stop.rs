//! Chaos finding 3 (docs/chaos.md): a node whose disk fails under it must fail-stop. Its
//! data directory is on a real XFS loop image, shut down (`xfs_io -x -c shutdown`: every
//! later write and fsync fails with EIO, and nothing unsynced reaches the disk) while a
//! publisher waits for confirms. The process must exit by itself with status 70 (before the
//! fix Raft's core stopped but the process ran on, its AMQP listener open, so no supervisor
//! restarted it), and after a remount and a restart every message it confirmed is there.
//!
//! Needs root, a loop device and xfsprogs: `.ci/run` installs xfsprogs; CI runs as root (the
//! chaos round needs it too).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::BasicProperties;
use tokio::sync::watch;

mod common;

const QUEUE: &str = "eio-q";
/// Confirms to collect before the disk fails, so the failure hits a node under load.
const BEFORE_FAILURE: usize = 200;
/// The chaos harness's bound on a fail-stop (`eio` nemesis, docs/chaos.md).
const FAIL_STOP_WITHIN: Duration = Duration::from_secs(10);
/// XFS refuses file systems under 300 MB; the image is sparse.
const IMAGE_BYTES: u64 = 512 << 20;
/// umount attempts, 100 ms apart: the dead process's files may take a moment to close.
const UMOUNT_TRIES: u32 = 50;

/// An XFS image mounted on `mount`; unmounted (lazily, if still busy) when dropped.
struct XfsImage {
    image: PathBuf,
    mount: PathBuf,
}

impl XfsImage {
    fn create(dir: &Path) -> XfsImage {
        let image = dir.join("disk.img");
        let mount = dir.join("mnt");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(IMAGE_BYTES))
            .expect("create the image file");
        std::fs::create_dir(&mount).expect("create the mount point");
        run("mkfs.xfs", &["-q".as_ref(), image.as_os_str()]);
        let xfs = XfsImage { image, mount };
        xfs.mount();
        xfs
    }

    fn mount(&self) {
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                self.image.as_os_str(),
                self.mount.as_os_str(),
            ],
        );
    }

    /// Every later write and fsync on it fails with EIO; the log is not flushed first.
    fn shutdown(&self) {
        run(
            "xfs_io",
            &[
                "-x".as_ref(),
                "-c".as_ref(),
                "shutdown".as_ref(),
                self.mount.as_os_str(),
            ],
        );
    }

    /// umount then mount: what a reboot after the failure sees.
    fn remount(&self) {
        let mut tries = 0;
        while !try_run("umount", &[self.mount.as_os_str()]) {
            tries += 1;
            assert!(
                tries < UMOUNT_TRIES,
                "umount {} stays busy",
                self.mount.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.mount();
    }
}

impl Drop for XfsImage {
    fn drop(&mut self) {
        let _ = try_run("umount", &["-l".as_ref(), self.mount.as_os_str()]);
    }
}

fn try_run(program: &str, args: &[&std::ffi::OsStr]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{program} cannot run ({e}); install it (see .ci/run)"))
        .success()
}

fn run(program: &str, args: &[&std::ffi::OsStr]) {
    assert!(try_run(program, args), "{program} {args:?} failed");
}

/// Publishes persistent messages (bodies "0", "1", ...) one confirm at a time until the
/// connection fails, recording each confirmed sequence number and publishing their count.
async fn publish_until_failure(
    addr: std::net::SocketAddr,
    confirmed: Arc<Mutex<BTreeSet<u32>>>,
    count: watch::Sender<usize>,
) {
    let (_conn, channel) = common::clients::open_channel(&[addr], QUEUE).await;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    for seq in 0u32.. {
        let properties = BasicProperties::default().with_delivery_mode(2);
        let body = seq.to_string();
        let options = BasicPublishOptions::default();
        let Ok(pending) = channel
            .basic_publish("", QUEUE, options, body.as_bytes(), properties)
            .await
        else {
            return;
        };
        match pending.await {
            Ok(confirm) if confirm.is_ack() => {
                let mut set = confirmed.lock().expect("confirmed set");
                set.insert(seq);
                count.send_replace(set.len());
            }
            _ => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_disk_fails_stops_and_keeps_what_it_confirmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xfs = XfsImage::create(dir.path());
    let (config, addr) = common::write_config(dir.path());
    let data = xfs.mount.join("data");
    let text = std::fs::read_to_string(&config).expect("read config");
    let text = text.replace(
        &dir.path().join("data").display().to_string(),
        &data.display().to_string(),
    );
    std::fs::write(&config, text).expect("write config");
    let mut warren = common::start(&config, addr);

    let confirmed = Arc::new(Mutex::new(BTreeSet::new()));
    let (count, mut counted) = watch::channel(0);
    let publisher = tokio::spawn(publish_until_failure(addr, Arc::clone(&confirmed), count));
    common::within(
        "the confirms before the failure",
        counted.wait_for(|n| *n >= BEFORE_FAILURE),
    )
    .await
    .expect("the publisher runs");

    xfs.shutdown();
    let failed_at = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let status = warren.wait_exit(FAIL_STOP_WITHIN);
        (warren, status)
    });
    let (warren, status) = status.await.expect("wait for the exit");
    let status = status.unwrap_or_else(|| {
        panic!("warren still runs {FAIL_STOP_WITHIN:?} after its disk failed (no fail-stop)")
    });
    assert_eq!(status.code(), Some(70), "exit status after EIO: {status:?}");
    eprintln!("fail-stop {:?} after the disk failed", failed_at.elapsed());
    drop(warren);
    common::within("the publisher's end", publisher)
        .await
        .expect("the publisher task");

    let confirmed = confirmed.lock().expect("confirmed set").clone();
    xfs.remount();
    let _warren = common::start(&config, addr);
    let (_conn, channel) = common::clients::open_channel(&[addr], QUEUE).await;
    let mut recovered = BTreeSet::new();
    while let Some(message) = common::get_no_ack(&channel, QUEUE).await {
        let seq = common::clients::seq_of(&message.delivery.data);
        assert!(recovered.insert(seq), "message {seq} stored twice");
    }
    let lost: Vec<&u32> = confirmed.difference(&recovered).collect();
    assert!(lost.is_empty(), "confirmed, then lost: {lost:?}");
    eprintln!(
        "{} confirmed before the failure, {} recovered",
        confirmed.len(),
        recovered.len()
    );
}
