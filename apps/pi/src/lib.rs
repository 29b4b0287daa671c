//! The emoedge Raspberry Pi / Linux app as a library: the V4L2 camera as a frame source,
//! annotated pictures and the live view. The face pipeline itself (detection, crop,
//! classification, tracking) is `emoedge-vision`'s; the `emoedge-pi` binary is a thin shell
//! around both.
#![forbid(unsafe_code)]

pub mod annotate;
pub mod camera;
pub mod serve;
