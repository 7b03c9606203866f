//! The errors of the bus API (`io.windlass.Error.*`), and the one
//! translation of an operation's refusal into them.

use crate::OPERATION_PREFIX;
use crate::ops::runner::OpError;
use crate::platform::PlatformError;

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "io.windlass.Error")]
pub enum Error {
    #[zbus(error)]
    ZBus(zbus::Error),
    AccessDenied(String),
    Busy(String),
    NotFound(String),
    InvalidArgument(String),
    VerificationFailed(String),
    NotSupported(String),
    Failed(String),
}

impl From<OpError> for Error {
    fn from(e: OpError) -> Error {
        match e {
            OpError::Busy(id) => Error::Busy(format!(
                "operation {id} is in flight ({OPERATION_PREFIX}/{id})"
            )),
            OpError::NotFound(m) => Error::NotFound(m),
            OpError::InvalidArgument(m) => Error::InvalidArgument(m),
            OpError::VerificationFailed(m) => Error::VerificationFailed(m),
            OpError::Failed(m) => Error::Failed(m),
            OpError::Recovering => Error::Busy(format!(
                "{}; try again when it is done",
                OpError::Recovering
            )),
            // Answered with the operation by the engine; never reaches
            // the bus as an error.
            OpError::Known(id) => Error::Failed(format!(
                "request already answered by operation {id} ({OPERATION_PREFIX}/{id})"
            )),
        }
    }
}

impl From<PlatformError> for Error {
    fn from(e: PlatformError) -> Error {
        match e {
            PlatformError::NotFound(_) => Error::NotFound(e.to_string()),
            PlatformError::Invalid(m) => Error::InvalidArgument(m),
            PlatformError::Failed(m) => Error::Failed(m),
        }
    }
}
