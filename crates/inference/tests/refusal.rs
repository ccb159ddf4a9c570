//! Refusal of photos the model cannot judge, and the occlusion map, on the shipped model.

mod common;

use image::{Rgb, RgbImage};
use mole_inference::{
    Classifier, ClassifierConfig, InferenceError, MapProgress, ModelCard, RefusalReason,
    decode_image,
};

fn classifier() -> Classifier {
    Classifier::load(&common::card_path(), ClassifierConfig::default()).expect("the shipped model")
}

fn lesion(name: &str) -> RgbImage {
    let path = common::workspace_root()
        .join("tests/fixtures/ham10000")
        .join(name);
    decode_image(&std::fs::read(path).unwrap(), &Default::default()).unwrap()
}

fn refusal_of(c: &Classifier, image: RgbImage) -> Option<RefusalReason> {
    let p = c.preprocess_image(image);
    c.predict(std::slice::from_ref(&p)).unwrap()[0].refusal
}

#[test]
fn the_shipped_card_refuses_and_every_prediction_carries_the_photo_signals() {
    let c = classifier();
    let spec = c
        .card()
        .refusal
        .as_ref()
        .expect("mole-v2 has a refusal section");
    assert!(spec.ood_max > 0.0 && spec.luma_min < spec.luma_max);
    let p = c
        .predict(&[c.preprocess_image(lesion("ISIC_0025314.jpg"))])
        .unwrap();
    let s = p[0].signals.expect("signals");
    assert!(s.ood.is_finite() && s.ood >= 0.0);
    assert!((0.0..=1.0).contains(&s.luma));
    assert!(s.sharpness > 0.0);
}

#[test]
fn lesion_photos_are_judged_and_pictures_that_are_not_lesions_are_refused() {
    let c = classifier();
    let dir = common::workspace_root().join("tests/fixtures/ham10000");
    let mut refused = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jpg") {
            let image = decode_image(&std::fs::read(&path).unwrap(), &Default::default()).unwrap();
            if let Some(r) = refusal_of(&c, image) {
                refused.push((path, r));
            }
        }
    }
    assert!(refused.len() <= 1, "lesion fixtures refused: {refused:?}");

    // Sharp, well lit, nothing like a lesion: noise.
    let noise = RgbImage::from_fn(300, 225, |x, y| {
        let v =
            (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)).wrapping_mul(2_246_822_519);
        Rgb([(v >> 8) as u8, (v >> 16) as u8, (v >> 24) as u8])
    });
    assert_eq!(refusal_of(&c, noise), Some(RefusalReason::NotALesion));
    // A flat skin colour has no detail at all: refused (as too blurry, checked before "not a lesion"
    // so that a blurred lesion photo gets the advice that helps).
    let flat_skin = RgbImage::from_pixel(300, 225, Rgb([224, 172, 138]));
    assert!(refusal_of(&c, flat_skin).is_some());
    let text = common::workspace_root().join("tests/fixtures/refusal/documents/page.png");
    let page = decode_image(&std::fs::read(text).unwrap(), &Default::default()).unwrap();
    assert!(refusal_of(&c, page).is_some());
}

#[test]
fn each_unusable_kind_of_photo_gets_its_own_reason() {
    let c = classifier();
    let photo = lesion("ISIC_0025314.jpg");
    assert_eq!(refusal_of(&c, photo.clone()), None);
    let mut dark = photo.clone();
    dark.iter_mut()
        .for_each(|v| *v = (f32::from(*v) * 0.12) as u8);
    assert_eq!(refusal_of(&c, dark), Some(RefusalReason::TooDark));
    let mut bright = photo.clone();
    bright
        .iter_mut()
        .for_each(|v| *v = (f32::from(*v) * 2.2 + 90.0).min(255.0) as u8);
    assert_eq!(refusal_of(&c, bright), Some(RefusalReason::Overexposed));
    let blurred = image::imageops::blur(&photo, 9.0);
    assert_eq!(refusal_of(&c, blurred), Some(RefusalReason::TooBlurry));
    let tiny = image::imageops::resize(&photo, 80, 60, image::imageops::FilterType::Triangle);
    assert_eq!(refusal_of(&c, tiny), Some(RefusalReason::TooSmall));
}

#[test]
fn a_card_without_a_refusal_section_never_refuses() {
    let card = common::workspace_root().join("models/mole-v1.card.json");
    let c = Classifier::load(&card, ClassifierConfig::default()).unwrap();
    let flat = RgbImage::from_pixel(300, 225, Rgb([224, 172, 138]));
    let p = c.predict(&[c.preprocess_image(flat)]).unwrap();
    assert_eq!((p[0].refusal, p[0].signals), (None, None));
}

#[test]
fn a_refusal_section_naming_an_output_the_model_lacks_is_refused_at_load() {
    let card = common::edited_card("refusal-output", |c| {
        c["refusal"]["output"] = "signals".into();
    });
    match Classifier::load(&card, ClassifierConfig::default()).unwrap_err() {
        InferenceError::ModelMismatch { what, .. } => assert_eq!(what, "output names"),
        other => panic!("expected ModelMismatch, got {other:?}"),
    }
    let card = common::edited_card("refusal-signals", |c| {
        c["refusal"]["signals"] = serde_json::json!(["ood", "luma"]);
    });
    assert!(matches!(
        ModelCard::load(&card),
        Err(InferenceError::InvalidCard { .. })
    ));
}

#[test]
fn refusal_reasons_have_words_advice_and_stable_codes() {
    for r in RefusalReason::ALL {
        assert_eq!(r.as_str().parse::<RefusalReason>(), Ok(r));
        assert!(!r.plain_words().is_empty() && !r.advice().is_empty());
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            serde_json::Value::String(r.as_str().into())
        );
    }
}

#[test]
fn the_occlusion_map_covers_the_model_view_and_finds_the_lesion() {
    let c = classifier();
    let photo = lesion("ISIC_0025314.jpg");
    let (w, h) = photo.dimensions();
    let p = c.preprocess_image(photo);
    let map = c.occlusion(&p, 5).unwrap();
    assert_eq!(map.grid, 5);
    assert_eq!(map.cells.len(), 25);
    assert!(map.cells.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
    let side = w.min(h) as f32;
    let want = [
        ((w as f32 - side) / 2.0).floor() / w as f32,
        ((h as f32 - side) / 2.0).floor() / h as f32,
        side / w as f32,
        side / h as f32,
    ];
    for (a, b) in map.view.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{:?} vs {want:?}", map.view);
    }
    let base = c.predict(std::slice::from_ref(&p)).unwrap()[0].p_malignant;
    assert!((map.base - base).abs() < 1e-4, "{} vs {base}", map.base);
    // Covering cells changes the estimate somewhere: the map is not flat.
    assert!(map.cells.iter().any(|v| v.abs() > 1e-3), "{:?}", map.cells);
    assert!(c.occlusion(&p, 0).is_err());
}

#[test]
fn an_occlusion_map_run_in_small_chunks_is_the_same_map_and_goes_on_where_it_stopped() {
    let c = classifier();
    let p = c.preprocess_image(lesion("ISIC_0025314.jpg"));
    let whole = c.occlusion(&p, 3).unwrap();
    let same = |map: &mole_inference::OcclusionMap| {
        assert_eq!(map.cells.len(), whole.cells.len());
        assert!((map.base - whole.base).abs() < 1e-4);
        for (a, b) in map.cells.iter().zip(&whole.cells) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    };
    let mut chunks = 0;
    let chunked = c
        .occlusion_while(&p, 3, 2, &mut MapProgress::default(), || {
            chunks += 1;
            true
        })
        .unwrap()
        .expect("never told to stop");
    assert_eq!(chunks, 5, "10 copies, 2 at a time");
    same(&chunked);
    // Told to stop before the third chunk: no map yet, no more forward passes, 4 copies kept.
    let mut progress = MapProgress::default();
    let mut asked = 0;
    let stopped = c
        .occlusion_while(&p, 3, 2, &mut progress, || {
            asked += 1;
            asked <= 2
        })
        .unwrap();
    assert!(stopped.is_none());
    assert_eq!(asked, 3);
    assert_eq!(progress.rows_done(), 4);
    // Asked again, it runs only the 6 copies left (3 chunks) and gives the same map.
    let mut asked = 0;
    let resumed = c
        .occlusion_while(&p, 3, 2, &mut progress, || {
            asked += 1;
            true
        })
        .unwrap()
        .expect("not told to stop");
    assert_eq!(asked, 3, "the 4 copies already run are not run again");
    same(&resumed);
}
