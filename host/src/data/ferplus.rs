//! FER+ crowd labels (`../shared/data/ferplus/fer2013new.csv`) as soft training targets.
//!
//! FER+ had ten annotators re-label every FER2013 image. Their vote distribution is a better
//! target than FER2013's single, often disputed label (Barsoum et al., 2016), and it names the
//! images that are not faces at all. Rows are joined to the image folders by **row position**
//! (the data row `i` is `…/<class>/<i:06d>.png`), never by the CSV's `Image name`, which skips
//! rows (see the data folder's README).

use crate::data::Dataset;
use emoedge_core::emotion::Emotion;
use std::path::{Path, PathBuf};

/// Votes in FER+ column order: neutral, happiness, surprise, sadness, anger, disgust, fear,
/// contempt, unknown, NF.
const COLUMNS: [&str; 10] = [
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
];

/// Our class for each of the first seven FER+ vote columns.
const CLASS_OF_COLUMN: [Emotion; 7] = [
    Emotion::Neutral,
    Emotion::Happy,
    Emotion::Surprised,
    Emotion::Sad,
    Emotion::Angry,
    Emotion::Disgusted,
    Emotion::Fearful,
];

/// What FER+ says of one image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// Most annotators (or FER+ itself, by dropping the row) say it is not a face.
    NotAFace,
    /// Vote shares over our seven classes (sum 1).
    Votes([f32; Emotion::COUNT]),
    /// Only `contempt`/`unknown` votes: nothing to learn from FER+ for this image.
    NoEmotion,
}

/// A FER+ file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FerPlusError {
    /// Missing or unreadable.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not the expected CSV.
    #[error("{}, line {line}: {reason}", path.display())]
    Format {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Every row of the file, in file order.
pub fn load(path: &Path) -> Result<Vec<Verdict>, FerPlusError> {
    let file = std::fs::File::open(path).map_err(|source| FerPlusError::Io {
        path: path.into(),
        source,
    })?;
    parse(file, path)
}

fn parse(reader: impl std::io::Read, path: &Path) -> Result<Vec<Verdict>, FerPlusError> {
    let bad = |line: usize, reason: String| FerPlusError::Format {
        path: path.into(),
        line,
        reason,
    };
    let mut csv = csv::Reader::from_reader(reader);
    let header = csv.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    let tail: Vec<&str> = header.iter().skip(2).collect();
    if tail != COLUMNS {
        return Err(bad(1, format!("unexpected header {header:?}")));
    }
    let mut out = Vec::new();
    for (k, rec) in csv.records().enumerate() {
        let line = k + 2;
        let rec = rec.map_err(|e| bad(line, e.to_string()))?;
        let mut votes = [0u32; 10];
        for (v, field) in votes.iter_mut().zip(rec.iter().skip(2)) {
            *v = field
                .trim()
                .parse()
                .map_err(|_| bad(line, format!("vote {field:?} is not a count")))?;
        }
        if rec.len() != 12 {
            return Err(bad(line, format!("{} fields, expected 12", rec.len())));
        }
        out.push(verdict(rec[1].trim().is_empty(), &votes));
    }
    Ok(out)
}

fn verdict(dropped: bool, votes: &[u32; 10]) -> Verdict {
    let nf = votes[9];
    if dropped || votes[..9].iter().all(|&v| v < nf) {
        return Verdict::NotAFace;
    }
    let total: u32 = votes[..7].iter().sum();
    if total == 0 {
        return Verdict::NoEmotion;
    }
    let mut p = [0f32; Emotion::COUNT];
    for (col, class) in CLASS_OF_COLUMN.iter().enumerate() {
        p[*class as usize] = votes[col] as f32 / total as f32;
    }
    Verdict::Votes(p)
}

/// The kept images, their vote shares (aligned), and how many images were dropped.
pub type Joined = (Dataset, Vec<Option<Vec<f32>>>, usize);

/// Drops the images FER+ calls not-a-face, and returns the vote shares of those kept
/// (`None` where FER+ has none), aligned with the returned set. Images whose file name is no
/// row index, or beyond the file, are an error: the join would be silently wrong.
pub fn join(data: Dataset, rows: &[Verdict]) -> anyhow::Result<Joined> {
    if data.classes != emoedge_core::labels::EMOTIONS {
        anyhow::bail!(
            "FER+ votes are for the seven emotions; these images are labelled {}",
            data.classes.join(", ")
        );
    }
    let mut kept = Dataset::with_classes(&data.classes);
    let mut soft = Vec::with_capacity(data.len());
    let mut dropped = 0;
    for i in 0..data.len() {
        let row = data.row_index(i).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: file name is not a FER2013 row index, cannot join FER+ labels",
                data.paths[i].display()
            )
        })?;
        let v = rows.get(row).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: row {row} is past the FER+ file ({} rows)",
                data.paths[i].display(),
                rows.len()
            )
        })?;
        match v {
            Verdict::NotAFace => dropped += 1,
            Verdict::Votes(p) => {
                kept.push(data.image(i), data.labels[i], data.paths[i].clone());
                soft.push(Some(p.to_vec()));
            }
            Verdict::NoEmotion => {
                kept.push(data.image(i), data.labels[i], data.paths[i].clone());
                soft.push(None);
            }
        }
    }
    Ok((kept, soft, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n";

    #[test]
    fn maps_columns_and_flags_non_faces() {
        let text = format!(
            "{HEAD}Training,fer0.png,4,0,0,1,3,2,0,0,0,0\nTraining,,0,0,0,0,0,0,0,0,0,10\nTraining,fer2.png,1,0,0,0,0,0,0,0,2,7\nTraining,fer3.png,0,0,0,0,0,0,0,5,5,0\n"
        );
        let rows = parse(text.as_bytes(), Path::new("t.csv")).unwrap();
        let Verdict::Votes(p) = rows[0] else {
            panic!("{:?}", rows[0])
        };
        assert_eq!(p[Emotion::Neutral as usize], 0.4);
        assert_eq!(p[Emotion::Angry as usize], 0.3);
        assert_eq!(p[Emotion::Disgusted as usize], 0.2);
        assert_eq!(p[Emotion::Sad as usize], 0.1);
        assert_eq!(rows[1], Verdict::NotAFace);
        assert_eq!(rows[2], Verdict::NotAFace);
        assert_eq!(rows[3], Verdict::NoEmotion);
    }

    #[test]
    fn bad_rows_name_the_line() {
        let text = format!("{HEAD}Training,fer0.png,4,x,0,1,3,2,0,0,0,0\n");
        let e = parse(text.as_bytes(), Path::new("t.csv")).unwrap_err();
        assert!(e.to_string().contains("t.csv, line 2"), "{e}");
        let e = parse("a,b\n".as_bytes(), Path::new("t.csv")).unwrap_err();
        assert!(e.to_string().contains("header"), "{e}");
    }

    #[test]
    fn the_shared_file_joins_its_images() {
        let Ok(dir) = emoedge_runtime::paths::data_subdir("ferplus") else {
            eprintln!("skipped: no data folder");
            return;
        };
        let rows = load(&dir.join("fer2013new.csv")).unwrap();
        assert_eq!(rows.len(), 35_887);
        let not_faces = rows.iter().filter(|v| **v == Verdict::NotAFace).count();
        assert!(not_faces >= 173, "{not_faces}");
    }
}
