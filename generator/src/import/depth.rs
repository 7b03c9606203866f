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
        owner: None,
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
    /// Column of the last block key or `-` on this line: a block scalar
    /// started on the line is the value of that node.
    owner: Option<usize>,
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

    fn newline(&mut self) {
        self.i += 1;
        self.line += 1;
        self.line_start = self.i;
        self.owner = None;
    }

    fn indent_of_line(&self) -> usize {
        self.b[self.line_start..]
            .iter()
            .take_while(|&&c| c == b' ')
            .count()
    }

    /// Returns the offset of the first flow collection deeper than `max`.
    fn run(&mut self, max: usize) -> Option<usize> {
        while let Some(c) = self.at(self.i) {
            match c {
                b'\n' => self.newline(),
                b' ' | b'\t' | b'\r' => self.i += 1,
                b'#' => self.skip_line(),
                b'[' | b'{' => {
                    self.flow += 1;
                    if self.flow > max {
                        return Some(self.i);
                    }
                    self.i += 1;
                }
                b']' | b'}' => {
                    self.flow = self.flow.saturating_sub(1);
                    self.i += 1;
                }
                b',' if self.flow > 0 => self.i += 1,
                b'-' | b'?' | b':' if self.indicator_ends(self.i + 1) => {
                    if c == b'-' && self.flow == 0 {
                        self.owner = Some(self.col());
                    }
                    self.i += 1;
                }
                b'-' | b'.' if self.document_marker(c) => self.i += 3,
                b'%' if self.i == self.line_start => self.skip_line(),
                b'&' | b'*' | b'!' => self.skip_word(),
                b'|' | b'>' if self.flow == 0 => self.block_scalar(),
                b'"' | b'\'' => {
                    let start = self.col();
                    self.quoted(c);
                    self.mark_key(start);
                }
                _ => {
                    let start = self.col();
                    self.plain();
                    self.mark_key(start);
                }
            }
        }
        None
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

    /// A block key's scalar, started at column `start`, owns a block
    /// scalar later on its line.
    fn mark_key(&mut self, start: usize) {
        if self.flow > 0 {
            return;
        }
        let mut j = self.i;
        while matches!(self.at(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        if self.at(j) == Some(b':') && blank(self.at(j + 1)) {
            self.owner = Some(start);
        }
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

    /// A plain scalar, up to `: `, ` #`, the line's end, or in a flow
    /// collection a flow indicator; brackets inside it are text.
    fn plain(&mut self) {
        self.i += 1;
        while let Some(c) = self.at(self.i) {
            match c {
                b'\n' => return,
                b':' if self.indicator_ends(self.i + 1) => return,
                b'#' if blank(self.at(self.i - 1)) => return,
                _ if self.flow > 0 && flow_indicator(Some(c)) => return,
                _ => self.i += 1,
            }
        }
    }

    /// A literal or folded block scalar: its header, then every line that
    /// is blank or indented past the node that owns it.
    fn block_scalar(&mut self) {
        let parent = self
            .owner
            .map(|c| c as isize)
            .unwrap_or(self.indent_of_line() as isize - 1);
        self.skip_line();
        while self.at(self.i) == Some(b'\n') {
            self.newline();
            let indent = self.indent_of_line();
            let rest = &self.b[self.line_start + indent..];
            let is_blank = rest
                .iter()
                .take_while(|&&c| c != b'\n')
                .all(|&c| c == b' ' || c == b'\t' || c == b'\r');
            if is_blank || indent as isize > parent {
                self.skip_line();
            } else {
                return;
            }
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
    fn a_block_scalar_ends_where_its_owner_has_a_sibling() {
        let text = "- a: |\n    [[[\n  b: [[x]]\n";
        assert_eq!(too_deep(text, 1), Some((3, 7)));
        let text = "k:\n  |\n  [[[\nn: [[x]]\n";
        assert_eq!(too_deep(text, 1), Some((4, 5)));
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
