//! Who may change things, and read what only they may read: root, or
//! members of the agent's group (`--group`), told by the bus
//! (`GetConnectionCredentials`). Membership of that group is as good as
//! root on this host: its members can switch to units that run as root
//! and cut over to any binary whose digest they supply.

use zbus::message::Header;
use zbus::{Connection, fdo};

use super::error::Error;

/// Who may change things: root, or members of `gid`.
#[derive(Debug, Clone)]
pub struct Access {
    pub group: String,
    pub gid: Option<u32>,
}

impl Access {
    pub fn for_group(group: &str) -> Access {
        let c = std::ffi::CString::new(group).unwrap_or_default();
        // SAFETY: getgrnam with a NUL-terminated name; the result is read
        // at once and not kept.
        let gid = unsafe {
            let g = libc::getgrnam(c.as_ptr());
            if g.is_null() { None } else { Some((*g).gr_gid) }
        };
        Access {
            group: group.to_string(),
            gid,
        }
    }

    pub async fn check(
        &self,
        conn: &Connection,
        hdr: &Header<'_>,
        method: &str,
    ) -> Result<(), Error> {
        let sender = hdr
            .sender()
            .ok_or_else(|| Error::AccessDenied("no sender on the message".into()))?;
        let creds = fdo::DBusProxy::new(conn)
            .await?
            .get_connection_credentials(sender.clone().into())
            .await
            .map_err(|e| {
                Error::AccessDenied(format!("cannot read the caller's credentials: {e}"))
            })?;
        let uid = creds
            .unix_user_id()
            .ok_or_else(|| Error::AccessDenied("the bus gave no uid for the caller".into()))?;
        if uid == 0 {
            return Ok(());
        }
        let groups = creds.unix_group_ids().cloned().unwrap_or_default();
        if let Some(gid) = self.gid
            && groups.contains(&gid)
        {
            return Ok(());
        }
        tracing::warn!(uid, method, "refused a mutating call");
        Err(Error::AccessDenied(format!(
            "{method} needs root or membership in group {:?} (caller uid {uid})",
            self.group
        )))
    }
}
