//! The glob patterns of `drift_ignore`: `*` (any run of characters but
//! `/`), `**` (any run, `/` included), `?` (one character but `/`); every
//! other character stands for itself.

/// Whether `pattern` matches all of `text`.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matching that goes back to the last star (one taking one
    // more character), or, when that one cannot cross a `/`, to the last
    // `**`: no recursion, near-linear on hostile patterns.
    let (mut pi, mut ti) = (0usize, 0usize);
    // (pattern index after the star, text index it has matched up to)
    let mut star: Option<(usize, usize)> = None;
    let mut double: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            if pi + 1 < p.len() && p[pi + 1] == '*' {
                pi += 2;
                double = Some((pi, ti));
                star = None;
            } else {
                pi += 1;
                star = Some((pi, ti));
            }
            continue;
        }
        if pi < p.len() && (p[pi] == t[ti] || (p[pi] == '?' && t[ti] != '/')) {
            pi += 1;
            ti += 1;
            continue;
        }
        if let Some((after, upto)) = star
            && t[upto] != '/'
        {
            star = Some((after, upto + 1));
            pi = after;
            ti = upto + 1;
            continue;
        }
        match double {
            Some((after, upto)) => {
                double = Some((after, upto + 1));
                star = None;
                pi = after;
                ti = upto + 1;
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_question_marks_and_slashes() {
        assert!(matches("*.conf", "override.conf"));
        assert!(!matches("*.conf", "web.service.d/override.conf"));
        assert!(matches("**.conf", "web.service.d/override.conf"));
        assert!(matches(
            "/etc/systemd/system/web.service.d/*",
            "/etc/systemd/system/web.service.d/x.conf"
        ));
        assert!(matches("/etc/**", "/etc/a/b/c"));
        assert!(matches("web-?.timer", "web-1.timer"));
        assert!(!matches("web-?.timer", "web-12.timer"));
        assert!(!matches("a?b", "a/b"));
        assert!(matches("", ""));
        assert!(!matches("", "x"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("web.service", "web.service"));
        assert!(!matches("web.service", "web.services"));
        // A single star gives way to an earlier double one.
        assert!(matches("**/*.conf", "a/b/c.conf"));
        assert!(!matches("**/*.conf", "a/b/c.conf/d"));
        assert!(matches(
            "/etc/**/override.conf",
            "/etc/systemd/system/web.service.d/override.conf"
        ));
    }

    #[test]
    fn a_hostile_pattern_stays_fast() {
        let text = "a".repeat(2000);
        let pattern = "*a".repeat(50) + "b";
        let start = std::time::Instant::now();
        assert!(!matches(&pattern, &text));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }
}
