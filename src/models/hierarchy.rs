//! The 3.2 object hierarchy (`cat` → `mammal` → `animal`), derived from WordNet rather than written by
//! hand. Each COCO class has a WordNet synset (YOLO9000's WordTree map, from Debian's `darknet`); its
//! ancestors come from following WordNet's first hypernym; an ancestor is shown only when one of its
//! lemmas is an everyday category name (the Open Images class list, which Azure's own parents resemble)
//! in one of that word's two most common senses (so "bat" the club is not shown as the animal).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// How common a sense must be for its word to name it: 1 = the word's usual meaning.
const MAX_SENSE_RANK: u32 = 2;
/// WordNet chains are short (≤ 20); this only guards against a cycle in a hand-edited file.
const MAX_DEPTH: usize = 64;

struct Synset {
    lemmas: Vec<(String, u32)>,
    hypernyms: Vec<u32>,
}

/// The parents of each class the detector names, nearest first, and the names of the classifier's
/// ImageNet classes with their parents.
#[derive(Debug, Default)]
pub struct Hierarchy {
    parents: HashMap<String, Vec<String>>,
    imagenet: Vec<NamedClass>,
    /// Lower-case word → its Open Images spelling ("mobile phone" → "Mobile phone"), and each
    /// detector label → the Open Images name of its synset ("cell phone" → "Mobile phone").
    everyday: HashMap<String, String>,
}

/// A classifier class: its own short name ("tabby") and its readable parents ("cat", "mammal"...).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedClass {
    pub name: String,
    pub parents: Vec<String>,
}

#[derive(Deserialize)]
struct WordTreeNames {
    coco80: Vec<String>,
    readable: Vec<String>,
    /// [synset, short name] in the classifier's output order.
    imagenet1k: Vec<(String, String)>,
}

impl Hierarchy {
    /// `labels` are the detector's class names in COCO-80 order (none without a detector).
    pub fn load(wordnet: &Path, wordtree: &Path, labels: &[String]) -> Result<Self> {
        let nouns = std::fs::read_to_string(wordnet)
            .with_context(|| format!("reading {}", wordnet.display()))?;
        let names = std::fs::read_to_string(wordtree)
            .with_context(|| format!("reading {}", wordtree.display()))?;
        let names: WordTreeNames = serde_json::from_str(&names).context("wordtree names")?;
        if !labels.is_empty() && labels.len() != names.coco80.len() {
            bail!(
                "the detector has {} classes; the WordTree map is for COCO-80",
                labels.len()
            );
        }
        let synsets = parse_nouns(&nouns)?;
        let readable: HashSet<String> = names.readable.iter().map(|n| n.to_lowercase()).collect();
        let mut everyday: HashMap<String, String> = names
            .readable
            .iter()
            .map(|n| (n.to_lowercase(), n.clone()))
            .collect();
        let mut parents = HashMap::new();
        for (label, synset) in labels.iter().zip(&names.coco80) {
            let offset = synset_offset(synset)?;
            let ancestors = readable_ancestors(&synsets, offset, &readable, label);
            if let Some(name) = everyday_label(&synsets, offset, label, (&readable, &ancestors)) {
                let spelling = everyday.get(&name).cloned().unwrap_or(name);
                everyday.insert(label.clone(), spelling);
            }
            parents.insert(label.clone(), ancestors);
        }
        let imagenet = names
            .imagenet1k
            .iter()
            .map(|(synset, name)| {
                let name = name.to_lowercase();
                Ok(NamedClass {
                    parents: readable_ancestors(&synsets, synset_offset(synset)?, &readable, &name),
                    name,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Hierarchy {
            everyday,
            ..Hierarchy::new(parents, imagenet)
        })
    }

    /// The parents of each detector label, and the classifier's classes in its output order.
    pub fn new(parents: HashMap<String, Vec<String>>, imagenet: Vec<NamedClass>) -> Self {
        Hierarchy {
            parents,
            imagenet,
            everyday: HashMap::new(),
        }
    }

    /// The broader names above any word of the vocabulary, nearest first: a detector label's parents,
    /// a classifier class's, or for a name met inside one of those chains ("mammal"), the rest of it.
    pub fn ancestors(&self, word: &str) -> Vec<String> {
        if let Some(parents) = self.parents.get(word) {
            return parents.clone();
        }
        let chains = self
            .parents
            .iter()
            .map(|(label, parents)| (label.as_str(), parents.as_slice()))
            .chain(
                self.imagenet
                    .iter()
                    .map(|c| (c.name.as_str(), c.parents.as_slice())),
            );
        for (name, parents) in chains {
            if name == word {
                return parents.to_vec();
            }
            if let Some(at) = parents.iter().position(|p| p == word) {
                return parents[at + 1..].to_vec();
            }
        }
        Vec::new()
    }

    /// The everyday (Open Images) spelling of a word or detector label, when it has one.
    pub fn everyday_name(&self, word: &str) -> Option<&str> {
        self.everyday.get(word).map(String::as_str)
    }

    /// The classifier's classes, in its output order.
    pub fn imagenet(&self) -> &[NamedClass] {
        &self.imagenet
    }

    pub fn parents(&self, label: &str) -> &[String] {
        self.parents
            .get(label)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// "n02123045" → 2123045.
fn synset_offset(synset: &str) -> Result<u32> {
    synset
        .trim_start_matches('n')
        .parse()
        .with_context(|| format!("synset {synset}"))
}

/// Reads `tools/wordnet_nouns.py`'s lines: offset, lemmas, their sense ranks, hypernyms.
fn parse_nouns(text: &str) -> Result<HashMap<u32, Synset>> {
    let list = |field: &str| -> Vec<String> {
        field
            .split('|')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut synsets = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let parse = || -> Result<(u32, Synset)> {
            let fields: Vec<&str> = line.split('\t').collect();
            let [offset, lemmas, ranks, hypernyms] = fields[..] else {
                bail!("expected 4 fields")
            };
            let ranks = list(ranks)
                .iter()
                .map(|r| r.parse())
                .collect::<Result<Vec<u32>, _>>()?;
            let lemmas = list(lemmas);
            if ranks.len() != lemmas.len() {
                bail!("{} lemmas but {} ranks", lemmas.len(), ranks.len());
            }
            let hypernyms = list(hypernyms)
                .iter()
                .map(|h| h.parse())
                .collect::<Result<_, _>>()?;
            Ok((
                offset.parse()?,
                Synset {
                    lemmas: lemmas.into_iter().zip(ranks).collect(),
                    hypernyms,
                },
            ))
        };
        let (offset, synset) =
            parse().with_context(|| format!("wordnet nouns, line {}", number + 1))?;
        synsets.insert(offset, synset);
    }
    Ok(synsets)
}

/// COCO labels whose Open Images name WordNet does not lead to: YOLO9000's map gives "tv" the
/// synset of video displays, "potted plant" and "dining table" none of their own, and "frisbee" is a
/// trademark there.
const EVERYDAY_COCO: [(&str, &str); 4] = [
    ("tv", "television"),
    ("frisbee", "flying disc"),
    ("potted plant", "houseplant"),
    ("dining table", "table"),
];

/// The Open Images name of a detector label: a fixed name from [`EVERYDAY_COCO`], the label itself
/// when the list has it ("fire hydrant"), a lemma of its synset that is one ("cell phone" → "mobile
/// phone"), else a readable parent that is the label's head word.
fn everyday_label(
    synsets: &HashMap<u32, Synset>,
    offset: u32,
    label: &str,
    (readable, ancestors): (&HashSet<String>, &[String]),
) -> Option<String> {
    if let Some((_, name)) = EVERYDAY_COCO.iter().find(|(coco, _)| *coco == label) {
        return Some(name.to_string());
    }
    if readable.contains(label) {
        return Some(label.to_string());
    }
    let mut own = synsets
        .get(&offset)?
        .lemmas
        .iter()
        .map(|(l, _)| l.to_lowercase());
    let head = label.rsplit(' ').next().unwrap_or(label);
    own.find(|lemma| readable.contains(lemma)).or_else(|| {
        ancestors
            .iter()
            .find(|parent| parent.as_str() == head)
            .cloned()
    })
}

fn readable_ancestors(
    synsets: &HashMap<u32, Synset>,
    start: u32,
    readable: &HashSet<String>,
    label: &str,
) -> Vec<String> {
    let mut chain: Vec<String> = Vec::new();
    let mut current = synsets.get(&start);
    for _ in 0..MAX_DEPTH {
        let Some(synset) = current else { break };
        let Some(&hypernym) = synset.hypernyms.first() else {
            break;
        };
        current = synsets.get(&hypernym);
        let name = current.and_then(|s| {
            s.lemmas
                .iter()
                .map(|(lemma, rank)| (lemma.to_lowercase(), *rank))
                .find(|(lemma, rank)| {
                    (1..=MAX_SENSE_RANK).contains(rank)
                        && readable.contains(lemma)
                        && lemma != label
                })
        });
        if let Some((name, _)) = name {
            if !chain.contains(&name) {
                chain.push(name);
            }
        }
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WordNet in miniature: tabby → cat → feline → mammal → animal, and a homonym "bat" (the club,
    /// its third sense) above "baseball bat".
    const NOUNS: &str = "\
00000001\tanimal|beast\t1|2\t
00000002\tmammal\t1\t00000001
00000003\tfeline|felid\t1|1\t00000002
00000004\tcat|true cat\t1|1\t00000003|00000009
00000005\ttabby\t1\t00000004
00000006\tsports equipment\t1\t
00000007\tbat|club\t3|1\t00000006
00000008\tbaseball bat\t1\t00000007
00000009\tpet\t1\t
";

    fn hierarchy(labels: &[&str], synsets: &[&str]) -> Result<Hierarchy> {
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("vista-hierarchy-{}-{call}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let names = serde_json::json!({
            "coco80": synsets,
            "readable": ["Animal", "Mammal", "Cat", "Bat", "Sports equipment", "Pet"],
            "imagenet1k": [["n00000005", "Tabby"], ["n00000008", "baseball bat"]],
        });
        std::fs::write(dir.join("nouns.tsv"), NOUNS).unwrap();
        std::fs::write(dir.join("names.json"), names.to_string()).unwrap();
        let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        let names = Hierarchy::load(&dir.join("nouns.tsv"), &dir.join("names.json"), &labels);
        std::fs::remove_dir_all(&dir).unwrap();
        names
    }

    #[test]
    fn parents_follow_the_first_hypernym_and_keep_readable_names_only() {
        let h = hierarchy(&["tabby", "baseball bat"], &["n00000005", "n00000008"]).unwrap();
        // feline is not an everyday category name; pet is reachable only through a second hypernym.
        assert_eq!(h.parents("tabby"), ["cat", "mammal", "animal"]);
        // "bat" names the club only in its third sense, so it is not shown.
        assert_eq!(h.parents("baseball bat"), ["sports equipment"]);
        assert!(h.parents("unknown").is_empty());
    }

    #[test]
    fn classifier_classes_get_their_lowercase_name_and_readable_parents() {
        let h = hierarchy(&[], &[]).unwrap();
        let tabby = NamedClass {
            name: "tabby".into(),
            parents: vec!["cat".into(), "mammal".into(), "animal".into()],
        };
        assert_eq!(h.imagenet()[0], tabby);
        assert_eq!(h.imagenet()[1].parents, ["sports equipment"]);
    }

    #[test]
    fn a_class_is_not_its_own_parent() {
        let h = hierarchy(&["cat", "mammal"], &["n00000005", "n00000002"]).unwrap();
        assert_eq!(h.parents("cat"), ["mammal", "animal"]);
        assert_eq!(h.parents("mammal"), ["animal"]);
    }

    #[test]
    fn a_detector_with_other_classes_gets_no_hierarchy() {
        assert!(hierarchy(&["tabby"], &["n00000005", "n00000008"]).is_err());
        assert!(
            parse_nouns("00000001\tcat\t1|2\t\n").is_err(),
            "ranks must match lemmas"
        );
    }

    /// The real pack's names: each COCO label gets its Open Images spelling where the list has one.
    #[test]
    fn coco_labels_get_their_open_images_names_in_the_real_pack() {
        let models = std::env::var("VISTA_MODELS").unwrap_or_else(|_| "models".into());
        let manifest: serde_json::Value =
            serde_json::from_str(crate::models::manifest::DEFAULT_MANIFEST).unwrap();
        let detector = manifest["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == "centernet")
            .unwrap();
        let labels: Vec<String> =
            serde_json::from_value(detector["facts"]["labels"].clone()).unwrap();
        let dir = Path::new(&models);
        let h = Hierarchy::load(
            &dir.join("wordnet-nouns.tsv"),
            &dir.join("wordtree.json"),
            &labels,
        )
        .unwrap_or_else(|e| panic!("{e:#}: run `vista models fetch` before the tests"));
        let name = |label: &str| h.everyday_name(label);
        assert_eq!(
            name("tv"),
            Some("Television"),
            "fixed: WordNet leads elsewhere"
        );
        assert_eq!(name("dining table"), Some("Table"));
        assert_eq!(
            name("fire hydrant"),
            Some("Fire hydrant"),
            "the label itself is listed"
        );
        assert_eq!(
            name("cell phone"),
            Some("Mobile phone"),
            "a lemma of its synset"
        );
        assert_eq!(name("donut"), Some("Doughnut"));
        assert_eq!(name("cat"), Some("Cat"));
        assert_eq!(
            name("cup"),
            None,
            "no Open Images name: the surface capitalises it"
        );
        assert_eq!(
            name("mammal"),
            Some("Mammal"),
            "any listed word has its spelling"
        );
    }
}
