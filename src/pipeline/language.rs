//! Which languages vista can answer in, in one place. The words it writes (tags, captions, dense
//! captions, descriptions) are English: no registry ships a model that writes others, and English in
//! disguise would be a lie. Categories are names of a fixed taxonomy (`animal_dog`), the same in every
//! language. Text is read in any language PP-OCR reads, and in those whose script has a Tesseract model
//! installed. A surface checks its protocol's own list of language codes first, then asks here, and
//! turns a refusal into its own error.

use super::Feature;
use crate::models::tesseract::traineddata_for_language;
use crate::models::traits::ScriptReader;

/// Why a language cannot be served, in words a surface passes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

/// Whether `features` can answer in `language`: those that write words only in English.
pub fn check_words(language: &str, features: &[Feature]) -> Result<(), Unsupported> {
    let writes_words = features.iter().any(|f| {
        matches!(
            f,
            Feature::Caption | Feature::DenseCaptions | Feature::Tags | Feature::Description
        )
    });
    if !writes_words || language.eq_ignore_ascii_case("en") {
        return Ok(());
    }
    Err(Unsupported(format!(
        "The input language '{language}' is not supported: tags, captions and descriptions are in \
         English ('en') only on this server"
    )))
}

/// The Tesseract model that reads `language`, when PP-OCR does not read it (its script is not
/// Latin, Chinese or Japanese).
pub fn tesseract_model(language: &str) -> Option<&'static str> {
    traineddata_for_language(language)
}

/// Whether text in `language` can be read here: PP-OCR's languages always, the others when the
/// Tesseract model of their script is installed.
pub fn check_reading(
    language: &str,
    tesseract: Option<&dyn ScriptReader>,
) -> Result<(), Unsupported> {
    let Some(data) = tesseract_model(language) else {
        return Ok(());
    };
    if tesseract.is_some_and(|t| t.has(data)) {
        return Ok(());
    }
    Err(Unsupported(format!(
        "the language '{language}' is read by Tesseract's '{data}' model, which is not installed \
         (run `vista models fetch`)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_english_and_other_features_take_any_language() {
        assert!(check_words("en", &[Feature::Tags]).is_ok());
        assert!(check_words("EN", &[Feature::Caption]).is_ok());
        for feature in [
            Feature::Tags,
            Feature::Caption,
            Feature::DenseCaptions,
            Feature::Description,
        ] {
            assert!(check_words("es", &[feature]).is_err(), "{feature:?}");
        }
        assert!(check_words(
            "ja",
            &[Feature::Categories, Feature::Objects, Feature::Read]
        )
        .is_ok());
    }

    #[test]
    fn a_script_without_its_tesseract_model_cannot_be_read() {
        assert!(check_reading("en", None).is_ok(), "PP-OCR reads Latin");
        assert!(check_reading("ja", None).is_ok(), "PP-OCR reads Japanese");
        let error = check_reading("ru", None).unwrap_err();
        assert!(error.0.contains("'rus'"), "{error}");
    }
}
