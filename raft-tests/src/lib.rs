//! Cluster tests over a controlled network (issue 3).
