//! `mole refusal`: how often the shipped model refuses photos it should refuse, and how often it
//! refuses lesion photos it should judge, through the service's own decoding, preprocessing and
//! backend (the same [`Classifier::predict`] the worker calls).
//!
//! Groups:
//! - the refusal test set (`tests/fixtures/refusal/manifest.csv`, `python -m mole_train.refusal_set`):
//!   photos, faces, documents and screenshots, synthetic pictures, none of them a skin lesion;
//! - degraded lesion photos, made here from lesion photos: very dark, overexposed, heavily blurred,
//!   shrunk to a thumbnail;
//! - the lesion photos themselves (a refusal there is a false refusal).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use image::RgbImage;
use mole_inference::{
    BackendKind, Classifier, ClassifierConfig, DecodeLimits, Preprocessed, decode_image,
};
use serde::Serialize;

use crate::labels::{read_labels, read_split};
use crate::run::{EvalError, index_images, io_err, read_csv};

/// What `mole refusal` measures.
#[derive(Debug, Clone)]
pub struct RefusalOptions {
    /// The model card.
    pub card: PathBuf,
    /// Folder of the refusal test set (with `manifest.csv`: `file,group,source`).
    pub set: PathBuf,
    /// Lesion photos: folder of `<image id>.jpg`.
    pub images: PathBuf,
    /// Labels of the lesion photos (which ids are lesions).
    pub labels: PathBuf,
    /// Restrict the lesion photos to one split: `(split CSV, split name)`.
    pub split: Option<(PathBuf, String)>,
    /// Backend running the model.
    pub backend: BackendKind,
    /// Images per forward pass.
    pub batch: usize,
    /// CPU threads for the backend.
    pub threads: usize,
}

/// How a degraded lesion photo is made from a lesion photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Degradation {
    /// Pixel values × 0.12 (a photo in a dim room without flash).
    Dark,
    /// Pixel values × 2.2 + 90, clipped (flash at close range, or direct sun).
    Overexposed,
    /// Gaussian blur, σ = 6 % of the shorter side (camera shake or missed focus).
    Blurred,
    /// Shrunk to 64 px on the shorter side (a thumbnail).
    Thumbnail,
}

impl Degradation {
    /// Every degradation.
    pub const ALL: [Degradation; 4] = [
        Self::Dark,
        Self::Overexposed,
        Self::Blurred,
        Self::Thumbnail,
    ];

    /// Group name in the report.
    pub fn group(self) -> &'static str {
        match self {
            Self::Dark => "lesion, very dark",
            Self::Overexposed => "lesion, overexposed",
            Self::Blurred => "lesion, heavily blurred",
            Self::Thumbnail => "lesion, thumbnail",
        }
    }

    /// Applies the degradation.
    pub fn apply(self, image: &RgbImage) -> RgbImage {
        match self {
            Self::Dark => map_pixels(image, |v| v * 0.12),
            Self::Overexposed => map_pixels(image, |v| v * 2.2 + 90.0),
            Self::Blurred => {
                let sigma = 0.06 * image.width().min(image.height()) as f32;
                image::imageops::blur(image, sigma)
            }
            Self::Thumbnail => {
                let (w, h) = image.dimensions();
                let scale = 64.0 / w.min(h) as f32;
                image::imageops::resize(
                    image,
                    ((w as f32 * scale).round() as u32).max(1),
                    ((h as f32 * scale).round() as u32).max(1),
                    image::imageops::FilterType::Triangle,
                )
            }
        }
    }
}

fn map_pixels(image: &RgbImage, f: impl Fn(f32) -> f32) -> RgbImage {
    let mut out = image.clone();
    for v in out.iter_mut() {
        *v = f(f32::from(*v)).round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// The refusal rate of one group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRate {
    /// Group name.
    pub group: String,
    /// Whether the model should refuse the group's pictures (false: lesion photos).
    pub should_refuse: bool,
    /// Pictures in the group.
    pub n: usize,
    /// Pictures refused.
    pub refused: usize,
    /// Refusals per reason code.
    pub reasons: BTreeMap<String, usize>,
    /// Pictures of a should-refuse group that were diagnosed instead (file or image id).
    pub missed: Vec<String>,
}

impl GroupRate {
    fn new(group: &str, should_refuse: bool) -> Self {
        Self {
            group: group.to_owned(),
            should_refuse,
            n: 0,
            refused: 0,
            reasons: BTreeMap::new(),
            missed: Vec::new(),
        }
    }

    /// Share refused, 0–1.
    pub fn rate(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.refused as f64 / self.n as f64
        }
    }
}

/// What `mole refusal` found.
#[derive(Debug, Clone, Serialize)]
pub struct RefusalReport {
    /// `name@version`.
    pub model_version: String,
    /// Backend that ran the model.
    pub backend: String,
    /// Lesion photos' source and split.
    pub lesions: String,
    /// Every group, the refusal set's first, then the degraded lesions, then the lesions.
    pub groups: Vec<GroupRate>,
    /// Pictures that could not be decoded (files of the set; should be none).
    pub unreadable: Vec<String>,
}

impl RefusalReport {
    /// The report as a Markdown table.
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| group | should refuse | pictures | refused | rate | reasons |\n|---|---|---:|---:|---:|---|\n",
        );
        for g in &self.groups {
            let reasons: Vec<String> = g.reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
            s.push_str(&format!(
                "| {} | {} | {} | {} | {:.1} % | {} |\n",
                g.group,
                if g.should_refuse { "yes" } else { "no" },
                g.n,
                g.refused,
                g.rate() * 100.0,
                reasons.join(", ")
            ));
        }
        s
    }
}

struct Item {
    group: usize,
    name: String,
    image: Preprocessed,
}

/// Runs the model over every group.
pub fn evaluate_refusal(opts: &RefusalOptions) -> Result<RefusalReport, EvalError> {
    if opts.batch == 0 {
        return Err(EvalError::Options("--batch must be at least 1".into()));
    }
    let config = ClassifierConfig {
        backend: opts.backend,
        threads: opts.threads,
        max_batch: opts.batch,
        ..ClassifierConfig::default()
    };
    let classifier = Classifier::load(&opts.card, config)?;
    if classifier.card().refusal.is_none() {
        return Err(EvalError::Options(format!(
            "{} has no refusal section: this model never refuses",
            opts.card.display()
        )));
    }
    let limits = DecodeLimits::default();
    let mut groups: Vec<GroupRate> = Vec::new();
    let mut group_index: HashMap<String, usize> = HashMap::new();
    let mut unreadable = Vec::new();
    let mut pending: Vec<Item> = Vec::new();
    let mut group_of = |name: &str, should_refuse: bool, groups: &mut Vec<GroupRate>| -> usize {
        *group_index.entry(name.to_owned()).or_insert_with(|| {
            groups.push(GroupRate::new(name, should_refuse));
            groups.len() - 1
        })
    };

    // The refusal test set.
    let manifest = opts.set.join("manifest.csv");
    let rows: Vec<(String, String)> = read_csv(&manifest, |f| {
        let mut out = Vec::new();
        for rec in csv::Reader::from_reader(f).records() {
            let rec = rec?;
            out.push((
                rec.get(0).unwrap_or_default().to_owned(),
                rec.get(1).unwrap_or_default().to_owned(),
            ));
        }
        Ok(out)
    })?;
    for (file, group) in rows {
        let g = group_of(&group, true, &mut groups);
        let path = opts.set.join(&file);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        match classifier.preprocess(&bytes) {
            Ok(image) => pending.push(Item {
                group: g,
                name: file,
                image,
            }),
            Err(_) => unreadable.push(file),
        }
    }

    // The lesion photos, and their degraded copies.
    let codes = classifier.card().class_codes();
    let labels = read_csv(&opts.labels, |f| read_labels(f, &codes))?;
    let keep = match &opts.split {
        Some((path, name)) => Some(read_csv(path, |f| read_split(f, name))?),
        None => None,
    };
    let index = index_images(&opts.images)?;
    let lesion_group = group_of("lesion photos (false refusals)", false, &mut groups);
    let degraded: Vec<usize> = Degradation::ALL
        .iter()
        .map(|d| group_of(d.group(), true, &mut groups))
        .collect();
    let mut lesions = 0;
    for l in &labels.images {
        if keep.as_ref().is_some_and(|k| !k.contains(&l.image_id)) {
            continue;
        }
        let Some(path) = index.get(&l.image_id) else {
            continue;
        };
        let bytes = fs::read(path).map_err(io_err(path))?;
        let Ok(decoded) = decode_image(&bytes, &limits) else {
            unreadable.push(l.image_id.clone());
            continue;
        };
        lesions += 1;
        for (d, g) in Degradation::ALL.iter().zip(&degraded) {
            pending.push(Item {
                group: *g,
                name: l.image_id.clone(),
                image: classifier.preprocess_image(d.apply(&decoded)),
            });
        }
        pending.push(Item {
            group: lesion_group,
            name: l.image_id.clone(),
            image: classifier.preprocess_image(decoded),
        });
        if pending.len() >= 4 * opts.batch {
            run_items(&classifier, &mut pending, &mut groups)?;
        }
    }
    run_items(&classifier, &mut pending, &mut groups)?;
    if lesions == 0 {
        return Err(EvalError::Options(format!(
            "no lesion photo of {} was found in {}",
            opts.labels.display(),
            opts.images.display()
        )));
    }
    // Lesion groups last, in a fixed order.
    let (mut set, mut rest): (Vec<GroupRate>, Vec<GroupRate>) = groups
        .into_iter()
        .partition(|g| !g.group.starts_with("lesion"));
    rest.sort_by_key(|g| !g.should_refuse);
    set.extend(rest);
    Ok(RefusalReport {
        model_version: classifier.model_version(),
        backend: classifier.backend_name().to_owned(),
        lesions: match &opts.split {
            Some((path, name)) => format!(
                "{} ({} split of {}), {lesions} photos",
                opts.images.display(),
                name,
                path.display()
            ),
            None => format!("{}, {lesions} photos", opts.images.display()),
        },
        groups: set,
        unreadable,
    })
}

fn run_items(
    classifier: &Classifier,
    pending: &mut Vec<Item>,
    groups: &mut [GroupRate],
) -> Result<(), EvalError> {
    if pending.is_empty() {
        return Ok(());
    }
    let (names, images): (Vec<(usize, String)>, Vec<Preprocessed>) = std::mem::take(pending)
        .into_iter()
        .map(|i| ((i.group, i.name), i.image))
        .unzip();
    let predictions = classifier.predict(&images)?;
    for ((group, name), p) in names.into_iter().zip(predictions) {
        let g = &mut groups[group];
        g.n += 1;
        match p.refusal {
            Some(reason) => {
                g.refused += 1;
                *g.reasons.entry(reason.as_str().to_owned()).or_default() += 1;
                if !g.should_refuse {
                    g.missed.push(name);
                }
            }
            None if g.should_refuse => g.missed.push(name),
            None => {}
        }
    }
    Ok(())
}

/// Writes `refusal.json` and `refusal.md` into `out`.
pub fn write_refusal(report: &RefusalReport, out: &Path) -> Result<(), EvalError> {
    fs::create_dir_all(out).map_err(io_err(out))?;
    let json = out.join("refusal.json");
    fs::write(&json, serde_json::to_string_pretty(report)?).map_err(io_err(&json))?;
    let md = out.join("refusal.md");
    fs::write(
        &md,
        format!(
            "# Refusals of {} ({})\n\nLesion photos: {}\n\n{}",
            report.model_version,
            report.backend,
            report.lesions,
            report.markdown()
        ),
    )
    .map_err(io_err(&md))?;
    Ok(())
}
