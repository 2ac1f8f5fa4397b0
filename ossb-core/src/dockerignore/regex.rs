//! The small subset of Go regexp syntax that upstream's pattern-to-regexp translation emits.
//!
//! Upstream builds a regexp string from the pattern and compiles it with Go's `regexp`. Class
//! text is passed through raw, so odd patterns give odd regexps (`[*]` becomes `[[^/]*]`).
//! Parsing the same string with RE2's rules keeps those results identical. Supported: literals,
//! `.`, `^`, `$`, groups, `*` and `?`, classes with ranges, negation, POSIX names and perl
//! classes, and the escapes `\d \s \w` (and negations), `\a \f \t \n \r \v`, `\A`, `\z` and
//! escaped punctuation. Anything else is reported as a bad pattern. Matching is a Thompson NFA
//! simulation: O(regexp × text).

/// A parse failure; callers report it as a bad pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadRegex;

#[derive(Debug, Clone, PartialEq, Eq)]
enum ClassItem {
    Range(char, char),
    /// A negated named or perl class inside a class, e.g. `\D` or `[:^alpha:]`.
    NotIn(Vec<(char, char)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    items: Vec<ClassItem>,
    negated: bool,
}

impl Class {
    fn contains(&self, c: char) -> bool {
        let hit = self.items.iter().any(|item| match item {
            ClassItem::Range(lo, hi) => (*lo..=*hi).contains(&c),
            ClassItem::NotIn(ranges) => !ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)),
        });
        hit != self.negated
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Inst {
    Char(char),
    AnyNotNl,
    Class(Class),
    Split(usize, usize),
    Jmp(usize),
    Begin,
    End,
    Match,
}

/// A compiled regexp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regex {
    prog: Vec<Inst>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Char(char),
    Any,
    Class(Class),
    Begin,
    End,
    Group(Vec<Node>),
    Star(Box<Node>),
    Quest(Box<Node>),
}

const DIGIT: &[(char, char)] = &[('0', '9')];
const SPACE: &[(char, char)] = &[('\t', '\n'), ('\x0c', '\r'), (' ', ' ')];
const WORD: &[(char, char)] = &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];

fn posix_class(name: &str) -> Option<&'static [(char, char)]> {
    Some(match name {
        "alnum" => &[('0', '9'), ('A', 'Z'), ('a', 'z')],
        "alpha" => &[('A', 'Z'), ('a', 'z')],
        "ascii" => &[('\0', '\x7f')],
        "blank" => &[('\t', '\t'), (' ', ' ')],
        "cntrl" => &[('\0', '\x1f'), ('\x7f', '\x7f')],
        "digit" => DIGIT,
        "graph" => &[('!', '~')],
        "lower" => &[('a', 'z')],
        "print" => &[(' ', '~')],
        "punct" => &[('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
        "space" => &[('\t', '\r'), (' ', ' ')],
        "upper" => &[('A', 'Z')],
        "word" => WORD,
        "xdigit" => &[('0', '9'), ('A', 'F'), ('a', 'f')],
        _ => return None,
    })
}

fn perl_class(c: char) -> Option<(&'static [(char, char)], bool)> {
    match c {
        'd' => Some((DIGIT, false)),
        'D' => Some((DIGIT, true)),
        's' => Some((SPACE, false)),
        'S' => Some((SPACE, true)),
        'w' => Some((WORD, false)),
        'W' => Some((WORD, true)),
        _ => None,
    }
}

fn set_item(ranges: &[(char, char)], negated: bool) -> Vec<ClassItem> {
    if negated {
        vec![ClassItem::NotIn(ranges.to_vec())]
    } else {
        ranges
            .iter()
            .map(|&(lo, hi)| ClassItem::Range(lo, hi))
            .collect()
    }
}

/// Single-character escapes valid both inside and outside classes.
fn escaped_char(c: char) -> Option<char> {
    match c {
        'a' => Some('\x07'),
        'f' => Some('\x0c'),
        't' => Some('\t'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        'v' => Some('\x0b'),
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Some(c),
        _ => None,
    }
}

struct Parser {
    s: Vec<char>,
    i: usize,
}

impl Parser {
    fn seq(&mut self, in_group: bool) -> Result<Vec<Node>, BadRegex> {
        let mut nodes: Vec<Node> = Vec::new();
        // 0: last node plain, 1: repeated, 2: repeated and made lazy (`x*?`).
        // Repeating again is RE2's "invalid nested repetition".
        let mut repeat_state = 0;
        while let Some(&c) = self.s.get(self.i) {
            self.i += 1;
            let node = match c {
                '(' => {
                    let inner = self.seq(true)?;
                    if self.s.get(self.i) != Some(&')') {
                        return Err(BadRegex);
                    }
                    self.i += 1;
                    Node::Group(inner)
                }
                ')' if in_group => {
                    self.i -= 1;
                    return Ok(nodes);
                }
                ')' | '|' | '+' | '{' => return Err(BadRegex),
                '*' | '?' => {
                    if repeat_state == 1 && c == '?' {
                        // The lazy form matches the same strings.
                        repeat_state = 2;
                        continue;
                    }
                    if repeat_state != 0 {
                        return Err(BadRegex);
                    }
                    let prev = match nodes.pop() {
                        Some(Node::Begin | Node::End) | None => return Err(BadRegex),
                        Some(n) => Box::new(n),
                    };
                    nodes.push(if c == '*' {
                        Node::Star(prev)
                    } else {
                        Node::Quest(prev)
                    });
                    repeat_state = 1;
                    continue;
                }
                '[' => Node::Class(self.class()?),
                '.' => Node::Any,
                '^' => Node::Begin,
                '$' => Node::End,
                '\\' => self.escape()?,
                c => Node::Char(c),
            };
            nodes.push(node);
            repeat_state = 0;
        }
        if in_group {
            return Err(BadRegex);
        }
        Ok(nodes)
    }

    fn escape(&mut self) -> Result<Node, BadRegex> {
        let c = *self.s.get(self.i).ok_or(BadRegex)?;
        self.i += 1;
        if let Some((ranges, negated)) = perl_class(c) {
            return Ok(Node::Class(Class {
                items: set_item(ranges, negated),
                negated: false,
            }));
        }
        match c {
            'A' => Ok(Node::Begin),
            'z' => Ok(Node::End),
            c => escaped_char(c).map(Node::Char).ok_or(BadRegex),
        }
    }

    fn class(&mut self) -> Result<Class, BadRegex> {
        let mut class = Class {
            items: Vec::new(),
            negated: false,
        };
        if self.s.get(self.i) == Some(&'^') {
            class.negated = true;
            self.i += 1;
        }
        let mut first = true;
        loop {
            let c = *self.s.get(self.i).ok_or(BadRegex)?;
            if c == ']' && !first {
                self.i += 1;
                return Ok(class);
            }
            first = false;
            if c == '['
                && self.s.get(self.i + 1) == Some(&':')
                && let Some(items) = self.named_class()?
            {
                class.items.extend(items);
                continue;
            }
            let perl = self.s.get(self.i + 1).and_then(|&e| perl_class(e));
            if let (true, Some((ranges, negated))) = (c == '\\', perl) {
                class.items.extend(set_item(ranges, negated));
                self.i += 2;
                continue;
            }
            let lo = self.class_char()?;
            let mut hi = lo;
            if self.s.get(self.i) == Some(&'-') && self.s.get(self.i + 1).is_some_and(|&n| n != ']')
            {
                self.i += 1;
                hi = self.class_char()?;
                if hi < lo {
                    return Err(BadRegex);
                }
            }
            class.items.push(ClassItem::Range(lo, hi));
        }
    }

    /// `[:name:]` at the cursor; `None` when there is no closing `:]` (then `[` is literal).
    fn named_class(&mut self) -> Result<Option<Vec<ClassItem>>, BadRegex> {
        let rest = &self.s[self.i + 2..];
        let Some(end) = rest.windows(2).position(|w| w == [':', ']']) else {
            return Ok(None);
        };
        let name: String = rest[..end].iter().collect();
        let (name, negated) = match name.strip_prefix('^') {
            Some(n) => (n.to_string(), true),
            None => (name, false),
        };
        let ranges = posix_class(&name).ok_or(BadRegex)?;
        self.i += 2 + end + 2;
        Ok(Some(set_item(ranges, negated)))
    }

    fn class_char(&mut self) -> Result<char, BadRegex> {
        let c = *self.s.get(self.i).ok_or(BadRegex)?;
        self.i += 1;
        if c != '\\' {
            return Ok(c);
        }
        let e = *self.s.get(self.i).ok_or(BadRegex)?;
        self.i += 1;
        escaped_char(e).ok_or(BadRegex)
    }
}

fn emit(prog: &mut Vec<Inst>, node: &Node) {
    match node {
        Node::Char(c) => prog.push(Inst::Char(*c)),
        Node::Any => prog.push(Inst::AnyNotNl),
        Node::Class(c) => prog.push(Inst::Class(c.clone())),
        Node::Begin => prog.push(Inst::Begin),
        Node::End => prog.push(Inst::End),
        Node::Group(nodes) => nodes.iter().for_each(|n| emit(prog, n)),
        Node::Star(inner) => {
            let split = prog.len();
            prog.push(Inst::Split(0, 0));
            emit(prog, inner);
            prog.push(Inst::Jmp(split));
            let after = prog.len();
            prog[split] = Inst::Split(split + 1, after);
        }
        Node::Quest(inner) => {
            let split = prog.len();
            prog.push(Inst::Split(0, 0));
            emit(prog, inner);
            let after = prog.len();
            prog[split] = Inst::Split(split + 1, after);
        }
    }
}

impl Regex {
    /// Parses `pattern` with RE2 rules (for the supported subset).
    pub fn new(pattern: &str) -> Result<Self, BadRegex> {
        let mut parser = Parser {
            s: pattern.chars().collect(),
            i: 0,
        };
        let nodes = parser.seq(false)?;
        let mut prog = Vec::new();
        nodes.iter().for_each(|n| emit(&mut prog, n));
        prog.push(Inst::Match);
        Ok(Regex { prog })
    }

    /// Whether the regexp matches anywhere in `text` (Go's `MatchString`).
    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let n = self.prog.len();
        let mut current: Vec<usize> = Vec::new();
        let mut next: Vec<usize> = Vec::new();
        let mut seen = vec![false; n];
        for pos in 0..=chars.len() {
            // Unanchored search: a new thread starts at every position.
            if self.add(&mut current, &mut seen, 0, pos, chars.len()) {
                return true;
            }
            let Some(&c) = chars.get(pos) else { break };
            seen.iter_mut().for_each(|s| *s = false);
            next.clear();
            for &pc in &current {
                let ok = match &self.prog[pc] {
                    Inst::Char(l) => *l == c,
                    Inst::AnyNotNl => c != '\n',
                    Inst::Class(class) => class.contains(c),
                    _ => false,
                };
                if ok && self.add(&mut next, &mut seen, pc + 1, pos + 1, chars.len()) {
                    return true;
                }
            }
            std::mem::swap(&mut current, &mut next);
        }
        false
    }

    /// Adds the epsilon closure of `pc` at `pos`; returns true when it reaches `Match`.
    fn add(
        &self,
        list: &mut Vec<usize>,
        seen: &mut [bool],
        pc: usize,
        pos: usize,
        len: usize,
    ) -> bool {
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            if seen[pc] {
                continue;
            }
            seen[pc] = true;
            match &self.prog[pc] {
                Inst::Match => return true,
                Inst::Jmp(t) => stack.push(*t),
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::Begin if pos == 0 => stack.push(pc + 1),
                Inst::End if pos == len => stack.push(pc + 1),
                Inst::Begin | Inst::End => {}
                _ => list.push(pc),
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(re: &str, text: &str) -> bool {
        Regex::new(re).map(|r| r.is_match(text)).unwrap_or(false)
    }

    #[test]
    fn translated_patterns() {
        assert!(m("^(.*/)?dir2/[^/]*$", "a/b/dir2/f"));
        assert!(!m("^(.*/)?dir2/[^/]*$", "a/dir2/f/g"));
        assert!(m("^a[b-d]e$", "ace"));
        assert!(m("^[[^/]*]$", "[[]"));
        assert!(m("^[[:alpha:]]$", "q"));
        assert!(!m("^.*$", "a\nb"));
    }

    #[test]
    fn bad_regexps() {
        assert!(Regex::new("^[l-O]$").is_err());
        assert!(Regex::new("^a**$").is_err());
        assert!(Regex::new("^[abc$").is_err());
        assert!(Regex::new("\\q").is_err());
    }
}
