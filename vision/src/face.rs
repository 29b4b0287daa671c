//! A face as the pipeline reports it: where it is, what it shows, how sure the model is.

use emoedge_core::preprocess::FaceBox;
use emoedge_core::{Emotion, NUM_CLASSES};
use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};

/// One face in a frame. Typed through the whole pipeline; labels become names only when it
/// is written out as JSON:
/// `{"box":[x,y,w,h],"label":"happy","probs":{"angry":0.01,…},"track":3}`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Face {
    /// The detector's box, in frame pixels.
    pub bbox: FaceBox,
    /// The emotion (on video, smoothed over the track's last frames).
    pub label: Emotion,
    /// Probability per emotion in this frame, indexed by [`Emotion::index`].
    pub probs: [f32; NUM_CLASSES],
    /// Track id (video only).
    pub track: Option<u32>,
}

impl Face {
    /// This frame's probability of the face's label.
    pub fn label_probability(&self) -> f32 {
        self.probs[self.label.index()]
    }
}

/// The probabilities as a map from emotion name to probability, in [`Emotion::ALL`] order.
struct Probs<'a>(&'a [f32; NUM_CLASSES]);

impl Serialize for Probs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(NUM_CLASSES))?;
        for e in Emotion::ALL {
            m.serialize_entry(e.name(), &self.0[e.index()])?;
        }
        m.end()
    }
}

impl Serialize for Face {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields = if self.track.is_some() { 4 } else { 3 };
        let mut st = s.serialize_struct("Face", fields)?;
        st.serialize_field("box", &self.bbox)?;
        st.serialize_field("label", self.label.name())?;
        st.serialize_field("probs", &Probs(&self.probs))?;
        if let Some(id) = self.track {
            st.serialize_field("track", &id)?;
        } else {
            st.skip_field("track")?;
        }
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_the_label_and_each_probability() {
        let mut probs = [0.0; NUM_CLASSES];
        probs[Emotion::Happy.index()] = 0.75;
        probs[Emotion::Sad.index()] = 0.25;
        let face = Face {
            bbox: FaceBox::new(-3, 4, 50, 60),
            label: Emotion::Happy,
            probs,
            track: Some(2),
        };
        assert_eq!(
            serde_json::to_string(&face).unwrap(),
            r#"{"box":[-3,4,50,60],"label":"happy","probs":{"angry":0.0,"disgusted":0.0,"fearful":0.0,"happy":0.75,"neutral":0.0,"sad":0.25,"surprised":0.0},"track":2}"#
        );
        let still = Face {
            track: None,
            ..face
        };
        assert!(!serde_json::to_string(&still).unwrap().contains("track"));
        assert_eq!(face.label_probability(), 0.75);
    }
}
