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
