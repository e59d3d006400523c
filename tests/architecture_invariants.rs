//! The dependency rules of docs/architecture.md, checked on the source tree: a change that
//! breaks one fails here, not in a reviewer's memory.
//!
//! * openraft is named only inside `src/raft` (invariant 9): its churn stays in one place.
//! * `src/broker` (the model) depends on no other module of the node (invariant 1).
//! * `src/cluster` (the transport) depends on nothing of Raft, the broker or the front end.
//! * `src/raft` does not depend on the front end or the CLI; `src/server` not on the CLI.
//!
//! Test files (`*_tests.rs`) may reach across, to build what they test.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Lines of code (not comments) of the non-test files under `src/<module>` (or every file
/// of `src/` outside `except`) that contain any of `needles`.
fn offenders(module: &str, except: Option<&str>, needles: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for file in rust_files(&src.join(module)) {
        let name = file
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .to_string();
        if name.ends_with("_tests.rs") || except.is_some_and(|e| name.starts_with(e)) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source file");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if needles.iter().any(|needle| code.contains(needle)) {
                found.push(format!("src/{name}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn openraft_is_named_only_inside_src_raft() {
    let found = offenders("", Some("raft/"), &["openraft::", "use openraft"]);
    assert!(
        found.is_empty(),
        "openraft outside src/raft:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_broker_model_depends_on_no_other_module() {
    let needles = [
        "crate::raft",
        "crate::server",
        "crate::cluster",
        "crate::cli",
        "crate::definitions",
    ];
    let found = offenders("broker", None, &needles);
    assert!(
        found.is_empty(),
        "src/broker reaches out:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_transport_depends_on_nothing_above_it() {
    let needles = [
        "crate::raft",
        "crate::server",
        "crate::broker",
        "crate::cli",
    ];
    let found = offenders("cluster", None, &needles);
    assert!(
        found.is_empty(),
        "src/cluster reaches up:\n{}",
        found.join("\n")
    );
}

/// Definitions are a file format over the broker's types: they read an applied state and
/// make commands, and reach nothing that runs (an import goes through the log).
#[test]
fn definitions_depend_on_the_broker_model_only() {
    let needles = [
        "crate::raft",
        "crate::server",
        "crate::cluster",
        "crate::cli",
    ];
    let found = offenders("definitions", None, &needles);
    assert!(
        found.is_empty(),
        "src/definitions reaches out:\n{}",
        found.join("\n")
    );
}

#[test]
fn raft_and_server_do_not_reach_up() {
    let mut found = offenders("raft", None, &["crate::server", "crate::cli"]);
    found.extend(offenders("server", None, &["crate::cli"]));
    assert!(
        found.is_empty(),
        "a module reaches up:\n{}",
        found.join("\n")
    );
}
