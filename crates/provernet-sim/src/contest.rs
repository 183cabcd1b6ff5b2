//! Contest baselines: the Tullock (proportional, all-pay) contest's equilibrium, and the race
//! under exponential proof times.

/// Equilibrium shares of a Tullock contest for one prize among players valuing it `values`
/// (value = prize − cost). Players with too low a value drop out: the active set is the top `m`
/// with `vᵢ > B`, where `B = (m − 1)/Σ_active 1/vᵢ` is the total spending; an active player's
/// share (its win probability) is `1 − B/vᵢ`, an inactive one's is 0. Returns the shares in
/// input order and `B`.
pub fn tullock(values: &[f64]) -> (Vec<f64>, f64) {
    let mut order: Vec<usize> = (0..values.len()).filter(|i| values[*i] > 0.0).collect();
    order.sort_by(|a, b| values[*b].total_cmp(&values[*a]));
    let mut best = (0usize, 0.0f64);
    for m in 2..=order.len() {
        let inv: f64 = order[..m].iter().map(|i| 1.0 / values[*i]).sum();
        let b = (m as f64 - 1.0) / inv;
        if values[order[m - 1]] > b {
            best = (m, b);
        } else {
            break;
        }
    }
    let (m, b) = best;
    let mut shares = vec![0.0; values.len()];
    if m == 0 {
        if let Some(top) = order.first() {
            shares[*top] = 1.0;
        }
        return (shares, 0.0);
    }
    for i in &order[..m] {
        shares[*i] = 1.0 - b / values[*i];
    }
    (shares, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{hhi, nakamoto};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const PRIZE: f64 = 1.5;

    /// Scenario S2: the whale's cost is 0.7, rivals' 0.9, the requester's max fee 1.5.
    #[test]
    fn whale_shares_match_the_research_anchors() {
        let (s, b) = tullock(&[PRIZE - 0.7, PRIZE - 0.9]);
        assert!((s[0] - 0.571).abs() < 0.001, "{s:?}");
        assert!((b - 0.343).abs() < 0.001, "dissipation {b}");
        let mut v = vec![PRIZE - 0.7];
        v.extend(std::iter::repeat_n(PRIZE - 0.9, 19));
        let (s, _) = tullock(&v);
        assert!((s[0] - 0.278).abs() < 0.001, "{s:?}");
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    /// Against 19 heterogeneous rivals (costs on a U(0.9, 1.1) grid) only 9 of 20 stay active
    /// and the whale takes about 0.36.
    #[test]
    fn weak_rivals_drop_out() {
        let mut v = vec![PRIZE - 0.7];
        v.extend((0..19).map(|i| PRIZE - (0.9 + 0.2 * i as f64 / 18.0)));
        let (s, _) = tullock(&v);
        let active = s.iter().filter(|x| **x > 0.0).count();
        assert_eq!(active, 9, "{s:?}");
        assert!((s[0] - 0.36).abs() < 0.01, "{}", s[0]);
        let won: Vec<u64> = s.iter().map(|x| (x * 1e6) as u64).collect();
        assert!((hhi(&won) - 1_930.0).abs() < 30.0, "HHI {}", hhi(&won));
        assert_eq!(nakamoto(&won, 0.5), 3);
    }

    /// A race under exponential proof times: each prover's win share equals its share of the
    /// total speed (rate), a sanity check of the simulator's races.
    #[test]
    fn exponential_race_win_share_equals_speed_share() {
        let rates = [4.0, 2.0, 1.0, 1.0];
        let total: f64 = rates.iter().sum();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut wins = [0u64; 4];
        let races = 200_000;
        for _ in 0..races {
            let winner = rates
                .iter()
                .map(|r| -(1.0 - rng.random::<f64>()).ln() / r)
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(0, |(i, _)| i);
            wins[winner] += 1;
        }
        for (w, r) in wins.iter().zip(rates) {
            let share = *w as f64 / races as f64;
            assert!((share - r / total).abs() < 0.005, "{wins:?}");
        }
    }
}
