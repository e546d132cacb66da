//! Tesseract (LSTM, `tessdata_fast` models from Debian's packages) for the scripts PP-OCR does not read:
//! Cyrillic, Arabic, Hangul, Devanagari, Greek, Hebrew and Thai. The library is loaded at run time
//! through its C API from the model pack (Debian's `libtesseract5` and the libraries it needs that a
//! base system lacks), so nothing is installed system-wide and the build needs no Tesseract headers.
//!
//! It reads line crops the detector found, one line at a time (page segmentation mode 7), and reports
//! every symbol with its span across the line, as the PP-OCR recogniser does, with its word's
//! confidence; its script detector (OSD) names the script of a strip of sample lines.

use std::collections::HashMap;
use std::ffi::{c_char, c_float, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use image::RgbImage;
use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};

use super::traits::ScriptReader;
use crate::metrics::INFERENCE_SECONDS;
use crate::models::preprocess::resize_bilinear;
use crate::models::text_rec::{RecognizedChar, RecognizedLine};

/// A script Tesseract reads for vista.
pub struct Script {
    /// As Tesseract's script detector names it.
    pub name: &'static str,
    /// The traineddata that reads it.
    pub traineddata: &'static str,
    /// The Read API's language codes (BCP 47) that ask for it.
    pub languages: &'static [&'static str],
    /// Its Unicode blocks.
    pub blocks: &'static [(char, char)],
}

pub static SCRIPTS: [Script; 7] = [
    Script {
        name: "Cyrillic",
        traineddata: "rus",
        languages: &["ru", "uk", "be", "bg", "mk", "kk", "sr-Cyrl"],
        blocks: &[('\u{0400}', '\u{04FF}')],
    },
    Script {
        name: "Arabic",
        traineddata: "ara",
        languages: &["ar", "fa", "ur"],
        blocks: &[('\u{0600}', '\u{06FF}'), ('\u{0750}', '\u{077F}')],
    },
    Script {
        name: "Hangul",
        traineddata: "kor",
        languages: &["ko"],
        blocks: &[
            ('\u{AC00}', '\u{D7AF}'),
            ('\u{1100}', '\u{11FF}'),
            ('\u{3130}', '\u{318F}'),
        ],
    },
    Script {
        name: "Devanagari",
        traineddata: "hin",
        languages: &["hi", "mr", "ne"],
        blocks: &[('\u{0900}', '\u{097F}')],
    },
    Script {
        name: "Greek",
        traineddata: "ell",
        languages: &["el"],
        blocks: &[('\u{0370}', '\u{03FF}'), ('\u{1F00}', '\u{1FFF}')],
    },
    Script {
        name: "Hebrew",
        traineddata: "heb",
        languages: &["he"],
        blocks: &[('\u{0590}', '\u{05FF}')],
    },
    Script {
        name: "Thai",
        traineddata: "tha",
        languages: &["th"],
        blocks: &[('\u{0E00}', '\u{0E7F}')],
    },
];

impl Script {
    pub fn contains(&self, c: char) -> bool {
        self.blocks
            .iter()
            .any(|&(first, last)| (first..=last).contains(&c))
    }
}

/// The traineddata that reads a request's `language`, if Tesseract is the engine for it.
pub fn traineddata_for_language(language: &str) -> Option<&'static str> {
    SCRIPTS
        .iter()
        .find(|s| s.languages.iter().any(|c| c.eq_ignore_ascii_case(language)))
        .map(|s| s.traineddata)
}

/// The script Tesseract's script detector names (it calls Hangul "Korean" too).
pub fn script_named(name: &str) -> Option<&'static Script> {
    let name = if name == "Korean" { "Hangul" } else { name };
    SCRIPTS.iter().find(|s| s.name == name)
}

const PSM_OSD_ONLY: c_int = 0;
const PSM_SINGLE_LINE: c_int = 7;
/// A single line without Tesseract's layout heuristics: the fallback when those find no text in a
/// plainly readable line (seen on an Arabic line at one particular scale).
const PSM_RAW_LINE: c_int = 13;
const RIL_WORD: c_int = 3;
const RIL_SYMBOL: c_int = 4;
/// Line crops are scaled to this height range: Tesseract reads best with capitals 20 to 40 px tall.
const MIN_LINE_HEIGHT: u32 = 40;
const MAX_LINE_HEIGHT: u32 = 80;
/// Between Hangul syllables, a gap wider than this fraction of a syllable's width is a space (in
/// the test fonts the gap inside a word is 0.4 of a syllable, between words 0.8 or more).
const HANGUL_SPACE: f32 = 0.6;
/// The script detector's answer is taken at this confidence or above (its scale is open-ended; the
/// rendered test lines score 1.6 to 12 for the right script).
const MIN_SCRIPT_CONFIDENCE: f32 = 1.0;

type Handle = *mut c_void;

/// The C API functions vista calls (tesseract/capi.h).
struct Api {
    create: unsafe extern "C" fn() -> Handle,
    delete: unsafe extern "C" fn(Handle),
    init3: unsafe extern "C" fn(Handle, *const c_char, *const c_char) -> c_int,
    set_variable: unsafe extern "C" fn(Handle, *const c_char, *const c_char) -> c_int,
    set_page_seg_mode: unsafe extern "C" fn(Handle, c_int),
    set_image: unsafe extern "C" fn(Handle, *const u8, c_int, c_int, c_int, c_int),
    recognize: unsafe extern "C" fn(Handle, *mut c_void) -> c_int,
    get_iterator: unsafe extern "C" fn(Handle) -> Handle,
    iterator_delete: unsafe extern "C" fn(Handle),
    iterator_page: unsafe extern "C" fn(Handle) -> Handle,
    iterator_next: unsafe extern "C" fn(Handle, c_int) -> c_int,
    iterator_text: unsafe extern "C" fn(Handle, c_int) -> *mut c_char,
    iterator_confidence: unsafe extern "C" fn(Handle, c_int) -> c_float,
    page_at_beginning_of: unsafe extern "C" fn(Handle, c_int) -> c_int,
    page_bounding_box: unsafe extern "C" fn(
        Handle,
        c_int,
        *mut c_int,
        *mut c_int,
        *mut c_int,
        *mut c_int,
    ) -> c_int,
    delete_text: unsafe extern "C" fn(*mut c_char),
    detect_orientation_script: unsafe extern "C" fn(
        Handle,
        *mut c_int,
        *mut c_float,
        *mut *const c_char,
        *mut c_float,
    ) -> c_int,
    clear: unsafe extern "C" fn(Handle),
}

/// One initialised TessBaseAPI; used by one thread at a time.
struct Engine(Handle);
// SAFETY: a TessBaseAPI may move between threads; the pool never shares one between two at once.
unsafe impl Send for Engine {}

pub struct Tesseract {
    api: Api,
    tessdata: CString,
    /// The traineddata names installed (e.g. "rus"), besides "osd".
    languages: Vec<String>,
    /// Idle engines by traineddata name; an engine is made on first use (loading its model) and kept.
    idle: Mutex<HashMap<String, Vec<Engine>>>,
    /// Kept loaded for as long as `api` is used, in load order.
    _libraries: Vec<Library>,
}

impl Tesseract {
    /// Loads the libraries in the order given (each one's dependencies before it); `languages` are the
    /// traineddata names installed in `tessdata` ("osd" for the script detector).
    pub fn load(
        libraries: &[PathBuf],
        tessdata: &Path,
        mut languages: Vec<String>,
    ) -> Result<Self> {
        let mut loaded = Vec::new();
        for path in libraries {
            // RTLD_GLOBAL: the next library's dependency on this one is met by the copy loaded here.
            // SAFETY: these are Debian's builds of C libraries whose initialisers have no preconditions.
            let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }
                .with_context(|| format!("loading {}", path.display()))?;
            loaded.push(library);
        }
        let tesseract = loaded
            .last()
            .ok_or_else(|| anyhow!("no Tesseract library"))?;
        macro_rules! symbol {
            ($name:literal) => {
                // SAFETY: the types match tesseract/capi.h of Tesseract 5.
                *unsafe { tesseract.get(concat!($name, "\0").as_bytes()) }
                    .with_context(|| format!("{} is missing from libtesseract", $name))?
            };
        }
        let api = Api {
            create: symbol!("TessBaseAPICreate"),
            delete: symbol!("TessBaseAPIDelete"),
            init3: symbol!("TessBaseAPIInit3"),
            set_variable: symbol!("TessBaseAPISetVariable"),
            set_page_seg_mode: symbol!("TessBaseAPISetPageSegMode"),
            set_image: symbol!("TessBaseAPISetImage"),
            recognize: symbol!("TessBaseAPIRecognize"),
            get_iterator: symbol!("TessBaseAPIGetIterator"),
            iterator_delete: symbol!("TessResultIteratorDelete"),
            iterator_page: symbol!("TessResultIteratorGetPageIterator"),
            iterator_next: symbol!("TessResultIteratorNext"),
            iterator_text: symbol!("TessResultIteratorGetUTF8Text"),
            iterator_confidence: symbol!("TessResultIteratorConfidence"),
            page_at_beginning_of: symbol!("TessPageIteratorIsAtBeginningOf"),
            page_bounding_box: symbol!("TessPageIteratorBoundingBox"),
            delete_text: symbol!("TessDeleteText"),
            detect_orientation_script: symbol!("TessBaseAPIDetectOrientationScript"),
            clear: symbol!("TessBaseAPIClear"),
        };
        languages.sort();
        let tessdata = CString::new(tessdata.as_os_str().as_encoded_bytes())?;
        Ok(Tesseract {
            api,
            tessdata,
            languages,
            idle: Mutex::new(HashMap::new()),
            _libraries: loaded,
        })
    }

    /// Runs `work` with an idle engine for `traineddata` (made if there is none) and puts it back.
    fn with_engine<T>(&self, traineddata: &str, work: impl FnOnce(Handle) -> T) -> Result<T> {
        // OMP_THREAD_LIMIT=1 (set at start): an engine reads on its caller's thread.
        let _cpu = crate::cpu_budget::budget().hold(1);
        let idle = self
            .idle
            .lock()
            .expect("the engine pool lock")
            .get_mut(traineddata)
            .and_then(Vec::pop);
        let engine = match idle {
            Some(engine) => engine,
            None => self.new_engine(traineddata)?,
        };
        let started = Instant::now();
        let result = work(engine.0);
        INFERENCE_SECONDS
            .with_label_values(&["tesseract"])
            .observe(started.elapsed().as_secs_f64());
        // SAFETY: the handle is live; Clear drops the last image and its results.
        unsafe { (self.api.clear)(engine.0) };
        self.idle
            .lock()
            .expect("the engine pool lock")
            .entry(traineddata.to_string())
            .or_default()
            .push(engine);
        Ok(result)
    }

    fn new_engine(&self, traineddata: &str) -> Result<Engine> {
        if !self.has(traineddata) {
            bail!("{traineddata}.traineddata is not installed");
        }
        let language = CString::new(traineddata)?;
        // SAFETY: C API calls on a handle made here and deleted on failure.
        unsafe {
            let handle = (self.api.create)();
            if handle.is_null() {
                bail!("TessBaseAPICreate failed");
            }
            if (self.api.init3)(handle, self.tessdata.as_ptr(), language.as_ptr()) != 0 {
                (self.api.delete)(handle);
                bail!("Tesseract could not load {traineddata}.traineddata");
            }
            // Tesseract's own diagnostics would go to stderr for every line.
            (self.api.set_variable)(handle, c"debug_file".as_ptr(), c"/dev/null".as_ptr());
            // The script detector gives up below 50 blobs by default; a few lines of a connected
            // script (Arabic, Devanagari) have fewer.
            (self.api.set_variable)(handle, c"min_characters_to_try".as_ptr(), c"5".as_ptr());
            Ok(Engine(handle))
        }
    }

    /// Hands `image` to the engine; it must outlive the engine's use of it (the caller clears the
    /// engine before dropping it).
    fn set_image(&self, handle: Handle, image: &RgbImage) {
        // SAFETY: a live handle and a buffer of height rows of 3 * width bytes.
        unsafe {
            (self.api.set_image)(
                handle,
                image.as_raw().as_ptr(),
                image.width() as c_int,
                image.height() as c_int,
                3,
                3 * image.width() as c_int,
            )
        };
    }

    fn read_line(&self, handle: Handle, line: &RgbImage, mode: c_int) -> Result<RecognizedLine> {
        let api = &self.api;
        // SAFETY: a live handle.
        unsafe { (api.set_page_seg_mode)(handle, mode) };
        let (framed, margin) = framed_line(line)?;
        self.set_image(handle, &framed);
        let width = (framed.width() - 2 * margin) as f32;
        let mut chars: Vec<RecognizedChar> = Vec::new();
        // SAFETY: C API calls on a live handle; every string and the iterator are freed here.
        unsafe {
            if (api.recognize)(handle, std::ptr::null_mut()) != 0 {
                bail!("Tesseract failed to read a line");
            }
            let results = (api.get_iterator)(handle);
            if results.is_null() {
                return Ok(RecognizedLine::default());
            }
            let page = (api.iterator_page)(results);
            let mut word_confidence = 0.0;
            loop {
                let text = (api.iterator_text)(results, RIL_SYMBOL);
                if !text.is_null() {
                    let symbol = CStr::from_ptr(text).to_string_lossy().into_owned();
                    (api.delete_text)(text);
                    let starts_word = (api.page_at_beginning_of)(page, RIL_WORD) != 0;
                    if starts_word {
                        // A word's confidence tells a right reading from a wrong model's lookalikes
                        // far better than its symbols' (often high) ones.
                        word_confidence = (api.iterator_confidence)(results, RIL_WORD) / 100.0;
                    }
                    let (mut left, mut top, mut right, mut bottom) = (0, 0, 0, 0);
                    (api.page_bounding_box)(
                        page,
                        RIL_SYMBOL,
                        &mut left,
                        &mut top,
                        &mut right,
                        &mut bottom,
                    );
                    let (left, right) = (left - margin as c_int, right - margin as c_int);
                    let (start, end) = (left as f32 / width, right as f32 / width);
                    let spaced = chars.last().is_some_and(|previous| {
                        let gap = (start - previous.end).max(previous.start - end) * width;
                        if unspaced(&previous.text) && unspaced(&symbol) {
                            false
                        } else if hangul(&previous.text) && hangul(&symbol) {
                            // Tesseract splits Korean words between syllables; a space is wider.
                            gap > HANGUL_SPACE * (right - left) as f32
                        } else {
                            true
                        }
                    });
                    if starts_word && spaced {
                        chars.push(RecognizedChar {
                            text: " ".into(),
                            ..chars[chars.len() - 1].clone()
                        });
                    }
                    chars.push(RecognizedChar {
                        text: symbol,
                        start: start.clamp(0.0, 1.0),
                        end: end.clamp(0.0, 1.0),
                        confidence: word_confidence.clamp(0.0, 1.0),
                    });
                }
                if (api.iterator_next)(results, RIL_SYMBOL) == 0 {
                    break;
                }
            }
            (api.iterator_delete)(results);
        }
        drop(framed);
        Ok(RecognizedLine { chars })
    }
}

impl ScriptReader for Tesseract {
    fn has(&self, traineddata: &str) -> bool {
        self.languages.iter().any(|l| l == traineddata)
    }

    /// Reads each upright line crop with `traineddata`. An engine reads on one thread, so a lone
    /// request splits its lines between engines on every core (each line is read the same by any
    /// engine, so the answer does not change); under load one engine reads them all.
    fn recognize(&self, traineddata: &str, lines: &[RgbImage]) -> Result<Vec<RecognizedLine>> {
        let read_part = |lines: &[RgbImage]| {
            self.with_engine(traineddata, |handle| {
                lines
                    .iter()
                    .map(|line| {
                        let read = self.read_line(handle, line, PSM_SINGLE_LINE)?;
                        if read.chars.is_empty() {
                            self.read_line(handle, line, PSM_RAW_LINE)
                        } else {
                            Ok(read)
                        }
                    })
                    .collect::<Result<Vec<_>>>()
            })?
        };
        let workers = crate::cpu_budget::spread_workers().min(lines.len());
        if workers < 2 {
            return read_part(lines);
        }
        let parts: Vec<&[RgbImage]> = lines.chunks(lines.len().div_ceil(workers)).collect();
        let read = crate::cpu_budget::spread(parts.len(), workers, |k| read_part(parts[k]));
        Ok(read.into_iter().collect::<Result<Vec<_>>>()?.concat())
    }

    /// The script of `strip` (lines stacked) as Tesseract's script detector names it ("Latin",
    /// "Cyrillic", "Han"...), or None if it is not installed, finds too little, or is not sure.
    fn detect_script(&self, strip: &RgbImage) -> Result<Option<String>> {
        if !self.has("osd") {
            return Ok(None);
        }
        self.with_engine("osd", |handle| -> Result<Option<String>> {
            // SAFETY: a live handle.
            unsafe { (self.api.set_page_seg_mode)(handle, PSM_OSD_ONLY) };
            self.set_image(handle, strip);
            let (mut degrees, mut orientation_confidence) = (0, 0.0);
            let (mut script, mut script_confidence) = (std::ptr::null(), 0.0);
            // SAFETY: a live handle; the script name is a static string owned by Tesseract.
            let found = unsafe {
                (self.api.detect_orientation_script)(
                    handle,
                    &mut degrees,
                    &mut orientation_confidence,
                    &mut script,
                    &mut script_confidence,
                ) != 0
                    && !script.is_null()
            };
            if !found || script_confidence < MIN_SCRIPT_CONFIDENCE {
                return Ok(None);
            }
            // SAFETY: checked non-null above; a NUL-terminated name.
            Ok(Some(
                unsafe { CStr::from_ptr(script) }
                    .to_string_lossy()
                    .into_owned(),
            ))
        })?
    }
}

/// Whether text is in a script written without spaces between words (Thai): Tesseract's word
/// boundaries inside it are not spaces.
fn unspaced(text: &str) -> bool {
    is_all(text, "Thai")
}

fn hangul(text: &str) -> bool {
    is_all(text, "Hangul")
}

/// Whether every character of `text` is in the script named `name`.
fn is_all(text: &str, name: &str) -> bool {
    script_named(name).is_some_and(|script| text.chars().all(|c| script.contains(c)))
}

/// The line scaled so its height is in Tesseract's comfortable range, on a margin of a quarter of
/// that height in the colour of the crop's edge (Tesseract misreads text that touches the image
/// border); and the margin's width.
fn framed_line(line: &RgbImage) -> Result<(RgbImage, u32)> {
    let height = line.height().clamp(MIN_LINE_HEIGHT, MAX_LINE_HEIGHT);
    let width = (line.width() as u64 * height as u64 / line.height().max(1) as u64).max(1) as u32;
    let scaled = resize_bilinear(line, width, height)?;
    let margin = height / 4;
    let mut framed = RgbImage::from_pixel(
        width + 2 * margin,
        height + 2 * margin,
        edge_colour(&scaled),
    );
    image::imageops::replace(&mut framed, &scaled, margin as i64, margin as i64);
    Ok((framed, margin))
}

/// The median colour of the image's outermost pixels: the background around a line crop.
fn edge_colour(image: &RgbImage) -> image::Rgb<u8> {
    let (w, h) = image.dimensions();
    let mut edge: Vec<[u8; 3]> = image
        .enumerate_pixels()
        .filter(|(x, y, _)| *x == 0 || *y == 0 || *x + 1 == w || *y + 1 == h)
        .map(|(_, _, p)| p.0)
        .collect();
    let median = |c: usize, edge: &mut Vec<[u8; 3]>| {
        edge.sort_unstable_by_key(|p| p[c]);
        edge.get(edge.len() / 2).map_or(255, |p| p[c])
    };
    image::Rgb([
        median(0, &mut edge),
        median(1, &mut edge),
        median(2, &mut edge),
    ])
}

impl Drop for Tesseract {
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().expect("the engine pool lock"));
        for engine in idle.into_values().flatten() {
            // SAFETY: each handle is live and used by nobody else once the pool is dropped.
            unsafe { (self.api.delete)(engine.0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_framed_in_their_background_colour() {
        let line = RgbImage::from_fn(100, 20, |x, _| {
            if (40..60).contains(&x) {
                image::Rgb([0, 0, 0])
            } else {
                image::Rgb([200, 210, 220])
            }
        });
        let (framed, margin) = framed_line(&line).unwrap();
        // Scaled to 40 px tall (200 wide), with a 10 px margin of the background all round.
        assert_eq!((framed.dimensions(), margin), ((220, 60), 10));
        assert_eq!(framed.get_pixel(0, 0).0, [200, 210, 220]);
        assert_eq!(framed.get_pixel(110, 30).0, [0, 0, 0]);
    }

    #[test]
    fn thai_runs_are_unspaced_and_others_are_not() {
        assert!(unspaced("สวัสดี") && !unspaced("Привет") && !unspaced("a"));
    }

    #[test]
    fn languages_and_scripts_map_to_installed_traineddata_names() {
        assert_eq!(traineddata_for_language("ru"), Some("rus"));
        assert_eq!(traineddata_for_language("sr-cyrl"), Some("rus"));
        assert_eq!(traineddata_for_language("ar"), Some("ara"));
        assert_eq!(traineddata_for_language("en"), None, "PP-OCR reads Latin");
        assert_eq!(
            traineddata_for_language("ja"),
            None,
            "PP-OCR reads Japanese"
        );
        assert_eq!(script_named("Korean").map(|s| s.traineddata), Some("kor"));
        assert_eq!(
            script_named("Devanagari").map(|s| s.traineddata),
            Some("hin")
        );
        assert!(script_named("Latin").is_none());
    }
}
