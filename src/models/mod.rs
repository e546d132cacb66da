//! Models: one file per model (its pre-processing, its session, its post-processing), loaded as a pack
//! from the models directory according to the manifest.

pub mod centerface;
pub mod centernet;
pub mod clip;
pub mod clip_tokenizer;
pub mod custom_head;
pub mod e5;
pub mod efficientnet;
pub mod faceres;
pub mod hierarchy;
pub mod manifest;
pub mod nsfw;
pub mod preprocess;
pub mod tesseract;
pub mod text_cls;
pub mod text_det;
pub mod text_rec;
pub mod traits;
pub mod u2net;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use self::centerface::CenterFace;
use self::centernet::CenterNet;
use self::clip::Clip;
use self::e5::E5;
use self::efficientnet::EfficientNet;
use self::faceres::FaceRes;
use self::hierarchy::Hierarchy;
use self::manifest::{sha256_file, FileState, Manifest, PackEntry};
use self::nsfw::Nsfw;
use self::tesseract::Tesseract;
use self::text_cls::TextLineClassifier;
use self::text_det::TextDetector;
use self::text_rec::TextRecognizer;
use self::traits::{
    FaceDetector, ImageClassifier, LineOrientationClassifier, LineRecognizer, ObjectDetector,
    SalienceModel, ScriptReader, TextRegionDetector,
};
use self::u2net::U2Net;
use crate::runtime::{self, SessionPool, SessionSettings};

/// How many sessions each model gets, the size of the inference thread pool they share, and the
/// threads of the wide session a heavy model (`own_thread_pool`) has besides.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub dir: PathBuf,
    pub instances: usize,
    pub threads: usize,
    pub wide_threads: usize,
    /// Load the optional age/gender model; an error if it is not installed.
    pub face_attributes: bool,
    /// Keep ONNX Runtime's memory arenas (see [`runtime::SessionSettings::arena`]).
    pub model_arena: bool,
    /// Load only the models and data of these manifest tasks (a one-shot command that needs a few);
    /// None loads everything.
    pub tasks: Option<Vec<&'static str>>,
}

impl LoadOptions {
    fn wants(&self, task: &str) -> bool {
        self.tasks
            .as_ref()
            .is_none_or(|tasks| tasks.contains(&task))
    }
}

/// One row of `vista models list` and of `/ready`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub id: String,
    pub task: String,
    pub state: ModelState,
    pub file: String,
    pub license: String,
}

/// Where a pack entry stands: on disk or not, then loaded or not. Shown as text (`/ready`, `vista
/// models list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelState {
    /// On disk with the pinned hash, not loaded (yet, or not needed by this command).
    Installed,
    Loaded,
    /// An optional model that was not asked for; not an error.
    OptionalAbsent,
    Missing,
    HashMismatch {
        actual: String,
    },
    Unreadable(String),
    /// Installed, but ONNX Runtime is not, so nothing can run.
    RuntimeMissing,
}

impl std::fmt::Display for ModelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelState::Installed => f.write_str("installed"),
            ModelState::Loaded => f.write_str("loaded"),
            ModelState::OptionalAbsent => f.write_str("not installed (optional)"),
            ModelState::Missing => f.write_str("missing (run `vista models fetch`)"),
            ModelState::HashMismatch { actual } => {
                write!(f, "hash mismatch (sha256 {actual}); not used")
            }
            ModelState::Unreadable(why) => write!(f, "unreadable: {why}"),
            ModelState::RuntimeMissing => f.write_str("runtime missing"),
        }
    }
}

impl Serialize for ModelState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Every model the server could load. A missing model leaves its slot empty, and the features that
/// need it answer with an error that says so.
#[derive(Default)]
pub struct ModelPack {
    pub detector: Option<Box<dyn ObjectDetector>>,
    pub faces: Option<Box<dyn FaceDetector>>,
    /// Age and gender of faces; optional and absent unless the deployment installs it.
    pub face_attributes: Option<FaceRes>,
    pub salience: Option<Box<dyn SalienceModel>>,
    pub nsfw: Option<Nsfw>,
    /// ImageNet-1k probabilities, the main evidence of tags, captions and categories.
    pub classifier: Option<Box<dyn ImageClassifier>>,
    pub text_detector: Option<Box<dyn TextRegionDetector>>,
    pub text_recognizer: Option<Box<dyn LineRecognizer>>,
    /// Picks out upside-down lines on a page read the other way up.
    pub text_line_classifier: Option<Box<dyn LineOrientationClassifier>>,
    /// Reads the scripts PP-OCR does not (Cyrillic, Arabic, Hangul...), with their traineddata.
    pub tesseract: Option<Box<dyn ScriptReader>>,
    /// Parents of the detector's classes for 3.2 objects (without it they have none), and the
    /// classifier's class names (tags need it).
    pub hierarchy: Option<Hierarchy>,
    /// Text to search vectors (multilingual-e5-small).
    pub text_encoder: Option<E5>,
    /// A CLIP the user brought (manifest entries `clip-visual`, `clip-textual`): it makes the search
    /// vectors and scores names zero-shot.
    pub clip: Option<Clip>,
    /// PDFium, checked against its hash; the pipeline binds it for PDF input.
    pub pdfium_library: Option<PathBuf>,
    pub status: Vec<ModelStatus>,
}

/// What no model in any registry package can do, so vista never claims it (shown by `vista models list`
/// and `/ready`).
pub const NO_MODEL: [(&str, &str); 4] = [
    ("gore", "no gore/violence classifier exists in a registry package: 3.2 adult omits isGoryContent and goreScore"),
    ("captions", "no captioning or vision-language weights: captions are sentences composed from the detected objects, people and tags, in English only"),
    ("celebrities, landmarks", "no domain models: /vision/v3.2/models lists none"),
    ("brands", "no brand detector"),
];

/// Puts a model's sessions into its slot of the pack.
type Install = fn(&mut ModelPack, SessionPool, &PackEntry) -> Result<()>;

/// The models that always load when installed: the manifest task each serves, and its slot. The first
/// usable model of a task serves it.
const SESSION_MODELS: [(&str, Install); 8] = [
    ("objects", |pack, sessions, entry| {
        pack.detector = Some(Box::new(CenterNet::new(sessions, entry)?));
        Ok(())
    }),
    ("faces", |pack, sessions, entry| {
        pack.faces = Some(Box::new(CenterFace::new(sessions, entry)?));
        Ok(())
    }),
    ("adult", |pack, sessions, entry| {
        pack.nsfw = Some(Nsfw::new(sessions, entry)?);
        Ok(())
    }),
    ("tags", |pack, sessions, entry| {
        pack.classifier = Some(Box::new(EfficientNet::new(sessions, entry)?));
        Ok(())
    }),
    ("text-detection", |pack, sessions, entry| {
        pack.text_detector = Some(Box::new(TextDetector::new(sessions, entry)?));
        Ok(())
    }),
    ("text-recognition", |pack, sessions, entry| {
        pack.text_recognizer = Some(Box::new(TextRecognizer::new(sessions, entry)?));
        Ok(())
    }),
    ("text-line-orientation", |pack, sessions, entry| {
        pack.text_line_classifier = Some(Box::new(TextLineClassifier::new(sessions, entry)?));
        Ok(())
    }),
    ("salience", |pack, sessions, entry| {
        pack.salience = Some(Box::new(U2Net::new(sessions, entry)?));
        Ok(())
    }),
];

/// The text encoder, with its centre when the pack has one made for this very model file.
fn load_e5(entry: &PackEntry, centre: Option<&PackEntry>, dir: &Path) -> Result<E5> {
    let encoder = E5::load(&entry.path(dir))?;
    let Some(centre) = centre else {
        return Ok(encoder);
    };
    let text = std::fs::read_to_string(centre.path(dir))
        .with_context(|| format!("reading {}", centre.path(dir).display()))?;
    let centre: e5::Centre = serde_json::from_str(&text).context("the e5 centre")?;
    let model = match &entry.sha256 {
        Some(pinned) => pinned.clone(),
        None => sha256_file(&entry.path(dir))?,
    };
    if centre.model_sha256 != model {
        tracing::warn!("the e5 centre was made for another e5 model; vectors are not centred");
        return Ok(encoder);
    }
    encoder.with_centre(centre)
}

/// Describes what is on disk for each entry without loading anything.
pub fn inspect(manifest: &Manifest, dir: &Path) -> Vec<ModelStatus> {
    manifest
        .entries()
        .map(|entry| {
            let state = match entry.check(dir) {
                Ok(FileState::Present) => ModelState::Installed,
                Ok(FileState::Missing) if entry.optional => ModelState::OptionalAbsent,
                Ok(FileState::Missing) => ModelState::Missing,
                Ok(FileState::HashMismatch { actual }) => ModelState::HashMismatch { actual },
                Err(e) => ModelState::Unreadable(format!("{e:#}")),
            };
            ModelStatus {
                id: entry.id.clone(),
                task: if entry.task.is_empty() {
                    "runtime".into()
                } else {
                    entry.task.clone()
                },
                state,
                file: entry.file.clone(),
                license: entry.license.clone(),
            }
        })
        .collect()
}

impl ModelPack {
    pub fn load(manifest: &Manifest, options: &LoadOptions) -> Result<Self> {
        let mut status = inspect(manifest, &options.dir);
        let usable = |id: &str| {
            status
                .iter()
                .any(|s| s.id == id && s.state == ModelState::Installed)
        };
        let mut pack = ModelPack::default();
        if !usable(&manifest.runtime.id) {
            status
                .iter_mut()
                .filter(|s| s.state == ModelState::Installed)
                .for_each(|s| s.state = ModelState::RuntimeMissing);
            pack.status = status;
            return Ok(pack);
        }
        let env = runtime::load(&manifest.runtime.path(&options.dir), options.threads)?;
        let mut loaded = vec![manifest.runtime.id.clone()];
        // The first usable model of each task serves it.
        let mut sessions_for = |task: &str| -> Result<Option<(SessionPool, &PackEntry)>> {
            let Some(entry) = manifest
                .models
                .iter()
                .find(|m| m.task == task && usable(&m.id) && options.wants(task))
            else {
                return Ok(None);
            };
            let path = entry.path(&options.dir);
            let settings = SessionSettings {
                shared_threads: options.threads,
                wide_threads: if entry.own_thread_pool {
                    options.wide_threads
                } else {
                    1
                },
                arena: options.model_arena,
            };
            let sessions = SessionPool::load(env, &entry.id, &path, options.instances, settings)?;
            loaded.push(entry.id.clone());
            Ok(Some((sessions, entry)))
        };
        for (task, install) in SESSION_MODELS {
            if let Some((sessions, entry)) = sessions_for(task)? {
                install(&mut pack, sessions, entry)?;
            }
        }
        if options.face_attributes && options.wants("face-attributes") {
            let Some((sessions, entry)) = sessions_for("face-attributes")? else {
                bail!("--face-attributes needs the optional model: run `vista models fetch --include faceres`");
            };
            pack.face_attributes = Some(FaceRes::new(sessions, entry)?);
        }
        let vocabulary = manifest
            .data_file("clip-vocabulary")
            .filter(|e| usable(&e.id))
            .map(|e| (e.path(&options.dir), e.id.clone()));
        if let (Some(visual), Some(textual)) =
            (sessions_for("clip-visual")?, sessions_for("clip-textual")?)
        {
            let Some((vocabulary, id)) = vocabulary else {
                bail!("a CLIP is configured but its BPE vocabulary (clip-bpe) is not installed: run `vista models fetch`");
            };
            let textual_file = textual.1.path(&options.dir);
            let mut clip = Clip::new(visual, textual, &vocabulary)?;
            loaded.push(id);
            if let Some(names) = manifest
                .data_file("zero-shot-names")
                .filter(|e| usable(&e.id))
            {
                let text = std::fs::read_to_string(names.path(&options.dir))?;
                let names_list = text.lines().map(str::trim).filter(|l| !l.is_empty());
                let names_list: Vec<String> = names_list.map(str::to_lowercase).collect();
                let cache = options.dir.join(format!(
                    "clip-names-{}.f32",
                    &sha256_file(&textual_file)?[..16]
                ));
                clip = clip.with_vocabulary(names_list, &cache)?;
                loaded.push(names.id.clone());
            }
            pack.clip = Some(clip);
        }
        if let Some(entry) = manifest
            .data_file("text-embedding")
            .filter(|e| usable(&e.id) && options.wants(&e.task))
        {
            let centre = manifest
                .data_file("text-embedding-centre")
                .filter(|c| usable(&c.id) && options.wants(&c.task));
            match load_e5(entry, centre, &options.dir) {
                Ok(encoder) => {
                    loaded.push(entry.id.clone());
                    if encoder.is_centred() {
                        loaded.extend(centre.map(|c| c.id.clone()));
                    }
                    pack.text_encoder = Some(encoder);
                }
                Err(e) => tracing::warn!("search vectors are not available: {e:#}"),
            }
        }
        if let Some(entry) = manifest
            .data_file("pdf")
            .filter(|e| usable(&e.id) && options.wants(&e.task))
        {
            pack.pdfium_library = Some(entry.path(&options.dir));
            loaded.push(entry.id.clone());
        }
        let libraries: Vec<&PackEntry> = manifest
            .data_files("ocr-library")
            .filter(|e| options.wants(&e.task))
            .collect();
        let languages: Vec<&PackEntry> = manifest
            .data_files("ocr-language")
            .filter(|e| usable(&e.id))
            .collect();
        if !libraries.is_empty() && libraries.iter().all(|e| usable(&e.id)) && !languages.is_empty()
        {
            let paths: Vec<PathBuf> = libraries.iter().map(|e| e.path(&options.dir)).collect();
            let tessdata = languages[0].path(&options.dir);
            let tessdata = tessdata.parent().unwrap_or(&options.dir);
            let names = languages
                .iter()
                .filter_map(|e| Path::new(&e.file).file_stem()?.to_str().map(str::to_owned))
                .collect();
            match Tesseract::load(&paths, tessdata, names) {
                Ok(tesseract) => {
                    pack.tesseract = Some(Box::new(tesseract));
                    loaded.extend(libraries.iter().chain(&languages).map(|e| e.id.clone()));
                }
                Err(e) => tracing::warn!("Tesseract is not available: {e:#}"),
            }
        }
        let hierarchy_files = (
            manifest.data_file("hypernyms"),
            manifest.data_file("hierarchy-names"),
        );
        if let (Some(wordnet), Some(wordtree)) = hierarchy_files {
            if usable(&wordnet.id) && usable(&wordtree.id) {
                let dir = &options.dir;
                let labels = pack.detector.as_ref().map_or(&[][..], |d| d.labels());
                match Hierarchy::load(&wordnet.path(dir), &wordtree.path(dir), labels) {
                    Ok(hierarchy) => {
                        pack.hierarchy = Some(hierarchy);
                        loaded.extend([wordnet.id.clone(), wordtree.id.clone()]);
                    }
                    Err(e) => tracing::warn!("the object hierarchy is not available: {e:#}"),
                }
            }
        }
        for row in status.iter_mut().filter(|s| loaded.contains(&s.id)) {
            row.state = ModelState::Loaded;
        }
        pack.status = status;
        Ok(pack)
    }
}
