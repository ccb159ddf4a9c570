//! Temporary diagnostics: writes decoded.png and resized.png for an image.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&args[1]).unwrap();
    let img = mole_inference::decode_image(&bytes, &Default::default()).unwrap();
    img.save(format!("{}/decoded.png", args[2])).unwrap();
    let sq = mole_inference::preprocess::centre_crop(img);
    sq.save(format!("{}/cropped.png", args[2])).unwrap();
    let r = mole_inference::preprocess::resize_square(&sq, 128);
    r.save(format!("{}/resized.png", args[2])).unwrap();
}
