//! The self-contained HTML report: inline SVG plots and inline JPEG thumbnails, no external
//! assets, so the file can be committed, mailed or served as it is (the web service shows the
//! shipped model's report at `/model`).

use std::fmt::Write as _;

use crate::metrics::{self, ClassInfo};
use crate::plots::{self, MatrixValues, OperatingPoint, RocSeries};
use crate::{EvalResult, InputCounts, RunInfo};

/// Title of the confusion matrix of counts.
pub const TITLE_CONFUSION_COUNTS: &str = "Confusion matrix (counts)";
/// Title of the row-normalised confusion matrix.
pub const TITLE_CONFUSION_NORMALISED: &str =
    "Confusion matrix (row-normalised: recall on the diagonal)";
/// Title of the per-class ROC plot.
pub const TITLE_ROC_CLASSES: &str = "ROC curves, each class against the rest";
/// Title of the malignant-vs-benign ROC plot.
pub const TITLE_ROC_MALIGNANT: &str = "Malignant vs benign ROC of P(malignant)";
/// Start of the reliability diagram's title (the ECE follows).
pub const TITLE_RELIABILITY: &str = "Reliability diagram";
/// Start of the class distribution's title (the count follows).
pub const TITLE_DISTRIBUTION: &str = "Class distribution of the evaluated set";
/// Title of the per-class table.
pub const TITLE_PER_CLASS: &str = "Per-class precision, recall, F1 and support";
/// Title of the gallery.
pub const TITLE_GALLERY: &str = "Most confident mistakes";

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn fmt3(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |x| format!("{x:.3}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |x| format!("{:.1}%", 100.0 * x))
}

fn figure(out: &mut String, caption: &str, svg: Result<String, plots::PlotError>) {
    out.push_str("<figure>");
    match svg {
        Ok(svg) => out.push_str(&svg),
        Err(e) => {
            let _ = write!(out, "<p class=\"error\">{}</p>", escape(&e.to_string()));
        }
    }
    let _ = writeln!(out, "<figcaption>{}</figcaption></figure>", escape(caption));
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;overflow-wrap:break-word}\
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:1em 0;display:block;max-width:100%;overflow-x:auto}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}\
th:first-child,td:first-child{text-align:left}thead th{background:#f2f4f7}\
figure{margin:1em 0}figure svg{max-width:100%;height:auto}figcaption{color:#555;font-size:.9em}\
.gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{width:min(180px,100%);margin:0;font-size:.8em}\
.gallery img{display:block;max-width:96px;max-height:96px}.error{color:#b00}.note{color:#555}\
code{font-size:.9em}@media (max-width:40em){body{margin:1em auto}th,td{padding:.25em .4em}}";

/// Renders the full report for an evaluation.
pub fn render_html(result: &EvalResult) -> String {
    let m = &result.metrics;
    let run = &result.run;
    let classes = &result.classes;
    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Evaluation of {v}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>Evaluation of {v}</h1>\n",
        v = escape(&run.model_version)
    );
    let _ = writeln!(
        out,
        "<p>{n} images from <code>{labels}</code>{split}{limit}, evaluated on {date} with the {backend} backend{tta}.</p>",
        n = m.n_images,
        labels = escape(&run.labels_csv),
        split = run.split.as_ref().map_or(String::new(), |s| format!(
            ", split <code>{}</code> of <code>{}</code>",
            escape(&s.name),
            escape(&s.file)
        )),
        limit = run.limit.map_or(String::new(), |n| format!(
            " (limited to the first {n} rows)"
        )),
        date = escape(&run.started_at),
        backend = escape(&run.backend),
        tta = if run.tta {
            " and test-time augmentation"
        } else {
            ""
        },
    );

    summary(&mut out, result);
    inputs_section(&mut out, &result.inputs);

    out.push_str("<h2 id=\"confusion\">Confusion matrix</h2>\n");
    figure(
        &mut out,
        "Rows: true class; columns: predicted class. Shading is relative to the largest cell.",
        plots::confusion_matrix(
            TITLE_CONFUSION_COUNTS,
            &m.confusion_matrix,
            classes,
            MatrixValues::Counts,
        ),
    );
    figure(
        &mut out,
        "Each row divided by the number of images of that true class.",
        plots::confusion_matrix(
            TITLE_CONFUSION_NORMALISED,
            &m.confusion_matrix,
            classes,
            MatrixValues::RowNormalised,
        ),
    );

    per_class_table(&mut out, result);
    roc_section(&mut out, result);

    let cal = &m.calibration;
    let _ = writeln!(out, "<h2 id=\"calibration\">Calibration</h2>");
    let reliability_title = format!(
        "{TITLE_RELIABILITY} (ECE = {:.3}, {} bins)",
        cal.ece,
        cal.bins.len()
    );
    figure(
        &mut out,
        &format!(
            "Top-label confidence in {} equal bins; the red mark is the mean confidence of the bin, the number above it the bin's image count. \
             ECE = Σ (bin share) · |accuracy − mean confidence| = {:.4}; largest bin gap {:.3}.",
            cal.bins.len(),
            cal.ece,
            cal.mce
        ),
        plots::reliability_diagram(&reliability_title, cal),
    );

    let _ = writeln!(out, "<h2 id=\"distribution\">Evaluated set</h2>");
    let support: Vec<u64> = m.per_class.iter().map(|c| c.support).collect();
    figure(
        &mut out,
        "Images per true class in the evaluated set.",
        plots::class_distribution(
            &format!("{TITLE_DISTRIBUTION} (n = {})", m.n_images),
            classes,
            &support,
        ),
    );

    gallery(&mut out, result);
    run_section(&mut out, run);
    out.push_str("</body>\n</html>\n");
    out
}

fn summary(out: &mut String, result: &EvalResult) {
    let m = &result.metrics;
    let b = &m.malignant_vs_benign;
    let _ = writeln!(out, "<h2 id=\"summary\">Summary</h2>\n<table>\n<tbody>");
    let rows: [(&str, String); 10] = [
        (
            "Balanced accuracy (mean recall over classes)",
            fmt3(Some(m.balanced_accuracy)),
        ),
        ("Accuracy", fmt3(Some(m.accuracy))),
        (
            "Macro AUC (one class vs the rest)",
            format!(
                "{} over {} classes",
                fmt3(m.macro_auc),
                m.macro_auc_classes.len()
            ),
        ),
        ("Macro F1", fmt3(Some(m.macro_f1))),
        ("Malignant vs benign AUC", fmt3(b.auc)),
        (
            "Sensitivity at the threshold (malignant flagged)",
            format!(
                "{} ({} of {})",
                pct(b.sensitivity),
                b.true_positives,
                b.positives
            ),
        ),
        (
            "Specificity at the threshold (benign not flagged)",
            format!(
                "{} ({} of {})",
                pct(b.specificity),
                b.true_negatives,
                b.negatives
            ),
        ),
        (
            "Verdict threshold on P(malignant)",
            format!("{:.3}", b.threshold),
        ),
        (
            "Expected calibration error (15 bins)",
            format!("{:.4}", m.calibration.ece),
        ),
        ("Images evaluated", m.n_images.to_string()),
    ];
    for (name, value) in rows {
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
            escape(name),
            escape(&value)
        );
    }
    out.push_str("</tbody>\n</table>\n");
    let malignant: Vec<String> = result
        .classes
        .iter()
        .filter(|c| c.malignant)
        .map(|c| escape(&c.name))
        .collect();
    let _ = writeln!(
        out,
        "<p class=\"note\">Malignant classes: {}. P(malignant) is the sum of their probabilities; \
         at or above the threshold the verdict is “see a doctor”.</p>",
        malignant.join(", ")
    );
}

fn inputs_section(out: &mut String, inputs: &InputCounts) {
    let _ = writeln!(
        out,
        "<h2 id=\"inputs\">Inputs</h2>\n<table>\n<tbody>\n\
         <tr><th scope=\"row\">Labelled images in the CSV</th><td>{}</td></tr>\n\
         <tr><th scope=\"row\">Selected (split, limit)</th><td>{}</td></tr>\n\
         <tr><th scope=\"row\">Evaluated</th><td>{}</td></tr>\n\
         <tr><th scope=\"row\">Missing from the image directory</th><td>{}</td></tr>\n\
         <tr><th scope=\"row\">Unreadable or undecodable</th><td>{}</td></tr>\n\
         <tr><th scope=\"row\">Split rows without a label</th><td>{}</td></tr>\n\
         </tbody>\n</table>",
        inputs.labelled,
        inputs.selected,
        inputs.evaluated,
        inputs.missing,
        inputs.unreadable,
        inputs.split_without_label
    );
    if !inputs.missing_examples.is_empty() {
        let ids: Vec<String> = inputs.missing_examples.iter().map(|s| escape(s)).collect();
        let _ = writeln!(
            out,
            "<p class=\"note\">Missing, e.g.: {}</p>",
            ids.join(", ")
        );
    }
    if !inputs.unreadable_examples.is_empty() {
        out.push_str("<ul class=\"note\">\n");
        for (id, reason) in &inputs.unreadable_examples {
            let _ = writeln!(out, "<li>{}: {}</li>", escape(id), escape(reason));
        }
        out.push_str("</ul>\n");
    }
}

fn per_class_table(out: &mut String, result: &EvalResult) {
    let m = &result.metrics;
    let _ = writeln!(
        out,
        "<h2 id=\"per-class\">{}</h2>\n<table>\n<thead><tr><th>Class</th><th>Malignant</th>\
         <th>Precision</th><th>Recall</th><th>F1</th><th>AUC</th><th>Support</th><th>Predicted</th></tr></thead>\n<tbody>",
        escape(TITLE_PER_CLASS)
    );
    for c in &m.per_class {
        let _ = writeln!(
            out,
            "<tr><td>{} (<code>{}</code>)</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.name),
            escape(&c.code),
            if c.malignant { "yes" } else { "no" },
            fmt3(c.precision),
            fmt3(c.recall),
            fmt3(c.f1),
            fmt3(c.auc),
            c.support,
            c.predicted
        );
    }
    let _ = writeln!(
        out,
        "<tr><th scope=\"row\">Macro average / total</th><td></td><td></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        fmt3(Some(m.balanced_accuracy)),
        fmt3(Some(m.macro_f1)),
        fmt3(m.macro_auc),
        m.n_images,
        m.n_images
    );
    out.push_str("</tbody>\n</table>\n<p class=\"note\">— : undefined (precision of a class never predicted, \
                  recall of a class absent from the set, AUC without positives or negatives). \
                  The macro recall is the balanced accuracy.</p>\n");
}

fn roc_section(out: &mut String, result: &EvalResult) {
    let samples = result.samples();
    let classes: &[ClassInfo] = &result.classes;
    let curves = metrics::class_roc_curves(&samples, classes.len());
    let series: Vec<RocSeries<'_>> = curves
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let curve = c.as_ref()?;
            Some(RocSeries {
                label: format!(
                    "{} (AUC {:.3})",
                    plots::class_label(&classes[i]),
                    curve.area()
                ),
                curve,
                colour: plots::class_colour(i),
            })
        })
        .collect();
    let _ = writeln!(out, "<h2 id=\"roc\">ROC curves</h2>");
    let skipped: Vec<String> = curves
        .iter()
        .zip(classes)
        .filter(|(c, _)| c.is_none())
        .map(|(_, class)| escape(&class.name))
        .collect();
    let caption = if skipped.is_empty() {
        "Each class's probability used as a score against all other classes.".to_string()
    } else {
        format!(
            "Each class's probability used as a score against all other classes. Not drawn (no positives or no negatives): {}.",
            skipped.join(", ")
        )
    };
    figure(
        out,
        &caption,
        plots::roc_curves(TITLE_ROC_CLASSES, &series, None),
    );

    let b = &result.metrics.malignant_vs_benign;
    match metrics::malignant_roc_curve(&samples, classes) {
        Some(curve) => {
            let point = b
                .sensitivity
                .zip(b.specificity)
                .map(|(sens, spec)| OperatingPoint {
                    label: format!(
                        "Threshold {:.2}: sensitivity {:.3}, specificity {:.3}",
                        b.threshold, sens, spec
                    ),
                    fpr: 1.0 - spec,
                    tpr: sens,
                });
            let series = [RocSeries {
                label: format!("P(malignant) (AUC {:.3})", curve.area()),
                curve: &curve,
                colour: plots::class_colour(0),
            }];
            figure(
                out,
                "Malignant = the card's malignant classes; the red dot is the verdict threshold of the model card.",
                plots::roc_curves(TITLE_ROC_MALIGNANT, &series, point.as_ref()),
            );
        }
        None => {
            let _ = writeln!(
                out,
                "<p class=\"note\">{}: not drawn, the set lacks malignant or benign images.</p>",
                escape(TITLE_ROC_MALIGNANT)
            );
        }
    }
}

fn gallery(out: &mut String, result: &EvalResult) {
    let _ = writeln!(out, "<h2 id=\"mistakes\">{}</h2>", escape(TITLE_GALLERY));
    if result.gallery.is_empty() {
        out.push_str("<p class=\"note\">No mistakes in the evaluated set.</p>\n");
        return;
    }
    let _ = writeln!(
        out,
        "<p class=\"note\">The {} wrong predictions with the highest probability on the predicted class.</p>\n<div class=\"gallery\">",
        result.gallery.len()
    );
    let name = |i: usize| {
        result
            .classes
            .get(i)
            .map_or("?".to_string(), |c| c.name.clone())
    };
    for g in &result.gallery {
        out.push_str("<figure>");
        match &g.thumbnail {
            Some(uri) if uri.starts_with("data:image/") => {
                let _ = write!(
                    out,
                    "<img src=\"{}\" alt=\"{}\">",
                    escape(uri),
                    escape(&g.image_id)
                );
            }
            _ => out.push_str("<p class=\"note\">(image unavailable)</p>"),
        }
        let _ = writeln!(
            out,
            "<figcaption><code>{}</code><br>true: {}<br>predicted: {} ({:.1}%)<br>P(malignant) {:.2}</figcaption></figure>",
            escape(&g.image_id),
            escape(&name(g.true_class)),
            escape(&name(g.predicted_class)),
            100.0 * g.confidence,
            g.p_malignant
        );
    }
    out.push_str("</div>\n");
}

fn run_section(out: &mut String, run: &RunInfo) {
    let rows = [
        ("Model", run.model_version.clone()),
        ("Model card", run.card_path.clone()),
        ("Card sha256", run.card_sha256.clone()),
        ("ONNX sha256", run.onnx_sha256.clone()),
        ("Backend", run.backend.clone()),
        (
            "Test-time augmentation",
            if run.tta { "yes" } else { "no" }.to_string(),
        ),
        ("Batch size", run.batch.to_string()),
        ("Images", run.images_dir.clone()),
        ("Labels", run.labels_csv.clone()),
        ("Started", run.started_at.clone()),
        ("Wall time", format!("{:.1} s", run.wall_seconds)),
        ("Evaluator", format!("mole-eval {}", run.evaluator_version)),
    ];
    out.push_str("<h2 id=\"run\">Run</h2>\n<table>\n<tbody>\n");
    for (k, v) in rows {
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td><code>{}</code></td></tr>",
            escape(k),
            escape(&v)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Sample;
    use crate::{ImagePrediction, LabelFormat, Mistake, SplitInfo};

    fn ham_classes() -> Vec<ClassInfo> {
        [
            (
                "akiec",
                "Actinic keratosis / intraepithelial carcinoma (Bowen's disease)",
                true,
            ),
            ("bcc", "Basal cell carcinoma", true),
            ("bkl", "Benign keratosis-like lesion", false),
            ("df", "Dermatofibroma", false),
            ("mel", "Melanoma", true),
            ("nv", "Melanocytic nevus", false),
            ("vasc", "Vascular lesion", false),
        ]
        .iter()
        .map(|(c, n, m)| ClassInfo {
            code: c.to_string(),
            name: n.to_string(),
            malignant: *m,
        })
        .collect()
    }

    /// A deterministic pseudo-model: mostly right, sometimes confidently wrong; class `vasc` absent.
    fn synthetic_result() -> EvalResult {
        let classes = ham_classes();
        let mut state: u64 = 42;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64) as f32
        };
        let mut predictions = Vec::new();
        for i in 0..120 {
            let true_class = [5, 5, 5, 4, 2, 1, 0, 3][i % 8];
            let mut logits: Vec<f32> = (0..7).map(|_| next()).collect();
            let guess = if next() < 0.7 {
                true_class
            } else {
                (true_class + 1 + i % 5) % 7
            };
            logits[guess] += 2.5 * next() + 0.5;
            let exp: Vec<f32> = logits.iter().map(|l| l.exp()).collect();
            let sum: f32 = exp.iter().sum();
            let probabilities: Vec<f32> = exp.iter().map(|e| e / sum).collect();
            let s = Sample::from_probabilities(true_class, probabilities, &classes);
            predictions.push(ImagePrediction {
                image_id: format!("ISIC_{i:07}"),
                true_class,
                probabilities: s.probabilities,
                p_malignant: s.p_malignant,
            });
        }
        let samples: Vec<Sample> = predictions.iter().map(ImagePrediction::sample).collect();
        let metrics = metrics::evaluate(&samples, &classes, 0.35).unwrap();
        let gallery = crate::most_confident_mistakes(&predictions, 3)
            .into_iter()
            .enumerate()
            .map(|(k, i)| {
                let s = predictions[i].sample();
                Mistake {
                    image_id: predictions[i].image_id.clone(),
                    true_class: s.true_class,
                    predicted_class: s.predicted_class(),
                    confidence: s.confidence(),
                    p_malignant: s.p_malignant,
                    // One thumbnail is unavailable, one is not a data URI and must not be linked.
                    thumbnail: match k {
                        0 => Some(format!(
                            "data:image/jpeg;base64,{}",
                            crate::base64::encode(b"\xff\xd8\xff")
                        )),
                        1 => Some("https://example.com/x.jpg".into()),
                        _ => None,
                    },
                }
            })
            .collect();
        EvalResult {
            run: RunInfo {
                model_name: "mole-test".into(),
                model_version: "mole-test@1.0.0 <b>".into(),
                card_path: "models/mole-test.card.json".into(),
                card_sha256: "ab".repeat(32),
                onnx_sha256: "cd".repeat(32),
                backend: "tract".into(),
                tta: false,
                batch: 32,
                images_dir: "images".into(),
                labels_csv: "labels.csv".into(),
                label_format: LabelFormat::Categorical,
                split: Some(SplitInfo {
                    file: "training/split.csv".into(),
                    name: "test".into(),
                }),
                limit: None,
                started_at: "2026-11-27T12:00:00Z".into(),
                wall_seconds: 1.5,
                evaluator_version: "0.1.0".into(),
            },
            inputs: crate::InputCounts {
                labelled: 130,
                selected: 122,
                evaluated: 120,
                missing: 1,
                unreadable: 1,
                missing_examples: vec!["ISIC_missing".into()],
                unreadable_examples: vec![("ISIC_broken".into(), "not an image <garbage>".into())],
                ..Default::default()
            },
            classes,
            metrics,
            predictions,
            gallery,
        }
    }

    /// Checks that every non-void element is closed in order (a small well-formedness test).
    fn tags_balance(html: &str) -> Result<(), String> {
        const VOID: [&str; 5] = ["meta", "img", "br", "link", "input"];
        let mut stack: Vec<String> = Vec::new();
        let mut rest = html;
        while let Some(start) = rest.find('<') {
            let end = rest[start..].find('>').ok_or("unterminated tag")? + start;
            let tag = &rest[start + 1..end];
            rest = &rest[end + 1..];
            if tag.starts_with('!') || tag.starts_with('?') || tag.ends_with('/') {
                continue;
            }
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_alphanumeric())
                .collect();
            if VOID.contains(&name.to_ascii_lowercase().as_str()) {
                continue;
            }
            if tag.starts_with('/') {
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else {
                stack.push(name);
            }
        }
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed: {stack:?}"))
        }
    }

    #[test]
    fn the_report_contains_every_plot_title_and_every_class_name() {
        let result = synthetic_result();
        let html = render_html(&result);
        for title in [
            TITLE_CONFUSION_COUNTS,
            TITLE_CONFUSION_NORMALISED,
            TITLE_ROC_CLASSES,
            TITLE_ROC_MALIGNANT,
            TITLE_RELIABILITY,
            TITLE_DISTRIBUTION,
            TITLE_PER_CLASS,
            TITLE_GALLERY,
        ] {
            assert!(html.contains(&escape(title)), "missing title {title:?}");
        }
        let ece_title = format!(
            "Reliability diagram (ECE = {:.3}, 15 bins)",
            result.metrics.calibration.ece
        );
        assert!(html.contains(&ece_title), "{ece_title}");
        for class in &result.classes {
            assert!(
                html.contains(&escape(&class.name)),
                "class {} not named",
                class.name
            );
        }
        assert_eq!(html.matches("<svg").count(), 6, "six inline plots");
    }

    #[test]
    fn the_report_is_well_formed_self_contained_html() {
        let html = render_html(&synthetic_result());
        assert!(html.starts_with("<!DOCTYPE html>"));
        tags_balance(&html).unwrap();
        assert!(
            !html.contains("<script") && !html.contains("<link"),
            "no external assets"
        );
        assert!(!html.contains("src=\"http"), "no remote images");
        assert!(!html.contains("mole-test@1.0.0 <b>"), "text is escaped");
        assert!(html.contains("not an image &lt;garbage&gt;"));
        assert!(html.contains("ISIC_missing"));
    }

    #[test]
    fn the_gallery_embeds_data_uri_thumbnails_only() {
        let html = render_html(&synthetic_result());
        assert_eq!(
            html.matches("<img src=\"data:image/jpeg;base64,").count(),
            1
        );
        assert_eq!(html.matches("(image unavailable)").count(), 2);
    }

    #[test]
    fn the_report_shows_the_headline_figures() {
        let result = synthetic_result();
        let html = render_html(&result);
        let m = &result.metrics;
        assert!(html.contains(&format!("{:.3}", m.balanced_accuracy)));
        assert!(html.contains(&format!("{:.3}", m.macro_auc.unwrap())));
        let b = &m.malignant_vs_benign;
        let point = format!(
            "Threshold 0.35: sensitivity {:.3}, specificity {:.3}",
            b.sensitivity.unwrap(),
            b.specificity.unwrap()
        );
        assert!(html.contains(&point), "operating point legend {point}");
        // vasc is absent: its ROC is not drawn and the report says so.
        assert!(html.contains("Not drawn (no positives or no negatives): Vascular lesion"));
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">Bowen's & co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Bowen&#39;s &amp; co&lt;/a&gt;"
        );
    }
}
