//! FER2013's original file, `fer2013.csv` (`emotion,pixels,Usage`), read as a split.
//!
//! The file is streamed row by row (it is 300 MB), keeping only the rows of the asked
//! split. A malformed row is skipped and named by its line, never fatal; a file whose
//! header lacks a column is an error naming the file and the header it has.

use super::{DataError, Dataset, Skipped, Split, face_input};
use emoedge_core::Emotion;
use emoedge_core::labels::EMOTIONS;
use emoedge_core::preprocess::PixelFormat;
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};

/// FER2013's label codes in its own order (0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad,
/// 5 Surprise, 6 Neutral), which is not the model's alphabetical order.
const CODES: [Emotion; 7] = [
    Emotion::Angry,
    Emotion::Disgusted,
    Emotion::Fearful,
    Emotion::Happy,
    Emotion::Sad,
    Emotion::Surprised,
    Emotion::Neutral,
];

/// What the label codes of a CSV's `emotion` column name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CsvClasses {
    /// FER2013's codes, 0 to 6 (0 Angry … 6 Neutral), read as the seven emotions.
    #[default]
    Fer2013,
    /// Code `i` is class `i` of the list: a CSV of one's own classes.
    Named(Vec<String>),
}

impl CsvClasses {
    /// How a model's CSV was coded: FER2013's codes for the seven emotions, else the
    /// model's own classes in its order (the `--classes` list it was trained with).
    pub fn for_model<S: AsRef<str>>(classes: &[S]) -> Self {
        if classes.iter().map(|c| c.as_ref()).eq(EMOTIONS) {
            Self::Fer2013
        } else {
            Self::Named(classes.iter().map(|c| c.as_ref().to_string()).collect())
        }
    }

    /// The class names, in label order.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::Fer2013 => EMOTIONS.map(String::from).to_vec(),
            Self::Named(names) => names.clone(),
        }
    }

    /// The label of code `code`.
    fn label(&self, code: usize) -> Option<u8> {
        match self {
            Self::Fer2013 => CODES.get(code).map(|e| e.index() as u8),
            Self::Named(names) => (code < names.len()).then_some(code as u8),
        }
    }

    /// The codes a row may hold, for messages.
    fn codes(&self) -> String {
        match self {
            Self::Fer2013 => "a FER2013 label code 0-6".into(),
            Self::Named(names) => format!("a code 0-{} of --classes", names.len() - 1),
        }
    }
}

/// Whether `path` names a CSV file rather than a folder of class folders.
pub fn is_csv(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// Reads the rows of `split` from a `fer2013.csv`. Each image is named
/// `<file>/<row>` with `<row>` the 0-based data row, padded to 6 digits as the folder
/// edition names its files, so [`Dataset::row_index`] (and FER+'s labels) work alike.
/// Pixel counts that are a square other than 48x48 are area-averaged to 48x48.
pub fn load_csv(
    path: &Path,
    split: Split,
    classes: &CsvClasses,
    progress: &ProgressBar,
) -> Result<(Dataset, Vec<Skipped>), DataError> {
    let io = |source: std::io::Error| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    progress.set_length(file.metadata().map_err(io)?.len());
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(std::io::BufReader::new(file));
    let header = reader
        .headers()
        .map_err(|e| bad_csv(path, format!("unreadable header: {e}")))?
        .clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                bad_csv(
                    path,
                    format!(
                        "no {name:?} column in its header {:?} (expected emotion,pixels,Usage)",
                        header.iter().collect::<Vec<_>>().join(",")
                    ),
                )
            })
    };
    let (c_emotion, c_pixels, c_usage) = (column("emotion")?, column("pixels")?, column("usage")?);
    let mut ds = Dataset::with_classes(&classes.names());
    let mut skipped = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut pixels = Vec::new();
    for row in 0usize.. {
        let line = reader.position().line();
        let parsed = match reader.read_record(&mut record) {
            Ok(false) => break,
            // An unreadable row (bad UTF-8, say): named and skipped, as any bad image.
            Err(e) => Err(e.to_string()),
            Ok(true) => {
                progress.set_position(reader.position().byte());
                if record.get(c_usage).unwrap_or("").trim() != split.usage() {
                    continue;
                }
                parse_row(&record, classes, c_emotion, c_pixels, &mut pixels)
            }
        };
        match parsed {
            Ok((label, face)) => ds.push(&face, label, row_path(path, row)),
            Err(reason) => skipped.push(Skipped {
                path: row_path(path, row),
                reason: format!("line {line}: {reason}"),
            }),
        }
    }
    progress.finish_and_clear();
    if ds.is_empty() {
        return Err(bad_csv(
            path,
            format!("no readable rows with Usage {}", split.usage()),
        ));
    }
    Ok((ds, skipped))
}

fn bad_csv(path: &Path, problem: String) -> DataError {
    DataError::Csv {
        path: path.to_path_buf(),
        problem,
    }
}

fn row_path(csv: &Path, row: usize) -> PathBuf {
    csv.join(format!("{row:06}"))
}

/// One row's label and input pixels (`pixels`: scratch for the row's values, reused).
fn parse_row(
    record: &csv::StringRecord,
    classes: &CsvClasses,
    c_emotion: usize,
    c_pixels: usize,
    pixels: &mut Vec<u8>,
) -> Result<(u8, [u8; emoedge_core::preprocess::INPUT_LEN]), String> {
    let code = record.get(c_emotion).unwrap_or("").trim();
    let label = code
        .parse::<usize>()
        .ok()
        .and_then(|c| classes.label(c))
        .ok_or_else(|| format!("emotion {code:?} is not {}", classes.codes()))?;
    pixels.clear();
    for v in record.get(c_pixels).unwrap_or("").split_ascii_whitespace() {
        let v = v
            .parse::<u8>()
            .map_err(|e| format!("a pixel value is not 0-255 ({e})"))?;
        pixels.push(v);
    }
    let side = (pixels.len() as f64).sqrt().round() as usize;
    if side == 0 || side * side != pixels.len() {
        return Err(format!(
            "{} pixel values are not a square image",
            pixels.len()
        ));
    }
    let face = face_input(pixels, side as u32, side as u32, PixelFormat::Gray8)?;
    Ok((label, face))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixels(v: u8, n: usize) -> String {
        vec![v.to_string(); n].join(" ")
    }

    /// Writes a CSV with FER2013's header and `rows`.
    fn write_csv(path: &Path, rows: &[String]) {
        std::fs::write(path, format!("emotion,pixels,Usage\n{}\n", rows.join("\n"))).unwrap();
    }

    /// [`load_csv`] without a progress bar.
    fn read(
        path: &Path,
        split: Split,
        classes: &CsvClasses,
    ) -> Result<(Dataset, Vec<Skipped>), DataError> {
        load_csv(path, split, classes, &ProgressBar::hidden())
    }

    #[test]
    fn reads_its_split_and_names_bad_rows() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("fer2013.csv");
        let rows = [
            format!("0,{},Training", pixels(10, 2304)),
            format!("6,{},PublicTest", pixels(20, 2304)),
            format!("4,{},Training", pixels(30, 2304)),
            format!("9,{},Training", pixels(40, 2304)),
            format!("3,{},Training", pixels(50, 2000)),
            format!("5,\"{}\",Training", pixels(60, 96 * 96)),
            "2,1 2 x,Training".to_string(),
        ];
        write_csv(&path, &rows);
        let (ds, skipped) = read(&path, Split::Train, &CsvClasses::Fer2013).unwrap();
        let labels: Vec<u8> = ds.labels.clone();
        assert_eq!(
            labels,
            [Emotion::Angry, Emotion::Sad, Emotion::Surprised].map(|e| e.index() as u8)
        );
        assert_eq!(ds.image(0)[0], 10);
        assert_eq!(ds.image(2)[0], 60, "96x96 area-averaged");
        assert_eq!(ds.row_index(1), Some(2));
        let reasons: Vec<String> = skipped.iter().map(|s| s.reason.clone()).collect();
        assert_eq!(skipped.len(), 3, "{reasons:?}");
        assert!(reasons[0].starts_with("line 5:") && reasons[0].contains("label code"));
        assert!(reasons[1].starts_with("line 6:") && reasons[1].contains("2000 pixel"));
        assert!(reasons[2].starts_with("line 8:") && reasons[2].contains("0-255"));
        let (test, _) = read(&path, Split::Test, &CsvClasses::Fer2013).unwrap();
        assert_eq!(test.labels, [Emotion::Neutral.index() as u8]);
        let err = read(&path, Split::Private, &CsvClasses::Fer2013).unwrap_err();
        assert!(err.to_string().contains("PrivateTest"), "{err}");
    }

    #[test]
    fn own_classes_are_codes_into_a_name_list() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("smiles.csv");
        let rows = [
            format!("1,{},Training", pixels(10, 2304)),
            format!("0,{},Training", pixels(20, 2304)),
            format!("2,{},Training", pixels(30, 2304)),
        ];
        write_csv(&path, &rows);
        let names = CsvClasses::Named(vec!["smile".into(), "no_smile".into()]);
        let (ds, skipped) = read(&path, Split::Train, &names).unwrap();
        assert_eq!(ds.classes, ["smile", "no_smile"]);
        assert_eq!(ds.labels, [1, 0]);
        assert!(
            skipped[0].reason.contains("code 0-1 of --classes"),
            "{skipped:?}"
        );
        assert_eq!(CsvClasses::for_model(&EMOTIONS), CsvClasses::Fer2013);
        assert_eq!(CsvClasses::for_model(&["smile", "no_smile"]), names);
    }

    #[test]
    fn a_wrong_header_names_the_file_and_the_header() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("x.csv");
        std::fs::write(&path, "label,image\n0,1 2 3 4\n").unwrap();
        let err = read(&path, Split::Train, &CsvClasses::Fer2013)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.csv") && err.contains("label,image") && err.contains("emotion"),
            "{err}"
        );
    }
}
