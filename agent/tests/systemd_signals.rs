//! The agent's systemd client ([`Dbus`]) on a real dbus-daemon, against a
//! stand-in that owns `org.freedesktop.systemd1` there: the signals the
//! drift watcher listens to become [`SysEvent`]s (a reload only once it
//! is done), and a unit's properties are read with one `GetAll`. systemd
//! itself cannot run here; the VM scenarios cover the real one. Also
//! the [`doubles::Fake`]'s side of the same methods.

mod common;
mod doubles;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::Receiver;
use windlass_agent::drift::compare::UnitProps;
use windlass_agent::systemd::{ContainerImage, Dbus, SysEvent, Systemd};
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};

const MANAGER: &str = "/org/freedesktop/systemd1";
const WEB: &str = "/org/freedesktop/systemd1/unit/web_2eservice";
const GONE: &str = "/org/freedesktop/systemd1/unit/gone_2eservice";

/// `org.freedesktop.systemd1.Manager`, as much of it as the client uses.
struct Manager {
    subscribed: Arc<AtomicBool>,
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl Manager {
    async fn subscribe(&self) {
        self.subscribed.store(true, Ordering::SeqCst);
    }

    async fn load_unit(&self, name: &str) -> zbus::fdo::Result<OwnedObjectPath> {
        let path = match name {
            "web.service" => WEB,
            "gone.service" => GONE,
            _ => return Err(zbus::fdo::Error::Failed(format!("no unit {name}"))),
        };
        Ok(ObjectPath::try_from(path).unwrap().into())
    }

    #[zbus(signal)]
    async fn reloading(emitter: &SignalEmitter<'_>, active: bool) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn unit_files_changed(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn job_removed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        job: ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

/// `web.service`: loaded from the generator, with an admin's drop-in,
/// changed on disk since the last reload.
struct Web;

#[zbus::interface(name = "org.freedesktop.systemd1.Unit")]
impl Web {
    #[zbus(property)]
    fn load_state(&self) -> String {
        "loaded".into()
    }
    #[zbus(property)]
    fn active_state(&self) -> String {
        "active".into()
    }
    #[zbus(property)]
    fn fragment_path(&self) -> String {
        "/run/systemd/generator/web.service".into()
    }
    #[zbus(property)]
    fn drop_in_paths(&self) -> Vec<String> {
        vec![
            "/etc/systemd/system/web.service.d/override.conf".into(),
            "/usr/lib/systemd/system/service.d/10-timeout.conf".into(),
        ]
    }
    #[zbus(property)]
    fn need_daemon_reload(&self) -> bool {
        true
    }
    #[zbus(property)]
    fn unit_file_state(&self) -> String {
        "generated".into()
    }
}

/// `gone.service`: only a load state (the rest is missing).
struct Gone;

#[zbus::interface(name = "org.freedesktop.systemd1.Unit")]
impl Gone {
    #[zbus(property)]
    fn load_state(&self) -> String {
        "not-found".into()
    }
}

struct StandIn {
    conn: zbus::Connection,
    subscribed: Arc<AtomicBool>,
}

impl StandIn {
    async fn start(bus: &common::Bus) -> StandIn {
        let subscribed = Arc::new(AtomicBool::new(false));
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .name("org.freedesktop.systemd1")
            .unwrap()
            .serve_at(
                MANAGER,
                Manager {
                    subscribed: subscribed.clone(),
                },
            )
            .unwrap()
            .serve_at(WEB, Web)
            .unwrap()
            .serve_at(GONE, Gone)
            .unwrap()
            .build()
            .await
            .unwrap();
        StandIn { conn, subscribed }
    }

    async fn emitter(&self) -> SignalEmitter<'static> {
        SignalEmitter::new(&self.conn, MANAGER).unwrap()
    }
}

async fn client(bus: &common::Bus) -> Dbus {
    let conn = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .build()
        .await
        .unwrap();
    Dbus::with_connection(conn).await.unwrap()
}

async fn next(rx: &mut Receiver<SysEvent>) -> SysEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no event within 10 s")
        .expect("the events channel closed")
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_signals_become_events_and_a_reload_counts_once_done() {
    let bus = common::bus();
    let systemd = StandIn::start(&bus).await;
    let dbus = client(&bus).await;
    assert!(
        systemd.subscribed.load(Ordering::SeqCst),
        "the client subscribes, or systemd sends it no job signals"
    );
    let mut rx = dbus.events().await.expect("Dbus has events");
    let em = systemd.emitter().await;

    // Sent right after events() returned: none is lost.
    Manager::reloading(&em, true).await.unwrap();
    Manager::reloading(&em, false).await.unwrap();
    assert_eq!(next(&mut rx).await, SysEvent::Reloaded);

    Manager::unit_files_changed(&em).await.unwrap();
    assert_eq!(next(&mut rx).await, SysEvent::UnitFilesChanged);

    // The end of a job is no event (the watcher is not woken by every
    // job on the host), nor is a reload that starts: only what follows.
    let job = ObjectPath::try_from("/org/freedesktop/systemd1/job/7").unwrap();
    Manager::job_removed(&em, 7, job.clone(), "web.service", "done")
        .await
        .unwrap();
    Manager::reloading(&em, true).await.unwrap();
    Manager::unit_files_changed(&em).await.unwrap();
    assert_eq!(next(&mut rx).await, SysEvent::UnitFilesChanged);
    let more = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
    assert!(more.is_err(), "unexpected event: {more:?}");

    // A signal of the same name from someone else than systemd is not
    // systemd's.
    let other = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .build()
        .await
        .unwrap();
    other
        .emit_signal(
            None::<()>,
            MANAGER,
            "org.freedesktop.systemd1.Manager",
            "UnitFilesChanged",
            &(),
        )
        .await
        .unwrap();
    let more = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
    assert!(more.is_err(), "an impostor's signal came through: {more:?}");

    // Each call listens anew.
    let mut again = dbus.events().await.expect("Dbus has events");
    Manager::unit_files_changed(&em).await.unwrap();
    assert_eq!(next(&mut again).await, SysEvent::UnitFilesChanged);
    assert_eq!(next(&mut rx).await, SysEvent::UnitFilesChanged);
}

#[tokio::test(flavor = "multi_thread")]
async fn unit_props_are_read_from_the_units_object() {
    let bus = common::bus();
    let _systemd = StandIn::start(&bus).await;
    let dbus = client(&bus).await;
    assert_eq!(
        dbus.unit_props("web.service").await.unwrap(),
        UnitProps {
            load_state: "loaded".into(),
            fragment_path: "/run/systemd/generator/web.service".into(),
            drop_in_paths: vec![
                "/etc/systemd/system/web.service.d/override.conf".into(),
                "/usr/lib/systemd/system/service.d/10-timeout.conf".into(),
            ],
            need_daemon_reload: true,
            unit_file_state: "generated".into(),
        }
    );
    // Missing properties keep their defaults.
    assert_eq!(
        dbus.unit_props("gone.service").await.unwrap(),
        UnitProps {
            load_state: "not-found".into(),
            ..Default::default()
        }
    );
    let err = dbus.unit_props("nope.service").await.unwrap_err();
    assert!(err.0.contains("no unit nope.service"), "{err}");
}

#[tokio::test]
async fn the_fake_plays_events_props_and_images() {
    let fake = doubles::Fake::default();
    // Pushed before anyone listens: kept.
    fake.push_event(SysEvent::Reloaded);
    let mut rx = fake.events().await.expect("the fake has events");
    assert!(fake.events().await.is_none(), "the receiver is taken once");
    fake.push_event(SysEvent::JobDone("web.service".into()));
    assert_eq!(next(&mut rx).await, SysEvent::Reloaded);
    assert_eq!(next(&mut rx).await, SysEvent::JobDone("web.service".into()));

    let web = fake.unit_props("web.service").await.unwrap();
    assert_eq!(web.load_state, "loaded");
    assert_eq!(web.fragment_path, "/run/systemd/generator/web.service");
    assert_eq!(web.unit_file_state, "generated");
    let masked = UnitProps {
        load_state: "masked".into(),
        ..Default::default()
    };
    fake.set_props("web.service", masked.clone());
    assert_eq!(fake.unit_props("web.service").await.unwrap(), masked);

    assert_eq!(fake.container_image_id("web").await, None);
    fake.set_image("web", "registry.example/web:1", "3f2a");
    assert_eq!(
        fake.container_image_id("web").await,
        Some(ContainerImage {
            name: "registry.example/web:1".into(),
            id: "3f2a".into(),
        })
    );
}
