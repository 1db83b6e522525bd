//! Completion indexes of Indexed Jobs: the `1,3-5` interval strings of
//! `status.completedIndexes`/`failedIndexes` and the index a pod carries (upstream's
//! `indexed_job_utils.go`).

use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeSet;

/// The annotation (and label) holding a pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The annotation counting the failures of a pod's index before it (backoffLimitPerIndex).
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
/// The annotation counting failures ignored by the pod failure policy before it.
pub const INDEX_IGNORED_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";

/// Parses an interval list (`0,2-4`), keeping only indexes below `completions` as upstream
/// does; malformed parts are skipped rather than failing the whole Job.
pub fn parse(s: Option<&str>, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.unwrap_or("").split(',').filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        let (Ok(first), Ok(last)) = (first, last) else {
            continue;
        };
        let last = last.min(completions.saturating_sub(1));
        if first < 0 || first > last {
            continue;
        }
        out.extend(first..=last);
    }
    out
}

/// Formats indexes as upstream's interval list: consecutive runs of at least two become
/// `a-b`; `None` when empty (the field is omitted).
pub fn format(set: &BTreeSet<i32>) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        parts.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

/// The completion index a pod carries (annotation first, then label), if valid for
/// `completions`.
pub fn of_pod(pod: &Pod, completions: i32) -> Option<i32> {
    let meta = &pod.metadata;
    let raw = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(COMPLETION_INDEX))
        .or_else(|| meta.labels.as_ref().and_then(|l| l.get(COMPLETION_INDEX)))?;
    let ix: i32 = raw.parse().ok()?;
    (0..completions).contains(&ix).then_some(ix)
}

/// A counter annotation of a pod (`INDEX_FAILURE_COUNT`, ...), 0 when absent or malformed.
pub fn counter(pod: &Pod, key: &str) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse().ok())
        .filter(|v: &i32| *v >= 0)
        .unwrap_or(0)
}

/// The lowest `count` indexes below `completions` that are in none of `taken`
/// (upstream's `firstPendingIndexes`).
pub fn first_pending(taken: &[&BTreeSet<i32>], count: usize, completions: i32) -> Vec<i32> {
    (0..completions)
        .filter(|ix| !taken.iter().any(|s| s.contains(ix)))
        .take(count)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_strings_round_trip_as_upstream() {
        let cases: [(&str, i32, &[i32], Option<&str>); 6] = [
            ("", 5, &[], None),
            ("0", 5, &[0], Some("0")),
            ("0,2-4", 5, &[0, 2, 3, 4], Some("0,2-4")),
            ("1-2,3", 5, &[1, 2, 3], Some("1-3")),
            ("3-9", 5, &[3, 4], Some("3-4")),
            ("x,1,2-z", 5, &[1], Some("1")),
        ];
        for (input, completions, want, formatted) in cases {
            let got = parse(Some(input), completions);
            assert_eq!(got.iter().copied().collect::<Vec<_>>(), want, "{input}");
            assert_eq!(format(&got).as_deref(), formatted, "{input}");
        }
    }

    #[test]
    fn first_pending_skips_taken_indexes() {
        let done = parse(Some("0,2"), 6);
        let active = parse(Some("3"), 6);
        assert_eq!(first_pending(&[&done, &active], 2, 6), vec![1, 4]);
        assert_eq!(first_pending(&[&done, &active], 9, 6), vec![1, 4, 5]);
        assert_eq!(first_pending(&[], 0, 6), Vec::<i32>::new());
    }
}
