//! The `detect:` section as written: the serde structs of every detector's parameters,
//! before validation (`super` compiles them into a `DetectKind`, reporting each bad value at
//! its location). Unknown keys are errors.

use serde::Deserialize;

/// `baseline:` of a statistical detector: values to learn online, or a file of baselines
/// learned from a healthy recording (`weir learn`; module `learned`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawBaseline {
    Values(u64),
    File(String),
}

/// `detect:`: exactly one detector, and optionally the `value` a windowed rule feeds it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDetect {
    #[serde(default)]
    pub(super) threshold: Option<RawThreshold>,
    #[serde(default)]
    pub(super) zscore: Option<RawZ>,
    #[serde(default)]
    pub(super) robust_zscore: Option<RawRobust>,
    #[serde(default)]
    pub(super) ewma_chart: Option<RawEwma>,
    #[serde(default)]
    pub(super) cusum: Option<RawCusum>,
    #[serde(default)]
    pub(super) rate: Option<RawRate>,
    #[serde(default)]
    pub(super) flatline: Option<RawFlat>,
    #[serde(default)]
    pub(super) range: Option<RawRange>,
    /// `missing: 30s`.
    #[serde(default)]
    pub(super) missing: Option<String>,
    #[serde(default)]
    pub(super) runtime: Option<RawRuntime>,
    pub(super) trend: Option<RawTrend>,
    #[serde(default)]
    pub(super) changepoint: Option<RawChangepoint>,
    /// Several metrics of one device, jointly (`group_by: device`).
    #[serde(default)]
    pub(super) multivariate: Option<crate::detect::multivariate::spec::RawMultivariate>,
    #[serde(default)]
    pub(super) novelty: Option<crate::detect::novelty::RawSpec>,
    /// An expression over the window's aggregates (default `mean`); windowed rules only.
    #[serde(default)]
    pub value: Option<String>,
}

impl RawDetect {
    /// The baseline file a statistical detector references, with the path to its key.
    pub fn baseline_file(&self) -> Option<(&str, [&'static str; 3])> {
        fn file<'a>(
            b: &'a Option<RawBaseline>,
            family: &'static str,
        ) -> Option<(&'a str, [&'static str; 3])> {
            match b {
                Some(RawBaseline::File(f)) => Some((f.as_str(), ["detect", family, "baseline"])),
                _ => None,
            }
        }
        self.zscore
            .as_ref()
            .and_then(|z| file(&z.baseline, "zscore"))
            .or_else(|| {
                self.ewma_chart
                    .as_ref()
                    .and_then(|e| file(&e.baseline, "ewma_chart"))
            })
            .or_else(|| self.cusum.as_ref().and_then(|c| file(&c.baseline, "cusum")))
            .or_else(|| {
                self.changepoint
                    .as_ref()
                    .and_then(|c| file(&c.baseline, "changepoint"))
            })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRuntime {
    pub(super) running_above: f64,
    #[serde(default)]
    pub(super) max_gap: Option<String>,
    #[serde(default)]
    pub(super) hours: Option<f64>,
    #[serde(default)]
    pub(super) starts: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawThreshold {
    pub(super) raise: f64,
    #[serde(default)]
    pub(super) clear: Option<f64>,
    #[serde(default, rename = "for")]
    pub(super) hold: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZ {
    #[serde(default)]
    pub(super) z: Option<f64>,
    #[serde(default)]
    pub(super) baseline: Option<RawBaseline>,
    #[serde(default)]
    pub(super) learn: Option<String>,
    /// Noise floor: the smallest σ, in the sensor's units.
    #[serde(default)]
    pub(super) min_sigma: Option<f64>,
    /// Noise floor: the sensor's step; σ is at least `resolution / √12`.
    #[serde(default)]
    pub(super) resolution: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRobust {
    #[serde(default)]
    pub(super) z: Option<f64>,
    #[serde(default)]
    pub(super) window: Option<u64>,
    #[serde(default)]
    pub(super) learn: Option<String>,
    /// Noise floor: the smallest σ, in the sensor's units.
    #[serde(default)]
    pub(super) min_sigma: Option<f64>,
    /// Noise floor: the sensor's step; σ is at least `resolution / √12`.
    #[serde(default)]
    pub(super) resolution: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEwma {
    #[serde(default)]
    pub(super) lambda: Option<f64>,
    #[serde(default)]
    pub(super) limit: Option<f64>,
    #[serde(default)]
    pub(super) baseline: Option<RawBaseline>,
    #[serde(default)]
    pub(super) learn: Option<String>,
    /// Noise floor: the smallest σ, in the sensor's units.
    #[serde(default)]
    pub(super) min_sigma: Option<f64>,
    /// Noise floor: the sensor's step; σ is at least `resolution / √12`.
    #[serde(default)]
    pub(super) resolution: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCusum {
    #[serde(default)]
    pub(super) k: Option<f64>,
    #[serde(default)]
    pub(super) h: Option<f64>,
    #[serde(default)]
    pub(super) baseline: Option<RawBaseline>,
    #[serde(default)]
    pub(super) learn: Option<String>,
    /// Noise floor: the smallest σ, in the sensor's units.
    #[serde(default)]
    pub(super) min_sigma: Option<f64>,
    /// Noise floor: the sensor's step; σ is at least `resolution / √12`.
    #[serde(default)]
    pub(super) resolution: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChangepoint {
    /// The smallest shift worth reporting, in σ.
    #[serde(default)]
    pub(super) shift: Option<f64>,
    #[serde(default)]
    pub(super) h: Option<f64>,
    #[serde(default)]
    pub(super) baseline: Option<RawBaseline>,
    #[serde(default)]
    pub(super) min_sigma: Option<f64>,
    #[serde(default)]
    pub(super) resolution: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRate {
    pub(super) max: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlat {
    #[serde(rename = "for")]
    pub(super) hold: String,
    #[serde(default)]
    pub(super) epsilon: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrend {
    #[serde(default)]
    pub(super) above: Option<f64>,
    #[serde(default)]
    pub(super) below: Option<f64>,
    pub(super) over: String,
    pub(super) horizon: String,
    #[serde(default)]
    pub(super) points: Option<u64>,
    #[serde(default)]
    pub(super) min_r2: Option<f64>,
    /// `line` (default), `quadratic` or `exponential`.
    #[serde(default)]
    pub(super) model: Option<String>,
    #[serde(default)]
    pub(super) min_points: Option<u64>,
    /// `estimate` (default), `early` or `late`: the time the alert compares with `horizon`.
    #[serde(default)]
    pub(super) act_on: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRange {
    #[serde(default)]
    pub(super) min: Option<f64>,
    #[serde(default)]
    pub(super) max: Option<f64>,
}
