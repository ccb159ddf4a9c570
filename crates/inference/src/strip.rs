//! Removing a JPEG's metadata without touching its pixels.
//!
//! A phone photo carries EXIF (GPS position, time, camera serial), XMP, IPTC, comments, maker
//! notes, thumbnails and sometimes whole files after the end of the image (motion photos). Storing
//! the upload as it came would keep them; re-encoding it (as PNG) drops them but costs tens of
//! milliseconds and megabytes per photo. [`strip_jpeg`] copies only the segments that make the
//! picture — quantisation and Huffman tables, frame, restart interval, scans with their
//! entropy-coded data, the JFIF header (without its thumbnail), the Adobe colour-transform flag and
//! the ICC colour profile — and writes one new EXIF block holding nothing but the orientation, so
//! the photo still shows upright. The entropy-coded data is copied byte for byte: the decoded
//! pixels are exactly those of the upload.

/// Markers kept (with their segment) before, between and after scans.
fn keeps(marker: u8, segment: &[u8]) -> bool {
    match marker {
        // SOF0–2 (baseline, extended, progressive), DHT, DQT, DRI, SOS.
        0xC0..=0xC2 | 0xC4 | 0xDB | 0xDD | 0xDA => true,
        // Adobe: the colour transform, needed to decode the pixels as they are.
        0xEE => segment.starts_with(b"Adobe"),
        // ICC profile: the colours as the camera meant them.
        0xE2 => segment.starts_with(b"ICC_PROFILE\0"),
        _ => false,
    }
}

/// The APP1 segment of an EXIF block that holds only `orientation` (1–8): big-endian TIFF, one
/// IFD with one entry, no next IFD.
pub fn orientation_exif(orientation: u8) -> Vec<u8> {
    let mut payload = Vec::with_capacity(34);
    payload.extend_from_slice(b"Exif\0\0");
    payload.extend_from_slice(b"MM\0\x2A\0\0\0\x08"); // TIFF header, IFD0 at offset 8
    payload.extend_from_slice(&1u16.to_be_bytes()); // one entry
    payload.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    payload.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    payload.extend_from_slice(&1u32.to_be_bytes()); // count 1
    payload.extend_from_slice(&[0, orientation, 0, 0]); // value, left-justified
    payload.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut segment = vec![0xFF, 0xE1];
    segment.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    segment.extend_from_slice(&payload);
    segment
}

/// The JPEG `bytes` with every metadata segment and anything after the image removed, and the
/// EXIF `orientation` (1–8; 1 writes none) kept in a new minimal EXIF block. `None` when the
/// stream's structure is not understood (the caller then re-encodes the pixels instead).
pub fn strip_jpeg(bytes: &[u8], orientation: u8) -> Option<Vec<u8>> {
    if !bytes.starts_with(&[0xFF, 0xD8]) || !(1..=8).contains(&orientation) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&[0xFF, 0xD8]);
    let mut wrote_orientation = false;
    let mut i = 2;
    loop {
        // A marker: 0xFF (fill bytes allowed), then its code.
        if bytes.get(i) != Some(&0xFF) {
            return None;
        }
        while bytes.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *bytes.get(i)?;
        i += 1;
        match marker {
            0xD9 => {
                out.extend_from_slice(&[0xFF, 0xD9]);
                return Some(out); // whatever follows the end of the image is dropped
            }
            0xD8 | 0x01 | 0xD0..=0xD7 => return None, // not where a segment belongs
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]));
        if len < 2 {
            return None;
        }
        let segment = bytes.get(i + 2..i + len)?;
        let whole = &bytes[i - 2..i + len];
        i += len;
        let jfif = marker == 0xE0 && segment.starts_with(b"JFIF\0") && segment.len() >= 14;
        if jfif {
            // The JFIF header (it decides how three components are read), without a thumbnail.
            out.extend_from_slice(&[0xFF, 0xE0, 0, 16]);
            out.extend_from_slice(&segment[..12]);
            out.extend_from_slice(&[0, 0]);
            continue;
        }
        if !wrote_orientation {
            // Right after the JFIF header, if any, as the EXIF block of a camera would be.
            if orientation != 1 {
                out.extend_from_slice(&orientation_exif(orientation));
            }
            wrote_orientation = true;
        }
        if keeps(marker, segment) {
            out.extend_from_slice(whole);
        }
        if marker == 0xDA {
            // Entropy-coded data: copied as it is, up to the next marker that is neither a
            // stuffed 0xFF 0x00 nor a restart marker.
            let start = i;
            loop {
                let ff = i + bytes.get(i..)?.iter().position(|&b| b == 0xFF)?;
                let mut j = ff;
                while bytes.get(j) == Some(&0xFF) {
                    j += 1;
                }
                let code = *bytes.get(j)?;
                if code == 0x00 || (0xD0..=0xD7).contains(&code) {
                    i = j + 1;
                    continue;
                }
                i = ff;
                break;
            }
            out.extend_from_slice(&bytes[start..i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small real JPEG (from the `image` encoder) with every kind of metadata added around it.
    fn photo_with_metadata() -> (Vec<u8>, Vec<u8>) {
        let pixels = image::RgbImage::from_fn(40, 24, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 10) as u8, ((x + y) * 3) as u8])
        });
        let mut plain = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 90)
            .encode_image(&pixels)
            .unwrap();
        let segment = |marker: u8, payload: &[u8]| {
            let mut s = vec![0xFF, marker];
            s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
            s.extend_from_slice(payload);
            s
        };
        let mut exif = b"Exif\0\0MM\0\x2A\0\0\0\x08".to_vec();
        exif.extend_from_slice(b"GPSLatitude 48.8566 GPSLongitude 2.3522 SerialNumber 1234");
        let mut upload = plain[..2].to_vec();
        upload.extend(segment(0xE1, &exif));
        upload.extend(segment(
            0xE1,
            b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>secret</x:xmpmeta>",
        ));
        upload.extend(segment(0xED, b"Photoshop 3.0\08BIM IPTC byline"));
        upload.extend(segment(0xFE, b"a private comment"));
        upload.extend_from_slice(&plain[2..]);
        upload.extend_from_slice(b"MotionPhoto_Data trailing video bytes");
        (plain, upload)
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn every_metadata_segment_and_the_trailer_go_and_the_pixels_stay_exactly() {
        let (plain, upload) = photo_with_metadata();
        let stripped = strip_jpeg(&upload, 1).expect("a JPEG it understands");
        for secret in [
            &b"GPS"[..],
            b"Exif",
            b"SerialNumber",
            b"xmpmeta",
            b"Photoshop",
            b"IPTC",
            b"private comment",
            b"MotionPhoto",
        ] {
            assert!(contains(&upload, secret));
            assert!(
                !contains(&stripped, secret),
                "{}",
                String::from_utf8_lossy(secret)
            );
        }
        assert!(stripped.ends_with(&[0xFF, 0xD9]));
        let limit = 1 << 30;
        let before = crate::jpeg::decode_rgb(&upload, limit).unwrap();
        let after = crate::jpeg::decode_rgb(&stripped, limit).unwrap();
        assert_eq!(before, after, "the pixels changed");
        assert_eq!(after, crate::jpeg::decode_rgb(&plain, limit).unwrap());
        assert!(stripped.len() <= plain.len() + 20);
    }

    #[test]
    fn the_orientation_survives_alone_in_a_new_exif_block() {
        let (_, upload) = photo_with_metadata();
        let stripped = strip_jpeg(&upload, 6).unwrap();
        assert!(!contains(&stripped, b"GPS"));
        let exif = orientation_exif(6);
        assert!(contains(&stripped, &exif));
        // `image` (what decode uses) reads it back.
        let mut decoder = image::ImageReader::with_format(
            std::io::Cursor::new(&stripped),
            image::ImageFormat::Jpeg,
        )
        .into_decoder()
        .unwrap();
        use image::ImageDecoder;
        assert_eq!(
            decoder.orientation().unwrap(),
            image::metadata::Orientation::Rotate90
        );
        // Exactly one EXIF block, of 36 bytes with its marker.
        assert_eq!(stripped.windows(6).filter(|w| *w == b"Exif\0\0").count(), 1);
        assert_eq!(exif.len(), 36);
    }

    #[test]
    fn every_committed_jpeg_keeps_its_exact_pixels() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
        let mut seen = 0;
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                if !bytes.starts_with(&[0xFF, 0xD8]) {
                    continue;
                }
                let Ok(before) = crate::jpeg::decode_rgb(&bytes, 1 << 30) else {
                    continue;
                };
                let stripped = strip_jpeg(&bytes, 1)
                    .unwrap_or_else(|| panic!("{} not understood", path.display()));
                let after = crate::jpeg::decode_rgb(&stripped, 1 << 30).unwrap();
                assert!(before == after, "{}: the pixels changed", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 25, "only {seen} JPEGs found");
    }

    #[test]
    fn what_it_does_not_understand_is_left_to_the_caller() {
        assert_eq!(strip_jpeg(b"not a jpeg", 1), None);
        let (_, upload) = photo_with_metadata();
        assert_eq!(
            strip_jpeg(&upload[..upload.len() / 3], 1),
            None,
            "cut short"
        );
        assert_eq!(strip_jpeg(&upload, 9), None, "no such orientation");
    }
}
