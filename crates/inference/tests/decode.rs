//! Decoding: formats detected by content, EXIF orientation, colour conversions, and bad files that
//! must come back as typed errors rather than panics.

use std::io::Cursor;

use image::{
    DynamicImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, RgbImage, Rgba,
    codecs::jpeg::JpegEncoder,
};
use mole_inference::{DecodeLimits, InferenceError, decode_image, sniff_format};

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, format)
        .expect("encoding a test image");
    out.into_inner()
}

/// Left half red, right half blue: orientation errors move the colours somewhere visible.
fn red_left_blue_right(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, _| {
        if x < w / 2 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    })
}

fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 95)
        .encode_image(image)
        .unwrap();
    out
}

/// A JPEG with an EXIF APP1 segment holding only the orientation tag, inserted right after SOI.
fn jpeg_with_orientation(image: &RgbImage, orientation: u16) -> Vec<u8> {
    let plain = jpeg(image);
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // big-endian TIFF header, IFD at offset 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

fn is_red(p: &Rgb<u8>) -> bool {
    p[0] > 200 && p[1] < 60 && p[2] < 60
}

fn is_blue(p: &Rgb<u8>) -> bool {
    p[0] < 60 && p[1] < 60 && p[2] > 200
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG signature and IHDR (valid CRC) claiming `w × h` RGB pixels, then a tiny IDAT and IEND.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        c.extend_from_slice(&body);
        c.extend_from_slice(&crc32(&body).to_be_bytes());
        c
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

#[test]
fn an_empty_file_is_reported_as_empty() {
    assert!(matches!(
        decode_image(&[], &limits()),
        Err(InferenceError::Empty)
    ));
}

#[test]
fn text_is_reported_as_not_an_image() {
    let err = decode_image(b"hello, I am certainly not a photo of a mole", &limits()).unwrap_err();
    assert!(matches!(err, InferenceError::NotAnImage), "{err:?}");
    assert!(err.is_bad_input());
}

#[test]
fn a_truncated_jpeg_is_a_typed_bad_input_error() {
    let noise = RgbImage::from_fn(256, 256, |x, y| {
        Rgb([(x * 7 + y) as u8, (x ^ y) as u8, (x * y) as u8])
    });
    let bytes = jpeg(&noise);
    for cut in [4, 20, bytes.len() / 3, bytes.len() / 2, bytes.len() - 10] {
        let err = decode_image(&bytes[..cut], &limits()).unwrap_err();
        assert!(err.is_bad_input(), "cut at {cut}: {err:?}");
        assert!(
            matches!(
                err,
                InferenceError::Truncated { .. } | InferenceError::Decode { .. }
            ),
            "cut at {cut}: {err:?}"
        );
    }
}

#[test]
fn a_truncated_jpeg_is_caught_even_when_its_exif_thumbnail_is_complete() {
    let thumbnail = jpeg(&red_left_blue_right(8, 8));
    let main = jpeg(&RgbImage::from_fn(128, 128, |x, y| {
        Rgb([x as u8, y as u8, (x * y) as u8])
    }));
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&thumbnail);
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE1];
    bytes.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    bytes.extend_from_slice(&app1);
    bytes.extend_from_slice(&main[2..]);
    assert!(
        decode_image(&bytes, &limits()).is_ok(),
        "the complete file decodes"
    );
    let cut = &bytes[..bytes.len() - main.len() / 3];
    let err = decode_image(cut, &limits()).unwrap_err();
    assert!(matches!(err, InferenceError::Truncated { .. }), "{err:?}");
}

#[test]
fn a_truncated_png_is_reported_as_truncated_or_corrupt() {
    let bytes = encode(
        &DynamicImage::ImageRgb8(red_left_blue_right(64, 64)),
        ImageFormat::Png,
    );
    let err = decode_image(&bytes[..bytes.len() - 40], &limits()).unwrap_err();
    assert!(
        matches!(
            err,
            InferenceError::Truncated { .. } | InferenceError::Decode { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn a_png_header_claiming_100000_by_100000_pixels_is_too_large() {
    let err = decode_image(&png_claiming(100_000, 100_000), &limits()).unwrap_err();
    assert!(matches!(err, InferenceError::TooLarge { .. }), "{err:?}");
    assert!(err.is_bad_input());
}

#[test]
fn a_png_within_the_side_limit_but_over_the_pixel_limit_is_too_large() {
    let limits = DecodeLimits {
        max_pixels: 1_000_000,
        ..DecodeLimits::default()
    };
    let err = decode_image(&png_claiming(2000, 2000), &limits).unwrap_err();
    assert!(matches!(err, InferenceError::TooLarge { .. }), "{err:?}");
}

#[test]
fn a_jpeg_header_claiming_60000_by_60000_pixels_is_too_large() {
    let mut bytes = jpeg(&red_left_blue_right(16, 16));
    // SOF0: FF C0, length (2), precision (1), height (2), width (2).
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline JPEG has SOF0");
    bytes[sof + 5..sof + 7].copy_from_slice(&60_000u16.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&60_000u16.to_be_bytes());
    let err = decode_image(&bytes, &limits()).unwrap_err();
    assert!(matches!(err, InferenceError::TooLarge { .. }), "{err:?}");
}

#[test]
fn heic_is_refused_by_name_with_a_suggestion_to_send_jpeg() {
    let mut heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    heic.extend_from_slice(&[0; 64]);
    let err = decode_image(&heic, &limits()).unwrap_err();
    match &err {
        InferenceError::UnsupportedFormat { format } => assert_eq!(format, "HEIC"),
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("HEIC") && message.contains("JPEG"),
        "{message}"
    );
    assert!(err.is_bad_input());
}

#[test]
fn avif_is_refused_as_unsupported() {
    let avif = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf\0\0\0\0";
    let err = decode_image(avif, &limits()).unwrap_err();
    assert!(
        matches!(&err, InferenceError::UnsupportedFormat { format } if format == "AVIF"),
        "{err:?}"
    );
}

#[test]
fn formats_phones_do_not_produce_are_refused_even_when_image_could_read_them() {
    let mut ppm = b"P6\n2 2\n255\n".to_vec();
    ppm.extend_from_slice(&[200; 12]);
    let err = decode_image(&ppm, &limits()).unwrap_err();
    assert!(
        matches!(err, InferenceError::UnsupportedFormat { .. }),
        "{err:?}"
    );
}

#[test]
fn jpeg_png_webp_tiff_bmp_and_gif_are_detected_by_content_and_decoded() {
    let image = DynamicImage::ImageRgb8(red_left_blue_right(40, 20));
    for format in [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::WebP,
        ImageFormat::Tiff,
        ImageFormat::Bmp,
        ImageFormat::Gif,
    ] {
        let bytes = encode(&image, format);
        assert_eq!(sniff_format(&bytes).unwrap(), format);
        let decoded = decode_image(&bytes, &limits()).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(decoded.dimensions(), (40, 20), "{format:?}");
        assert!(
            is_red(decoded.get_pixel(5, 10)),
            "{format:?}: {:?}",
            decoded.get_pixel(5, 10)
        );
        assert!(
            is_blue(decoded.get_pixel(35, 10)),
            "{format:?}: {:?}",
            decoded.get_pixel(35, 10)
        );
    }
}

#[test]
fn exif_orientation_6_rotates_a_wide_jpeg_clockwise_into_a_tall_one() {
    let bytes = jpeg_with_orientation(&red_left_blue_right(64, 32), 6);
    let img = decode_image(&bytes, &limits()).unwrap();
    assert_eq!(img.dimensions(), (32, 64));
    assert!(is_red(img.get_pixel(16, 8)), "{:?}", img.get_pixel(16, 8));
    assert!(
        is_blue(img.get_pixel(16, 56)),
        "{:?}",
        img.get_pixel(16, 56)
    );
}

#[test]
fn exif_orientation_8_rotates_a_wide_jpeg_counter_clockwise() {
    let bytes = jpeg_with_orientation(&red_left_blue_right(64, 32), 8);
    let img = decode_image(&bytes, &limits()).unwrap();
    assert_eq!(img.dimensions(), (32, 64));
    assert!(is_blue(img.get_pixel(16, 8)), "{:?}", img.get_pixel(16, 8));
    assert!(is_red(img.get_pixel(16, 56)), "{:?}", img.get_pixel(16, 56));
}

#[test]
fn exif_orientation_3_turns_a_jpeg_upside_down() {
    let bytes = jpeg_with_orientation(&red_left_blue_right(64, 32), 3);
    let img = decode_image(&bytes, &limits()).unwrap();
    assert_eq!(img.dimensions(), (64, 32));
    assert!(is_blue(img.get_pixel(8, 16)) && is_red(img.get_pixel(56, 16)));
}

#[test]
fn exif_orientation_1_leaves_the_jpeg_as_stored() {
    let bytes = jpeg_with_orientation(&red_left_blue_right(64, 32), 1);
    let img = decode_image(&bytes, &limits()).unwrap();
    assert_eq!(img.dimensions(), (64, 32));
    assert!(is_red(img.get_pixel(8, 16)) && is_blue(img.get_pixel(56, 16)));
}

#[test]
fn greyscale_becomes_rgb_with_equal_channels() {
    let grey = DynamicImage::ImageLuma8(ImageBuffer::from_fn(8, 8, |x, _| Luma([(x * 30) as u8])));
    let img = decode_image(&encode(&grey, ImageFormat::Png), &limits()).unwrap();
    assert_eq!(img.get_pixel(3, 0), &Rgb([90, 90, 90]));
    let grey_alpha = DynamicImage::ImageLumaA8(ImageBuffer::from_pixel(4, 4, LumaA([77u8, 10])));
    let img = decode_image(&encode(&grey_alpha, ImageFormat::Png), &limits()).unwrap();
    assert_eq!(img.get_pixel(0, 0), &Rgb([77, 77, 77]));
}

#[test]
fn alpha_is_dropped_without_blending() {
    let rgba = DynamicImage::ImageRgba8(ImageBuffer::from_pixel(4, 4, Rgba([10u8, 20, 30, 0])));
    let img = decode_image(&encode(&rgba, ImageFormat::Png), &limits()).unwrap();
    assert_eq!(img.get_pixel(1, 1), &Rgb([10, 20, 30]));
}

#[test]
fn sixteen_bit_images_are_scaled_down_to_eight_bits() {
    let rgb16 = DynamicImage::ImageRgb16(ImageBuffer::from_pixel(4, 4, Rgb([65535u16, 32896, 0])));
    let img = decode_image(&encode(&rgb16, ImageFormat::Png), &limits()).unwrap();
    assert_eq!(img.get_pixel(0, 0), &Rgb([255, 128, 0]));
    let grey16 = DynamicImage::ImageLuma16(ImageBuffer::from_pixel(4, 4, Luma([257u16 * 200])));
    let img = decode_image(&encode(&grey16, ImageFormat::Png), &limits()).unwrap();
    assert_eq!(img.get_pixel(0, 0), &Rgb([200, 200, 200]));
}

#[test]
fn a_cmyk_tiff_becomes_rgb() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let bytes = std::fs::read(dir.join("cmyk.tif")).unwrap();
    let img = decode_image(&bytes, &limits()).unwrap();
    assert_eq!(img.dimensions(), (32, 16));
    assert!(is_red(img.get_pixel(4, 8)), "{:?}", img.get_pixel(4, 8));
    assert!(is_blue(img.get_pixel(28, 8)), "{:?}", img.get_pixel(28, 8));
}

#[test]
fn a_cmyk_jpeg_is_refused_with_a_clear_reason_instead_of_going_to_another_decoder() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let bytes = std::fs::read(dir.join("cmyk.jpg")).unwrap();
    let err = decode_image(&bytes, &limits()).unwrap_err();
    assert!(err.is_bad_input(), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("4 components"), "{message}");
    assert!(message.contains("please send"), "{message}");
}

#[test]
fn the_first_frame_of_an_animated_gif_is_used() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame};
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut bytes);
        let red = ImageBuffer::from_pixel(8, 8, Rgba([255u8, 0, 0, 255]));
        let blue = ImageBuffer::from_pixel(8, 8, Rgba([0u8, 0, 255, 255]));
        enc.encode_frames([
            Frame::from_parts(red, 0, 0, Delay::from_numer_denom_ms(100, 1)),
            Frame::from_parts(blue, 0, 0, Delay::from_numer_denom_ms(100, 1)),
        ])
        .unwrap();
    }
    let img = decode_image(&bytes, &limits()).unwrap();
    assert!(is_red(img.get_pixel(4, 4)), "{:?}", img.get_pixel(4, 4));
}

#[test]
fn random_garbage_after_a_valid_signature_never_panics() {
    // Deterministic pseudo-random bodies behind each accepted signature.
    let signatures: [&[u8]; 6] = [
        b"\xFF\xD8\xFF\xE0",
        b"\x89PNG\r\n\x1a\n",
        b"RIFF\0\0\0\0WEBPVP8 ",
        b"II*\0",
        b"BM",
        b"GIF89a",
    ];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for sig in signatures {
        for len in [0usize, 10, 100, 1000, 5000] {
            let mut bytes = sig.to_vec();
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.push(state as u8);
            }
            if let Err(err) = decode_image(&bytes, &limits()) {
                assert!(err.is_bad_input(), "{err:?}");
            }
        }
    }
}

#[test]
fn every_file_of_the_jpeg_fuzz_corpus_decodes_or_is_refused_without_a_panic() {
    // The corpus of crates/inference/fuzz (seeds and what fuzzing kept): a regression check that
    // runs on stable in every test run, not only under the fuzzer.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/jpeg");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let decoded =
            std::panic::catch_unwind(|| mole_inference::jpeg::decode_rgb(&bytes, 64 << 20));
        assert!(decoded.is_ok(), "the decoder panicked on a corpus file");
        if let Err(err) = decode_image(&bytes, &limits()) {
            assert!(err.is_bad_input(), "{err:?}");
        }
        files += 1;
    }
    assert!(files >= 7, "the corpus is in {}", dir.display());
}
