//! Ordering (CHECKER.md "Ordering", AMQP §4.7 as RabbitMQ implements it).
//!
//! For each (publishing channel incarnation, queue, consuming channel incarnation), the first
//! deliveries (`redelivered=false`) of messages published on that channel, in receive order,
//! must have increasing attempt `seq`s. Keying by the publishing channel keeps republishes on
//! a new channel out of scope; keying by `seq`, not `mid`, keeps a republished copy that lands
//! after later messages from counting. Channels are identified with their connection and
//! their client (`pid` / `cid`), so numbering schemes that reuse `ch` per client still
//! separate incarnations.

use std::collections::BTreeMap;

use super::report::Report;
use super::sets::Sets;

/// (pid, publishing conn, publishing ch, queue, cid, consuming conn, consuming ch).
type PairKey = (u64, u64, u64, String, u64, u64, u64);

/// Fills `order_violations` (adjacent decreases) and `order_inversions` (all inverted pairs).
pub fn check_ordering(sets: &Sets, report: &mut Report) {
    let mut streams: BTreeMap<PairKey, Vec<u64>> = BTreeMap::new();
    for d in sets.valid_deliveries().filter(|d| !d.redelivered) {
        let Some(attempt) = sets.attempts.get(&d.attempt()) else {
            continue;
        };
        let key = (
            d.pid,
            attempt.conn,
            attempt.ch,
            d.queue.clone(),
            d.cid,
            d.conn,
            d.ch,
        );
        streams.entry(key).or_default().push(d.seq);
    }
    for (key, seqs) in &streams {
        for pair in seqs.windows(2) {
            if pair[1] < pair[0] {
                report.order_violations += 1;
                let (pid, pconn, pch, queue, cid, kconn, kch) = key;
                report.example(
                    "order_violations",
                    format!(
                        "p{pid}@{pconn}/{pch}->{queue}->c{cid}@{kconn}/{kch}:s{}>s{}",
                        pair[0], pair[1]
                    ),
                );
            }
        }
        report.order_inversions += inversions(seqs);
    }
}

/// Number of pairs `i < j` with `seqs[i] > seqs[j]` (merge sort, O(n log n)).
pub fn inversions(seqs: &[u64]) -> u64 {
    let mut work = seqs.to_vec();
    let mut buffer = vec![0; work.len()];
    count_sort(&mut work, &mut buffer)
}

fn count_sort(v: &mut [u64], buffer: &mut [u64]) -> u64 {
    let n = v.len();
    if n < 2 {
        return 0;
    }
    let mid = n / 2;
    let mut count = count_sort(&mut v[..mid], &mut buffer[..mid]);
    count += count_sort(&mut v[mid..], &mut buffer[mid..]);
    let (mut i, mut j, mut k) = (0, mid, 0);
    while i < mid && j < n {
        if v[j] < v[i] {
            buffer[k] = v[j];
            count += (mid - i) as u64;
            j += 1;
        } else {
            buffer[k] = v[i];
            i += 1;
        }
        k += 1;
    }
    buffer[k..k + mid - i].copy_from_slice(&v[i..mid]);
    k += mid - i;
    buffer[k..k + n - j].copy_from_slice(&v[j..n]);
    v.copy_from_slice(&buffer[..n]);
    count
}

#[cfg(test)]
mod tests {
    use super::inversions;

    #[test]
    fn inversions_match_the_quadratic_count() {
        let cases: [&[u64]; 5] = [&[], &[1], &[1, 2, 3], &[3, 2, 1], &[2, 5, 1, 4, 3, 3, 0]];
        for seqs in cases {
            let mut slow = 0;
            for i in 0..seqs.len() {
                for j in i + 1..seqs.len() {
                    slow += u64::from(seqs[i] > seqs[j]);
                }
            }
            assert_eq!(inversions(seqs), slow, "{seqs:?}");
        }
    }
}
