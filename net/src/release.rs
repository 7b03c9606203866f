//! Which tags are releases, and which release a sweep should move to.
//!
//! A tag is a release when it parses as semver 2.0 (`1.2.3`,
//! `1.2.3-rc.1`, `1.2.3+build`), optionally with a leading `v` (`v1.2.3`).
//! Anything else — `latest`, `1.2`, `stable`, a date — is not a release and
//! never moves an app. Prereleases count only with `allow_prerelease`; a
//! `constraint` (a semver requirement such as `^1.4` or `>=2, <3`) limits
//! the candidates. Build metadata does not order releases; two tags equal
//! but for build metadata are the same release and the lexically smallest
//! tag stands for it, so the choice is deterministic.

use semver::{Version, VersionReq};

/// Parses a release tag; `None` when the tag is not a release.
pub fn parse(tag: &str) -> Option<Version> {
    let s = tag.strip_prefix('v').unwrap_or(tag);
    // semver accepts only the full form; reject a second leading `v`.
    if s.starts_with('v') {
        return None;
    }
    Version::parse(s).ok()
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub allow_prerelease: bool,
    pub constraint: Option<VersionReq>,
}

impl Policy {
    pub fn admits(&self, v: &Version) -> bool {
        if !v.pre.is_empty() && !self.allow_prerelease {
            return false;
        }
        match &self.constraint {
            // VersionReq never matches a prerelease unless the requirement
            // names one; with allow_prerelease, match on the release part.
            Some(req) if !v.pre.is_empty() => {
                let mut base = v.clone();
                base.pre = semver::Prerelease::EMPTY;
                req.matches(v) || req.matches(&base)
            }
            Some(req) => req.matches(v),
            None => true,
        }
    }
}

/// The newest admitted release among `tags`: (tag, version).
pub fn newest<'a>(
    tags: impl IntoIterator<Item = &'a str>,
    policy: &Policy,
) -> Option<(String, Version)> {
    let mut best: Option<(String, Version)> = None;
    for tag in tags {
        let Some(v) = parse(tag) else { continue };
        if !policy.admits(&v) {
            continue;
        }
        let better = match &best {
            None => true,
            Some((bt, bv)) => match v.cmp_precedence(bv) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Equal => tag < bt.as_str(),
                std::cmp::Ordering::Less => false,
            },
        };
        if better {
            best = Some((tag.to_string(), v));
        }
    }
    best
}

/// What a sweep should do for one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The image is pinned by digest: never upgraded.
    Pinned,
    /// No tag of the repository is an admitted release.
    NoRelease,
    /// The newest admitted release is not newer than the canonical one.
    UpToDate { canonical: Version, newest: Version },
    /// Move to `tag`.
    Upgrade {
        from: Option<Version>,
        tag: String,
        version: Version,
    },
}

/// Decides for one app. `canonical` is the last promoted release (or the
/// release of the tag the app runs when nothing was promoted yet; `None`
/// when that is not a release either).
pub fn decide<'a>(
    tags: impl IntoIterator<Item = &'a str>,
    policy: &Policy,
    canonical: Option<&Version>,
    pinned_by_digest: bool,
) -> Decision {
    if pinned_by_digest {
        return Decision::Pinned;
    }
    let Some((tag, version)) = newest(tags, policy) else {
        return Decision::NoRelease;
    };
    match canonical {
        Some(c) if version.cmp_precedence(c) != std::cmp::Ordering::Greater => Decision::UpToDate {
            canonical: c.clone(),
            newest: version,
        },
        _ => Decision::Upgrade {
            from: canonical.cloned(),
            tag,
            version,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn only_semver_tags_are_releases() {
        assert_eq!(parse("1.2.3"), Some(v("1.2.3")));
        assert_eq!(parse("v1.2.3"), Some(v("1.2.3")));
        assert_eq!(parse("1.2.3-rc.1"), Some(v("1.2.3-rc.1")));
        for t in [
            "latest", "1.2", "v1", "stable", "20240101", "vv1.2.3", "1.2.3.4", "",
        ] {
            assert_eq!(parse(t), None, "{t}");
        }
    }

    #[test]
    fn newest_respects_prerelease_and_constraint() {
        let tags = ["1.0.0", "1.1.0", "2.0.0-rc.1", "latest", "1.10.0", "0.9.0"];
        let p = Policy::default();
        assert_eq!(newest(tags, &p).unwrap().0, "1.10.0");
        let p = Policy {
            allow_prerelease: true,
            constraint: None,
        };
        assert_eq!(newest(tags, &p).unwrap().0, "2.0.0-rc.1");
        let p = Policy {
            allow_prerelease: false,
            constraint: Some(VersionReq::parse("~1.1").unwrap()),
        };
        assert_eq!(newest(tags, &p).unwrap().0, "1.1.0");
        let p = Policy {
            allow_prerelease: true,
            constraint: Some(VersionReq::parse("^2").unwrap()),
        };
        assert_eq!(newest(tags, &p).unwrap().0, "2.0.0-rc.1");
    }

    #[test]
    fn build_metadata_ties_pick_the_smallest_tag() {
        let tags = ["1.0.0+b2", "1.0.0+b1", "v1.0.0"];
        assert_eq!(newest(tags, &Policy::default()).unwrap().0, "1.0.0+b1");
    }

    #[test]
    fn decisions() {
        let tags = ["1.0.0", "1.1.0", "latest"];
        let p = Policy::default();
        assert_eq!(decide(tags, &p, Some(&v("1.0.0")), true), Decision::Pinned);
        assert_eq!(
            decide(["latest", "edge"], &p, Some(&v("1.0.0")), false),
            Decision::NoRelease
        );
        assert_eq!(
            decide(tags, &p, Some(&v("1.1.0")), false),
            Decision::UpToDate {
                canonical: v("1.1.0"),
                newest: v("1.1.0")
            }
        );
        // A canonical newer than anything listed (tag deleted) stays.
        assert!(matches!(
            decide(tags, &p, Some(&v("3.0.0")), false),
            Decision::UpToDate { .. }
        ));
        assert_eq!(
            decide(tags, &p, Some(&v("1.0.0")), false),
            Decision::Upgrade {
                from: Some(v("1.0.0")),
                tag: "1.1.0".into(),
                version: v("1.1.0")
            }
        );
        assert!(matches!(
            decide(tags, &p, None, false),
            Decision::Upgrade { from: None, .. }
        ));
    }
}
