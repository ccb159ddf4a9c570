//! The Rust path reproduces Pillow's pixels exactly: JPEG decoding (libjpeg-turbo under Pillow)
//! and the contract's crop + bilinear resize (training/mole_train/images.py::contract_uint8).
//! References are written by tests/data/make_pillow_references.py.

use std::path::PathBuf;

use image::RgbImage;
use mole_inference::preprocess::{centre_crop, resize_square};
use mole_inference::{DecodeLimits, decode_image};

fn cases() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/pillow");
    let mut jpegs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    jpegs.sort();
    assert!(
        jpegs.len() >= 7,
        "reference JPEGs missing in {}",
        dir.display()
    );
    jpegs
}

fn reference(jpeg: &std::path::Path, suffix: &str) -> RgbImage {
    let path = jpeg.with_extension(suffix);
    image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

fn count_differences(a: &RgbImage, b: &RgbImage) -> usize {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .filter(|(x, y)| x != y)
        .count()
}

#[test]
fn jpeg_decoding_matches_pillow_bit_for_bit() {
    for jpeg in cases() {
        let decoded =
            decode_image(&std::fs::read(&jpeg).unwrap(), &DecodeLimits::default()).unwrap();
        let expected = reference(&jpeg, "decoded.png");
        assert_eq!(
            count_differences(&decoded, &expected),
            0,
            "{}",
            jpeg.display()
        );
    }
}

#[test]
fn crop_and_resize_match_pillow_bit_for_bit_when_shrinking_and_enlarging() {
    for jpeg in cases() {
        let decoded =
            decode_image(&std::fs::read(&jpeg).unwrap(), &DecodeLimits::default()).unwrap();
        let square = centre_crop(decoded);
        for size in [16, 64] {
            let expected = reference(&jpeg, &format!("contract{size}.png"));
            let got = resize_square(&square, size);
            assert_eq!(
                count_differences(&got, &expected),
                0,
                "{} at {size}",
                jpeg.display()
            );
        }
    }
}
