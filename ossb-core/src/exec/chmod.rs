//! `--chmod` values: octal (`755`, `0644`) and symbolic (`u+x,go-w`, `a=rX`), applied per file.

use super::error::{FsError, Result};

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// An absolute octal mode (`0o755`).
    Octal(u32),
    /// Symbolic clauses applied in order.
    Symbolic(Vec<Clause>),
}

/// One symbolic clause: who (`u`, `g`, `o` bits as a mask set) and actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    who: u8,
    actions: Vec<(char, Perm)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Perm {
    Bits(String),
    Copy(char),
}

const U: u8 = 1;
const G: u8 = 2;
const O: u8 = 4;

fn invalid(s: &str) -> FsError {
    FsError::Invalid {
        message: format!(
            "invalid --chmod value `{s}`: use octal like 755 or symbolic like u+x,go-w"
        ),
    }
}

impl Chmod {
    /// Parses a `--chmod` value.
    pub fn parse(s: &str) -> Result<Chmod> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let v = u32::from_str_radix(s, 8).map_err(|_| invalid(s))?;
            if v > 0o7777 {
                return Err(invalid(s));
            }
            return Ok(Chmod::Octal(v));
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let mut chars = part.chars().peekable();
            let mut who = 0u8;
            while let Some(&c) = chars.peek() {
                match c {
                    'u' => who |= U,
                    'g' => who |= G,
                    'o' => who |= O,
                    'a' => who |= U | G | O,
                    _ => break,
                }
                chars.next();
            }
            let mut actions = Vec::new();
            while let Some(op) = chars.next() {
                if !matches!(op, '+' | '-' | '=') {
                    return Err(invalid(s));
                }
                let mut perm = String::new();
                while let Some(&c) = chars.peek() {
                    if matches!(c, '+' | '-' | '=') {
                        break;
                    }
                    perm.push(c);
                    chars.next();
                }
                let p = match perm.as_str() {
                    "u" | "g" | "o" => Perm::Copy(perm.chars().next().unwrap_or('u')),
                    bits if bits.chars().all(|c| "rwxXst".contains(c)) => {
                        Perm::Bits(bits.to_string())
                    }
                    _ => return Err(invalid(s)),
                };
                actions.push((op, p));
            }
            if actions.is_empty() {
                return Err(invalid(s));
            }
            clauses.push(Clause {
                who: if who == 0 { U | G | O } else { who },
                actions,
            });
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The permission bits of a file or directory with current bits `mode` after this chmod.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Chmod::Octal(m) => return *m,
            Chmod::Symbolic(c) => c,
        };
        let mut mode = mode & 0o7777;
        for clause in clauses {
            let mut mask = 0u32;
            for (bit, rwx, special) in [(U, 0o700, 0o4000), (G, 0o070, 0o2000), (O, 0o007, 0o1000)]
            {
                if clause.who & bit != 0 {
                    mask |= rwx | special;
                }
            }
            for (op, perm) in &clause.actions {
                let bits = match perm {
                    Perm::Copy(c) => {
                        let shift = match c {
                            'u' => 6,
                            'g' => 3,
                            _ => 0,
                        };
                        let v = (mode >> shift) & 7;
                        (v << 6 | v << 3 | v) & mask & 0o777
                    }
                    Perm::Bits(b) => {
                        let mut v = 0u32;
                        for c in b.chars() {
                            v |= match c {
                                'r' => 0o444,
                                'w' => 0o222,
                                'x' => 0o111,
                                'X' if is_dir || mode & 0o111 != 0 => 0o111,
                                's' => 0o6000,
                                't' => 0o1000,
                                _ => 0,
                            };
                        }
                        v & mask
                    }
                };
                match op {
                    '+' => mode |= bits,
                    '-' => mode &= !bits,
                    _ => mode = (mode & !mask) | bits,
                }
            }
        }
        mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_and_symbolic() {
        assert_eq!(Chmod::parse("755").expect("ok").apply(0o600, false), 0o755);
        assert_eq!(Chmod::parse("0644").expect("ok").apply(0o777, true), 0o644);
        assert!(Chmod::parse("8").is_err());
        assert!(Chmod::parse("17777").is_err());
        assert_eq!(
            Chmod::parse("u+x,go-w").expect("ok").apply(0o666, false),
            0o744
        );
        assert_eq!(Chmod::parse("a=rX").expect("ok").apply(0o640, false), 0o444);
        assert_eq!(Chmod::parse("a=rX").expect("ok").apply(0o640, true), 0o555);
        assert_eq!(Chmod::parse("a=rX").expect("ok").apply(0o700, false), 0o555);
        assert_eq!(Chmod::parse("+x").expect("ok").apply(0o644, false), 0o755);
        assert_eq!(Chmod::parse("g=u").expect("ok").apply(0o740, false), 0o770);
        assert_eq!(
            Chmod::parse("u+s,o+t").expect("ok").apply(0o755, true),
            0o5755
        );
        assert_eq!(Chmod::parse("o=").expect("ok").apply(0o777, false), 0o770);
        assert_eq!(
            Chmod::parse("u-w+x").expect("ok").apply(0o644, false),
            0o544
        );
        for bad in ["", "u", "z+x", "u+q", "u+x,"] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
    }
}
