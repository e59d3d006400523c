//! The real `warren` binary on good and bad config files: a bad file names every wrong field
//! and exits non-zero.

use std::process::Command;

fn warren() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warren"))
}

#[test]
fn example_config_is_accepted() {
    let out = warren()
        .args([
            "check-config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/warren.toml"),
        ])
        .output()
        .expect("run warren");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_config_names_every_wrong_field_and_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "frame_max = 1\nheartbeat_s = -3\ncolour = \"red\"\n").expect("write");
    let out = warren()
        .arg("check-config")
        .arg(&file)
        .output()
        .expect("run warren");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for field in ["frame_max", "heartbeat_s", "colour"] {
        assert!(stderr.contains(field), "{field} not named in: {stderr}");
    }
}

/// A node refuses to start on a certificate it cannot use, naming the fields, before it
/// binds or opens anything.
#[test]
fn a_server_with_bad_tls_files_does_not_start_and_names_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.key");
    std::fs::write(&garbage, "not a key").expect("write");
    let file = dir.path().join("tls.toml");
    let text = format!(
        "data_dir = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        dir.path().join("data").display(),
        dir.path().join("missing.pem").display(),
        garbage.display()
    );
    std::fs::write(&file, text).expect("write");
    let mut child = warren()
        .args(["server", "--config"])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run warren");
    // Bounded: a node that started anyway is killed and the test fails.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for warren") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("warren server started with a missing certificate");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(stderr.contains("tls_cert_file: cannot read"), "{stderr}");
    assert!(stderr.contains("tls_key_file:"), "{stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "the node opened its data directory"
    );
}
