//! Turns request bytes into one RGB image, once per request: format detected from content, sides
//! checked from the header before any pixel buffer is allocated, EXIF orientation applied.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

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
}

pub struct DecodedImage {
    pub rgb: RgbImage,
    pub format: ImageFormat,
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

/// Every page of a document: the frames of a TIFF (1-bit or 8-bit grey, RGB or RGBA), or the one image of any
/// other format `limits` allows. Each page's sides are checked before its pixels are read.
pub fn decode_pages(
    bytes: &[u8],
    limits: &ImageLimits,
    max_pages: usize,
) -> Result<Vec<RgbImage>, DecodeError> {
    let tiff = bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*");
    if !tiff || !limits.formats.contains(&ImageFormat::Tiff) {
        return Ok(vec![decode(bytes, limits)?.rgb]);
    }
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::InvalidByteSize {
            max: limits.max_bytes,
        });
    }
    let mut decoder =
        tiff::decoder::Decoder::new(Cursor::new(bytes)).map_err(|_| DecodeError::InvalidFormat)?;
    let mut pages = Vec::new();
    loop {
        let (width, height) = decoder
            .dimensions()
            .map_err(|_| DecodeError::InvalidFormat)?;
        limits.check_sides(width, height)?;
        let colour = decoder
            .colortype()
            .map_err(|_| DecodeError::InvalidFormat)?;
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
        pages.push(image.into_rgb8());
        if pages.len() >= max_pages || !decoder.more_images() {
            return Ok(pages);
        }
        decoder
            .next_image()
            .map_err(|_| DecodeError::InvalidFormat)?;
    }
}

pub fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<DecodedImage, DecodeError> {
    if bytes.is_empty() || bytes.len() > limits.max_bytes {
        return Err(DecodeError::InvalidByteSize {
            max: limits.max_bytes,
        });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| DecodeError::InvalidFormat)?;
    let format = reader
        .format()
        .filter(|f| limits.formats.contains(f))
        .ok_or(DecodeError::InvalidFormat)?;
    // Header parsing allocates nothing sizeable; the pixel budget is set below, from the checked sides.
    reader.no_limits();
    let mut decoder = reader
        .into_decoder()
        .map_err(|_| DecodeError::InvalidFormat)?;
    let (width, height) = decoder.dimensions();
    limits.check_sides(width, height)?;
    let mut budget = image::Limits::default();
    budget.max_image_width = Some(limits.max_side);
    budget.max_image_height = Some(limits.max_side);
    // Enough for 16-bit RGBA of the declared size, and no more: a lying header cannot grow it.
    budget.max_alloc = Some(width as u64 * height as u64 * 8 + (1 << 20));
    decoder
        .set_limits(budget)
        .map_err(|_| DecodeError::InvalidFormat)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|_| DecodeError::InvalidFormat)?;
    image.apply_orientation(orientation);
    Ok(DecodedImage {
        rgb: image.into_rgb8(),
        format,
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
        let pages = decode_pages(tiff.get_ref(), &READ, 2000).unwrap();
        assert_eq!(
            pages
                .iter()
                .map(|p| p.get_pixel(0, 0).0[0])
                .collect::<Vec<_>>(),
            [10, 20, 30]
        );
        assert_eq!(
            decode_pages(tiff.get_ref(), &READ, 2).unwrap().len(),
            2,
            "the page cap holds"
        );
        assert_eq!(
            decode_pages(&encode(&gradient(64, 60), ImageFormat::Png), &READ, 2000)
                .unwrap()
                .len(),
            1
        );
        assert!(
            decode_pages(&tiff.get_ref()[..200], &READ, 2000).is_err(),
            "truncated"
        );
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
            let decoded = decode(&encode(&image, format), &ANALYZE_V4)
                .unwrap_or_else(|e| panic!("{format:?}: {e}"));
            assert_eq!(decoded.format, format);
            assert_eq!(decoded.rgb.dimensions(), (64, 60));
        }
    }

    #[test]
    fn sides_outside_the_limits_are_refused_before_decoding() {
        let small = encode(&gradient(49, 80), ImageFormat::Png);
        assert!(matches!(
            decode(&small, &ANALYZE_V4),
            Err(DecodeError::InvalidSize { width: 49, .. })
        ));
        // A BMP header claiming 20000x20000 px (1.2 GB of pixels) over a 50x50 body: refused from the
        // header, before any pixel buffer exists.
        let mut bomb = encode(&gradient(50, 50), ImageFormat::Bmp);
        bomb[18..22].copy_from_slice(&20000i32.to_le_bytes());
        bomb[22..26].copy_from_slice(&20000i32.to_le_bytes());
        assert!(matches!(
            decode(&bomb, &ANALYZE_V4),
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
            assert_eq!(decode(&png, &ANALYZE_V4).unwrap().rgb.dimensions(), (w, h));
        }
    }

    #[test]
    fn garbage_truncated_and_empty_inputs_are_errors_not_panics() {
        assert_eq!(
            decode(b"definitely not an image", &ANALYZE_V4).err(),
            Some(DecodeError::InvalidFormat)
        );
        let png = encode(&gradient(80, 80), ImageFormat::Png);
        assert_eq!(
            decode(&png[..png.len() / 2], &ANALYZE_V4).err(),
            Some(DecodeError::InvalidFormat)
        );
        assert!(matches!(
            decode(b"", &ANALYZE_V4),
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
        let decoded = decode(&mpo, &ANALYZE_V4).unwrap();
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
        let decoded = decode(&tagged, &ANALYZE_V4).unwrap();
        assert_eq!(decoded.rgb.dimensions(), (60, 100));
    }
}
