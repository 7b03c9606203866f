//! fleetd's seam to windlassd: [`AgentApi`] is everything fleetd asks of
//! the host agent, [`DbusAgent`] implements it over D-Bus with zbus, as
//! windlassctl does (tests and benches implement it in memory).
//!
//! What the agent may not offer yet, and how this layer copes:
//! - the generation `digest` of `ListGenerations` (fleet A3): read when
//!   present, else `""` — such a host can only be ordered by generation
//!   number, which fleetd does not do, so its switch orders are refused;
//! - `Status.operation` / `Status.last_operation` (A4): read when present;
//!   without them the operation in flight is read from its object
//!   (`Kind`, `Phase`, `Request`) and there is no last operation;
//! - `Sweep`'s `release`/`confirm` options (A5): an agent without them
//!   refuses the call as an unknown option, which becomes
//!   [`AgentError::Unsupported`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use windlass_contract::GenerationId;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, Value};

use crate::model::{AppReport, CurrentOperation, DriftSummary, GenerationRef, LastOperation, OpId};

/// windlassd's well-known name on its bus.
pub const AGENT_NAME: &str = "io.windlass.Agent1";

/// Where the agent's operation objects live.
pub const OPERATION_PREFIX: &str = "/io/windlass/Agent1/operation";

#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    /// The agent refused the call (busy, not found, invalid argument,
    /// access denied, verification failed): nothing was started.
    #[error("refused: {0}")]
    Refused(String),
    /// Another operation is in the agent's slot (a timer sweep, a local
    /// switch): nothing was started; asking again later may work.
    #[error("busy: {0}")]
    Busy(String),
    /// `NotFound` from the agent (an unknown request or operation).
    #[error("not found: {0}")]
    NotFound(String),
    /// The agent lacks what fleetd needs (an older windlassd).
    #[error("unsupported by this windlassd: {0}")]
    Unsupported(String),
    /// Not asked: a later order (`cancel`, `rollback`) took the order's
    /// place before its operation started (fleetd's own, never the
    /// agent's).
    #[error("superseded by order {0}")]
    Superseded(String),
    /// The agent could not be asked (not on the bus, connection lost) or
    /// failed otherwise.
    #[error("{0}")]
    Failed(String),
}

impl AgentError {
    /// Whether nothing was started for sure (a result may say `refused`).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            AgentError::Refused(_)
                | AgentError::Busy(_)
                | AgentError::NotFound(_)
                | AgentError::Unsupported(_)
        )
    }
}

pub type AgentResult<T> = Result<T, AgentError>;

/// One generation on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub id: GenerationId,
    pub selected: bool,
    pub running: bool,
    /// Fleet-wide identity; `""` when the agent does not say (before A3).
    pub digest: String,
}

/// What a heartbeat needs of the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentStatus {
    pub version: String,
    pub platform: String,
    pub selected: Option<GenerationRef>,
    pub running: Option<GenerationRef>,
    /// An operation is in the agent's slot.
    pub busy: bool,
    pub operation: Option<CurrentOperation>,
    pub last: Option<LastOperation>,
    /// app → canonical release.
    pub releases: BTreeMap<String, String>,
    /// app → its image and release policy.
    pub apps: BTreeMap<String, AppReport>,
    pub drift: DriftSummary,
}

/// How a switch commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// Once the agent's health gate passes.
    Auto,
    /// Only on `Confirm` (the coordinator's, after observing the host).
    Manual,
}

impl Confirm {
    pub fn as_str(self) -> &'static str {
        match self {
            Confirm::Auto => "auto",
            Confirm::Manual => "manual",
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpEnd {
    /// The agent's result: committed, rolled-back, failed, canceled, skipped.
    pub result: String,
    pub error: String,
}

/// What following an operation yields: its phases in order, then its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpEvent {
    Phase { phase: String, detail: String },
    Finished(OpEnd),
}

pub type OpEvents = Pin<Box<dyn Stream<Item = OpEvent> + Send>>;

/// Something on the host changed that a heartbeat shows (a generation, an
/// operation started, a phase, drift).
pub type Changes = Pin<Box<dyn Stream<Item = ()> + Send>>;

/// Everything fleetd asks of windlassd. Request ids make the starting
/// calls idempotent: a call with a request id the agent knows starts
/// nothing and answers the operation started for it.
pub trait AgentApi: Send + Sync + 'static {
    fn status(&self) -> impl Future<Output = AgentResult<AgentStatus>> + Send;
    fn generations(&self) -> impl Future<Output = AgentResult<Vec<Generation>>> + Send;
    /// Stages the tree beneath `dir` (native); the new generation.
    fn stage(&self, dir: &Path) -> impl Future<Output = AgentResult<GenerationId>> + Send;
    fn switch(
        &self,
        generation: GenerationId,
        confirm: Confirm,
        deadline_sec: Option<u64>,
        request: &str,
    ) -> impl Future<Output = AgentResult<OpId>> + Send;
    fn confirm(&self, op: &OpId) -> impl Future<Output = AgentResult<()>> + Send;
    fn cancel(&self, op: &OpId) -> impl Future<Output = AgentResult<()>> + Send;
    fn rollback(
        &self,
        to: GenerationId,
        request: &str,
    ) -> impl Future<Output = AgentResult<OpId>> + Send;
    fn sweep(
        &self,
        app: &str,
        release: &str,
        confirm: Confirm,
        deadline_sec: Option<u64>,
        request: &str,
    ) -> impl Future<Output = AgentResult<OpId>> + Send;
    fn cutover(
        &self,
        target: &str,
        version: &str,
        url: &str,
        sha256: &str,
        deadline_sec: Option<u64>,
        request: &str,
    ) -> impl Future<Output = AgentResult<OpId>> + Send;
    /// The operation started for `request`, finished or not; `None` when
    /// the agent knows none.
    fn operation_by_request(
        &self,
        request: &str,
    ) -> impl Future<Output = AgentResult<Option<OpId>>> + Send;
    /// The operation's phases from now on (starting with the current
    /// one), then its end; an operation already over yields only its end.
    fn follow(&self, op: &OpId) -> impl Future<Output = AgentResult<OpEvents>> + Send;
    /// Up to the last `max` journal lines the operation kept (empty when
    /// none or not allowed).
    fn journal(&self, op: &OpId, max: usize) -> impl Future<Output = Vec<String>> + Send;
    /// Host changes a heartbeat should report at once, windlassd
    /// appearing on or leaving its bus included. An error means the
    /// agent's bus cannot be reached (fleetd tries again, backing off);
    /// the stream ends when the connection to it breaks.
    fn changes(&self) -> impl Future<Output = AgentResult<Changes>> + Send;
}

// ---------------------------------------------------------------------
// D-Bus

#[zbus::proxy(
    interface = "io.windlass.Agent1",
    default_service = "io.windlass.Agent1",
    default_path = "/io/windlass/Agent1"
)]
trait Agent1 {
    fn status(&self) -> zbus::Result<String>;
    fn list_generations(&self) -> zbus::Result<String>;
    fn stage_fd(&self, dir: zbus::zvariant::Fd<'_>) -> zbus::Result<String>;
    fn switch(
        &self,
        generation: &str,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<OwnedObjectPath>;
    fn rollback(
        &self,
        generation: &str,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<OwnedObjectPath>;
    fn sweep(&self, options: HashMap<&str, Value<'_>>) -> zbus::Result<OwnedObjectPath>;
    fn cutover(
        &self,
        target: &str,
        version: &str,
        url: &str,
        sha256: &str,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<OwnedObjectPath>;
    fn confirm(&self, operation: &ObjectPath<'_>) -> zbus::Result<()>;
    fn cancel(&self, operation: &ObjectPath<'_>) -> zbus::Result<()>;
    fn operation_by_request(&self, request: &str) -> zbus::Result<OwnedObjectPath>;
}

#[zbus::proxy(
    interface = "io.windlass.Operation1",
    default_service = "io.windlass.Agent1"
)]
trait Operation1 {
    #[zbus(property)]
    fn kind(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn phase(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn error(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn request(&self) -> zbus::Result<String>;
    fn journal(&self) -> zbus::Result<Vec<String>>;
}

/// windlassd over D-Bus. The connection is made on first use and made
/// again after it broke (the bus restarted): a call that fails on it is
/// an [`AgentError::Failed`], which fleetd retries.
#[derive(Clone)]
pub struct DbusAgent {
    bus: Arc<str>,
    conn: Arc<Mutex<Option<zbus::Connection>>>,
    connecting: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for DbusAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbusAgent").finish_non_exhaustive()
    }
}

fn op_path(op: &str) -> AgentResult<OwnedObjectPath> {
    OwnedObjectPath::try_from(format!("{OPERATION_PREFIX}/{op}"))
        .map_err(|e| AgentError::Failed(format!("{op}: not an operation id: {e}")))
}

fn op_id(path: &OwnedObjectPath) -> AgentResult<OpId> {
    path.as_str()
        .strip_prefix(OPERATION_PREFIX)
        .and_then(|s| s.strip_prefix('/'))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| AgentError::Failed(format!("{path}: not an operation path")))
}

fn error(e: zbus::Error) -> AgentError {
    match &e {
        zbus::Error::MethodError(name, msg, _) => {
            let text = format!("{}: {}", name.as_str(), msg.as_deref().unwrap_or(""));
            match name.as_str() {
                "io.windlass.Error.NotFound" => AgentError::NotFound(text),
                "io.windlass.Error.NotSupported" | "org.freedesktop.DBus.Error.UnknownMethod" => {
                    AgentError::Unsupported(text)
                }
                "io.windlass.Error.InvalidArgument"
                    if msg.as_deref().unwrap_or("").contains("unknown option") =>
                {
                    AgentError::Unsupported(text)
                }
                "io.windlass.Error.Busy" => AgentError::Busy(text),
                "io.windlass.Error.AccessDenied"
                | "io.windlass.Error.InvalidArgument"
                | "io.windlass.Error.VerificationFailed"
                | "org.freedesktop.DBus.Error.AccessDenied" => AgentError::Refused(text),
                _ => AgentError::Failed(text),
            }
        }
        _ => AgentError::Failed(e.to_string()),
    }
}

/// `generations` entries as the agent writes them (`digest` since A3).
#[derive(Deserialize)]
struct GenJson {
    id: GenerationId,
    #[serde(default)]
    selected: bool,
    #[serde(default)]
    running: bool,
    #[serde(default)]
    digest: Option<String>,
}

#[derive(Deserialize)]
struct StatusJson {
    #[serde(default)]
    version: String,
    #[serde(default)]
    platform: String,
    #[serde(default)]
    selected: Option<GenerationId>,
    #[serde(default)]
    running: Option<GenerationId>,
    #[serde(default)]
    generations: Vec<GenJson>,
    #[serde(default)]
    apps: Vec<AppJson>,
    #[serde(default)]
    active_operation: Option<String>,
    #[serde(default)]
    operation: Option<OperationJson>,
    #[serde(default)]
    last_operation: Option<LastJson>,
    #[serde(default)]
    drift: Option<DriftJson>,
}

#[derive(Deserialize)]
struct AppJson {
    name: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    canonical_release: Option<String>,
    /// The app's release policy (windlassd since the fleet's release
    /// discovery).
    #[serde(default)]
    release: Option<ReleaseJson>,
}

#[derive(Deserialize)]
struct ReleaseJson {
    #[serde(default)]
    track: String,
    #[serde(default)]
    allow_prerelease: bool,
    #[serde(default)]
    constraint: Option<String>,
}

#[derive(Deserialize)]
struct OperationJson {
    id: String,
    kind: String,
    phase: String,
    #[serde(default)]
    request: Option<String>,
    #[serde(default)]
    to: Option<serde_json::Value>,
}

/// `Status.last_operation` (A4): times in seconds, `result` null for a
/// record without one.
#[derive(Deserialize)]
struct LastJson {
    id: String,
    kind: String,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    request: Option<String>,
    #[serde(default)]
    finished_at: Option<u64>,
}

impl LastJson {
    fn into_model(self) -> LastOperation {
        LastOperation {
            id: self.id,
            kind: self.kind,
            result: self.result.unwrap_or_default(),
            request: self.request.filter(|r| !r.is_empty()),
            // The fleet's records are in unix ms.
            finished_at: self.finished_at.unwrap_or(0).saturating_mul(1000),
        }
    }
}

#[derive(Deserialize)]
struct DriftJson {
    #[serde(default)]
    findings: Vec<FindingJson>,
}

#[derive(Deserialize)]
struct FindingJson {
    kind: String,
}

/// A generation reference from the agent's JSON: an id (`"7"`) or an
/// object with `generation`/`id` and `digest`.
fn gen_ref_json(
    v: &serde_json::Value,
    digests: &BTreeMap<GenerationId, String>,
) -> Option<GenerationRef> {
    let id: GenerationId = match v {
        serde_json::Value::String(_) => serde_json::from_value(v.clone()).ok()?,
        serde_json::Value::Object(o) => {
            let g = o.get("generation").or_else(|| o.get("id"))?;
            let id: GenerationId = serde_json::from_value(g.clone()).ok()?;
            if let Some(d) = o.get("digest").and_then(|d| d.as_str()) {
                return Some(GenerationRef {
                    generation: id,
                    digest: d.to_string(),
                });
            }
            id
        }
        _ => return None,
    };
    Some(GenerationRef {
        generation: id,
        digest: digests.get(&id).cloned().unwrap_or_default(),
    })
}

impl DbusAgent {
    /// `bus`: `system`, `session`, or a D-Bus address.
    /// Connects now (an error when the bus cannot be reached).
    pub async fn connect(bus: &str) -> AgentResult<Self> {
        let a = DbusAgent::new(bus);
        let _conn = a.conn().await?;
        Ok(a)
    }

    /// Connects on first use.
    pub fn new(bus: &str) -> Self {
        DbusAgent {
            bus: bus.into(),
            conn: Arc::new(Mutex::new(None)),
            connecting: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn cached(&self) -> Option<zbus::Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn conn(&self) -> AgentResult<zbus::Connection> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let bus = &*self.bus;
        let c = match bus {
            "system" => zbus::Connection::system().await,
            "session" => zbus::Connection::session().await,
            addr => match zbus::connection::Builder::address(addr) {
                Ok(b) => b.build().await,
                Err(e) => Err(e),
            },
        }
        .map_err(|e| AgentError::Failed(format!("D-Bus {bus}: {e}")))?;
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// A failed call as an error; a failure of the connection itself (not
    /// an error answered by someone) drops it, so the next call connects
    /// again.
    fn fail(&self, e: zbus::Error) -> AgentError {
        if !matches!(e, zbus::Error::MethodError(..) | zbus::Error::FDO(_)) {
            *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        error(e)
    }

    async fn agent(&self) -> AgentResult<Agent1Proxy<'static>> {
        Agent1Proxy::builder(&self.conn().await?)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(|e| self.fail(e))
    }

    async fn operation(&self, op: &str) -> AgentResult<Operation1Proxy<'static>> {
        Operation1Proxy::builder(&self.conn().await?)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .path(op_path(op)?)
            .map_err(|e| self.fail(e))?
            .build()
            .await
            .map_err(|e| self.fail(e))
    }

    async fn signals(&self, rule: zbus::MatchRule<'static>) -> AgentResult<zbus::MessageStream> {
        zbus::MessageStream::for_match_rule(rule, &self.conn().await?, Some(256))
            .await
            .map_err(|e| self.fail(e))
    }

    /// The in-flight operation from its object, for agents without
    /// `Status.operation`.
    async fn current_from_object(&self, id: &str) -> Option<CurrentOperation> {
        let p = self.operation(id).await.ok()?;
        Some(CurrentOperation {
            id: id.to_string(),
            kind: p.kind().await.ok()?,
            phase: p.phase().await.ok()?,
            request: p.request().await.ok().filter(|r| !r.is_empty()),
            to: None,
        })
    }

    async fn started(&self, r: zbus::Result<OwnedObjectPath>) -> AgentResult<OpId> {
        op_id(&r.map_err(|e| self.fail(e))?)
    }
}

fn request_opts<'a>(o: &mut HashMap<&'a str, Value<'a>>, request: &'a str) {
    o.insert("request", Value::from(request));
}

fn deadline_opts(o: &mut HashMap<&str, Value<'_>>, deadline_sec: Option<u64>) {
    if let Some(d) = deadline_sec {
        o.insert("deadline", Value::from(d));
    }
}

impl AgentApi for DbusAgent {
    async fn status(&self) -> AgentResult<AgentStatus> {
        let text = self
            .agent()
            .await?
            .status()
            .await
            .map_err(|e| self.fail(e))?;
        let s: StatusJson = serde_json::from_str(&text)
            .map_err(|e| AgentError::Failed(format!("Status: not the JSON expected: {e}")))?;
        let digests: BTreeMap<GenerationId, String> = s
            .generations
            .iter()
            .filter_map(|g| g.digest.clone().map(|d| (g.id, d)))
            .collect();
        let r = |g: Option<GenerationId>| {
            g.map(|id| GenerationRef {
                generation: id,
                digest: digests.get(&id).cloned().unwrap_or_default(),
            })
        };
        let operation = match (s.operation, &s.active_operation) {
            (Some(o), _) => Some(CurrentOperation {
                id: o.id,
                kind: o.kind,
                phase: o.phase,
                request: o.request.filter(|r| !r.is_empty()),
                to: o.to.as_ref().and_then(|v| gen_ref_json(v, &digests)),
            }),
            (None, Some(id)) => self.current_from_object(id).await,
            (None, None) => None,
        };
        let mut kinds: Vec<String> = Vec::new();
        let mut count = 0u32;
        if let Some(d) = &s.drift {
            count = d.findings.len() as u32;
            kinds = d.findings.iter().map(|f| f.kind.clone()).collect();
            kinds.sort();
            kinds.dedup();
        }
        Ok(AgentStatus {
            version: s.version,
            platform: s.platform,
            selected: r(s.selected),
            running: r(s.running),
            busy: s.active_operation.is_some() || operation.is_some(),
            operation,
            last: s.last_operation.map(LastJson::into_model),
            releases: s
                .apps
                .iter()
                .filter_map(|a| a.canonical_release.clone().map(|t| (a.name.clone(), t)))
                .collect(),
            apps: s
                .apps
                .into_iter()
                .map(|a| {
                    let r = a.release.unwrap_or(ReleaseJson {
                        track: String::new(),
                        allow_prerelease: false,
                        constraint: None,
                    });
                    let report = AppReport {
                        image: a.image,
                        track: r.track,
                        allow_prerelease: r.allow_prerelease,
                        constraint: r.constraint,
                    };
                    (a.name, report)
                })
                .collect(),
            drift: DriftSummary { count, kinds },
        })
    }

    async fn generations(&self) -> AgentResult<Vec<Generation>> {
        let text = self
            .agent()
            .await?
            .list_generations()
            .await
            .map_err(|e| self.fail(e))?;
        let gens: Vec<GenJson> = serde_json::from_str(&text).map_err(|e| {
            AgentError::Failed(format!("ListGenerations: not the JSON expected: {e}"))
        })?;
        Ok(gens
            .into_iter()
            .map(|g| Generation {
                id: g.id,
                selected: g.selected,
                running: g.running,
                digest: g.digest.unwrap_or_default(),
            })
            .collect())
    }

    async fn stage(&self, dir: &Path) -> AgentResult<GenerationId> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let d = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc_o_directory())
            .open(dir)
            .map_err(|e| AgentError::Failed(format!("{}: {e}", dir.display())))?;
        let g = self
            .agent()
            .await?
            .stage_fd(zbus::zvariant::Fd::from(&d))
            .await
            .map_err(|e| self.fail(e))?;
        g.parse()
            .map_err(|e| AgentError::Failed(format!("StageFd answered {g:?}: {e}")))
    }

    async fn switch(
        &self,
        generation: GenerationId,
        confirm: Confirm,
        deadline_sec: Option<u64>,
        request: &str,
    ) -> AgentResult<OpId> {
        let mut o = HashMap::new();
        o.insert("confirm", Value::from(confirm.as_str()));
        deadline_opts(&mut o, deadline_sec);
        request_opts(&mut o, request);
        let g = generation.to_string();
        let r = self.agent().await?.switch(&g, o).await;
        self.started(r).await
    }

    async fn confirm(&self, op: &OpId) -> AgentResult<()> {
        let p = op_path(op)?;
        self.agent()
            .await?
            .confirm(&p.as_ref())
            .await
            .map_err(|e| self.fail(e))
    }

    async fn cancel(&self, op: &OpId) -> AgentResult<()> {
        let p = op_path(op)?;
        self.agent()
            .await?
            .cancel(&p.as_ref())
            .await
            .map_err(|e| self.fail(e))
    }

    async fn rollback(&self, to: GenerationId, request: &str) -> AgentResult<OpId> {
        let mut o = HashMap::new();
        request_opts(&mut o, request);
        let g = to.to_string();
        let r = self.agent().await?.rollback(&g, o).await;
        self.started(r).await
    }

    async fn sweep(
        &self,
        app: &str,
        release: &str,
        confirm: Confirm,
        deadline_sec: Option<u64>,
        request: &str,
    ) -> AgentResult<OpId> {
        let mut o = HashMap::new();
        o.insert("app", Value::from(app));
        o.insert("release", Value::from(release));
        o.insert("confirm", Value::from(confirm.as_str()));
        deadline_opts(&mut o, deadline_sec);
        request_opts(&mut o, request);
        let r = self.agent().await?.sweep(o).await;
        match self.started(r).await {
            Err(AgentError::Unsupported(e)) => Err(AgentError::Unsupported(format!(
                "a fleet sweep needs Sweep with `release` and `confirm` (fleet A5): {e}"
            ))),
            r => r,
        }
    }

    async fn cutover(
        &self,
        target: &str,
        version: &str,
        url: &str,
        sha256: &str,
        deadline_sec: Option<u64>,
        request: &str,
    ) -> AgentResult<OpId> {
        let mut o = HashMap::new();
        deadline_opts(&mut o, deadline_sec);
        request_opts(&mut o, request);
        let r = self
            .agent()
            .await?
            .cutover(target, version, url, sha256, o)
            .await;
        self.started(r).await
    }

    async fn operation_by_request(&self, request: &str) -> AgentResult<Option<OpId>> {
        match self.agent().await?.operation_by_request(request).await {
            Ok(p) => op_id(&p).map(Some),
            Err(e) => match self.fail(e) {
                AgentError::NotFound(_) => Ok(None),
                AgentError::Unsupported(e) => Err(AgentError::Unsupported(format!(
                    "fleetd needs OperationByRequest (fleet A2): {e}"
                ))),
                e => Err(e),
            },
        }
    }

    async fn follow(&self, op: &OpId) -> AgentResult<OpEvents> {
        let path = op_path(op)?;
        // Subscribe first, then read: no phase between the two is lost.
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("io.windlass.Operation1")
            .and_then(|b| b.path(path.clone()))
            .map_err(|e| self.fail(e))?
            .build();
        let signals = self.signals(rule.to_owned()).await?;
        let proxy = self.operation(op).await?;
        let first = read_state(&proxy).await;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(follow_task(proxy, signals, first, tx));
        Ok(Box::pin(futures_util::stream::unfold(rx, |mut rx| async {
            rx.recv().await.map(|e| (e, rx))
        })))
    }

    async fn journal(&self, op: &OpId, max: usize) -> Vec<String> {
        let Ok(p) = self.operation(op).await else {
            return Vec::new();
        };
        let mut lines = p.journal().await.unwrap_or_default();
        let skip = lines.len().saturating_sub(max);
        lines.drain(..skip);
        lines
    }

    async fn changes(&self) -> AgentResult<Changes> {
        let agent = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("io.windlass.Agent1")
            .map_err(|e| self.fail(e))?
            .build();
        let ops = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("io.windlass.Operation1")
            .and_then(|b| b.path_namespace(OPERATION_PREFIX))
            .map_err(|e| self.fail(e))?
            .build();
        let props = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("org.freedesktop.DBus.Properties")
            .and_then(|b| b.path("/io/windlass/Agent1"))
            .map_err(|e| self.fail(e))?
            .build();
        // windlassd taking or losing its name (it started, stopped or
        // restarted): the bus says so, nobody has to ask.
        let owner = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender("org.freedesktop.DBus")
            .and_then(|b| b.interface("org.freedesktop.DBus"))
            .and_then(|b| b.member("NameOwnerChanged"))
            .and_then(|b| b.arg(0, AGENT_NAME))
            .map_err(|e| self.fail(e))?
            .build();
        let n = self.signals(owner).await?;
        let a = self.signals(agent).await?;
        let o = self.signals(ops).await?;
        let p = self.signals(props).await?;
        let all = futures_util::stream::select(
            futures_util::stream::select(a, o),
            futures_util::stream::select(p, n),
        );
        Ok(Box::pin(all.filter_map(|m| async move {
            let m = m.ok()?;
            let h = m.header();
            let member = h.member()?.as_str().to_string();
            // Among property changes only DriftCount (and State) matter.
            if member == "PropertiesChanged" {
                let (_, changed, _): (
                    String,
                    HashMap<String, zbus::zvariant::OwnedValue>,
                    Vec<String>,
                ) = m.body().deserialize().ok()?;
                if !changed.contains_key("DriftCount") && !changed.contains_key("State") {
                    return None;
                }
            }
            Some(())
        })))
    }
}

/// `O_DIRECTORY | O_NONBLOCK` without the libc crate.
fn libc_o_directory() -> i32 {
    // Linux values on every architecture windlass targets (asm-generic).
    #[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
    const O_DIRECTORY: i32 = 0o40000;
    #[cfg(not(any(target_arch = "aarch64", target_arch = "arm")))]
    const O_DIRECTORY: i32 = 0o200000;
    const O_NONBLOCK: i32 = 0o4000;
    O_DIRECTORY | O_NONBLOCK
}

/// The operation's phase and (when over) its end, from its properties.
async fn read_state(p: &Operation1Proxy<'static>) -> Option<(String, Option<OpEnd>)> {
    let phase = p.phase().await.ok()?;
    let result = p.result().await.ok()?;
    let end = if result.is_empty() {
        None
    } else {
        Some(OpEnd {
            result,
            error: p.error().await.unwrap_or_default(),
        })
    };
    Some((phase, end))
}

/// Forwards an operation's signals; reads its properties again every
/// 5 s as a safety net (a lost signal, windlassd restarted), and stops at
/// its end.
async fn follow_task(
    proxy: Operation1Proxy<'static>,
    mut signals: zbus::MessageStream,
    first: Option<(String, Option<OpEnd>)>,
    tx: tokio::sync::mpsc::Sender<OpEvent>,
) {
    let mut last_phase = String::new();
    if let Some((phase, end)) = first {
        if let Some(end) = end {
            let _ = tx.send(OpEvent::Finished(end)).await;
            return;
        }
        last_phase = phase.clone();
        let _ = tx
            .send(OpEvent::Phase {
                phase,
                detail: String::new(),
            })
            .await;
    }
    loop {
        tokio::select! {
            biased;
            m = signals.next() => {
                let m = match m {
                    Some(Ok(m)) => m,
                    Some(Err(_)) => continue,
                    // The connection is gone: end here; the caller
                    // follows again (on a new connection).
                    None => return,
                };
                let h = m.header();
                match h.member().map(|x| x.as_str()) {
                    Some("PhaseChanged") => {
                        if let Ok((phase, detail)) = m.body().deserialize::<(String, String)>() {
                            last_phase = phase.clone();
                            if tx.send(OpEvent::Phase { phase, detail }).await.is_err() {
                                return;
                            }
                        }
                    }
                    Some("Finished") => {
                        if let Ok((result, error)) = m.body().deserialize::<(String, String)>() {
                            let _ = tx.send(OpEvent::Finished(OpEnd { result, error })).await;
                            return;
                        }
                    }
                    _ => {}
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(5)) => {
                match read_state(&proxy).await {
                    Some((_, Some(end))) => {
                        let _ = tx.send(OpEvent::Finished(end)).await;
                        return;
                    }
                    Some((phase, None)) if phase != last_phase => {
                        last_phase = phase.clone();
                        if tx.send(OpEvent::Phase { phase, detail: String::new() }).await.is_err() {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_paths_round_trip() {
        let p = op_path("001750412346x000").unwrap();
        assert_eq!(p.as_str(), "/io/windlass/Agent1/operation/001750412346x000");
        assert_eq!(op_id(&p).unwrap(), "001750412346x000");
        assert!(op_id(&OwnedObjectPath::try_from("/io/windlass/Agent1").unwrap()).is_err());
    }

    #[test]
    fn status_json_of_todays_agent_and_of_a4_parses() {
        let digests = BTreeMap::from([(GenerationId(7), "sha256:9f".to_string())]);
        assert_eq!(
            gen_ref_json(&serde_json::json!("7"), &digests),
            Some(GenerationRef {
                generation: GenerationId(7),
                digest: "sha256:9f".into()
            })
        );
        assert_eq!(
            gen_ref_json(
                &serde_json::json!({"generation": "8", "digest": "sha256:aa"}),
                &digests
            )
            .unwrap()
            .digest,
            "sha256:aa"
        );
        let s: StatusJson = serde_json::from_str(
            r#"{"version":"0.2.0","platform":"native","selected":"7","running":"7",
                "generations":[{"id":"7","selected":true,"running":true}],
                "apps":[{"name":"web","unit":"web.service","image":"x","canonical_release":"1.4.2"},
                        {"name":"db","unit":"db.service","image":"y","canonical_release":null}],
                "active_operation":null,"damaged_records":[],
                "drift":{"findings":[{"kind":"drop-in-added","app":"web"}]}}"#,
        )
        .unwrap();
        assert_eq!(s.running, Some(GenerationId(7)));
        assert_eq!(s.apps.len(), 2);
        assert_eq!(s.drift.unwrap().findings.len(), 1);
        // With A3/A4 (fleet-agent): refs, the operation and the last one.
        let s: StatusJson = serde_json::from_str(
            r#"{"version":"0.2.0","platform":"native","selected":"8","running":"7",
                "selected_ref":{"generation":"8","digest":"sha256:bb"},
                "running_ref":{"generation":"7","digest":"sha256:aa"},
                "generations":[{"id":"7","selected":false,"running":true,"digest":"sha256:aa"},
                               {"id":"8","selected":true,"running":false,"digest":"sha256:bb"}],
                "apps":[{"name":"web","unit":"web.service","image":"reg.example/web:1.4.2",
                         "canonical_release":null,
                         "release":{"track":"semver","allow_prerelease":true,"constraint":"^1"}}],
                "active_operation":"001x000",
                "operation":{"id":"001x000","kind":"switch","phase":"waiting-confirm",
                             "request":"web-142/1","from":"7","to":"8"},
                "last_operation":{"id":"000x000","kind":"sweep","result":null,"request":null,
                                  "finished_at":1750400003},
                "damaged_records":[],"drift":{"findings":[]}}"#,
        )
        .unwrap();
        let r = s.apps[0].release.as_ref().unwrap();
        assert_eq!((r.track.as_str(), r.allow_prerelease), ("semver", true));
        assert_eq!(r.constraint.as_deref(), Some("^1"));
        assert_eq!(s.apps[0].image, "reg.example/web:1.4.2");
        let op = s.operation.unwrap();
        assert_eq!(op.request.as_deref(), Some("web-142/1"));
        assert_eq!(s.generations[1].digest.as_deref(), Some("sha256:bb"));
        let last = s.last_operation.unwrap().into_model();
        assert_eq!(last.finished_at, 1_750_400_003_000);
        assert_eq!(last.result, "");
    }
}
