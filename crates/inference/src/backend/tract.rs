//! The tract-onnx backend (pure Rust, the default).
//!
//! tract runs fastest with every dimension fixed (STACK.md: a symbolic batch dimension was up to
//! 6× slower), so the model is kept decluttered with a symbolic batch and an optimised plan is
//! built per batch size the first time that size is asked for. Plans are shared between threads;
//! each run borrows an execution state from a small pool so intermediate buffers are not
//! re-allocated per call. BENCHMARKS.md has the measurements behind the defaults.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use tract_linalg::multithread::Executor;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::runtime::RunOptions;

use super::{Backend, Expected};
use crate::error::InferenceError;

/// How batch sizes map onto optimised plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TractPlans {
    /// One fixed-size plan per batch size actually seen, built lazily (default: no padding waste).
    #[default]
    Exact,
    /// Fixed-size plans for powers of two only; a batch is zero-padded up to the next one.
    PadPow2,
    /// One plan with a symbolic batch dimension for every size.
    Symbolic,
}

impl std::str::FromStr for TractPlans {
    type Err = InferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "exact" => Ok(Self::Exact),
            "pad-pow2" => Ok(Self::PadPow2),
            "symbolic" => Ok(Self::Symbolic),
            other => Err(InferenceError::Config {
                reason: format!(
                    "unknown tract plan strategy {other:?} (exact, pad-pow2, symbolic)"
                ),
            }),
        }
    }
}

/// How a forward pass uses more than one thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TractParallelism {
    /// Split the batch into one chunk per thread, each run by its own plan state (default).
    #[default]
    SplitBatch,
    /// One pass whose matrix products are spread over a rayon pool (tract's `multithread-mm`).
    IntraOp,
}

impl std::str::FromStr for TractParallelism {
    type Err = InferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "split-batch" => Ok(Self::SplitBatch),
            "intra-op" => Ok(Self::IntraOp),
            other => Err(InferenceError::Config {
                reason: format!("unknown tract parallelism {other:?} (split-batch, intra-op)"),
            }),
        }
    }
}

/// tract-specific tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TractOptions {
    /// Batch size → plan mapping.
    pub plans: TractPlans,
    /// Multi-thread strategy when `threads > 1`.
    pub parallelism: TractParallelism,
}

type Plan = Arc<TypedRunnableModel>;

/// A plan for one batch size, built on first use, with reusable execution states.
#[derive(Default)]
struct PlanSlot {
    plan: Mutex<Option<Plan>>,
    states: Mutex<Vec<TypedSimpleState>>,
}

/// The batch dimension of the model as exported.
#[derive(Debug, Clone)]
enum BatchDim {
    Symbolic(Symbol),
    Fixed(usize),
}

/// tract-onnx backend.
pub struct TractBackend {
    /// Decluttered model, batch dimension still as exported.
    model: TypedModel,
    batch: BatchDim,
    /// Plan batch size (0 = symbolic) → slot.
    plans: Mutex<HashMap<usize, Arc<PlanSlot>>>,
    executor: Option<Executor>,
    threads: usize,
    options: TractOptions,
    expected: Expected,
}

fn backend_err(e: impl std::fmt::Display) -> InferenceError {
    InferenceError::Backend {
        backend: "tract",
        reason: format!("{e:#}"),
    }
}

impl TractBackend {
    /// Parses the ONNX bytes, checks them against `expected` and prepares for planning.
    pub(crate) fn load(
        onnx: &[u8],
        expected: Expected,
        threads: usize,
        options: TractOptions,
    ) -> Result<Self, InferenceError> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut Cursor::new(onnx))
            .map_err(backend_err)?;
        let want_outputs = expected.output_names();
        if model.inputs.len() != 1 || model.outputs.len() != want_outputs.len() {
            return Err(expected.mismatch(
                "number of inputs and outputs",
                format!("1 and {}", want_outputs.len()),
                format!("{} and {}", model.inputs.len(), model.outputs.len()),
            ));
        }
        let input_name = model.node(model.inputs[0].node).name.clone();
        if input_name != expected.input_name {
            return Err(expected.mismatch("input name", expected.input_name.clone(), input_name));
        }
        let output_names: Vec<String> = model
            .outputs
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .map(str::to_owned)
                    .unwrap_or_else(|| model.node(o.node).name.clone())
            })
            .collect();
        if output_names != want_outputs {
            return Err(expected.mismatch(
                "output names",
                format!("{want_outputs:?}"),
                format!("{output_names:?}"),
            ));
        }

        let typed = model.into_typed().map_err(backend_err)?;
        let fact = typed.input_fact(0).map_err(backend_err)?.clone();
        let shape: Vec<TDim> = fact.shape.iter().cloned().collect();
        let shape_text = format!(
            "{:?}",
            shape.iter().map(|d| d.to_string()).collect::<Vec<_>>()
        );
        if fact.datum_type != f32::datum_type() {
            return Err(expected.mismatch(
                "input type",
                "float32".into(),
                format!("{:?}", fact.datum_type),
            ));
        }
        if shape.len() != 4 {
            return Err(expected.mismatch("input shape", expected.input_shape(), shape_text));
        }
        // Symbolic channel / spatial dimensions take the card's values; concrete ones must match it.
        let mut subs = HashMap::new();
        for (dim, want) in shape[1..].iter().zip([3, expected.size, expected.size]) {
            match dim {
                TDim::Sym(s) => {
                    subs.insert(s.clone(), TDim::Val(want as i64));
                }
                d if d.as_i64() == Some(want as i64) => {}
                _ => {
                    return Err(expected.mismatch(
                        "input shape",
                        expected.input_shape(),
                        shape_text,
                    ));
                }
            }
        }
        let batch = match &shape[0] {
            TDim::Sym(s) if !subs.contains_key(s) => BatchDim::Symbolic(s.clone()),
            d => match d.as_i64() {
                Some(n) if n >= 1 => BatchDim::Fixed(n as usize),
                _ => {
                    return Err(expected.mismatch(
                        "input shape",
                        expected.input_shape(),
                        shape_text,
                    ));
                }
            },
        };
        let typed = if subs.is_empty() {
            typed
        } else {
            typed.set_symbols(&subs).map_err(backend_err)?
        };
        let typed = typed.into_decluttered().map_err(backend_err)?;

        let mut widths = vec![expected.classes];
        widths.extend(expected.signals.iter().map(|(_, k)| *k));
        for (i, width) in widths.into_iter().enumerate() {
            let out = typed.output_fact(i).map_err(backend_err)?;
            let out_dims: Vec<TDim> = out.shape.iter().cloned().collect();
            if out_dims.len() != 2 || out_dims[1].as_i64() != Some(width as i64) {
                return Err(expected.mismatch(
                    "output shape",
                    format!("[N, {width}]"),
                    format!(
                        "{:?}",
                        out_dims.iter().map(|d| d.to_string()).collect::<Vec<_>>()
                    ),
                ));
            }
        }

        let threads = threads.max(1);
        let executor = (threads > 1 && options.parallelism == TractParallelism::IntraOp)
            .then(|| Executor::multithread_with_name(threads, "mole-tract"));
        Ok(Self {
            model: typed,
            batch,
            plans: Mutex::new(HashMap::new()),
            executor,
            threads,
            options,
            expected,
        })
    }

    /// The batch size of the plan that runs `n` images (0 = the symbolic plan).
    fn plan_size(&self, n: usize) -> usize {
        match (&self.batch, self.options.plans) {
            (BatchDim::Fixed(k), _) => *k,
            (BatchDim::Symbolic(_), TractPlans::Exact) => n,
            (BatchDim::Symbolic(_), TractPlans::PadPow2) => n.next_power_of_two(),
            (BatchDim::Symbolic(_), TractPlans::Symbolic) => 0,
        }
    }

    fn slot(&self, size: usize) -> Arc<PlanSlot> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        plans.entry(size).or_default().clone()
    }

    fn build_plan(&self, size: usize) -> Result<Plan, InferenceError> {
        let model = match (&self.batch, size) {
            (BatchDim::Symbolic(s), n) if n > 0 => {
                let subs = HashMap::from([(s.clone(), TDim::Val(n as i64))]);
                self.model.set_symbols(&subs).map_err(backend_err)?
            }
            _ => self.model.clone(),
        };
        let model = model.into_optimized().map_err(backend_err)?;
        let options = RunOptions {
            executor: self.executor.clone(),
            ..RunOptions::default()
        };
        TypedSimplePlan::new_with_options(model, &options).map_err(backend_err)
    }

    /// The plan for `size`, building it on first use (other sizes are not blocked meanwhile).
    fn plan(&self, slot: &PlanSlot, size: usize) -> Result<Plan, InferenceError> {
        let mut guard = slot.plan.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(plan) = guard.as_ref() {
            return Ok(plan.clone());
        }
        let plan = self.build_plan(size)?;
        *guard = Some(plan.clone());
        Ok(plan)
    }

    /// Images per thread when a batch of `n` is split.
    fn chunk_len(&self, n: usize) -> usize {
        if self.threads > 1 && self.options.parallelism == TractParallelism::SplitBatch {
            n.div_ceil(self.threads.min(n))
        } else {
            n
        }
    }

    /// Runs `n ≤ plan size` images (or any n for a fixed-batch model) on the calling thread.
    fn run_chunk(&self, input: &[f32], n: usize) -> Result<Vec<f32>, InferenceError> {
        let per_image = input.len() / n;
        let size = self.plan_size(n);
        if size != 0 && size < n {
            // A model exported with a fixed batch smaller than the request: run it piecewise.
            let mut out = Vec::with_capacity(n * self.expected.row_width());
            for part in input.chunks(size * per_image) {
                out.extend(self.run_chunk(part, part.len() / per_image)?);
            }
            return Ok(out);
        }
        let run_n = if size == 0 { n } else { size };
        let slot = self.slot(size);
        let plan = self.plan(&slot, size)?;
        let padded;
        let data = if run_n > n {
            let mut v = Vec::with_capacity(run_n * per_image);
            v.extend_from_slice(input);
            v.resize(run_n * per_image, 0.0);
            padded = v;
            &padded[..]
        } else {
            input
        };
        let s = self.expected.size;
        let tensor = Tensor::from_shape(&[run_n, 3, s, s], data).map_err(backend_err)?;
        let pooled = slot.states.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut state = match pooled {
            Some(state) => state,
            None => plan.spawn().map_err(backend_err)?,
        };
        let outputs = state
            .run(tvec!(tensor.into_tvalue()))
            .map_err(backend_err)?;
        slot.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(state);
        let classes = self.expected.classes;
        let logits = outputs[0]
            .to_plain_array_view::<f32>()
            .map_err(backend_err)?;
        if logits.shape() != [run_n, classes] {
            return Err(backend_err(format!(
                "output shape {:?}, expected [{run_n}, {classes}]",
                logits.shape()
            )));
        }
        let logits: Vec<f32> = logits.iter().take(n * classes).copied().collect();
        let signals = match &self.expected.signals {
            None => None,
            Some((_, k)) => {
                let view = outputs[1]
                    .to_plain_array_view::<f32>()
                    .map_err(backend_err)?;
                if view.shape() != [run_n, *k] {
                    return Err(backend_err(format!(
                        "refusal output shape {:?}, expected [{run_n}, {k}]",
                        view.shape()
                    )));
                }
                Some(view.iter().take(n * k).copied().collect::<Vec<f32>>())
            }
        };
        Ok(self.expected.join_rows(&logits, signals.as_deref(), n))
    }
}

impl Backend for TractBackend {
    fn name(&self) -> &'static str {
        "tract"
    }

    /// Builds the plans that batches of `sizes` will use, so the first request does not pay for it.
    fn prepare(&self, sizes: &[usize]) -> Result<(), InferenceError> {
        for &n in sizes.iter().filter(|&&n| n > 0) {
            let size = self.plan_size(self.chunk_len(n));
            self.plan(&self.slot(size), size)?;
        }
        Ok(())
    }

    fn run(&self, input: &[f32], batch: usize) -> Result<Vec<f32>, InferenceError> {
        self.expected.check_input(input, batch)?;
        let chunk = self.chunk_len(batch);
        if chunk >= batch {
            return self.run_chunk(input, batch);
        }
        let per_image = input.len() / batch;
        let parts: Vec<&[f32]> = input.chunks(chunk * per_image).collect();
        let results: Vec<Result<Vec<f32>, InferenceError>> = std::thread::scope(|scope| {
            let (first, rest) = parts.split_first().expect("batch is not empty");
            let handles: Vec<_> = rest
                .iter()
                .map(|part| scope.spawn(move || self.run_chunk(part, part.len() / per_image)))
                .collect();
            let mut results = vec![self.run_chunk(first, first.len() / per_image)];
            results.extend(handles.into_iter().map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(backend_err("a tract worker thread panicked")))
            }));
            results
        });
        let mut out = Vec::with_capacity(batch * self.expected.row_width());
        for r in results {
            out.extend(r?);
        }
        Ok(out)
    }
}
