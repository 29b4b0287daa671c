//! The seven emotion classes (the labels a model has unless it names its own, see
//! [`crate::labels`]), argmax and a small temporal smoother for video.

use crate::labels::MAX_CLASSES;
use heapless::HistoryBuf;

/// An emotion class. The discriminant is the model's output index, and the order is the
/// alphabetical order of the FER2013 folder names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Emotion {
    /// `angry`
    Angry = 0,
    /// `disgusted`
    Disgusted = 1,
    /// `fearful`
    Fearful = 2,
    /// `happy`
    Happy = 3,
    /// `neutral`
    Neutral = 4,
    /// `sad`
    Sad = 5,
    /// `surprised`
    Surprised = 6,
}

impl Emotion {
    /// Number of emotions.
    pub const COUNT: usize = 7;

    /// Every class, in output-index order.
    pub const ALL: [Emotion; Self::COUNT] = [
        Self::Angry,
        Self::Disgusted,
        Self::Fearful,
        Self::Happy,
        Self::Neutral,
        Self::Sad,
        Self::Surprised,
    ];

    /// The folder name used by the dataset and printed by every tool.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Angry => "angry",
            Self::Disgusted => "disgusted",
            Self::Fearful => "fearful",
            Self::Happy => "happy",
            Self::Neutral => "neutral",
            Self::Sad => "sad",
            Self::Surprised => "surprised",
        }
    }

    /// The output index of this class.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The class at output index `i`.
    pub fn from_index(i: usize) -> Option<Self> {
        Self::ALL.get(i).copied()
    }

    /// The class whose folder name is `name` (exact, lowercase).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|e| e.name() == name)
    }
}

impl core::fmt::Display for Emotion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Index of the largest value; the first one wins a tie (as `numpy.argmax` and tract do).
/// `None` for an empty slice.
pub fn argmax<T: PartialOrd + Copy>(values: &[T]) -> Option<usize> {
    let mut best: Option<(usize, T)> = None;
    for (i, &v) in values.iter().enumerate() {
        match best {
            Some((_, b)) if v.partial_cmp(&b) != Some(core::cmp::Ordering::Greater) => {}
            _ => best = Some((i, v)),
        }
    }
    best.map(|(i, _)| i)
}

/// Smooths int8 logits over the last `N` frames of one tracked face by summing them, so a
/// single odd frame does not flip the label. Integer only. Frames are held as `i16` so that
/// a frame's score may itself be a sum of int8 logits (a face and its mirror,
/// [`crate::preprocess::sum_logits`]) without losing range. A model has at most
/// [`MAX_CLASSES`] classes, so each frame is held in a fixed array of that many.
#[derive(Debug, Default)]
pub struct Smoother<const N: usize> {
    history: HistoryBuf<[i16; MAX_CLASSES], N>,
}

impl<const N: usize> Smoother<N> {
    /// An empty smoother.
    pub const fn new() -> Self {
        Self {
            history: HistoryBuf::new(),
        }
    }

    /// Adds one frame's scores (int8 logits, or sums of them as `i16`, one per class) and
    /// returns the index of the smoothed label. Every frame pushed to one smoother must come
    /// from one model and be on one scale; scores past [`MAX_CLASSES`] are ignored.
    pub fn push<T: Copy + Into<i16>>(&mut self, scores: &[T]) -> usize {
        let classes = scores.len().min(MAX_CLASSES);
        let mut frame = [0i16; MAX_CLASSES];
        for (f, &s) in frame.iter_mut().zip(scores) {
            *f = s.into();
        }
        self.history.write(frame);
        let mut sum = [0i32; MAX_CLASSES];
        for frame in self.history.oldest_ordered() {
            for (s, &l) in sum.iter_mut().zip(frame) {
                *s += l as i32;
            }
        }
        argmax(&sum[..classes]).unwrap_or(0)
    }

    /// Frames currently held.
    pub fn len(&self) -> usize {
        self.history.len()
    }

    /// Whether no frame was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.history.is_empty()
    }
}

/// Softmax of float logits, computed stably (the largest logit is subtracted first). Needs
/// `std` for `exp`; the Pi runtime's probabilities and the trainer's teachers both use it.
#[cfg(feature = "std")]
pub fn softmax(z: &[f32]) -> std::vec::Vec<f32> {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: std::vec::Vec<f32> = z.iter().map(|v| (v - max).exp()).collect();
    let total: f32 = e.iter().sum();
    e.into_iter().map(|v| v / total).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "std")]
    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1.0, 3.0, -2.0, 0.0, 50.0, 2.0, 1.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(argmax(&p), Some(4));
        assert!(p[1] > p[5] && p[5] > p[0]);
    }

    #[test]
    fn names_round_trip_in_folder_order() {
        let names: Vec<_> = Emotion::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(
            names,
            [
                "angry",
                "disgusted",
                "fearful",
                "happy",
                "neutral",
                "sad",
                "surprised"
            ]
        );
        for (i, e) in Emotion::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert_eq!(Emotion::from_index(i), Some(*e));
            assert_eq!(Emotion::from_name(e.name()), Some(*e));
        }
        assert_eq!(Emotion::from_index(7), None);
        assert_eq!(Emotion::from_name("Happy"), None);
    }

    #[test]
    fn argmax_takes_first_of_ties() {
        assert_eq!(argmax(&[1i8, 5, 5, -3]), Some(1));
        assert_eq!(argmax(&[-128i8]), Some(0));
        assert_eq!(argmax::<i8>(&[]), None);
        assert_eq!(argmax(&[0.5f32, f32::NAN, 0.7]), Some(2));
    }

    #[test]
    fn smoother_ignores_a_single_odd_frame() {
        let mut s = Smoother::<4>::new();
        let (h, sd) = (Emotion::Happy.index(), Emotion::Sad.index());
        let happy = [0i8, 0, 0, 50, 0, 0, 0];
        let sad = [0i8, 0, 0, 0, 0, 60, 0];
        assert_eq!(s.push(&happy), h);
        assert_eq!(s.push(&happy), h);
        assert_eq!(s.push(&sad), h);
        assert_eq!(s.push(&sad), sd);
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn smoother_takes_flip_sums_beyond_int8() {
        let mut s = Smoother::<2>::new();
        // Two views at the int8 maximum each: 254, beyond i8, must not wrap.
        assert_eq!(s.push(&[0i16, 0, 0, 254, 0, 0, -256]), 3);
        assert_eq!(s.push(&[0i16, 0, 0, 0, 0, 250, 0]), 3);
        assert_eq!(s.push(&[0i16, 0, 0, 0, 0, 250, 0]), 5);
    }

    #[test]
    fn smoother_takes_any_class_count() {
        // Three classes: the zeros past them must not win a tie against a negative score.
        let mut s = Smoother::<2>::new();
        assert_eq!(s.push(&[-5i8, -3, -9]), 1);
        assert_eq!(s.push(&[-5i8, -30, -9]), 0);
    }
}
