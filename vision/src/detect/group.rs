//! `groupRectangles`: cluster similar boxes, keep clusters with more than `min_neighbors`
//! members as their average box, drop small boxes inside a stronger big one.

use emoedge_core::preprocess::FaceBox;

fn similar(a: &FaceBox, b: &FaceBox, eps: f64) -> bool {
    let delta = eps * (a.w.min(b.w) + a.h.min(b.h)) as f64 * 0.5;
    ((a.x - b.x).abs() as f64) <= delta
        && ((a.y - b.y).abs() as f64) <= delta
        && ((a.right() - b.right()).abs() as f64) <= delta
        && ((a.bottom() - b.bottom()).abs() as f64) <= delta
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Groups raw detections as OpenCV's `groupRectangles(rects, min_neighbors, eps)` does.
pub fn group_rectangles(rects: &[FaceBox], min_neighbors: usize, eps: f64) -> Vec<FaceBox> {
    let n = rects.len();
    let mut parent: Vec<usize> = (0..n).collect();
    for i in 0..n {
        for j in 0..i {
            if similar(&rects[i], &rects[j], eps) {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    // Sum boxes per cluster.
    let mut sums: std::collections::BTreeMap<usize, ([i64; 4], usize)> = Default::default();
    for (i, r) in rects.iter().enumerate() {
        let root = find(&mut parent, i);
        let e = sums.entry(root).or_default();
        e.0[0] += r.x as i64;
        e.0[1] += r.y as i64;
        e.0[2] += r.w as i64;
        e.0[3] += r.h as i64;
        e.1 += 1;
    }
    let avg: Vec<(FaceBox, usize)> = sums
        .values()
        .map(|(s, c)| {
            let k = 1.0 / *c as f64;
            let r = |v: i64| (v as f64 * k).round() as i32;
            (
                FaceBox::new(r(s[0]), r(s[1]), r(s[2]) as u32, r(s[3]) as u32),
                *c,
            )
        })
        .collect();
    let mut out = Vec::new();
    for (i, &(r1, n1)) in avg.iter().enumerate() {
        if n1 <= min_neighbors {
            continue;
        }
        let inside = avg.iter().enumerate().any(|(j, &(r2, n2))| {
            if j == i || n2 <= min_neighbors {
                return false;
            }
            let (dx, dy) = (
                (r2.w as f64 * eps).round() as i32,
                (r2.h as f64 * eps).round() as i32,
            );
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
    out
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
        let g = group_rectangles(&rects, 2, 0.2);
        assert_eq!(g, vec![r(100, 100, 51)]);
        assert!(group_rectangles(&rects, 3, 0.2).is_empty());
    }
}
