//! Datasets as people download them, decoded once into memory: FER-style folders
//! (`<split>/<class>/<image>`, in parallel) and FER2013's original `fer2013.csv` (streamed).
//! Every image becomes the model's 48x48 gray input the way the Pi makes one from a face.

pub mod csv_split;
pub mod ferplus;

pub use csv_split::{CsvClasses, is_csv, load_csv};

use emoedge_core::Emotion;
use emoedge_core::labels::{self, EMOTIONS, MAX_CLASSES};
use emoedge_core::preprocess::{FaceBox, Frame, INPUT_LEN, PixelFormat, crop_to_input};
use indicatif::ProgressBar;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// A folder that cannot be used as a dataset split.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The split folder is missing.
    #[error("dataset {} does not exist", .0.display())]
    Missing(PathBuf),
    /// A class folder's name cannot be a class name.
    #[error(
        "{}: class folder {name:?} cannot name a class: a class name is 1 to {} characters of a-z, 0-9, '_', '-', '+' and '.' (folder names are read in lower case)",
        .path.display(), labels::MAX_LABEL_LEN
    )]
    BadClassName { path: PathBuf, name: String },
    /// More class folders than a model can have outputs.
    #[error("{} has {count} class folders; a model has at most {MAX_CLASSES} classes", .path.display())]
    TooManyClasses { path: PathBuf, count: usize },
    /// Two sub-folders name the same class (`fear` and `fearful`, say).
    #[error("{} and {} both name the class {class}; keep one", .first.display(), .second.display())]
    DuplicateClass {
        first: PathBuf,
        second: PathBuf,
        class: String,
    },
    /// A class folder holds no files.
    #[error("class folder {} is empty", .0.display())]
    EmptyClass(PathBuf),
    /// The split holds no class folders at all.
    #[error("{} has no class folders (expected <class>/*.png)", .0.display())]
    NoClasses(PathBuf),
    /// The training and test splits hold images of different classes.
    #[error(
        "the training split has images of {train}, the test split of {test}: a class without test images cannot be scored, one without training images cannot be learnt"
    )]
    SplitClasses { train: String, test: String },
    /// Only one class has training images.
    #[error("only {0} has training images: a classifier needs two classes or more")]
    OneClass(String),
    /// The data has images of a class the model does not know.
    #[error(
        "the data has images of class {class:?}, which the model does not have (its classes: {model})"
    )]
    NotAModelClass { class: String, model: String },
    /// A CSV file that cannot be read as FER2013's.
    #[error("{}: {problem}", .path.display())]
    Csv { path: PathBuf, problem: String },
    /// Reading a directory failed.
    #[error("reading {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A file that was skipped, and why.
#[derive(Clone, Debug)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// Decoded 48x48 gray images with their labels, in a stable order (class, then file name).
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    /// The class names; a label is an index into them.
    pub classes: Vec<String>,
    /// `len() · 2304` pixels, image after image.
    pub pixels: Vec<u8>,
    /// Class index per image.
    pub labels: Vec<u8>,
    /// Source file per image.
    pub paths: Vec<PathBuf>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8; INPUT_LEN] {
        self.pixels[i * INPUT_LEN..(i + 1) * INPUT_LEN]
            .try_into()
            .expect("INPUT_LEN slice")
    }

    /// An empty dataset of the seven emotions.
    pub fn emotions() -> Self {
        Self::with_classes(&EMOTIONS)
    }

    /// An empty dataset of the classes `names`.
    pub fn with_classes<S: AsRef<str>>(names: &[S]) -> Self {
        Self {
            classes: names.iter().map(|n| n.as_ref().to_string()).collect(),
            ..Self::default()
        }
    }

    /// Images per class, in [`Dataset::classes`] order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut n = vec![0; self.classes.len()];
        for &l in &self.labels {
            n[l as usize] += 1;
        }
        n
    }

    /// The names of the classes that have images, in [`Dataset::classes`] order.
    pub fn present_classes(&self) -> Vec<String> {
        self.classes
            .iter()
            .zip(self.class_counts())
            .filter(|&(_, n)| n > 0)
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// The same images labelled by their index in `classes` (a model's class names, say):
    /// refused, naming the class, when an image's class is not among them.
    pub fn relabelled<S: AsRef<str>>(mut self, classes: &[S]) -> Result<Dataset, DataError> {
        if self
            .classes
            .iter()
            .map(String::as_str)
            .eq(classes.iter().map(|c| c.as_ref()))
        {
            return Ok(self);
        }
        let target: Vec<String> = classes.iter().map(|c| c.as_ref().to_string()).collect();
        let mut map = vec![None; self.classes.len()];
        for (i, name) in self.classes.iter().enumerate() {
            map[i] = target.iter().position(|t| t == name).map(|j| j as u8);
        }
        for l in &mut self.labels {
            *l = map[*l as usize].ok_or_else(|| DataError::NotAModelClass {
                class: self.classes[*l as usize].clone(),
                model: target.join(", "),
            })?;
        }
        self.classes = target;
        Ok(self)
    }

    /// At most `n` images, taken at an even stride so every class keeps its share.
    pub fn subsample(&self, n: usize) -> Dataset {
        if n >= self.len() {
            return self.clone();
        }
        let mut out = Dataset::with_classes(&self.classes);
        for k in 0..n {
            let i = k * self.len() / n;
            out.pixels.extend_from_slice(self.image(i));
            out.labels.push(self.labels[i]);
            out.paths.push(self.paths[i].clone());
        }
        out
    }

    /// The same images flipped left-right (labels and paths kept): the mirror half of
    /// test-time flip averaging and of the teachers' targets.
    pub fn mirrored(&self) -> Dataset {
        let mut m = self.clone();
        for face in m.pixels.chunks_exact_mut(INPUT_LEN) {
            emoedge_core::preprocess::mirror(face.try_into().expect("INPUT_LEN chunk"));
        }
        m
    }

    /// Appends one image.
    pub fn push(&mut self, image: &[u8; INPUT_LEN], label: u8, path: PathBuf) {
        self.pixels.extend_from_slice(image);
        self.labels.push(label);
        self.paths.push(path);
    }

    /// The FER2013 row index of image `i`, from its file name (`<index>.png`), if it has one.
    pub fn row_index(&self, i: usize) -> Option<usize> {
        self.paths[i].file_stem()?.to_str()?.parse().ok()
    }
}

/// Folder names other than [`Emotion::name`] that common FER2013 editions use for a class:
/// the other folder edition's `disgust`, `fear`, `surprise` (also the CSV's names) and the
/// nouns.
const CLASS_ALIASES: [(&str, Emotion); 6] = [
    ("anger", Emotion::Angry),
    ("disgust", Emotion::Disgusted),
    ("fear", Emotion::Fearful),
    ("happiness", Emotion::Happy),
    ("sadness", Emotion::Sad),
    ("surprise", Emotion::Surprised),
];

/// The emotion a dataset folder is named for, in any letter case: the names every tool
/// prints ([`Emotion::name`]) or one of [`CLASS_ALIASES`].
pub fn emotion_of_folder(name: &str) -> Option<Emotion> {
    let name = name.to_lowercase();
    Emotion::from_name(&name).or_else(|| {
        CLASS_ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map(|&(_, e)| e)
    })
}

/// A dataset's splits: FER2013's `Usage` values, and the folders the folder editions use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    /// `train/`, or the CSV's `Training` rows: what a model is fitted to.
    Train,
    /// `test/`, or `PublicTest`: what a model is selected and reported on.
    Test,
    /// `private/`, or `PrivateTest`: kept aside to check what ships.
    Private,
}

impl Split {
    /// The split's value in FER2013's `Usage` column.
    pub fn usage(self) -> &'static str {
        match self {
            Self::Train => "Training",
            Self::Test => "PublicTest",
            Self::Private => "PrivateTest",
        }
    }

    /// The split's folder in a dataset folder.
    pub fn folder(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "test",
            Self::Private => "private",
        }
    }
}

/// Loads `split` of a dataset given as a folder holding `<split>/<class>/<image>`
/// ([`load_split`]) or as a CSV in FER2013's layout ([`load_csv`], whose label codes
/// `csv_classes` names).
pub fn load_dataset(
    data: &Path,
    split: Split,
    csv_classes: &CsvClasses,
    progress: &ProgressBar,
) -> Result<(Dataset, Vec<Skipped>), DataError> {
    let source = match is_csv(data) {
        true => data.to_path_buf(),
        false => data.join(split.folder()),
    };
    load_source(&source, split, csv_classes, progress)
}

/// Checks that a training split and its test split can train and score a classifier
/// together: the same classes have images in both, and there are two or more of them.
/// Returns the two with only those classes, in the training split's order: the model's
/// classes.
pub fn check_classes(train: Dataset, test: Dataset) -> Result<(Dataset, Dataset), DataError> {
    let (a, b) = (train.present_classes(), test.present_classes());
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    if sorted(&a) != sorted(&b) {
        return Err(DataError::SplitClasses {
            train: a.join(", "),
            test: b.join(", "),
        });
    }
    if let [one] = a.as_slice() {
        return Err(DataError::OneClass(one.clone()));
    }
    Ok((train.relabelled(&a)?, test.relabelled(&a)?))
}

/// Loads one split given as its folder (`<class>/<image>`, [`load_split`]) or as a CSV in
/// FER2013's layout, of which the rows of `csv_split` are taken ([`load_csv`]).
pub fn load_source(
    path: &Path,
    csv_split: Split,
    csv_classes: &CsvClasses,
    progress: &ProgressBar,
) -> Result<(Dataset, Vec<Skipped>), DataError> {
    if is_csv(path) {
        load_csv(path, csv_split, csv_classes, progress)
    } else {
        load_split(path, progress)
    }
}

/// Loads the split at `path` (as [`load_source`]) labelled in `model_classes`' order,
/// refusing data of a class the model does not have. A CSV's label codes are read as
/// FER2013's when the model has the seven emotions, else as indices into the model's
/// classes (the codes it was trained from).
pub fn load_for_model<S: AsRef<str>>(
    path: &Path,
    csv_split: Split,
    model_classes: &[S],
    progress: &ProgressBar,
) -> Result<(Dataset, Vec<Skipped>), DataError> {
    let csv_classes = CsvClasses::for_model(model_classes);
    let (ds, skipped) = load_source(path, csv_split, &csv_classes, progress)?;
    Ok((ds.relabelled(model_classes)?, skipped))
}

/// A split's class names and each of its files with its class index.
pub type SplitFiles = (Vec<String>, Vec<(PathBuf, u8)>);

/// Lists `dir/<class>/*` in a stable order, checking the folder layout. Returns the class
/// names and each file with its class index. Folders that all name emotions (in any of
/// FER2013's namings, [`emotion_of_folder`]) give the seven emotions; any other set of
/// folders gives its own classes, named by the folders in lower case, in alphabetical
/// order.
pub fn list_split(dir: &Path) -> Result<SplitFiles, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing(dir.to_path_buf()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataError::Io { path, source }
    };
    let mut classes = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        if !entry.file_type().map_err(io(&entry.path()))?.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        classes.push((name, entry.path()));
    }
    if classes.is_empty() {
        return Err(DataError::NoClasses(dir.to_path_buf()));
    }
    let emotions: Option<Vec<Emotion>> =
        classes.iter().map(|(n, _)| emotion_of_folder(n)).collect();
    let (names, mut classes): (Vec<String>, Vec<(u8, String, PathBuf)>) = match emotions {
        Some(emotions) => (
            EMOTIONS.map(String::from).to_vec(),
            emotions
                .into_iter()
                .zip(classes)
                .map(|(e, (_, path))| (e as u8, e.name().to_string(), path))
                .collect(),
        ),
        None => {
            let mut own: Vec<(String, PathBuf)> = Vec::new();
            for (name, path) in classes {
                let lower = name.to_lowercase();
                if !labels::is_valid_name(&lower) {
                    return Err(DataError::BadClassName { path, name });
                }
                own.push((lower, path));
            }
            own.sort();
            let mut names: Vec<String> = own.iter().map(|(n, _)| n.clone()).collect();
            names.dedup();
            if names.len() > MAX_CLASSES {
                return Err(DataError::TooManyClasses {
                    path: dir.to_path_buf(),
                    count: names.len(),
                });
            }
            let indexed = own
                .into_iter()
                .map(|(n, path)| {
                    let i = names.iter().position(|m| *m == n).unwrap_or(0);
                    (i as u8, n, path)
                })
                .collect();
            (names, indexed)
        }
    };
    classes.sort();
    if let Some(pair) = classes.windows(2).find(|p| p[0].0 == p[1].0) {
        return Err(DataError::DuplicateClass {
            first: pair[0].2.clone(),
            second: pair[1].2.clone(),
            class: pair[0].1.clone(),
        });
    }
    let mut files = Vec::new();
    for (class, _, cdir) in classes {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&cdir)
            .map_err(io(&cdir))?
            .map(|e| e.map(|e| e.path()).map_err(io(&cdir)))
            .collect::<Result<_, _>>()?;
        names.retain(|p| p.is_file());
        if names.is_empty() {
            return Err(DataError::EmptyClass(cdir));
        }
        names.sort();
        files.extend(names.into_iter().map(|p| (p, class)));
    }
    Ok((names, files))
}

/// Decodes an image of any size, format and colour into the model's 48x48 gray input, as the
/// Pi turns a detected face into one: colour to gray by the runtimes' integer luma
/// ([`emoedge_core::preprocess::rgb_to_gray`]), then the image's centred square (its
/// shorter side; a non-square image loses the ends of its longer side) area-averaged to
/// 48x48 ([`crop_to_input`]). The image is taken to be a face crop already: a 48x48 gray
/// image passes unchanged. A file that is not a readable image is an error.
pub fn decode_face(path: &Path) -> Result<[u8; INPUT_LEN], String> {
    let img = image::ImageReader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| format!("not a readable image: {e}"))?;
    let (w, h) = (img.width(), img.height());
    let (pixels, format) = if img.color().has_color() {
        (img.into_rgb8().into_raw(), PixelFormat::Rgb8)
    } else {
        (img.into_luma8().into_raw(), PixelFormat::Gray8)
    };
    face_input(&pixels, w, h, format)
}

/// A face image's pixels (`w x h`, rows top to bottom) as the model's input: the centred
/// square, area-averaged to 48x48 gray ([`decode_face`]).
pub fn face_input(
    pixels: &[u8],
    w: u32,
    h: u32,
    format: PixelFormat,
) -> Result<[u8; INPUT_LEN], String> {
    let frame = Frame::new(pixels, w, h, format).map_err(|e| format!("{e:?}"))?;
    let side = w.min(h);
    let square = FaceBox::new(((w - side) / 2) as i32, ((h - side) / 2) as i32, side, side);
    let mut out = [0u8; INPUT_LEN];
    crop_to_input(&frame, square, &mut out).map_err(|e| format!("{e:?}"))?;
    Ok(out)
}

/// Loads a split, decoding in parallel. Bad files are skipped and returned, never fatal.
pub fn load_split(
    dir: &Path,
    progress: &ProgressBar,
) -> Result<(Dataset, Vec<Skipped>), DataError> {
    let (classes, files) = list_split(dir)?;
    progress.set_length(files.len() as u64);
    let decoded: Vec<_> = files
        .par_iter()
        .map(|(path, e)| {
            let r = decode_face(path);
            progress.inc(1);
            (path, *e, r)
        })
        .collect();
    progress.finish_and_clear();
    let mut ds = Dataset::with_classes(&classes);
    let mut skipped = Vec::new();
    for (path, class, r) in decoded {
        match r {
            Ok(px) => ds.push(&px, class, path.clone()),
            Err(reason) => skipped.push(Skipped {
                path: path.clone(),
                reason,
            }),
        }
    }
    Ok((ds, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_skips_bad_files() {
        let t = tempfile::tempdir().unwrap();
        emoedge_test_support::write_split(t.path(), 2, 0);
        std::fs::write(t.path().join("happy/corrupt.png"), b"not a png").unwrap();
        std::fs::write(t.path().join("happy/empty.jpg"), b"").unwrap();
        let (ds, skipped) = load_split(t.path(), &ProgressBar::hidden()).unwrap();
        assert_eq!(ds.len(), 14);
        assert_eq!(ds.class_counts(), [2; 7]);
        assert_eq!(ds.classes, EMOTIONS);
        assert_eq!(skipped.len(), 2);
        assert!(
            skipped.iter().any(|s| s.path.ends_with("happy/corrupt.png")
                && s.reason.contains("not a readable image"))
        );
        assert_eq!(ds.row_index(0), Some(0));
    }

    /// Any size and colour: the centred square, gray by the runtimes' luma, area-averaged.
    #[test]
    fn any_image_becomes_the_centred_square_in_gray() {
        let t = tempfile::tempdir().unwrap();
        // 144x96 RGB: a 48-pixel band each side of a 96x96 square; each 2x2 block of the
        // square averages to one input pixel.
        let img = image::RgbImage::from_fn(144, 96, |x, y| {
            if !(24..120).contains(&x) {
                image::Rgb([255, 0, 0])
            } else {
                let v = ((x - 24) / 2 + y / 2) as u8;
                image::Rgb([v, v, v])
            }
        });
        let path = t.path().join("wide.png");
        img.save(&path).unwrap();
        let face = decode_face(&path).unwrap();
        for (i, &p) in face.iter().enumerate() {
            let side = emoedge_core::preprocess::INPUT_SIDE;
            let (x, y) = (i % side, i / side);
            // The 2x2 source block of input pixel (x, y) holds v = x + y in all three
            // channels: gray (77 + 150 + 29) v / 256 = v, and its mean is v.
            assert_eq!(p as usize, x + y, "pixel {x},{y}");
        }
        // A 48x48 gray image is its own input.
        let gray = image::GrayImage::from_fn(48, 48, |x, y| image::Luma([(x * 5 + y) as u8]));
        gray.save(t.path().join("g.png")).unwrap();
        assert_eq!(
            &decode_face(&t.path().join("g.png")).unwrap()[..],
            gray.as_raw()
        );
    }

    #[test]
    fn folder_names_of_every_edition_are_read() {
        let t = tempfile::tempdir().unwrap();
        for name in [
            "Angry", "disgust", "FEAR", "happy", "Neutral", "sadness", "surprise",
        ] {
            let d = t.path().join(name);
            std::fs::create_dir(&d).unwrap();
            image::GrayImage::new(48, 48).save(d.join("0.png")).unwrap();
        }
        let (names, files) = list_split(t.path()).unwrap();
        assert_eq!(names, EMOTIONS);
        let classes: Vec<u8> = files.iter().map(|&(_, c)| c).collect();
        assert_eq!(classes, [0, 1, 2, 3, 4, 5, 6]);
        std::fs::create_dir(t.path().join("fearful")).unwrap();
        let err = list_split(t.path()).unwrap_err().to_string();
        assert!(
            err.contains("FEAR") && err.contains("fearful") && err.contains("both name"),
            "{err}"
        );
    }

    #[test]
    fn other_folders_are_classes_of_their_own() {
        let t = tempfile::tempdir().unwrap();
        for name in ["Smile", "no_smile", "happy"] {
            let d = t.path().join(name);
            std::fs::create_dir(&d).unwrap();
            image::GrayImage::new(48, 48).save(d.join("0.png")).unwrap();
        }
        let (names, files) = list_split(t.path()).unwrap();
        assert_eq!(names, ["happy", "no_smile", "smile"]);
        let classes: Vec<u8> = files.iter().map(|&(_, c)| c).collect();
        assert_eq!(classes, [0, 1, 2]);
        assert!(files[2].0.ends_with("Smile/0.png"));
        std::fs::create_dir(t.path().join("not smiling")).unwrap();
        let err = list_split(t.path()).unwrap_err().to_string();
        assert!(err.contains("\"not smiling\" cannot name a class"), "{err}");
    }

    #[test]
    fn splits_with_other_classes_are_refused_with_both_lists() {
        let with = |classes: &[Emotion]| {
            let mut ds = Dataset::emotions();
            for &e in classes {
                ds.push(&[0; INPUT_LEN], e as u8, PathBuf::from("x.png"));
            }
            ds
        };
        let (h, s, n) = (Emotion::Happy, Emotion::Sad, Emotion::Neutral);
        // Only the classes with images stay: the model's classes.
        let (train, test) = check_classes(with(&[h, s, s]), with(&[s, h])).unwrap();
        assert_eq!(
            (&train.classes[..], &train.labels[..]),
            (
                &["happy".to_string(), "sad".to_string()][..],
                &[0u8, 1, 1][..]
            )
        );
        assert_eq!(test.labels, [1, 0]);
        let err = check_classes(with(&[h, s, n]), with(&[h, s]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("happy, neutral, sad") && err.contains("test split of happy, sad"),
            "{err}"
        );
        let err = check_classes(with(&[h, h]), with(&[h])).unwrap_err();
        assert!(err.to_string().contains("only happy"), "{err}");
    }

    #[test]
    fn data_is_labelled_in_the_models_order_or_refused() {
        let mut ds = Dataset::with_classes(&["smile", "no_smile"]);
        ds.push(&[0; INPUT_LEN], 0, PathBuf::from("a.png"));
        ds.push(&[0; INPUT_LEN], 1, PathBuf::from("b.png"));
        let r = ds
            .clone()
            .relabelled(&["no_smile", "smile", "unsure"])
            .unwrap();
        assert_eq!(r.labels, [1, 0]);
        let err = ds.relabelled(&["smile", "unsure"]).unwrap_err().to_string();
        assert!(
            err.contains("\"no_smile\"") && err.contains("smile, unsure"),
            "{err}"
        );
    }

    #[test]
    fn layout_errors_name_the_folder() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(
            list_split(&t.path().join("nope")),
            Err(DataError::Missing(_))
        ));
        assert!(matches!(list_split(t.path()), Err(DataError::NoClasses(_))));
        std::fs::create_dir(t.path().join("happy")).unwrap();
        let err = list_split(t.path()).unwrap_err();
        assert!(
            err.to_string().contains("happy") && err.to_string().contains("empty"),
            "{err}"
        );
        std::fs::create_dir(t.path().join("Happy 2")).unwrap();
        let err = list_split(t.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("class folder \"Happy 2\" cannot name a class"),
            "{err}"
        );
    }
}
