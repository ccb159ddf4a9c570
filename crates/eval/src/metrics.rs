//! Classification metrics as pure functions over `(true class, probabilities)` pairs.
//!
//! Nothing here touches files or the model, so every formula can be checked against hand-computed
//! values. Conventions (chosen to match scikit-learn where it has one):
//! - the predicted class is the arg-max of the probabilities (first index on ties);
//! - precision of a class that is never predicted, recall of a class absent from the labels and
//!   AUC of a class without positives or without negatives are *undefined* (`None`), never 0 or 1;
//! - balanced accuracy is the mean recall over the classes present in the labels;
//! - macro F1 averages F1 over the classes present in the labels or in the predictions
//!   (F1 = 2·tp / (2·tp + fp + fn), so a class present but never predicted counts as 0);
//! - AUC is the Mann–Whitney probability that a random positive scores above a random negative,
//!   ties counting one half;
//! - ECE uses equal-width bins over the top-label confidence, bin `i` holding confidences in
//!   `(i/n, (i+1)/n]` (confidence 0 falls in the first bin).

use serde::{Deserialize, Serialize};

/// Number of bins used for the expected calibration error in reports.
pub const ECE_BINS: usize = 15;

/// One class of the model, in the model's output order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassInfo {
    /// Short code, e.g. `mel`.
    pub code: String,
    /// Full name shown to people, e.g. `Melanoma`.
    pub name: String,
    /// Whether the class counts towards P(malignant).
    pub malignant: bool,
}

/// One evaluated image: its true class and the model's output for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Index of the true class in the model's class order.
    pub true_class: usize,
    /// Calibrated class probabilities in the model's class order.
    pub probabilities: Vec<f32>,
    /// P(malignant) as the classifier computes it for its verdict.
    pub p_malignant: f32,
}

impl Sample {
    /// Builds a sample whose P(malignant) is the sum of the probabilities of the malignant classes.
    pub fn from_probabilities(
        true_class: usize,
        probabilities: Vec<f32>,
        classes: &[ClassInfo],
    ) -> Self {
        let p_malignant = probabilities
            .iter()
            .zip(classes)
            .filter(|(_, c)| c.malignant)
            .map(|(p, _)| *p)
            .sum();
        Self {
            true_class,
            probabilities,
            p_malignant,
        }
    }

    /// The predicted class: arg-max of the probabilities, the first index on ties.
    pub fn predicted_class(&self) -> usize {
        argmax(&self.probabilities)
    }

    /// The top-label confidence: the largest probability.
    pub fn confidence(&self) -> f32 {
        self.probabilities
            .get(self.predicted_class())
            .copied()
            .unwrap_or(0.0)
    }
}

/// Why metrics could not be computed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    /// There was nothing to evaluate.
    #[error("no samples to evaluate")]
    Empty,
    /// The model has no classes.
    #[error("the model has no classes")]
    NoClasses,
    /// A sample's probability vector does not match the number of classes.
    #[error("sample {index} has {got} probabilities, expected {expected}")]
    WrongLength {
        /// Position of the sample.
        index: usize,
        /// Length found.
        got: usize,
        /// Number of classes.
        expected: usize,
    },
    /// A sample's true class is outside the class list.
    #[error("sample {index} has true class {class}, but there are only {classes} classes")]
    ClassOutOfRange {
        /// Position of the sample.
        index: usize,
        /// The class index found.
        class: usize,
        /// Number of classes.
        classes: usize,
    },
    /// A probability is NaN or infinite.
    #[error("sample {index} has a non-finite probability")]
    NonFinite {
        /// Position of the sample.
        index: usize,
    },
    /// The decision threshold is not a number in [0, 1].
    #[error("threshold {0} is not in [0, 1]")]
    BadThreshold(f64),
}

/// Per-class figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Class code.
    pub code: String,
    /// Full class name.
    pub name: String,
    /// Whether the class is malignant.
    pub malignant: bool,
    /// Number of samples whose true class is this one.
    pub support: u64,
    /// Number of samples predicted as this class.
    pub predicted: u64,
    /// tp / (tp + fp); `None` when the class is never predicted.
    pub precision: Option<f64>,
    /// tp / (tp + fn); `None` when the class is absent from the labels.
    pub recall: Option<f64>,
    /// 2·tp / (2·tp + fp + fn); `None` when the class is neither present nor predicted.
    pub f1: Option<f64>,
    /// One-vs-rest AUC of this class's probability; `None` without positives or negatives.
    pub auc: Option<f64>,
}

/// Malignant-vs-benign figures at the model card's threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    /// P(malignant) ≥ threshold means "see a doctor".
    pub threshold: f64,
    /// Samples whose true class is malignant.
    pub positives: u64,
    /// Samples whose true class is benign.
    pub negatives: u64,
    /// Malignant and flagged.
    pub true_positives: u64,
    /// Benign but flagged.
    pub false_positives: u64,
    /// Benign and not flagged.
    pub true_negatives: u64,
    /// Malignant but not flagged.
    pub false_negatives: u64,
    /// tp / (tp + fn); `None` without malignant samples.
    pub sensitivity: Option<f64>,
    /// tn / (tn + fp); `None` without benign samples.
    pub specificity: Option<f64>,
    /// tp / (tp + fp); `None` when nothing is flagged.
    pub ppv: Option<f64>,
    /// tn / (tn + fn); `None` when everything is flagged.
    pub npv: Option<f64>,
    /// AUC of P(malignant); `None` without both kinds of samples.
    pub auc: Option<f64>,
}

/// One bin of the reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// Lower edge (exclusive, except 0 for the first bin).
    pub lower: f64,
    /// Upper edge (inclusive).
    pub upper: f64,
    /// Samples whose top-label confidence falls in the bin.
    pub count: u64,
    /// Mean top-label confidence in the bin; `None` when empty.
    pub mean_confidence: Option<f64>,
    /// Fraction of correct predictions in the bin; `None` when empty.
    pub accuracy: Option<f64>,
}

/// Top-label calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Expected calibration error: Σ (n_b / N)·|accuracy_b − confidence_b|.
    pub ece: f64,
    /// Largest gap |accuracy_b − confidence_b| over non-empty bins.
    pub mce: f64,
    /// The bins, in increasing confidence.
    pub bins: Vec<CalibrationBin>,
}

/// All figures for one evaluated set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Number of evaluated samples.
    pub n_images: u64,
    /// Fraction of samples whose predicted class is the true class.
    pub accuracy: f64,
    /// Mean recall over the classes present in the labels.
    pub balanced_accuracy: f64,
    /// Mean F1 over the classes present in the labels or the predictions.
    pub macro_f1: f64,
    /// Mean one-vs-rest AUC over the classes where it is defined; `None` if it is defined for none.
    pub macro_auc: Option<f64>,
    /// Codes of the classes averaged into `macro_auc`.
    pub macro_auc_classes: Vec<String>,
    /// Per-class figures, in the model's class order.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion_matrix[true][predicted]` counts, in the model's class order.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// Malignant-vs-benign figures.
    pub malignant_vs_benign: BinaryMetrics,
    /// Top-label calibration with [`ECE_BINS`] bins.
    pub calibration: Calibration,
}

/// A receiver operating characteristic curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    /// False-positive rates, from 0 to 1.
    pub fpr: Vec<f64>,
    /// True-positive rates, from 0 to 1.
    pub tpr: Vec<f64>,
    /// Threshold of each point: scores ≥ threshold are positive (the first point is +∞).
    pub thresholds: Vec<f64>,
}

/// Index of the largest value, the first one on ties; NaN never wins. The service's own rule
/// (one function, so the report and the service name the same top class).
pub use mole_inference::classifier::argmax;

/// `matrix[t][p]`: how many samples of true class `t` were predicted as `p`.
///
/// Pairs with a class outside `0..classes` are ignored (the callers validate first).
pub fn confusion_matrix(y_true: &[usize], y_pred: &[usize], classes: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; classes]; classes];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        if t < classes && p < classes {
            m[t][p] += 1;
        }
    }
    m
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Area under the ROC curve by the Mann–Whitney statistic with mid-ranks for ties.
///
/// `None` when there are no positives or no negatives.
pub fn auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let n = scores.len().min(positive.len());
    let n_pos = positive[..n].iter().filter(|p| **p).count();
    let n_neg = n - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        let pos_in_group = order[i..=j].iter().filter(|&&k| positive[k]).count();
        rank_sum_pos += mid_rank * pos_in_group as f64;
        i = j + 1;
    }
    let n_pos_f = n_pos as f64;
    Some((rank_sum_pos - n_pos_f * (n_pos_f + 1.0) / 2.0) / (n_pos_f * n_neg as f64))
}

/// The ROC curve, one point per distinct score (tied scores move both rates at once), with
/// intermediate collinear points dropped so that plots stay small.
///
/// `None` when there are no positives or no negatives.
pub fn roc_curve(scores: &[f64], positive: &[bool]) -> Option<RocCurve> {
    let n = scores.len().min(positive.len());
    let n_pos = positive[..n].iter().filter(|p| **p).count();
    let n_neg = n - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut curve = RocCurve {
        fpr: vec![0.0],
        tpr: vec![0.0],
        thresholds: vec![f64::INFINITY],
    };
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < n {
        let s = scores[order[i]];
        while i < n && scores[order[i]] == s {
            if positive[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        push_point(
            &mut curve,
            fp as f64 / n_neg as f64,
            tp as f64 / n_pos as f64,
            s,
        );
    }
    Some(curve)
}

/// Appends a point, replacing the last one when the last two and the new one are collinear.
fn push_point(curve: &mut RocCurve, fpr: f64, tpr: f64, threshold: f64) {
    let k = curve.fpr.len();
    if k >= 2 {
        let (x0, y0) = (curve.fpr[k - 2], curve.tpr[k - 2]);
        let (x1, y1) = (curve.fpr[k - 1], curve.tpr[k - 1]);
        let cross = (x1 - x0) * (tpr - y0) - (y1 - y0) * (fpr - x0);
        if cross.abs() < 1e-12 {
            curve.fpr[k - 1] = fpr;
            curve.tpr[k - 1] = tpr;
            curve.thresholds[k - 1] = threshold;
            return;
        }
    }
    curve.fpr.push(fpr);
    curve.tpr.push(tpr);
    curve.thresholds.push(threshold);
}

impl RocCurve {
    /// Area under the curve by the trapezoid rule (equals [`auc`] for the same inputs).
    pub fn area(&self) -> f64 {
        self.fpr
            .windows(2)
            .zip(self.tpr.windows(2))
            .map(|(x, y)| (x[1] - x[0]) * (y[1] + y[0]) / 2.0)
            .sum()
    }
}

/// Bin index of a confidence: `(i/n, (i+1)/n]` → `i`, with 0 in bin 0 and out-of-range clamped.
fn calibration_bin(confidence: f64, n_bins: usize) -> usize {
    let i = (confidence * n_bins as f64).ceil() as i64 - 1;
    i.clamp(0, n_bins as i64 - 1) as usize
}

/// Expected and maximum calibration error of top-label confidences over `n_bins` equal bins.
pub fn calibration(confidences: &[f64], correct: &[bool], n_bins: usize) -> Calibration {
    let n_bins = n_bins.max(1);
    let mut count = vec![0u64; n_bins];
    let mut conf_sum = vec![0.0f64; n_bins];
    let mut correct_sum = vec![0u64; n_bins];
    for (&c, &ok) in confidences.iter().zip(correct) {
        let b = calibration_bin(c, n_bins);
        count[b] += 1;
        conf_sum[b] += c;
        correct_sum[b] += u64::from(ok);
    }
    let total: u64 = count.iter().sum();
    let mut ece = 0.0;
    let mut mce: f64 = 0.0;
    let bins = (0..n_bins)
        .map(|b| {
            let mean_confidence = ratio_f(conf_sum[b], count[b]);
            let accuracy = ratio(correct_sum[b], count[b]);
            if let (Some(c), Some(a)) = (mean_confidence, accuracy) {
                let gap = (a - c).abs();
                ece += count[b] as f64 / total as f64 * gap;
                mce = mce.max(gap);
            }
            CalibrationBin {
                lower: b as f64 / n_bins as f64,
                upper: (b + 1) as f64 / n_bins as f64,
                count: count[b],
                mean_confidence,
                accuracy,
            }
        })
        .collect();
    Calibration { ece, mce, bins }
}

fn ratio_f(num: f64, den: u64) -> Option<f64> {
    (den > 0).then(|| num / den as f64)
}

/// Checks samples against the class list and the threshold.
fn validate(samples: &[Sample], classes: usize, threshold: f64) -> Result<(), MetricsError> {
    if classes == 0 {
        return Err(MetricsError::NoClasses);
    }
    if samples.is_empty() {
        return Err(MetricsError::Empty);
    }
    if !(0.0..=1.0).contains(&threshold) {
        return Err(MetricsError::BadThreshold(threshold));
    }
    for (index, s) in samples.iter().enumerate() {
        if s.probabilities.len() != classes {
            return Err(MetricsError::WrongLength {
                index,
                got: s.probabilities.len(),
                expected: classes,
            });
        }
        if s.true_class >= classes {
            return Err(MetricsError::ClassOutOfRange {
                index,
                class: s.true_class,
                classes,
            });
        }
        if !s.p_malignant.is_finite() || s.probabilities.iter().any(|p| !p.is_finite()) {
            return Err(MetricsError::NonFinite { index });
        }
    }
    Ok(())
}

/// Malignant-vs-benign counts, rates and AUC at `threshold` (P(malignant) ≥ threshold is positive).
pub fn binary_metrics(p_malignant: &[f64], is_malignant: &[bool], threshold: f64) -> BinaryMetrics {
    let (mut tp, mut fp, mut tn, mut fneg) = (0u64, 0u64, 0u64, 0u64);
    for (&p, &m) in p_malignant.iter().zip(is_malignant) {
        match (m, p >= threshold) {
            (true, true) => tp += 1,
            (true, false) => fneg += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
        }
    }
    BinaryMetrics {
        threshold,
        positives: tp + fneg,
        negatives: tn + fp,
        true_positives: tp,
        false_positives: fp,
        true_negatives: tn,
        false_negatives: fneg,
        sensitivity: ratio(tp, tp + fneg),
        specificity: ratio(tn, tn + fp),
        ppv: ratio(tp, tp + fp),
        npv: ratio(tn, tn + fneg),
        auc: auc(p_malignant, is_malignant),
    }
}

/// Computes every figure for `samples` of a model with `classes`, at the verdict `threshold`.
pub fn evaluate(
    samples: &[Sample],
    classes: &[ClassInfo],
    threshold: f64,
) -> Result<Metrics, MetricsError> {
    let k = classes.len();
    validate(samples, k, threshold)?;
    let y_true: Vec<usize> = samples.iter().map(|s| s.true_class).collect();
    let y_pred: Vec<usize> = samples.iter().map(Sample::predicted_class).collect();
    let cm = confusion_matrix(&y_true, &y_pred, k);
    let n = samples.len() as u64;
    let correct: u64 = (0..k).map(|c| cm[c][c]).sum();

    let per_class: Vec<ClassMetrics> = classes
        .iter()
        .enumerate()
        .map(|(c, info)| {
            let tp = cm[c][c];
            let support: u64 = cm[c].iter().sum();
            let predicted: u64 = cm.iter().map(|row| row[c]).sum();
            let (fp, fneg) = (predicted - tp, support - tp);
            let scores: Vec<f64> = samples
                .iter()
                .map(|s| f64::from(s.probabilities[c]))
                .collect();
            let positive: Vec<bool> = y_true.iter().map(|&t| t == c).collect();
            ClassMetrics {
                code: info.code.clone(),
                name: info.name.clone(),
                malignant: info.malignant,
                support,
                predicted,
                precision: ratio(tp, predicted),
                recall: ratio(tp, support),
                f1: ratio(2 * tp, 2 * tp + fp + fneg),
                auc: auc(&scores, &positive),
            }
        })
        .collect();

    let recalls: Vec<f64> = per_class.iter().filter_map(|c| c.recall).collect();
    let f1s: Vec<f64> = per_class.iter().filter_map(|c| c.f1).collect();
    let aucs: Vec<(String, f64)> = per_class
        .iter()
        .filter_map(|c| c.auc.map(|a| (c.code.clone(), a)))
        .collect();

    let p_mal: Vec<f64> = samples.iter().map(|s| f64::from(s.p_malignant)).collect();
    let is_mal: Vec<bool> = y_true.iter().map(|&t| classes[t].malignant).collect();
    let confidences: Vec<f64> = samples.iter().map(|s| f64::from(s.confidence())).collect();
    let hits: Vec<bool> = y_true.iter().zip(&y_pred).map(|(t, p)| t == p).collect();

    Ok(Metrics {
        n_images: n,
        accuracy: correct as f64 / n as f64,
        balanced_accuracy: mean(&recalls).unwrap_or(0.0),
        macro_f1: mean(&f1s).unwrap_or(0.0),
        macro_auc: mean(&aucs.iter().map(|(_, a)| *a).collect::<Vec<_>>()),
        macro_auc_classes: aucs.into_iter().map(|(c, _)| c).collect(),
        per_class,
        confusion_matrix: cm,
        malignant_vs_benign: binary_metrics(&p_mal, &is_mal, threshold),
        calibration: calibration(&confidences, &hits, ECE_BINS),
    })
}

/// Per-class one-vs-rest ROC curves (`None` where undefined), in class order.
pub fn class_roc_curves(samples: &[Sample], classes: usize) -> Vec<Option<RocCurve>> {
    (0..classes)
        .map(|c| {
            let scores: Vec<f64> = samples
                .iter()
                .map(|s| s.probabilities.get(c).copied().map_or(0.0, f64::from))
                .collect();
            let positive: Vec<bool> = samples.iter().map(|s| s.true_class == c).collect();
            roc_curve(&scores, &positive)
        })
        .collect()
}

/// The malignant-vs-benign ROC curve of P(malignant).
pub fn malignant_roc_curve(samples: &[Sample], classes: &[ClassInfo]) -> Option<RocCurve> {
    let scores: Vec<f64> = samples.iter().map(|s| f64::from(s.p_malignant)).collect();
    let positive: Vec<bool> = samples
        .iter()
        .map(|s| classes.get(s.true_class).is_some_and(|c| c.malignant))
        .collect();
    roc_curve(&scores, &positive)
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn classes(spec: &[(&str, bool)]) -> Vec<ClassInfo> {
        spec.iter()
            .map(|(c, m)| ClassInfo {
                code: c.to_string(),
                name: format!("Class {c}"),
                malignant: *m,
            })
            .collect()
    }

    /// Four classes: `a` malignant; `c` absent and never predicted; `d` present but never predicted.
    fn four_class_set() -> (Vec<ClassInfo>, Vec<Sample>) {
        let cls = classes(&[("a", true), ("b", false), ("c", false), ("d", false)]);
        let rows: [(usize, [f32; 4]); 6] = [
            (0, [0.7, 0.2, 0.05, 0.05]),
            (0, [0.4, 0.5, 0.05, 0.05]),
            (0, [0.65, 0.25, 0.05, 0.05]),
            (1, [0.2, 0.7, 0.05, 0.05]),
            (1, [0.75, 0.15, 0.05, 0.05]),
            // A three-way tie: the first maximum (class a) is the prediction.
            (3, [0.3, 0.3, 0.1, 0.3]),
        ];
        let samples = rows
            .iter()
            .map(|(t, p)| Sample::from_probabilities(*t, p.to_vec(), &cls))
            .collect();
        (cls, samples)
    }

    #[test]
    fn confusion_matrix_and_per_class_figures_match_a_hand_computed_example() {
        let (cls, samples) = four_class_set();
        let m = evaluate(&samples, &cls, 0.5).unwrap();
        assert_eq!(
            m.confusion_matrix,
            vec![
                vec![2, 1, 0, 0],
                vec![1, 1, 0, 0],
                vec![0, 0, 0, 0],
                vec![1, 0, 0, 0]
            ]
        );
        assert_eq!(m.n_images, 6);
        assert!(close(m.accuracy, 0.5));

        let a = &m.per_class[0];
        assert_eq!((a.support, a.predicted), (3, 4));
        assert!(close(a.precision.unwrap(), 0.5));
        assert!(close(a.recall.unwrap(), 2.0 / 3.0));
        assert!(close(a.f1.unwrap(), 4.0 / 7.0));

        let b = &m.per_class[1];
        assert!(
            close(b.precision.unwrap(), 0.5)
                && close(b.recall.unwrap(), 0.5)
                && close(b.f1.unwrap(), 0.5)
        );
    }

    #[test]
    fn a_class_absent_from_labels_and_predictions_has_undefined_figures_and_is_left_out_of_averages()
     {
        let (cls, samples) = four_class_set();
        let m = evaluate(&samples, &cls, 0.5).unwrap();
        let c = &m.per_class[2];
        assert_eq!((c.support, c.predicted), (0, 0));
        assert_eq!(
            (c.precision, c.recall, c.f1, c.auc),
            (None, None, None, None)
        );
        // Mean recall over a, b, d only: (2/3 + 1/2 + 0) / 3.
        assert!(close(m.balanced_accuracy, 7.0 / 18.0));
        // Mean F1 over a, b, d only: (4/7 + 1/2 + 0) / 3.
        assert!(close(m.macro_f1, 5.0 / 14.0));
    }

    #[test]
    fn a_class_present_but_never_predicted_has_no_precision_and_zero_recall_and_f1() {
        let (cls, samples) = four_class_set();
        let m = evaluate(&samples, &cls, 0.5).unwrap();
        let d = &m.per_class[3];
        assert_eq!((d.support, d.predicted), (1, 0));
        assert_eq!(d.precision, None);
        assert_eq!(d.recall, Some(0.0));
        assert_eq!(d.f1, Some(0.0));
    }

    #[test]
    fn one_vs_rest_aucs_and_their_macro_mean_match_pair_counting() {
        let (cls, samples) = four_class_set();
        let m = evaluate(&samples, &cls, 0.5).unwrap();
        // a: positives 0.7, 0.4, 0.65 vs negatives 0.2, 0.75, 0.3 -> 6 of 9 pairs.
        assert!(close(m.per_class[0].auc.unwrap(), 2.0 / 3.0));
        // b: positives 0.7, 0.15 vs negatives 0.2, 0.5, 0.25, 0.3 -> 4 of 8 pairs.
        assert!(close(m.per_class[1].auc.unwrap(), 0.5));
        // d: its one positive (0.3) beats all five negatives (0.05).
        assert!(close(m.per_class[3].auc.unwrap(), 1.0));
        assert!(close(m.macro_auc.unwrap(), 13.0 / 18.0));
        assert_eq!(m.macro_auc_classes, vec!["a", "b", "d"]);
    }

    #[test]
    fn malignant_figures_use_the_threshold_inclusively_and_match_hand_counts() {
        let (cls, samples) = four_class_set();
        let m = evaluate(&samples, &cls, 0.5).unwrap().malignant_vs_benign;
        assert_eq!(
            (
                m.true_positives,
                m.false_negatives,
                m.false_positives,
                m.true_negatives
            ),
            (2, 1, 1, 2)
        );
        assert!(close(m.sensitivity.unwrap(), 2.0 / 3.0));
        assert!(close(m.specificity.unwrap(), 2.0 / 3.0));
        assert!(close(m.auc.unwrap(), 2.0 / 3.0));

        // P(malignant) exactly at the threshold is flagged.
        let b = binary_metrics(&[0.5, 0.49], &[true, false], 0.5);
        assert_eq!((b.true_positives, b.true_negatives), (1, 1));
        assert_eq!(b.specificity, Some(1.0));
        // Without benign samples specificity and AUC are undefined.
        let only_pos = binary_metrics(&[0.9, 0.1], &[true, true], 0.5);
        assert_eq!(
            (only_pos.specificity, only_pos.auc, only_pos.npv),
            (None, None, Some(0.0))
        );
    }

    #[test]
    fn auc_counts_tied_scores_as_half_a_win() {
        // Positive 0.5 ties two negatives (2 × 0.5), positive 0.9 beats both (2) -> 3 of 4.
        let scores = [0.5, 0.5, 0.5, 0.9];
        let positive = [true, false, false, true];
        assert!(close(auc(&scores, &positive).unwrap(), 0.75));
        // All scores equal is chance level.
        assert!(close(
            auc(&[0.3; 4], &[true, false, true, false]).unwrap(),
            0.5
        ));
        // A perfectly inverted ranking is 0.
        assert!(close(auc(&[0.1, 0.9], &[true, false]).unwrap(), 0.0));
    }

    #[test]
    fn auc_is_undefined_without_positives_or_negatives() {
        assert_eq!(auc(&[0.1, 0.2], &[false, false]), None);
        assert_eq!(auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(roc_curve(&[], &[]), None);
    }

    #[test]
    fn roc_curve_moves_diagonally_through_ties_and_its_area_equals_the_auc() {
        let scores = [0.5, 0.5, 0.5, 0.9];
        let positive = [true, false, false, true];
        let roc = roc_curve(&scores, &positive).unwrap();
        assert_eq!(roc.fpr, vec![0.0, 0.0, 1.0]);
        assert_eq!(roc.tpr, vec![0.0, 0.5, 1.0]);
        assert_eq!(roc.thresholds[1..], [0.9, 0.5]);
        assert!(close(roc.area(), 0.75));

        let scores = [0.9, 0.1, 0.35, 0.8, 0.4, 0.35, 0.7, 0.2];
        let positive = [true, false, true, false, true, false, false, true];
        let roc = roc_curve(&scores, &positive).unwrap();
        assert!(close(roc.area(), auc(&scores, &positive).unwrap()));
    }

    #[test]
    fn roc_curve_drops_collinear_points() {
        let roc = roc_curve(&[0.9, 0.8, 0.7, 0.1], &[true, true, true, false]).unwrap();
        assert_eq!(roc.fpr, vec![0.0, 0.0, 1.0]);
        assert_eq!(roc.tpr, vec![0.0, 1.0, 1.0]);
        assert_eq!(roc.thresholds[1..], [0.7, 0.1]);
    }

    #[test]
    fn ece_weights_each_bin_by_its_share_of_samples() {
        // Bin (14/15, 1]: confidences 0.95, 0.95, 1.0 with 2 of 3 right -> gap 0.9667 - 0.6667 = 0.3.
        // Bin (7/15, 8/15]: confidence 0.5, right -> gap 0.5.
        // ECE = 3/4 · 0.3 + 1/4 · 0.5 = 0.35 (an unweighted mean of bins would give 0.4).
        let cal = calibration(&[0.95, 0.95, 0.5, 1.0], &[true, false, true, true], 15);
        assert!(close(cal.ece, 0.35), "ece {}", cal.ece);
        assert!(close(cal.mce, 0.5));
        assert_eq!(cal.bins.len(), 15);
        assert_eq!(cal.bins[14].count, 3);
        assert_eq!(cal.bins[7].count, 1);
        assert_eq!(cal.bins.iter().map(|b| b.count).sum::<u64>(), 4);
        assert_eq!(cal.bins[0].accuracy, None);
    }

    #[test]
    fn ece_bins_include_their_upper_edge() {
        let cal = calibration(&[0.5, 0.0], &[true, false], 4);
        assert_eq!(cal.bins[1].count, 1, "0.5 belongs to (0.25, 0.5]");
        assert_eq!(cal.bins[0].count, 1, "0 belongs to the first bin");
    }

    #[test]
    fn ece_of_the_hand_computed_set_uses_top_label_confidence() {
        let (cls, samples) = four_class_set();
        let m = evaluate(&samples, &cls, 0.5).unwrap();
        // Confidences 0.7 (right), 0.5 (wrong), 0.65 (right), 0.7 (right), 0.75 (wrong), 0.3 (wrong):
        // bins (10/15, 11/15]: {0.7, 0.7} acc 1 -> gap 0.3; (7/15, 8/15]: {0.5} acc 0 -> 0.5;
        // (9/15, 10/15]: {0.65} acc 1 -> 0.35; (11/15, 12/15]: {0.75} acc 0 -> 0.75; (4/15, 5/15]: {0.3} -> 0.3.
        let expected = (2.0 * 0.3 + 0.5 + 0.35 + 0.75 + 0.3) / 6.0;
        assert!(
            (m.calibration.ece - expected).abs() < 1e-6,
            "{} vs {expected}",
            m.calibration.ece
        );
    }

    #[test]
    fn argmax_takes_the_first_maximum_and_ignores_nan() {
        assert_eq!(argmax(&[0.3, 0.3, 0.1]), 0);
        assert_eq!(argmax(&[0.1, 0.5, 0.5]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.2, 0.1]), 1);
    }

    #[test]
    fn evaluate_rejects_malformed_input_with_typed_errors() {
        let cls = classes(&[("a", true), ("b", false)]);
        assert_eq!(evaluate(&[], &cls, 0.5), Err(MetricsError::Empty));
        let short = Sample {
            true_class: 0,
            probabilities: vec![1.0],
            p_malignant: 1.0,
        };
        assert!(matches!(
            evaluate(&[short], &cls, 0.5),
            Err(MetricsError::WrongLength { got: 1, .. })
        ));
        let out = Sample {
            true_class: 5,
            probabilities: vec![0.5, 0.5],
            p_malignant: 0.5,
        };
        assert!(matches!(
            evaluate(&[out], &cls, 0.5),
            Err(MetricsError::ClassOutOfRange { class: 5, .. })
        ));
        let nan = Sample {
            true_class: 0,
            probabilities: vec![f32::NAN, 0.5],
            p_malignant: 0.5,
        };
        assert_eq!(
            evaluate(&[nan], &cls, 0.5),
            Err(MetricsError::NonFinite { index: 0 })
        );
        let ok = Sample::from_probabilities(0, vec![0.6, 0.4], &cls);
        assert_eq!(
            evaluate(&[ok], &cls, 1.5),
            Err(MetricsError::BadThreshold(1.5))
        );
    }
}
