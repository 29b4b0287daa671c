//! A face as the pipeline reports it: where it is, what it shows, how sure the model is.

use emoedge_core::preprocess::FaceBox;
use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};
use std::sync::Arc;

/// A model's class names in output order, shared by every face the pipeline reports.
pub type Labels = Arc<[String]>;

/// One face in a frame. Its label is an index into the model's class names until it is
/// written out as JSON:
/// `{"box":[x,y,w,h],"label":"happy","probs":{"angry":0.01,…},"track":3}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Face {
    /// The detector's box, in frame pixels.
    pub bbox: FaceBox,
    /// Index of the label in `labels` (on video, smoothed over the track's last frames).
    pub class: usize,
    /// Probability per class in this frame, in `labels` order.
    pub probs: Vec<f32>,
    /// Track id (video only).
    pub track: Option<u32>,
    /// The model's class names.
    pub labels: Labels,
}

impl Face {
    /// The label's name.
    pub fn label(&self) -> &str {
        emoedge_core::labels::name_of(&self.labels, self.class)
    }

    /// This frame's probability of the face's label.
    pub fn label_probability(&self) -> f32 {
        self.probs.get(self.class).copied().unwrap_or(0.0)
    }
}

/// The probabilities as a map from class name to probability, in the model's order.
struct Probs<'a>(&'a Face);

impl Serialize for Probs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.probs.len()))?;
        for (name, p) in self.0.labels.iter().zip(&self.0.probs) {
            m.serialize_entry(name, p)?;
        }
        m.end()
    }
}

impl Serialize for Face {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields = if self.track.is_some() { 4 } else { 3 };
        let mut st = s.serialize_struct("Face", fields)?;
        st.serialize_field("box", &self.bbox)?;
        st.serialize_field("label", self.label())?;
        st.serialize_field("probs", &Probs(self))?;
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
        use emoedge_core::Emotion;
        let mut probs = vec![0.0; 7];
        probs[Emotion::Happy.index()] = 0.75;
        probs[Emotion::Sad.index()] = 0.25;
        let labels: Labels = emoedge_core::labels::EMOTIONS.map(String::from).into();
        let face = Face {
            bbox: FaceBox::new(-3, 4, 50, 60),
            class: Emotion::Happy.index(),
            probs,
            track: Some(2),
            labels,
        };
        assert_eq!(
            serde_json::to_string(&face).unwrap(),
            r#"{"box":[-3,4,50,60],"label":"happy","probs":{"angry":0.0,"disgusted":0.0,"fearful":0.0,"happy":0.75,"neutral":0.0,"sad":0.25,"surprised":0.0},"track":2}"#
        );
        let still = Face {
            track: None,
            ..face.clone()
        };
        assert!(!serde_json::to_string(&still).unwrap().contains("track"));
        assert_eq!(face.label_probability(), 0.75);
        // A model's own classes name the label and the probabilities.
        let smile = Face {
            class: 1,
            probs: vec![0.25, 0.75],
            track: None,
            labels: ["no_smile".to_string(), "smile".to_string()].into(),
            ..face
        };
        assert_eq!(
            serde_json::to_string(&smile).unwrap(),
            r#"{"box":[-3,4,50,60],"label":"smile","probs":{"no_smile":0.25,"smile":0.75}}"#
        );
    }
}
