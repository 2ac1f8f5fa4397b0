//! "Did you mean ...?" suggestions, like BuildKit's `util/suggest`: the closest option by
//! Levenshtein distance, when fewer than three edits away.

/// Levenshtein distance between `a` and `b`, by characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The option closest to `val` ignoring case, spelled in `val`'s case when `val` is all
/// lower or all upper case. `None` when `val` is an option or nothing is close.
pub(crate) fn suggest(val: &str, options: &[&str]) -> Option<String> {
    let lower = val.to_lowercase();
    let mut best: Option<(usize, String)> = None;
    for opt in options {
        let opt = opt.to_lowercase();
        if opt == lower {
            return None;
        }
        let d = distance(&lower, &opt);
        if d < best.as_ref().map_or(3, |b| b.0) {
            best = Some((d, opt));
        }
    }
    best.map(|(_, m)| {
        if val == val.to_uppercase() {
            m.to_uppercase()
        } else {
            m
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("copyy", "copy"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("한국", "한글"), 1);
    }

    #[test]
    fn suggestions_match_case_and_need_a_close_option() {
        let opts = ["ADD", "COPY", "RUN", "WORKDIR"];
        assert_eq!(suggest("COPYY", &opts).as_deref(), Some("COPY"));
        assert_eq!(suggest("copyy", &opts).as_deref(), Some("copy"));
        assert_eq!(suggest("Workdi", &opts).as_deref(), Some("workdir"));
        assert_eq!(suggest("COPY", &opts), None);
        assert_eq!(suggest("BOGUS", &opts), None);
    }
}
