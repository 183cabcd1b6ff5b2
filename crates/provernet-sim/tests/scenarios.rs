//! The simulator against the research file's anchors (S1–S5), on small runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use provernet_sim::{run, simulate, Mech, Report, Scenario};

fn mechs(names: &[&str]) -> Vec<Mech> {
    names.iter().map(|n| Mech::parse(n).unwrap()).collect()
}

fn quiet(_: usize, _: usize) {}

fn sim(sc: &Scenario, names: &[&str]) -> Report {
    simulate(sc, &mechs(names), sc.seeds, &quiet)
}

fn mean(r: &Report, mech: &str, key: &str) -> f64 {
    r.mechanisms.iter().find(|m| m.mechanism == mech).unwrap().get(key).mean
}

#[test]
fn runs_are_a_function_of_the_seed() {
    let mut sc = Scenario::builtin("S3").unwrap();
    sc.jobs = 500;
    for m in mechs(&["random", "reverse-dutch", "tullock", "reputation"]) {
        let (a, b) = (run(&sc, m, 7), run(&sc, m, 7));
        assert_eq!((a.rewards.clone(), a.late, a.unfulfilled), (b.rewards, b.late, b.unfulfilled));
        assert_ne!(a.rewards, run(&sc, m, 8).rewards, "{m:?}: another seed, another run");
    }
    // Scenario fields reach the engine: longer reputation epochs move scores less often.
    let rep = Mech::parse("reputation").unwrap();
    let per_job = run(&sc, rep, 7).rewards;
    sc.epoch_jobs = 50;
    assert_ne!(per_job, run(&sc, rep, 7).rewards);
    // And the Dutch ramp's start sets the price a lone prover waits for.
    let mut s2 = Scenario::builtin("S2").unwrap();
    s2.jobs = 200;
    s2.exit_after_periods = 0;
    s2.fixed_cost_per_period = 0.0;
    let dutch = Mech::parse("reverse-dutch").unwrap();
    let low = run(&s2, dutch, 1).paid;
    s2.dutch_start = 0.9;
    assert!(run(&s2, dutch, 1).paid > low);
}

#[test]
fn sybil_splitting_matches_the_closed_forms() {
    // S5: 12 attacker identities with 20% of the stake against 50 equal honest provers.
    let mut sc = Scenario::builtin("S5").unwrap();
    sc.jobs = 3_000;
    sc.seeds = 4;
    let r = sim(&sc, &["random", "stake-linear", "stake-sqrt"]);
    let share = |m| mean(&r, m, "focus_share");
    // Uniform per identity: k/(50+k) = 12/62.
    assert!((share("random") - 12.0 / 62.0).abs() < 0.02, "{}", share("random"));
    // Linear stake weight is Sybil-neutral: 20%.
    assert!((share("stake-linear") - 0.20).abs() < 0.02, "{}", share("stake-linear"));
    // Square root with the top-32 cap: 38.0% at k = 12.
    assert!((share("stake-sqrt") - 0.380).abs() < 0.02, "{}", share("stake-sqrt"));
}

#[test]
fn auctions_hand_an_unconstrained_whale_the_market() {
    let mut sc = Scenario::builtin("S2").unwrap();
    sc.jobs = 1_000;
    sc.seeds = 2;
    // Without exits, the price is the runner-up's cost (0.9, less one bid tick).
    sc.exit_after_periods = 0;
    sc.fixed_cost_per_period = 0.0;
    let r = sim(&sc, &["lowest-bid", "reverse-dutch", "tullock", "random"]);
    for m in ["lowest-bid", "reverse-dutch"] {
        assert_eq!(mean(&r, m, "nc50"), 1.0, "{m}");
        assert_eq!(mean(&r, m, "focus_share"), 1.0, "{m}");
    }
    assert!((mean(&r, "lowest-bid", "cost_per_job") - 0.899).abs() < 1e-6);
    // The Dutch price steps by 0.15: the whale locks on the step below 0.9.
    assert!((mean(&r, "reverse-dutch", "cost_per_job") - 0.75).abs() < 1e-6);
    // Tullock with 19 rivals on a U(0.9, 1.1) grid: 9 of 20 active, the whale near 0.36.
    assert!(
        (mean(&r, "tullock", "focus_share") - 0.36).abs() < 0.03,
        "{}",
        mean(&r, "tullock", "focus_share")
    );
    // Random: the whale is one of 20.
    assert!((mean(&r, "random", "focus_share") - 0.05).abs() < 0.015);
    // With exits (the scenario as shipped), the fringe leaves and the whale charges the max.
    let mut sc = Scenario::builtin("S2").unwrap();
    sc.jobs = 3_000;
    sc.seeds = 1;
    let r = sim(&sc, &["lowest-bid"]);
    assert_eq!(mean(&r, "lowest-bid", "exited"), 19.0);
}

#[test]
fn independent_failure_miss_rates_match_the_formula() {
    // S3 without the outage, and the fallback only after the deadline, so misses are
    // P(miss) = p + (1 − p)·P(T > D) per assignment: 0.0538 for one, its square for two.
    let mut sc = Scenario::builtin("S3").unwrap();
    sc.jobs = 20_000;
    sc.seeds = 1;
    sc.fallback_timeout_s = sc.deadline_s;
    for g in &mut sc.groups {
        g.offline.clear();
    }
    let r = sim(&sc, &["random", "redundant-2"]);
    let one = mean(&r, "random", "miss_rate");
    assert!((one - 0.0538).abs() < 0.006, "single assignment misses {one}");
    let two = mean(&r, "redundant-2", "miss_rate");
    assert!((0.0012..0.0055).contains(&two), "two copies miss {two} (expected 0.0029)");
}

#[test]
fn a_deterministic_race_goes_to_the_fastest() {
    // S1's pass band: top-3 share ≥ 90% and NC ≤ 2 in the deterministic race; random
    // assignment spreads the rewards.
    let mut sc = Scenario::builtin("S1").unwrap();
    sc.jobs = 1_500;
    sc.seeds = 2;
    let r = sim(&sc, &["open-race", "random"]);
    assert!(mean(&r, "open-race", "top3") >= 0.9, "{}", mean(&r, "open-race", "top3"));
    assert!(mean(&r, "open-race", "nc50") <= 2.0);
    assert!(mean(&r, "random", "nc50") >= 10.0);
    assert!(mean(&r, "open-race", "waste_ratio") > 10.0, "every free prover races");
    // The report renders every mechanism.
    let md = r.markdown(&[]);
    assert!(md.contains("| open-race |") || md.contains(" open-race |"), "{md}");
}
