//! The Scene: one decoded image and every intermediate that more than one feature uses (detections,
//! faces, the salience map, the classifier's probabilities, the text regions and text presence, the
//! statistics grid, the fused names), each computed at most once, on first ask. Features take
//! `&Scene` and ask for what they need: a request for tags, a caption and objects runs the detector
//! once, and one for colour alone never runs it. Only [`Scene::prefetch`] lists which features
//! always ask for the small models' results (text detection's among them on a small image), to run
//! those side by side on a lone request; the list is a schedule, so a wrong entry costs time, never
//! a different answer.

use std::cell::OnceCell;
use std::sync::OnceLock;

use fast_image_resize::ResizeAlg;
use image::RgbImage;

use super::evidence::{self, Names, TextPresence};
use super::read::Readers;
use super::{image_type, Feature, Pipeline, PipelineError};
use crate::cpu_budget;
use crate::geometry::{nms_per_class, Detection, FaceDetection};
use crate::models::preprocess::resize;
use crate::models::text_det::TextRegion;
use crate::models::u2net::SalienceMap;
use crate::models::ModelPack;

pub struct Scene<'a> {
    image: &'a RgbImage,
    pipeline: &'a Pipeline,
    detections: OnceCell<Vec<Detection>>,
    faces: OnceCell<Vec<FaceDetection>>,
    salience: OnceCell<SalienceMap>,
    class_probabilities: OnceCell<Vec<f32>>,
    text_regions: OnceCell<Vec<TextRegion>>,
    text_presence: OnceCell<Option<TextPresence>>,
    statistics_grid: OnceCell<RgbImage>,
    clip_embedding: OnceCell<Option<Vec<f32>>>,
    names: OnceCell<Names>,
}

/// The cell's value, made by `make` the first time it is asked for.
fn once<T>(
    cell: &OnceCell<T>,
    make: impl FnOnce() -> Result<T, PipelineError>,
) -> Result<&T, PipelineError> {
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let value = make()?;
    Ok(cell.get_or_init(|| value))
}

/// The model in `slot`, or why the feature asking for it cannot be served (checked before a scene is
/// made, so this is a guard, not a path a request takes).
pub(super) fn required<'m, T: ?Sized>(
    model: Option<&'m T>,
    what: &str,
) -> Result<&'m T, PipelineError> {
    model.ok_or_else(|| PipelineError::Internal(anyhow::anyhow!("{what} is not loaded")))
}

/// Features that always ask for the detections, the faces or the class probabilities (tags and
/// captions ask for faces only when a person is seen, so those are left to them).
const ASK_DETECTIONS: [Feature; 9] = [
    Feature::Objects,
    Feature::People,
    Feature::SmartCrops,
    Feature::AreaOfInterest,
    Feature::Tags,
    Feature::Caption,
    Feature::DenseCaptions,
    Feature::Categories,
    Feature::Description,
];
const ASK_FACES: [Feature; 3] = [Feature::SmartCrops, Feature::AreaOfInterest, Feature::Faces];
const ASK_CLASSES: [Feature; 5] = [
    Feature::Tags,
    Feature::Caption,
    Feature::DenseCaptions,
    Feature::Categories,
    Feature::Description,
];

/// A model run a prefetch worker takes from the list; it keeps its result in a slot of its own.
type Job<'s> = Box<dyn Fn() + Send + Sync + 's>;

/// The result a prefetch job left, for the scene's cell.
type Slot<T> = OnceLock<Result<T, PipelineError>>;

/// A job that runs `make` into `slot`.
fn job<'s, T: Send + Sync>(
    slot: &'s Slot<T>,
    make: impl Fn() -> Result<T, PipelineError> + Send + Sync + 's,
) -> Job<'s> {
    Box::new(move || {
        let _ = slot.set(make());
    })
}

/// Puts what a prefetch job made into its cell; a failure (or no run) leaves the cell empty.
fn keep<T>(cell: &OnceCell<T>, slot: Slot<T>) {
    if let Some(Ok(value)) = slot.into_inner() {
        let _ = cell.set(value);
    }
}

/// Makes [`Scene::detections`] (a free function, so a prefetch thread can run it).
fn detect_objects(pipeline: &Pipeline, image: &RgbImage) -> Result<Vec<Detection>, PipelineError> {
    let Some(detector) = &pipeline.models.detector else {
        return Ok(Vec::new());
    };
    let settings = &pipeline.detection;
    let floor = settings
        .min_object_confidence
        .min(settings.min_person_confidence);
    let found = detector.detect(image, floor)?;
    Ok(nms_per_class(found, settings.nms_iou))
}

/// Makes [`Scene::faces`].
fn detect_faces(
    pipeline: &Pipeline,
    image: &RgbImage,
) -> Result<Vec<FaceDetection>, PipelineError> {
    match &pipeline.models.faces {
        Some(model) => Ok(model.detect(image, pipeline.detection.min_face_confidence)?),
        None => Ok(Vec::new()),
    }
}

/// Makes [`Scene::class_probabilities`].
fn classify(pipeline: &Pipeline, image: &RgbImage) -> Result<Vec<f32>, PipelineError> {
    let model = required(pipeline.models.classifier.as_deref(), "the classifier")?;
    Ok(model.classify(image)?)
}

/// Makes [`Scene::text_regions`].
fn detect_text(pipeline: &Pipeline, image: &RgbImage) -> Result<Vec<TextRegion>, PipelineError> {
    let detector = required(
        pipeline.models.text_detector.as_deref(),
        "the text detector",
    )?;
    Ok(detector.detect(image)?)
}

impl<'a> Scene<'a> {
    pub(super) fn new(pipeline: &'a Pipeline, image: &'a RgbImage) -> Self {
        Scene {
            image,
            pipeline,
            detections: OnceCell::new(),
            faces: OnceCell::new(),
            salience: OnceCell::new(),
            class_probabilities: OnceCell::new(),
            text_regions: OnceCell::new(),
            text_presence: OnceCell::new(),
            statistics_grid: OnceCell::new(),
            clip_embedding: OnceCell::new(),
            names: OnceCell::new(),
        }
    }

    pub fn image(&self) -> &'a RgbImage {
        self.image
    }

    pub fn dimensions(&self) -> (u32, u32) {
        self.image.dimensions()
    }

    pub fn models(&self) -> &'a ModelPack {
        &self.pipeline.models
    }

    pub fn settings(&self) -> &'a super::DetectionSettings {
        &self.pipeline.detection
    }

    pub fn tag_filter(&self) -> &'a super::tags::TagFilter {
        &self.pipeline.tag_filter
    }

    /// The detector's boxes at the lower of the object and person floors, after per-class NMS; none
    /// without a detector.
    pub fn detections(&self) -> Result<&[Detection], PipelineError> {
        once(&self.detections, || {
            detect_objects(self.pipeline, self.image)
        })
        .map(Vec::as_slice)
    }

    /// The detector's class name of a detection.
    pub fn label(&self, detection: &Detection) -> &'a str {
        self.models()
            .detector
            .as_ref()
            .map_or("", |d| d.labels()[detection.class].as_str())
    }

    pub fn is_person(&self, detection: &Detection) -> bool {
        self.label(detection) == "person"
    }

    /// The readable parents of a detector label that the deployment's tag rules allow.
    pub fn parents(&self, label: &str) -> Vec<String> {
        let parents = self.models().hierarchy.as_ref().map(|h| h.parents(label));
        parents
            .unwrap_or_default()
            .iter()
            .filter(|p| self.tag_filter().permits(p))
            .cloned()
            .collect()
    }

    /// Faces from the reported confidence up; none without the face detector.
    pub fn faces(&self) -> Result<&[FaceDetection], PipelineError> {
        once(&self.faces, || detect_faces(self.pipeline, self.image)).map(Vec::as_slice)
    }

    pub fn salience(&self) -> Result<&SalienceMap, PipelineError> {
        once(&self.salience, || {
            let model = required(self.models().salience.as_deref(), "the salience model")?;
            Ok(model.salience(self.image)?)
        })
    }

    /// The classifier's ImageNet-1k probabilities.
    pub fn class_probabilities(&self) -> Result<&[f32], PipelineError> {
        once(&self.class_probabilities, || {
            classify(self.pipeline, self.image)
        })
        .map(Vec::as_slice)
    }

    /// On a request alone on the machine, runs the small models that `features` always ask for
    /// side by side, one thread each, before the features run. Those models have no pool of their
    /// own, so one after another they would each leave the other cores idle; the heavy models
    /// (salience, and text detection on a large image) still run afterwards on every core. Under
    /// load it does nothing: each request then keeps to one thread. A failed run leaves its cell
    /// empty, for the feature to run again and report.
    pub(super) fn prefetch(&self, features: &[Feature]) {
        let workers = cpu_budget::spread_workers();
        if workers > 1 {
            self.run_side_by_side(features, workers);
        }
    }

    /// Text detection on an image no larger than text presence's copy joins the small models: on
    /// one thread it takes about as long as they do together (a 512x512 photo: 36 ms against 23 +
    /// 18 + 5, where on both cores it took 21 ms after them), so the two cores end together.
    fn run_side_by_side(&self, features: &[Feature], workers: usize) {
        let asks = |askers: &[Feature]| features.iter().any(|f| askers.contains(f));
        let (pipeline, image) = (self.pipeline, self.image);
        let models = self.models();
        // Text presence is asked for by the same features as the classes.
        let text = models.text_detector.is_some();
        let (read, presence) = (text && asks(&[Feature::Read]), text && asks(&ASK_CLASSES));
        let small = evidence::shares_read_regions(image);
        let (regions, presence_on_copy) = (Slot::new(), Slot::new());
        let (detections, faces, classes) = (Slot::new(), Slot::new(), Slot::new());
        // Longest first.
        let mut jobs: Vec<Job<'_>> = Vec::new();
        if small && (read || presence) {
            jobs.push(job(&regions, || detect_text(pipeline, image)));
        }
        if presence && !small {
            jobs.push(job(&presence_on_copy, || {
                let detector = required(models.text_detector.as_deref(), "the text detector")?;
                Ok(Some(evidence::presence_on_copy(detector, image)?))
            }));
        }
        if models.detector.is_some() && asks(&ASK_DETECTIONS) {
            jobs.push(job(&detections, || detect_objects(pipeline, image)));
        }
        if models.faces.is_some() && asks(&ASK_FACES) {
            jobs.push(job(&faces, || detect_faces(pipeline, image)));
        }
        if models.classifier.is_some() && asks(&ASK_CLASSES) {
            jobs.push(job(&classes, || classify(pipeline, image)));
        }
        // One model alone gains nothing from a thread of its own.
        if jobs.len() < 2 {
            return;
        }
        cpu_budget::spread(jobs.len(), workers, |i| jobs[i]());
        drop(jobs);
        keep(&self.text_regions, regions);
        keep(&self.text_presence, presence_on_copy);
        keep(&self.detections, detections);
        keep(&self.faces, faces);
        keep(&self.class_probabilities, classes);
    }

    /// The models that read the lines of a page.
    pub fn readers(&self) -> Result<Readers<'a>, PipelineError> {
        self.pipeline.readers()
    }

    /// The text detector's regions at its full input size (what `read` reads).
    pub fn text_regions(&self) -> Result<&[TextRegion], PipelineError> {
        once(&self.text_regions, || {
            detect_text(self.pipeline, self.image)
        })
        .map(Vec::as_slice)
    }

    /// How sure it is that the image shows text, and how much text covers; None without the text
    /// detector (see [`evidence::text_presence`]).
    pub fn text_presence(&self) -> Result<Option<&TextPresence>, PipelineError> {
        once(&self.text_presence, || evidence::text_presence(self)).map(Option::as_ref)
    }

    /// A `GRID` x `GRID` copy for pixel statistics ([`image_type::GRID`]): nearest pixels, so flat
    /// colours stay exact.
    pub fn statistics_grid(&self) -> Result<&RgbImage, PipelineError> {
        once(&self.statistics_grid, || {
            let side = image_type::GRID;
            Ok(resize(self.image, side, side, ResizeAlg::Nearest)?)
        })
    }

    /// The image's CLIP embedding; None without a CLIP.
    pub fn clip_embedding(&self) -> Result<Option<&[f32]>, PipelineError> {
        once(&self.clip_embedding, || match &self.models().clip {
            Some(clip) => Ok(Some(clip.embed_image(self.image)?)),
            None => Ok(None),
        })
        .map(|e| e.as_deref())
    }

    /// What every model found, fused into scored names: the evidence of tags, captions and
    /// categories (see [`evidence::gather`]).
    pub fn names(&self) -> Result<&Names, PipelineError> {
        once(&self.names, || evidence::gather(self))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Cursor;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use image::{ImageFormat, RgbImage};

    use super::Scene;
    use crate::geometry::{BoundingBox, Detection, FaceDetection, FaceLandmarks};
    use crate::models::hierarchy::{Hierarchy, NamedClass};
    use crate::models::text_det::TextRegion;
    use crate::models::traits::{
        FaceDetector, ImageClassifier, ObjectDetector, TextRegionDetector,
    };
    use crate::models::ModelPack;
    use crate::pipeline::decode::ANALYZE_V4;
    use crate::pipeline::{AnalysisOptions, DetectionSettings, Feature, Pipeline};

    /// How many fake model runs are going on at once, and the most there were; each run lasts
    /// `hold`, so that runs started side by side surely meet.
    #[derive(Default)]
    struct Overlap {
        running: AtomicUsize,
        peak: AtomicUsize,
        hold: std::time::Duration,
    }

    impl Overlap {
        fn run(&self) {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(self.hold);
            self.running.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Finds one sure thing of class `class` in the middle of any image, and counts its runs.
    struct FakeDetector {
        labels: Vec<String>,
        class: usize,
        runs: Arc<AtomicUsize>,
        overlap: Arc<Overlap>,
    }

    impl ObjectDetector for FakeDetector {
        fn labels(&self) -> &[String] {
            &self.labels
        }

        fn detect(&self, image: &RgbImage, _: f32) -> anyhow::Result<Vec<Detection>> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            self.overlap.run();
            let (w, h) = (image.width() as f32, image.height() as f32);
            let bbox = BoundingBox {
                x1: w / 4.0,
                y1: h / 4.0,
                x2: 3.0 * w / 4.0,
                y2: 3.0 * h / 4.0,
            };
            Ok(vec![Detection {
                bbox,
                score: 0.9,
                class: self.class,
            }])
        }
    }

    /// Finds one sure face in the top-left corner of any image.
    struct FakeFaces;

    impl FaceDetector for FakeFaces {
        fn detect(&self, _: &RgbImage, _: f32) -> anyhow::Result<Vec<FaceDetection>> {
            let bbox = BoundingBox {
                x1: 2.0,
                y1: 2.0,
                x2: 20.0,
                y2: 20.0,
            };
            Ok(vec![FaceDetection {
                bbox,
                score: 0.8,
                landmarks: FaceLandmarks {
                    left_eye: (7.0, 8.0),
                    right_eye: (15.0, 8.0),
                    nose: (11.0, 12.0),
                    mouth_left: (8.0, 16.0),
                    mouth_right: (14.0, 16.0),
                },
            }])
        }
    }

    /// Finds no text; counts its runs and whether any of them could have taken every core.
    struct FakeText {
        runs: Arc<AtomicUsize>,
        overlap: Arc<Overlap>,
        saw_every_core_free: Arc<AtomicBool>,
    }

    impl TextRegionDetector for FakeText {
        fn detect(&self, _: &RgbImage) -> anyhow::Result<Vec<TextRegion>> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            if crate::cpu_budget::budget().alone() {
                self.saw_every_core_free.store(true, Ordering::SeqCst);
            }
            self.overlap.run();
            Ok(Vec::new())
        }

        fn detect_within(&self, image: &RgbImage, _: u32) -> anyhow::Result<Vec<TextRegion>> {
            self.detect(image)
        }
    }

    /// Sure of its first class, and counts its runs.
    struct FakeClassifier {
        runs: Arc<AtomicUsize>,
        overlap: Arc<Overlap>,
    }

    impl ImageClassifier for FakeClassifier {
        fn classify(&self, _: &RgbImage) -> anyhow::Result<Vec<f32>> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            self.overlap.run();
            Ok(vec![0.9, 0.1])
        }
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 90]));
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, ImageFormat::Png).unwrap();
        bytes.into_inner()
    }

    /// A pipeline over fake models whose detector always finds `class` (0 a person, 1 a cup), with
    /// counters of the detector's and the classifier's runs.
    fn fake_pipeline(class: usize) -> (Pipeline, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let (pipeline, detector_runs, classifier_runs, _) =
            overlapping_pipeline(class, std::time::Duration::ZERO);
        (pipeline, detector_runs, classifier_runs)
    }

    /// [`fake_pipeline`], whose detector and classifier runs each last `hold` and are watched for
    /// overlap.
    fn overlapping_pipeline(
        class: usize,
        hold: std::time::Duration,
    ) -> (Pipeline, Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<Overlap>) {
        let overlap = Arc::new(Overlap {
            hold,
            ..Overlap::default()
        });
        let detector_runs = Arc::new(AtomicUsize::new(0));
        let classifier_runs = Arc::new(AtomicUsize::new(0));
        let named = |name: &str, parents: &[&str]| NamedClass {
            name: name.into(),
            parents: parents.iter().map(|p| p.to_string()).collect(),
        };
        let pack = ModelPack {
            detector: Some(Box::new(FakeDetector {
                labels: vec!["person".into(), "cup".into()],
                class,
                runs: Arc::clone(&detector_runs),
                overlap: Arc::clone(&overlap),
            })),
            faces: Some(Box::new(FakeFaces)),
            classifier: Some(Box::new(FakeClassifier {
                runs: Arc::clone(&classifier_runs),
                overlap: Arc::clone(&overlap),
            })),
            hierarchy: Some(Hierarchy::new(
                HashMap::from([("cup".to_string(), vec!["tableware".to_string()])]),
                vec![named("coffee mug", &["cup"]), named("teapot", &["pot"])],
            )),
            ..ModelPack::default()
        };
        let pipeline = Pipeline::new(pack, DetectionSettings::default());
        (pipeline, detector_runs, classifier_runs, overlap)
    }

    fn tag_names(pipeline: &Pipeline, features: &[Feature]) -> Vec<String> {
        let analysis = pipeline
            .analyze(
                &png(120, 80),
                &ANALYZE_V4,
                features,
                &AnalysisOptions::default(),
            )
            .unwrap();
        analysis.tags.unwrap().into_iter().map(|t| t.name).collect()
    }

    #[test]
    fn tags_a_caption_and_objects_run_the_detector_and_the_classifier_once() {
        let (pipeline, detector_runs, classifier_runs) = fake_pipeline(1);
        let features = [Feature::Tags, Feature::Caption, Feature::Objects];
        let analysis = pipeline
            .analyze(
                &png(120, 80),
                &ANALYZE_V4,
                &features,
                &AnalysisOptions::default(),
            )
            .unwrap();
        assert_eq!(detector_runs.load(Ordering::SeqCst), 1);
        assert_eq!(classifier_runs.load(Ordering::SeqCst), 1);
        let objects = analysis.objects.unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(
            (objects[0].label.as_str(), objects[0].parents.as_slice()),
            ("cup", &["tableware".to_string()][..])
        );
        let tags = analysis.tags.unwrap();
        assert!(tags.iter().any(|t| t.name == "cup"), "{tags:?}");
        let caption = &analysis.captions.unwrap()[0];
        assert!(caption.text.contains("cup"), "{caption:?}");

        // A feature that needs neither model runs neither.
        pipeline
            .analyze(
                &png(120, 80),
                &ANALYZE_V4,
                &[Feature::ImageType],
                &AnalysisOptions::default(),
            )
            .unwrap();
        assert_eq!(detector_runs.load(Ordering::SeqCst), 1);
        assert_eq!(classifier_runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn tags_do_not_depend_on_the_other_features_asked_for() {
        // A face without a person (a clock's, an elephant's) is not a human face, whether or not the
        // request also asked for faces.
        let (no_person, _, _) = fake_pipeline(1);
        let alone = tag_names(&no_person, &[Feature::Tags]);
        assert_eq!(
            alone,
            tag_names(&no_person, &[Feature::Tags, Feature::Faces])
        );
        assert!(!alone.contains(&"human face".to_string()), "{alone:?}");
        let (person, _, _) = fake_pipeline(0);
        let alone = tag_names(&person, &[Feature::Tags]);
        assert_eq!(alone, tag_names(&person, &[Feature::Faces, Feature::Tags]));
        assert!(alone.contains(&"human face".to_string()), "{alone:?}");
    }

    #[test]
    fn side_by_side_the_small_models_run_at_once_and_each_once() {
        let hold = std::time::Duration::from_millis(200);
        let (mut pipeline, detector_runs, classifier_runs, overlap) = overlapping_pipeline(1, hold);
        let (text_runs, saw_every_core_free) = (Arc::default(), Arc::default());
        pipeline.models.text_detector = Some(Box::new(FakeText {
            runs: Arc::clone(&text_runs),
            overlap: Arc::clone(&overlap),
            saw_every_core_free: Arc::clone(&saw_every_core_free),
        }));
        let image = RgbImage::from_pixel(120, 80, image::Rgb([90, 90, 90]));
        let scene = Scene::new(&pipeline, &image);
        let _request = crate::cpu_budget::budget().working();
        scene.run_side_by_side(&[Feature::Read, Feature::Tags, Feature::Objects], 2);
        assert_eq!(
            overlap.peak.load(Ordering::SeqCst),
            2,
            "two ran at once, never three on two workers"
        );
        assert!(
            !saw_every_core_free.load(Ordering::SeqCst),
            "a side-by-side run never takes every core"
        );
        assert_eq!(scene.detections().unwrap().len(), 1);
        assert_eq!(scene.class_probabilities().unwrap(), [0.9, 0.1]);
        assert!(scene.text_regions().unwrap().is_empty());
        assert_eq!(scene.text_presence().unwrap().unwrap().coverage.regions, 0);
        assert_eq!(
            detector_runs.load(Ordering::SeqCst),
            1,
            "kept, not run again"
        );
        assert_eq!(classifier_runs.load(Ordering::SeqCst), 1);
        assert_eq!(
            text_runs.load(Ordering::SeqCst),
            1,
            "read and text presence share the regions of an image this small"
        );

        // Faces alone ask for neither, and run with the feature.
        let scene = Scene::new(&pipeline, &image);
        scene.run_side_by_side(&[Feature::Faces], 2);
        assert_eq!(detector_runs.load(Ordering::SeqCst), 1);
        assert_eq!(classifier_runs.load(Ordering::SeqCst), 1);
    }
}
