//! Any bytes as a blob: parsing must return an error or a model, and a model must run on
//! any input without panicking or reading out of bounds.
#![no_main]

use emoedge_core::{Engine, Model};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Also fuzz bodies behind a correct header, or the CRC would reject almost everything.
    for blob in [data.to_vec(), with_header(data)] {
        if let Ok(model) = Model::parse(&blob) {
            if model.arena_len() > 1 << 22 || model.body().input.len() > 1 << 20 || model.macs() > 20_000_000 {
                continue;
            }
            let mut arena = vec![0i8; model.arena_len()];
            let input: Vec<i8> = (0..model.body().input.len()).map(|i| data.get(i % data.len().max(1)).copied().unwrap_or(0) as i8).collect();
            let _ = Engine::new(&model).run(&input, &mut arena);
        }
    }
});

fn with_header(body: &[u8]) -> Vec<u8> {
    let mut v = emoedge_core::model::Header::for_body(body).map(|h| h.to_bytes().to_vec()).unwrap_or_default();
    v.extend_from_slice(body);
    v
}
