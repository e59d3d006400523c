//! `warren-chaos corrupt --bitflip P FILE`: flips one random bit in each byte with probability
//! P (seeded), in place, and lists every change, so a corruption found later is attributable.

use std::path::Path;

use anyhow::Context;

use super::rng::Rng;

/// One flipped byte.
#[derive(Debug, PartialEq, Eq)]
pub struct Flip {
    pub offset: u64,
    pub old: u8,
    pub new: u8,
}

/// Flips bits in `path`; returns the changes, in offset order.
pub fn bitflip(path: &Path, p: f64, seed: u64) -> anyhow::Result<Vec<Flip>> {
    anyhow::ensure!((0.0..=1.0).contains(&p), "--bitflip {p}: not a probability");
    let mut bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let mut rng = Rng::new(seed);
    let mut flips = Vec::new();
    for (offset, byte) in bytes.iter_mut().enumerate() {
        if rng.chance(p) {
            let old = *byte;
            *byte ^= 1 << rng.below(8);
            flips.push(Flip {
                offset: offset as u64,
                old,
                new: *byte,
            });
        }
    }
    std::fs::write(path, &bytes).with_context(|| format!("write {}", path.display()))?;
    std::fs::File::open(path)?.sync_all()?;
    Ok(flips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_are_logged_seeded_and_one_bit_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seg.log");
        let original = vec![0u8; 10_000];
        std::fs::write(&path, &original).expect("write");
        let flips = bitflip(&path, 0.01, 7).expect("flip");
        assert!(
            !flips.is_empty() && flips.len() < 300,
            "{} flips",
            flips.len()
        );
        let now = std::fs::read(&path).expect("read");
        for f in &flips {
            assert_eq!(now[f.offset as usize], f.new);
            assert_eq!((f.old ^ f.new).count_ones(), 1);
        }
        let changed = now.iter().zip(&original).filter(|(a, b)| a != b).count();
        assert_eq!(changed, flips.len());
        std::fs::write(&path, &original).expect("rewrite");
        assert_eq!(bitflip(&path, 0.01, 7).expect("again"), flips);
        assert!(bitflip(&path, 1.5, 7).is_err());
    }
}
