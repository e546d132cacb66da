//! Turns request bytes into one RGB image, once per request: format detected from content, sides
//! checked from the header before any pixel buffer is allocated, the pixels taken from the shared
//! budget before they are decoded, EXIF orientation applied. Multi-page documents are decoded a page
//! at a time.

use std::io::Cursor;
use std::sync::Arc;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use super::budget::{PixelBudget, PixelPermit};

/// The input rules of an API family.
#[derive(Debug, Clone)]
pub struct ImageLimits {
    pub max_bytes: usize,
    pub min_side: u32,
    pub max_side: u32,
    pub formats: &'static [ImageFormat],
}

impl ImageLimits {
    /// Both sides within min_side..=max_side, or the error that names them.
    fn check_sides(&self, width: u32, height: u32) -> Result<(), DecodeError> {
        let ok = |side: u32| (self.min_side..=self.max_side).contains(&side);
        if ok(width) && ok(height) {
            return Ok(());
        }
        Err(DecodeError::InvalidSize {
            width,
            height,
            min: self.min_side,
            max: self.max_side,
        })
    }
}

/// Image Analysis 3.2 (analyze, describe, tag, detect, ocr, areaOfInterest, generateThumbnail): JPEG, PNG,
/// GIF, BMP, under 4 MB unless the deployment raises it.
pub const ANALYZE_V32: ImageLimits = ImageLimits {
    max_bytes: 4 * 1024 * 1024,
    min_side: 50,
    max_side: 16000,
    formats: &[
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Gif,
        ImageFormat::Bmp,
    ],
};

/// Image Analysis 4.0: JPEG, PNG, GIF, BMP, WEBP, ICO, TIFF, MPO (a JPEG container), < 20 MB, 50..16000 px.
pub const ANALYZE_V4: ImageLimits = ImageLimits {
    max_bytes: 20 * 1024 * 1024,
    min_side: 50,
    max_side: 16000,
    formats: &[
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Gif,
        ImageFormat::Bmp,
        ImageFormat::WebP,
        ImageFormat::Ico,
        ImageFormat::Tiff,
    ],
};

/// Images a user trains on (customization contract, section 7: 20 MB, sides 10..10,240).
pub const TRAINING: ImageLimits = ImageLimits {
    min_side: 10,
    max_side: 10_240,
    ..ANALYZE_V4
};

/// 4.0's rules without a smallest side: the surfaces of clouds and tools that set none (Google,
/// DeepStack).
pub const ANY_SIDE: ImageLimits = ImageLimits {
    min_side: 1,
    ..ANALYZE_V4
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("Image format is not valid")]
    InvalidFormat,
    #[error("The image dimensions are not allowed: {width}x{height}; each side must be between {min} and {max} pixels")]
    InvalidSize {
        width: u32,
        height: u32,
        min: u32,
        max: u32,
    },
    #[error("The image size is not allowed to be zero or larger than {max} bytes")]
    InvalidByteSize { max: usize },
    #[error("The image has {megapixels} megapixels to decode; this server decodes at most {budget} at once (--max-decode-megapixels)")]
    TooManyPixels { megapixels: u64, budget: u64 },
}

/// A decoded image and the pixels it holds from the budget (released when it is dropped).
pub struct DecodedImage {
    pub rgb: RgbImage,
    pub format: ImageFormat,
    _permit: PixelPermit,
}

/// Takes from the budget what decoding `pixels` costs at its peak, `peak_bytes` a pixel (the budget
/// counts pixels of 3-byte RGB), waiting for them; or says they exceed all of it.
pub fn reserve(
    budget: &Arc<PixelBudget>,
    pixels: u64,
    peak_bytes: u64,
) -> Result<PixelPermit, DecodeError> {
    let cost = (pixels * peak_bytes).div_ceil(3);
    budget.acquire(cost).ok_or(DecodeError::TooManyPixels {
        megapixels: cost.div_ceil(1_000_000),
        budget: budget.total() / 1_000_000,
    })
}

/// Bytes a pixel holds at the peak of decoding to RGB: the decoder's own buffer, and the RGB copy
/// unless the decoder's buffer is RGB already.
fn peak_bytes(native_bytes: u64) -> u64 {
    if native_bytes == 3 {
        3
    } else {
        native_bytes + 3
    }
}

/// The 3.2 Read API: JPEG, PNG, BMP and TIFF (every page of a multi-page TIFF), up to 50 MB and
/// 10000 px a side.
pub const READ: ImageLimits = ImageLimits {
    max_bytes: 50 * 1024 * 1024,
    min_side: 50,
    max_side: 10000,
    formats: &[
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Bmp,
        ImageFormat::Tiff,
    ],
};

/// How many pages a document has (a TIFF's frames, else 1), from its headers alone, checking each
/// page's format and sides: what the Read API validates before it accepts a document.
pub fn count_pages(bytes: &[u8], limits: &ImageLimits) -> Result<usize, DecodeError> {
    check_bytes(bytes, limits)?;
    if !is_tiff(bytes) || !limits.formats.contains(&ImageFormat::Tiff) {
        let (decoder, _) = header(bytes, limits)?;
        let (width, height) = decoder.dimensions();
        limits.check_sides(width, height)?;
        return Ok(1);
    }
    let mut pages = 0;
    tiff_frames(bytes, limits, usize::MAX, |_, _, _| {
        pages += 1;
        Ok::<_, DecodeError>(())
    })?;
    Ok(pages)
}

/// Visits the frames of a TIFF, numbered from 1, at most `max_frames`, after checking each one's
/// sides; `visit` gets the decoder positioned on the frame and its sides.
fn tiff_frames<E: From<DecodeError>>(
    bytes: &[u8],
    limits: &ImageLimits,
    max_frames: usize,
    mut visit: impl FnMut(usize, &mut TiffDecoder, (u32, u32)) -> Result<(), E>,
) -> Result<(), E> {
    let mut decoder =
        tiff::decoder::Decoder::new(Cursor::new(bytes)).map_err(|_| DecodeError::InvalidFormat)?;
    for number in 1..=max_frames {
        let sides = decoder
            .dimensions()
            .map_err(|_| DecodeError::InvalidFormat)?;
        limits.check_sides(sides.0, sides.1)?;
        visit(number, &mut decoder, sides)?;
        if !decoder.more_images() {
            break;
        }
        decoder
            .next_image()
            .map_err(|_| DecodeError::InvalidFormat)?;
    }
    Ok(())
}

type TiffDecoder<'a> = tiff::decoder::Decoder<Cursor<&'a [u8]>>;

fn is_tiff(bytes: &[u8]) -> bool {
    bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*")
}

fn check_bytes(bytes: &[u8], limits: &ImageLimits) -> Result<(), DecodeError> {
    if bytes.is_empty() || bytes.len() > limits.max_bytes {
        return Err(DecodeError::InvalidByteSize {
            max: limits.max_bytes,
        });
    }
    Ok(())
}

/// Which pages of a document to read (numbered from 1), and how many of its pages at most.
pub type PageSelection<'a> = (&'a dyn Fn(usize) -> bool, usize);

/// Hands every selected page of a document to `read`, one at a time, numbered from 1: the frames of
/// a TIFF (1-bit or 8-bit grey, RGB or RGBA), or the one image of any other format `limits` allows.
/// Each page's sides are checked and its pixels taken from the budget before it is decoded, and
/// released before the next page is.
pub fn for_each_page<E: From<DecodeError>>(
    bytes: &[u8],
    limits: &ImageLimits,
    (selected, max_pages): PageSelection,
    budget: &Arc<PixelBudget>,
    mut read: impl FnMut(usize, &RgbImage) -> Result<(), E>,
) -> Result<(), E> {
    if !is_tiff(bytes) || !limits.formats.contains(&ImageFormat::Tiff) {
        let decoded = decode(bytes, limits, budget)?;
        return if selected(1) {
            read(1, &decoded.rgb)
        } else {
            Ok(())
        };
    }
    check_bytes(bytes, limits)?;
    tiff_frames(
        bytes,
        limits,
        max_pages,
        |number, decoder, (width, height)| {
            if !selected(number) {
                return Ok(());
            }
            let colour = decoder
                .colortype()
                .map_err(|_| DecodeError::InvalidFormat)?;
            // 1-bit pages are unpacked to a byte a pixel before the RGB copy.
            let native = match colour {
                tiff::ColorType::Gray(1) => 1,
                other => u64::from(other.bit_depth()) * u64::from(other.num_samples()) / 8,
            };
            let pixels = u64::from(width) * u64::from(height);
            let _permit = reserve(budget, pixels, peak_bytes(native))?;
            let page = tiff_page(decoder, colour, width, height)?;
            read(number, &page)
        },
    )
}

/// The current frame of a TIFF, of colour type `colour`, as RGB.
fn tiff_page(
    decoder: &mut TiffDecoder,
    colour: tiff::ColorType,
    width: u32,
    height: u32,
) -> Result<RgbImage, DecodeError> {
    let tiff::decoder::DecodingResult::U8(data) = decoder
        .read_image()
        .map_err(|_| DecodeError::InvalidFormat)?
    else {
        return Err(DecodeError::InvalidFormat);
    };
    let image = match colour {
        // One bit a pixel (scans and faxes, often CCITT Group 4): rows padded to whole bytes,
        // the first pixel in the highest bit, 1 white (the decoder inverts WhiteIsZero).
        tiff::ColorType::Gray(1) => {
            let row_bytes = width.div_ceil(8) as usize;
            let pixels = data
                .chunks_exact(row_bytes)
                .flat_map(|row| {
                    (0..width as usize).map(move |x| 255 * ((row[x / 8] >> (7 - x % 8)) & 1))
                })
                .collect();
            image::GrayImage::from_raw(width, height, pixels).map(DynamicImage::ImageLuma8)
        }
        tiff::ColorType::Gray(8) => {
            image::GrayImage::from_raw(width, height, data).map(DynamicImage::ImageLuma8)
        }
        tiff::ColorType::RGB(8) => {
            RgbImage::from_raw(width, height, data).map(DynamicImage::ImageRgb8)
        }
        tiff::ColorType::RGBA(8) => {
            image::RgbaImage::from_raw(width, height, data).map(DynamicImage::ImageRgba8)
        }
        _ => None,
    }
    .ok_or(DecodeError::InvalidFormat)?;
    Ok(image.into_rgb8())
}

/// The PNG inside an icon, if the entry the decoder would pick (most bits, then most pixels) holds
/// one. Modern icons (Pillow's, Windows Vista's 256 px entries) store PNG, often RGB, which the icon
/// decoder refuses unless it is RGBA; vista decodes that PNG itself.
fn png_in_icon(bytes: &[u8]) -> Option<&[u8]> {
    let count = u16::from_le_bytes(bytes.get(4..6)?.try_into().ok()?) as usize;
    let entry = (0..count)
        .filter_map(|i| bytes.get(6 + 16 * i..6 + 16 * (i + 1)))
        .max_by_key(|e| {
            let side = |b: u8| if b == 0 { 256u32 } else { u32::from(b) };
            (u16::from_le_bytes([e[6], e[7]]), side(e[0]) * side(e[1]))
        })?;
    let length = u32::from_le_bytes(entry[8..12].try_into().ok()?) as usize;
    let offset = u32::from_le_bytes(entry[12..16].try_into().ok()?) as usize;
    let data = bytes.get(offset..offset.checked_add(length)?)?;
    data.starts_with(b"\x89PNG\r\n\x1a\n").then_some(data)
}

/// The format (one `limits` allows) and a decoder over the pixels, from the header alone. An icon
/// holding a PNG is decoded as that PNG, and still reported as an icon.
fn header<'a>(
    bytes: &'a [u8],
    limits: &ImageLimits,
) -> Result<(Box<dyn image::ImageDecoder + 'a>, ImageFormat), DecodeError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| DecodeError::InvalidFormat)?;
    let format = reader
        .format()
        .filter(|f| limits.formats.contains(f))
        .ok_or(DecodeError::InvalidFormat)?;
    let mut reader = match png_in_icon(bytes).filter(|_| format == ImageFormat::Ico) {
        Some(png) => ImageReader::with_format(Cursor::new(png), ImageFormat::Png),
        None => ImageReader::with_format(Cursor::new(bytes), format),
    };
    // Header parsing allocates nothing sizeable; the pixel budget is set from the checked sides.
    reader.no_limits();
    let decoder = reader
        .into_decoder()
        .map_err(|_| DecodeError::InvalidFormat)?;
    Ok((Box::new(decoder), format))
}

/// Decodes one image, once its pixels are free in the budget (waiting for them if others hold them).
pub fn decode(
    bytes: &[u8],
    limits: &ImageLimits,
    budget: &Arc<PixelBudget>,
) -> Result<DecodedImage, DecodeError> {
    check_bytes(bytes, limits)?;
    let (mut decoder, format) = header(bytes, limits)?;
    let (width, height) = decoder.dimensions();
    limits.check_sides(width, height)?;
    // Decoded in its own colour type, then converted: any other type than RGB holds its own buffer
    // and the RGB copy at once, and pays for both.
    let native_bytes = u64::from(decoder.color_type().bytes_per_pixel());
    let pixels = u64::from(width) * u64::from(height);
    let permit = reserve(budget, pixels, peak_bytes(native_bytes))?;
    let mut limits_of_decode = image::Limits::default();
    limits_of_decode.max_image_width = Some(limits.max_side);
    limits_of_decode.max_image_height = Some(limits.max_side);
    // Enough for 16-bit RGBA of the declared size, and no more: a lying header cannot grow it.
    limits_of_decode.max_alloc = Some(pixels * 8 + (1 << 20));
    decoder
        .set_limits(limits_of_decode)
        .map_err(|_| DecodeError::InvalidFormat)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|_| DecodeError::InvalidFormat)?;
    image.apply_orientation(orientation);
    Ok(DecodedImage {
        rgb: image.into_rgb8(),
        format,
        _permit: permit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, Rgb};

    fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        // Icons carry RGBA (the ICO decoder refuses an RGB PNG inside).
        let image = match format {
            ImageFormat::Ico => DynamicImage::ImageRgb8(image.clone()).to_rgba8().into(),
            _ => DynamicImage::ImageRgb8(image.clone()),
        };
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    /// A budget that never makes a test wait.
    fn budget() -> Arc<PixelBudget> {
        PixelBudget::new(u64::MAX / 2)
    }

    /// The first pixel's red of every selected page, through `for_each_page`.
    fn page_shades(
        bytes: &[u8],
        selected: &dyn Fn(usize) -> bool,
        max_pages: usize,
    ) -> Result<Vec<u8>, DecodeError> {
        let mut shades = Vec::new();
        for_each_page(bytes, &READ, (selected, max_pages), &budget(), |_, page| {
            shades.push(page.get_pixel(0, 0).0[0]);
            Ok::<_, DecodeError>(())
        })?;
        Ok(shades)
    }

    fn gradient(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| Rgb([x as u8, y as u8, 128]))
    }

    #[test]
    fn every_page_of_a_tiff_is_decoded_and_other_formats_are_one_page() {
        let mut tiff = Cursor::new(Vec::new());
        {
            let mut encoder = tiff::encoder::TiffEncoder::new(&mut tiff).unwrap();
            for shade in [10u8, 20, 30] {
                let pixels = vec![shade; 64 * 60 * 3];
                encoder
                    .write_image::<tiff::encoder::colortype::RGB8>(64, 60, &pixels)
                    .unwrap();
            }
        }
        let all = |_: usize| true;
        assert_eq!(
            page_shades(tiff.get_ref(), &all, 2000).unwrap(),
            [10, 20, 30]
        );
        assert_eq!(
            page_shades(tiff.get_ref(), &all, 2).unwrap(),
            [10, 20],
            "the page cap holds"
        );
        assert_eq!(
            page_shades(tiff.get_ref(), &|p| p != 2, 2000).unwrap(),
            [10, 30],
            "only selected pages are read"
        );
        assert_eq!(count_pages(tiff.get_ref(), &READ), Ok(3));
        let png = encode(&gradient(64, 60), ImageFormat::Png);
        assert_eq!(page_shades(&png, &all, 2000).unwrap().len(), 1);
        assert_eq!(count_pages(&png, &READ), Ok(1));
        assert!(
            page_shades(&tiff.get_ref()[..200], &all, 2000).is_err(),
            "truncated"
        );
    }

    #[test]
    fn documents_are_checked_from_their_headers() {
        let small = encode(&gradient(10, 10), ImageFormat::Png);
        assert!(matches!(
            count_pages(&small, &READ),
            Err(DecodeError::InvalidSize { width: 10, .. })
        ));
        assert_eq!(
            count_pages(b"%!PS-Adobe not an image", &READ),
            Err(DecodeError::InvalidFormat)
        );
        let gif = encode(&gradient(64, 60), ImageFormat::Gif);
        assert_eq!(count_pages(&gif, &READ), Err(DecodeError::InvalidFormat));
    }

    #[test]
    fn decodes_wait_for_the_pixel_budget_and_larger_images_are_refused() {
        let png = encode(&gradient(100, 100), ImageFormat::Png);
        let small = PixelBudget::new(9_999);
        assert_eq!(
            decode(&png, &ANALYZE_V4, &small).err(),
            Some(DecodeError::TooManyPixels {
                megapixels: 1,
                budget: 0
            })
        );
        // A 16-bit RGBA image pays for its 8-byte buffer and the RGB copy: 11/3 of its pixels.
        let wide = {
            let mut out = Cursor::new(Vec::new());
            DynamicImage::ImageRgba16(DynamicImage::ImageRgb8(gradient(100, 100)).to_rgba16())
                .write_to(&mut out, ImageFormat::Png)
                .unwrap();
            out.into_inner()
        };
        assert!(decode(&wide, &ANALYZE_V4, &PixelBudget::new(36_666)).is_err());
        assert!(decode(&wide, &ANALYZE_V4, &PixelBudget::new(36_667)).is_ok());
        let budget = PixelBudget::new(15_000);
        let held = decode(&png, &ANALYZE_V4, &budget).unwrap();
        let (sender, received) = std::sync::mpsc::channel();
        let second = {
            let (budget, png) = (Arc::clone(&budget), png.clone());
            std::thread::spawn(move || {
                let decoded = decode(&png, &ANALYZE_V4, &budget).map(|d| d.rgb.dimensions());
                sender.send(decoded).unwrap();
            })
        };
        assert!(
            received
                .recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "the second image waits while the first holds the budget"
        );
        drop(held);
        assert_eq!(
            received
                .recv_timeout(std::time::Duration::from_secs(5))
                .unwrap(),
            Ok((100, 100))
        );
        second.join().unwrap();
    }

    #[test]
    fn icons_holding_rgb_or_rgba_pngs_decode() {
        // An icon directory with one 64x60 entry whose data is a PNG (as Pillow and Windows write
        // them), first RGB, then RGBA.
        for png in [encode(&gradient(64, 60), ImageFormat::Png), {
            let mut out = Cursor::new(Vec::new());
            DynamicImage::ImageRgb8(gradient(64, 60))
                .to_rgba8()
                .write_to(&mut out, ImageFormat::Png)
                .unwrap();
            out.into_inner()
        }] {
            let mut ico = vec![0, 0, 1, 0, 1, 0, 64, 60, 0, 0, 1, 0, 32, 0];
            ico.extend_from_slice(&(png.len() as u32).to_le_bytes());
            ico.extend_from_slice(&22u32.to_le_bytes());
            ico.extend_from_slice(&png);
            let decoded = decode(&ico, &ANALYZE_V4, &budget()).unwrap();
            assert_eq!(decoded.format, ImageFormat::Ico);
            assert_eq!(decoded.rgb.get_pixel(10, 20), &Rgb([10, 20, 128]));
        }
    }

    #[test]
    fn every_v4_format_decodes_from_content_alone() {
        let image = gradient(64, 60);
        for format in [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Gif,
            ImageFormat::Bmp,
            ImageFormat::Tiff,
            ImageFormat::WebP,
            ImageFormat::Ico,
        ] {
            let decoded = decode(&encode(&image, format), &ANALYZE_V4, &budget())
                .unwrap_or_else(|e| panic!("{format:?}: {e}"));
            assert_eq!(decoded.format, format);
            assert_eq!(decoded.rgb.dimensions(), (64, 60));
        }
    }

    #[test]
    fn sides_outside_the_limits_are_refused_before_decoding() {
        let small = encode(&gradient(49, 80), ImageFormat::Png);
        assert!(matches!(
            decode(&small, &ANALYZE_V4, &budget()),
            Err(DecodeError::InvalidSize { width: 49, .. })
        ));
        // A BMP header claiming 20000x20000 px (1.2 GB of pixels) over a 50x50 body: refused from the
        // header, before any pixel buffer exists.
        let mut bomb = encode(&gradient(50, 50), ImageFormat::Bmp);
        bomb[18..22].copy_from_slice(&20000i32.to_le_bytes());
        bomb[22..26].copy_from_slice(&20000i32.to_le_bytes());
        assert!(matches!(
            decode(&bomb, &ANALYZE_V4, &budget()),
            Err(DecodeError::InvalidSize { width: 20000, .. })
        ));
    }

    #[test]
    fn the_largest_allowed_image_decodes() {
        // 16000 x 50 and 50 x 16000 sit on the limits; a uniform PNG keeps the test small.
        for (w, h) in [(16000, 50), (50, 16000)] {
            let png = encode(
                &RgbImage::from_pixel(w, h, Rgb([9, 9, 9])),
                ImageFormat::Png,
            );
            assert_eq!(
                decode(&png, &ANALYZE_V4, &budget())
                    .unwrap()
                    .rgb
                    .dimensions(),
                (w, h)
            );
        }
    }

    #[test]
    fn garbage_truncated_and_empty_inputs_are_errors_not_panics() {
        assert_eq!(
            decode(b"definitely not an image", &ANALYZE_V4, &budget()).err(),
            Some(DecodeError::InvalidFormat)
        );
        let png = encode(&gradient(80, 80), ImageFormat::Png);
        assert_eq!(
            decode(&png[..png.len() / 2], &ANALYZE_V4, &budget()).err(),
            Some(DecodeError::InvalidFormat)
        );
        assert!(matches!(
            decode(b"", &ANALYZE_V4, &budget()),
            Err(DecodeError::InvalidByteSize { .. })
        ));
    }

    #[test]
    fn mpo_decodes_as_its_first_image() {
        // An MPO file is a JPEG whose APP2 "MPF" segment indexes further images appended after it.
        let first = encode(&gradient(80, 60), ImageFormat::Jpeg);
        let mut mpo = first[..2].to_vec();
        let payload: &[u8] = b"MPF\0MM\0\x2a\0\0\0\x08\0\0";
        mpo.extend_from_slice(&[0xFF, 0xE2, 0x00, (payload.len() + 2) as u8]);
        mpo.extend_from_slice(payload);
        mpo.extend_from_slice(&first[2..]);
        mpo.extend_from_slice(&encode(&gradient(120, 90), ImageFormat::Jpeg)); // the second image
        let decoded = decode(&mpo, &ANALYZE_V4, &budget()).unwrap();
        assert_eq!(
            (decoded.format, decoded.rgb.dimensions()),
            (ImageFormat::Jpeg, (80, 60))
        );
    }

    #[test]
    fn exif_orientation_is_applied() {
        // A 100x60 JPEG tagged "rotate 90 CW" (orientation 6) must come out 60x100.
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .write_image(
                gradient(100, 60).as_raw(),
                100,
                60,
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        let exif: &[u8] = &[
            0xFF, 0xE1, 0x00, 0x22, b'E', b'x', b'i', b'f', 0, 0, // APP1 header, length 34
            b'M', b'M', 0x00, 0x2A, 0, 0, 0, 8, // TIFF header, big endian, IFD at 8
            0x00, 0x01, // one entry
            0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1, 0x00, 0x06, 0x00, 0x00, // Orientation = 6
            0, 0, 0, 0, // no next IFD
        ];
        let mut tagged = jpeg[..2].to_vec();
        tagged.extend_from_slice(exif);
        tagged.extend_from_slice(&jpeg[2..]);
        let decoded = decode(&tagged, &ANALYZE_V4, &budget()).unwrap();
        assert_eq!(decoded.rgb.dimensions(), (60, 100));
    }
}
