//! Stage and the generations it makes, through the real windlassd and
//! windlassctl on a real dbus-daemon: the tree is read once, beneath the
//! directory, never through a symlink, never from a FIFO, socket or
//! device, within size caps; refusals name the listed file and quote
//! nothing read; staged files have normal modes whatever the source and
//! the umask; re-staging never returns a damaged generation; concurrent
//! stages of different trees each get their own, correct generation; a
//! tree the agent cannot see by path (ProtectHome, PrivateTmp) is staged
//! through the directory descriptor windlassctl passes; a damaged
//! generation is never activated; the agent still stops on SIGTERM after
//! hostile input.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};

const AGENT: &str = "/io/windlass/Agent1";
const IFACE: &str = "io.windlass.Agent1";
const MANIFEST: &str = "windlass-generation.json";
const WEB: &str = "quadlet/web.container";

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The basic fleet generated into `out`; `port` makes trees differ.
fn tree(out: &Path, port: u16) -> PathBuf {
    generation(&basic_fleet(), out, |t| {
        t.replace("-p\", \"8080\"", &format!("-p\", \"{port}\""))
    });
    out.to_path_buf()
}

/// The manifest and every file it lists, by path.
fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(dir.join(MANIFEST)).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let mut out = BTreeMap::from([(MANIFEST.to_string(), bytes)]);
    for f in m["files"].as_array().unwrap() {
        let p = f["path"].as_str().unwrap();
        out.insert(p.to_string(), std::fs::read(dir.join(p)).unwrap());
    }
    out
}

fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join(MANIFEST);
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    edit(&mut m);
    std::fs::write(&p, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// Lists `path` in the manifest with the sha256 of `bytes`.
fn list(dir: &Path, path: &str, bytes: &[u8]) {
    let entry = serde_json::json!({"path": path, "sha256": sha256(bytes)});
    edit_manifest(dir, |m| m["files"].as_array_mut().unwrap().push(entry));
}

/// windlassctl, killed (and the test failed) if it takes over `secs`.
fn ctl_within(a: &Agent, args: &[&str], secs: u64) -> Output {
    let mut child = Command::new(windlassctl_bin())
        .args(["--bus", &a.address])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "windlassctl {args:?} did not return within {secs} s; agent log:\n{}",
                std::fs::read_to_string(&a.log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Stages `dir`; the generation number.
fn stage(a: &Agent, dir: &Path) -> String {
    let out = ctl_within(a, &["stage", dir.to_str().unwrap()], 60);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

/// Stages `dir` expecting a refusal (exit 4) that mentions every needle;
/// returns windlassctl's stderr.
fn refused(a: &Agent, dir: &Path, needles: &[&str]) -> String {
    let out = ctl_within(a, &["stage", dir.to_str().unwrap()], 10);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{}{err}", stdout(&out));
    assert!(err.contains("io.windlass.Error.InvalidArgument"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
    err
}

/// Any run of 64 hex digits (a sha256) in `s`.
fn has_a_hash(s: &str) -> bool {
    s.as_bytes()
        .split(|b| !b.is_ascii_hexdigit())
        .any(|w| w.len() >= 64)
}

fn stops_on_sigterm(a: &mut Agent) {
    let pid = a.child.id() as libc::pid_t;
    // SAFETY: a signal to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let start = Instant::now();
    while a.child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "windlassd did not stop within 5 s of SIGTERM; log:\n{}",
            std::fs::read_to_string(&a.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn generation_dir(a: &Agent, g: &str) -> PathBuf {
    a.state.join("generations").join(g)
}

fn generations(a: &Agent) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(a.state.join("generations"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

struct Host {
    tmp: tempfile::TempDir,
    _bus: Bus,
    a: Agent,
}

fn host() -> Host {
    let bus = bus();
    let tmp = tempfile::tempdir().unwrap();
    let a = agent(
        &bus,
        &tmp.path().join("state"),
        &tmp.path().join("run"),
        "nogroup-x",
        &[],
    );
    Host { tmp, _bus: bus, a }
}

#[test]
fn a_listed_file_is_never_read_through_a_symlink_and_refusals_quote_nothing() {
    let h = host();
    let t = h.tmp.path();
    let honest = tree(&t.join("honest"), 8080);
    let web = std::fs::read(honest.join(WEB)).unwrap();
    let secret = t.join("secret");
    std::fs::write(&secret, "root:$y$j9T$not-for-anyone:19000:0:99999:7:::\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A symlink to a file outside the tree, even with the listed content.
    let outside = t.join("outside-web");
    std::fs::write(&outside, &web).unwrap();
    let linked = tree(&t.join("linked"), 8080);
    std::fs::remove_file(linked.join(WEB)).unwrap();
    std::os::unix::fs::symlink(&outside, linked.join(WEB)).unwrap();
    refused(&h.a, &linked, &[WEB, "symbolic link"]);

    // A symlink to a secret: refused without its digest or any digest.
    let shadow = tree(&t.join("shadow"), 8080);
    std::fs::remove_file(shadow.join(WEB)).unwrap();
    std::os::unix::fs::symlink(&secret, shadow.join(WEB)).unwrap();
    let err = refused(&h.a, &shadow, &[WEB]);
    let secret_sha = sha256(&std::fs::read(&secret).unwrap());
    assert!(
        !err.contains(&secret_sha),
        "the secret's digest leaked: {err}"
    );
    assert!(!has_a_hash(&err), "a digest in the refusal: {err}");

    // A wrong file is named, its digest is not.
    let wrong = tree(&t.join("wrong"), 8080);
    std::fs::write(wrong.join(WEB), "tampered\n").unwrap();
    let err = refused(&h.a, &wrong, &[WEB, "sha256"]);
    assert!(!has_a_hash(&err), "a digest in the refusal: {err}");

    // A directory on the way that is a symlink.
    let dirlink = tree(&t.join("dirlink"), 8080);
    std::fs::rename(dirlink.join("quadlet"), t.join("quadlet-elsewhere")).unwrap();
    std::os::unix::fs::symlink(t.join("quadlet-elsewhere"), dirlink.join("quadlet")).unwrap();
    refused(&h.a, &dirlink, &["quadlet/", "symbolic link"]);
    assert!(generations(&h.a).is_empty(), "{:?}", generations(&h.a));

    // The listed file swapped back and forth between the honest file and
    // a symlink to the secret while staging: every generation staged holds
    // the honest content, never the secret.
    let racy = tree(&t.join("racy"), 8080);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (racy, secret, web, stop) = (racy.clone(), secret.clone(), web.clone(), stop.clone());
        std::thread::spawn(move || {
            let (f, l) = (racy.join("quadlet/.f"), racy.join("quadlet/.l"));
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = std::fs::remove_file(&l);
                std::os::unix::fs::symlink(&secret, &l).unwrap();
                std::fs::rename(&l, racy.join(WEB)).unwrap();
                std::fs::write(&f, &web).unwrap();
                std::fs::rename(&f, racy.join(WEB)).unwrap();
            }
        })
    };
    let mut staged = Vec::new();
    for _ in 0..30 {
        let out = ctl_within(&h.a, &["stage", racy.to_str().unwrap()], 30);
        match out.status.code() {
            Some(0) => staged.push(stdout(&out).trim().to_string()),
            Some(4) => assert!(!has_a_hash(&stderr(&out)), "{}", stderr(&out)),
            c => panic!("{c:?}: {}", stderr(&out)),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    swapper.join().unwrap();
    for g in &staged {
        assert_eq!(
            std::fs::read(generation_dir(&h.a, g).join(WEB)).unwrap(),
            web,
            "generation {g} holds what the symlink pointed at"
        );
    }
    // And the honest tree stages to a generation equal to it.
    let g = stage(&h.a, &honest);
    assert_eq!(files_of(&generation_dir(&h.a, &g)), files_of(&honest));
}

#[test]
fn restaging_never_returns_a_damaged_generation() {
    let h = host();
    let honest = tree(&h.tmp.path().join("honest"), 8080);
    assert_eq!(stage(&h.a, &honest), "1");
    assert_eq!(stage(&h.a, &honest), "1", "the same tree stages once");
    // Generation 1 damaged (or poisoned by an older agent): same manifest,
    // other content.
    std::fs::write(
        generation_dir(&h.a, "1").join(WEB),
        "root:x:0:0::/root:/bin/sh\n",
    )
    .unwrap();
    let g = stage(&h.a, &honest);
    assert_eq!(g, "2", "the damaged generation was reused");
    assert_eq!(files_of(&generation_dir(&h.a, &g)), files_of(&honest));
    assert_eq!(stage(&h.a, &honest), "2");
}

#[test]
fn staged_files_have_normal_modes_whatever_the_source_and_the_umask() {
    // The shipped unit runs the agent with UMask=0077; this test's agent
    // and trees inherit the same.
    // SAFETY: umask of this test's own process (one per test).
    unsafe { libc::umask(0o077) };
    let h = host();
    let src = tree(&h.tmp.path().join("src"), 8080);
    std::fs::set_permissions(src.join(WEB), std::fs::Permissions::from_mode(0o600)).unwrap();
    let timer = src.join("systemd/web-stamp.timer");
    std::fs::set_permissions(&timer, std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::set_permissions(src.join("systemd"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let g = stage(&h.a, &src);
    let d = generation_dir(&h.a, &g);
    assert_eq!(files_of(&d), files_of(&src));
    for dir in [d.clone(), d.join("quadlet"), d.join("systemd")] {
        assert_eq!(mode(&dir), 0o755, "{}", dir.display());
    }
    for f in files_of(&d).keys() {
        assert_eq!(mode(&d.join(f)), 0o644, "{f}");
    }
}

#[test]
fn paths_and_app_names_in_the_manifest_are_checked() {
    let h = host();
    let t = h.tmp.path();
    type Edit = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "a file outside the known directories",
            Box::new(|d: &Path| {
                std::fs::create_dir_all(d.join("etc")).unwrap();
                std::fs::write(d.join("etc/evil"), "x").unwrap();
                list(d, "etc/evil", b"x");
            }),
            vec!["etc/evil", "not under quadlet/"],
        ),
        (
            "a file at the top",
            Box::new(|d: &Path| {
                std::fs::write(d.join("top"), "x").unwrap();
                list(d, "top", b"x");
            }),
            vec!["\"top\"", "not under quadlet/"],
        ),
        (
            "a path with ..",
            Box::new(|d: &Path| list(d, "quadlet/../x", b"x")),
            vec!["unsafe path"],
        ),
        (
            "an absolute path",
            Box::new(|d: &Path| list(d, "/etc/passwd", b"x")),
            vec!["unsafe path"],
        ),
        (
            "an empty component",
            Box::new(|d: &Path| list(d, "quadlet//web.container", b"x")),
            vec!["unsafe path"],
        ),
        (
            "an app name with a slash",
            Box::new(|d: &Path| edit_manifest(d, |m| m["apps"][0]["name"] = "../../x".into())),
            vec!["app name", "not plain"],
        ),
        (
            "a hidden app name",
            Box::new(|d: &Path| edit_manifest(d, |m| m["apps"][0]["name"] = ".web".into())),
            vec!["app name", "not plain"],
        ),
    ];
    for (i, (what, edit, needles)) in cases.iter().enumerate() {
        let d = tree(&t.join(format!("case{i}")), 8080);
        edit(&d);
        let out = ctl_within(&h.a, &["stage", d.to_str().unwrap()], 10);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{what}: {err}");
        for n in needles {
            assert!(err.contains(n), "{what}: {n:?} not in {err}");
        }
    }
    assert!(generations(&h.a).is_empty(), "{:?}", generations(&h.a));
}

#[test]
fn a_fifo_in_the_tree_is_refused_at_once_and_the_agent_still_stops() {
    let mut h = host();
    let d = tree(&h.tmp.path().join("fifo"), 8080);
    std::fs::remove_file(d.join(WEB)).unwrap();
    let c = std::ffi::CString::new(d.join(WEB).to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    refused(&h.a, &d, &[WEB, "FIFO"]);
    // The manifest itself a FIFO.
    let m = tree(&h.tmp.path().join("fifo-manifest"), 8080);
    std::fs::remove_file(m.join(MANIFEST)).unwrap();
    let c = std::ffi::CString::new(m.join(MANIFEST).to_str().unwrap()).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    refused(&h.a, &m, &[MANIFEST, "FIFO"]);
    stops_on_sigterm(&mut h.a);
}

#[test]
fn a_symlink_to_dev_zero_is_refused_at_once_and_the_agent_still_stops() {
    let mut h = host();
    let d = tree(&h.tmp.path().join("zero"), 8080);
    std::fs::remove_file(d.join(WEB)).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.join(WEB)).unwrap();
    refused(&h.a, &d, &[WEB, "symbolic link"]);
    stops_on_sigterm(&mut h.a);
}

#[test]
fn oversized_files_devices_and_sockets_are_refused_at_once() {
    let mut h = host();
    let t = h.tmp.path();
    // A 1 GiB file (sparse): over the 16 MiB cap, refused before reading.
    let big = tree(&t.join("big"), 8080);
    std::fs::File::options()
        .write(true)
        .open(big.join(WEB))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let start = Instant::now();
    refused(&h.a, &big, &[WEB, "more than the"]);
    assert!(start.elapsed() < Duration::from_secs(5));
    // A manifest over its cap.
    let bigm = tree(&t.join("big-manifest"), 8080);
    std::fs::File::options()
        .write(true)
        .open(bigm.join(MANIFEST))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    refused(&h.a, &bigm, &[MANIFEST, "more than the"]);
    // A device node (the same as /dev/zero).
    let dev = tree(&t.join("dev"), 8080);
    std::fs::remove_file(dev.join(WEB)).unwrap();
    let c = std::ffi::CString::new(dev.join(WEB).to_str().unwrap()).unwrap();
    // SAFETY: mknod with a NUL-terminated path (the tests run as root).
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 5)) },
        0
    );
    refused(&h.a, &dev, &[WEB, "device"]);
    // A socket.
    let sock = tree(&t.join("sock"), 8080);
    std::fs::remove_file(sock.join(WEB)).unwrap();
    let _l = std::os::unix::net::UnixListener::bind(sock.join(WEB)).unwrap();
    refused(&h.a, &sock, &[WEB, "socket"]);
    // A directory where a file is listed.
    let dir = tree(&t.join("dir"), 8080);
    std::fs::remove_file(dir.join(WEB)).unwrap();
    std::fs::create_dir(dir.join(WEB)).unwrap();
    refused(&h.a, &dir, &[WEB, "directory"]);
    assert!(generations(&h.a).is_empty(), "{:?}", generations(&h.a));
    stops_on_sigterm(&mut h.a);
}

#[test]
fn concurrent_stages_of_different_trees_each_get_their_own_correct_generation() {
    let h = host();
    let n = 10;
    let trees: Vec<PathBuf> = (0..n)
        .map(|i| tree(&h.tmp.path().join(format!("t{i}")), 8100 + i as u16))
        .collect();
    // Every tree, and the first two once more, all at once.
    let order: Vec<usize> = (0..n).chain([0, 1]).collect();
    let children: Vec<_> = order
        .iter()
        .map(|&i| {
            Command::new(windlassctl_bin())
                .args(["--bus", &h.a.address, "stage"])
                .arg(&trees[i])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut got: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (&i, c) in order.iter().zip(children) {
        let out = c.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "tree {i}: {}", stderr(&out));
        got.entry(i)
            .or_default()
            .push(stdout(&out).trim().to_string());
    }
    let mut numbers = std::collections::BTreeSet::new();
    for (i, gs) in &got {
        assert!(
            gs.iter().all(|g| g == &gs[0]),
            "tree {i} staged twice as {gs:?}"
        );
        assert!(
            numbers.insert(gs[0].clone()),
            "{got:?}: one generation for two trees"
        );
        assert_eq!(
            files_of(&generation_dir(&h.a, &gs[0])),
            files_of(&trees[*i]),
            "generation {} is not tree {i}",
            gs[0]
        );
    }
    assert_eq!(numbers.len(), n);
    let mut want: Vec<String> = numbers.into_iter().collect();
    want.sort();
    assert_eq!(generations(&h.a), want, "no staging directory left behind");
}

#[test]
fn a_tree_the_agent_cannot_see_by_path_is_staged_through_its_descriptor() {
    let bus = bus();
    let tmp = tempfile::tempdir().unwrap();
    let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
    let home = tmp.path().join("home");
    let src = tree(&home.join("out"), 8080);
    // The agent's view: `home` covered by an empty tmpfs, as ProtectHome=
    // and PrivateTmp= do for the shipped unit.
    let log = state.with_extension("log");
    let logf = std::fs::File::create(&log).unwrap();
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg("mount -t tmpfs none \"$0\" && exec \"$@\"")
        .arg(&home)
        .arg(windlassd())
        .args(["--bus", &bus.address, "--systemd", "none"])
        .args(["--platform", "native", "--group", "nogroup-x"])
        .arg("--state-dir")
        .arg(&state)
        .arg("--run-dir")
        .arg(&run)
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .unwrap();
    let mut a = Agent {
        child,
        state: state.clone(),
        run,
        address: bus.address.clone(),
        log,
    };
    let start = Instant::now();
    while !a.busctl(&["status", "io.windlass.Agent1"]).status.success() {
        if let Some(st) = a.child.try_wait().unwrap() {
            panic!(
                "windlassd exited ({st}): {}",
                std::fs::read_to_string(&a.log).unwrap_or_default()
            );
        }
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    // By path the agent sees an empty directory.
    let out = Command::new("busctl")
        .args(["--address", &a.address, "call", "io.windlass.Agent1"])
        .args([AGENT, IFACE, "Stage", "s", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("not a windlass generator output tree"),
        "{}",
        stderr(&out)
    );
    // windlassctl opens it and passes the descriptor.
    let g = stage(&a, &src);
    assert_eq!(files_of(&generation_dir(&a, &g)), files_of(&src));
    assert_eq!(a.property(AGENT, IFACE, "State"), "s \"idle\"");

    // StageFd of something that is not a directory is refused.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt.block_on(async {
        let conn = zbus::connection::Builder::address(a.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap();
        let file = std::fs::File::open(src.join(MANIFEST)).unwrap();
        conn.call_method(
            Some("io.windlass.Agent1"),
            AGENT,
            Some(IFACE),
            "StageFd",
            &(zbus::zvariant::Fd::from(&file),),
        )
        .await
        .unwrap_err()
    });
    assert!(
        err.to_string().contains("InvalidArgument") && err.to_string().contains("not a directory"),
        "{err}"
    );
}

#[test]
fn a_damaged_generation_is_never_activated() {
    let h = host();
    let a = &h.a;
    let t = h.tmp.path();
    assert_eq!(stage(a, &tree(&t.join("g1"), 8080)), "1");
    assert_eq!(stage(a, &tree(&t.join("g2"), 8081)), "2");
    assert_eq!(stage(a, &tree(&t.join("g3"), 8082)), "3");
    let out = a.ctl(&["switch", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let current = || std::fs::read_link(a.run.join("current")).unwrap();
    let before = current();

    // One unit file of generation 2 changed after staging.
    let web2 = generation_dir(a, "2").join(WEB);
    let mut bytes = std::fs::read(&web2).unwrap();
    bytes.extend_from_slice(b"# changed\n");
    std::fs::write(&web2, &bytes).unwrap();
    let out = a.ctl(&["switch", "2"]);
    let err = stderr(&out);
    assert!(
        matches!(out.status.code(), Some(3) | Some(1)),
        "{}{err}",
        stdout(&out)
    );
    assert!(
        err.contains("generation 2 is damaged") && err.contains(WEB),
        "{err}"
    );
    assert_eq!(a.property(AGENT, IFACE, "SelectedGeneration"), "s \"1\"");
    assert_eq!(a.property(AGENT, IFACE, "RunningGeneration"), "s \"1\"");
    assert_eq!(current(), before);
    assert_eq!(std::fs::read(&web2).unwrap(), bytes, "left as found");

    // Generation 3's manifest unreadable.
    std::fs::write(generation_dir(a, "3").join(MANIFEST), "{ not json").unwrap();
    let out = a.ctl(&["switch", "3"]);
    let err = stderr(&out);
    assert!(matches!(out.status.code(), Some(3) | Some(1)), "{err}");
    assert!(
        err.contains("generation 3 is damaged") && err.contains(MANIFEST),
        "{err}"
    );
    assert_eq!(a.property(AGENT, IFACE, "RunningGeneration"), "s \"1\"");
    assert_eq!(current(), before);
}
