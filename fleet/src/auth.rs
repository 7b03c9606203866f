//! How the fleet's programs (fleetd, the coordinator, the CLI) log in to
//! NATS and check the server: one of a credentials file (user JWT and
//! nkey seed), an nkey seed file, or a user with a password file; and
//! for TLS, the CA that signed the server's certificate and optionally a
//! client certificate. Secrets are file paths, read when connecting;
//! no secret is ever an argument or an environment value.

use std::path::PathBuf;

/// The NATS login and TLS options, the same flags for every program
/// (global, so the CLI takes them after a subcommand too).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NatsAuth {
    /// A NATS credentials file (user JWT and nkey seed).
    #[arg(long, global = true, env = "WINDLASS_NATS_CREDS", value_name = "FILE")]
    pub creds: Option<PathBuf>,
    /// A file whose first line is an nkey user seed (`SU…`); the server
    /// knows the user by its public key.
    #[arg(long, global = true, env = "WINDLASS_NATS_NKEY", value_name = "FILE")]
    pub nkey: Option<PathBuf>,
    /// A NATS user (nats-server `authorization { users }`), its password
    /// the first line of --password-file.
    #[arg(long, global = true, requires = "password_file")]
    pub user: Option<String>,
    #[arg(long, global = true, requires = "user", value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// The CA certificate (PEM) the server's TLS certificate must chain
    /// to; TLS is then required.
    #[arg(long, global = true, env = "WINDLASS_NATS_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// A client certificate (PEM) for servers that verify clients, with
    /// its key in --tls-key.
    #[arg(long, global = true, requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, global = true, requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

fn first_line(path: &PathBuf, what: &str) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or_default().trim().to_string();
    if line.is_empty() {
        return Err(format!(
            "{what} {}: the first line is empty",
            path.display()
        ));
    }
    Ok(line)
}

impl NatsAuth {
    /// The connect options these settings make. Errors name the file and
    /// what is wrong with it, never a secret's value.
    pub async fn options(&self) -> Result<async_nats::ConnectOptions, String> {
        // rustls picks its crypto provider by its crate features; with
        // windlass-net's HTTP client beside async-nats both providers are
        // built in, and rustls then panics at the first TLS handshake
        // (found by the TLS test). The process uses ring, as async-nats
        // is built to; a provider installed before is kept.
        let _ = async_nats::rustls::crypto::ring::default_provider().install_default();
        let logins = [
            self.creds.is_some(),
            self.nkey.is_some(),
            self.user.is_some() || self.password_file.is_some(),
        ];
        if logins.iter().filter(|x| **x).count() > 1 {
            return Err(
                "give one NATS login: --creds, --nkey, or --user with --password-file".into(),
            );
        }
        let mut opts = match (&self.creds, &self.nkey, &self.user, &self.password_file) {
            (Some(c), ..) => async_nats::ConnectOptions::with_credentials_file(c.clone())
                .await
                .map_err(|e| format!("credentials file {}: {e}", c.display()))?,
            (None, Some(k), ..) => {
                let seed = first_line(k, "nkey seed file")?;
                if nkeys::KeyPair::from_seed(&seed).is_err() {
                    return Err(format!(
                        "nkey seed file {}: the first line is not an nkey seed",
                        k.display()
                    ));
                }
                async_nats::ConnectOptions::with_nkey(seed)
            }
            (None, None, Some(u), Some(f)) => async_nats::ConnectOptions::new()
                .user_and_password(u.clone(), first_line(f, "password file")?),
            (None, None, None, None) => async_nats::ConnectOptions::new(),
            _ => {
                return Err("a NATS user needs a password file, and a password file a user".into());
            }
        };
        if let Some(ca) = &self.ca {
            std::fs::metadata(ca).map_err(|e| format!("CA file {}: {e}", ca.display()))?;
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => {
                for f in [c, k] {
                    std::fs::metadata(f).map_err(|e| format!("TLS file {}: {e}", f.display()))?;
                }
                opts = opts
                    .add_client_certificate(c.clone(), k.clone())
                    .require_tls(true);
            }
            (None, None) => {}
            _ => {
                return Err("a client certificate needs its key, and a key its certificate".into());
            }
        }
        Ok(opts)
    }
}
