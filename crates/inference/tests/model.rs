//! Loading the model against its card, and what `predict` returns.

mod common;

use image::{Rgb, RgbImage, imageops};
use mole_inference::preprocess::{Normalization, centre_crop, normalize_chw, resize_square};
use mole_inference::{
    Classifier, ClassifierConfig, InferenceError, ModelCard, Preprocessed, TractOptions,
    TractParallelism, TractPlans, Verdict,
};

fn classifier(config: ClassifierConfig) -> Classifier {
    Classifier::load(&common::card_path(), config).expect("loading the test model")
}

/// Deterministic synthetic "photos" of various shapes, different enough to give different outputs.
fn synthetic_images(n: usize) -> Vec<RgbImage> {
    (0..n)
        .map(|i| {
            let (w, h) = [(300, 200), (180, 240), (128, 128), (640, 480)][i % 4];
            let k = i as u32 + 1;
            RgbImage::from_fn(w, h, move |x, y| {
                let dx = x as f32 - w as f32 / 2.0;
                let dy = y as f32 - h as f32 / 2.0;
                let r = (dx * dx + dy * dy).sqrt();
                Rgb([
                    (200.0 - r * 0.3 * k as f32).clamp(0.0, 255.0) as u8,
                    ((x * k + y) % 256) as u8,
                    (120.0 + 60.0 * (r / (10.0 + k as f32)).sin()) as u8,
                ])
            })
        })
        .collect()
}

fn preprocessed(c: &Classifier, n: usize) -> Vec<Preprocessed> {
    synthetic_images(n)
        .into_iter()
        .map(|img| c.preprocess_image(img))
        .collect()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol, "{what}: {a:?} vs {b:?}");
    }
}

#[test]
fn classifier_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Classifier>();
}

#[test]
fn predictions_are_calibrated_probabilities_in_card_order_with_a_consistent_verdict() {
    let c = classifier(ClassifierConfig::default());
    let card = c.card();
    let out = c.predict(&preprocessed(&c, 5)).unwrap();
    assert_eq!(out.len(), 5);
    for p in &out {
        assert_eq!(p.probabilities.len(), card.num_classes());
        assert!((p.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        assert!(p.probabilities.iter().all(|v| (0.0..=1.0).contains(v)));
        let expected_mal: f32 = p
            .probabilities
            .iter()
            .zip(&card.classes)
            .filter(|(_, c)| card.malignant_classes.contains(&c.code))
            .map(|(p, _)| *p)
            .sum();
        assert!((p.p_malignant - expected_mal).abs() < 1e-6);
        let expected_verdict = if p.p_malignant >= card.threshold {
            Verdict::SeeADoctor
        } else {
            Verdict::LooksBenign
        };
        assert_eq!(p.verdict, expected_verdict);
        let max = p.probabilities.iter().cloned().fold(f32::MIN, f32::max);
        assert_eq!(p.probabilities[p.top_class], max);
        assert_eq!(p.model_version, format!("{}@{}", card.name, card.version));
    }
    // Different images must not all get the same answer (a constant output would hide a wiring bug).
    assert!(
        out.windows(2)
            .any(|w| w[0].probabilities != w[1].probabilities)
    );
}

#[test]
fn a_batch_gives_the_same_answers_as_one_image_at_a_time() {
    let c = classifier(ClassifierConfig::default());
    let images = preprocessed(&c, 6);
    let batched = c.predict(&images).unwrap();
    for (image, b) in images.iter().zip(&batched) {
        let single = c.predict(std::slice::from_ref(image)).unwrap();
        assert_close(
            &single[0].probabilities,
            &b.probabilities,
            1e-5,
            "single vs batch",
        );
    }
}

#[test]
fn every_tract_plan_strategy_and_thread_mode_gives_the_same_answers() {
    let reference = classifier(ClassifierConfig::default());
    let images = preprocessed(&reference, 7);
    let expected = reference.predict(&images).unwrap();
    for plans in [TractPlans::Exact, TractPlans::PadPow2, TractPlans::Symbolic] {
        for (threads, parallelism) in [
            (1, TractParallelism::SplitBatch),
            (2, TractParallelism::SplitBatch),
            (2, TractParallelism::IntraOp),
        ] {
            let c = classifier(ClassifierConfig {
                threads,
                tract: TractOptions { plans, parallelism },
                ..ClassifierConfig::default()
            });
            let got = c.predict(&images).unwrap();
            for (g, e) in got.iter().zip(&expected) {
                assert_close(
                    &g.probabilities,
                    &e.probabilities,
                    1e-5,
                    &format!("{plans:?} {threads} {parallelism:?}"),
                );
            }
        }
    }
}

#[test]
fn batches_larger_than_max_batch_are_split_without_changing_answers() {
    let big = classifier(ClassifierConfig::default());
    let small = classifier(ClassifierConfig {
        max_batch: 2,
        ..ClassifierConfig::default()
    });
    let images = preprocessed(&big, 5);
    for (a, b) in big
        .predict(&images)
        .unwrap()
        .iter()
        .zip(small.predict(&images).unwrap())
    {
        assert_close(&a.probabilities, &b.probabilities, 1e-5, "max_batch 2");
    }
}

#[test]
fn concurrent_callers_get_the_same_answers_as_a_single_caller() {
    let c = classifier(ClassifierConfig::default());
    let images = preprocessed(&c, 4);
    let expected = c.predict(&images).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(|| c.predict(&images).unwrap()))
            .collect();
        for h in handles {
            for (g, e) in h.join().unwrap().iter().zip(&expected) {
                assert_close(&g.probabilities, &e.probabilities, 1e-6, "concurrent");
            }
        }
    });
}

#[test]
fn tta_averages_the_probabilities_of_the_six_flips_and_rotations() {
    let plain = classifier(ClassifierConfig::default());
    let tta = classifier(ClassifierConfig {
        tta: true,
        ..ClassifierConfig::default()
    });
    let size = plain.card().input_size();
    let norm = Normalization::from_card(plain.card());
    let images = synthetic_images(2);
    let with_tta = tta
        .predict(
            &images
                .iter()
                .map(|i| tta.preprocess_image(i.clone()))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    for (image, got) in images.into_iter().zip(&with_tta) {
        let square = resize_square(&centre_crop(image), size);
        let views = [
            square.clone(),
            imageops::flip_horizontal(&square),
            imageops::flip_vertical(&square),
            imageops::rotate90(&square),
            imageops::rotate180(&square),
            imageops::rotate270(&square),
        ];
        let batch: Vec<Preprocessed> = views
            .iter()
            .map(|v| Preprocessed {
                tensor: normalize_chw(v, &norm),
                width: size,
                height: size,
            })
            .collect();
        let each = plain.predict(&batch).unwrap();
        let mean: Vec<f32> = (0..each[0].probabilities.len())
            .map(|k| each.iter().map(|p| p.probabilities[k]).sum::<f32>() / 6.0)
            .collect();
        assert_close(&got.probabilities, &mean, 1e-5, "tta");
        let mal: f32 = mean
            .iter()
            .zip(plain.card().malignant_mask())
            .filter(|(_, m)| *m)
            .map(|(p, _)| p)
            .sum();
        assert!((got.p_malignant - mal).abs() < 1e-5);
    }
}

#[test]
fn preparing_plans_ahead_changes_no_answer() {
    let cold = classifier(ClassifierConfig::default());
    let warm = classifier(ClassifierConfig {
        tta: false,
        max_batch: 4,
        ..ClassifierConfig::default()
    });
    warm.prepare_batch_sizes(&[1, 2, 3, 4, 9]).unwrap();
    let images = preprocessed(&cold, 3);
    for (a, b) in cold
        .predict(&images)
        .unwrap()
        .iter()
        .zip(warm.predict(&images).unwrap())
    {
        assert_close(&a.probabilities, &b.probabilities, 1e-5, "prepared");
    }
}

#[test]
fn warm_up_runs_a_real_forward_pass() {
    classifier(ClassifierConfig::default()).warm_up().unwrap();
}

#[test]
fn an_empty_batch_gives_no_predictions() {
    assert!(
        classifier(ClassifierConfig::default())
            .predict(&[])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_tensor_of_the_wrong_size_is_an_invalid_batch_not_a_bad_image() {
    let c = classifier(ClassifierConfig::default());
    let err = c
        .predict(&[Preprocessed {
            tensor: vec![0.0; 10],
            width: 1,
            height: 1,
        }])
        .unwrap_err();
    assert!(
        matches!(err, InferenceError::InvalidBatch { .. }),
        "{err:?}"
    );
    assert!(!err.is_bad_input());
}

#[test]
fn preprocess_reports_the_original_size_and_a_tensor_of_the_model_size() {
    let c = classifier(ClassifierConfig::default());
    let mut png = std::io::Cursor::new(Vec::new());
    synthetic_images(1)[0]
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let p = c.preprocess(png.get_ref()).unwrap();
    let s = c.card().input_size() as usize;
    assert_eq!((p.width, p.height), (300, 200));
    assert_eq!(p.tensor.len(), 3 * s * s);
    assert!(c.preprocess(b"GIF89a").unwrap_err().is_bad_input());
}

#[test]
fn a_model_whose_sha256_disagrees_with_its_card_is_refused() {
    let card = common::edited_card("sha", |c| {
        c["onnx_sha256"] = serde_json::Value::String("0".repeat(64));
    });
    match Classifier::load(&card, ClassifierConfig::default()).unwrap_err() {
        InferenceError::ModelMismatch { what, .. } => assert_eq!(what, "sha256"),
        other => panic!("expected ModelMismatch, got {other:?}"),
    }
}

#[test]
fn a_model_whose_input_size_disagrees_with_its_card_is_refused() {
    let card = common::edited_card("size", |c| c["input"]["size"] = 96.into());
    let err = Classifier::load(&card, ClassifierConfig::default()).unwrap_err();
    match &err {
        InferenceError::ModelMismatch { what, card, .. } => {
            assert_eq!(what, "input shape");
            assert!(card.contains("96"), "{err}");
        }
        other => panic!("expected ModelMismatch, got {other:?}"),
    }
    assert!(!err.is_bad_input());
}

#[test]
fn a_model_with_a_different_class_count_than_its_card_is_refused() {
    let card = common::edited_card("classes", |c| {
        c["classes"].as_array_mut().unwrap().pop();
    });
    match Classifier::load(&card, ClassifierConfig::default()).unwrap_err() {
        InferenceError::ModelMismatch { what, .. } => assert_eq!(what, "output shape"),
        other => panic!("expected ModelMismatch, got {other:?}"),
    }
}

#[test]
fn a_model_whose_input_name_disagrees_with_its_card_is_refused() {
    let card = common::edited_card("name", |c| c["input"]["name"] = "pixels".into());
    match Classifier::load(&card, ClassifierConfig::default()).unwrap_err() {
        InferenceError::ModelMismatch { what, .. } => assert_eq!(what, "input name"),
        other => panic!("expected ModelMismatch, got {other:?}"),
    }
}

#[test]
fn a_card_whose_malignant_list_disagrees_with_the_class_flags_is_invalid() {
    let card = common::edited_card("malignant", |c| {
        c["malignant_classes"] = serde_json::json!(["mel"]);
    });
    assert!(matches!(
        ModelCard::load(&card),
        Err(InferenceError::InvalidCard { .. })
    ));
}

#[test]
fn a_missing_card_is_a_model_io_error() {
    let err = Classifier::load(
        "/nonexistent/card.json".as_ref(),
        ClassifierConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(err, InferenceError::ModelIo { .. }), "{err:?}");
}

#[test]
fn the_shipped_card_lists_the_ham10000_classes_in_order() {
    let card = ModelCard::load(&common::card_path()).unwrap();
    assert_eq!(
        card.class_codes(),
        ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    );
    assert!(card.input_size() >= 32);
}

#[cfg(not(feature = "ort"))]
#[test]
fn asking_for_onnxruntime_without_the_feature_is_a_clear_config_error() {
    let err = Classifier::load(
        &common::card_path(),
        ClassifierConfig {
            backend: mole_inference::BackendKind::Ort,
            ..ClassifierConfig::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, InferenceError::Config { .. }) && err.to_string().contains("--features ort"),
        "{err}"
    );
}

#[cfg(feature = "ort")]
#[test]
fn onnxruntime_and_tract_agree_on_the_same_tensors() {
    let tract = classifier(ClassifierConfig::default());
    let ort = classifier(ClassifierConfig {
        backend: mole_inference::BackendKind::Ort,
        ort_library: Some(common::ort_library()),
        ..ClassifierConfig::default()
    });
    let images = preprocessed(&tract, 5);
    for (a, b) in tract
        .predict(&images)
        .unwrap()
        .iter()
        .zip(ort.predict(&images).unwrap())
    {
        assert_close(&a.probabilities, &b.probabilities, 1e-4, "tract vs ort");
    }
}

#[cfg(feature = "ort")]
#[test]
fn onnxruntime_backends_can_be_created_again_after_one_is_dropped() {
    // onnxruntime allows one environment per process; the backend shares it.
    let config = |threads| ClassifierConfig {
        backend: mole_inference::BackendKind::Ort,
        ort_library: Some(common::ort_library()),
        threads,
        ..ClassifierConfig::default()
    };
    let first = classifier(config(1));
    let images = preprocessed(&first, 2);
    let expected = first.predict(&images).unwrap();
    drop(first);
    for threads in [2, 1] {
        let again = classifier(config(threads));
        for (a, b) in expected.iter().zip(again.predict(&images).unwrap()) {
            assert_close(&a.probabilities, &b.probabilities, 1e-5, "ort again");
        }
    }
}

#[test]
fn the_model_view_of_a_photo_stored_as_png_gives_the_same_tensor_as_the_photo() {
    let c = classifier(ClassifierConfig::default());
    let size = c.card().input_size();
    for image in synthetic_images(4) {
        let view = mole_inference::preprocess::model_view(&image, size);
        let direct = c.preprocess_image(image);
        assert_eq!(view.dimensions(), (size, size));
        let mut png = Vec::new();
        view.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let again = c.preprocess(&png).unwrap();
        assert_eq!(direct.tensor, again.tensor, "the stand-in changes nothing");
    }
}
