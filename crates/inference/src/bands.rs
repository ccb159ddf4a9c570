//! Per-row work on a large image, split across threads in bands of whole rows. Each row is
//! computed exactly as on one thread: only who computes it changes.

/// Pixels from which an image's per-row work is split across threads (a phone photo: yes; a
/// 200×150 dermatoscope photo: no, a thread would cost more than it saves).
pub(crate) const PARALLEL_PIXELS: usize = 2_000_000;

/// The most threads an image's work is split across: the machine's cores, at most 4.
pub(crate) fn max_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Threads for the per-row work of an image of `pixels` pixels: `max` when it is large, else 1.
pub(crate) fn threads_for(pixels: usize, max: usize) -> usize {
    if pixels >= PARALLEL_PIXELS {
        max.max(1)
    } else {
        1
    }
}

/// Runs `fill(first_row, band)` over `out` cut into bands of whole rows of `row_len` bytes, one
/// band per thread (on this thread alone when `threads` is 1 or there is one row).
pub(crate) fn in_bands(
    out: &mut [u8],
    row_len: usize,
    threads: usize,
    fill: impl Fn(usize, &mut [u8]) + Sync,
) {
    let rows = out.len().checked_div(row_len).unwrap_or(0);
    if threads <= 1 || rows <= 1 {
        fill(0, out);
        return;
    }
    let per = rows.div_ceil(threads);
    std::thread::scope(|scope| {
        for (i, band) in out.chunks_mut(per * row_len).enumerate() {
            let fill = &fill;
            scope.spawn(move || fill(i * per, band));
        }
    });
}
