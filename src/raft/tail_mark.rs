//! The log's high-water mark: how far the newest segment had been written and fdatasync'd.
//!
//! A CRC catches a damaged record, but not a record that is simply gone: a segment cut at a
//! record boundary, or its synced tail lost, reads back as a shorter, valid log. A node that
//! restarts on such a log has forgotten entries it acknowledged, and counting it towards a
//! quorum again can lose a committed entry (the same hazard as a naive RAM voter). So after
//! every batch's fdatasync, and before its completions fire, the writer records (segment,
//! length) here; at open, a newest segment shorter than the mark means acknowledged records
//! were lost, and the node refuses to start until it is repaired from its peers
//! (docs/operations.md).
//!
//! The mark is written with one `pwrite` and never synced: every version of it that can
//! survive a crash was written after the fdatasync it describes, so it never claims more than
//! is durable, and a power cut can only leave an older (smaller) mark. Its own CRC tells a
//! damaged mark, which is then ignored with a warning (it can only prove a loss, never hide
//! one).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The mark's file name, beside the segments.
const MARK_FILE: &str = "tail.mark";
/// segment number (u64 LE), length (u64 LE), crc32c of both (u32 LE).
const MARK_LEN: usize = 8 + 8 + 4;

/// Where the writer had got to: the newest segment and its synced length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub segment: u64,
    pub len: u64,
}

/// The writer's handle on the mark file.
pub struct TailMark {
    file: File,
}

impl TailMark {
    pub fn open(dir: &Path) -> io::Result<TailMark> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join(MARK_FILE))?;
        Ok(TailMark { file })
    }

    /// Records that `segment` holds `len` synced bytes.
    pub fn record(&self, mark: Mark) -> io::Result<()> {
        let mut bytes = [0u8; MARK_LEN];
        bytes[..8].copy_from_slice(&mark.segment.to_le_bytes());
        bytes[8..16].copy_from_slice(&mark.len.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..16]);
        bytes[16..].copy_from_slice(&crc.to_le_bytes());
        self.file.write_all_at(&bytes, 0)
    }
}

/// The mark in `dir`, if there is a readable one.
pub fn read(dir: &Path) -> io::Result<Option<Mark>> {
    let bytes = match std::fs::read(dir.join(MARK_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(bytes) = bytes.get(..MARK_LEN) else {
        return Ok(None);
    };
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let mut stored = [0u8; 4];
    stored.copy_from_slice(&bytes[16..]);
    if crc32c::crc32c(&bytes[..16]) != u32::from_le_bytes(stored) {
        tracing::warn!(dir = %dir.display(), "raft log tail mark is damaged; ignoring it");
        return Ok(None);
    }
    Ok(Some(Mark {
        segment: word(0),
        len: word(8),
    }))
}

/// Refuses a log whose newest segment (`last`: number and length after replay) holds less
/// than the mark says was synced: acknowledged records are gone.
pub fn check(mark: Option<Mark>, last: Option<(u64, u64)>, dir: &Path) -> io::Result<()> {
    let Some(mark) = mark else {
        return Ok(());
    };
    let lost = match last {
        None => true,
        Some((segment, _)) if segment < mark.segment => true,
        Some((segment, len)) => segment == mark.segment && len < mark.len,
    };
    if !lost {
        return Ok(());
    }
    let (segment, len) = last.unwrap_or((0, 0));
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "raft log {} lost acknowledged records: segment {} had {} synced bytes, now the \
             newest is segment {segment} with {len} bytes; repair this node from its peers \
             (docs/operations.md)",
            dir.display(),
            mark.segment,
            mark.len
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_round_trips_and_a_damaged_one_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("read"), None);
        let mark = TailMark::open(dir.path()).expect("open");
        let m = Mark {
            segment: 3,
            len: 4096,
        };
        mark.record(m).expect("record");
        assert_eq!(read(dir.path()).expect("read"), Some(m));
        let path = dir.path().join(MARK_FILE);
        let mut bytes = std::fs::read(&path).expect("bytes");
        bytes[9] ^= 4;
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(read(dir.path()).expect("read"), None);
    }

    #[test]
    fn a_shorter_or_missing_newest_segment_is_refused() {
        let dir = Path::new("/x");
        let m = Some(Mark {
            segment: 3,
            len: 100,
        });
        assert!(check(None, Some((3, 0)), dir).is_ok());
        assert!(check(m, Some((3, 100)), dir).is_ok());
        assert!(check(m, Some((3, 150)), dir).is_ok());
        assert!(
            check(m, Some((4, 10)), dir).is_ok(),
            "rotated after the mark"
        );
        let err = check(m, Some((3, 99)), dir).expect_err("cut");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains("lost acknowledged records"),
            "{err}"
        );
        assert!(
            check(m, Some((2, 500)), dir).is_err(),
            "newest segment gone"
        );
        assert!(check(m, None, dir).is_err(), "every segment gone");
    }
}
