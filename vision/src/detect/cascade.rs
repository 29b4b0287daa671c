//! OpenCV cascade XML (`traincascade` format, `BOOST` stages of `HAAR` features).

use super::integral::Integral;
use std::path::Path;

/// Why a cascade file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CascadeError {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The file is not well-formed XML.
    #[error("{path}: not XML: {source}")]
    Xml {
        path: String,
        source: roxmltree::Error,
    },
    /// An element is missing or malformed.
    #[error("{path}: {what}")]
    Format { path: String, what: String },
}

#[derive(Clone, Copy, Debug)]
struct HaarRect {
    x: usize,
    y: usize,
    w: usize,
    h: usize,
    weight: f32,
}

#[derive(Clone, Debug)]
struct Feature {
    rects: Vec<HaarRect>,
}

#[derive(Clone, Copy, Debug)]
struct Node {
    left: i32,
    right: i32,
    feature: usize,
    threshold: f32,
}

#[derive(Clone, Debug)]
struct Weak {
    nodes: Vec<Node>,
    leaves: Vec<f32>,
}

#[derive(Clone, Debug)]
struct Stage {
    threshold: f32,
    weak: Vec<Weak>,
}

/// One rectangle of a feature: corner offsets from a window's base index, and its weight.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Corners {
    o: [usize; 4],
    weight: f32,
}

/// A one-split weak classifier with its feature's corners inline: the stage loop walks one
/// contiguous array instead of chasing a tree, a feature table and a leaf table per weak
/// classifier.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stump {
    corners: [Corners; 3],
    n: u8,
    threshold: f32,
    below: f32,
    above: f32,
}

/// A cascade's features laid out for integral tables of one row length.
pub(crate) struct Compiled {
    stride: usize,
    feats: Vec<([Corners; 3], u8)>,
    /// When every weak classifier is a stump (OpenCV's `default` and `alt` cascades):
    /// the stumps in stage order, and per stage (end index, threshold).
    stumps: Option<StumpStages>,
}

/// Every stump in stage order, and per stage its (end index, threshold).
type StumpStages = (Vec<Stump>, Vec<(usize, f32)>);

impl Compiled {
    /// The integral row length it was laid out for.
    pub(crate) fn stride(&self) -> usize {
        self.stride
    }
}

/// A loaded cascade.
#[derive(Clone, Debug)]
pub struct Cascade {
    /// Window width the cascade was trained on.
    pub width: u32,
    /// Window height.
    pub height: u32,
    stages: Vec<Stage>,
    features: Vec<Feature>,
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

impl Cascade {
    /// Reads an OpenCV cascade XML file.
    pub fn load(path: &Path) -> Result<Self, CascadeError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CascadeError::Io {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            CascadeError::Format { what, .. } => CascadeError::Format { path: p, what },
            CascadeError::Xml { source, .. } => CascadeError::Xml { path: p, source },
            other => other,
        })
    }

    /// Parses cascade XML text.
    pub fn parse(text: &str) -> Result<Self, CascadeError> {
        let fmt = |what: &str| CascadeError::Format {
            path: String::new(),
            what: what.to_string(),
        };
        let doc = roxmltree::Document::parse(text).map_err(|source| CascadeError::Xml {
            path: String::new(),
            source,
        })?;
        let cascade = doc
            .descendants()
            .find(|n| n.has_tag_name("cascade"))
            .ok_or_else(|| fmt("no <cascade> element"))?;
        if text_of(cascade, "stageType") != "BOOST" || text_of(cascade, "featureType") != "HAAR" {
            return Err(fmt("only BOOST cascades of HAAR features are supported"));
        }
        let num = |n: roxmltree::Node, name: &str| -> Result<u32, CascadeError> {
            text_of(n, name)
                .parse()
                .map_err(|_| fmt(&format!("<{name}> is not a number")))
        };
        let (width, height) = (num(cascade, "width")?, num(cascade, "height")?);
        let floats = |s: &str| -> Result<Vec<f32>, CascadeError> {
            s.split_whitespace()
                .map(|t| {
                    t.parse::<f32>()
                        .map_err(|_| fmt(&format!("bad number {t:?}")))
                })
                .collect()
        };
        let mut features = Vec::new();
        for f in items(child(cascade, "features").ok_or_else(|| fmt("no <features>"))?) {
            if text_of(f, "tilted") == "1" {
                return Err(fmt("tilted Haar features are not supported"));
            }
            let mut rects = Vec::new();
            for r in items(child(f, "rects").ok_or_else(|| fmt("feature without <rects>"))?) {
                let v = floats(r.text().unwrap_or(""))?;
                let [x, y, w, h, weight] = v[..] else {
                    return Err(fmt("a rect needs 5 numbers"));
                };
                if x < 0.0 || y < 0.0 || x + w > width as f32 || y + h > height as f32 {
                    return Err(fmt("a rect lies outside the window"));
                }
                rects.push(HaarRect {
                    x: x as usize,
                    y: y as usize,
                    w: w as usize,
                    h: h as usize,
                    weight,
                });
            }
            features.push(Feature { rects });
        }
        let mut stages = Vec::new();
        for s in items(child(cascade, "stages").ok_or_else(|| fmt("no <stages>"))?) {
            let threshold = floats(text_of(s, "stageThreshold"))?
                .first()
                .copied()
                .ok_or_else(|| fmt("stage without threshold"))?;
            let mut weak = Vec::new();
            for w in items(
                child(s, "weakClassifiers")
                    .ok_or_else(|| fmt("stage without <weakClassifiers>"))?,
            ) {
                let nodes_raw = floats(text_of(w, "internalNodes"))?;
                let leaves = floats(text_of(w, "leafValues"))?;
                if nodes_raw.is_empty() || nodes_raw.len() % 4 != 0 {
                    return Err(fmt("internalNodes must hold groups of 4 numbers"));
                }
                let nodes: Vec<Node> = nodes_raw
                    .chunks_exact(4)
                    .map(|c| Node {
                        left: c[0] as i32,
                        right: c[1] as i32,
                        feature: c[2] as usize,
                        threshold: c[3],
                    })
                    .collect();
                for n in &nodes {
                    let ok_child = |c: i32| {
                        if c > 0 {
                            (c as usize) < nodes.len()
                        } else {
                            ((-c) as usize) < leaves.len()
                        }
                    };
                    if n.feature >= features.len() || !ok_child(n.left) || !ok_child(n.right) {
                        return Err(fmt("a node refers to a missing feature, node or leaf"));
                    }
                }
                weak.push(Weak { nodes, leaves });
            }
            stages.push(Stage { threshold, weak });
        }
        if stages.is_empty() {
            return Err(fmt("the cascade has no stages"));
        }
        Ok(Self {
            width,
            height,
            stages,
            features,
        })
    }

    /// The cascade's rectangles as corner offsets into integral tables of row length
    /// `stride`: computed once per pyramid level, so a window's feature is four loads
    /// from its base index, with no per-rectangle address arithmetic.
    pub(crate) fn compile(&self, stride: usize) -> Compiled {
        let feats = self
            .features
            .iter()
            .map(|f| {
                let mut c = [Corners::default(); 3];
                for (k, r) in f.rects.iter().take(3).enumerate() {
                    let a = r.y * stride + r.x;
                    let b = (r.y + r.h) * stride + r.x;
                    c[k] = Corners {
                        o: [a, a + r.w, b, b + r.w],
                        weight: r.weight,
                    };
                }
                (c, f.rects.len().min(3) as u8)
            })
            .collect::<Vec<_>>();
        let all_stumps = self.stages.iter().flat_map(|s| &s.weak).all(|w| {
            w.nodes.len() == 1
                && w.nodes[0].left <= 0
                && w.nodes[0].right <= 0
                && w.leaves.len() > (-w.nodes[0].left).max(-w.nodes[0].right) as usize
        });
        let stumps = all_stumps.then(|| {
            let mut list = Vec::new();
            let mut stages = Vec::with_capacity(self.stages.len());
            for stage in &self.stages {
                for w in &stage.weak {
                    let node = &w.nodes[0];
                    let (corners, n) = feats[node.feature];
                    list.push(Stump {
                        corners,
                        n,
                        threshold: node.threshold,
                        below: w.leaves[(-node.left) as usize],
                        above: w.leaves[(-node.right) as usize],
                    });
                }
                stages.push((list.len(), stage.threshold));
            }
            (list, stages)
        });
        Compiled {
            stride,
            feats,
            stumps,
        }
    }

    /// What the cascade says of the window at `(x, y)` of the integral image; `c` is this
    /// cascade compiled for the integral's stride.
    pub(crate) fn classify(&self, c: &Compiled, ii: &Integral, x: u32, y: u32) -> Window {
        debug_assert_eq!(c.stride, ii.stride);
        let (x, y) = (x as usize, y as usize);
        let (w, h) = (self.width as usize, self.height as usize);
        // Variance normalisation over the window less a 1-pixel border (OpenCV's normrect).
        let area = ((w - 2) * (h - 2)) as f64;
        let s = ii.rect(x + 1, y + 1, w - 2, h - 2) as f64;
        let sq = ii.rect_sq(x + 1, y + 1, w - 2, h - 2) as f64;
        let nf = area * sq - s * s;
        if nf <= 0.0 {
            return Window::Flat;
        }
        let norm = 1.0 / nf.sqrt();
        // Nearly flat windows (std dev <= 10) are skipped, as OpenCV does.
        if area * norm >= 0.1 {
            return Window::Flat;
        }
        let norm = norm as f32;
        let base = y * c.stride + x;
        let table = &ii.sum[base..];
        let rect = |k: &Corners| {
            // Exact in wrapping u32: the true sum is non-negative and below 2^32.
            let [a, b, cc, d] = k.o;
            table[d]
                .wrapping_sub(table[b])
                .wrapping_sub(table[cc])
                .wrapping_add(table[a]) as f32
        };
        if let Some((list, stages)) = &c.stumps {
            let mut start = 0;
            for (si, &(end, threshold)) in stages.iter().enumerate() {
                let mut sum = 0f32;
                for st in &list[start..end] {
                    let mut v = 0f32;
                    for k in &st.corners[..st.n as usize] {
                        v += k.weight * rect(k);
                    }
                    sum += if v * norm < st.threshold {
                        st.below
                    } else {
                        st.above
                    };
                }
                if sum < threshold {
                    return Window::Rejected { stage: si };
                }
                start = end;
            }
            return Window::Face;
        }
        for (si, stage) in self.stages.iter().enumerate() {
            let mut sum = 0f32;
            for weak in &stage.weak {
                let mut idx = 0i32;
                loop {
                    let node = &weak.nodes[idx as usize];
                    let (corners, n) = &c.feats[node.feature];
                    let mut v = 0f32;
                    for k in &corners[..*n as usize] {
                        v += k.weight * rect(k);
                    }
                    idx = if v * norm < node.threshold {
                        node.left
                    } else {
                        node.right
                    };
                    if idx <= 0 {
                        break;
                    }
                }
                sum += weak.leaves[(-idx) as usize];
            }
            if sum < stage.threshold {
                return Window::Rejected { stage: si };
            }
        }
        Window::Face
    }

    /// Stages in the cascade.
    pub fn stages(&self) -> usize {
        self.stages.len()
    }
}

/// The cascade's verdict on one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Window {
    /// Too flat to judge (standard deviation <= 10 grey levels): skipped, as OpenCV does.
    Flat,
    /// Rejected by this stage (0-based).
    Rejected { stage: usize },
    /// Passed every stage.
    Face,
}
