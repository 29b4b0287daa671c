//! Runs a parsed [`Model`] over a caller-provided arena: no heap, integer math only.
//!
//! Arena layout: activations first, then the kernels' scratch. Layer 0 reads the caller's
//! input and writes at the arena's start; each later layer reads the previous output at one
//! end of the activations and writes at the other, so they need
//! `max(out_0, max_i(in_i + out_i))` bytes ([`Model::activations_len`]); the scratch is the
//! most any one layer asks for ([`Model::scratch_len`], two im2col columns of the widest
//! convolution). [`Model::arena_len`] is the sum.

use crate::kernels::{self, KernelError};
use crate::model::{Model, Step};

/// Why a run failed. Models are validated at parse time, so only the caller's buffers can
/// be wrong here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    /// The arena is smaller than [`Model::arena_len`].
    ArenaTooSmall {
        /// Bytes the model needs.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The input is not the model's input length.
    InputLen {
        /// Bytes the model reads.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// A kernel refused its buffers (cannot happen for a parsed model and a right-sized
    /// arena; kept as an error rather than a panic).
    Kernel {
        /// Layer index.
        index: usize,
        /// What the kernel said.
        error: KernelError,
    },
}

impl core::fmt::Display for EngineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ArenaTooSmall { needed, got } => {
                write!(f, "arena has {got} bytes, model needs {needed}")
            }
            Self::InputLen { expected, got } => {
                write!(f, "input has {got} values, model reads {expected}")
            }
            Self::Kernel { index, error } => write!(f, "layer {index}: {error:?}"),
        }
    }
}

#[cfg(any(test, feature = "std"))]
impl std::error::Error for EngineError {}

/// Runs one model. Cheap to build; holds only a reference.
#[derive(Clone, Copy, Debug)]
pub struct Engine<'m, 'a> {
    model: &'m Model<'a>,
}

impl<'m, 'a> Engine<'m, 'a> {
    /// An engine for `model`.
    pub fn new(model: &'m Model<'a>) -> Self {
        Self { model }
    }

    /// Runs the model on a quantized input and returns the int8 logits (one per class,
    /// [`Model::labels`]), borrowed from the arena.
    pub fn run<'r>(&self, input: &[i8], arena: &'r mut [i8]) -> Result<&'r [i8], EngineError> {
        self.run_observed(input, arena, |_| {})
    }

    /// Runs a 48x48 gray face: converts it to the model's int8 input by the preprocessing
    /// contract ([`crate::preprocess::quantize_input`]), then runs. What every runtime that
    /// starts from pixels calls, so none converts differently.
    pub fn run_gray<'r>(
        &self,
        gray: &[u8; crate::preprocess::INPUT_LEN],
        arena: &'r mut [i8],
    ) -> Result<&'r [i8], EngineError> {
        let mut x = [0i8; crate::preprocess::INPUT_LEN];
        crate::preprocess::quantize_input(gray, &mut x);
        self.run(&x, arena)
    }

    /// Like [`Engine::run`], calling `after_layer(i)` when layer `i` is done (firmware reads
    /// its timer there to time each layer).
    pub fn run_observed<'r>(
        &self,
        input: &[i8],
        arena: &'r mut [i8],
        mut after_layer: impl FnMut(usize),
    ) -> Result<&'r [i8], EngineError> {
        let needed = self.model.arena_len();
        if arena.len() < needed {
            return Err(EngineError::ArenaTooSmall {
                needed,
                got: arena.len(),
            });
        }
        let expected = self.model.body().input.len();
        if input.len() != expected {
            return Err(EngineError::InputLen {
                expected,
                got: input.len(),
            });
        }
        let (arena, scratch) = arena[..needed].split_at_mut(self.model.activations_len());
        let acts_len = arena.len();
        let mut at_start = true; // where the previous output lies
        for (index, info) in self.model.steps().iter().enumerate() {
            let (ilen, olen) = (info.input.len(), info.output.len());
            let result = if index == 0 {
                run_step(&info.step, input, &mut arena[..olen], scratch)
            } else if at_start {
                let (lo, hi) = arena.split_at_mut(acts_len - olen);
                run_step(&info.step, &lo[..ilen], hi, scratch)
            } else {
                let (lo, hi) = arena.split_at_mut(olen);
                run_step(&info.step, &hi[hi.len() - ilen..], lo, scratch)
            };
            result.map_err(|error| EngineError::Kernel { index, error })?;
            at_start = index == 0 || !at_start;
            after_layer(index);
        }
        // Parsing guarantees the last layer outputs one value per class.
        let classes = self.model.labels().len();
        Ok(if at_start {
            &arena[..classes]
        } else {
            &arena[acts_len - classes..]
        })
    }
}

/// Dispatches one step to its kernel; `scratch` needs [`Step::scratch_len`] bytes.
pub fn run_step(
    step: &Step,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> Result<(), KernelError> {
    match step {
        Step::Conv2d(p) => kernels::conv2d::conv2d(p, input, output, scratch),
        Step::Depthwise(p) => kernels::depthwise::depthwise(p, input, output),
        Step::Pointwise(p) => kernels::pointwise::pointwise(p, input, output, scratch),
        Step::MaxPool(p) => kernels::pool::max_pool(p, input, output),
        Step::AvgPool(p) => kernels::pool::avg_pool(p, input, output),
        Step::Dense(p) => kernels::dense::dense(p, input, output),
    }
}
