//! How deep a compose file nests, checked on the raw text before the YAML
//! parser sees it.
//!
//! The YAML scanner underneath `serde_norway` (libyaml) re-examines every
//! open flow collection (`[`, `{`) at each token, so a file of 50,000
//! nested brackets costs it billions of steps before the deserializer's
//! own recursion limit (128 levels) can refuse it. This scan finds the
//! first flow collection past [`MAX_DEPTH`] in one pass. It follows
//! libyaml's rules for where a token starts (quoted scalars, comments,
//! plain scalars and block scalars hide their brackets) closely enough
//! that a bracket inside a value is not counted; deep block nesting
//! (indentation) is cheap for the parser and is left to the
//! deserializer's limit, whose error the import words the same way.

/// The deepest nesting `windlass import` reads: the deserializer's own
/// recursion limit, so a file is refused the same way whichever check
/// finds it.
pub const MAX_DEPTH: usize = 128;

/// The 1-based line and column (in characters) of the first `[` or `{`
/// that opens a flow collection nested deeper than `max`, if any.
pub fn too_deep(text: &str, max: usize) -> Option<(usize, usize)> {
    let mut s = Scan {
        b: text.as_bytes(),
        i: 0,
        line: 1,
        line_start: 0,
        flow: 0,
        indents: vec![-1],
    };
    let at = s.run(max)?;
    let col = text[s.line_start..at].chars().count() + 1;
    Some((s.line, col))
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    line: usize,
    line_start: usize,
    /// Open flow collections.
    flow: usize,
    /// The columns of the open block collections, innermost last, as
    /// libyaml keeps them (-1: the document); never empty.
    indents: Vec<isize>,
}

fn blank(c: Option<u8>) -> bool {
    matches!(c, None | Some(b' ' | b'\t' | b'\r' | b'\n'))
}

fn flow_indicator(c: Option<u8>) -> bool {
    matches!(c, Some(b',' | b'[' | b']' | b'{' | b'}'))
}

impl Scan<'_> {
    fn at(&self, i: usize) -> Option<u8> {
        self.b.get(i).copied()
    }

    fn col(&self) -> usize {
        self.i - self.line_start
    }

    fn indent(&self) -> isize {
        self.indents.last().copied().unwrap_or(-1)
    }

    /// Steps over the line break at `i`.
    fn newline(&mut self) {
        self.i += 1;
        self.line += 1;
        self.line_start = self.i;
    }

    /// The line starting at `from`: its leading blanks, and whether it
    /// holds nothing else.
    fn line_at(&self, from: usize) -> (usize, bool) {
        let rest = &self.b[from.min(self.b.len())..];
        let line = &rest[..rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())];
        let lead = line
            .iter()
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        (lead, line[lead..].iter().all(|&c| c == b'\r'))
    }

    /// Returns the offset of the first flow collection deeper than `max`.
    fn run(&mut self, max: usize) -> Option<usize> {
        while let Some(c) = self.at(self.i) {
            match c {
                b'\n' => self.newline(),
                b' ' | b'\t' | b'\r' => self.i += 1,
                b'#' => self.skip_line(),
                _ => {
                    if self.token(c, max) {
                        return Some(self.i);
                    }
                }
            }
        }
        None
    }

    /// One token starting at `i`; true when it opens a flow collection
    /// deeper than `max`.
    fn token(&mut self, c: u8, max: usize) -> bool {
        let col = self.col();
        if self.flow == 0 {
            // A token closes the block collections indented past it.
            while self.indents.len() > 1 && self.indent() > col as isize {
                self.indents.pop();
            }
        }
        match c {
            b'[' | b'{' => {
                self.flow += 1;
                if self.flow > max {
                    return true;
                }
                self.i += 1;
            }
            b']' | b'}' => {
                self.flow = self.flow.saturating_sub(1);
                self.i += 1;
            }
            b',' if self.flow > 0 => self.i += 1,
            b'-' | b'?' | b':' if self.indicator_ends(self.i + 1) => {
                if c != b':' {
                    self.roll(col);
                }
                self.i += 1;
            }
            b'-' | b'.' if self.document_marker(c) => self.i += 3,
            b'%' if self.i == self.line_start => self.skip_line(),
            b'&' | b'*' | b'!' => self.skip_word(),
            b'|' | b'>' if self.flow == 0 => self.block_scalar(),
            b'"' | b'\'' => {
                self.quoted(c);
                self.key_at(col);
            }
            _ => {
                self.i += 1;
                self.plain_chunk();
                if !self.key_at(col) && self.flow == 0 {
                    self.plain_continuation();
                }
            }
        }
        false
    }

    /// A block collection at column `col` when it is indented past the
    /// current one (a key or `-` there starts one).
    fn roll(&mut self, col: usize) {
        if self.flow == 0 && col as isize > self.indent() {
            self.indents.push(col as isize);
        }
    }

    /// An indicator (`-`, `?`, `:`) is one when followed by a blank, or in
    /// a flow collection by a flow indicator.
    fn indicator_ends(&self, next: usize) -> bool {
        let c = self.at(next);
        blank(c) || (self.flow > 0 && flow_indicator(c))
    }

    /// `---` or `...` at the start of a line.
    fn document_marker(&self, c: u8) -> bool {
        self.i == self.line_start
            && self.b[self.i..].starts_with(&[c, c, c])
            && blank(self.at(self.i + 3))
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.at(self.i) {
            if c == b'\n' {
                return;
            }
            self.i += 1;
        }
    }

    /// An anchor, alias or tag: up to a blank (or a flow indicator).
    fn skip_word(&mut self) {
        self.i += 1;
        while let Some(c) = self.at(self.i) {
            if blank(Some(c)) || (self.flow > 0 && flow_indicator(Some(c))) {
                return;
            }
            self.i += 1;
        }
    }

    /// Whether the scalar just read (from column `col`) is a block
    /// mapping's key, which opens the mapping at its column.
    fn key_at(&mut self, col: usize) -> bool {
        if self.flow > 0 {
            return false;
        }
        let mut j = self.i;
        while matches!(self.at(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        let key = self.at(j) == Some(b':') && blank(self.at(j + 1));
        if key {
            self.roll(col);
        }
        key
    }

    fn quoted(&mut self, q: u8) {
        self.i += 1;
        while let Some(c) = self.at(self.i) {
            match c {
                b'\n' => self.newline(),
                b'\\' if q == b'"' => {
                    self.i += 1;
                    if self.at(self.i) == Some(b'\n') {
                        self.newline();
                    } else if self.at(self.i).is_some() {
                        self.i += 1;
                    }
                }
                c if c == q => {
                    self.i += 1;
                    if q == b'\'' && self.at(self.i) == Some(b'\'') {
                        self.i += 1;
                        continue;
                    }
                    return;
                }
                _ => self.i += 1,
            }
        }
    }

    /// The rest of a plain scalar's line: up to `: `, ` #`, the line's
    /// end, or in a flow collection a flow indicator; brackets inside it
    /// are text.
    fn plain_chunk(&mut self) {
        while let Some(c) = self.at(self.i) {
            match c {
                b'\n' => return,
                b':' if self.indicator_ends(self.i + 1) => return,
                b'#' if self.i > 0 && blank(self.at(self.i - 1)) => return,
                _ if self.flow > 0 && flow_indicator(Some(c)) => return,
                _ => self.i += 1,
            }
        }
    }

    /// A plain scalar in a block collection goes on over the next lines
    /// indented past that collection (brackets there are text too), up
    /// to a comment or a document marker.
    fn plain_continuation(&mut self) {
        let parent = self.indent();
        while self.at(self.i) == Some(b'\n') {
            let (lead, empty) = self.line_at(self.i + 1);
            if empty {
                self.newline();
                self.skip_line();
                continue;
            }
            let next = self.i + 1;
            if lead as isize <= parent
                || self.at(next + lead) == Some(b'#')
                || (lead == 0
                    && (self.b[next..].starts_with(b"---") || self.b[next..].starts_with(b"..."))
                    && blank(self.at(next + 3)))
            {
                return;
            }
            self.newline();
            self.i += lead;
            self.plain_chunk();
        }
    }

    /// A literal or folded block scalar: its header, then its content,
    /// the lines (and blank lines) indented at least as far as its first
    /// line, which is indented past the collection that holds it.
    fn block_scalar(&mut self) {
        let parent = self.indent();
        self.i += 1;
        let mut explicit = None;
        while let Some(c) = self.at(self.i) {
            match c {
                b'1'..=b'9' => explicit = Some((c - b'0') as isize),
                b'+' | b'-' => {}
                _ => break,
            }
            self.i += 1;
        }
        self.skip_line();
        let mut indent = match explicit {
            Some(d) => parent.max(0) + d,
            None => (parent + 1).max(1),
        };
        let mut detected = explicit.is_some();
        while self.at(self.i) == Some(b'\n') {
            let (lead, empty) = self.line_at(self.i + 1);
            if !empty {
                if !detected {
                    indent = indent.max(lead as isize);
                    detected = true;
                }
                if (lead as isize) < indent {
                    return;
                }
            }
            self.newline();
            self.skip_line();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str, max: usize) -> bool {
        too_deep(text, max).is_none()
    }

    #[test]
    fn counts_flow_collections_and_places_the_first_too_deep() {
        assert!(depth_ok("x: [[[]]]\n", 3));
        assert_eq!(too_deep("x: [[[[]]]]\n", 3), Some((1, 7)));
        assert_eq!(too_deep("a: 1\nb: {c: [{d: [1]}]}\n", 3), Some((2, 13)));
        assert_eq!(too_deep("é: [[\n  [é, [1]]]]\n", 3), Some((2, 7)));
        assert_eq!(too_deep("%YAML 1.2\n--- [[x]]\n...\n", 1), Some((2, 6)));
        // Closed collections do not add up.
        assert!(depth_ok("x: [[1], [2], [[3]]]\ny: {a: [1]}\n", 3));
    }

    #[test]
    fn brackets_inside_values_are_text() {
        let text = r#"services:
  web:
    image: "nginx:[[[["
    command: echo [[[[ {{{{
    entrypoint: '[[[[ it''s [['
    healthcheck:
      test: ["CMD-SHELL", "[ -f /x ] || [[ exit"] # [[[[
    labels:
      - a=[[[[
      - |
        [[[[ {{{{
        [[[[

      - >-
        {{{{
    x: [a, 'b[[', "c{{", d]
    url: http://x/[[[[
# [[[[[
"#;
        assert!(depth_ok(text, 1), "{:?}", too_deep(text, 1));
        assert_eq!(too_deep(&format!("{text}y: [[\n"), 1), Some((19, 5)));
    }

    #[test]
    fn a_plain_scalar_goes_on_over_more_indented_lines() {
        assert!(depth_ok("a: b\n  [[c\n\n   {{d\n", 1));
        assert!(depth_ok("- a\n  - [[b\n", 1));
        assert_eq!(too_deep("a: b\n[[c]]: d\n", 1), Some((2, 2)));
        assert_eq!(too_deep("a: b\n  # c\n  [[c\n", 1), Some((3, 4)));
        assert_eq!(too_deep("b\n[[c\n", 1), None);
    }

    #[test]
    fn a_block_scalar_ends_where_its_owner_has_a_sibling() {
        let text = "- a: |\n    [[[\n  b: [[x]]\n";
        assert_eq!(too_deep(text, 1), Some((3, 7)));
        let text = "k:\n  |\n  [[[\nn: [[x]]\n";
        assert_eq!(too_deep(text, 1), Some((4, 5)));
        // Its first line sets its indentation; a line indented less ends it.
        let text = "k: |\n    [[[\n  [[x]]\n";
        assert_eq!(too_deep(text, 1), Some((3, 4)));
        let text = "k: |2\n   [[[\n  [[[\nn: 1\n";
        assert!(depth_ok(text, 1));
    }

    #[test]
    fn fifty_thousand_levels_are_found_at_once() {
        let n = 50_000;
        let text = format!("x: {}{}\n", "[".repeat(n), "]".repeat(n));
        assert_eq!(too_deep(&text, MAX_DEPTH), Some((1, 4 + MAX_DEPTH)));
        let text = format!("x: {}1{}\n", "{a: ".repeat(n), "}".repeat(n));
        assert_eq!(too_deep(&text, MAX_DEPTH), Some((1, 4 + 4 * MAX_DEPTH)));
    }
}
