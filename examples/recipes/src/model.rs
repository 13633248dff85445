//! A softmax (multinomial logistic regression) classifier over sparse features, trained by
//! stochastic gradient descent; saved as a folder of `model.json` (classes, sizes, metrics)
//! and `weights.f32` (little-endian floats), which is what the registry versions.
//!
//! Hand-written: it is forty lines, and a linear model over hashed n-grams is all the demo
//! needs; a project with more data swaps in its own trainer (see the Python version).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::features::DIMS;

/// What `model.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub classes: Vec<String>,
    pub dims: usize,
    pub features: String,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub meta: Meta,
    /// `classes × dims` weights, then one bias per class.
    pub weights: Vec<f32>,
}

impl Model {
    pub fn new(classes: Vec<String>) -> Model {
        let k = classes.len();
        Model {
            meta: Meta {
                classes,
                dims: DIMS,
                features:
                    "char 1-3-grams of title and description, canonical ingredient names; hashed"
                        .into(),
            },
            weights: vec![0.0; k * DIMS + k],
        }
    }

    fn k(&self) -> usize {
        self.meta.classes.len()
    }

    /// Class probabilities for one example.
    pub fn predict(&self, x: &[(u32, f32)]) -> Vec<f32> {
        let (k, d) = (self.k(), self.meta.dims);
        let mut z: Vec<f32> = (0..k).map(|c| self.weights[k * d + c]).collect();
        for &(j, v) in x {
            for (c, zc) in z.iter_mut().enumerate() {
                *zc += self.weights[c * d + j as usize] * v;
            }
        }
        let max = z.iter().cloned().fold(f32::MIN, f32::max);
        let mut sum = 0.0;
        for zc in z.iter_mut() {
            *zc = (*zc - max).exp();
            sum += *zc;
        }
        z.iter().map(|v| v / sum).collect()
    }

    /// The most likely class and its probability.
    pub fn classify(&self, x: &[(u32, f32)]) -> (usize, f32) {
        let p = self.predict(x);
        p.iter().cloned().enumerate().fold(
            (0, f32::MIN),
            |best, (c, v)| if v > best.1 { (c, v) } else { best },
        )
    }

    /// SGD over `examples` (features, class) for `epochs`, in an order fixed by `seed`.
    pub fn train(&mut self, examples: &[(Vec<(u32, f32)>, usize)], epochs: usize, seed: u64) {
        let (k, d) = (self.k(), self.meta.dims);
        let mut order: Vec<usize> = (0..examples.len()).collect();
        let mut s = seed.max(1);
        for epoch in 0..epochs {
            // Fisher–Yates with xorshift: the same model from the same labels every time.
            for i in (1..order.len()).rev() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                order.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let lr = 0.5 / (1.0 + epoch as f32);
            for &i in &order {
                let (x, y) = &examples[i];
                let p = self.predict(x);
                for (c, pc) in p.iter().enumerate() {
                    let g = pc - if c == *y { 1.0 } else { 0.0 };
                    for &(j, v) in x {
                        self.weights[c * d + j as usize] -= lr * g * v;
                    }
                    self.weights[k * d + c] -= lr * g;
                }
            }
        }
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("model.json"),
            serde_json::to_vec_pretty(&self.meta).map_err(std::io::Error::other)?,
        )?;
        let bytes: Vec<u8> = self.weights.iter().flat_map(|w| w.to_le_bytes()).collect();
        std::fs::write(dir.join("weights.f32"), bytes)
    }

    pub fn load(dir: &Path) -> std::io::Result<Model> {
        let meta: Meta = serde_json::from_slice(&std::fs::read(dir.join("model.json"))?)
            .map_err(std::io::Error::other)?;
        let bytes = std::fs::read(dir.join("weights.f32"))?;
        let want = (meta.classes.len() * meta.dims + meta.classes.len()) * 4;
        if bytes.len() != want {
            return Err(std::io::Error::other(format!(
                "weights.f32 has {} bytes; model.json says {want}",
                bytes.len()
            )));
        }
        let weights = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Model { meta, weights })
    }
}

/// Accuracy and macro-F1 of `predicted` against `truth` over `k` classes.
pub fn scores(truth: &[usize], predicted: &[usize], k: usize) -> (f64, f64) {
    let n = truth.len().max(1) as f64;
    let correct = truth.iter().zip(predicted).filter(|(a, b)| a == b).count() as f64;
    let mut f1 = 0.0;
    for c in 0..k {
        let tp = truth
            .iter()
            .zip(predicted)
            .filter(|(t, p)| **t == c && **p == c)
            .count() as f64;
        let fp = truth
            .iter()
            .zip(predicted)
            .filter(|(t, p)| **t != c && **p == c)
            .count() as f64;
        let fn_ = truth
            .iter()
            .zip(predicted)
            .filter(|(t, p)| **t == c && **p != c)
            .count() as f64;
        if tp + fp + fn_ > 0.0 {
            f1 += 2.0 * tp / (2.0 * tp + fp + fn_);
        }
    }
    (correct / n, f1 / k as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_separable_problem_and_round_trips() {
        let ex: Vec<(Vec<(u32, f32)>, usize)> = (0..200)
            .map(|i| (vec![((i % 3) as u32 * 7, 1.0), (99, 0.5)], i % 3))
            .collect();
        let mut m = Model::new(vec!["a".into(), "b".into(), "c".into()]);
        m.train(&ex, 3, 42);
        let pred: Vec<usize> = ex.iter().map(|(x, _)| m.classify(x).0).collect();
        let truth: Vec<usize> = ex.iter().map(|(_, y)| *y).collect();
        assert_eq!(scores(&truth, &pred, 3), (1.0, 1.0));
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let back = Model::load(dir.path()).unwrap();
        assert_eq!(back.weights, m.weights);
        assert_eq!(scores(&[0, 0, 1, 1], &[0, 1, 1, 1], 2).0, 0.75);
    }
}
