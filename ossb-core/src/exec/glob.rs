//! Go `filepath.Match`-style matching of one path segment (`*`, `?`, `[a-z]`, `[^x]`, `\`).

/// True when `pattern` contains a wildcard character.
pub fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Matches one segment `name` against `pattern`; `None` when the pattern is malformed.
pub fn match_segment(pattern: &str, name: &str) -> Option<bool> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches(&p, &n)
}

fn matches(p: &[char], n: &[char]) -> Option<bool> {
    match p.first() {
        None => Some(n.is_empty()),
        Some('*') => {
            for i in 0..=n.len() {
                if matches(&p[1..], &n[i..])? {
                    return Some(true);
                }
            }
            Some(false)
        }
        Some('?') => Some(!n.is_empty() && matches(&p[1..], &n[1..])?),
        Some('[') => {
            let (ok, used) = class(&p[1..], n.first().copied())?;
            Some(ok && matches(&p[1 + used..], &n[1..])?)
        }
        Some('\\') => {
            let c = *p.get(1)?;
            Some(n.first() == Some(&c) && matches(&p[2..], &n[1..])?)
        }
        Some(c) => Some(n.first() == Some(c) && matches(&p[1..], &n[1..])?),
    }
}

/// Matches a `[...]` class (after the `[`); returns (matched, chars consumed incl. `]`).
fn class(p: &[char], c: Option<char>) -> Option<(bool, usize)> {
    let mut i = 0;
    let negate = p.first() == Some(&'^');
    if negate {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let mut lo = *p.get(i)?;
        if lo == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        if lo == '\\' {
            i += 1;
            lo = *p.get(i)?;
        }
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
            hi = p[i + 1];
            if hi == '\\' {
                hi = *p.get(i + 2)?;
                i += 1;
            }
            i += 2;
        }
        if let Some(c) = c
            && lo <= c
            && c <= hi
        {
            found = true;
        }
    }
    Some((c.is_some() && found != negate, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_filepath_match_cases() {
        let cases = [
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*/b", "abc/b", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[^a-c]x", "dx", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("*.txt", "notes.txt", true),
            ("*.txt", "notes.md", false),
        ];
        for (p, n, want) in cases {
            assert_eq!(match_segment(p, n), Some(want), "{p} {n}");
        }
        assert_eq!(match_segment("[a-", "a"), None);
    }
}
