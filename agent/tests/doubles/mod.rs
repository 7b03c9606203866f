//! Test doubles of what the agent talks to: [`Fake`] systemd (records
//! every call; unit states come from a script the test sets) and
//! [`Recorder`], a stand-in for the commands NixOS and Guix run. They live
//! here, not in the product: `--systemd none` is `NoSystemd`, with no
//! test hooks.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use windlass_agent::drift::compare::UnitProps;
use windlass_agent::durable::swap_symlink;
use windlass_agent::ops::runner::{Runner, Silent};
use windlass_agent::platform::Platform;
use windlass_agent::platform::profiles::Runner as CommandRunner;
use windlass_agent::store::Store;
use windlass_agent::systemd::{ContainerImage, SysEvent, Systemd, SystemdError, UnitState, Verb};

type R<T> = Result<T, SystemdError>;

/// A [`Fake`]'s events channel, made on first use: its sender, and its
/// receiver until `events()` takes it.
pub type Events = (
    Option<mpsc::Sender<SysEvent>>,
    Option<mpsc::Receiver<SysEvent>>,
);

/// A stand-in for tests: records every call; unit states come from a
/// script the test sets.
#[derive(Clone, Default)]
pub struct Fake {
    pub calls: Arc<Mutex<Vec<String>>>,
    pub states: Arc<Mutex<BTreeMap<String, UnitState>>>,
    pub failing_jobs: Arc<Mutex<Vec<String>>>,
    /// Units whose stop ends `failed` (a main process that ignored
    /// SIGTERM, killed at the stop timeout).
    pub killed_on_stop: Arc<Mutex<Vec<String>>>,
    /// Container name → image it runs (unset: cannot be told).
    pub images: Arc<Mutex<BTreeMap<String, String>>>,
    /// Container name → `podman container inspect` output.
    pub inspect: Arc<Mutex<BTreeMap<String, serde_json::Value>>>,
    /// Unit → its journal's lines (unset: one stand-in line).
    pub journals: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    /// Called with the name on every `stop_transient`: a test's stand-in
    /// for systemd stopping that unit, which kills the process in it when
    /// the external revert is what runs the agent's code.
    #[allow(clippy::type_complexity)]
    pub on_stop_transient: Arc<Mutex<Option<Box<dyn Fn(&str) + Send>>>>,
    /// Unit → what systemd says of it (unset: loaded from the generator
    /// directory, see [`Fake::props`]).
    pub unit_props: Arc<Mutex<BTreeMap<String, UnitProps>>>,
    /// Container name → (reference, image id) (unset: cannot be told).
    pub container_images: Arc<Mutex<BTreeMap<String, ContainerImage>>>,
    /// The events channel: [`Fake::push_event`] sends, the first
    /// `events()` takes the receiver (later calls get `None`).
    pub events: Arc<Mutex<Events>>,
    /// Units whose state query systemd never answers (a bus call that
    /// hangs).
    pub silent: Arc<Mutex<Vec<String>>>,
    /// How long each `container_image_id` takes (a `podman container
    /// inspect` on a loaded host); counts those in progress.
    pub inspect_delay: Arc<Mutex<std::time::Duration>>,
    pub inspecting: Arc<std::sync::atomic::AtomicUsize>,
    /// How long each `unit_props` takes.
    pub props_delay: Arc<Mutex<std::time::Duration>>,
}

impl Fake {
    pub fn set(&self, unit: &str, active: &str, sub: &str) {
        self.states.lock().unwrap().insert(
            unit.to_string(),
            UnitState {
                active_state: active.into(),
                sub_state: sub.into(),
                result: if active == "failed" {
                    "exit-code".into()
                } else {
                    "success".into()
                },
                job_pending: false,
            },
        );
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// What `unit_props(unit)` answers: as set, else loaded from the
    /// generator directory (`/run/systemd/generator/<unit>`, "generated").
    pub fn props(&self, unit: &str) -> UnitProps {
        self.unit_props
            .lock()
            .unwrap()
            .get(unit)
            .cloned()
            .unwrap_or_else(|| UnitProps {
                load_state: "loaded".into(),
                fragment_path: format!("/run/systemd/generator/{unit}"),
                drop_in_paths: Vec::new(),
                need_daemon_reload: false,
                unit_file_state: "generated".into(),
            })
    }

    pub fn set_props(&self, unit: &str, props: UnitProps) {
        self.unit_props
            .lock()
            .unwrap()
            .insert(unit.to_string(), props);
    }

    /// The container `name` runs image `id`, created from `reference`.
    pub fn set_image(&self, name: &str, reference: &str, id: &str) {
        self.container_images.lock().unwrap().insert(
            name.to_string(),
            ContainerImage {
                name: reference.into(),
                id: id.into(),
            },
        );
    }

    /// Sends `ev` as systemd would (queued until `events()` is called;
    /// dropped once its receiver is gone or 256 wait).
    pub fn push_event(&self, ev: SysEvent) {
        let mut ch = self.events.lock().unwrap();
        let _ = Self::channel(&mut ch).try_send(ev);
    }

    fn channel(ch: &mut Events) -> &mpsc::Sender<SysEvent> {
        if ch.0.is_none() {
            let (tx, rx) = mpsc::channel(256);
            *ch = (Some(tx), Some(rx));
        }
        ch.0.as_ref().unwrap()
    }
}

impl Systemd for Fake {
    async fn reload(&self) -> R<()> {
        self.calls.lock().unwrap().push("reload".into());
        Ok(())
    }

    async fn job(&self, verb: Verb, unit: &str) -> R<String> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("{} {unit}", verb.as_str()));
        if self.failing_jobs.lock().unwrap().iter().any(|u| u == unit) {
            return Ok("failed".into());
        }
        let mut s = self.states.lock().unwrap();
        let entry = s.entry(unit.to_string()).or_default();
        if verb == Verb::Stop
            && self
                .killed_on_stop
                .lock()
                .unwrap()
                .iter()
                .any(|u| u == unit)
        {
            entry.active_state = "failed".into();
            entry.sub_state = "failed".into();
            entry.result = "exit-code".into();
        } else if verb == Verb::Stop {
            entry.active_state = "inactive".into();
            entry.sub_state = "dead".into();
        } else if entry.active_state.is_empty() || entry.active_state == "inactive" {
            entry.active_state = "active".into();
            entry.sub_state = "running".into();
        }
        Ok("done".into())
    }

    async fn enqueue(&self, verb: Verb, unit: &str) -> R<()> {
        self.job(verb, unit).await.map(|_| ())
    }

    async fn state(&self, unit: &str) -> R<UnitState> {
        if self.silent.lock().unwrap().iter().any(|u| u == unit) {
            std::future::pending::<()>().await;
        }
        Ok(self
            .states
            .lock()
            .unwrap()
            .get(unit)
            .cloned()
            .unwrap_or(UnitState {
                active_state: "inactive".into(),
                sub_state: "dead".into(),
                result: "success".into(),
                job_pending: false,
            }))
    }

    async fn journal(&self, unit: &str, _n: usize) -> R<Vec<String>> {
        if let Some(lines) = self.journals.lock().unwrap().get(unit) {
            return Ok(lines.clone());
        }
        Ok(vec![format!("{unit}: (stand-in journal)")])
    }

    async fn container_inspect(&self, name: &str) -> Option<serde_json::Value> {
        self.inspect.lock().unwrap().get(name).cloned()
    }

    async fn transient(&self, name: &str, argv: &[String], delay_sec: Option<u64>) -> R<()> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("transient {name} {:?} {delay_sec:?}", argv));
        // A delayed one is a timer, waiting until stopped.
        if delay_sec.is_some() {
            self.set(&format!("{name}.timer"), "active", "waiting");
        }
        Ok(())
    }

    async fn kill(&self, unit: &str) -> R<()> {
        self.calls.lock().unwrap().push(format!("kill {unit}"));
        Ok(())
    }

    async fn container_image(&self, name: &str) -> Option<String> {
        self.images.lock().unwrap().get(name).cloned()
    }

    async fn reset_failed(&self, unit: &str) -> R<()> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("reset-failed {unit}"));
        if let Some(st) = self.states.lock().unwrap().get_mut(unit)
            && st.active_state == "failed"
        {
            st.active_state = "inactive".into();
            st.sub_state = "dead".into();
            st.result = "success".into();
        }
        Ok(())
    }

    async fn remove_app_containers(&self, app: &str) -> R<()> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("container-rm {app}"));
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> R<()> {
        self.calls.lock().unwrap().push(format!("volume-rm {name}"));
        Ok(())
    }

    async fn remove_network(&self, name: &str) -> R<()> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("network-rm {name}"));
        Ok(())
    }

    async fn events(&self) -> Option<mpsc::Receiver<SysEvent>> {
        let mut ch = self.events.lock().unwrap();
        Self::channel(&mut ch);
        ch.1.take()
    }

    async fn unit_props(&self, unit: &str) -> R<UnitProps> {
        let delay = *self.props_delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        Ok(self.props(unit))
    }

    async fn container_image_id(&self, name: &str) -> Option<ContainerImage> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        /// Counts an inspection in progress, also one dropped midway.
        struct Busy<'a>(&'a AtomicUsize);
        impl Drop for Busy<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let delay = *self.inspect_delay.lock().unwrap();
        if !delay.is_zero() {
            self.inspecting.fetch_add(1, Ordering::SeqCst);
            let _busy = Busy(&self.inspecting);
            tokio::time::sleep(delay).await;
        }
        self.container_images.lock().unwrap().get(name).cloned()
    }

    async fn stop_transient(&self, name: &str) -> R<()> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("stop-transient {name}"));
        self.states.lock().unwrap().remove(&format!("{name}.timer"));
        if let Some(hook) = self.on_stop_transient.lock().unwrap().as_ref() {
            hook(name);
        }
        Ok(())
    }
}

/// Records commands, and plays what `nix-env --switch-generation` does to
/// the profile link so the state machine can be tested on a stand-in tree.
#[derive(Clone, Default)]
pub struct Recorder {
    pub calls: Arc<Mutex<Vec<String>>>,
    pub fail: Arc<Mutex<Vec<String>>>,
    /// Plays `switch-to-configuration test` / `activate` on this link.
    pub current_system: Option<PathBuf>,
    /// The profiles directory, for `guix system switch-generation`.
    pub profiles: Option<PathBuf>,
}

impl CommandRunner for Recorder {
    fn run(&self, argv: &[String]) -> Result<(), String> {
        let line = argv.join(" ");
        self.calls.lock().unwrap().push(line.clone());
        if self
            .fail
            .lock()
            .unwrap()
            .iter()
            .any(|f| line.contains(f.as_str()))
        {
            return Err(format!("{line}: failed (stand-in)"));
        }
        if argv.len() == 5 && argv[0].ends_with("nix-env") && argv[3] == "--switch-generation" {
            let link = Path::new(&argv[2]);
            let target = format!("system-{}-link", argv[4]);
            swap_symlink(link, Path::new(&target)).map_err(|e| e.to_string())?;
        }
        if argv.len() == 4
            && argv[1] == "system"
            && argv[2] == "switch-generation"
            && let Some(p) = &self.profiles
        {
            let target = format!("system-{}-link", argv[3]);
            swap_symlink(&p.join("system"), Path::new(&target)).map_err(|e| e.to_string())?;
        }
        let activates = (argv[0].ends_with("bin/switch-to-configuration")
            && argv.get(1).is_some_and(|a| a == "test"))
            || argv[0].ends_with("/activate");
        if activates && let Some(cur) = &self.current_system {
            let gen_dir = Path::new(&argv[0])
                .ancestors()
                .nth(if argv[0].ends_with("/activate") { 1 } else { 2 })
                .unwrap();
            let target = fs::read_link(gen_dir).map_err(|e| e.to_string())?;
            let target = if target.is_relative() {
                gen_dir.parent().unwrap().join(target)
            } else {
                target
            };
            swap_symlink(cur, &target).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// A runner on `platform` with its records under `state`, the recording
/// systemd, no signals, and a short poll (tests).
pub fn runner<P: Platform>(state: &Path, platform: P, fake: &Fake) -> Runner<P, Fake> {
    let mut rn = Runner::new(
        Store::new(state),
        platform,
        fake.clone(),
        windlass_net::client(&Default::default()).unwrap(),
        Arc::new(Silent),
    );
    rn.poll = std::time::Duration::from_millis(20);
    rn
}
