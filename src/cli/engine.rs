//! What every command that runs models shares: the models directory, the engine's flags, and the
//! pipeline they build.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use vista::models::manifest::Manifest;
use vista::models::{LoadOptions, ModelPack};
use vista::pipeline::tags::TagFilter;
use vista::pipeline::{DetectionSettings, Feature, Pipeline};

#[derive(Args)]
pub struct ModelsDir {
    /// Directory holding the model pack.
    #[arg(long, env = "VISTA_MODELS", default_value = "./models")]
    pub models: PathBuf,
}

#[derive(Args)]
pub struct EngineArgs {
    #[command(flatten)]
    pub dir: ModelsDir,
    /// Inference workers (default: one per core). Each owns a session of every model.
    #[arg(long, env = "VISTA_WORKERS")]
    pub workers: Option<usize>,
    /// Threads that may run model code at once (default: the cores this process may use, after the
    /// cgroup CPU quota and affinity). A lone request's heavy models use all of them; under load
    /// each run takes one.
    #[arg(long, env = "VISTA_CORES", default_value_t = vista::cpu_budget::default_cores())]
    pub cores: usize,
    /// Threads of the inference pool that every model session shares. With 1 (the default) each
    /// worker runs its model on its own thread: the most images/s under load. With more, a lone
    /// request is faster (`--workers 1 --inference-threads <cores>` for the lowest latency), but
    /// concurrent runs contend for the pool.
    #[arg(long, env = "VISTA_INFERENCE_THREADS", default_value_t = 1)]
    pub inference_threads: usize,
    /// Objects below this confidence are not reported.
    #[arg(long, env = "VISTA_MIN_OBJECT_CONFIDENCE", default_value_t = DetectionSettings::default().min_object_confidence)]
    pub min_object_confidence: f32,
    /// Tags below this confidence are not reported.
    #[arg(long, env = "VISTA_MIN_TAG_CONFIDENCE", default_value_t = DetectionSettings::default().min_tag_confidence)]
    pub min_tag_confidence: f32,
    /// A file of tag names (one per line, `#` comments): only these are ever used in tags, objects,
    /// captions and categories.
    #[arg(long, env = "VISTA_TAG_ALLOW_LIST")]
    pub tag_allow_list: Option<PathBuf>,
    /// A file of tag names never used in tags, objects, captions and categories (applied after the
    /// allow-list).
    #[arg(long, env = "VISTA_TAG_BLOCK_LIST")]
    pub tag_block_list: Option<PathBuf>,
    /// People below this confidence are not reported.
    #[arg(long, env = "VISTA_MIN_PERSON_CONFIDENCE", default_value_t = DetectionSettings::default().min_person_confidence)]
    pub min_person_confidence: f32,
    /// Faces below this confidence are not reported.
    #[arg(long, env = "VISTA_MIN_FACE_CONFIDENCE", default_value_t = DetectionSettings::default().min_face_confidence)]
    pub min_face_confidence: f32,
    /// Adult score (Porn + Hentai) from which 3.2 reports isAdultContent.
    #[arg(long, env = "VISTA_ADULT_THRESHOLD", default_value_t = DetectionSettings::default().adult_threshold)]
    pub adult_threshold: f32,
    /// Racy score (Sexy + half the adult score) from which 3.2 reports isRacyContent.
    #[arg(long, env = "VISTA_RACY_THRESHOLD", default_value_t = DetectionSettings::default().racy_threshold)]
    pub racy_threshold: f32,
    /// Overlap above which per-class NMS drops the weaker box.
    #[arg(long, env = "VISTA_NMS_IOU", default_value_t = DetectionSettings::default().nms_iou)]
    pub nms_iou: f32,
    /// Hand each model's working memory back after every run instead of keeping it for the next (ONNX
    /// Runtime's arena): for small machines. Settled memory drops from about 1.2 GiB a worker (all
    /// features) to a few hundred MiB in all, and analyze gets about 1.5 times slower.
    #[arg(long, env = "VISTA_NO_MODEL_ARENA")]
    pub no_model_arena: bool,
    /// Decoded megapixels all requests may hold at once (images, TIFF pages, rendered PDF pages); a
    /// request waits for them in the queue, and an image larger than all of it is refused. Each
    /// megapixel costs up to about 17 MB at the peak of an analysis.
    #[arg(long, env = "VISTA_MAX_DECODE_MEGAPIXELS", default_value_t = vista::pipeline::DEFAULT_DECODE_MEGAPIXELS)]
    pub max_decode_megapixels: u64,
    /// Allow image URLs that resolve to private, loopback or link-local addresses.
    #[arg(long, env = "VISTA_ALLOW_PRIVATE_URLS")]
    pub allow_private_urls: bool,
    /// Report estimated age and gender of 3.2 faces (needs `vista models fetch --include faceres`).
    /// Off by default: Azure retired these attributes, and inferring them can harm the people pictured.
    #[arg(long, env = "VISTA_FACE_ATTRIBUTES")]
    pub face_attributes: bool,
}

impl EngineArgs {
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or(self.cores)
    }

    /// The pipeline over the pack's models of `tasks` (None: all of them).
    pub fn pipeline(&self, tasks: Option<Vec<&'static str>>) -> Result<Pipeline> {
        let (manifest, source) = Manifest::for_dir(&self.dir.models)?;
        if let Some(path) = source {
            tracing::info!(manifest = %path.display(), "using the models directory's own manifest");
        }
        vista::cpu_budget::budget().configure(self.cores);
        let options = LoadOptions {
            dir: self.dir.models.clone(),
            instances: self.workers(),
            threads: self.inference_threads,
            wide_threads: self.cores,
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

/// The manifest tasks a one-shot command needs: those of `features`, and `more`.
pub fn tasks_of(features: &[Feature], more: &[&'static str]) -> Vec<&'static str> {
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
