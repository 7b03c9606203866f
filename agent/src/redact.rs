//! Credentials never leave the agent: every text it records, announces
//! on the bus or logs passes through [`text`], which rewrites each URL in
//! it without its user information, query and fragment
//! (`https://user:pw@host/p?X-Amz-Signature=…` → `https://***@host/p?***`).
//! A presigned URL or a token in a query string is a credential, and the
//! bus and the journal are readable by more users than the agent's group.

/// One URL without user information, query or fragment.
pub fn url(u: &str) -> String {
    let Some((scheme, rest)) = u.split_once("://") else {
        return u.to_string();
    };
    let end_of_authority = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end_of_authority);
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    let (path, cut) = match tail.find(['?', '#']) {
        Some(i) => (&tail[..i], tail[i..].starts_with('?')),
        None => (tail, false),
    };
    format!("{scheme}://{host}{path}{}", if cut { "?***" } else { "" })
}

fn scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// Where a URL that starts at byte `start` ends: at white space or a
/// character a URL never holds unencoded. Not at `'`, `)` or `]`, which a
/// password or a query may hold (RFC 3986 sub-delims): a URL in
/// parentheses loses its closing one to the mask, and no credential
/// escapes it.
fn url_end(s: &str, start: usize) -> usize {
    s[start..]
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || matches!(c, '"' | '<' | '>' | '`' | '\\'))
        .map_or(s.len(), |(i, _)| start + i)
}

/// `s` with every URL in it passed through [`url`].
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .char_indices()
            .rev()
            .take_while(|(_, c)| scheme_char(*c))
            .last()
            .map_or(i, |(j, _)| j);
        if start == i {
            // "://" without a scheme: not a URL.
            out.push_str(&rest[..i + 3]);
            rest = &rest[i + 3..];
            continue;
        }
        let end = url_end(rest, i + 3);
        out.push_str(&rest[..start]);
        out.push_str(&url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials_and_nothing_else() {
        assert_eq!(
            url("https://user:pw@example.org:8443/a/b?X-Amz-Signature=abc&x=1#f"),
            "https://***@example.org:8443/a/b?***"
        );
        assert_eq!(url("https://example.org/a"), "https://example.org/a");
        assert_eq!(url("https://example.org"), "https://example.org");
        assert_eq!(url("https://h?token=1"), "https://h?***");
        assert_eq!(url("https://h/p#frag"), "https://h/p");
        assert_eq!(url("not a url"), "not a url");
    }

    #[test]
    fn every_url_in_a_text_is_redacted() {
        let t = "error sending request for url (https://u:SECRET@h/x?sig=SECRET2): \
                 tried http://h2/?k=SECRET3 then 'ftp://SECRET4@h3/f'";
        let r = text(t);
        assert!(!r.contains("SECRET"), "{r}");
        assert_eq!(
            r,
            "error sending request for url (https://***@h/x?*** \
             tried http://h2/?*** then 'ftp://***@h3/f'"
        );
        // Sub-delims in a password or a query do not end the URL.
        let t = "(postgres://app:pa)ss'w(rd@db:5432/x?k=v)al'ue) done";
        let r = text(t);
        assert_eq!(r, "(postgres://***@db:5432/x?*** done");
        assert_eq!(text("no urls here: a://"), "no urls here: a://");
        assert_eq!(text("://x?y"), "://x?y");
        assert_eq!(
            text("unicode ✓ https://h/ä?q=1 ✓"),
            "unicode ✓ https://h/ä?*** ✓"
        );
    }
}
