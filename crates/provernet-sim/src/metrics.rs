//! Decentralization metrics over per-prover rewards (or jobs won), following the conventions of
//! the consensus-decentralization reference code: every registered prover counts, including
//! those that earned nothing.

/// Shares of the total, in `[0, 1]`; all zero when nothing was earned.
pub fn shares(values: &[u64]) -> Vec<f64> {
    let total: u128 = values.iter().map(|v| u128::from(*v)).sum();
    if total == 0 {
        return vec![0.0; values.len()];
    }
    values.iter().map(|v| *v as f64 / total as f64).collect()
}

/// Herfindahl–Hirschman index, Σ (100·sᵢ)², in `(0, 10_000]` (0 when nothing was earned).
pub fn hhi(values: &[u64]) -> f64 {
    shares(values).iter().map(|s| (100.0 * s).powi(2)).sum()
}

/// Gini coefficient over all provers, zeros included: a single winner among `N` gives
/// `(N − 1)/N`.
pub fn gini(values: &[u64]) -> f64 {
    let n = values.len();
    let total: u128 = values.iter().map(|v| u128::from(*v)).sum();
    if n == 0 || total == 0 {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let weighted: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, x)| (2.0 * (i as f64 + 1.0) - n as f64 - 1.0) * *x as f64)
        .sum();
    weighted / (n as f64 * total as f64)
}

/// Nakamoto coefficient: the fewest provers whose combined share is **more than** `threshold`
/// (0.5 by default; 0.33 for BFT-style censorship). 0 when nothing was earned.
pub fn nakamoto(values: &[u64], threshold: f64) -> usize {
    let mut s = shares(values);
    s.sort_unstable_by(|a, b| b.total_cmp(a));
    let mut sum = 0.0;
    for (k, share) in s.iter().enumerate() {
        sum += share;
        if sum > threshold {
            return k + 1;
        }
    }
    0
}

/// Combined share of the `k` largest earners.
pub fn top_k_share(values: &[u64], k: usize) -> f64 {
    let mut s = shares(values);
    s.sort_unstable_by(|a, b| b.total_cmp(a));
    s.iter().take(k).sum()
}

/// Mean and the half-width of a 95% confidence interval (normal approximation) over seeds.
pub fn mean_ci95(samples: &[f64]) -> (f64, f64) {
    let n = samples.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = samples.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
    (mean, 1.96 * (var / n as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn edge_cases() {
        assert_eq!(hhi(&[5, 0, 0, 0]), 10_000.0);
        assert!((gini(&[5, 0, 0, 0]) - 0.75).abs() < 1e-12, "a single winner of 4: (N-1)/N");
        assert_eq!(gini(&[3, 3, 3]), 0.0);
        assert_eq!(nakamoto(&[50, 50], 0.5), 2, "exactly 50% is not more than half");
        assert_eq!(nakamoto(&[51, 49], 0.5), 1);
        assert_eq!(nakamoto(&[40, 30, 30], 0.33), 1);
        assert_eq!(nakamoto(&[0, 0], 0.5), 0);
        assert!((top_k_share(&[1, 2, 7], 2) - 0.9).abs() < 1e-12);
        assert_eq!(hhi(&[]), 0.0);
    }

    /// Uniform random assignment of J jobs to N provers: E[HHI] = 10⁴·(1/N + (1 − 1/N)/J) and
    /// Gini ≈ √((N − 1)/(πJ)); for N = 50 and J = 10⁴, about 201 and 0.039.
    #[test]
    fn uniform_assignment_matches_the_closed_form_baselines() {
        let (n, j) = (50usize, 10_000usize);
        let expected_hhi = 10_000.0 * (1.0 / n as f64 + (1.0 - 1.0 / n as f64) / j as f64);
        let expected_gini = ((n as f64 - 1.0) / (std::f64::consts::PI * j as f64)).sqrt();
        let (mut hs, mut gs) = (Vec::new(), Vec::new());
        for seed in 0..40 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut won = vec![0u64; n];
            for _ in 0..j {
                won[rng.random_range(0..n)] += 1;
            }
            hs.push(hhi(&won));
            gs.push(gini(&won));
        }
        let (h, h_ci) = mean_ci95(&hs);
        let (g, g_ci) = mean_ci95(&gs);
        assert!((expected_hhi - 201.0).abs() < 0.1 && (expected_gini - 0.0395).abs() < 0.001);
        assert!(
            (h - expected_hhi).abs() < 3.0 * h_ci.max(0.05),
            "HHI {h} ± {h_ci} vs {expected_hhi}"
        );
        assert!((g - expected_gini).abs() < 0.003, "Gini {g} ± {g_ci} vs {expected_gini}");
    }
}
