//! The measurement behind the JPEG decoder choice (issue 8): the same photos through the
//! libjpeg-exact decoder (`mole_inference::jpeg`, the service's) and through `image`'s own JPEG
//! decoder (zune-jpeg), then through the model; prints how far pixels and probabilities move.
//!
//! ```sh
//! cargo run --release --example decoder_choice -- models/mole-v1.card.json \
//!     training/split.csv test ../shared/data/ham10000/images
//! ```

use mole_inference::{Classifier, ClassifierConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, card, split, split_name, images] = args.as_slice() else {
        eprintln!("usage: decoder_choice CARD SPLIT_CSV SPLIT_NAME IMAGES_DIR");
        std::process::exit(2);
    };
    let classifier = Classifier::load(card.as_ref(), ClassifierConfig::default()).unwrap();
    let split = std::fs::read_to_string(split).unwrap();
    let ids: Vec<&str> = split
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .filter(|(_, s)| *s == split_name.as_str())
        .map(|(id, _)| id)
        .collect();
    let (mut worst, mut worst_id) = (0f32, String::new());
    let (mut sum, mut flips) = (0f64, 0usize);
    let (mut differing, mut total, mut max_level) = (0u64, 0u64, 0u8);
    for id in &ids {
        let bytes = std::fs::read(format!("{images}/{id}.jpg")).unwrap();
        let exact = mole_inference::jpeg::decode_rgb(&bytes, 1 << 30).unwrap();
        let zune = image::load_from_memory(&bytes).unwrap().to_rgb8();
        for (a, b) in exact.as_raw().iter().zip(zune.as_raw()) {
            if a != b {
                differing += 1;
                max_level = max_level.max(a.abs_diff(*b));
            }
        }
        total += exact.as_raw().len() as u64;
        let p = classifier
            .predict(&[
                classifier.preprocess_image(exact),
                classifier.preprocess_image(zune),
            ])
            .unwrap();
        if p[0].verdict != p[1].verdict {
            flips += 1;
        }
        let d = p[0]
            .probabilities
            .iter()
            .zip(&p[1].probabilities)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        sum += f64::from(d);
        if d > worst {
            worst = d;
            worst_id = (*id).to_owned();
        }
    }
    println!(
        "{split_name}: {} images; max |dp| {worst:.4} ({worst_id}); mean per-image max |dp| {:.5}; \
         verdicts changed {flips}; pixels differing {:.1}%, by up to {max_level} levels",
        ids.len(),
        sum / ids.len().max(1) as f64,
        100.0 * differing as f64 / total.max(1) as f64
    );
}
