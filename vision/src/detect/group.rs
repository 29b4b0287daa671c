//! `groupRectangles` in integers: cluster similar boxes, keep clusters with more than
//! `min_neighbors` members as their average box, drop small boxes inside a stronger big one.
//! OpenCV's `eps` is fixed at its `detectMultiScale` value, 0.2.

use super::scan::Hits;
use emoedge_core::preprocess::FaceBox;

/// Per raw detection: its cluster's parent, and the cluster's summed box and member count.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cluster {
    parent: u16,
    sum: [i32; 4],
    count: u32,
}

impl Cluster {
    /// An unused entry (for static arrays).
    pub const EMPTY: Cluster = Cluster {
        parent: 0,
        sum: [0; 4],
        count: 0,
    };
}

/// Largest number of raw detections one grouping takes (parents are `u16`).
pub const MAX_RAW: usize = u16::MAX as usize;

/// Two boxes are similar when every edge is within `eps · (mean of the smaller sides)`:
/// `|Δ| ≤ 0.1 · (min w + min h)`.
fn similar(a: &FaceBox, b: &FaceBox) -> bool {
    let delta10 = (a.w.min(b.w) + a.h.min(b.h)) as i64;
    let near = |d: i32| (d as i64).abs() * 10 <= delta10;
    near(a.x - b.x)
        && near(a.y - b.y)
        && near(a.right() - b.right())
        && near(a.bottom() - b.bottom())
}

fn find(c: &mut [Cluster], mut i: usize) -> usize {
    while c[i].parent as usize != i {
        let up = c[c[i].parent as usize].parent;
        c[i].parent = up;
        i = up as usize;
    }
    i
}

/// `v / n` rounded half away from zero, as `f64::round` does.
fn div_round(v: i32, n: u32) -> i32 {
    let (v, n) = (v as i64, n as i64);
    let q = (2 * v.abs() + n) / (2 * n);
    (if v < 0 { -q } else { q }) as i32
}

/// Groups raw detections as OpenCV's `groupRectangles(rects, min_neighbors, 0.2)` does,
/// pushing the kept boxes to `out`. `clusters` needs one entry per raw detection; only the
/// first `min(clusters.len(), MAX_RAW)` detections are grouped.
pub fn group_rectangles(
    raw: &[FaceBox],
    min_neighbors: u32,
    clusters: &mut [Cluster],
    out: &mut impl Hits,
) {
    let n = raw.len().min(clusters.len()).min(MAX_RAW);
    let (raw, c) = (&raw[..n], &mut clusters[..n]);
    for (i, cl) in c.iter_mut().enumerate() {
        *cl = Cluster {
            parent: i as u16,
            ..Cluster::default()
        };
    }
    for i in 0..n {
        for j in 0..i {
            if similar(&raw[i], &raw[j]) {
                let (a, b) = (find(c, i), find(c, j));
                c[a].parent = b as u16;
            }
        }
    }
    for (i, r) in raw.iter().enumerate() {
        let root = find(c, i);
        let s = &mut c[root];
        s.sum[0] += r.x;
        s.sum[1] += r.y;
        s.sum[2] += r.w as i32;
        s.sum[3] += r.h as i32;
        s.count += 1;
    }
    // Clusters in order of their root, compacted to the front: (average box, members).
    let mut k = 0;
    for i in 0..n {
        if c[i].count > 0 {
            let (sum, count) = (c[i].sum, c[i].count);
            let avg = sum.map(|v| div_round(v, count));
            c[k].sum = avg;
            c[k].count = count;
            k += 1;
        }
    }
    let avg = |cl: &Cluster| {
        let s = cl.sum;
        (FaceBox::new(s[0], s[1], s[2] as u32, s[3] as u32), cl.count)
    };
    for i in 0..k {
        let (r1, n1) = avg(&c[i]);
        if n1 <= min_neighbors {
            continue;
        }
        let inside = (0..k).any(|j| {
            let (r2, n2) = avg(&c[j]);
            if j == i || n2 <= min_neighbors {
                return false;
            }
            // round(0.2 · side)
            let (dx, dy) = (((2 * r2.w + 5) / 10) as i32, ((2 * r2.h + 5) / 10) as i32);
            r1.x >= r2.x - dx
                && r1.y >= r2.y - dy
                && r1.right() <= r2.right() + dx
                && r1.bottom() <= r2.bottom() + dy
                && (n2 > n1.max(3) || n1 < 3)
        });
        if !inside {
            out.push(r1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_average_and_threshold() {
        let r = |x, y, s| FaceBox::new(x, y, s, s);
        let rects = [
            r(100, 100, 50),
            r(102, 101, 50),
            r(99, 98, 52),
            r(300, 300, 40),
        ];
        let mut c = [Cluster::default(); 4];
        let mut g = Vec::new();
        group_rectangles(&rects, 2, &mut c, &mut g);
        assert_eq!(g, vec![r(100, 100, 51)]);
        let mut g = Vec::new();
        group_rectangles(&rects, 3, &mut c, &mut g);
        assert!(g.is_empty());
    }

    #[test]
    fn a_small_box_inside_a_stronger_one_is_dropped() {
        let r = |x, y, s| FaceBox::new(x, y, s, s);
        let mut rects = vec![r(100, 100, 100); 6];
        rects.extend([r(130, 130, 30); 2]);
        let mut c = vec![Cluster::default(); rects.len()];
        let mut g = Vec::new();
        group_rectangles(&rects, 1, &mut c, &mut g);
        assert_eq!(g, vec![r(100, 100, 100)]);
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(div_round(5, 2), 3);
        assert_eq!(div_round(-5, 2), -3);
        assert_eq!(div_round(4, 3), 1);
    }
}
