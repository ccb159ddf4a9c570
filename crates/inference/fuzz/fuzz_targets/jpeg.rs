//! Any bytes through the JPEG decoder (`mole_inference::jpeg::decode_rgb`, its very source file),
//! without the `catch_unwind` that guards it in production: a panic, an overflow (debug
//! assertions are on), a hang or an allocation beyond the limit is a finding. Pixels it returns
//! must fill the image.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/jpeg.rs"]
mod jpeg;

/// The allocation limit: generous for the corpus, small enough that libFuzzer's 2 GB RSS limit
/// would flag an allocation that ignores it.
const MAX_ALLOC: u64 = 256 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = jpeg::decode_rgb(data, MAX_ALLOC) {
        let (w, h) = image.dimensions();
        assert_eq!(image.as_raw().len(), w as usize * h as usize * 3);
    }
});
