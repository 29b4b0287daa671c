//! The face detector: the reference boxes of `$EMOEDGE_DATA/faces`, the same faces from every
//! buffer layout a device uses, and cascades checked before use.

use emoedge_core::preprocess::FaceBox;
use emoedge_test_support::data_dir;
use emoedge_vision::detect::{
    BlobError, BoundedHits, Cascade, CascadeBlob, CascadeError, Cluster, DetectError, DetectParams,
    Detector, Features, Gray, SCALE_ONE, Strip, Workspace, blob, detect_into,
};
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
        let dets = det
            .detect(
                img.as_raw(),
                img.width(),
                img.height(),
                &DetectParams::default(),
            )
            .unwrap();
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

/// The shipped cascade, as every device holds it.
fn shipped() -> Cascade {
    Cascade::load(&data_dir().join("haarcascades/haarcascade_frontalface_alt2.xml")).unwrap()
}

/// The buffers a microcontroller gives `detect_into` for frames up to `width` wide: the
/// fewest strip rows a level takes (window height + 2) and room for `raw` raw detections.
struct Buffers {
    sum: Vec<u32>,
    sq: Vec<u32>,
    row: Vec<u8>,
    taps: Vec<u32>,
    raw: Vec<FaceBox>,
    clusters: Vec<Cluster>,
}

impl Buffers {
    fn new(blob: &CascadeBlob, width: u32, raw: usize) -> Self {
        let table = (width as usize + 1) * (blob.height() as usize + 2);
        Self {
            sum: vec![0; table],
            sq: vec![0; table],
            row: vec![0; width as usize],
            taps: vec![0; width as usize],
            raw: vec![FaceBox::new(0, 0, 0, 0); raw],
            clusters: vec![Cluster::default(); raw],
        }
    }

    fn workspace(&mut self) -> Workspace<'_> {
        Workspace {
            strip: Strip {
                sum: &mut self.sum,
                sq: &mut self.sq,
                row: &mut self.row,
                taps: &mut self.taps,
            },
            raw: BoundedHits::new(&mut self.raw),
            clusters: &mut self.clusters,
        }
    }
}

/// What a microcontroller runs (levels one after another, a strip of integral rows that
/// slides down each level, fixed buffers) finds what the host's detector finds (levels in
/// parallel, whole-level tables), on real photos of several sizes.
#[test]
fn a_sliding_strip_finds_what_whole_levels_find() {
    let cascade = shipped();
    let blob = cascade.blob();
    let mut det = Detector::new(cascade.clone());
    let p = DetectParams::default();
    for file in [
        "obama_240p.jpg",
        "composite_multiscale_01.jpg",
        "cameraman.png",
    ] {
        let img = image::open(data_dir().join("faces").join(file))
            .unwrap()
            .into_luma8();
        let (w, h) = img.dimensions();
        let host = det.detect(img.as_raw(), w, h, &p).unwrap();
        let frame = Gray::new(img.as_raw(), w, h).unwrap();
        let mut buffers = Buffers::new(&blob, w, 4096);
        let mut ws = buffers.workspace();
        let mut out = [FaceBox::new(0, 0, 0, 0); 16];
        let mut faces = BoundedHits::new(&mut out);
        let d = detect_into(&blob, &frame, &p, &mut ws, &mut faces).unwrap();
        assert_eq!(faces.as_slice(), &host[..], "{file}");
        assert_eq!(d, det.last(), "{file}");
        assert_eq!(d.dropped, 0);
    }
}

/// A raw-detection buffer too small for a frame keeps what it can and says how much it
/// dropped; a frame of the wrong size and a table too small for a level are named errors.
#[test]
fn small_buffers_and_wrong_frames_are_named() {
    let cascade = shipped();
    let blob = cascade.blob();
    let img = image::open(data_dir().join("faces/obama_240p.jpg"))
        .unwrap()
        .into_luma8();
    let (w, h) = img.dimensions();
    let p = DetectParams::default();
    let frame = Gray::new(img.as_raw(), w, h).unwrap();
    let mut buffers = Buffers::new(&blob, w, 2);
    let mut ws = buffers.workspace();
    let mut out = [FaceBox::new(0, 0, 0, 0); 4];
    let mut faces = BoundedHits::new(&mut out);
    let d = detect_into(&blob, &frame, &p, &mut ws, &mut faces).unwrap();
    assert!(d.dropped > 0 && d.raw == 2 + d.dropped, "{d:?}");
    assert_eq!(
        Gray::new(&img.as_raw()[1..], w, h).unwrap_err(),
        DetectError::FrameSize {
            width: w,
            height: h,
            expected: (w * h) as usize,
            actual: (w * h) as usize - 1
        }
    );
    ws.strip.sum = &mut [];
    let e = detect_into(&blob, &frame, &p, &mut ws, &mut faces).unwrap_err();
    assert!(
        matches!(
            e,
            DetectError::Workspace {
                buffer: "integral tables",
                ..
            }
        ),
        "{e}"
    );
    let mut det = Detector::new(cascade);
    let e = det
        .detect(
            img.as_raw(),
            w,
            h,
            &DetectParams {
                scale: SCALE_ONE,
                ..p
            },
        )
        .unwrap_err();
    assert_eq!(e, DetectError::Scale { scale: SCALE_ONE });
}

/// The blob is checked before use: each kind of damage is named, a file by its path.
#[test]
fn damaged_cascade_blobs_are_refused_by_name() {
    let bytes = shipped().bytes().to_vec();
    assert_eq!(CascadeBlob::parse(&bytes).unwrap().len(), bytes.len());
    let mut flipped = bytes.clone();
    flipped[blob::HEADER_LEN + 1000] ^= 0x10;
    assert!(matches!(
        CascadeBlob::parse(&flipped),
        Err(BlobError::Crc { .. })
    ));
    assert!(matches!(
        CascadeBlob::parse(&bytes[..bytes.len() - 1]),
        Err(BlobError::Length { .. })
    ));
    assert_eq!(
        CascadeBlob::parse(&[0xff; 64]).unwrap_err(),
        BlobError::Magic
    );
    assert_eq!(
        CascadeBlob::parse(&[]).unwrap_err(),
        BlobError::TooShort { len: 0 }
    );
    let mut newer = bytes.clone();
    newer[4] = 2;
    assert_eq!(
        CascadeBlob::parse(&newer).unwrap_err(),
        BlobError::Version {
            found: 2,
            supported: 1
        }
    );
    // A blob with bytes after it (the rest of a flash region) reads the same.
    let mut region = bytes.clone();
    region.extend_from_slice(&[0xff; 300]);
    assert_eq!(
        CascadeBlob::parse(&region).unwrap().crc(),
        CascadeBlob::parse(&bytes).unwrap().crc()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alt2.cascade");
    // The message and its causes, as the command line prints them.
    let chain = |e: CascadeError| {
        let mut s = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            s += &format!(": {c}");
            cause = c.source();
        }
        s
    };
    std::fs::write(&path, &flipped).unwrap();
    let e = chain(Cascade::load(&path).unwrap_err());
    assert!(e.contains("alt2.cascade") && e.contains("damaged"), "{e}");
    std::fs::write(&path, b"").unwrap();
    let e = chain(Cascade::load(&path).unwrap_err());
    assert!(
        e.contains("alt2.cascade") && e.contains("<cascade>") || e.contains("XML"),
        "{e}"
    );
}

/// OpenCV's LBP cascades convert to the same blob format (integer comparisons only) and find
/// the face of a photo.
#[test]
fn lbp_cascades_convert_and_find_a_face() {
    let cascade =
        Cascade::load(&data_dir().join("lbpcascades/lbpcascade_frontalface.xml")).unwrap();
    let blob = cascade.blob();
    assert_eq!(blob.features(), Features::Lbp);
    assert_eq!((blob.width(), blob.height(), blob.stages()), (24, 24, 20));
    let round = Cascade::from_blob(cascade.bytes().to_vec()).unwrap();
    assert_eq!(round.bytes(), cascade.bytes());
    let img = image::open(data_dir().join("faces/obama_240p.jpg"))
        .unwrap()
        .into_luma8();
    let (w, h) = img.dimensions();
    let faces = Detector::new(cascade)
        .detect(img.as_raw(), w, h, &DetectParams::default())
        .unwrap();
    let truth = FaceBox::new(189, 21, 67, 67);
    assert!(faces.iter().any(|f| f.iou(&truth) >= 0.5), "{faces:?}");
}
