//! The cluster under test: its nodes, its cookie, which nodes are down on purpose, and what
//! the harness saw go wrong that no fault explains (findings for the report).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use warren::cluster::Cookie;
use warren::config::{NodeConfig, Role};

use super::node::ChaosNode;

/// HAProxy's listener in the hub namespace.
pub const HAPROXY_URI: &str = "amqp://guest:guest@10.213.0.254:5672/%2f";

pub struct Cluster {
    pub nodes: Vec<ChaosNode>,
    pub cookie: Cookie,
    pub out_dir: PathBuf,
    /// Indexes of nodes a fault stopped on purpose; the watchdog ignores them.
    expected_down: Mutex<BTreeSet<usize>>,
    findings: Mutex<Vec<String>>,
}

impl Cluster {
    /// Reads the run directory chaos/run prepared: `n1.toml` … `nN.toml` and the cookie.
    pub fn load(run_dir: &Path, out_dir: &Path) -> anyhow::Result<Cluster> {
        let mut nodes = Vec::new();
        for id in 1.. {
            let mut node = ChaosNode::new(run_dir, out_dir, id);
            if !node.config.is_file() {
                break;
            }
            let config = NodeConfig::load(&node.config)?;
            node.ram = config.role() == Role::Ram;
            nodes.push(node);
        }
        anyhow::ensure!(
            nodes.len() >= 3,
            "{} holds {} node configs; chaos/run prepares 3 or 5",
            run_dir.display(),
            nodes.len()
        );
        let cookie = Cookie::load(&run_dir.join("cookie")).context("load the cluster cookie")?;
        Ok(Cluster {
            nodes,
            cookie,
            out_dir: out_dir.to_path_buf(),
            expected_down: Mutex::new(BTreeSet::new()),
            findings: Mutex::new(Vec::new()),
        })
    }

    /// Indexes of the nodes with (`ram` false) or without (`ram` true) a disk log.
    pub fn of_kind(&self, ram: bool) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].ram == ram)
            .collect()
    }

    pub fn names(&self, idx: &[usize]) -> Vec<String> {
        idx.iter().map(|&i| self.nodes[i].name.clone()).collect()
    }

    /// Marks a node as stopped on purpose (true) or expected to run (false).
    pub fn set_down(&self, idx: usize, down: bool) {
        if let Ok(mut set) = self.expected_down.lock() {
            if down {
                set.insert(idx);
            } else {
                set.remove(&idx);
            }
        }
    }

    pub fn is_expected_down(&self, idx: usize) -> bool {
        self.expected_down
            .lock()
            .map(|s| s.contains(&idx))
            .unwrap_or(false)
    }

    /// Records something the report must show (a node that died on its own, a node that
    /// did not fail-stop on EIO), and prints it now.
    pub fn finding(&self, text: String) {
        eprintln!("warren-chaos: FINDING: {text}");
        if let Ok(mut f) = self.findings.lock() {
            f.push(text);
        }
    }

    pub fn findings(&self) -> Vec<String> {
        self.findings.lock().map(|f| f.clone()).unwrap_or_default()
    }
}
