//! COCO annotation files as Azure's customization read them, checked when a dataset is registered so
//! that a broken file is a clear 400 naming its first problem, never a silent training failure. The
//! rules are those of Microsoft's own validator (customization contract, section 4), a little more
//! lenient: any unique integer ids, `absolute_url` or `coco_url`, or (for a folder the deployment
//! names) `file_name` relative to the annotation file.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

/// What a dataset's annotations say: multiclass labels, or boxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AnnotationKind {
    ImageClassification,
    ImageObjectDetection,
}

impl AnnotationKind {
    /// The fewest images a category needs (contract, section 7).
    fn min_images(self) -> usize {
        match self {
            AnnotationKind::ImageClassification => 2,
            AnnotationKind::ImageObjectDetection => 1,
        }
    }

    /// Categories a dataset may have (contract, section 7: the lenient column).
    fn categories(self) -> std::ops::RangeInclusive<usize> {
        match self {
            AnnotationKind::ImageClassification => 2..=3000,
            AnnotationKind::ImageObjectDetection => 1..=1500,
        }
    }

    /// Training images a dataset may have (contract, section 7).
    fn max_images(self) -> usize {
        match self {
            AnnotationKind::ImageClassification => 1_000_000,
            AnnotationKind::ImageObjectDetection => 200_000,
        }
    }
}

/// Boxes one image may have (contract, section 7).
const MAX_REGIONS: usize = 1000;

/// Training images' sides (contract, section 7).
const SIDES: std::ops::RangeInclusive<f64> = 10.0..=10_240.0;

/// A box relative to its image: left, top, width, height in 0..1.
pub type RelativeBox = [f32; 4];

/// One labelled image: where it is, and its class (classification) or boxes (detection).
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct LabelledImage {
    /// A URL, or a path relative to the annotation file when the file is a local one.
    pub location: String,
    pub file_name: String,
    pub label: Option<usize>,
    pub boxes: Vec<(usize, RelativeBox)>,
}

/// The images of one or more annotation files, classes merged by name.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, Deserialize)]
pub struct LabelledSet {
    pub classes: Vec<String>,
    pub images: Vec<LabelledImage>,
}

#[derive(Deserialize)]
struct Image {
    id: Option<Value>,
    width: Option<f64>,
    height: Option<f64>,
    file_name: Option<String>,
    absolute_url: Option<String>,
    coco_url: Option<String>,
}

#[derive(Deserialize)]
struct Category {
    id: Option<Value>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Annotation {
    id: Option<Value>,
    image_id: Option<Value>,
    category_id: Option<Value>,
    bbox: Option<Vec<f64>>,
}

/// An integer id (COCO files from some tools write `1.0`).
fn id_of(value: &Option<Value>, what: &str) -> Result<i64, String> {
    match value {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| format!("{what} must be an integer, found {n}")),
        Some(other) => Err(format!("{what} must be an integer, found {other}")),
        None => Err(format!("{what} is missing")),
    }
}

fn list<T: serde::de::DeserializeOwned>(root: &Value, key: &str) -> Result<Vec<T>, String> {
    match root.get(key) {
        None | Some(Value::Null) => Err(format!(
            "'{key}' is missing (images, annotations and categories are required)"
        )),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                serde_json::from_value(item.clone()).map_err(|e| format!("{key}[{i}]: {e}"))
            })
            .collect(),
        Some(_) => Err(format!("'{key}' must be a list")),
    }
}

/// Checks one annotation file of `kind` and adds its images to `set` (classes merged by name).
/// `local` says whether the file came from the deployment's datasets folder (then an image may be
/// named by `file_name` alone).
pub fn add_file(
    set: &mut LabelledSet,
    bytes: &[u8],
    kind: AnnotationKind,
    local: bool,
) -> Result<(), String> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| format!("not a JSON file: {e}"))?;
    let images: Vec<Image> = list(&root, "images")?;
    let categories: Vec<Category> = list(&root, "categories")?;
    let annotations: Vec<Annotation> = list(&root, "annotations")?;

    let mut class_of = HashMap::new();
    for (i, category) in categories.iter().enumerate() {
        let id = id_of(&category.id, &format!("category {i}: id"))?;
        let name = category
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        let name = name.ok_or_else(|| format!("category {id}: name is missing"))?;
        let class = match set.classes.iter().position(|c| c == name) {
            Some(class) => class,
            None => {
                set.classes.push(name.to_string());
                set.classes.len() - 1
            }
        };
        if class_of.insert(id, class).is_some() {
            return Err(format!("category {id}: the id is used twice"));
        }
    }

    let first_image = set.images.len();
    let mut index_of = HashMap::new();
    let mut names = HashSet::new();
    for (i, image) in images.iter().enumerate() {
        let id = id_of(&image.id, &format!("image {i}: id"))?;
        let file_name = image.file_name.clone().unwrap_or_default();
        if file_name.is_empty() {
            return Err(format!("image {id}: file_name is missing"));
        }
        if !names.insert(file_name.clone()) {
            return Err(format!("image {id}: file_name '{file_name}' is used twice"));
        }
        for (side, value) in [("width", image.width), ("height", image.height)] {
            match value {
                Some(v) if SIDES.contains(&v) => {}
                Some(v) => {
                    return Err(format!(
                        "image {id}: {side} {v} is outside {}..{} pixels",
                        SIDES.start(),
                        SIDES.end()
                    ))
                }
                None => return Err(format!("image {id}: {side} is missing")),
            }
        }
        let url = image
            .absolute_url
            .clone()
            .or_else(|| image.coco_url.clone());
        let location = match url {
            Some(url) if !url.trim().is_empty() => url,
            _ if local => file_name.clone(),
            _ => return Err(format!("image {id}: absolute_url (or coco_url) is missing")),
        };
        if index_of.insert(id, set.images.len()).is_some() {
            return Err(format!("image {id}: the id is used twice"));
        }
        set.images.push(LabelledImage {
            location,
            file_name,
            label: None,
            boxes: Vec::new(),
        });
    }

    let mut seen = HashSet::new();
    for (i, annotation) in annotations.iter().enumerate() {
        let id = id_of(&annotation.id, &format!("annotation {i}: id"))?;
        if !seen.insert(id) {
            return Err(format!("annotation {id}: the id is used twice"));
        }
        let image_id = id_of(&annotation.image_id, &format!("annotation {id}: image_id"))?;
        let image = *index_of.get(&image_id).ok_or_else(|| {
            format!("annotation {id}: image_id {image_id} is not an image of the file")
        })?;
        let category_id = id_of(
            &annotation.category_id,
            &format!("annotation {id}: category_id"),
        )?;
        let class = *class_of.get(&category_id).ok_or_else(|| {
            format!("annotation {id}: category_id {category_id} is not a category of the file")
        })?;
        let labelled = &mut set.images[image];
        match kind {
            AnnotationKind::ImageClassification => {
                if labelled.label.is_some_and(|l| l != class) {
                    return Err(format!(
                        "annotation {id}: image {image_id} already has a tag; a classification image has exactly one"
                    ));
                }
                labelled.label = Some(class);
            }
            AnnotationKind::ImageObjectDetection => {
                let bbox = annotation
                    .bbox
                    .as_ref()
                    .ok_or_else(|| format!("annotation {id}: bbox is missing"))?;
                labelled.boxes.push((
                    class,
                    relative_box(bbox).map_err(|e| format!("annotation {id}: {e}"))?,
                ));
            }
        }
    }
    if kind == AnnotationKind::ImageClassification {
        if let Some(image) = set.images[first_image..].iter().find(|i| i.label.is_none()) {
            return Err(format!(
                "image '{}' has no tag; every classification image needs one",
                image.file_name
            ));
        }
    }
    Ok(())
}

/// `[left, top, width, height]` checked to be relative to the image (the most likely mistake is
/// pixels).
fn relative_box(bbox: &[f64]) -> Result<RelativeBox, String> {
    let shown = || format!("{bbox:?}");
    let [left, top, width, height] = bbox else {
        return Err(format!(
            "bbox must be [left, top, width, height], found {}",
            shown()
        ));
    };
    let fits = (0.0..1.0).contains(left)
        && (0.0..1.0).contains(top)
        && *width > 0.0
        && *height > 0.0
        && left + width <= 1.0 + 1e-6
        && top + height <= 1.0 + 1e-6;
    if !fits {
        return Err(format!(
            "bbox must be relative to the image size (0..1, left + width and top + height at most 1), found {}",
            shown()
        ));
    }
    Ok([*left as f32, *top as f32, *width as f32, *height as f32])
}

/// Checks what the files together give: enough categories, and enough images for each.
pub fn check_set(set: &LabelledSet, kind: AnnotationKind) -> Result<(), String> {
    if set.images.is_empty() {
        return Err("the annotation files list no images".into());
    }
    let allowed = kind.categories();
    if !allowed.contains(&set.classes.len()) {
        return Err(format!(
            "{} categories found; this kind of dataset needs {} to {}",
            set.classes.len(),
            allowed.start(),
            allowed.end()
        ));
    }
    if set.images.len() > kind.max_images() {
        return Err(format!(
            "{} images found; this kind of dataset takes at most {}",
            set.images.len(),
            kind.max_images()
        ));
    }
    if let Some(image) = set.images.iter().find(|i| i.boxes.len() > MAX_REGIONS) {
        return Err(format!(
            "image '{}' has {} boxes; an image takes at most {MAX_REGIONS}",
            image.file_name,
            image.boxes.len()
        ));
    }
    for (class, name) in set.classes.iter().enumerate() {
        let images = set
            .images
            .iter()
            .filter(|i| i.label == Some(class) || i.boxes.iter().any(|b| b.0 == class))
            .count();
        if images < kind.min_images() {
            return Err(format!(
                "category '{name}' has {images} image(s); each category needs at least {}",
                kind.min_images()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detection(bbox: Value) -> Vec<u8> {
        json!({
            "images": [{"id": 1, "width": 640, "height": 480.0, "file_name": "a.jpg", "absolute_url": "https://x/a.jpg"}],
            "categories": [{"id": 1, "name": "lemon soda"}],
            "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": bbox}]
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_valid_detection_file_gives_relative_boxes() {
        let mut set = LabelledSet::default();
        add_file(
            &mut set,
            &detection(json!([0.125, 0.25, 0.2, 0.3])),
            AnnotationKind::ImageObjectDetection,
            false,
        )
        .unwrap();
        assert_eq!(set.classes, ["lemon soda"]);
        assert_eq!(set.images[0].boxes, vec![(0, [0.125, 0.25, 0.2, 0.3])]);
        assert_eq!(set.images[0].location, "https://x/a.jpg");
        check_set(&set, AnnotationKind::ImageObjectDetection).unwrap();
    }

    #[test]
    fn pixel_boxes_are_named_with_their_annotation() {
        let mut set = LabelledSet::default();
        let error = add_file(
            &mut set,
            &detection(json!([12, 40, 300, 220])),
            AnnotationKind::ImageObjectDetection,
            false,
        )
        .unwrap_err();
        assert!(
            error.starts_with("annotation 7: bbox must be relative"),
            "{error}"
        );
        assert!(error.contains("[12.0, 40.0, 300.0, 220.0]"), "{error}");
    }

    #[test]
    fn the_first_problem_is_named() {
        let cases = [
            (
                json!({"images": [], "categories": []}),
                "'annotations' is missing",
            ),
            (
                json!({"images": [{"id": 1, "width": 5, "height": 5, "file_name": "a", "absolute_url": "u"}], "categories": [], "annotations": []}),
                "image 1: width 5 is outside",
            ),
            (
                json!({"images": [{"id": 1, "width": 50, "height": 50, "file_name": "a"}], "categories": [], "annotations": []}),
                "image 1: absolute_url (or coco_url) is missing",
            ),
            (
                json!({"images": [], "categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], "annotations": []}),
                "category 1: the id is used twice",
            ),
            (
                json!({"images": [{"id": 1, "width": 50, "height": 50, "file_name": "a", "coco_url": "u"}],
                       "categories": [{"id": 1, "name": "a"}],
                       "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}]}),
                "annotation 1: image_id 2 is not an image",
            ),
        ];
        for (file, expected) in cases {
            let error = add_file(
                &mut LabelledSet::default(),
                file.to_string().as_bytes(),
                AnnotationKind::ImageObjectDetection,
                false,
            )
            .unwrap_err();
            assert!(error.contains(expected), "{error} / {expected}");
        }
    }

    #[test]
    fn classification_files_merge_classes_by_name_and_need_two_images_a_class() {
        let file = |offset: i64, name: &str| {
            json!({
                "images": [
                    {"id": 1, "width": 64, "height": 64, "file_name": format!("{name}1.jpg")},
                    {"id": 2, "width": 64, "height": 64, "file_name": format!("{name}2.jpg")}],
                "categories": [{"id": 1 + offset, "name": name}],
                "annotations": [
                    {"id": 1, "image_id": 1, "category_id": 1 + offset},
                    {"id": 2, "image_id": 2, "category_id": 1 + offset}]
            })
            .to_string()
        };
        let mut set = LabelledSet::default();
        let kind = AnnotationKind::ImageClassification;
        add_file(&mut set, file(0, "cat").as_bytes(), kind, true).unwrap();
        assert!(check_set(&set, kind)
            .unwrap_err()
            .contains("1 categories found; this kind of dataset needs 2 to 3000"));
        add_file(&mut set, file(5, "dog").as_bytes(), kind, true).unwrap();
        check_set(&set, kind).unwrap();
        assert_eq!(set.classes, ["cat", "dog"]);
        assert_eq!(set.images[3].label, Some(1));
        assert_eq!(
            set.images[0].location, "cat1.jpg",
            "a local file names its images by file_name"
        );
    }
}
