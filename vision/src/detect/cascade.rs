//! A cascade on the host: read from OpenCV's XML (`traincascade` format, `BOOST` stages of
//! `HAAR` or `LBP` features) or from a cascade blob file, always held as a blob, so the host runs
//! exactly the integers a board runs.

use super::blob::{
    self, BlobError, CascadeBlob, CascadeSpec, Features, LbpSpec, NodeSpec, StageSpec, TreeSpec,
    WeakSpec,
};
use std::path::Path;

/// Why a cascade file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CascadeError {
    /// The file cannot be read.
    #[error("reading {path}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not well-formed XML.
    #[error("{path}: not XML")]
    Xml {
        /// The file.
        path: String,
        /// The parser's complaint.
        source: roxmltree::Error,
    },
    /// An element is missing or malformed, or holds what the blob cannot.
    #[error("{path}: {what}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// A cascade blob file that does not check.
    #[error("{path}: not a usable cascade blob")]
    Blob {
        /// The file.
        path: String,
        /// What the check found.
        source: BlobError,
    },
}

/// A checked cascade blob, owned.
#[derive(Clone, Debug)]
pub struct Cascade {
    bytes: Vec<u8>,
    /// Window width the cascade was trained on.
    pub width: u32,
    /// Window height.
    pub height: u32,
}

impl Cascade {
    /// Reads a cascade: a blob file (`emoedge cascade` writes them) or OpenCV XML.
    pub fn load(path: &Path) -> Result<Self, CascadeError> {
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| CascadeError::Io {
            path: p.clone(),
            source,
        })?;
        if bytes.starts_with(&blob::MAGIC) {
            return Self::from_blob(bytes).map_err(|source| CascadeError::Blob { path: p, source });
        }
        let text = String::from_utf8(bytes).map_err(|_| CascadeError::Format {
            path: p.clone(),
            what: "neither a cascade blob nor UTF-8 XML".into(),
        })?;
        Self::parse(&text).map_err(|e| match e {
            CascadeError::Format { what, .. } => CascadeError::Format { path: p, what },
            CascadeError::Xml { source, .. } => CascadeError::Xml { path: p, source },
            other => other,
        })
    }

    /// A cascade from blob bytes, checked.
    pub fn from_blob(bytes: Vec<u8>) -> Result<Self, BlobError> {
        let b = CascadeBlob::parse(&bytes)?;
        let (width, height, len) = (b.width(), b.height(), b.len());
        let mut bytes = bytes;
        bytes.truncate(len);
        Ok(Self {
            bytes,
            width,
            height,
        })
    }

    /// The blob bytes: what `emoedge flash` writes to a board.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The blob, borrowed.
    pub fn blob(&self) -> CascadeBlob<'_> {
        CascadeBlob::parse(&self.bytes).expect("checked when the cascade was made")
    }

    /// Stages in the cascade.
    pub fn stages(&self) -> usize {
        self.blob().stages() as usize
    }

    /// Parses cascade XML text and converts it to a blob.
    pub fn parse(text: &str) -> Result<Self, CascadeError> {
        let spec = parse_xml(text)?;
        let bytes = blob::encode(&spec).map_err(|e| format_error(&e.to_string()))?;
        Self::from_blob(bytes).map_err(|e| format_error(&e.to_string()))
    }
}

/// A format error; [`Cascade::load`] adds the file.
fn format_error(what: &str) -> CascadeError {
    CascadeError::Format {
        path: String::new(),
        what: what.to_string(),
    }
}

/// The whitespace-separated numbers of `s`.
fn numbers<T: std::str::FromStr>(s: &str) -> Result<Vec<T>, CascadeError> {
    s.split_whitespace()
        .map(|t| {
            t.parse()
                .map_err(|_| format_error(&format!("bad number {t:?}")))
        })
        .collect()
}

/// OpenCV's XML as a float cascade.
fn parse_xml(text: &str) -> Result<CascadeSpec, CascadeError> {
    let fmt = format_error;
    let doc = roxmltree::Document::parse(text).map_err(|source| CascadeError::Xml {
        path: String::new(),
        source,
    })?;
    let cascade = doc
        .descendants()
        .find(|n| n.has_tag_name("cascade"))
        .ok_or_else(|| fmt("no <cascade> element"))?;
    let features = match (
        text_of(cascade, "stageType"),
        text_of(cascade, "featureType"),
    ) {
        ("BOOST", "HAAR") => Features::Haar,
        ("BOOST", "LBP") => Features::Lbp,
        _ => {
            return Err(fmt(
                "only BOOST cascades of HAAR or LBP features are supported",
            ));
        }
    };
    let num = |n: roxmltree::Node, name: &str| -> Result<u32, CascadeError> {
        text_of(n, name)
            .parse()
            .map_err(|_| fmt(&format!("<{name}> is not a number")))
    };
    let (width, height) = (num(cascade, "width")?, num(cascade, "height")?);
    let feature_list = items(child(cascade, "features").ok_or_else(|| fmt("no <features>"))?);
    let stages = match features {
        Features::Haar => {
            let rects = feature_list
                .map(|f| haar_feature(f, width, height))
                .collect::<Result<Vec<_>, _>>()?;
            stages(cascade, |w| haar_tree(w, &rects))?
        }
        Features::Lbp => {
            let cells = feature_list.map(lbp_cell).collect::<Result<Vec<_>, _>>()?;
            stages(cascade, |w| lbp_stump(w, &cells))?
        }
    };
    Ok(CascadeSpec {
        features,
        width,
        height,
        stages,
    })
}

/// The stages of `cascade`, each weak classifier read by `weak`.
fn stages(
    cascade: roxmltree::Node,
    weak: impl Fn(roxmltree::Node) -> Result<WeakSpec, CascadeError>,
) -> Result<Vec<StageSpec>, CascadeError> {
    let fmt = format_error;
    let mut stages = Vec::new();
    for s in items(child(cascade, "stages").ok_or_else(|| fmt("no <stages>"))?) {
        let threshold = numbers::<f32>(text_of(s, "stageThreshold"))?
            .first()
            .copied()
            .ok_or_else(|| fmt("stage without threshold"))?;
        let weak = items(
            child(s, "weakClassifiers").ok_or_else(|| fmt("stage without <weakClassifiers>"))?,
        )
        .map(&weak)
        .collect::<Result<_, _>>()?;
        stages.push(StageSpec { threshold, weak });
    }
    if stages.is_empty() {
        return Err(fmt("the cascade has no stages"));
    }
    Ok(stages)
}

/// A Haar feature's rectangles `(x, y, w, h, weight)`.
type HaarRects = Vec<(u32, u32, u32, u32, f32)>;

/// One Haar feature, its rectangles inside the `width x height` window.
fn haar_feature(f: roxmltree::Node, width: u32, height: u32) -> Result<HaarRects, CascadeError> {
    let fmt = format_error;
    if text_of(f, "tilted") == "1" {
        return Err(fmt("tilted Haar features are not supported"));
    }
    let mut rects = Vec::new();
    for r in items(child(f, "rects").ok_or_else(|| fmt("feature without <rects>"))?) {
        let v = numbers::<f32>(r.text().unwrap_or(""))?;
        let [x, y, w, h, weight] = v[..] else {
            return Err(fmt("a rect needs 5 numbers"));
        };
        if x < 0.0 || y < 0.0 || x + w > width as f32 || y + h > height as f32 {
            return Err(fmt("a rect lies outside the window"));
        }
        rects.push((x as u32, y as u32, w as u32, h as u32, weight));
    }
    Ok(rects)
}

/// A Haar weak classifier: a tree whose nodes hold `left right feature threshold`.
fn haar_tree(w: roxmltree::Node, features: &[HaarRects]) -> Result<WeakSpec, CascadeError> {
    let fmt = format_error;
    let nodes_raw = numbers::<f32>(text_of(w, "internalNodes"))?;
    let leaves = numbers::<f32>(text_of(w, "leafValues"))?;
    if nodes_raw.is_empty() || nodes_raw.len() % 4 != 0 {
        return Err(fmt("internalNodes must hold groups of 4 numbers"));
    }
    let mut nodes = Vec::new();
    for c in nodes_raw.chunks_exact(4) {
        let (left, right, feature) = (c[0] as i32, c[1] as i32, c[2] as usize);
        let ok_child = |c: i32| {
            if c > 0 {
                (c as usize) < nodes_raw.len() / 4
            } else {
                ((-c) as usize) < leaves.len()
            }
        };
        let rects = features
            .get(feature)
            .filter(|_| ok_child(left) && ok_child(right))
            .ok_or_else(|| fmt("a node refers to a missing feature, node or leaf"))?;
        nodes.push(NodeSpec {
            rects: rects.clone(),
            threshold: c[3],
            left,
            right,
        });
    }
    Ok(WeakSpec::Haar(TreeSpec { nodes, leaves }))
}

/// An LBP feature: its grid's top-left cell `(x, y, w, h)`.
fn lbp_cell(f: roxmltree::Node) -> Result<(u32, u32, u32, u32), CascadeError> {
    let fmt = format_error;
    let v = numbers::<i64>(text_of(f, "rect"))?;
    let [x, y, w, h] = v[..] else {
        return Err(fmt("an LBP feature needs a rect of 4 numbers"));
    };
    if x < 0 || y < 0 || w <= 0 || h <= 0 {
        return Err(fmt("an LBP rect has a negative corner or an empty side"));
    }
    Ok((x as u32, y as u32, w as u32, h as u32))
}

/// An LBP weak classifier: a stump whose node holds `left right feature subset×8`.
fn lbp_stump(w: roxmltree::Node, cells: &[(u32, u32, u32, u32)]) -> Result<WeakSpec, CascadeError> {
    let fmt = format_error;
    let node = numbers::<i64>(text_of(w, "internalNodes"))?;
    let leaves = numbers::<f32>(text_of(w, "leafValues"))?;
    let ([_, _, feature, subset @ ..], [l0, l1]) = (&node[..], &leaves[..]) else {
        return Err(fmt(
            "an LBP weak classifier needs one node of 11 numbers and 2 leaves",
        ));
    };
    let (Ok(subset), Some(&cell)) = (
        <[i64; 8]>::try_from(subset),
        usize::try_from(*feature).ok().and_then(|f| cells.get(f)),
    ) else {
        return Err(fmt("an LBP node needs a known feature and 8 subset words"));
    };
    Ok(WeakSpec::Lbp(LbpSpec {
        cell,
        subset: subset.map(|v| v as i32),
        leaves: [*l0, *l1],
    }))
}

fn child<'a>(n: roxmltree::Node<'a, 'a>, name: &str) -> Option<roxmltree::Node<'a, 'a>> {
    n.children().find(|c| c.has_tag_name(name))
}

fn text_of<'a>(n: roxmltree::Node<'a, 'a>, name: &str) -> &'a str {
    child(n, name)
        .and_then(|c| c.text())
        .map(str::trim)
        .unwrap_or("")
}

fn items<'a>(n: roxmltree::Node<'a, 'a>) -> impl Iterator<Item = roxmltree::Node<'a, 'a>> {
    n.children().filter(|c| c.has_tag_name("_"))
}
