//! Chaos harness and checker (issue 4).
