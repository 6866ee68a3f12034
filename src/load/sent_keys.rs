//! The keys a bulk load has sent, kept in a Bloom filter of bounded size, so that the finish
//! looks for later occurrences among the few rows whose key may repeat instead of among all
//! rows (see [`super::bulk`] and migrations/V7__bulk_load_suspect_keys.sql).
//!
//! A Bloom filter never forgets a key it was given: a key it says is new is new to this load, so
//! every later occurrence of a key is a suspect. Its false positives only add suspects that turn
//! out to be first occurrences. Its size is fixed when the load starts, from the input's size,
//! and capped at [`MAX_FILTER_BYTES`]: a bigger load fills it more, which raises the share of
//! false positives (more suspects, a slower finish) but never loses a duplicate.

use std::path::Path;

use bloomfilter::Bloom;

use crate::ingest::event_id::StoredEventId;

/// The filter's largest bitmap: at the wanted rate it holds about 6.7 million keys, and memory
/// stays well within the loader's budget (docs/performance.md, "Peak memory").
pub(super) const MAX_FILTER_BYTES: usize = 8 << 20;
/// The smallest bitmap, for small inputs and inputs of unknown size (standard input never takes
/// the bulk path, but an empty or unreadable file may).
const MIN_FILTER_BYTES: usize = 64 << 10;
/// The wanted share of false positives while the filter holds no more keys than expected.
const FALSE_POSITIVE_RATE: f64 = 0.01;
/// Bytes per line used to estimate the number of keys from a file's size: below the real
/// sample's ~170 bytes per line, so the estimate is generous. A `.gz` file counts ten times its
/// size (JSON lines compress about that much).
const ESTIMATED_LINE_BYTES: u64 = 100;
const GZIP_RATIO: u64 = 10;
/// A fixed seed: the filter's verdicts, and so the suspects, are the same on every run.
const SEED: [u8; 32] = *b"campaign-elt bulk load sent keys";

/// The Bloom filter of the `(event_id, event_type)` keys a bulk load has sent.
pub struct SentKeys {
    filter: Bloom<[u8]>,
    /// The key being checked, as bytes: the uuid, the event type, a NUL, the id's text.
    key: Vec<u8>,
}

impl SentKeys {
    /// A filter sized for about `expected_keys` keys at [`FALSE_POSITIVE_RATE`], within the
    /// size bounds.
    pub fn for_expected_keys(expected_keys: u64) -> Self {
        let expected = usize::try_from(expected_keys.max(1)).unwrap_or(usize::MAX);
        let bytes = Bloom::<[u8]>::compute_bitmap_size(expected, FALSE_POSITIVE_RATE)
            .clamp(MIN_FILTER_BYTES, MAX_FILTER_BYTES);
        let filter = Bloom::new_with_seed(bytes, expected, &SEED)
            .expect("a bitmap and a key count above zero always make a filter");
        Self {
            filter,
            key: Vec::with_capacity(64),
        }
    }

    /// A filter sized for the lines the given files can hold (see [`ESTIMATED_LINE_BYTES`]).
    pub fn for_inputs(paths: &[impl AsRef<Path>]) -> Self {
        let expected_keys = paths
            .iter()
            .map(|path| {
                let path = path.as_ref();
                let bytes = std::fs::metadata(path).map_or(0, |metadata| metadata.len());
                let is_gzip = path.extension().is_some_and(|extension| extension == "gz");
                bytes.saturating_mul(if is_gzip { GZIP_RATIO } else { 1 }) / ESTIMATED_LINE_BYTES
            })
            .fold(0u64, u64::saturating_add);
        Self::for_expected_keys(expected_keys)
    }

    /// Records a key; returns whether it may have been recorded before (a suspect).
    pub fn record(&mut self, event_id: &StoredEventId<'_>, event_type: &str) -> bool {
        self.key.clear();
        self.key.extend_from_slice(&event_id.uuid);
        self.key.extend_from_slice(event_type.as_bytes());
        self.key.push(0);
        self.key.extend_from_slice(event_id.text.as_bytes());
        self.filter.check_and_set(&self.key)
    }

    /// The bitmap's size in bytes.
    pub fn bitmap_bytes(&self) -> u64 {
        self.filter.len() / 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(index: u64) -> String {
        format!("event-{index}")
    }

    #[test]
    fn every_repeated_key_is_a_suspect_and_few_new_keys_are() {
        let keys = 200_000;
        let mut sent = SentKeys::for_expected_keys(keys);
        let mut false_positives = 0;
        for index in 0..keys {
            let text = id(index);
            if sent.record(&StoredEventId::of(&text), "ReferralPageLoad") {
                false_positives += 1;
            }
        }
        for index in (0..keys).step_by(97) {
            let text = id(index);
            assert!(
                sent.record(&StoredEventId::of(&text), "ReferralPageLoad"),
                "a repeated key is always a suspect"
            );
        }
        let share = false_positives as f64 / keys as f64;
        assert!(share < 0.02, "false positives {share}");
        // The same id with another type, or the same text as a uuid's, is another key.
        let mut one = SentKeys::for_expected_keys(1);
        let uuid = "cc8dac61-f9d0-4bcb-a9aa-602456ee20d4";
        assert!(!one.record(&StoredEventId::of(uuid), "ReferralPageLoad"));
        assert!(!one.record(&StoredEventId::of(uuid), "FaqClick"));
        assert!(!one.record(&StoredEventId::of(&uuid.to_uppercase()), "FaqClick"));
        assert!(one.record(&StoredEventId::of(uuid), "FaqClick"));
    }

    #[test]
    fn the_bitmap_is_bounded_whatever_the_input() {
        assert_eq!(
            SentKeys::for_expected_keys(0).bitmap_bytes(),
            MIN_FILTER_BYTES as u64
        );
        assert_eq!(
            SentKeys::for_expected_keys(u64::MAX).bitmap_bytes(),
            MAX_FILTER_BYTES as u64
        );
        let four_million = SentKeys::for_expected_keys(4_000_000).bitmap_bytes();
        assert!(
            (4_000_000..=5_000_000).contains(&four_million),
            "{four_million}"
        );
        // An overfull filter still never misses a repeated key.
        let mut small = SentKeys::for_expected_keys(10);
        for index in 0..100_000 {
            small.record(&StoredEventId::of(&id(index)), "FaqClick");
        }
        for index in 0..100_000 {
            assert!(small.record(&StoredEventId::of(&id(index)), "FaqClick"));
        }
    }

    #[test]
    fn inputs_are_sized_by_their_bytes_and_gzip_counts_more() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.jsonl");
        let gzip = dir.path().join("a.jsonl.gz");
        std::fs::write(&plain, vec![b'x'; 10_000_000]).unwrap();
        std::fs::write(&gzip, vec![b'x'; 1_000_000]).unwrap();
        let expected = |keys| SentKeys::for_expected_keys(keys).bitmap_bytes();
        assert_eq!(
            SentKeys::for_inputs(&[&plain]).bitmap_bytes(),
            expected(100_000)
        );
        assert_eq!(
            SentKeys::for_inputs(&[&plain, &gzip]).bitmap_bytes(),
            expected(200_000)
        );
        let missing = dir.path().join("missing.jsonl");
        assert_eq!(
            SentKeys::for_inputs(&[&missing]).bitmap_bytes(),
            MIN_FILTER_BYTES as u64
        );
    }
}
