//! `vista index` and `vista search`: search vectors of a folder of images in one file, and the images
//! that best match a text.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::engine::{tasks_of, EngineArgs};
use vista::pipeline::decode::ANALYZE_V4;
use vista::pipeline::vectors::{IMAGE_WORDS, VECTOR_TASKS};
use vista::pipeline::Pipeline;
use vista::search_index::{IndexedImage, SearchIndex, IMAGE_EXTENSIONS};

#[derive(Args)]
pub struct IndexArgs {
    /// Folder of images (searched recursively).
    pub dir: PathBuf,
    /// The index file; images already in it and unchanged are not embedded again.
    #[arg(long, default_value = "vista-index.json")]
    pub index: PathBuf,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Args)]
pub struct SearchArgs {
    /// What to look for, e.g. "un perro en la playa".
    pub query: String,
    #[arg(long, default_value = "vista-index.json")]
    pub index: PathBuf,
    /// How many images to list.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    #[command(flatten)]
    pub engine: EngineArgs,
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
pub fn index_images(args: IndexArgs) -> Result<ExitCode> {
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
                    let _working = vista::cpu_budget::budget().working();
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
pub fn search_images(args: SearchArgs) -> Result<ExitCode> {
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
