//! FER-style folders (`<split>/<class>/*.png`), decoded once, in parallel, into memory.

pub mod ferplus;

use emoedge_core::preprocess::{INPUT_LEN, INPUT_SIDE};
use emoedge_core::{Emotion, NUM_CLASSES};
use indicatif::ProgressBar;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// A folder that cannot be used as a dataset split.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The split folder is missing.
    #[error("dataset folder {} does not exist", .0.display())]
    Missing(PathBuf),
    /// A sub-folder is not one of the seven class names.
    #[error("{}: unknown class folder {name:?}; expected one of: {expected}", .path.display())]
    UnknownClass {
        path: PathBuf,
        name: String,
        expected: String,
    },
    /// A class folder holds no files.
    #[error("class folder {} is empty", .0.display())]
    EmptyClass(PathBuf),
    /// The split holds no class folders at all.
    #[error("{} has no class folders (expected <class>/*.png)", .0.display())]
    NoClasses(PathBuf),
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

    /// Images per class.
    pub fn class_counts(&self) -> [usize; NUM_CLASSES] {
        let mut n = [0; NUM_CLASSES];
        for &l in &self.labels {
            n[l as usize] += 1;
        }
        n
    }

    /// At most `n` images, taken at an even stride so every class keeps its share.
    pub fn subsample(&self, n: usize) -> Dataset {
        if n >= self.len() {
            return self.clone();
        }
        let mut out = Dataset::default();
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

/// Lists `dir/<class>/*` in a stable order, checking the folder layout.
pub fn list_split(dir: &Path) -> Result<Vec<(PathBuf, Emotion)>, DataError> {
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
        let emotion = Emotion::from_name(&name).ok_or_else(|| DataError::UnknownClass {
            path: entry.path(),
            name,
            expected: Emotion::ALL.map(|e| e.name()).join(", "),
        })?;
        classes.push((emotion, entry.path()));
    }
    if classes.is_empty() {
        return Err(DataError::NoClasses(dir.to_path_buf()));
    }
    classes.sort();
    let mut files = Vec::new();
    for (emotion, cdir) in classes {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&cdir)
            .map_err(io(&cdir))?
            .map(|e| e.map(|e| e.path()).map_err(io(&cdir)))
            .collect::<Result<_, _>>()?;
        names.retain(|p| p.is_file());
        if names.is_empty() {
            return Err(DataError::EmptyClass(cdir));
        }
        names.sort();
        files.extend(names.into_iter().map(|p| (p, emotion)));
    }
    Ok(files)
}

/// Decodes one 48x48 gray image; any other size, or a file that is not an image, is an error.
pub fn decode_face(path: &Path) -> Result<[u8; INPUT_LEN], String> {
    let img = image::ImageReader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| format!("not a readable image: {e}"))?;
    if img.width() as usize != INPUT_SIDE || img.height() as usize != INPUT_SIDE {
        return Err(format!(
            "is {}x{}, expected {INPUT_SIDE}x{INPUT_SIDE}",
            img.width(),
            img.height()
        ));
    }
    let gray = img.into_luma8();
    let mut out = [0u8; INPUT_LEN];
    out.copy_from_slice(gray.as_raw());
    Ok(out)
}

/// Loads a split, decoding in parallel. Bad files are skipped and returned, never fatal.
pub fn load_split(
    dir: &Path,
    progress: &ProgressBar,
) -> Result<(Dataset, Vec<Skipped>), DataError> {
    let files = list_split(dir)?;
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
    let mut ds = Dataset::default();
    let mut skipped = Vec::new();
    for (path, e, r) in decoded {
        match r {
            Ok(px) => {
                ds.pixels.extend_from_slice(&px);
                ds.labels.push(e as u8);
                ds.paths.push(path.clone());
            }
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
        image::GrayImage::new(40, 48)
            .save(t.path().join("sad/small.png"))
            .unwrap();
        let (ds, skipped) = load_split(t.path(), &ProgressBar::hidden()).unwrap();
        assert_eq!(ds.len(), 14);
        assert_eq!(ds.class_counts(), [2; NUM_CLASSES]);
        assert_eq!(skipped.len(), 2);
        assert!(
            skipped.iter().any(|s| s.path.ends_with("happy/corrupt.png")
                && s.reason.contains("not a readable image"))
        );
        assert!(
            skipped
                .iter()
                .any(|s| s.path.ends_with("sad/small.png") && s.reason.contains("40x48"))
        );
        assert_eq!(ds.row_index(0), Some(0));
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
        std::fs::create_dir(t.path().join("Happy2")).unwrap();
        let err = list_split(t.path()).unwrap_err();
        assert!(
            err.to_string().contains("unknown class folder \"Happy2\""),
            "{err}"
        );
    }
}
