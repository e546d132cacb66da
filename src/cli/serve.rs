//! `vista serve`: the HTTP API, with its keys, operation store, limits and optional TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::container::ContainerSettings;
use super::engine::EngineArgs;
use vista::custom::service::{Customization, Settings as CustomSettings};
use vista::custom::sources::Sources;
use vista::fetch::UrlFetcher;
use vista::http::auth::{ApiKeys, Credentials};
use vista::http::aws::sigv4::AwsCredentials;
use vista::http::serve::{serve as serve_connections, Timeouts};
use vista::http::token::{TokenConfig, TokenVerifier, AZURE_AUDIENCE};
use vista::http::{router, AppState, SurfaceAuth};
use vista::pipeline::workers::WorkerPool;
use vista::read_jobs::{BacklogLimits, ReadJobs};
use vista::store::{self, OperationStore, Vault};

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Address to listen on.
    #[arg(long, env = "VISTA_ADDR", default_value = "127.0.0.1:5000")]
    pub addr: SocketAddr,
    /// File with API keys, one per line (`#` starts a comment). Keys also come from VISTA_API_KEYS (comma-separated).
    #[arg(long, env = "VISTA_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,
    /// Serve without API keys or tokens. Only for trusted networks.
    #[arg(long)]
    pub no_auth: bool,
    #[command(flatten)]
    pub tokens: TokenArgs,
    #[command(flatten)]
    pub clouds: CloudArgs,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); without it vista speaks plain HTTP,
    /// for a TLS proxy in front or a trusted network.
    #[arg(long, env = "VISTA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "VISTA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Accepted requests that may wait for a worker; beyond that the server answers 429.
    #[arg(long, env = "VISTA_QUEUE", default_value_t = 32)]
    pub queue: usize,
    #[command(flatten)]
    pub store: StoreArgs,
    /// How long a Read operation's result is kept, in seconds (then it is deleted).
    #[arg(long, env = "VISTA_READ_TTL", default_value_t = 24 * 60 * 60)]
    pub read_ttl: u64,
    /// Seconds a client has to send a request's headers; also the longest a kept-alive connection may
    /// sit idle between requests.
    #[arg(long, env = "VISTA_HEADER_TIMEOUT", default_value_t = 20)]
    pub header_timeout: u64,
    /// Seconds a client has to send a request's body, counted from its headers (50 MB at 0.5 MB/s).
    #[arg(long, env = "VISTA_BODY_TIMEOUT", default_value_t = 120)]
    pub body_timeout: u64,
    /// Read documents that may wait to be read; beyond this the Read API answers 429.
    #[arg(long, env = "VISTA_READ_QUEUE", default_value_t = 100)]
    pub read_queue: usize,
    /// Megabytes of Read documents that may wait to be read; beyond this the Read API answers 429.
    #[arg(long, env = "VISTA_READ_QUEUE_MB", default_value_t = 1024)]
    pub read_queue_mb: usize,
    /// This replica's name among those sharing a Redis: after a restart it resumes the operations it
    /// accepted. Default: a name made once and kept in the data directory.
    #[arg(long, env = "VISTA_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// A folder of datasets on this machine: annotation files registered by a path relative to it
    /// (and their images, named by `file_name` next to them) are read from here.
    #[arg(long, env = "VISTA_DATASETS_DIR")]
    pub datasets_dir: Option<PathBuf>,
    /// Images whose features one training computes at once, each a thread beside the analyze
    /// workers (so training takes at most this share of the cores); 0: this replica does not train
    /// (another replica on the same Redis does).
    #[arg(long, env = "VISTA_TRAINING_THREADS", default_value_t = 1)]
    pub training_threads: usize,
    /// Do not serve the browser studio at /studio.
    #[arg(long, env = "VISTA_NO_STUDIO")]
    pub no_studio: bool,
    /// Minutes one Read document may be read before its operation fails (none: no limit).
    #[arg(long, env = "VISTA_READ_MAX_MINUTES")]
    pub read_max_minutes: Option<f64>,
    /// Microsoft Read container settings (`Eula=accept Billing=... ApiKey=...`, also read from the
    /// environment under those names): ApiKey is one more accepted key, StorageTimeToLiveInMinutes
    /// sets --read-ttl, Task:MaxRunningTimeSpanInMinutes sets --read-max-minutes; Billing is ignored.
    #[arg(value_name = "SETTING=VALUE")]
    pub container_settings: Vec<String>,
}

/// The Azure keys: VISTA_API_KEYS, --keys-file, and the container's ApiKey.
fn read_keys(args: &ServeArgs, container_key: Option<String>) -> Result<ApiKeys> {
    let mut keys = secrets_from("VISTA_API_KEYS", args.keys_file.as_ref(), ',')?;
    keys.extend(container_key);
    Ok(ApiKeys::new(keys))
}

/// Where customer data is kept: shared by `serve`, `train` and `analyze --model`.
#[derive(Args)]
pub struct StoreArgs {
    /// Where Read operations, datasets and trained models are kept (an encrypted embedded store, and
    /// its key file unless VISTA_STORE_KEY gives the key).
    #[arg(long, env = "VISTA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Keep Read operations and customization data in this Redis (redis://host:port/db) instead of
    /// the data directory, so that replicas behind one load balancer share them; every replica
    /// needs the same VISTA_STORE_KEY.
    #[arg(long, env = "VISTA_REDIS_URL")]
    pub redis_url: Option<String>,
}

impl StoreArgs {
    /// The sealed store of all customer data, with the key from VISTA_STORE_KEY or (embedded only)
    /// the key file; the key is checked before anything is read.
    pub fn open(&self) -> Result<Arc<Vault>> {
        open_vault(&self.data_dir, self.redis_url.as_deref())
    }
}

fn open_vault(data_dir: &Path, redis_url: Option<&str>) -> Result<Arc<Vault>> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    // Only the server's user may list or read it (its values are encrypted besides).
    #[cfg(unix)]
    std::fs::set_permissions(
        data_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .with_context(|| format!("restricting {}", data_dir.display()))?;
    let key = match (std::env::var("VISTA_STORE_KEY"), redis_url) {
        (Ok(hex), _) => store::parse_key(hex.trim())?,
        (Err(_), None) => store::key_file(&data_dir.join("store.key"))?,
        (Err(_), Some(_)) => bail!(
            "--redis-url needs VISTA_STORE_KEY (64 hex digits), the same on every replica, so that \
             each can open what another stored"
        ),
    };
    let backend: Box<dyn store::Backend> = match redis_url {
        Some(url) => Box::new(store::Redis::connect(url)?),
        None => Box::new(store::Embedded::open(&data_dir.join("operations.redb"))?),
    };
    let vault = Vault::new(backend, key);
    vault.verify_key()?;
    Ok(Arc::new(vault))
}

/// This replica's name: the flag, or a name made once and kept in the data directory.
fn replica_name(engine: &ServeArgs) -> Result<String> {
    match &engine.replica_id {
        Some(name) => Ok(name.clone()),
        None => store::replica_file(&engine.store.data_dir.join("replica.id")),
    }
}

/// The Google Cloud Vision and AWS Rekognition surfaces: their own credentials and settings.
#[derive(Args)]
pub struct CloudArgs {
    /// File of Google API keys, one per line (`#` starts a comment); keys also come from
    /// VISTA_GOOGLE_API_KEYS (comma-separated). Accepted as `x-goog-api-key`, `?key=` or a bearer token.
    #[arg(long, env = "VISTA_GOOGLE_KEYS_FILE")]
    pub google_keys_file: Option<PathBuf>,
    /// Map `gs://BUCKET/PATH` (image URIs, asynchronous inputs and outputs) to DIR/BUCKET/PATH.
    #[arg(long, env = "VISTA_GOOGLE_STORAGE_ROOT", value_name = "DIR")]
    pub google_storage_root: Option<PathBuf>,
    /// The four scores dividing Google's Likelihoods VERY_UNLIKELY | UNLIKELY | POSSIBLE | LIKELY |
    /// VERY_LIKELY.
    #[arg(long, env = "VISTA_GOOGLE_LIKELIHOODS", value_delimiter = ',', num_args = 4, default_values_t = vista::http::google::render::LIKELIHOOD_LIMITS)]
    pub google_likelihoods: Vec<f32>,
    /// File of AWS credentials, `ACCESS_KEY_ID:SECRET` per line; pairs also come from
    /// VISTA_AWS_CREDENTIALS (comma-separated). Clients sign with SigV4 using them.
    #[arg(long, env = "VISTA_AWS_CREDENTIALS_FILE")]
    pub aws_credentials_file: Option<PathBuf>,
    /// DetectModerationLabels covers nudity and suggestive content only; `refuse` answers it with
    /// AccessDeniedException instead.
    #[arg(long, env = "VISTA_AWS_MODERATION", default_value = "serve", value_parser = ["serve", "refuse"])]
    pub aws_moderation: String,
    /// Accept every image format vista decodes on the AWS surface, not only PNG and JPEG.
    #[arg(long, env = "VISTA_AWS_LENIENT_FORMATS")]
    pub aws_lenient_formats: bool,
}

/// Lines of a file with `#` comments removed, plus the comma-separated values of an environment variable.
fn secrets_from(variable: &str, file: Option<&PathBuf>, separator: char) -> Result<Vec<String>> {
    let mut values: Vec<String> = std::env::var(variable)
        .unwrap_or_default()
        .split(separator)
        .map(str::to_string)
        .collect();
    if let Some(path) = file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        values.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or("").to_string()),
        );
    }
    Ok(values
        .into_iter()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl CloudArgs {
    fn google_keys(&self) -> Result<ApiKeys> {
        Ok(ApiKeys::new(secrets_from(
            "VISTA_GOOGLE_API_KEYS",
            self.google_keys_file.as_ref(),
            ',',
        )?))
    }

    fn aws_credentials(&self) -> Result<AwsCredentials> {
        let pairs = secrets_from(
            "VISTA_AWS_CREDENTIALS",
            self.aws_credentials_file.as_ref(),
            ',',
        )?;
        AwsCredentials::parse(&pairs.join(",")).map_err(anyhow::Error::msg)
    }

    fn google(&self) -> Result<vista::http::google::Settings> {
        let limits: [f32; 4] = self
            .google_likelihoods
            .clone()
            .try_into()
            .map_err(|_| anyhow::anyhow!("--google-likelihoods takes four scores"))?;
        if !limits.windows(2).all(|w| w[0] <= w[1]) {
            bail!("--google-likelihoods must be in increasing order");
        }
        Ok(vista::http::google::Settings {
            likelihood: limits,
            storage_root: self.google_storage_root.clone(),
        })
    }
}

/// Bearer tokens (JWTs from Entra ID or another OIDC issuer), checked offline against a JWKS file.
#[derive(Args)]
pub struct TokenArgs {
    /// Accept bearer tokens from this issuer (`iss`), e.g.
    /// https://login.microsoftonline.com/<tenant>/v2.0; repeatable. Needs --token-jwks.
    #[arg(
        long = "token-issuer",
        env = "VISTA_TOKEN_ISSUERS",
        value_delimiter = ',',
        requires = "jwks"
    )]
    pub issuers: Vec<String>,
    /// The issuers' public keys: a JWKS file downloaded from their `jwks_uri` and refreshed by the
    /// operator; reloaded on change and on SIGHUP, never fetched by vista.
    #[arg(long = "token-jwks", env = "VISTA_TOKEN_JWKS", requires = "issuers")]
    pub jwks: Option<PathBuf>,
    /// The audience (`aud`) tokens must be issued for.
    #[arg(long = "token-audience", env = "VISTA_TOKEN_AUDIENCE", default_value = AZURE_AUDIENCE)]
    pub audience: String,
    /// A role (`roles`) or scope (`scp`) a token must carry.
    #[arg(long = "token-required-role", env = "VISTA_TOKEN_REQUIRED_ROLE")]
    pub required_role: Option<String>,
    /// Seconds of clock skew allowed on a token's `exp` and `nbf`.
    #[arg(
        long = "token-leeway",
        env = "VISTA_TOKEN_LEEWAY",
        default_value_t = 60
    )]
    pub leeway: u64,
}

impl TokenArgs {
    /// The verifier, when tokens are configured.
    fn verifier(&self) -> Result<Option<Arc<TokenVerifier>>> {
        let Some(jwks) = &self.jwks else {
            return Ok(None);
        };
        let config = TokenConfig {
            issuers: self.issuers.clone(),
            audience: self.audience.clone(),
            jwks: jwks.clone(),
            leeway: Duration::from_secs(self.leeway),
            required_role: self.required_role.clone(),
        };
        Ok(Some(Arc::new(TokenVerifier::load(config)?)))
    }
}

pub fn serve(mut args: ServeArgs) -> Result<ExitCode> {
    let container =
        ContainerSettings::read(&args.container_settings, |name| std::env::var(name).ok())?;
    if let Some(ttl) = container.ttl {
        args.read_ttl = ttl.as_secs().max(1);
    }
    let max_running = container.max_running.or(args
        .read_max_minutes
        .filter(|m| m.is_finite() && *m > 0.0)
        .map(|m| Duration::from_secs_f64(m * 60.0)));
    let keys = read_keys(&args, container.api_key)?;
    let tokens = args.tokens.verifier()?;
    let google_keys = args.clouds.google_keys()?;
    let aws_credentials = args.clouds.aws_credentials()?;
    let nothing_configured =
        keys.is_empty() && tokens.is_none() && google_keys.is_empty() && aws_credentials.is_empty();
    let auth = match (nothing_configured, args.no_auth) {
        (true, false) => bail!("no API key, token issuer, Google key or AWS credential is configured: set VISTA_API_KEYS, --keys-file, --token-issuer with --token-jwks, VISTA_GOOGLE_API_KEYS or VISTA_AWS_CREDENTIALS, or pass --no-auth explicitly"),
        (_, true) => {
            tracing::warn!("authentication is OFF (--no-auth): anyone who can reach this port can use the API");
            None
        }
        (false, false) => Some(SurfaceAuth {
            azure: Credentials {
                keys,
                tokens: tokens.clone(),
            },
            google: google_keys,
        }),
    };
    let aws = vista::http::aws::Settings {
        credentials: auth.is_some().then_some(aws_credentials),
        refuse_moderation: args.clouds.aws_moderation == "refuse",
        lenient_formats: args.clouds.aws_lenient_formats,
    };
    let pipeline = Arc::new(args.engine.pipeline(None)?);
    let workers = WorkerPool::new(args.engine.workers(), args.queue);
    let fetcher = UrlFetcher::new(args.engine.allow_private_urls)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let vault = args.store.open()?;
    let replica = replica_name(&args)?;
    let reads = {
        let _inside = runtime.enter();
        let limits = BacklogLimits {
            documents: args.read_queue.max(1),
            bytes: args.read_queue_mb.saturating_mul(1024 * 1024),
        };
        ReadJobs::start(
            OperationStore::new(
                Arc::clone(&vault),
                Duration::from_secs(args.read_ttl),
                &replica,
            ),
            Arc::clone(&pipeline),
            limits,
            max_running,
        )
    };
    let custom = {
        let _inside = runtime.enter();
        Customization::start(
            Arc::clone(&vault),
            &replica,
            Arc::clone(&pipeline),
            Sources {
                fetcher: Arc::new(UrlFetcher::new(args.engine.allow_private_urls)?),
                datasets_dir: args.datasets_dir.clone(),
            },
            CustomSettings {
                training_threads: args.training_threads,
                resume: true,
                run_ttl: Duration::from_secs(args.read_ttl),
                shared: args.store.redis_url.is_some(),
            },
        )
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(certificate), Some(key)) => Some(vista::http::tls::acceptor(certificate, key)?),
        _ => None,
    };
    let state = Arc::new(AppState {
        pipeline,
        workers,
        fetcher,
        reads,
        custom,
        tokens: tokens.clone(),
        scheme: if tls.is_some() { "https" } else { "http" },
        google: args.clouds.google()?,
        aws,
        deepstack_keys: auth.as_ref().map(|a| a.azure.keys.clone()),
        studio: !args.no_studio,
    });
    let app = router(state, auth);
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("binding {}", args.addr))?;
        if let Some(tokens) = tokens {
            tokens.watch();
        }
        tracing::info!(addr = %args.addr, tls = tls.is_some(), "vista is listening");
        let timeouts = Timeouts {
            header: Duration::from_secs(args.header_timeout.max(1)),
            body: Duration::from_secs(args.body_timeout.max(1)),
        };
        match tls {
            Some(acceptor) => {
                let listener = vista::http::tls::TlsListener::new(listener, acceptor)?;
                serve_connections(listener, app, timeouts, shutdown_signal()).await
            }
            None => serve_connections(listener, app, timeouts, shutdown_signal()).await,
        }
        tracing::info!("in-flight requests finished; bye");
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = interrupt => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
}
