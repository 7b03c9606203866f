//! JSON arrays for Podman's exec-form options (`--health-cmd`,
//! `--entrypoint`), made safe to travel through Quadlet: every character
//! outside printable ASCII is written as a `\uXXXX` escape, so Quadlet's
//! re-quoting (which mangles U+0080) never sees it.

use std::fmt::Write as _;

/// `["a","b"]`, ASCII only.
pub fn ascii_array(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                ' '..='~' => out.push(c),
                c => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        let _ = write!(out, "\\u{unit:04x}");
                    }
                }
            }
        }
        out.push('"');
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_arrays_decode_to_the_original_strings() {
        let items: Vec<String> = ["", ";", "a\"b\\c", "é\u{80}中😀", "\n\t\r\u{1}", "$HOME %n"]
            .map(String::from)
            .to_vec();
        let json = ascii_array(&items);
        assert!(json.is_ascii());
        let back: Vec<String> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, items);
    }
}
