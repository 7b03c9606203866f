//! Typed edits of generated Quadlet units, for the agent's sweeps.
//!
//! A unit is read the way Quadlet reads it (Podman's
//! `pkg/systemd/parser/unitfile.go`): each line is trimmed; empty lines and
//! lines starting with `#` or `;` are comments; a line ending in `\`
//! continues on the next one (the backslash is dropped, and comment lines
//! inside a continuation are skipped); `[Name]` opens a section (sections
//! of the same name are one section); `Key = value` is an entry. Only the
//! value being replaced changes: every other byte — comments, spacing,
//! line endings, other sections — stays as it was.

use std::ops::Range;

/// One logical line: the trimmed physical lines it spans, joined with
/// their continuation backslashes dropped, and where each of its bytes
/// came from in the file.
struct Logical {
    /// 1-based number of its first physical line.
    line: usize,
    text: String,
    origin: Vec<usize>,
}

impl Logical {
    fn push(&mut self, file_offset: usize, piece: &str) {
        self.text.push_str(piece);
        self.origin.extend(file_offset..file_offset + piece.len());
    }
}

/// The logical lines of `text` that are not comments.
fn logical_lines(text: &str) -> Vec<Logical> {
    let physical: Vec<(usize, &str)> = text
        .split_inclusive('\n')
        .scan(0, |offset, line| {
            let start = *offset;
            *offset += line.len();
            Some((start, line.strip_suffix('\n').unwrap_or(line)))
        })
        .collect();
    let mut out = Vec::new();
    let mut pending: Option<Logical> = None;
    for (i, &(start, raw)) in physical.iter().enumerate() {
        let trimmed = raw.trim();
        let at = start + (raw.len() - raw.trim_start().len());
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            // A comment, or one inside a continuation: skipped either way.
            continue;
        }
        let mut logical = pending.take().unwrap_or(Logical {
            line: i + 1,
            text: String::new(),
            origin: Vec::new(),
        });
        match trimmed.strip_suffix('\\') {
            Some(head) if i + 1 < physical.len() => {
                logical.push(at, head);
                pending = Some(logical);
            }
            Some(head) => {
                logical.push(at, head);
                out.push(logical);
            }
            None => {
                logical.push(at, trimmed);
                out.push(logical);
            }
        }
    }
    // A file ending inside a continuation: Quadlet drops the rest too.
    out
}

/// The section name of a `[Name]` line (trailing blanks allowed).
fn section_name(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let end = rest.find(']')?;
    rest[end + 1..]
        .chars()
        .all(|c| c == ' ' || c == '\t')
        .then(|| &rest[..end])
}

/// Replaces the value of the one `Image=` entry of the `[Container]`
/// section of the Quadlet unit `unit_text` with `image`, leaving every
/// other byte unchanged. A value spread over continuation lines is
/// replaced whole, with whatever comment lines sit inside it.
///
/// Errors when the unit has no `Image=` in `[Container]`, or more than one,
/// when a line is neither a section, an entry nor a comment (Quadlet
/// would refuse the unit), and when `image` is empty or holds a character
/// that would change how the line is read: whitespace, a control
/// character, `\` (continuation, escapes) or `%` (systemd specifiers).
pub fn set_container_image(unit_text: &str, image: &str) -> Result<String, String> {
    if image.is_empty() {
        return Err("the new image is empty".to_string());
    }
    if let Some(c) = image
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '\\' | '%'))
    {
        return Err(format!(
            "the new image {image:?} holds {c:?}, which cannot stand in an Image= value"
        ));
    }
    let mut section: Option<String> = None;
    let mut found: Vec<(usize, Range<usize>)> = Vec::new();
    for l in logical_lines(unit_text) {
        if let Some(name) = section_name(&l.text) {
            section = Some(name.to_string());
            continue;
        }
        let Some(eq) = l.text.find('=').filter(|&eq| eq > 0) else {
            return Err(format!(
                "line {}: {:?} is not a section, an entry or a comment",
                l.line, l.text
            ));
        };
        let Some(section) = &section else {
            return Err(format!(
                "line {}: an entry before the first section",
                l.line
            ));
        };
        if section != "Container" || l.text[..eq].trim_end() != "Image" {
            continue;
        }
        let value = &l.text[eq + 1..];
        let start = eq + 1 + (value.len() - value.trim_start().len());
        let range = if start < l.text.len() {
            l.origin[start]..l.origin[l.text.len() - 1] + 1
        } else {
            // `Image=` with no value: the new one goes right after `=`.
            let at = l.origin[eq] + 1;
            at..at
        };
        found.push((l.line, range));
    }
    match found.as_slice() {
        [(_, range)] => {
            let mut out = String::with_capacity(unit_text.len() + image.len());
            out.push_str(&unit_text[..range.start]);
            out.push_str(image);
            out.push_str(&unit_text[range.end..]);
            Ok(out)
        }
        [] => Err("no Image= in the [Container] section".to_string()),
        many => Err(format!(
            "Image= appears {} times in the [Container] section (lines {}); expected once",
            many.len(),
            many.iter()
                .map(|(line, _)| line.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = "reg.example:5000/fleet/web:1.1.0";

    fn set(text: &str) -> String {
        set_container_image(text, NEW).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_the_image_value_changes() {
        let unit = "# Generated by windlass.\n[Unit]\nDescription=web\n\n[Container]\nImage=reg.example:5000/fleet/web:1.0.0\nContainerName=web\n\n[Install]\nWantedBy=default.target\n";
        assert_eq!(set(unit), unit.replace("1.0.0", "1.1.0"));
    }

    #[test]
    fn spacing_around_the_key_and_line_endings_are_kept() {
        let unit = "[Container]\r\n  Image =  old:1  \r\nExec=x\r\n";
        assert_eq!(
            set(unit),
            format!("[Container]\r\n  Image =  {NEW}  \r\nExec=x\r\n")
        );
    }

    #[test]
    fn a_continued_value_is_replaced_whole() {
        let unit = "[Container]\nImage=reg.example/\\\n# a comment inside the continuation\n  fleet/web:1.0.0\nExec=a \\\n  b\n";
        assert_eq!(
            set(unit),
            format!("[Container]\nImage={NEW}\nExec=a \\\n  b\n")
        );
    }

    #[test]
    fn a_continued_line_is_one_entry_not_a_key() {
        // `Image=` on the second line is part of Label's value.
        let unit = "[Container]\nLabel=a \\\nImage=not-a-key\nImage=old:1\n";
        assert_eq!(
            set(unit),
            format!("[Container]\nLabel=a \\\nImage=not-a-key\nImage={NEW}\n")
        );
    }

    #[test]
    fn an_image_key_in_another_section_is_untouched() {
        let unit = "[Unit]\nImage=unit-section\n[Container]\nImage=old:1\n[X-Other]\nImage=other\n";
        assert_eq!(
            set(unit),
            format!(
                "[Unit]\nImage=unit-section\n[Container]\nImage={NEW}\n[X-Other]\nImage=other\n"
            )
        );
    }

    #[test]
    fn comments_mentioning_image_are_untouched() {
        let unit =
            "[Container]\n# Image=commented:1\n; Image=also:1\n  #Image=indented:1\nImage=old:1\n";
        assert_eq!(
            set(unit),
            format!(
                "[Container]\n# Image=commented:1\n; Image=also:1\n  #Image=indented:1\nImage={NEW}\n"
            )
        );
    }

    #[test]
    fn an_empty_value_and_a_missing_final_newline_are_handled() {
        assert_eq!(
            set("[Container]\nImage="),
            format!("[Container]\nImage={NEW}")
        );
        assert_eq!(
            set("[Container]\nImage=old:1"),
            format!("[Container]\nImage={NEW}")
        );
        // A backslash on the last line ends nothing; it is not the value's.
        assert_eq!(
            set("[Container]\nImage=old:1\\"),
            format!("[Container]\nImage={NEW}\\")
        );
    }

    #[test]
    fn sections_of_the_same_name_are_one_section() {
        let e = set_container_image(
            "[Container]\nImage=a\n[Service]\nX=1\n[Container]\nImage=b\n",
            NEW,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "Image= appears 2 times in the [Container] section (lines 2, 6); expected once"
        );
    }

    #[test]
    fn no_image_is_an_error() {
        let e = set_container_image("[Container]\n# Image=x\nExec=y\n[Unit]\nImage=z\n", NEW)
            .unwrap_err();
        assert_eq!(e, "no Image= in the [Container] section");
    }

    #[test]
    fn a_line_quadlet_would_refuse_is_an_error() {
        let e = set_container_image("[Container]\nImage=a\nnonsense\n", NEW).unwrap_err();
        assert!(e.starts_with("line 3:"), "{e}");
        let e = set_container_image("Image=a\n[Container]\n", NEW).unwrap_err();
        assert!(e.contains("before the first section"), "{e}");
    }

    #[test]
    fn an_image_that_would_change_the_line_is_refused() {
        for bad in [
            "",
            "a b",
            "a\tb",
            "a\nImage=b",
            "a\u{7f}",
            "a\\",
            "a%n",
            "a\u{a0}b",
        ] {
            let r = set_container_image("[Container]\nImage=x\n", bad);
            assert!(r.is_err(), "{bad:?} was accepted: {r:?}");
        }
    }

    #[test]
    fn keys_are_case_sensitive() {
        let unit = "[Container]\nimage=lower\nImage=old:1\n";
        assert_eq!(
            set(unit),
            format!("[Container]\nimage=lower\nImage={NEW}\n")
        );
    }
}
