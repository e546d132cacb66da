//! 3.2 `Categories`: Azure's 86-category taxonomy (`animal_dog`, `people_group`, `outdoor_mountain`...),
//! each category scored by the tag names that are evidence for it (the classifier's classes and their
//! WordNet parents, detected objects, text) and by the people the detector counted. A specific
//! category replaces its family's generic one (`animal_dog`, not also `animal_`); `others_` is the
//! answer when nothing is sure.

use image::RgbImage;

use super::caption::MIN_CAPTION_CONFIDENCE;
use super::scene::Scene;
use super::PipelineError;

/// A category is reported from this score.
pub const MIN_CATEGORY_SCORE: f32 = 0.4;
const MAX_CATEGORIES: usize = 3;

/// The taxonomy, with the tag names that are evidence for each category. People and darkness are
/// judged from counts and brightness instead (`people_*`, `dark_`); the categories no model here can
/// see (`abstract_net`, `people_tattoo`, `sky_sun`...) are listed with no evidence so the table is the
/// whole taxonomy.
pub const TAXONOMY: [(&str, &[&str]); 86] = [
    ("abstract_", &[]),
    ("abstract_net", &[]),
    ("abstract_nonphoto", &[]),
    ("abstract_rect", &[]),
    ("abstract_shape", &[]),
    ("abstract_texture", &[]),
    ("animal_", &["animal"]),
    ("animal_bird", &["bird"]),
    ("animal_cat", &["cat"]),
    ("animal_dog", &["dog"]),
    ("animal_horse", &["horse"]),
    ("animal_panda", &["giant panda", "lesser panda"]),
    (
        "building_",
        &[
            "building",
            "house",
            "tower",
            "castle",
            "palace",
            "skyscraper",
        ],
    ),
    ("building_arch", &["triumphal arch"]),
    ("building_brickwall", &[]),
    (
        "building_church",
        &["church", "mosque", "monastery", "bell cote"],
    ),
    ("building_corner", &[]),
    ("building_doorwindows", &["door", "window"]),
    ("building_pillar", &[]),
    ("building_stair", &[]),
    ("building_street", &[]),
    ("dark_", &[]),
    (
        "drink_",
        &["drink", "coffee", "beer", "wine", "juice", "cocktail"],
    ),
    ("drink_can", &["beer can", "pop bottle"]),
    ("dark_fire", &[]),
    ("dark_fireworks", &[]),
    ("dark_light", &[]),
    (
        "food_",
        &["food", "fruit", "vegetable", "dessert", "baked goods"],
    ),
    ("food_bread", &["bread", "bagel", "french loaf", "pretzel"]),
    (
        "food_fastfood",
        &[
            "fast food",
            "hot dog",
            "hamburger",
            "cheeseburger",
            "burrito",
        ],
    ),
    ("food_grilled", &[]),
    ("food_pizza", &["pizza"]),
    (
        "indoor_",
        &["furniture", "home appliance", "kitchen appliance"],
    ),
    ("indoor_churchwindow", &[]),
    ("indoor_court", &[]),
    ("indoor_doorwindows", &["window shade", "sliding door"]),
    (
        "indoor_marketstore",
        &[
            "grocery store",
            "toyshop",
            "shoe shop",
            "bookshop",
            "bakery",
            "butcher shop",
            "confectionery",
        ],
    ),
    (
        "indoor_room",
        &[
            "bed",
            "couch",
            "dining table",
            "refrigerator",
            "oven",
            "toilet",
            "sink",
        ],
    ),
    ("indoor_venue", &["theater curtain", "stage", "cinema"]),
    (
        "object_screen",
        &["tv", "laptop", "monitor", "screen", "television"],
    ),
    ("object_sculpture", &["sculpture", "statue", "totem pole"]),
    ("others_", &[]),
    ("outdoor_", &["land vehicle"]),
    ("outdoor_city", &["skyscraper"]),
    ("outdoor_field", &[]),
    ("outdoor_grass", &[]),
    ("outdoor_house", &["house"]),
    (
        "outdoor_mountain",
        &["alp", "volcano", "valley", "cliff", "mountain"],
    ),
    ("outdoor_oceanbeach", &["seashore", "sandbar", "beach"]),
    ("outdoor_playground", &["swing"]),
    ("outdoor_pool", &[]),
    ("outdoor_railway", &["train"]),
    ("outdoor_road", &[]),
    (
        "outdoor_sportsfield",
        &["baseball bat", "baseball glove", "tennis racket"],
    ),
    ("outdoor_stonerock", &[]),
    (
        "outdoor_street",
        &[
            "traffic light",
            "street sign",
            "fire hydrant",
            "parking meter",
            "stop sign",
        ],
    ),
    ("outdoor_water", &["lakeside", "boat"]),
    ("outdoor_waterside", &["boathouse", "dock", "pier"]),
    ("people_", &[]),
    ("people_baby", &[]),
    ("people_crowd", &[]),
    ("people_group", &[]),
    ("people_hand", &[]),
    ("people_many", &[]),
    ("people_portrait", &[]),
    ("people_show", &[]),
    ("people_swimming", &[]),
    ("people_tattoo", &[]),
    ("people_young", &[]),
    ("plant_", &["plant", "potted plant", "houseplant"]),
    ("plant_branch", &[]),
    ("plant_flower", &["flower", "daisy"]),
    ("plant_leaves", &["leaf"]),
    ("plant_tree", &["tree"]),
    ("sky_cloud", &[]),
    ("sky_object", &["airplane", "kite"]),
    ("sky_sun", &[]),
    ("text_", &["text"]),
    ("text_mag", &["comic book", "book jacket"]),
    ("text_map", &[]),
    ("text_menu", &["menu"]),
    ("text_sign", &["street sign", "stop sign"]),
    ("trans_bicycle", &["bicycle"]),
    ("trans_bus", &["bus"]),
    ("trans_car", &["car", "taxi"]),
    (
        "trans_trainstation",
        &["passenger car", "electric locomotive", "streetcar"],
    ),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    pub name: &'static str,
    pub score: f32,
}

/// The people in an image, as the detector counted them.
#[derive(Debug, Clone, Copy, Default)]
pub struct People {
    /// Sure detections.
    pub count: usize,
    pub confidence: f32,
    /// Share of the image the largest person covers.
    pub largest_share: f32,
}

/// Which `people_*` category the people fit.
fn people_category(people: &People) -> Option<&'static str> {
    Some(match people.count {
        0 => return None,
        1 if people.largest_share >= 0.25 => "people_portrait",
        1 => "people_",
        2..=4 => "people_group",
        5..=9 => "people_many",
        _ => "people_crowd",
    })
}

/// Mean brightness below this makes an image `dark_`.
const DARK_BRIGHTNESS: f32 = 0.2;

/// The scene's categories, best first, from its names, the people it shows and its brightness.
pub fn categories(scene: &Scene) -> Result<Vec<Category>, PipelineError> {
    let names = scene.names()?;
    let (width, height) = scene.dimensions();
    let people: Vec<_> = names
        .things
        .iter()
        .filter(|t| t.label == "person" && t.confidence >= MIN_CAPTION_CONFIDENCE)
        .collect();
    let image_area = (width as f32 * height as f32).max(1.0);
    let counted = People {
        count: people.len(),
        confidence: people.iter().map(|p| p.confidence).fold(0.0, f32::max),
        largest_share: people
            .iter()
            .map(|p| p.rect.w as f32 * p.rect.h as f32 / image_area)
            .fold(0.0, f32::max),
    };
    Ok(categorize(
        |name| names.scores.score(name),
        &counted,
        brightness(scene.image()),
    ))
}

/// Mean brightness, 0..1, from a sparse grid of pixels.
fn brightness(image: &RgbImage) -> f32 {
    let (w, h) = image.dimensions();
    let step = (w.max(h) / 64).max(1) as usize;
    let (mut sum, mut n) = (0.0, 0);
    for y in (0..h).step_by(step) {
        for x in (0..w).step_by(step) {
            let [r, g, b] = image.get_pixel(x, y).0;
            sum += (0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32) / 255.0;
            n += 1;
        }
    }
    sum / n.max(1) as f32
}

/// The image's categories, best first; `score(name)` is how sure the tags are of a name.
pub fn categorize(score: impl Fn(&str) -> f32, people: &People, brightness: f32) -> Vec<Category> {
    let mut found: Vec<Category> = TAXONOMY
        .iter()
        .map(|(name, evidence)| Category {
            name,
            score: evidence.iter().map(|e| score(e)).fold(0.0, f32::max),
        })
        .filter(|c| c.score >= MIN_CATEGORY_SCORE)
        .collect();
    if let Some(name) = people_category(people).filter(|_| people.confidence >= MIN_CATEGORY_SCORE)
    {
        found.push(Category {
            name,
            score: people.confidence,
        });
    }
    if brightness < DARK_BRIGHTNESS {
        found.push(Category {
            name: "dark_",
            score: 1.0 - brightness / DARK_BRIGHTNESS * 0.5,
        });
    }
    // A family's generic category gives way to a specific one ("animal_dog" says "animal_").
    let specific_families: Vec<&str> = found
        .iter()
        .filter(|c| !c.name.ends_with('_'))
        .map(|c| family(c.name))
        .collect();
    found.retain(|c| !c.name.ends_with('_') || !specific_families.contains(&family(c.name)));
    found.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.name.cmp(b.name)));
    found.dedup_by(|a, b| a.name == b.name);
    found.truncate(MAX_CATEGORIES);
    if found.is_empty() {
        found.push(Category {
            name: "others_",
            score: 0.5,
        });
    }
    found
}

/// "animal_dog" → "animal".
fn family(name: &str) -> &str {
    name.split('_').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(pairs: &'static [(&'static str, f32)]) -> impl Fn(&str) -> f32 {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0.0, |(_, s)| *s)
        }
    }

    fn names(categories: &[Category]) -> Vec<&str> {
        categories.iter().map(|c| c.name).collect()
    }

    #[test]
    fn the_taxonomy_is_azures_86_unique_names() {
        let mut names: Vec<&str> = TAXONOMY.iter().map(|(n, _)| *n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 86);
        assert!(names.contains(&"people_portrait") && names.contains(&"trans_trainstation"));
    }

    #[test]
    fn specific_categories_replace_their_family_and_rank_by_score() {
        let found = categorize(
            scores(&[("dog", 0.8), ("animal", 0.95), ("pizza", 0.5)]),
            &People::default(),
            0.5,
        );
        assert_eq!(names(&found), ["animal_dog", "food_pizza"]);
        let only_animal = categorize(scores(&[("animal", 0.7)]), &People::default(), 0.5);
        assert_eq!(names(&only_animal), ["animal_"]);
    }

    #[test]
    fn people_are_counted_into_their_category_and_nothing_is_others() {
        let group = People {
            count: 3,
            confidence: 0.9,
            largest_share: 0.1,
        };
        assert_eq!(
            names(&categorize(scores(&[]), &group, 0.5)),
            ["people_group"]
        );
        let portrait = People {
            count: 1,
            confidence: 0.9,
            largest_share: 0.4,
        };
        assert_eq!(
            names(&categorize(scores(&[]), &portrait, 0.5)),
            ["people_portrait"]
        );
        assert_eq!(
            names(&categorize(scores(&[]), &People::default(), 0.5)),
            ["others_"]
        );
        assert_eq!(
            names(&categorize(scores(&[]), &People::default(), 0.05)),
            ["dark_"]
        );
    }
}
