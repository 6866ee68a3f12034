//! A file's fingerprint: its size and content hash, and the hash of a prefix (to recognize a
//! file that has grown since it was loaded).

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::source;

/// Size and content hash of a file, plus the hash of its first `prefix_bytes` bytes when asked
/// (to recognize a file that has grown since it was loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub size: i64,
    pub hash: Vec<u8>,
    pub prefix_hash: Option<Vec<u8>>,
}

/// Reads and hashes the file. Reading (copying from the page cache) and hashing each take about
/// half of the time before the first line can be sent, so a thread reads while this one hashes,
/// two chunks of [`source::READ_BUFFER_BYTES`] apart at most (docs/performance.md).
pub fn fingerprint(path: &Path, prefix_bytes: Option<u64>) -> Result<Fingerprint> {
    use std::io::Read;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let metadata = file.metadata()?;
    if metadata.is_dir() {
        bail!("{} is a directory", path.display());
    }
    let mut hasher = PrefixHasher::new(prefix_bytes.filter(|&bytes| bytes <= metadata.len()));
    let (sender, receiver) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(2);
    std::thread::scope(|scope| {
        scope.spawn(move || loop {
            let mut chunk = vec![0; source::READ_BUFFER_BYTES];
            let read = file.read(&mut chunk).map(|read| {
                chunk.truncate(read);
                chunk
            });
            let at_end = !matches!(&read, Ok(chunk) if !chunk.is_empty());
            if sender.send(read).is_err() || at_end {
                break;
            }
        });
        for chunk in receiver {
            let chunk = chunk.with_context(|| format!("cannot read {}", path.display()))?;
            hasher.update(&chunk);
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let (hash, prefix_hash) = hasher.finalize();
    Ok(Fingerprint {
        size: metadata.len() as i64,
        hash,
        prefix_hash,
    })
}

/// A content hash that also records the hash of the first `prefix` bytes on the way.
struct PrefixHasher {
    hasher: blake3::Hasher,
    hashed: u64,
    prefix: Option<u64>,
    pub prefix_hash: Option<Vec<u8>>,
}

impl PrefixHasher {
    fn new(prefix: Option<u64>) -> Self {
        Self {
            hasher: blake3::Hasher::new(),
            hashed: 0,
            prefix,
            prefix_hash: None,
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        if let Some(prefix) = self.prefix.filter(|_| self.prefix_hash.is_none()) {
            let before_prefix_end = (prefix - self.hashed).min(bytes.len() as u64) as usize;
            self.hasher.update(&bytes[..before_prefix_end]);
            self.hashed += before_prefix_end as u64;
            bytes = &bytes[before_prefix_end..];
            self.snapshot_at_prefix_end();
        }
        self.hasher.update(bytes);
        self.hashed += bytes.len() as u64;
    }

    fn snapshot_at_prefix_end(&mut self) {
        if self.prefix == Some(self.hashed) && self.prefix_hash.is_none() {
            self.prefix_hash = Some(self.hasher.finalize().as_bytes().to_vec());
        }
    }

    /// The whole hash, and the prefix's when the input was at least that long.
    fn finalize(mut self) -> (Vec<u8>, Option<Vec<u8>>) {
        self.snapshot_at_prefix_end();
        (self.hasher.finalize().as_bytes().to_vec(), self.prefix_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_hash_is_taken_wherever_the_chunks_split() {
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let whole = blake3::hash(&content).as_bytes().to_vec();
        for prefix in [0, 1, 999, 1000, 1001, 9_999, 10_000] {
            let expected = blake3::hash(&content[..prefix]).as_bytes().to_vec();
            for chunk_bytes in [1, 7, 1000, 4096, 10_000] {
                let mut hasher = PrefixHasher::new(Some(prefix as u64));
                for chunk in content.chunks(chunk_bytes) {
                    hasher.update(chunk);
                }
                let (hash, prefix_hash) = hasher.finalize();
                assert_eq!(hash, whole, "prefix {prefix}, chunks of {chunk_bytes}");
                assert_eq!(
                    prefix_hash.as_ref(),
                    Some(&expected),
                    "prefix {prefix}, chunks of {chunk_bytes}"
                );
            }
        }
        let mut hasher = PrefixHasher::new(Some(10_001));
        hasher.update(&content);
        assert_eq!(
            hasher.finalize().1,
            None,
            "the input is shorter than the prefix"
        );
        let mut hasher = PrefixHasher::new(None);
        hasher.update(&content);
        assert_eq!(hasher.finalize(), (whole, None));
    }

    #[test]
    fn file_fingerprint_reads_every_chunk() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("events.jsonl");
        // more than two read chunks, ending in a partial one
        let content: Vec<u8> = (0..source::READ_BUFFER_BYTES * 5 / 2)
            .map(|i| (i % 253) as u8)
            .collect();
        std::fs::write(&path, &content).unwrap();
        let prefix = source::READ_BUFFER_BYTES as u64 + 3;
        let fingerprint = super::fingerprint(&path, Some(prefix)).unwrap();
        assert_eq!(fingerprint.size, content.len() as i64);
        assert_eq!(fingerprint.hash, blake3::hash(&content).as_bytes().to_vec());
        assert_eq!(
            fingerprint.prefix_hash,
            Some(
                blake3::hash(&content[..prefix as usize])
                    .as_bytes()
                    .to_vec()
            )
        );
        let longer_than_the_file = super::fingerprint(&path, Some(content.len() as u64 + 1));
        assert_eq!(longer_than_the_file.unwrap().prefix_hash, None);
        assert!(super::fingerprint(directory.path(), None).is_err());
    }
}
