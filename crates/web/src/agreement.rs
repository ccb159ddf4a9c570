//! `/admin/agreement`: the model on the clinic's own patients. The latest review of every live
//! reviewed case is taken as the truth and put against the model's output, per model version:
//! a confusion matrix (reviewer's diagnosis × model's diagnosis), per-diagnosis agreement, and the
//! sensitivity and specificity for malignancy they imply (malignant = the reviewer's diagnosis is
//! a malignant class of the card; flagged = the model's verdict was "see a doctor"). Drawn like
//! `mole eval`'s report: titled plots with labelled axes, and the numbers in tables beside them.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use mole_eval::ClassInfo;
use mole_eval::plots::{self, MatrixValues};
use mole_storage::AgreementCount;

use crate::AppState;
use crate::access::{ListCases, StaffAccess};
use crate::admin::Nav;
use crate::error::AppError;
use crate::model::ClassLine;

/// One diagnosis's agreement.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassAgreement {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Malignant class.
    pub malignant: bool,
    /// Cases the reviewers gave this diagnosis.
    pub reviewed: u64,
    /// Of those, the ones the model gave it too.
    pub agreeing: u64,
    /// Cases the model gave this diagnosis (among the reviewed).
    pub predicted: u64,
}

impl ClassAgreement {
    /// `agreeing / reviewed`, when there are any.
    pub fn rate(&self) -> Option<f64> {
        (self.reviewed > 0).then(|| self.agreeing as f64 / self.reviewed as f64)
    }

    /// The rate for the page.
    pub fn rate_text(&self) -> String {
        percent(self.rate())
    }
}

/// The figures of one model version.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelAgreement {
    /// `name@version`.
    pub model_version: String,
    /// Reviewed cases.
    pub reviewed: u64,
    /// Of those, the ones whose reviewer gave the model's diagnosis.
    pub agreeing: u64,
    /// Of those, the ones whose clinician's verdict was the model's.
    pub verdict_agreeing: u64,
    /// Reviewer malignant, model "see a doctor".
    pub true_positives: u64,
    /// Reviewer malignant, model "looks benign".
    pub false_negatives: u64,
    /// Reviewer benign, model "looks benign".
    pub true_negatives: u64,
    /// Reviewer benign, model "see a doctor".
    pub false_positives: u64,
    /// Per diagnosis, in the card's order.
    pub classes: Vec<ClassAgreement>,
    /// `matrix[reviewer][model]`, in the card's order.
    pub matrix: Vec<Vec<u64>>,
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{:.1} %", v * 100.0))
}

impl ModelAgreement {
    /// Diagnosis agreement.
    pub fn agreement(&self) -> String {
        percent(ratio(self.agreeing, self.reviewed))
    }

    /// Verdict agreement.
    pub fn verdict_agreement(&self) -> String {
        percent(ratio(self.verdict_agreeing, self.reviewed))
    }

    /// Malignant sensitivity: flagged among those the reviewers found malignant.
    pub fn sensitivity(&self) -> String {
        percent(ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        ))
    }

    /// Malignant specificity: not flagged among those the reviewers found benign.
    pub fn specificity(&self) -> String {
        percent(ratio(
            self.true_negatives,
            self.true_negatives + self.false_positives,
        ))
    }
}

/// Puts the counts together per model version (in version order); diagnoses outside the card's
/// classes count in the totals but not in the matrix.
pub fn compute(counts: &[AgreementCount], classes: &[ClassLine]) -> Vec<ModelAgreement> {
    let k = classes.len();
    let index = |code: &str| classes.iter().position(|c| c.code == code);
    let mut out: Vec<ModelAgreement> = Vec::new();
    for c in counts {
        let n = c.count.max(0) as u64;
        let m = match out.iter().position(|m| m.model_version == c.model_version) {
            Some(i) => &mut out[i],
            None => {
                out.push(ModelAgreement {
                    model_version: c.model_version.clone(),
                    reviewed: 0,
                    agreeing: 0,
                    verdict_agreeing: 0,
                    true_positives: 0,
                    false_negatives: 0,
                    true_negatives: 0,
                    false_positives: 0,
                    classes: classes
                        .iter()
                        .map(|c| ClassAgreement {
                            code: c.code.clone(),
                            name: c.name.clone(),
                            malignant: c.malignant,
                            reviewed: 0,
                            agreeing: 0,
                            predicted: 0,
                        })
                        .collect(),
                    matrix: vec![vec![0; k]; k],
                });
                out.last_mut().expect("just pushed")
            }
        };
        m.reviewed += n;
        let agrees = c.review_diagnosis == c.model_diagnosis;
        if agrees {
            m.agreeing += n;
        }
        if c.review_verdict == c.model_verdict {
            m.verdict_agreeing += n;
        }
        let truth = index(&c.review_diagnosis);
        let predicted = index(&c.model_diagnosis);
        let malignant = truth.is_some_and(|t| classes[t].malignant);
        let flagged = c.model_verdict == "see_a_doctor";
        match (malignant, flagged) {
            (true, true) => m.true_positives += n,
            (true, false) => m.false_negatives += n,
            (false, false) => m.true_negatives += n,
            (false, true) => m.false_positives += n,
        }
        if let Some(t) = truth {
            m.classes[t].reviewed += n;
            if agrees {
                m.classes[t].agreeing += n;
            }
        }
        if let Some(p) = predicted {
            m.classes[p].predicted += n;
        }
        if let (Some(t), Some(p)) = (truth, predicted) {
            m.matrix[t][p] += n;
        }
    }
    out.sort_by(|a, b| a.model_version.cmp(&b.model_version));
    out
}

/// One model version on the page, with its plots.
#[derive(Debug, Clone)]
pub struct ModelSection {
    /// The figures.
    pub figures: ModelAgreement,
    /// The confusion matrix (SVG).
    pub matrix_svg: String,
    /// Per-diagnosis agreement (SVG).
    pub classes_svg: String,
}

/// Title of the confusion matrix of one model version.
pub fn matrix_title(model_version: &str) -> String {
    format!("Reviewers' diagnosis against {model_version}'s (reviewed cases)")
}

/// Title of the per-diagnosis agreement of one model version.
pub fn classes_title(model_version: &str) -> String {
    format!("How often {model_version} gave the reviewers' diagnosis")
}

fn section(figures: ModelAgreement, info: &[ClassInfo]) -> ModelSection {
    let plot = |svg: Result<String, plots::PlotError>| {
        svg.unwrap_or_else(|e| {
            tracing::error!(error = %e, "an agreement plot could not be drawn");
            String::new()
        })
    };
    let matrix_svg = plot(plots::confusion_matrix_with_axes(
        &matrix_title(&figures.model_version),
        &figures.matrix,
        info,
        MatrixValues::Counts,
        "Reviewer's diagnosis (rows)",
        "Model's diagnosis (columns, same order as the rows)",
    ));
    let rates: Vec<(Option<f64>, u64)> = figures
        .classes
        .iter()
        .map(|c| (c.rate(), c.reviewed))
        .collect();
    let classes_svg = plot(plots::class_rates(
        &classes_title(&figures.model_version),
        "Cases of the reviewers' diagnosis the model also gave it",
        info,
        &rates,
    ));
    ModelSection {
        figures,
        matrix_svg,
        classes_svg,
    }
}

/// The agreement page.
#[derive(Template, WebTemplate)]
#[template(path = "admin/agreement.html")]
pub struct AgreementPage {
    /// Header.
    pub nav: Nav,
    /// One section per model version.
    pub models: Vec<ModelSection>,
}

/// `GET /admin/agreement`.
pub async fn page(
    State(app): State<AppState>,
    access: StaffAccess<ListCases>,
) -> Result<Response, AppError> {
    let counts = app.store.agreement_counts().await?;
    let classes = &app.model.classes;
    let info: Vec<ClassInfo> = classes
        .iter()
        .map(|c| ClassInfo {
            code: c.code.clone(),
            name: c.name.clone(),
            malignant: c.malignant,
        })
        .collect();
    // Drawing is CPU work, small (a few plots); done inline.
    let models = compute(&counts, classes)
        .into_iter()
        .map(|m| section(m, &info))
        .collect();
    Ok(AgreementPage {
        nav: Nav::from(&access.staff),
        models,
    }
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<ClassLine> {
        [("mel", true), ("nv", false), ("bcc", true)]
            .iter()
            .map(|(c, m)| ClassLine {
                code: (*c).to_owned(),
                name: c.to_uppercase(),
                malignant: *m,
                figures: None,
            })
            .collect()
    }

    fn count(model: &str, md: &str, mv: &str, rd: &str, rv: &str, n: i64) -> AgreementCount {
        AgreementCount {
            model_version: model.to_owned(),
            model_diagnosis: md.to_owned(),
            model_verdict: mv.to_owned(),
            review_diagnosis: rd.to_owned(),
            review_verdict: rv.to_owned(),
            count: n,
        }
    }

    #[test]
    fn reviewers_against_the_model_give_the_matrix_agreement_and_malignant_rates() {
        let counts = [
            // 3 melanomas the model called melanoma and flagged.
            count("m@1", "mel", "see_a_doctor", "mel", "see_a_doctor", 3),
            // 1 melanoma the model called a naevus and did not flag (a miss).
            count("m@1", "nv", "looks_benign", "mel", "see_a_doctor", 1),
            // 4 naevi agreed, not flagged; 2 naevi called melanoma and flagged.
            count("m@1", "nv", "looks_benign", "nv", "looks_benign", 4),
            count("m@1", "mel", "see_a_doctor", "nv", "looks_benign", 2),
            // Another version, kept apart.
            count("m@2", "bcc", "see_a_doctor", "bcc", "see_a_doctor", 5),
        ];
        let all = compute(&counts, &classes());
        assert_eq!(all.len(), 2);
        let m = &all[0];
        assert_eq!(m.model_version, "m@1");
        assert_eq!(m.reviewed, 10);
        assert_eq!(m.agreeing, 7);
        assert_eq!(m.verdict_agreeing, 7);
        assert_eq!(m.matrix, vec![vec![3, 1, 0], vec![2, 4, 0], vec![0, 0, 0]]);
        assert_eq!((m.true_positives, m.false_negatives), (3, 1));
        assert_eq!((m.true_negatives, m.false_positives), (4, 2));
        assert_eq!(m.sensitivity(), "75.0 %");
        assert_eq!(m.specificity(), "66.7 %");
        assert_eq!(m.classes[0].rate_text(), "75.0 %");
        assert_eq!(m.classes[1].rate_text(), "66.7 %");
        assert_eq!(m.classes[2].rate_text(), "—");
        assert_eq!(all[1].model_version, "m@2");
        assert_eq!(all[1].sensitivity(), "100.0 %");
        assert_eq!(all[1].specificity(), "—");
    }

    #[test]
    fn the_plots_are_titled_and_their_axes_labelled() {
        let info: Vec<ClassInfo> = classes()
            .iter()
            .map(|c| ClassInfo {
                code: c.code.clone(),
                name: c.name.clone(),
                malignant: c.malignant,
            })
            .collect();
        let counts = [count("m@1", "mel", "see_a_doctor", "nv", "looks_benign", 2)];
        let s = section(compute(&counts, &classes()).remove(0), &info);
        assert!(
            s.matrix_svg
                .contains(&matrix_title("m@1").replace('\'', "&apos;"))
                || s.matrix_svg.contains(&matrix_title("m@1"))
        );
        assert!(s.matrix_svg.contains("Reviewer"));
        assert!(s.matrix_svg.contains("Model"));
        assert!(s.classes_svg.contains("m@1"));
        assert!(
            s.classes_svg.contains("no cases"),
            "a class without cases says so"
        );
        assert!(
            !s.matrix_svg.contains("style="),
            "no inline style (the CSP forbids it)"
        );
    }
}
