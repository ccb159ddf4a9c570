//! Inference backends: something that turns an NCHW f32 batch into logits.
//!
//! Both backends check the ONNX graph against the card when they load it, so a model exported
//! with another input size or class count is refused before it can answer anything.

use std::str::FromStr;

use crate::error::InferenceError;

pub mod tract;

#[cfg(feature = "ort")]
pub mod ort;

/// One forward pass over a batch. Implementations are shared between threads.
pub trait Backend: Send + Sync {
    /// Short backend name for logs and benchmark tables.
    fn name(&self) -> &'static str;

    /// Runs `batch` images laid out `[batch, 3, S, S]` in `input` through the model in one
    /// forward pass and returns, row-major, one row per image: its logits, followed by its refusal
    /// signals when the card names a second output (`[batch, classes + signals]`).
    fn run(&self, input: &[f32], batch: usize) -> Result<Vec<f32>, InferenceError>;

    /// Does the one-off work (plan building) for these batch sizes now rather than on first use.
    fn prepare(&self, batch_sizes: &[usize]) -> Result<(), InferenceError> {
        let _ = batch_sizes;
        Ok(())
    }
}

/// Which backend runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// tract-onnx, pure Rust (default).
    #[default]
    Tract,
    /// onnxruntime through the `ort` crate (needs the crate feature `ort` and libonnxruntime).
    Ort,
}

impl BackendKind {
    /// The name accepted by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Tract => "tract",
            BackendKind::Ort => "ort",
        }
    }

    /// Whether this build can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            BackendKind::Tract => true,
            BackendKind::Ort => cfg!(feature = "ort"),
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = InferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tract" => Ok(BackendKind::Tract),
            "ort" | "onnxruntime" => Ok(BackendKind::Ort),
            other => Err(InferenceError::Config {
                reason: format!("unknown backend {other:?} (expected \"tract\" or \"ort\")"),
            }),
        }
    }
}

/// What the model must look like, from the card.
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    pub onnx_path: std::path::PathBuf,
    pub input_name: String,
    pub output_name: String,
    pub size: usize,
    pub classes: usize,
    /// The refusal signals' output name and width, when the card has a `refusal` section.
    pub signals: Option<(String, usize)>,
}

impl Expected {
    pub(crate) fn mismatch(&self, what: &str, card: String, model: String) -> InferenceError {
        InferenceError::ModelMismatch {
            path: self.onnx_path.clone(),
            what: what.into(),
            card,
            model,
        }
    }

    /// Values per image in what [`Backend::run`] returns.
    pub(crate) fn row_width(&self) -> usize {
        self.classes + self.signals.as_ref().map_or(0, |(_, n)| *n)
    }

    /// Output names in the order the model must list them.
    pub(crate) fn output_names(&self) -> Vec<String> {
        let mut names = vec![self.output_name.clone()];
        names.extend(self.signals.iter().map(|(n, _)| n.clone()));
        names
    }

    /// Interleaves per-image rows of the logits and (when present) the signals.
    pub(crate) fn join_rows(&self, logits: &[f32], signals: Option<&[f32]>, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * self.row_width());
        for i in 0..n {
            out.extend_from_slice(&logits[i * self.classes..(i + 1) * self.classes]);
            if let (Some(s), Some((_, k))) = (signals, &self.signals) {
                out.extend_from_slice(&s[i * k..(i + 1) * k]);
            }
        }
        out
    }

    /// The input shape as written in error messages.
    pub(crate) fn input_shape(&self) -> String {
        format!("[N, 3, {}, {}]", self.size, self.size)
    }

    /// Checks a batch handed to [`Backend::run`].
    pub(crate) fn check_input(&self, input: &[f32], batch: usize) -> Result<(), InferenceError> {
        let want = batch * 3 * self.size * self.size;
        if batch == 0 || input.len() != want {
            return Err(InferenceError::InvalidBatch {
                reason: format!(
                    "{} values for a batch of {batch} images of 3×{}×{} (expected {want})",
                    input.len(),
                    self.size,
                    self.size
                ),
            });
        }
        Ok(())
    }
}
