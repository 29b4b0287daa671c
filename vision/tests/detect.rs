//! The Haar detector against the reference boxes of `$EMOEDGE_DATA/faces`.

use emoedge_core::preprocess::FaceBox;
use emoedge_test_support::data_dir;
use emoedge_vision::detect::{Cascade, DetectParams, Detector};
use std::collections::BTreeMap;

#[test]
fn finds_the_reference_faces() {
    let data = data_dir();
    let cascade =
        Cascade::load(&data.join("haarcascades/haarcascade_frontalface_alt2.xml")).unwrap();
    let mut det = Detector::new(cascade);
    let csv = std::fs::read_to_string(data.join("faces/boxes.csv")).unwrap();
    let mut truth: BTreeMap<String, Vec<FaceBox>> = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let n = |i: usize| f[i].parse::<i32>().unwrap();
        truth
            .entry(f[0].to_string())
            .or_default()
            .push(FaceBox::new(n(2), n(3), n(4) as u32, n(5) as u32));
    }
    truth.entry("cameraman.png".into()).or_default();
    let (mut found, mut total, mut false_pos) = (0, 0, 0);
    for (file, boxes) in &truth {
        let img = image::open(data.join("faces").join(file))
            .unwrap()
            .into_luma8();
        let t0 = std::time::Instant::now();
        let dets = det.detect(
            img.as_raw(),
            img.width(),
            img.height(),
            &DetectParams::default(),
        );
        let hit = boxes
            .iter()
            .filter(|b| dets.iter().any(|d| d.iou(b) >= 0.5))
            .count();
        let fp = dets
            .iter()
            .filter(|d| !boxes.iter().any(|b| d.iou(b) >= 0.5))
            .count();
        eprintln!(
            "{file}: {hit}/{} found, {fp} false, {} ms",
            boxes.len(),
            t0.elapsed().as_millis()
        );
        found += hit;
        total += boxes.len();
        false_pos += fp;
        if file == "cameraman.png" {
            assert!(dets.is_empty(), "a profile face was detected: {dets:?}");
        }
    }
    eprintln!("total: {found}/{total} found, {false_pos} false positives");
    assert_eq!(total, 25);
    assert!(found >= 24, "{found}/25 found");
    assert!(false_pos <= 1, "{false_pos} false positives");
}
