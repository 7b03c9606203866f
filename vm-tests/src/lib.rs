//! The Debian VM harness: builds (once, cached) a Debian trixie guest image
//! from Debian's packages (`debian/image.sh`), boots it under QEMU with TCG
//! (nested KVM does not work on our machines), and exchanges files with it
//! through a 9p share: the host puts `guest-run.sh`, the scenarios, fresh
//! binaries and generated trees in the share; a oneshot unit in the guest
//! runs that guest's scenarios at boot, writes
//! `results/<scenario>/{log,rc,…}`, and powers the guest off (a scenario
//! may reboot it on the way; the runner picks up where it left off).
//! Scenario output is mirrored on each guest's second serial port
//! (`tests-<n>.log`), apart from its console (`console-<n>.log`).
//!
//! One run serves every scenario of a test run: the first test to arrive
//! prepares the share and boots, the others wait on a lock and read the
//! same results (keyed by nextest's run id, or by process under `cargo
//! test`). The run is two guests booted side by side from the same image
//! and share ([`guest_of`] says which scenario runs where): a guest keeps
//! one to two host cores busy, less while its scenarios wait on timers,
//! so two guests share the host's cores better than one.

use std::fs;
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Whether the VM tests run. Under `CI=true` always (a missing QEMU or
/// image then fails the test). Outside CI they are skipped, saying why,
/// when `WINDLASS_SKIP_VM=1`, when QEMU is not installed, or when the
/// guest image is not built yet (`vm-tests/debian/image.sh` builds it;
/// `tools/test` does).
pub fn vm_enabled(test: &str) -> bool {
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    if ci {
        return true;
    }
    if std::env::var("WINDLASS_SKIP_VM").as_deref() == Ok("1") {
        eprintln!("SKIPPED {test}: VM disabled by WINDLASS_SKIP_VM=1 (never under CI=true)");
        return false;
    }
    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let built = Command::new(repo_root().join("vm-tests/debian/image.sh"))
        .arg("--check")
        .output()
        .is_ok_and(|o| o.status.success());
    if !qemu || !built {
        eprintln!(
            "SKIPPED {test}: {} (tools/test installs and builds what the VM needs). \
             Under CI=true this test fails instead.",
            if qemu {
                "the guest image is not built; vm-tests/debian/image.sh builds it"
            } else {
                "qemu-system-x86_64 is not installed"
            }
        );
        return false;
    }
    true
}

/// Builds or reuses the guest image; returns its directory.
pub fn image() -> PathBuf {
    let out = Command::new(repo_root().join("vm-tests/debian/image.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cannot run vm-tests/debian/image.sh");
    assert!(out.status.success(), "building the VM image failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

pub struct Boot {
    pub console: String,
    pub tests_log: String,
    pub elapsed: Duration,
}

/// How many guests share a run.
pub const GUESTS: usize = 2;

/// The guest that runs scenario `name` (a file name in
/// `debian/scenarios`). Scenarios numbered below 20 run in guest 0, in
/// name order: the generate scenarios and the agent's switch chain (02b
/// first, then 03 to 09, each building on the state the one before left).
/// Those numbered 20 and up (cutover, self-upgrade, adopt, hooks, drift,
/// fleet, the sweep (26), and 99, which uninstalls what they leave) run in
/// guest 1, in name order. Each scenario that needs the agent installs it
/// when it is not there (`install-agent.sh`). The sweep ran in guest 0
/// until 2026-12-06 (guests 1,866.5 and 1,697.7 s of a CI run); in guest 1
/// (1,736.7 and 1,803.0 s) it takes 210 s rather than 94, its switch also
/// restarting the `web` that 25-fleet leaves, but the run is 63 s shorter,
/// and 99 then uninstalls a host with a sweep timer installed, as its
/// docs say.
pub fn guest_of(name: &str) -> usize {
    match name.as_bytes() {
        [b'0' | b'1', b'0'..=b'9', ..] => 0,
        _ => 1,
    }
}

/// Boots the image with `share` as the guest's /host, as guest `guest`
/// (on the kernel command line: its runner reads `/host/guests/<guest>`
/// for the scenarios to run); returns when the guest powers off, or kills
/// it after `timeout`. Its console and test output go to
/// `work/console-<guest>.log` and `work/tests-<guest>.log`.
pub fn boot(image: &Path, share: &Path, work: &Path, guest: usize, timeout: Duration) -> Boot {
    let qemu = which("qemu-system-x86_64").expect("qemu-system-x86_64 is not installed");
    let console = work.join(format!("console-{guest}.log"));
    let tests = work.join(format!("tests-{guest}.log"));
    let start = Instant::now();
    let mut child = Command::new(qemu)
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "2048"])
        // No -no-reboot: a scenario may reboot the guest (guest-run.sh
        // resumes it and stops a reboot loop).
        .args(["-display", "none", "-monitor", "none", "-nic", "none"])
        .arg("-kernel")
        .arg(image.join("vmlinuz"))
        .arg("-initrd")
        .arg(image.join("initrd.img"))
        .arg("-append")
        .arg(format!(
            "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=0 windlass.guest={guest}"
        ))
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=raw,snapshot=on",
            image.join("rootfs.ext4").display()
        ))
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=host,security_model=none",
            share.display()
        ))
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", tests.display()))
        .stdin(Stdio::null())
        .spawn()
        .expect("cannot start qemu");
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "qemu exited with {st}");
            break;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "guest {guest} did not power off within {timeout:?}; console:\n{}\ntests:\n{}",
                tail(&fs::read_to_string(&console).unwrap_or_default(), 60),
                fs::read_to_string(&tests).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Boot {
        console: fs::read_to_string(&console).unwrap_or_default(),
        tests_log: fs::read_to_string(&tests).unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

/// [`boot`]s guest `g`, and boots it once more from a clean disk when a
/// reboot it did not ask for cut one of its scenarios short: a guest
/// kernel crash (under TCG, once in a few dozen guest runs: `Oops: int3`
/// in the scheduler while crun ran, 2026-12-06) reboots the guest at
/// once (`panic=-1`), its runner then marks that scenario failed and
/// powers off (`guest-run.sh`), and the scenarios after it would have
/// run on whatever the crash left. The second boot runs all of the
/// guest's `scenarios` again (they build on each other) on a fresh
/// snapshot of the image; the first boot's console, test output and
/// results are kept beside it ([`set_aside_after_crash`]). A second
/// crash is reported as it comes: its scenario fails, the later ones
/// did not finish.
fn run_guest(
    image: &Path,
    share: &Path,
    work: &Path,
    g: usize,
    scenarios: &[&str],
    timeout: Duration,
) -> Boot {
    let first = boot(image, share, work, g, timeout);
    let Some(crashed) = set_aside_after_crash(share, work, g, scenarios) else {
        return first;
    };
    eprintln!(
        "VM guest {g}: scenario {crashed} was cut short by a reboot it did not ask for \
         after {:.1} s (console: {}); booting the guest again from a clean disk \
         to run its scenarios again",
        first.elapsed.as_secs_f64(),
        work.join(format!("console-{g}.1.log")).display()
    );
    let again = boot(image, share, work, g, timeout);
    Boot {
        console: again.console,
        tests_log: format!(
            "{}--- guest {g}: scenario {crashed} cut short by a reboot it did not ask for; \
             started again from a clean disk\n{}",
            first.tests_log, again.tests_log
        ),
        elapsed: first.elapsed + again.elapsed,
    }
}

/// After guest `g` powered off: when its runner wrote `crashed-<g>` in
/// the share (a reboot it did not ask for cut a scenario short), moves
/// its console and test output to `console-<g>.1.log` and
/// `tests-<g>.1.log` in `work`, and the results of its `scenarios`
/// (file names, `NN-name.sh`) to `results-crashed-<g>/` in the share, removes
/// the mark and returns the scenario's name; `None` when there is no
/// mark. The other guest's results are left as they are.
fn set_aside_after_crash(
    share: &Path,
    work: &Path,
    g: usize,
    scenarios: &[&str],
) -> Option<String> {
    let mark = share.join(format!("crashed-{g}"));
    let crashed = fs::read_to_string(&mark).ok()?.trim().to_string();
    for log in ["console", "tests"] {
        let _ = fs::rename(
            work.join(format!("{log}-{g}.log")),
            work.join(format!("{log}-{g}.1.log")),
        );
    }
    let aside = share.join(format!("results-crashed-{g}"));
    fs::remove_file(&mark).unwrap();
    fs::create_dir_all(&aside).unwrap();
    for s in scenarios {
        let name = s.strip_suffix(".sh").unwrap_or(s);
        let dir = share.join("results").join(name);
        if dir.exists() {
            fs::rename(&dir, aside.join(name)).unwrap();
        }
    }
    Some(crashed)
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

/// The results of one shared run.
pub struct Run {
    pub results: PathBuf,
    pub tests_log: String,
}

impl Run {
    /// `results/<scenario>`, after checking the scenario ran to its end;
    /// prints the scenario's wall time in the guest (nextest shows it
    /// beside the test's PASS or FAIL line, see `.config/nextest.toml`).
    pub fn scenario(&self, name: &str) -> PathBuf {
        let dir = self.results.join(name);
        let rc = fs::read_to_string(dir.join("rc")).unwrap_or_else(|_| {
            panic!(
                "scenario {name} did not finish in the guest; guest output:\n{}",
                self.tests_log
            )
        });
        let secs = fs::read_to_string(dir.join("seconds")).unwrap_or_else(|_| "?".into());
        eprintln!(
            "scenario {name}: {} s in the guest, exit {}",
            secs.trim(),
            rc.trim()
        );
        assert_eq!(
            rc.trim(),
            "0",
            "scenario {name} failed in the guest:\n{}",
            fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        dir
    }
}

static IN_PROCESS: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Prepares the share with `prepare` and boots the guests once per test
/// run, side by side, each with the scenarios [`guest_of`] gives it (as
/// `share/guests/<n>`, a name a line); every caller of the same run gets
/// the same results.
pub fn shared_run(prepare: impl FnOnce(&Path)) -> Run {
    let key =
        std::env::var("NEXTEST_RUN_ID").unwrap_or_else(|_| format!("pid-{}", std::process::id()));
    let base = std::env::temp_dir().join(format!("windlass-vm-{key}"));
    fs::create_dir_all(&base).unwrap();
    let _guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let lock = fs::File::create(base.join("lock")).unwrap();
    // SAFETY: flock on a file descriptor we own for the duration of the call.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let done = base.join("done");
    let share = base.join("share");
    if !done.exists() {
        let _ = fs::remove_dir_all(&share);
        fs::create_dir_all(share.join("results")).unwrap();
        fs::create_dir_all(share.join("scenarios")).unwrap();
        prepare(&share);
        let mut lists = vec![String::new(); GUESTS];
        let mut names: Vec<String> = fs::read_dir(share.join("scenarios"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        for n in names {
            lists[guest_of(&n)] += &format!("{n}\n");
        }
        fs::create_dir_all(share.join("guests")).unwrap();
        for (g, list) in lists.iter().enumerate() {
            fs::write(share.join("guests").join(g.to_string()), list).unwrap();
        }
        let image = image();
        let start = Instant::now();
        let boots: Vec<(usize, Boot)> = std::thread::scope(|s| {
            let running: Vec<_> = (0..GUESTS)
                .filter(|&g| !lists[g].is_empty())
                .map(|g| {
                    let (image, share, base) = (&image, &share, &base);
                    let scenarios: Vec<&str> = lists[g].lines().collect();
                    let timeout = Duration::from_secs(3600);
                    (
                        g,
                        s.spawn(move || run_guest(image, share, base, g, &scenarios, timeout)),
                    )
                })
                .collect();
            running
                .into_iter()
                .map(|(g, h)| (g, h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))))
                .collect()
        });
        let mut log = String::new();
        for (g, b) in &boots {
            eprintln!("VM guest {g} took {:.1} s", b.elapsed.as_secs_f64());
            log += &format!("=== guest {g}\n{}", b.tests_log);
        }
        eprintln!("VM run took {:.1} s", start.elapsed().as_secs_f64());
        fs::write(base.join("tests.log"), &log).unwrap();
        let mut f = fs::File::create(&done).unwrap();
        writeln!(f, "ok").unwrap();
    }
    Run {
        results: share.join("results"),
        tests_log: fs::read_to_string(base.join("tests.log")).unwrap_or_default(),
    }
}

/// Copies a file, creating parent directories and keeping the mode.
pub fn install(from: &Path, to: &Path) {
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} → {}: {e}", from.display(), to.display()));
}

/// `web.toml` of the agent scenarios' generation `g`, from the basic
/// fleet's (`a`). B: web gets `MARK=b`; C: B with a health check that never
/// passes and a 25 s deadline; D: web gets `MARK=d` and answers (so turns
/// healthy) only 6 s after it starts, which holds a switch in its
/// activation that long. The NixOS twins make the same edits
/// (`nixos/common.nix`, `webTomls`; a test holds them equal).
pub fn web_toml(g: char, a: &str) -> String {
    let mark = |t: &str, m: &str| {
        let out = t.replace(
            "networks = [\"vmnet\"]\n",
            &format!("networks = [\"vmnet\"]\nenv = {{ MARK = \"{m}\" }}\n"),
        );
        assert_ne!(out, t, "web.toml changed shape");
        out
    };
    let edit = |t: &str, from: &str, to: &str| {
        assert!(t.contains(from), "web.toml changed shape: no {from:?}");
        t.replace(from, to)
    };
    match g {
        'a' => a.to_string(),
        'b' => mark(a, "b"),
        'c' => {
            edit(
                &mark(a, "b"),
                "cmd = [\"/bin/wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:8080/\"]",
                "cmd = [\"/bin/false\"]",
            ) + "\n[update]\nhealth_deadline = \"25s\"\n"
        }
        'd' => mark(
            &edit(
                a,
                "entrypoint = [\"/bin/httpd\"]\ncommand = [\"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
                "entrypoint = [\"/bin/sh\", \"-c\"]\ncommand = [\"sleep 6; exec httpd -f -p 8080 -h /www\"]\n",
            ),
            "d",
        ),
        other => panic!("no generation {other}"),
    }
}

/// What stands in for one app's image in scenario 1, where the example
/// fleet runs but its images cannot be pulled: busybox tagged with the
/// image's reference, serving a page on `ports` (the container side of
/// each published TCP port and the port of the manifest's HTTP health
/// URL). The NixOS twin builds the same (`nixos/common.nix`, `standins`;
/// a test holds them equal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standin {
    pub app: String,
    pub image: String,
    pub ports: Vec<u16>,
}

pub fn standins(fleet: &windlass::model::Fleet) -> Vec<Standin> {
    fleet
        .apps
        .iter()
        .map(|app| {
            let c = &app.container;
            assert!(
                c.image.digest.is_none(),
                "{}: a stand-in cannot carry a digest",
                app.name
            );
            let mut ports: Vec<u16> = c
                .ports
                .iter()
                .filter(|p| p.protocol != Some(windlass::model::Protocol::Udp))
                .map(|p| p.container)
                .collect();
            if let Some(url) = app.health.as_ref().and_then(|h| h.http.as_deref()) {
                let authority = url.split("://").nth(1).unwrap_or("");
                let authority = authority.split('/').next().unwrap_or("");
                if let Some((_, port)) = authority.rsplit_once(':') {
                    ports.push(port.parse().expect("health URL port"));
                }
            }
            ports.sort();
            ports.dedup();
            Standin {
                app: app.name.clone(),
                image: c.image.full.clone(),
                ports,
            }
        })
        .collect()
}

/// The apps no other app requires or wants: starting them brings up the
/// rest through the dependencies alone.
pub fn roots(fleet: &windlass::model::Fleet) -> Vec<String> {
    fleet
        .apps
        .iter()
        .filter(|a| {
            !fleet
                .apps
                .iter()
                .any(|b| b.requires.contains(&a.name) || b.wants.contains(&a.name))
        })
        .map(|a| a.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_below_20_run_in_guest_0_the_rest_in_guest_1() {
        for (name, guest) in [
            ("01-generate-run.sh", 0),
            ("02b-first-switch-red.sh", 0),
            ("09-reboot-before-commit.sh", 0),
            ("20-cutover.sh", 1),
            ("25-fleet.sh", 1),
            ("26-sweep.sh", 1),
            ("99-uninstall.sh", 1),
        ] {
            assert_eq!(guest_of(name), guest, "{name}");
        }
        // Every guest has scenarios to run.
        let mut per_guest = [0; GUESTS];
        for e in fs::read_dir(repo_root().join("vm-tests/debian/scenarios")).unwrap() {
            per_guest[guest_of(&e.unwrap().file_name().to_string_lossy())] += 1;
        }
        assert!(per_guest.iter().all(|&n| n > 0), "{per_guest:?}");
    }

    #[test]
    fn a_crashed_guests_results_and_logs_are_set_aside_the_others_kept() {
        let t = std::env::temp_dir().join(format!("windlass-vm-crash-{}", std::process::id()));
        let _ = fs::remove_dir_all(&t);
        let (share, work) = (t.join("share"), t.join("work"));
        for (name, rc) in [("01-a", "0"), ("02-b", "99"), ("20-c", "0")] {
            fs::create_dir_all(share.join("results").join(name)).unwrap();
            fs::write(share.join("results").join(name).join("rc"), rc).unwrap();
        }
        fs::create_dir_all(&work).unwrap();
        for log in ["console-0", "tests-0", "console-1"] {
            fs::write(work.join(format!("{log}.log")), log).unwrap();
        }
        let guest0 = ["01-a.sh", "02-b.sh", "03-not-reached.sh"];
        // No mark: nothing moves.
        assert_eq!(set_aside_after_crash(&share, &work, 0, &guest0), None);
        assert!(share.join("results/01-a/rc").exists());
        assert!(work.join("console-0.log").exists());

        fs::write(share.join("crashed-0"), "02-b\n").unwrap();
        assert_eq!(
            set_aside_after_crash(&share, &work, 0, &guest0).as_deref(),
            Some("02-b")
        );
        assert!(!share.join("crashed-0").exists(), "the mark is removed");
        assert!(!share.join("results/01-a").exists());
        assert!(!share.join("results/02-b").exists());
        for (moved, was) in [
            (share.join("results-crashed-0/02-b/rc"), "99"),
            (share.join("results-crashed-0/01-a/rc"), "0"),
            (work.join("console-0.1.log"), "console-0"),
            (work.join("tests-0.1.log"), "tests-0"),
        ] {
            assert_eq!(
                fs::read_to_string(&moved).unwrap(),
                was,
                "{}",
                moved.display()
            );
        }
        assert!(!work.join("console-0.log").exists());
        // The other guest's results and console stay.
        assert!(share.join("results/20-c/rc").exists());
        assert!(work.join("console-1.log").exists());
        assert_eq!(set_aside_after_crash(&share, &work, 1, &["20-c.sh"]), None);
        fs::remove_dir_all(&t).unwrap();
    }
}
