//! The card's preprocessing contract, one pub function per step so each can be tested alone:
//! centre square crop → resize to S×S (triangle filter, u8) → x / scale → (x − mean) / std → CHW f32.
//!
//! The training code does the same steps with Pillow (training/mole_train/images.py); the resize
//! here is a port of Pillow's, so the u8 images agree exactly, and `tests/parity.rs` checks the
//! probabilities end to end.

use image::{RgbImage, imageops};

use crate::bands;
use crate::card::ModelCard;

/// The centre square of a `width × height` image as `(left, top, side)`:
/// side = min(w, h), left = (w − side) / 2, top = (h − side) / 2 (integer division, as in the card).
pub fn centre_square(width: u32, height: u32) -> (u32, u32, u32) {
    let side = width.min(height);
    ((width - side) / 2, (height - side) / 2, side)
}

/// Crops the centre square out of `image` (a copy; no copy is made when it is already square).
pub fn centre_crop(image: RgbImage) -> RgbImage {
    let (left, top, side) = centre_square(image.width(), image.height());
    if side == image.width() && side == image.height() {
        return image;
    }
    imageops::crop_imm(&image, left, top, side, side).to_image()
}

/// Resizes to `size × size` with the triangle (bilinear) filter whose support grows with the
/// downscale factor: Pillow's `Image.resize(..., Image.BILINEAR)`, reproduced exactly by
/// [`resize_bilinear`]. Returns a copy when the image already has that size (as Pillow does).
pub fn resize_square(image: &RgbImage, size: u32) -> RgbImage {
    if image.width() == size && image.height() == size {
        return image.clone();
    }
    resize_bilinear(image, size, size)
}

/// Bits of fixed-point precision in Pillow's 8-bit resampling (32 − 8 − 2).
const PRECISION_BITS: u32 = 22;

/// Pillow's `precompute_coeffs` for the bilinear filter, then `normalize_coeffs_8bpc`: per output
/// pixel, the first input index, the number of inputs, and `ksize` fixed-point weights.
fn pillow_coefficients(in_size: u32, out_size: u32) -> (Vec<(usize, usize)>, Vec<i32>, usize) {
    let scale = f64::from(in_size) / f64::from(out_size);
    let filterscale = scale.max(1.0);
    let support = 1.0 * filterscale; // bilinear support is 1
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size as usize);
    let mut weights = vec![0i32; out_size as usize * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size as usize {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C casts truncate toward zero; the clamps make that equal to flooring here.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size)) as usize - xmin;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let t = ((x + xmin) as f64 - center + 0.5) * ss;
            let t = t.abs();
            *kx = if t < 1.0 { 1.0 - t } else { 0.0 };
            ww += *kx;
        }
        for (x, kx) in k.iter().enumerate().take(xmax) {
            let w = if ww != 0.0 { kx / ww } else { *kx };
            let fixed = w * f64::from(1u32 << PRECISION_BITS);
            weights[xx * ksize + x] = if w < 0.0 {
                (fixed - 0.5) as i32
            } else {
                (fixed + 0.5) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    (bounds, weights, ksize)
}

/// Pillow's `clip8`: from fixed point back to u8 with saturation.
#[inline]
fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Pillow's two-pass 8-bit resampling (`ImagingResample` with the bilinear filter): a horizontal
/// pass into a u8 intermediate over the rows the vertical pass needs, then a vertical pass,
/// both in 22-bit fixed point. Bit-exact with Pillow, which trained the model.
pub fn resize_bilinear(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize_region(image, (0, 0, image.width(), image.height()), width, height)
}

/// [`resize_bilinear`] of the rectangle `(left, top, width, height)` of `image`, read in place.
/// Large inputs run the horizontal pass (nearly all the work) on up to 4 threads, each on its own
/// rows: every output value is computed exactly as on one thread.
fn resize_region(
    image: &RgbImage,
    (left, top, in_w, in_h): (u32, u32, u32, u32),
    width: u32,
    height: u32,
) -> RgbImage {
    let (hb, hk, hks) = pillow_coefficients(in_w, width);
    let (vb, vk, vks) = pillow_coefficients(in_h, height);
    let src = image.as_raw();
    let stride = image.width() as usize * 3;
    let (left, top, width) = (left as usize, top as usize, width as usize);
    // Horizontal pass, only over the source rows the vertical pass reads.
    let first = vb.first().map_or(0, |b| b.0);
    let last = vb.last().map_or(0, |b| b.0 + b.1);
    let rows = last - first;
    let mut temp = vec![0u8; rows * width * 3];
    let horizontal = |y0: usize, out_rows: &mut [u8]| {
        for (dy, out) in out_rows.chunks_exact_mut(width * 3).enumerate() {
            let start = (top + first + y0 + dy) * stride + left * 3;
            let row = &src[start..start + in_w as usize * 3];
            for ((&(xmin, xmax), k), px) in hb
                .iter()
                .zip(hk.chunks_exact(hks))
                .zip(out.chunks_exact_mut(3))
            {
                let mut ss = [1i32 << (PRECISION_BITS - 1); 3];
                for (p, &w) in row[xmin * 3..(xmin + xmax) * 3]
                    .chunks_exact(3)
                    .zip(&k[..xmax])
                {
                    ss[0] += i32::from(p[0]) * w;
                    ss[1] += i32::from(p[1]) * w;
                    ss[2] += i32::from(p[2]) * w;
                }
                px[0] = clip8(ss[0]);
                px[1] = clip8(ss[1]);
                px[2] = clip8(ss[2]);
            }
        }
    };
    let threads = bands::threads_for(rows * in_w as usize, bands::max_threads());
    bands::in_bands(&mut temp, width * 3, threads, horizontal);
    // Vertical pass.
    let mut out = vec![0u8; width * height as usize * 3];
    for (yy, &(ymin, ymax)) in vb.iter().enumerate() {
        let k = &vk[yy * vks..yy * vks + ymax];
        let dst = &mut out[yy * width * 3..(yy + 1) * width * 3];
        for (i, d) in dst.iter_mut().enumerate() {
            let mut ss = 1i32 << (PRECISION_BITS - 1);
            for (y, &w) in k.iter().enumerate() {
                ss += i32::from(temp[(ymin - first + y) * width * 3 + i]) * w;
            }
            *d = clip8(ss);
        }
    }
    RgbImage::from_raw(width as u32, height, out).expect("buffer matches dimensions")
}

/// The affine map applied to u8 values: `(x / scale − mean[c]) / std[c]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    /// Divisor applied first (255 maps u8 to [0, 1]).
    pub scale: f32,
    /// Per-channel mean, RGB order.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, RGB order.
    pub std: [f32; 3],
}

impl Normalization {
    /// The normalisation declared by a model card.
    pub fn from_card(card: &ModelCard) -> Self {
        let p = &card.preprocessing;
        Self {
            scale: p.scale,
            mean: p.mean,
            std: p.std,
        }
    }
}

/// Turns an RGB8 image into a normalised CHW f32 tensor (`3 × h × w`, channel-major).
pub fn normalize_chw(image: &RgbImage, norm: &Normalization) -> Vec<f32> {
    let plane = image.width() as usize * image.height() as usize;
    let mut out = vec![0.0f32; 3 * plane];
    // A 256-entry table per channel makes the per-pixel work a lookup, and computes each value
    // exactly as `((x / scale) - mean) / std` would, so results match the Python reference bit for bit.
    let tables: [[f32; 256]; 3] = std::array::from_fn(|c| {
        std::array::from_fn(|v| (v as f32 / norm.scale - norm.mean[c]) / norm.std[c])
    });
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in image.as_raw().chunks_exact(3).enumerate() {
        r[i] = tables[0][px[0] as usize];
        g[i] = tables[1][px[1] as usize];
        b[i] = tables[2][px[2] as usize];
    }
    out
}

/// What the model looks at, before normalisation: the centre square resized to `size × size`.
///
/// Preprocessing this image again gives exactly the same tensor as the photo it came from (crop
/// and resize are then identities, as in Pillow), so it can stand in for the full photo: the web
/// process makes it once at upload, and workers need not decode a 12-megapixel photo again.
/// Borrows the photo: only the centre square is copied (when the photo is not square already).
pub fn model_view(image: &RgbImage, size: u32) -> RgbImage {
    let (left, top, side) = centre_square(image.width(), image.height());
    if side == size {
        // Already the view's size: the crop alone (a copy, as Pillow's resize would make).
        return imageops::crop_imm(image, left, top, side, side).to_image();
    }
    // Resized straight out of the photo: the square is never copied out first (27 MB for a
    // 12-megapixel photo).
    resize_region(image, (left, top, side, side), size, size)
}

/// The whole contract after decoding: crop, resize to the card's size, normalise.
pub fn image_to_tensor(image: RgbImage, size: u32, norm: &Normalization) -> Vec<f32> {
    normalize_chw(&model_view(&image, size), norm)
}

/// A test-time-augmentation view of a square CHW tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The image as is.
    Identity,
    /// Mirrored left–right.
    FlipHorizontal,
    /// Mirrored top–bottom.
    FlipVertical,
    /// Rotated 90° clockwise.
    Rotate90,
    /// Rotated 180°.
    Rotate180,
    /// Rotated 270° clockwise.
    Rotate270,
}

impl View {
    /// The views used for test-time augmentation: a lesion has no preferred orientation.
    pub const TTA: [View; 6] = [
        View::Identity,
        View::FlipHorizontal,
        View::FlipVertical,
        View::Rotate90,
        View::Rotate180,
        View::Rotate270,
    ];

    /// Source pixel `(y, x)` that lands at output pixel `(oy, ox)` in a `size × size` image.
    fn source(self, oy: usize, ox: usize, size: usize) -> (usize, usize) {
        let last = size - 1;
        match self {
            View::Identity => (oy, ox),
            View::FlipHorizontal => (oy, last - ox),
            View::FlipVertical => (last - oy, ox),
            // Clockwise rotation: output (oy, ox) shows input (last - ox, oy).
            View::Rotate90 => (last - ox, oy),
            View::Rotate180 => (last - oy, last - ox),
            View::Rotate270 => (ox, last - oy),
        }
    }

    /// Appends this view of the square CHW tensor `chw` (3 × size × size) to `out`.
    pub fn extend_into(self, chw: &[f32], size: usize, out: &mut Vec<f32>) {
        if self == View::Identity {
            out.extend_from_slice(chw);
            return;
        }
        let plane = size * size;
        out.reserve(chw.len());
        for c in 0..chw.len() / plane {
            let src = &chw[c * plane..(c + 1) * plane];
            for oy in 0..size {
                for ox in 0..size {
                    let (y, x) = self.source(oy, ox, size);
                    out.push(src[y * size + x]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, (x + y) as u8]))
    }

    /// The resize as first ported from Pillow (one thread, the square copied out first): the
    /// reference the faster path must match byte for byte.
    fn reference_resize(image: &RgbImage, width: u32, height: u32) -> RgbImage {
        let (in_w, in_h) = image.dimensions();
        let (hb, hk, hks) = pillow_coefficients(in_w, width);
        let (vb, vk, vks) = pillow_coefficients(in_h, height);
        let src = image.as_raw();
        let (in_w, width) = (in_w as usize, width as usize);
        let first = vb.first().map_or(0, |b| b.0);
        let last = vb.last().map_or(0, |b| b.0 + b.1);
        let rows = last - first;
        let mut temp = vec![0u8; rows * width * 3];
        for y in 0..rows {
            let row = &src[(y + first) * in_w * 3..(y + first + 1) * in_w * 3];
            let out = &mut temp[y * width * 3..(y + 1) * width * 3];
            for (xx, &(xmin, xmax)) in hb.iter().enumerate() {
                let k = &hk[xx * hks..xx * hks + xmax];
                let mut ss = [1i32 << (PRECISION_BITS - 1); 3];
                for (x, &w) in k.iter().enumerate() {
                    let p = &row[(xmin + x) * 3..(xmin + x) * 3 + 3];
                    for c in 0..3 {
                        ss[c] += i32::from(p[c]) * w;
                    }
                }
                for c in 0..3 {
                    out[xx * 3 + c] = clip8(ss[c]);
                }
            }
        }
        let mut out = vec![0u8; width * height as usize * 3];
        for (yy, &(ymin, ymax)) in vb.iter().enumerate() {
            let k = &vk[yy * vks..yy * vks + ymax];
            let dst = &mut out[yy * width * 3..(yy + 1) * width * 3];
            for (i, d) in dst.iter_mut().enumerate() {
                let mut ss = 1i32 << (PRECISION_BITS - 1);
                for (y, &w) in k.iter().enumerate() {
                    ss += i32::from(temp[(ymin - first + y) * width * 3 + i]) * w;
                }
                *d = clip8(ss);
            }
        }
        RgbImage::from_raw(width as u32, height, out).unwrap()
    }

    fn noise(w: u32, h: u32) -> RgbImage {
        let mut state = 0x9E37_79B9u32;
        RgbImage::from_fn(w, h, |_, _| {
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            };
            Rgb([next(), next(), next()])
        })
    }

    #[test]
    fn the_model_view_read_in_place_and_on_threads_is_byte_for_byte_the_reference_resize() {
        // Wide and tall, odd offsets, small (one thread) and large (the split horizontal pass),
        // up- and downscaling.
        for (w, h, size) in [
            (200, 150, 128),
            (151, 200, 128),
            (7, 5, 16),
            (3001, 2000, 128),
            (2000, 3001, 160),
            (4032, 3024, 128),
        ] {
            let image = noise(w, h);
            let fast = model_view(&image, size);
            let slow = reference_resize(&centre_crop(image.clone()), size, size);
            assert!(fast == slow, "{w}×{h} → {size}");
        }
        // The whole-image resize too (not square).
        let image = noise(2500, 1900);
        assert!(resize_bilinear(&image, 300, 200) == reference_resize(&image, 300, 200));
    }

    #[test]
    fn centre_square_uses_integer_division_on_both_axes() {
        assert_eq!(centre_square(600, 450), (75, 0, 450));
        assert_eq!(centre_square(450, 601), (0, 75, 450));
        assert_eq!(centre_square(5, 2), (1, 0, 2));
        assert_eq!(centre_square(7, 7), (0, 0, 7));
    }

    #[test]
    fn centre_crop_keeps_the_middle_pixels_of_a_wide_image() {
        let cropped = centre_crop(gradient(10, 4));
        assert_eq!(cropped.dimensions(), (4, 4));
        assert_eq!(cropped.get_pixel(0, 0), &Rgb([3, 0, 3]));
        assert_eq!(cropped.get_pixel(3, 3), &Rgb([6, 3, 9]));
    }

    #[test]
    fn centre_crop_keeps_the_middle_rows_of_a_tall_image() {
        let cropped = centre_crop(gradient(3, 8));
        assert_eq!(cropped.dimensions(), (3, 3));
        assert_eq!(cropped.get_pixel(0, 0), &Rgb([0, 2, 2]));
    }

    #[test]
    fn resize_gives_the_requested_square_and_keeps_a_flat_colour() {
        let flat = RgbImage::from_pixel(300, 300, Rgb([10, 128, 250]));
        let out = resize_square(&flat, 64);
        assert_eq!(out.dimensions(), (64, 64));
        assert!(out.pixels().all(|p| *p == Rgb([10, 128, 250])));
    }

    #[test]
    fn resize_downscale_averages_like_an_antialiasing_filter() {
        // A 1-pixel checkerboard shrunk 8× must come out as mid-grey everywhere; a filter without
        // antialiasing (plain bilinear sampling) would keep picking black or white pixels.
        let board = RgbImage::from_fn(256, 256, |x, y| {
            if (x + y) % 2 == 0 {
                Rgb([255, 255, 255])
            } else {
                Rgb([0, 0, 0])
            }
        });
        let out = resize_square(&board, 32);
        for p in out.pixels() {
            assert!((120..=135).contains(&p[0]), "pixel {p:?} is not mid-grey");
        }
    }

    #[test]
    fn normalisation_divides_subtracts_the_mean_and_divides_by_std_per_channel() {
        let img = RgbImage::from_pixel(2, 1, Rgb([255, 0, 51]));
        let norm = Normalization {
            scale: 255.0,
            mean: [0.5, 0.25, 0.0],
            std: [0.5, 0.25, 0.2],
        };
        let t = normalize_chw(&img, &norm);
        assert_eq!(t.len(), 6);
        let expect = [1.0, 1.0, -1.0, -1.0, 1.0, 1.0];
        for (got, want) in t.iter().zip(expect) {
            assert!((got - want).abs() < 1e-6, "{t:?}");
        }
    }

    #[test]
    fn normalised_tensor_is_channel_major() {
        let img = RgbImage::from_fn(2, 2, |x, y| Rgb([(x + 2 * y) as u8, 100, 200]));
        let norm = Normalization {
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let t = normalize_chw(&img, &norm);
        assert_eq!(
            t,
            vec![
                0.0, 1.0, 2.0, 3.0, 100.0, 100.0, 100.0, 100.0, 200.0, 200.0, 200.0, 200.0
            ]
        );
    }

    #[test]
    fn image_to_tensor_crops_before_resizing() {
        // Left third red, middle third green, right third blue: the centre crop sees only green.
        let img = RgbImage::from_fn(90, 30, |x, _| match x / 30 {
            0 => Rgb([255, 0, 0]),
            1 => Rgb([0, 255, 0]),
            _ => Rgb([0, 0, 255]),
        });
        let norm = Normalization {
            scale: 255.0,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let t = image_to_tensor(img, 8, &norm);
        assert_eq!(t.len(), 3 * 64);
        assert!(t[..64].iter().all(|v| *v == 0.0));
        assert!(t[64..128].iter().all(|v| *v == 1.0));
        assert!(t[128..].iter().all(|v| *v == 0.0));
    }

    #[test]
    fn views_move_pixels_where_the_image_operations_would() {
        let img = gradient(5, 5);
        let norm = Normalization {
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let chw = normalize_chw(&img, &norm);
        let cases = [
            (View::Identity, img.clone()),
            (View::FlipHorizontal, imageops::flip_horizontal(&img)),
            (View::FlipVertical, imageops::flip_vertical(&img)),
            (View::Rotate90, imageops::rotate90(&img)),
            (View::Rotate180, imageops::rotate180(&img)),
            (View::Rotate270, imageops::rotate270(&img)),
        ];
        for (view, expected) in cases {
            let mut out = Vec::new();
            view.extend_into(&chw, 5, &mut out);
            assert_eq!(out, normalize_chw(&expected, &norm), "{view:?}");
        }
    }
}
