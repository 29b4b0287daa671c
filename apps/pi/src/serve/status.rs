//! `/api/status`: what runs and how fast.

use emoedge_runtime::ModelDir;
use serde::Serialize;

/// The model being served.
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    /// The model folder's name.
    pub name: String,
    /// SHA-256 of the int8 weights, as in the blob and `quant.json`.
    pub weights_hash: String,
    /// The runtime classifying faces (`engine` or `tract`).
    pub runtime: String,
    /// Accuracy on FER2013 `test` of the int8 model on this runtime, as its model card
    /// (`MODEL.md` in the folder or beside it) states; `None` without a card.
    pub test_accuracy: Option<String>,
    /// The model's class names, in output order.
    pub labels: Vec<String>,
}

impl ModelInfo {
    /// Describes the model in `dir`, whose blob has `weights_hash` and `labels`.
    pub fn new(dir: &ModelDir, weights_hash: &[u8; 32], labels: &[String], runtime: &str) -> Self {
        let name = dir
            .path()
            .canonicalize()
            .unwrap_or_else(|_| dir.path().to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let card = [dir.path().join("MODEL.md"), dir.path().join("../MODEL.md")]
            .into_iter()
            .find_map(|p| std::fs::read_to_string(p).ok());
        Self {
            name,
            weights_hash: weights_hash.iter().map(|b| format!("{b:02x}")).collect(),
            runtime: runtime.into(),
            test_accuracy: card.and_then(|c| card_accuracy(&c, runtime)),
            labels: labels.to_vec(),
        }
    }
}

/// The int8 accuracy a model card's table gives for `runtime`: the first percentage of the
/// row whose first cell starts with `int8` and names the runtime.
fn card_accuracy(card: &str, runtime: &str) -> Option<String> {
    card.lines()
        .filter_map(|l| l.strip_prefix('|'))
        .find(|l| {
            let first = l.split('|').next().unwrap_or("").trim();
            first.starts_with("int8") && first.contains(runtime)
        })?
        .split('|')
        .skip(1)
        .find_map(|cell| {
            let v = cell.trim().trim_matches('*');
            let n = v.strip_suffix('%')?;
            n.parse::<f64>().is_ok().then(|| v.to_string())
        })
}

/// The body of `/api/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The model.
    pub model: ModelInfo,
    /// The frame source.
    pub source: String,
    /// Seconds since the server started.
    pub uptime_s: f64,
    /// Frames per second the pipeline runs at.
    pub fps: f64,
    /// Clients connected now.
    pub clients: Clients,
}

/// Connected clients per endpoint.
#[derive(Debug, Serialize)]
pub struct Clients {
    /// On `/stream.mjpg`.
    pub stream: usize,
    /// On `/events`.
    pub events: usize,
}

#[cfg(test)]
mod tests {
    use super::card_accuracy;

    #[test]
    fn reads_the_runtime_row_of_the_card() {
        let card = "| form | accuracy | runs on |\n|---|---|---|\n\
                    | float (Burn) | 68.32% | host |\n\
                    | int8, tract | **68.49%** | any |\n\
                    | int8, `emoedge-core` engine | **68.50%** | pi |\n";
        assert_eq!(card_accuracy(card, "tract").as_deref(), Some("68.49%"));
        assert_eq!(card_accuracy(card, "engine").as_deref(), Some("68.50%"));
        assert_eq!(card_accuracy("no table", "engine"), None);
    }
}
