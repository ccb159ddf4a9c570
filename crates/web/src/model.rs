//! `/model`: what the shipped model is and how well it does, from its card and from the report
//! that `mole eval` (the Rust evaluator, the service's own preprocessing) wrote for it.
//!
//! Both files are read once at start. The card is required (the web process and the workers
//! read the same `MOLE_MODEL`); a missing report is stated on the page, not an error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mole_inference::ModelCard;
use serde_json::Value;
use tracing::warn;

use crate::AppState;

/// The model as the `/model` page shows it.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// `name@version`.
    pub version: String,
    /// The raw card JSON (served at `/model/card.json`).
    pub card_json: Arc<String>,
    /// Input side in pixels.
    pub input_size: u32,
    /// P(malignant) at or above which the verdict is "see a doctor".
    pub threshold: f32,
    /// Softmax temperature.
    pub temperature: f32,
    /// The network, as the card names it (e.g. "EfficientNet-Lite0 …, ImageNet-pretrained, fine-tuned").
    pub architecture: String,
    /// Training data, as the card states it.
    pub training_data: String,
    /// Data licence.
    pub licence: String,
    /// Data citation.
    pub citation: String,
    /// The classes, with the card's malignant flag.
    pub classes: Vec<ClassLine>,
    /// Figures of the evaluator's report, when there is one.
    pub report: Option<ReportSummary>,
    /// The self-contained `report.html`, when there is one.
    pub report_html: Option<Arc<String>>,
}

/// One class of the card, with its figures from the report.
#[derive(Debug, Clone)]
pub struct ClassLine {
    /// HAM10000 code.
    pub code: String,
    /// Full name.
    pub name: String,
    /// Counted as malignant.
    pub malignant: bool,
    /// Precision, recall, F1, ROC AUC and support on the evaluated set (percentages, except support).
    pub figures: Option<ClassFigures>,
}

/// Per-class figures.
#[derive(Debug, Clone)]
pub struct ClassFigures {
    /// Precision in percent.
    pub precision: f64,
    /// Recall (sensitivity) in percent.
    pub recall: f64,
    /// F1 in percent.
    pub f1: f64,
    /// One-vs-rest ROC AUC.
    pub auc: Option<f64>,
    /// Images of this class.
    pub support: u64,
}

/// The headline figures of `metrics.json`.
#[derive(Debug, Clone)]
pub struct ReportSummary {
    /// Images evaluated.
    pub n_images: u64,
    /// Which split / data set.
    pub evaluated_on: String,
    /// Inference backend used.
    pub backend: String,
    /// Test-time augmentation used.
    pub tta: bool,
    /// Balanced accuracy in percent.
    pub balanced_accuracy: f64,
    /// Accuracy in percent.
    pub accuracy: f64,
    /// Macro ROC AUC.
    pub macro_auc: f64,
    /// Malignant sensitivity at the threshold, percent.
    pub sensitivity: f64,
    /// Malignant specificity at the threshold, percent.
    pub specificity: f64,
    /// Malignant vs benign ROC AUC.
    pub malignant_auc: f64,
    /// Malignant cases missed / all malignant cases.
    pub missed: String,
    /// Expected calibration error, percent.
    pub ece: f64,
    /// When the evaluation ran.
    pub evaluated_at: String,
}

impl ModelInfo {
    /// Reads the card (required) and the report directory (optional).
    pub fn load(card_path: &Path, report_dir: &Path) -> anyhow::Result<Self> {
        // Read once: the same text is parsed here and served as shipped at /model/card.json.
        let card_json = std::fs::read_to_string(card_path)
            .map_err(|e| anyhow::anyhow!("model card {}: {e}", card_path.display()))?;
        let card = ModelCard::from_json(&card_json, card_path)
            .map_err(|e| anyhow::anyhow!("model card {}: {e}", card_path.display()))?;
        let metrics = match std::fs::read_to_string(report_dir.join("metrics.json")) {
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(v) => Some(v),
                Err(e) => {
                    warn!(dir = %report_dir.display(), error = %e, "unreadable metrics.json; /model shows the card only");
                    None
                }
            },
            Err(e) => {
                warn!(dir = %report_dir.display(), error = %e, "no evaluation report; /model shows the card only");
                None
            }
        };
        // A report of another model would mislead: only use one that names this model.
        let metrics = metrics.filter(|m| {
            let matches = m["run"]["onnx_sha256"].as_str() == Some(card.onnx_sha256.as_str());
            if !matches {
                warn!(dir = %report_dir.display(), "the evaluation report is of another model; not shown");
            }
            matches
        });
        let report_html = metrics
            .as_ref()
            .and_then(|_| std::fs::read_to_string(report_dir.join("report.html")).ok())
            .map(Arc::new);
        let per_class = |code: &str| -> Option<ClassFigures> {
            let row = metrics.as_ref()?["per_class"]
                .as_array()?
                .iter()
                .find(|r| r["code"] == code)?;
            Some(ClassFigures {
                precision: row["precision"].as_f64()? * 100.0,
                recall: row["recall"].as_f64()? * 100.0,
                f1: row["f1"].as_f64()? * 100.0,
                auc: row["auc"].as_f64(),
                support: row["support"].as_u64()?,
            })
        };
        let classes = card
            .classes
            .iter()
            .map(|c| ClassLine {
                code: c.code.clone(),
                name: c.name.clone(),
                malignant: c.malignant,
                figures: per_class(&c.code),
            })
            .collect();
        let text = |v: &Value| v.as_str().unwrap_or("not stated").to_owned();
        let raw: Value = serde_json::from_str(&card_json)?;
        Ok(Self {
            version: card.model_version(),
            card_json: Arc::new(card_json),
            input_size: card.input_size(),
            threshold: card.threshold,
            temperature: card.temperature,
            architecture: text(&raw["architecture"]["name"]),
            training_data: text(&card.training["data"]),
            licence: text(&card.training["licence"]),
            citation: text(&card.training["citation"]),
            classes,
            report: metrics.as_ref().and_then(summary),
            report_html,
        })
    }
}

fn summary(m: &Value) -> Option<ReportSummary> {
    let mvb = &m["malignant_vs_benign"];
    let run = &m["run"];
    let evaluated_on = match run["split"]["name"].as_str() {
        Some(name) => format!(
            "the {name} split of {} ({})",
            run["labels_csv"]
                .as_str()
                .and_then(|p| Path::new(p).parent())
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "the labelled set".to_owned()),
            run["split"]["file"].as_str().unwrap_or("split file")
        ),
        None => "every labelled image given".to_owned(),
    };
    Some(ReportSummary {
        n_images: m["n_images"].as_u64()?,
        evaluated_on,
        backend: run["backend"].as_str().unwrap_or("?").to_owned(),
        tta: run["tta"].as_bool().unwrap_or(false),
        balanced_accuracy: m["balanced_accuracy"].as_f64()? * 100.0,
        accuracy: m["accuracy"].as_f64()? * 100.0,
        macro_auc: m["macro_auc"].as_f64()?,
        sensitivity: mvb["sensitivity"].as_f64()? * 100.0,
        specificity: mvb["specificity"].as_f64()? * 100.0,
        malignant_auc: mvb["auc"].as_f64()?,
        missed: format!(
            "{} of {}",
            mvb["false_negatives"].as_u64()?,
            mvb["positives"].as_u64()?
        ),
        ece: m["calibration"]["ece"].as_f64()? * 100.0,
        evaluated_at: run["started_at"].as_str().unwrap_or("?").to_owned(),
    })
}

/// The `/model` page.
#[derive(Template, WebTemplate)]
#[template(path = "model.html")]
pub struct ModelPage {
    /// The model.
    pub model: Arc<ModelInfo>,
    /// The request's language.
    pub t: crate::i18n::Tr,
}

impl ModelPage {
    /// What the network is and how it decides, in the page's language.
    pub fn intro(&self) -> String {
        let m = &self.model;
        let mut args = fluent_bundle::FluentArgs::new();
        args.set("architecture", m.architecture.as_str());
        args.set("data", m.training_data.as_str());
        args.set("size", m.input_size);
        args.set("threshold", format!("{:.1} %", m.threshold * 100.0));
        self.t.with_args("model-intro", &args)
    }

    /// The model's version as the page's `<strong>` (for [`crate::i18n::Tr::html`]); versions
    /// are checked by the card loader, but escaped all the same.
    pub fn version_html(&self) -> String {
        format!(
            "<strong id=\"model-version\">{}</strong>",
            crate::i18n::escape_html(&self.model.version)
        )
    }

    /// The link to the full report (for [`crate::i18n::Tr::html`]).
    pub fn report_link_html(&self) -> String {
        format!(
            "<a href=\"/model/report\" id=\"full-report\">{}</a>",
            crate::i18n::escape_html(&self.t.t("model-full-report"))
        )
    }

    /// Where the figures come from, in the page's language.
    pub fn measured(&self, r: &ReportSummary) -> String {
        let mut args = fluent_bundle::FluentArgs::new();
        args.set("backend", r.backend.as_str());
        args.set("n", r.n_images);
        args.set("set", r.evaluated_on.as_str());
        args.set("date", r.evaluated_at.as_str());
        let id = if r.tta {
            "model-measured-tta"
        } else {
            "model-measured"
        };
        self.t.with_args(id, &args)
    }
}

/// `GET /model`.
pub async fn page(State(state): State<AppState>, t: crate::i18n::Tr) -> ModelPage {
    ModelPage {
        t,
        model: state.model.clone(),
    }
}

/// `GET /model/report`: the evaluator's self-contained report (no scripts, images inline).
pub async fn report(State(state): State<AppState>) -> Response {
    let Some(html) = state.model.report_html.clone() else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "No evaluation report of this model is installed (see /model).",
        )
            .into_response();
    };
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html.as_str().to_owned(),
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; \
             form-action 'none'; frame-ancestors 'none'",
        ),
    );
    response
}

/// `GET /model/card.json`: the model card as shipped.
pub async fn card(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.model.card_json.as_str().to_owned(),
    )
        .into_response()
}

/// Default location of a model's report: `<card dir>/report/<model>` for `<card dir>/<model>.card.json`,
/// so that the reports of several shipped models live side by side.
pub fn default_report_dir(card: &Path) -> PathBuf {
    let file = card.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let model = file
        .strip_suffix(".card.json")
        .or_else(|| file.strip_suffix(".json"))
        .unwrap_or(file);
    card.parent()
        .unwrap_or_else(|| Path::new("."))
        .join("report")
        .join(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_model_has_its_report_folder_beside_its_card() {
        assert_eq!(
            default_report_dir(Path::new("models/mole-v2.card.json")),
            PathBuf::from("models/report/mole-v2")
        );
        assert_eq!(
            default_report_dir(Path::new("/srv/m/x.json")),
            PathBuf::from("/srv/m/report/x")
        );
    }
}
