//! What a case looks like to the outside: the JSON body of `/api/cases/{id}`, the SSE events, and
//! the data of the case page, all built from the same [`CaseView`].

use chrono::{DateTime, Utc};
use mole_inference::{OcclusionMap, RefusalReason, Verdict};
use mole_storage::{Case, CaseState, CaseStatus, Prediction, Refusal};
use serde::Serialize;
use uuid::Uuid;

use crate::i18n::Tr;

/// A case's public state.
#[derive(Debug, Clone, Serialize)]
pub struct CaseView {
    /// Case id.
    pub id: Uuid,
    /// `queued`, `processing`, `done`, `failed`, `refused` or `deleted`.
    pub status: &'static str,
    /// The status in plain words.
    pub status_text: String,
    /// When the photo was stored.
    pub created_at: DateTime<Utc>,
    /// When the analysis finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed, when it did.
    pub error: Option<ErrorView>,
    /// The result, when done.
    pub result: Option<ResultView>,
    /// Why the model would not judge the photo, when refused (then there is no result).
    pub refusal: Option<RefusalView>,
    /// What the model looked at, once the worker drew it (after the result).
    pub explanation: Option<MapView>,
    /// Where to find the case.
    pub links: Links,
}

/// A failure reason.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorView {
    /// Stable code, e.g. `not_an_image`.
    pub code: String,
    /// The reason, fit for the uploader.
    pub message: String,
}

/// Why a photo was refused, and what to do about it.
#[derive(Debug, Clone, Serialize)]
pub struct RefusalView {
    /// Stable code, e.g. `not_a_lesion`, `too_dark`.
    pub reason: String,
    /// Why, in plain words.
    pub message: String,
    /// How to take a photo the model can judge.
    pub advice: String,
    /// `name@version` of the model.
    pub model_version: String,
}

impl RefusalView {
    fn new(r: &Refusal, tr: Tr) -> Self {
        // The catalogue's ids follow the reason codes (`too_dark` → `refusal-too-dark`).
        let key = r
            .result
            .reason
            .parse::<RefusalReason>()
            .map_or("unknown".to_owned(), |r| r.as_str().replace('_', "-"));
        Self {
            reason: r.result.reason.clone(),
            message: tr.t(&format!("refusal-{key}")),
            advice: tr.t(&format!("advice-{key}")),
            model_version: r.result.model_version.clone(),
        }
    }
}

/// An occlusion map ready to draw over the photo: rectangles in a 1000 × 1000 box stretched over
/// the whole photo (an SVG `viewBox`, so no inline style is needed under the page's CSP).
#[derive(Debug, Clone, Serialize)]
pub struct MapView {
    /// The map as the worker wrote it.
    pub map: OcclusionMap,
    /// The model's view (the centre square the model saw), outlined.
    pub frame: MapRect,
    /// One rectangle per cell; cells that changed little are faint.
    pub cells: Vec<MapRect>,
    /// The largest change of P(malignant) one cell made, as a percentage, for the legend.
    pub largest_change: String,
}

/// A rectangle of a [`MapView`].
#[derive(Debug, Clone, Serialize)]
pub struct MapRect {
    /// Left, in 0..1000 of the photo's width.
    pub x: String,
    /// Top, in 0..1000 of the photo's height.
    pub y: String,
    /// Width.
    pub w: String,
    /// Height.
    pub h: String,
    /// `raise` (covering the cell lowered P(malignant): the cell raised it) or `lower`.
    pub effect: &'static str,
    /// Fill opacity, 0–0.7.
    pub opacity: String,
}

/// A change of P(malignant) below this is drawn as nearly transparent, whatever the largest.
const MAP_FLOOR: f32 = 0.05;

impl MapView {
    /// Reads the JSON a worker wrote; `None` (and the map is not shown) when it is malformed.
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        let map: OcclusionMap = serde_json::from_value(value.clone()).ok()?;
        let g = map.grid;
        if g == 0 || map.cells.len() != g * g || map.cells.iter().any(|c| !c.is_finite()) {
            return None;
        }
        let [left, top, width, height] = map.view.map(|v| v.clamp(0.0, 1.0) * 1000.0);
        let largest = map.cells.iter().fold(0.0f32, |m, c| m.max(c.abs()));
        let scale = largest.max(MAP_FLOOR);
        let f = |v: f32| format!("{v:.1}");
        let (cw, ch) = (width / g as f32, height / g as f32);
        let cells = map
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| MapRect {
                x: f(left + (i % g) as f32 * cw),
                y: f(top + (i / g) as f32 * ch),
                w: f(cw),
                h: f(ch),
                effect: if *c >= 0.0 { "raise" } else { "lower" },
                opacity: format!("{:.2}", 0.7 * (c.abs() / scale).min(1.0)),
            })
            .collect();
        Some(Self {
            frame: MapRect {
                x: f(left),
                y: f(top),
                w: f(width),
                h: f(height),
                effect: "frame",
                opacity: "0".to_owned(),
            },
            cells,
            largest_change: format!("{:.1} %", f64::from(largest) * 100.0),
            map,
        })
    }
}

/// The analysis result.
#[derive(Debug, Clone, Serialize)]
pub struct ResultView {
    /// `see_a_doctor` or `looks_benign`.
    pub verdict: String,
    /// The verdict in plain words.
    pub verdict_text: String,
    /// Whether the verdict advises seeing a doctor.
    pub see_a_doctor: bool,
    /// P(malignant), the sum of the malignant diagnoses' probabilities.
    pub p_malignant: f32,
    /// The verdict is "see a doctor" when `p_malignant` is at least this (the model card's).
    pub threshold: f32,
    /// The diagnoses, most probable first.
    pub diagnoses: Vec<DiagnosisView>,
    /// `name@version` of the model.
    pub model_version: String,
    /// Milliseconds from upload to the start of the forward pass.
    pub queue_ms: Option<i32>,
    /// Milliseconds of the forward pass (shared by its batch).
    pub inference_ms: Option<i32>,
    /// Cases in that forward pass.
    pub batch_size: Option<i32>,
    /// Time in the queue, for the page.
    #[serde(skip)]
    pub queue_text: String,
    /// Time in the model, for the page (with the batch it shared, if any).
    #[serde(skip)]
    pub inference_text: String,
}

/// One diagnosis and its probability.
#[derive(Debug, Clone, Serialize)]
pub struct DiagnosisView {
    /// HAM10000 code.
    pub code: String,
    /// Human name.
    pub name: String,
    /// Whether it counts as malignant.
    pub malignant: bool,
    /// Probability in [0, 1].
    pub probability: f32,
    /// Percentage with one decimal, e.g. `37.2 %` (for the page).
    #[serde(skip)]
    pub percent: String,
    /// Bar width in percent of the chart, e.g. `37.2` (for the page).
    #[serde(skip)]
    pub bar: String,
}

/// Related URLs.
#[derive(Debug, Clone, Serialize)]
pub struct Links {
    /// The case page.
    pub page: String,
    /// This JSON.
    pub json: String,
    /// Server-sent events with status changes.
    pub events: String,
}

impl CaseView {
    /// Builds the view of a case read with its prediction or refusal, and its map.
    pub fn of(state: &CaseState, tr: Tr) -> Self {
        let mut view = Self::new(
            &state.case,
            state.prediction.as_ref(),
            state.refusal.as_ref(),
            tr,
        );
        if view.result.is_some() {
            view.explanation = state.explanation.as_ref().and_then(MapView::from_json);
        }
        view
    }

    /// Builds the view of a case and (when done) its prediction, (when refused) its refusal, in
    /// the language of `tr`.
    pub fn new(
        case: &Case,
        prediction: Option<&Prediction>,
        refusal: Option<&Refusal>,
        tr: Tr,
    ) -> Self {
        let status = if case.is_deleted() {
            "deleted"
        } else {
            case.status.as_str()
        };
        let status_text = tr.t(&format!("status-{status}"));
        let error = match (case.status, &case.error) {
            (CaseStatus::Failed, Some(message)) => Some(ErrorView {
                code: case
                    .error_code
                    .clone()
                    .unwrap_or_else(|| "failed".to_owned()),
                message: message.clone(),
            }),
            _ => None,
        };
        let result = match (case.status, prediction, case.is_deleted()) {
            (CaseStatus::Done, Some(p), false) => Some(ResultView::new(case, p, tr)),
            _ => None,
        };
        let refusal = match (case.status, refusal, case.is_deleted()) {
            (CaseStatus::Refused, Some(r), false) => Some(RefusalView::new(r, tr)),
            _ => None,
        };
        let id = case.id;
        Self {
            id,
            status,
            status_text,
            created_at: case.created_at,
            finished_at: case.finished_at,
            error,
            result,
            refusal,
            explanation: None,
            links: Links {
                page: format!("/cases/{id}"),
                json: format!("/api/cases/{id}"),
                events: format!("/cases/{id}/events"),
            },
        }
    }

    /// The `<time>` element of when the photo was sent (for [`Tr::html`]).
    pub fn sent_time_html(&self) -> String {
        local_time_html(self.created_at, MINUTES_UTC)
    }

    /// True once the status will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(self.status, "done" | "failed" | "refused" | "deleted")
    }
}

impl ResultView {
    fn new(case: &Case, prediction: &Prediction, tr: Tr) -> Self {
        let p = &prediction.result;
        let verdict: Option<Verdict> = p.verdict.parse().ok();
        let verdict_text = verdict
            .map(|v| tr.t(&format!("verdict-{}", v.as_str().replace('_', "-"))))
            .unwrap_or_else(|| p.verdict.replace('_', " "));
        let mut diagnoses: Vec<DiagnosisView> = p
            .classes
            .iter()
            .map(|c| {
                let pct = f64::from(c.probability.clamp(0.0, 1.0)) * 100.0;
                DiagnosisView {
                    code: c.code.clone(),
                    name: tr.name_of_diagnosis(&c.code, &c.name),
                    malignant: c.malignant,
                    probability: c.probability,
                    percent: format!("{pct:.1} %"),
                    bar: format!("{pct:.1}"),
                }
            })
            .collect();
        diagnoses.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        Self {
            see_a_doctor: verdict == Some(Verdict::SeeADoctor),
            verdict: p.verdict.clone(),
            verdict_text,
            p_malignant: p.p_malignant,
            threshold: p.threshold,
            diagnoses,
            model_version: p.model_version.clone(),
            queue_ms: case.queue_ms,
            inference_ms: case.inference_ms,
            batch_size: case.batch_size,
            queue_text: ms_text(case.queue_ms, tr),
            inference_text: match case.batch_size {
                Some(n) if n > 1 => tr.t2(
                    "technical-batch",
                    ("wait", ms_text(case.inference_ms, tr).into()),
                    ("n", n.into()),
                ),
                _ => ms_text(case.inference_ms, tr),
            },
        }
    }

    /// P(malignant) as a percentage for the page.
    pub fn p_malignant_percent(&self) -> String {
        format!("{:.1} %", f64::from(self.p_malignant) * 100.0)
    }

    /// P(malignant) as the page's `<strong>` (for [`Tr::html`]).
    pub fn p_malignant_html(&self) -> String {
        format!(
            "<strong id=\"p-malignant\">{}</strong>",
            self.p_malignant_percent()
        )
    }

    /// The threshold as the page's `<span>` (for [`Tr::html`]).
    pub fn threshold_html(&self) -> String {
        format!("<span id=\"threshold\">{}</span>", self.threshold_percent())
    }

    /// The verdict's threshold as a percentage for the page.
    pub fn threshold_percent(&self) -> String {
        format!("{:.1} %", f64::from(self.threshold) * 100.0)
    }
}

/// A time to the minute, UTC, in a form every language reads.
pub const MINUTES_UTC: &str = "%Y-%m-%d %H:%M UTC";

/// A `<time>` element for [`Tr::html`] or `|safe`: `at` formatted with `format` (UTC), which the
/// page's script rewrites in the reader's zone and language (`time.local` in `static/case.js`).
pub fn local_time_html(at: DateTime<Utc>, format: &str) -> String {
    format!(
        "<time class=\"local\" datetime=\"{}\">{}</time>",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        at.format(format)
    )
}

fn ms_text(ms: Option<i32>, tr: Tr) -> String {
    match ms {
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) => format!("{:.1} s", f64::from(ms) / 1000.0),
        None => tr.t("technical-not-recorded"),
    }
}
