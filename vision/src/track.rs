//! Faces followed from frame to frame on video, each with its label smoothed over time.

use emoedge_core::emotion::Smoother;
use emoedge_core::preprocess::FaceBox;

/// Overlap a box needs with a track's last box to continue it.
const MIN_IOU: f64 = 0.3;

/// Frames a track's label is smoothed over.
const SMOOTHED_FRAMES: usize = 5;

struct Track {
    id: u32,
    bbox: FaceBox,
    smoother: Smoother<SMOOTHED_FRAMES>,
}

/// The faces being followed. Per frame: [`Tracker::follow`] for each face found, then
/// [`Tracker::keep_seen`], which ends the tracks no face continued.
#[derive(Default)]
pub struct Tracker {
    tracks: Vec<Track>,
    next_id: u32,
    seen: Vec<u32>,
}

impl Tracker {
    /// The tracked faces' last boxes.
    pub fn boxes(&self) -> impl Iterator<Item = FaceBox> + '_ {
        self.tracks.iter().map(|t| t.bbox)
    }

    /// Continues the track the box overlaps most (IoU at least 0.3) or starts one; returns
    /// the track's id and its label (a class index) smoothed over its last frames.
    pub fn follow(&mut self, bbox: FaceBox, score: &[i16]) -> (u32, usize) {
        let best = self
            .tracks
            .iter_mut()
            .map(|t| (t.bbox.iou(&bbox), t))
            .filter(|(iou, _)| *iou >= MIN_IOU)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, t)| t);
        let t = match best {
            Some(t) => t,
            None => {
                self.tracks.push(Track {
                    id: self.next_id,
                    bbox,
                    smoother: Smoother::new(),
                });
                self.next_id += 1;
                self.tracks.last_mut().expect("just pushed")
            }
        };
        t.bbox = bbox;
        self.seen.push(t.id);
        (t.id, t.smoother.push(score))
    }

    /// Ends every track no face continued since the last call.
    pub fn keep_seen(&mut self) {
        let seen = &self.seen;
        self.tracks.retain(|t| seen.contains(&t.id));
        self.seen.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moving_face_keeps_its_id_and_a_lost_one_ends() {
        let mut t = Tracker::default();
        let happy = [0, 0, 0, 50, 0, 0, 0];
        let (a, label) = t.follow(FaceBox::new(10, 10, 40, 40), &happy);
        let (b, _) = t.follow(FaceBox::new(200, 10, 40, 40), &happy);
        t.keep_seen();
        assert_eq!((a, b, label), (0, 1, emoedge_core::Emotion::Happy.index()));
        // The first face moves a little; the second is gone.
        assert_eq!(t.follow(FaceBox::new(14, 12, 40, 40), &happy).0, 0);
        t.keep_seen();
        assert_eq!(
            t.boxes().collect::<Vec<_>>(),
            [FaceBox::new(14, 12, 40, 40)]
        );
        // A face where the second was starts a new track.
        assert_eq!(t.follow(FaceBox::new(200, 10, 40, 40), &happy).0, 2);
    }
}
