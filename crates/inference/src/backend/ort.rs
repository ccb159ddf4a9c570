//! The onnxruntime backend through the `ort` crate (crate feature `ort`).
//!
//! `ort` is built with `load-dynamic`: nothing is downloaded at build time, and
//! `libonnxruntime.so` is opened when the first backend is created, from
//! `ClassifierConfig::ort_library` or else the `ORT_DYLIB_PATH` environment variable
//! (e.g. the library inside the `onnxruntime` PyPI wheel).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

use super::{Backend, Expected};
use crate::error::InferenceError;

fn backend_err(e: impl std::fmt::Display) -> InferenceError {
    InferenceError::Backend {
        backend: "onnxruntime",
        reason: e.to_string(),
    }
}

/// onnxruntime backend. `Session::run` needs `&mut`, so concurrent callers each take a session
/// from a pool (one more is created when all are busy).
pub struct OrtBackend {
    environment: ort::environment::Environment,
    onnx: Vec<u8>,
    threads: usize,
    sessions: Mutex<Vec<Session>>,
    expected: Expected,
}

/// The library to load: the configured path, else `ORT_DYLIB_PATH`.
fn library_path(configured: Option<&Path>) -> Result<PathBuf, InferenceError> {
    if let Some(path) = configured {
        return Ok(path.to_path_buf());
    }
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => Err(InferenceError::Config {
            reason: "the onnxruntime backend needs libonnxruntime: set ORT_DYLIB_PATH \
                     (or ClassifierConfig::ort_library) to the path of libonnxruntime.so"
                .into(),
        }),
    }
}

/// onnxruntime allows one environment per process, and `ort` refuses to build a second one even
/// after the first was dropped: the first backend creates it, and it lives as long as the process,
/// shared by every later backend (tests and benchmarks create many).
static ENVIRONMENT: Mutex<Option<(PathBuf, ort::environment::Environment)>> = Mutex::new(None);

fn process_environment(library: &Path) -> Result<ort::environment::Environment, InferenceError> {
    let mut slot = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((loaded, environment)) = slot.as_ref() {
        if loaded != library {
            return Err(InferenceError::Config {
                reason: format!(
                    "onnxruntime is already loaded from {} in this process; cannot also load {}",
                    loaded.display(),
                    library.display()
                ),
            });
        }
        return Ok(environment.clone());
    }
    let environment = ort::init_from(library)
        .map_err(backend_err)?
        .with_name("mole")
        .build()
        .map_err(backend_err)?;
    *slot = Some((library.to_path_buf(), environment.clone()));
    Ok(environment)
}

impl OrtBackend {
    /// Loads onnxruntime, creates a first session and checks the model against `expected`.
    pub(crate) fn load(
        onnx: Vec<u8>,
        expected: Expected,
        threads: usize,
        library: Option<&Path>,
    ) -> Result<Self, InferenceError> {
        let library = library_path(library)?;
        if !library.exists() {
            return Err(InferenceError::Config {
                reason: format!("libonnxruntime not found at {}", library.display()),
            });
        }
        let environment = process_environment(&library)?;
        let backend = Self {
            environment,
            onnx,
            threads: threads.max(1),
            sessions: Mutex::new(Vec::new()),
            expected,
        };
        let session = backend.new_session()?;
        backend.check(&session)?;
        backend
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(session);
        Ok(backend)
    }

    fn new_session(&self) -> Result<Session, InferenceError> {
        Session::builder(&self.environment)
            .map_err(backend_err)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(backend_err)?
            .with_intra_threads(self.threads)
            .map_err(backend_err)?
            .with_inter_threads(1)
            .map_err(backend_err)?
            .commit_from_memory(&self.onnx)
            .map_err(backend_err)
    }

    fn check(&self, session: &Session) -> Result<(), InferenceError> {
        let e = &self.expected;
        let (inputs, outputs) = (session.inputs(), session.outputs());
        let want_outputs = e.output_names();
        if inputs.len() != 1 || outputs.len() != want_outputs.len() {
            return Err(e.mismatch(
                "number of inputs and outputs",
                format!("1 and {}", want_outputs.len()),
                format!("{} and {}", inputs.len(), outputs.len()),
            ));
        }
        if inputs[0].name() != e.input_name {
            return Err(e.mismatch("input name", e.input_name.clone(), inputs[0].name().into()));
        }
        let output_names: Vec<String> = outputs.iter().map(|o| o.name().to_owned()).collect();
        if output_names != want_outputs {
            return Err(e.mismatch(
                "output names",
                format!("{want_outputs:?}"),
                format!("{output_names:?}"),
            ));
        }
        // onnxruntime reports symbolic dimensions as -1.
        let dims: Vec<i64> = inputs[0]
            .dtype()
            .tensor_shape()
            .map(|s| s.to_vec())
            .unwrap_or_default();
        let want = [3, e.size as i64, e.size as i64];
        if dims.len() != 4 || dims[1..].iter().zip(want).any(|(d, w)| *d != -1 && *d != w) {
            return Err(e.mismatch("input shape", e.input_shape(), format!("{dims:?}")));
        }
        let mut widths = vec![e.classes];
        widths.extend(e.signals.iter().map(|(_, k)| *k));
        for (output, width) in outputs.iter().zip(widths) {
            let out: Vec<i64> = output
                .dtype()
                .tensor_shape()
                .map(|s| s.to_vec())
                .unwrap_or_default();
            if out.len() != 2 || out[1] != width as i64 {
                return Err(e.mismatch(
                    "output shape",
                    format!("[N, {width}]"),
                    format!("{out:?}"),
                ));
            }
        }
        Ok(())
    }
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }

    fn run(&self, input: &[f32], batch: usize) -> Result<Vec<f32>, InferenceError> {
        self.expected.check_input(input, batch)?;
        let pooled = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let mut session = match pooled {
            Some(session) => session,
            None => self.new_session()?,
        };
        let s = self.expected.size;
        let result = (|| {
            let tensor =
                TensorRef::from_array_view(([batch, 3, s, s], input)).map_err(backend_err)?;
            let outputs = session.run(ort::inputs![tensor]).map_err(backend_err)?;
            let (shape, logits) = outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(backend_err)?;
            if **shape != [batch as i64, self.expected.classes as i64] {
                return Err(backend_err(format!("output shape {shape:?}")));
            }
            let signals = match &self.expected.signals {
                None => None,
                Some((_, k)) => {
                    let (shape, values) = outputs[1]
                        .try_extract_tensor::<f32>()
                        .map_err(backend_err)?;
                    if **shape != [batch as i64, *k as i64] {
                        return Err(backend_err(format!("refusal output shape {shape:?}")));
                    }
                    Some(values)
                }
            };
            Ok(self.expected.join_rows(logits, signals, batch))
        })();
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(session);
        result
    }
}
