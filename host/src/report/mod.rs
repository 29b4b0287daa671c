//! Figures and pictures for people: accuracy and confusion ([`metrics`]), a run's
//! per-epoch history ([`history`]), and the PNGs drawn from them ([`plots`]).

pub mod history;
pub mod metrics;
pub mod plots;
