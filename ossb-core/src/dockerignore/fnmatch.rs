//! Syntax check of a pattern with Go `filepath.Match` rules (upstream rejects what it rejects).

/// Whether Go's `filepath.Match` would accept `pattern` without `ErrBadPattern`.
pub fn is_valid(pattern: &str) -> bool {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '*' {
            i += 1;
            continue;
        }
        let end = chunk_end(&chars, i);
        if !chunk_is_valid(&chars[i..end]) {
            return false;
        }
        i = end;
    }
    true
}

/// End of the chunk starting at `i`: the next `*` outside a `[...]`.
fn chunk_end(chars: &[char], mut i: usize) -> usize {
    let mut in_range = false;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => i += 1,
            '[' => in_range = true,
            ']' => in_range = false,
            '*' if !in_range => return i,
            _ => {}
        }
        i += 1;
    }
    chars.len()
}

fn chunk_is_valid(chunk: &[char]) -> bool {
    let mut i = 0;
    while i < chunk.len() {
        match chunk[i] {
            '[' => {
                i += 1;
                if chunk.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut nrange = 0;
                loop {
                    if chunk.get(i) == Some(&']') && nrange > 0 {
                        i += 1;
                        break;
                    }
                    let Some(next) = class_char(chunk, i) else {
                        return false;
                    };
                    i = next;
                    if chunk[i] == '-' {
                        let Some(next) = class_char(chunk, i + 1) else {
                            return false;
                        };
                        i = next;
                    }
                    nrange += 1;
                }
            }
            '\\' => {
                if i + 1 >= chunk.len() {
                    return false;
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    true
}

/// Go's `getEsc`: one class character at `i`; the index after it, which must not be the end.
fn class_char(chunk: &[char], mut i: usize) -> Option<usize> {
    match chunk.get(i)? {
        '-' | ']' => return None,
        '\\' => i += 1,
        _ => {}
    }
    chunk.get(i)?;
    i += 1;
    (i < chunk.len()).then_some(i)
}
