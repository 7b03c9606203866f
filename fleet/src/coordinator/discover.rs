//! Fleet sweeps whose rollout file names no release (`[target.sweep] app
//! = "web"`): the coordinator finds the release once, when it first
//! drives the rollout, with windlass-net's registry client and release
//! rules (the ones windlassd's own sweeps use), and keeps it in the
//! rollout's state; every wave orders that release, and `canonical.<app>`
//! records it after the last green wave.
//!
//! Where to look and what counts come from the heartbeats of the
//! rollout's hosts (`apps.<app>`: the image the host runs for the app and
//! its release policy, as its running generation declares them): an
//! operator configured them once, in the apps' manifests, and a host
//! would refuse a release its own policy does not admit. Every host of
//! the rollout must report the app, with the same repository (tags
//! aside) and the same policy, tracking semver; otherwise the rollout is
//! refused, naming what differs (one release cannot serve two
//! repositories).
//!
//! The release is the newest admitted one. It is refused when it is not
//! newer than the fleet's canonical release (`canonical.<app>`, written by
//! the last completed sweep), or when every host of the rollout already
//! has it or a newer one (its promoted release, else the release tag of
//! the image it runs, as windlassd counts). A registry that cannot be
//! listed refuses the rollout too, with its error: a rollout that would
//! wait for a registry nobody watches helps no one; start it again.
//!
//! The listing runs in its own task: the coordinator goes on confirming
//! other rollouts' hosts meanwhile.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use windlass_net::registry::{ImageName, RegistryClient, RegistryOptions};
use windlass_net::release::{self, Policy};
use windlass_net::semver::{Version, VersionReq};

use crate::model::{Heartbeat, HostId};

/// Where registries are spoken to over plain HTTP, and how often asked.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Registry hosts (`host[:port]` as in image names) spoken to over
    /// plain HTTP: a registry on loopback in tests. Empty in production.
    pub insecure_hosts: Vec<String>,
    /// Tries per registry request (0: the client's default, 3).
    pub attempts: u32,
}

/// The registry client of a coordinator. The HTTP client (rustls with
/// the system's roots, about 2 MB) is built on the first discovery, not
/// by every coordinator at start.
#[derive(Clone)]
pub(crate) struct Registry {
    http: Arc<OnceLock<windlass_net::reqwest::Client>>,
    cfg: Arc<RegistryConfig>,
}

impl Registry {
    pub(crate) fn new(cfg: RegistryConfig) -> Registry {
        Registry {
            http: Arc::new(OnceLock::new()),
            cfg: Arc::new(cfg),
        }
    }

    fn http(&self) -> Result<windlass_net::reqwest::Client, String> {
        if let Some(c) = self.http.get() {
            return Ok(c.clone());
        }
        let opts = windlass_net::ClientOptions {
            timeout: std::time::Duration::from_secs(60),
            read_timeout: std::time::Duration::from_secs(30),
            ..Default::default()
        };
        let c = windlass_net::client(&opts).map_err(|e| format!("the HTTP client: {e}"))?;
        Ok(self.http.get_or_init(|| c).clone())
    }

    async fn tags(&self, image: &ImageName) -> Result<Vec<String>, String> {
        // Credentials where Podman keeps them (a problem file is skipped and
        // named in the error of a registry that then finds none).
        let mut o = RegistryOptions {
            insecure_hosts: self.cfg.insecure_hosts.clone(),
            credentials: std::sync::Arc::new(windlass_net::auth::Credentials::from_env()),
            ..Default::default()
        };
        if self.cfg.attempts > 0 {
            o.attempts = self.cfg.attempts;
        }
        RegistryClient::new(self.http()?, o)
            .list_tags(image)
            .await
            .map_err(|e| format!("listing the tags of {}: {e}", repo(image)))
    }
}

/// What the hosts of a rollout say about the app.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub app: String,
    /// The repository (no tag, no digest).
    pub image: ImageName,
    pub policy: Policy,
    /// Each host's release now: its promoted release, else the release
    /// tag of the image it runs (`None`: neither is a release).
    pub current: BTreeMap<HostId, Option<Version>>,
}

fn repo(i: &ImageName) -> String {
    format!("{}/{}", i.host, i.repository)
}

fn names(hosts: &[&str]) -> String {
    const MAX: usize = 5;
    let mut s = hosts
        .iter()
        .take(MAX)
        .map(|h| format!("{h:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if hosts.len() > MAX {
        s += &format!(" and {} more", hosts.len() - MAX);
    }
    s
}

/// Reads the app's repository and policy from the heartbeats of `hosts`;
/// a refusal (why) when they are missing or disagree.
pub(crate) fn plan(
    app: &str,
    hosts: &[HostId],
    heartbeats: &BTreeMap<HostId, (Heartbeat, u64)>,
) -> Result<Plan, String> {
    let mut missing = Vec::new();
    let mut untracked = Vec::new();
    // (host, repository, allow_prerelease, constraint) of the first host.
    let mut first: Option<(&str, ImageName, bool, Option<String>)> = None;
    let mut current = BTreeMap::new();
    for host in hosts {
        let Some(a) = heartbeats
            .get(host)
            .and_then(|(hb, _)| hb.apps.get(app).map(|a| (hb, a)))
        else {
            missing.push(host.as_str());
            continue;
        };
        let (hb, a) = a;
        if a.track != "semver" {
            untracked.push(host.as_str());
            continue;
        }
        let mut image = ImageName::parse(&a.image)
            .map_err(|e| format!("host {host:?} runs app {app:?} from {e}"))?;
        if image.digest.is_some() {
            return Err(format!(
                "host {host:?} runs app {app:?} pinned by digest ({}): it has no releases",
                a.image
            ));
        }
        let tag = image.tag.take();
        let now = hb
            .releases
            .get(app)
            .and_then(|t| release::parse(t))
            .or_else(|| tag.as_deref().and_then(release::parse));
        current.insert(host.clone(), now);
        match &first {
            None => first = Some((host, image, a.allow_prerelease, a.constraint.clone())),
            Some((h0, i0, p0, c0)) => {
                if (&i0.host, &i0.repository) != (&image.host, &image.repository) {
                    return Err(format!(
                        "the hosts run app {app:?} from different repositories: {h0:?} from {}, \
                         {host:?} from {}; one release cannot serve both (give each its own rollout)",
                        repo(i0),
                        repo(&image)
                    ));
                }
                if (*p0, c0) != (a.allow_prerelease, &a.constraint) {
                    return Err(format!(
                        "the hosts admit different releases of app {app:?}: {h0:?} has \
                         allow_prerelease = {p0}, constraint {c0:?}; {host:?} has \
                         allow_prerelease = {}, constraint {:?}",
                        a.allow_prerelease, a.constraint
                    ));
                }
            }
        }
    }
    if !missing.is_empty() {
        let (who, verb) = if missing.len() == 1 {
            ("host", "does")
        } else {
            ("hosts", "do")
        };
        return Err(format!(
            "{who} {} of the rollout {verb} not report app {app:?} (not in the running \
             generation, or fleetd or windlassd older than this coordinator); name the release \
             in the rollout file, or leave such hosts out",
            names(&missing)
        ));
    }
    if !untracked.is_empty() {
        return Err(format!(
            "app {app:?} does not follow semver releases (release.track) on {}: a sweep moves \
             only apps that do",
            names(&untracked)
        ));
    }
    let Some((_, image, allow_prerelease, constraint)) = first else {
        return Err("the rollout has no hosts".into());
    };
    let constraint = match constraint.as_deref().map(VersionReq::parse) {
        Some(Err(e)) => return Err(format!("app {app:?}: release.constraint: {e}")),
        Some(Ok(c)) => Some(c),
        None => None,
    };
    Ok(Plan {
        app: app.to_string(),
        image,
        policy: Policy {
            allow_prerelease,
            constraint,
        },
        current,
    })
}

/// The release to move to among `tags`, or why there is none.
/// `fleet_canonical`: `canonical.<app>`'s release, if recorded.
pub(crate) fn choose(
    plan: &Plan,
    tags: &[String],
    fleet_canonical: Option<&str>,
) -> Result<String, String> {
    let r = repo(&plan.image);
    let Some((tag, newest)) = release::newest(tags.iter().map(String::as_str), &plan.policy) else {
        let mut what = "a semver release tag".to_string();
        if !plan.policy.allow_prerelease {
            what += " (prereleases excluded)";
        }
        if let Some(c) = &plan.policy.constraint {
            what += &format!(" meeting {c}");
        }
        return Err(format!(
            "no release of {r} for app {:?}: none of its {} tags is {what}",
            plan.app,
            tags.len()
        ));
    };
    if let Some(c) = fleet_canonical.and_then(|c| release::parse(c).map(|v| (c, v)))
        && newest.cmp_precedence(&c.1) != std::cmp::Ordering::Greater
    {
        return Err(format!(
            "no release of {r} newer than {}, the fleet's canonical release of app {:?} \
             (the newest is {tag})",
            c.0, plan.app
        ));
    }
    let behind = plan.current.values().any(|v| {
        v.as_ref()
            .is_none_or(|v| newest.cmp_precedence(v) == std::cmp::Ordering::Greater)
    });
    if !behind {
        return Err(format!(
            "no release of {r} newer than what the hosts have: every host of the rollout has \
             app {:?} at {tag} or newer",
            plan.app
        ));
    }
    Ok(tag)
}

/// Lists the registry and chooses (the task the coordinator spawns).
pub(crate) async fn discover(
    registry: Registry,
    plan: Plan,
    fleet_canonical: Option<String>,
) -> Result<String, String> {
    let tags = registry.tags(&plan.image).await?;
    choose(&plan, &tags, fleet_canonical.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AppReport, HostActivity};

    fn hb(host: &str, image: &str, release: Option<&str>) -> (Heartbeat, u64) {
        let hb = Heartbeat {
            host: host.into(),
            n: 1,
            sent_at: 0,
            fleetd: String::new(),
            agent: String::new(),
            platform: "native".into(),
            labels: BTreeMap::new(),
            selected: None,
            running: None,
            state: HostActivity::Idle,
            operation: None,
            last: None,
            releases: release
                .map(|r| BTreeMap::from([("web".to_string(), r.to_string())]))
                .unwrap_or_default(),
            apps: BTreeMap::from([(
                "web".to_string(),
                AppReport {
                    image: image.into(),
                    track: "semver".into(),
                    allow_prerelease: false,
                    constraint: None,
                },
            )]),
            drift: Default::default(),
            orders: Default::default(),
            outbox: 0,
        };
        (hb, 0)
    }

    fn fleet(v: &[(&str, &str, Option<&str>)]) -> BTreeMap<HostId, (Heartbeat, u64)> {
        v.iter()
            .map(|(h, i, r)| (h.to_string(), hb(h, i, *r)))
            .collect()
    }

    fn hosts(v: &[&str]) -> Vec<HostId> {
        v.iter().map(|h| h.to_string()).collect()
    }

    fn tags(v: &[&str]) -> Vec<String> {
        v.iter().map(|t| t.to_string()).collect()
    }

    const IMG: &str = "reg.example:5000/fleet/web";

    #[test]
    fn the_newest_admitted_release_newer_than_some_host() {
        let f = fleet(&[
            ("a", &format!("{IMG}:1.0.0"), None),
            ("b", &format!("{IMG}:1.0.0"), Some("1.2.0")),
        ]);
        let p = plan("web", &hosts(&["a", "b"]), &f).unwrap();
        assert_eq!(repo(&p.image), IMG);
        assert_eq!(p.image.tag, None);
        assert_eq!(p.current["a"], Some(Version::new(1, 0, 0)));
        assert_eq!(p.current["b"], Some(Version::new(1, 2, 0)), "promoted wins");
        let t = tags(&["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1", "latest"]);
        assert_eq!(choose(&p, &t, None).unwrap(), "1.2.0");
        // Every host has it already: refused.
        let f = fleet(&[("b", &format!("{IMG}:1.0.0"), Some("1.2.0"))]);
        let p = plan("web", &hosts(&["b"]), &f).unwrap();
        let e = choose(&p, &t, None).unwrap_err();
        assert!(
            e.contains("every host of the rollout has app \"web\" at 1.2.0"),
            "{e}"
        );
        // Not newer than the fleet's canonical release: refused.
        let f = fleet(&[("a", &format!("{IMG}:1.0.0"), None)]);
        let p = plan("web", &hosts(&["a"]), &f).unwrap();
        let e = choose(&p, &t, Some("1.2.0")).unwrap_err();
        assert!(
            e.contains(
                "no release of reg.example:5000/fleet/web newer than 1.2.0, the fleet's canonical"
            ),
            "{e}"
        );
        assert_eq!(choose(&p, &t, Some("1.1.0")).unwrap(), "1.2.0");
        // Nothing that is a release.
        let e = choose(&p, &tags(&["latest", "2.0.0-rc.1"]), None).unwrap_err();
        assert!(e.contains("(prereleases excluded)"), "{e}");
    }

    #[test]
    fn the_hosts_policy_is_the_rollouts() {
        let mut f = fleet(&[("a", &format!("{IMG}:1.0.0"), None)]);
        let a = f.get_mut("a").unwrap().0.apps.get_mut("web").unwrap();
        a.allow_prerelease = true;
        a.constraint = Some("^1".into());
        let p = plan("web", &hosts(&["a"]), &f).unwrap();
        let t = tags(&["1.0.0", "1.5.0-rc.1", "2.0.0"]);
        assert_eq!(choose(&p, &t, None).unwrap(), "1.5.0-rc.1");
    }

    #[test]
    fn refusals_name_what_differs() {
        let f = fleet(&[
            ("a", &format!("{IMG}:1.0.0"), None),
            ("b", "reg.example:5000/other/web:1.0.0", None),
        ]);
        let e = plan("web", &hosts(&["a", "b"]), &f).unwrap_err();
        assert!(
            e.contains("\"a\" from reg.example:5000/fleet/web")
                && e.contains("\"b\" from reg.example:5000/other/web"),
            "{e}"
        );
        let mut f = fleet(&[
            ("a", &format!("{IMG}:1.0.0"), None),
            ("b", &format!("{IMG}:1.1.0"), None),
        ]);
        f.get_mut("b")
            .unwrap()
            .0
            .apps
            .get_mut("web")
            .unwrap()
            .allow_prerelease = true;
        let e = plan("web", &hosts(&["a", "b"]), &f).unwrap_err();
        assert!(e.contains("admit different releases"), "{e}");
        let e = plan("web", &hosts(&["a", "zz"]), &f).unwrap_err();
        assert!(
            e.starts_with("host \"zz\" of the rollout does not report"),
            "{e}"
        );
        f.get_mut("a").unwrap().0.apps.get_mut("web").unwrap().track = "none".into();
        let e = plan("web", &hosts(&["a"]), &f).unwrap_err();
        assert!(e.contains("does not follow semver releases"), "{e}");
        let f = fleet(&[("a", &format!("{IMG}@sha256:{}", "0".repeat(64)), None)]);
        let e = plan("web", &hosts(&["a"]), &f).unwrap_err();
        assert!(e.contains("pinned by digest"), "{e}");
    }
}
