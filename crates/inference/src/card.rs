//! The model card: the JSON contract between the training code and this crate
//! (docs/model-card-schema.md).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::InferenceError;

/// The only card schema this crate understands.
pub const SCHEMA_VERSION: u32 = 1;

/// A parsed, validated model card.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// Card schema version; must be [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Model name, e.g. `mole-mnv3s`.
    pub name: String,
    /// Model version, e.g. `1.0.0`.
    pub version: String,
    /// Creation date as written by the training code.
    #[serde(default)]
    pub created: Option<String>,
    /// ONNX file name, relative to the card's folder.
    pub onnx_file: String,
    /// Lower-case hex sha256 of the ONNX file.
    pub onnx_sha256: String,
    /// Free-form architecture description (name, parameters, FLOPs).
    #[serde(default)]
    pub architecture: serde_json::Value,
    /// The model input.
    pub input: InputSpec,
    /// The model output.
    pub output: OutputSpec,
    /// How an image becomes the input tensor.
    pub preprocessing: PreprocessingSpec,
    /// Classes in the model's output order.
    pub classes: Vec<ClassSpec>,
    /// Calibration temperature: probabilities = softmax(logits / temperature).
    pub temperature: f32,
    /// Codes of the classes whose probabilities add up to P(malignant).
    pub malignant_classes: Vec<String>,
    /// P(malignant) at or above this means "see a doctor".
    pub threshold: f32,
    /// Training provenance (data, licence, command, hyper-parameters).
    #[serde(default)]
    pub training: serde_json::Value,
    /// Validation and test metrics.
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// When and why a photo is refused instead of diagnosed; cards without it never refuse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<RefusalSpec>,
    /// Folder the card was loaded from; `onnx_file` is relative to it.
    #[serde(skip)]
    dir: PathBuf,
    /// Where the card was loaded from (for error messages).
    #[serde(skip)]
    path: PathBuf,
}

/// The `input` section of the card.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputSpec {
    /// ONNX input name.
    pub name: String,
    /// Tensor layout; only `NCHW` is supported.
    pub layout: String,
    /// Element type; only `float32` is supported.
    pub dtype: String,
    /// Side S of the square input: the tensor is `[N, 3, S, S]`.
    pub size: u32,
    /// Channel order; only `RGB` is supported.
    pub channels: String,
}

/// The `output` section of the card.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputSpec {
    /// ONNX output name.
    pub name: String,
    /// What the output holds; only `logits` is supported.
    pub kind: String,
}

/// The `preprocessing` section of the card.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreprocessingSpec {
    /// Prose description of decoding (EXIF orientation, conversion to RGB8).
    #[serde(default)]
    pub decode: Option<String>,
    /// Crop rule; only `centre_square` is supported.
    pub crop: String,
    /// Resize rule; only `bilinear_antialias` is supported.
    pub resize: String,
    /// Divisor applied to u8 values first.
    pub scale: f32,
    /// Per-channel mean subtracted after scaling.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by after subtracting the mean.
    pub std: [f32; 3],
}

/// The `refusal` section of the card: the second model output and the limits that decide whether a
/// photo can be judged at all (docs/model-card-schema.md). Every limit was fitted on the validation
/// split's lesion photos by `python -m mole_train.refusal`; `mole refusal` measures it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefusalSpec {
    /// ONNX output holding the signals, `[N, signals.len()]`.
    pub output: String,
    /// Names of the output's columns; `ood`, `luma` and `sharpness` must be among them.
    pub signals: Vec<String>,
    /// Shortest side, in pixels, of a photo the model can judge.
    pub min_side: u32,
    /// Distance of the photo's features from the training lesions above which it is "not a lesion".
    pub ood_max: f32,
    /// Mean brightness (0–1) of the model's view below which the photo is too dark.
    pub luma_min: f32,
    /// Mean brightness (0–1) above which the photo is overexposed.
    pub luma_max: f32,
    /// Sharpness (mean squared Laplacian of the model's view) below which the photo is too blurry.
    pub sharpness_min: f32,
    /// How the limits were fitted and what they measured (free-form).
    #[serde(default)]
    pub fitted: serde_json::Value,
}

/// One class of the model's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassSpec {
    /// Short HAM10000 code, e.g. `mel`.
    pub code: String,
    /// Human name, e.g. `Melanoma`.
    pub name: String,
    /// Whether the class counts towards P(malignant).
    pub malignant: bool,
}

impl ModelCard {
    /// Reads and validates a card. Does not touch the ONNX file (see [`ModelCard::verify_onnx_sha256`]).
    pub fn load(path: &Path) -> Result<Self, InferenceError> {
        let text = std::fs::read_to_string(path).map_err(|source| InferenceError::ModelIo {
            path: path.to_path_buf(),
            source,
        })?;
        let mut card = Self::from_json(&text, path)?;
        card.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        card.path = path.to_path_buf();
        Ok(card)
    }

    /// Parses and validates card JSON; `origin` only names the card in error messages.
    /// The ONNX file is resolved against the current directory unless the card came from [`ModelCard::load`].
    pub fn from_json(text: &str, origin: &Path) -> Result<Self, InferenceError> {
        let mut card: ModelCard =
            serde_json::from_str(text).map_err(|e| InferenceError::InvalidCard {
                path: origin.to_path_buf(),
                reason: e.to_string(),
            })?;
        card.path = origin.to_path_buf();
        card.validate()?;
        Ok(card)
    }

    fn invalid(&self, reason: impl Into<String>) -> InferenceError {
        InferenceError::InvalidCard {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// Checks everything the rest of the crate relies on, so that a bad card fails at load time
    /// rather than producing wrong probabilities later.
    fn validate(&self) -> Result<(), InferenceError> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(self.invalid(format!(
                "schema_version {} is not supported (expected {SCHEMA_VERSION})",
                self.schema_version
            )));
        }
        let expect = |what: &str, got: &str, want: &str| {
            if got == want {
                Ok(())
            } else {
                Err(self.invalid(format!("{what} is {got:?}, only {want:?} is supported")))
            }
        };
        expect("input.layout", &self.input.layout, "NCHW")?;
        expect("input.dtype", &self.input.dtype, "float32")?;
        expect("input.channels", &self.input.channels, "RGB")?;
        expect("output.kind", &self.output.kind, "logits")?;
        expect(
            "preprocessing.crop",
            &self.preprocessing.crop,
            "centre_square",
        )?;
        expect(
            "preprocessing.resize",
            &self.preprocessing.resize,
            "bilinear_antialias",
        )?;
        if !(8..=4096).contains(&self.input.size) {
            return Err(self.invalid(format!(
                "input.size {} is out of range 8..=4096",
                self.input.size
            )));
        }
        let p = &self.preprocessing;
        if !(p.scale.is_finite() && p.scale > 0.0) {
            return Err(self.invalid(format!("preprocessing.scale {} must be > 0", p.scale)));
        }
        if p.mean.iter().any(|m| !m.is_finite())
            || p.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(self.invalid("preprocessing.mean must be finite and std > 0"));
        }
        if self.classes.len() < 2 {
            return Err(self.invalid("at least two classes are needed"));
        }
        let mut seen = HashSet::new();
        for c in &self.classes {
            if !seen.insert(c.code.as_str()) {
                return Err(self.invalid(format!("class code {:?} appears twice", c.code)));
            }
        }
        // The card states malignancy twice; a disagreement would silently change P(malignant).
        let flagged: HashSet<&str> = self
            .classes
            .iter()
            .filter(|c| c.malignant)
            .map(|c| c.code.as_str())
            .collect();
        let listed: HashSet<&str> = self.malignant_classes.iter().map(String::as_str).collect();
        if let Some(unknown) = listed.iter().find(|c| !seen.contains(*c)) {
            return Err(self.invalid(format!("malignant class {unknown:?} is not a class")));
        }
        if flagged != listed {
            return Err(
                self.invalid("malignant_classes disagrees with the classes' \"malignant\" flags")
            );
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(self.invalid(format!("temperature {} must be > 0", self.temperature)));
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(self.invalid(format!(
                "threshold {} must be within [0, 1]",
                self.threshold
            )));
        }
        if let Some(r) = &self.refusal {
            for needed in ["ood", "luma", "sharpness"] {
                if !r.signals.iter().any(|s| s == needed) {
                    return Err(self.invalid(format!("refusal.signals lacks {needed:?}")));
                }
            }
            if r.output == self.output.name {
                return Err(self.invalid("refusal.output must differ from output.name"));
            }
            let limits = [r.ood_max, r.luma_min, r.luma_max, r.sharpness_min];
            if limits.iter().any(|v| !v.is_finite()) || r.luma_min >= r.luma_max {
                return Err(
                    self.invalid("refusal limits must be finite, with luma_min below luma_max")
                );
            }
        }
        let sha = &self.onnx_sha256;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.invalid("onnx_sha256 must be 64 hex digits"));
        }
        Ok(())
    }

    /// Class codes in output order, e.g. `["akiec", "bcc", ...]`.
    pub fn class_codes(&self) -> Vec<&str> {
        self.classes.iter().map(|c| c.code.as_str()).collect()
    }

    /// Number of output classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Side S of the square model input.
    pub fn input_size(&self) -> u32 {
        self.input.size
    }

    /// For each class in output order, whether it counts towards P(malignant).
    pub fn malignant_mask(&self) -> Vec<bool> {
        self.classes.iter().map(|c| c.malignant).collect()
    }

    /// The model version reported with every prediction: `name@version`.
    pub fn model_version(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// Path of the card file (empty when parsed from a string).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of the ONNX file the card describes.
    pub fn onnx_path(&self) -> PathBuf {
        self.dir.join(&self.onnx_file)
    }

    /// Reads the ONNX file, checks its sha256 against the card and returns its bytes.
    pub fn read_verified_onnx(&self) -> Result<Vec<u8>, InferenceError> {
        let path = self.onnx_path();
        let bytes = std::fs::read(&path).map_err(|source| InferenceError::ModelIo {
            path: path.clone(),
            source,
        })?;
        let found = hex::encode(Sha256::digest(&bytes));
        if !found.eq_ignore_ascii_case(&self.onnx_sha256) {
            return Err(InferenceError::ModelMismatch {
                path,
                what: "sha256".into(),
                card: self.onnx_sha256.clone(),
                model: found,
            });
        }
        Ok(bytes)
    }

    /// Checks the ONNX file's sha256 against the card without keeping the bytes.
    pub fn verify_onnx_sha256(&self) -> Result<(), InferenceError> {
        self.read_verified_onnx().map(drop)
    }
}
