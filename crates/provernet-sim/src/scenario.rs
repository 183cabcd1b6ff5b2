//! Scenarios: the workload, the provers and the mechanism settings of one experiment. The five
//! built-in ones (S1–S5) follow `shared/research/allocation-mechanisms.md` §4; any other comes
//! from a TOML file with the same fields.

use serde::{Deserialize, Serialize};

/// How proof times are distributed around a prover's mean.
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TimeDist {
    /// Always the mean.
    #[default]
    Fixed,
    /// Exponential with the mean (a memoryless race).
    Exp,
    /// Log-normal with the mean and `time_sigma` (σ of the log).
    Lognormal,
}

/// A window when a prover group is offline, repeating every `period_s` if that is non-zero.
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize)]
pub struct Offline {
    pub start_s: f64,
    pub duration_s: f64,
    #[serde(default)]
    pub period_s: f64,
}

/// Provers alike in everything but the spread of cost and speed across the group.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub count: u32,
    /// Marginal cost of one proof, in credits: spread evenly from `cost_min` to `cost_max`
    /// across the group (the research file's "U(a, b) grid").
    pub cost_min: f64,
    #[serde(default)]
    pub cost_max: Option<f64>,
    /// Mean proof time of the group's fastest member, in seconds.
    pub time_mean_s: f64,
    /// Slowdown of the group's slowest member (1: all equally fast), spread evenly.
    #[serde(default = "one")]
    pub slowdown_max: f64,
    #[serde(default)]
    pub time_dist: TimeDist,
    #[serde(default)]
    pub time_sigma: f64,
    /// Chance an attempt fails (no proof), independently.
    #[serde(default)]
    pub fail_prob: f64,
    /// Stake of each member, in credits.
    #[serde(default = "one")]
    pub stake: f64,
    /// Jobs a member runs at once.
    #[serde(default = "one_u32")]
    pub capacity: u32,
    /// Bids and locks at price zero whatever its cost (a subsidised or affiliated worker).
    #[serde(default)]
    pub zero_fee: bool,
    /// Members belong to one entity of this name (Sybils, a whale's machines); otherwise
    /// each member is its own entity. Decentralization is measured over entities.
    #[serde(default)]
    pub entity: Option<String>,
    #[serde(default)]
    pub offline: Vec<Offline>,
}

fn one() -> f64 {
    1.0
}
fn one_u32() -> u32 {
    1
}

/// Aztec `RewardBooster` parameters (reputation-weighted shared prize).
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize)]
pub struct Booster {
    pub increment: u64,
    pub max_score: u64,
    pub a: u64,
    pub k: u64,
    pub minimum: u64,
    /// Score lost per epoch (100,000 on Aztec).
    pub decay: u64,
}

impl Booster {
    /// Aztec mainnet's on-chain parameters.
    pub const AZTEC: Booster = Booster {
        increment: 125_000,
        max_score: 15_000_000,
        a: 1_000,
        k: 1_000_000,
        minimum: 100_000,
        decay: 100_000,
    };
    /// AZIP-5's parameters.
    pub const AZIP5: Booster = Booster {
        increment: 101_400,
        max_score: 367_500,
        a: 250_000,
        k: 1_000_000,
        minimum: 10_000,
        decay: 100_000,
    };

    /// `shares(score)` as in `RewardBooster.sol`.
    pub fn shares(&self, score: u64) -> u64 {
        if score > self.max_score {
            return self.k;
        }
        let gap = u128::from(self.max_score - score);
        let cut = u128::from(self.a) * gap * gap / 10_000_000_000;
        (u128::from(self.k).saturating_sub(cut) as u64).max(self.minimum)
    }

    /// One epoch: decay, then the increment if the prover was active, capped at the max.
    pub fn step(&self, score: u64, active: bool) -> u64 {
        let s = score.saturating_sub(self.decay);
        if active {
            (s + self.increment).min(self.max_score)
        } else {
            s
        }
    }
}

/// One experiment.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub jobs: u32,
    pub seeds: u32,
    /// Mechanisms run when the command line names none.
    pub mechanisms: Vec<String>,
    /// Mean time between job arrivals, in seconds.
    pub arrival_s: f64,
    /// Exponential inter-arrival times instead of a fixed interval.
    #[serde(default)]
    pub poisson: bool,
    /// A job proven later than this counts as a deadline miss.
    pub deadline_s: f64,
    /// Time an assigned attempt gets before the job falls back (or opens to a race).
    pub fallback_timeout_s: f64,
    /// Fallback attempts through the mechanism before the open race.
    #[serde(default = "two")]
    pub fallback_attempts: u32,
    /// A job nobody has proven by this many deadlines is abandoned (unfulfilled).
    #[serde(default = "ten")]
    pub give_up_deadlines: f64,
    /// The chain's posted price, in credits: what fixed-price mechanisms pay.
    pub quote: f64,
    /// The requester's max fee: the auctions' ceiling and the contest's prize.
    pub max_fee: f64,
    /// Where the reverse Dutch price starts its climb to the max fee (Boundless' min price).
    #[serde(default)]
    pub dutch_start: f64,
    pub block_s: f64,
    #[serde(default = "ten_u64")]
    pub dutch_ramp_blocks: u64,
    #[serde(default = "two_u64")]
    pub bid_window_blocks: u64,
    /// Collateral as a multiple of the price (Boundless: 10).
    #[serde(default = "ten")]
    pub collateral_ratio: f64,
    /// Share of forfeited collateral burned; the rest goes to whoever proves instead.
    #[serde(default = "half")]
    pub collateral_burn: f64,
    /// Slash of a random-assigned prover that misses, as a multiple of the price.
    #[serde(default = "one")]
    pub slash_ratio: f64,
    /// Reverse Dutch: `true` locks just before the next-cheapest rival would (strategic
    /// waiting); `false` locks at cost plus `margin`.
    #[serde(default = "yes")]
    pub dutch_wait: bool,
    /// Markup over cost a prover never goes below when bidding or locking.
    #[serde(default)]
    pub margin: f64,
    /// The square-root stake lottery draws among the heaviest `sqrt_lottery_top` (0: all).
    #[serde(default)]
    pub sqrt_lottery_top: u32,
    #[serde(default = "booster")]
    pub booster: Booster,
    /// Jobs per reputation epoch: scores move once per epoch (Aztec's epochs hold many
    /// blocks).
    #[serde(default = "one_u32")]
    pub epoch_jobs: u32,
    /// A prover (entity) exits after this many consecutive periods with a loss (0: never).
    #[serde(default)]
    pub exit_after_periods: u32,
    #[serde(default = "period")]
    pub period_jobs: u32,
    /// Fixed cost of running a prover for a period, in credits.
    #[serde(default)]
    pub fixed_cost_per_period: f64,
    /// Liveness-fault cost C: a missed deadline's cost to the requester, in credits.
    #[serde(default = "hundred")]
    pub miss_cost: f64,
    /// The entity whose share the report follows (the whale, the attacker).
    #[serde(default)]
    pub focus: Option<String>,
    pub groups: Vec<Group>,
}

fn two() -> u32 {
    2
}
fn ten() -> f64 {
    10.0
}
fn ten_u64() -> u64 {
    10
}
fn two_u64() -> u64 {
    2
}
fn half() -> f64 {
    0.5
}
fn yes() -> bool {
    true
}
fn booster() -> Booster {
    Booster::AZTEC
}
fn period() -> u32 {
    500
}
fn hundred() -> f64 {
    100.0
}

/// Bounds on what a scenario may ask for, so a file cannot make the simulator run forever.
pub const JOBS_MAX: u32 = 1_000_000;
pub const PROVERS_MAX: u32 = 10_000;
pub const SEEDS_MAX: u32 = 1_000;

impl Scenario {
    /// Reads a scenario from TOML, checking every bound.
    pub fn from_toml(text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        s.validate()?;
        Ok(s)
    }

    /// One of the built-in scenarios, by name (`S1`…`S5`, any case).
    pub fn builtin(name: &str) -> Option<Scenario> {
        let s = match name.to_ascii_uppercase().as_str() {
            "S1" => s1(),
            "S2" => s2(),
            "S3" => s3(),
            "S4" => s4(),
            "S5" => s5(),
            _ => return None,
        };
        Some(s)
    }

    pub fn provers(&self) -> u32 {
        self.groups.iter().map(|g| g.count).sum()
    }

    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("arrival_s", self.arrival_s),
            ("deadline_s", self.deadline_s),
            ("fallback_timeout_s", self.fallback_timeout_s),
            ("block_s", self.block_s),
            ("give_up_deadlines", self.give_up_deadlines),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} must be a positive number, not {v}"));
            }
        }
        let money = [
            ("quote", self.quote),
            ("dutch_start", self.dutch_start),
            ("max_fee", self.max_fee),
            ("collateral_ratio", self.collateral_ratio),
            ("slash_ratio", self.slash_ratio),
            ("margin", self.margin),
            ("fixed_cost_per_period", self.fixed_cost_per_period),
            ("miss_cost", self.miss_cost),
        ];
        for (name, v) in money {
            if !(v.is_finite() && (0.0..=1e9).contains(&v)) {
                return Err(format!("{name} must be within 0..=1e9, not {v}"));
            }
        }
        if self.quote > self.max_fee || self.dutch_start > self.max_fee {
            return Err("quote and dutch_start must not exceed max_fee".into());
        }
        if !(0.0..=1.0).contains(&self.collateral_burn) {
            return Err("collateral_burn must be within 0..=1".into());
        }
        if self.jobs == 0 || self.jobs > JOBS_MAX {
            return Err(format!("jobs must be 1..={JOBS_MAX}"));
        }
        if self.seeds == 0 || self.seeds > SEEDS_MAX {
            return Err(format!("seeds must be 1..={SEEDS_MAX}"));
        }
        let n = self.provers();
        if n == 0 || n > PROVERS_MAX {
            return Err(format!("the groups must hold 1..={PROVERS_MAX} provers, not {n}"));
        }
        if self.dutch_ramp_blocks == 0 || self.dutch_ramp_blocks > 10_000 {
            return Err("dutch_ramp_blocks must be 1..=10000".into());
        }
        if self.bid_window_blocks == 0 || self.bid_window_blocks > 1_000 {
            return Err("bid_window_blocks must be 1..=1000".into());
        }
        if self.fallback_attempts > 16 || self.epoch_jobs == 0 || self.period_jobs == 0 {
            return Err("fallback_attempts must be ≤ 16; epoch_jobs, period_jobs ≥ 1".into());
        }
        for g in &self.groups {
            let what = |f: &str| format!("group {:?}: {f}", g.name);
            if !(g.cost_min.is_finite() && g.cost_min >= 0.0) {
                return Err(what("cost_min must be ≥ 0"));
            }
            if g.cost_max.is_some_and(|m| !(m.is_finite() && m >= g.cost_min)) {
                return Err(what("cost_max must be ≥ cost_min"));
            }
            if !(g.time_mean_s.is_finite() && g.time_mean_s > 0.0) {
                return Err(what("time_mean_s must be positive"));
            }
            if !(g.slowdown_max.is_finite() && g.slowdown_max >= 1.0) {
                return Err(what("slowdown_max must be ≥ 1"));
            }
            if !(0.0..=3.0).contains(&g.time_sigma) {
                return Err(what("time_sigma must be within 0..=3"));
            }
            if !(0.0..=1.0).contains(&g.fail_prob) {
                return Err(what("fail_prob must be within 0..=1"));
            }
            if !(g.stake.is_finite() && g.stake >= 0.0 && g.stake <= 1e12) {
                return Err(what("stake must be within 0..=1e12"));
            }
            if g.capacity == 0 || g.capacity > 100_000 {
                return Err(what("capacity must be 1..=100000"));
            }
            for o in &g.offline {
                let ok = o.start_s >= 0.0
                    && o.duration_s >= 0.0
                    && o.period_s >= 0.0
                    && (o.period_s == 0.0 || o.duration_s < o.period_s);
                if !ok {
                    return Err(what(
                        "offline windows need start, duration ≥ 0 and duration < period",
                    ));
                }
            }
        }
        for m in &self.mechanisms {
            crate::engine::Mech::parse(m)?;
        }
        Ok(())
    }
}

fn group(name: &str, count: u32, cost: f64, time_mean_s: f64) -> Group {
    Group {
        name: name.into(),
        count,
        cost_min: cost,
        cost_max: None,
        time_mean_s,
        slowdown_max: 1.0,
        time_dist: TimeDist::Fixed,
        time_sigma: 0.0,
        fail_prob: 0.0,
        stake: 1.0,
        capacity: 1,
        zero_fee: false,
        entity: None,
        offline: Vec::new(),
    }
}

fn base(name: &str, description: &str, groups: Vec<Group>) -> Scenario {
    Scenario {
        name: name.into(),
        description: description.into(),
        jobs: 10_000,
        seeds: 20,
        mechanisms: Vec::new(),
        arrival_s: 20.0,
        poisson: false,
        deadline_s: 600.0,
        fallback_timeout_s: 300.0,
        fallback_attempts: 2,
        give_up_deadlines: 10.0,
        quote: 1.2,
        max_fee: 1.5,
        dutch_start: 0.0,
        block_s: 2.0,
        dutch_ramp_blocks: 10,
        bid_window_blocks: 2,
        collateral_ratio: 10.0,
        collateral_burn: 0.5,
        slash_ratio: 1.0,
        dutch_wait: true,
        margin: 0.0,
        sqrt_lottery_top: 0,
        booster: Booster::AZTEC,
        epoch_jobs: 1,
        exit_after_periods: 0,
        period_jobs: 500,
        fixed_cost_per_period: 0.0,
        miss_cost: 100.0,
        focus: None,
        groups,
    }
}

fn names(m: &[&str]) -> Vec<String> {
    m.iter().map(|s| s.to_string()).collect()
}

/// S1: Taiko's proof race. 126 provers, a job every 20 s; the three fastest prove in 130–160 s
/// and are offline 8 h a day, the rest are 1.2–3× slower.
fn s1() -> Scenario {
    let day = 86_400.0;
    let mut fast = group("fastest", 3, 0.3, 130.0);
    fast.slowdown_max = 160.0 / 130.0;
    fast.offline =
        vec![Offline { start_s: 16.0 * 3600.0, duration_s: 8.0 * 3600.0, period_s: day }];
    let mut rest = group("others", 123, 0.3, 1.2 * 130.0);
    rest.slowdown_max = 3.0 / 1.2;
    let mut s = base(
        "S1",
        "Deterministic proof race (Taiko alpha-2/3 replay): 126 provers, a job every 20 s, \
         the 3 fastest (130-160 s) offline 8 h/day, the rest 1.2-3x slower; reward 1.2, \
         cost 0.3 per attempt.",
        vec![fast, rest],
    );
    s.mechanisms = names(&["open-race", "random", "stake-linear", "reverse-dutch"]);
    s.deadline_s = 600.0;
    s.fallback_timeout_s = 480.0;
    s.period_jobs = 1_000;
    s
}

/// S2: a whale with 30% lower cost among 20 provers, across auction families.
fn s2() -> Scenario {
    let whale =
        Group { entity: Some("whale".into()), capacity: 1_000, ..group("whale", 1, 0.7, 60.0) };
    let mut fringe = group("fringe", 19, 0.9, 60.0);
    fringe.cost_max = Some(1.1);
    let mut s = base(
        "S2",
        "Undercutting whale: 20 provers, the whale's cost 0.7 (unlimited capacity) against 19 \
         at 0.9-1.1; max fee 1.5, posted price 1.2; a job every 20 s, 60 s proofs.",
        vec![whale, fringe],
    );
    s.mechanisms =
        names(&["lowest-bid", "reverse-dutch", "tullock", "random", "stake-linear", "open-race"]);
    s.deadline_s = 300.0;
    s.fallback_timeout_s = 120.0;
    s.focus = Some("whale".into());
    s.exit_after_periods = 2;
    s.fixed_cost_per_period = 1.0;
    s
}

/// S3: liveness under independent failures and a correlated outage, with a 12 s deadline.
fn s3() -> Scenario {
    // "Pr" latency class: mean 6.9 s, P(T > 12 s) = 0.004 → log-normal σ = 0.2176.
    let mut us = group("us-cloud", 23, 1.0, 6.9);
    us.time_dist = TimeDist::Lognormal;
    us.time_sigma = 0.2176;
    us.fail_prob = 0.05;
    // 46% of provers (the US share of Ethereum nodes) down for an hour, 50 h into the run.
    us.offline = vec![Offline { start_s: 50_000.0, duration_s: 3_600.0, period_s: 0.0 }];
    let rest = Group { name: "elsewhere".into(), count: 27, offline: Vec::new(), ..us.clone() };
    let mut s = base(
        "S3",
        "Liveness: 50 provers (latency class Pr: mean 6.9 s, log-normal), 5% independent \
         failures, 46% of them down for 1 h; deadline 12 s, fallback after 6 s; a job every \
         12 s; collateral 10x, half burned.",
        vec![us, rest],
    );
    s.mechanisms = names(&[
        "random",
        "redundant-2",
        "redundant-3",
        "reverse-dutch",
        "lowest-bid",
        "reputation",
        "open-race",
    ]);
    s.arrival_s = 12.0;
    s.deadline_s = 12.0;
    s.fallback_timeout_s = 6.0;
    s.block_s = 1.0;
    s.dutch_ramp_blocks = 4;
    s.bid_window_blocks = 1;
    s.quote = 1.2;
    s.max_fee = 1.5;
    s.miss_cost = 100.0;
    s
}

/// S4: zero-fee undercutting (Mina's Snarketplace), zero-fee capacity at 100% of demand.
fn s4() -> Scenario {
    // Demand: a 60 s proof every 6 s keeps 10 provers busy; 10 zero-fee workers cover it.
    let zero = Group { zero_fee: true, ..group("zero-fee", 10, 1.0, 60.0) };
    let indep = group("independent", 50, 1.0, 60.0);
    let mut s = base(
        "S4",
        "Zero-fee undercutting (Mina replay): 50 independent workers at cost 1.0 and 10 \
         affiliated zero-fee workers whose capacity equals demand; a 60 s job every 6 s; \
         independents exit after 2 losing periods (fixed cost 1 per 500 jobs).",
        vec![zero, indep],
    );
    s.mechanisms = names(&["lowest-bid", "reverse-dutch", "random", "tullock", "reputation"]);
    s.arrival_s = 6.0;
    s.deadline_s = 300.0;
    s.fallback_timeout_s = 120.0;
    s.exit_after_periods = 2;
    s.fixed_cost_per_period = 1.0;
    s
}

/// S5: an attacker with 20% of the stake split into 12 identities among 50 equal provers.
fn s5() -> Scenario {
    let honest = Group { stake: 0.8 / 50.0 * 1e6, ..group("honest", 50, 1.0, 5.0) };
    let sybils = Group {
        stake: 0.2 / 12.0 * 1e6,
        entity: Some("attacker".into()),
        ..group("attacker", 12, 1.0, 5.0)
    };
    let mut s = base(
        "S5",
        "Sybils and stake weighting: 50 honest provers with 80% of the stake in equal parts; \
         an attacker with 20% split into 12 identities; the square-root lottery capped at the 32 \
         heaviest (Taiko alpha-4); 5 s proofs, a job every 10 s.",
        vec![honest, sybils],
    );
    s.mechanisms =
        names(&["random", "stake-linear", "stake-sqrt", "tullock", "reputation", "open-race"]);
    s.arrival_s = 10.0;
    s.sqrt_lottery_top = 32;
    s.focus = Some("attacker".into());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_and_files_are_bounded() {
        for name in ["S1", "s2", "S3", "S4", "S5"] {
            let s = Scenario::builtin(name).unwrap();
            s.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            // Round trip through TOML.
            let text = toml::to_string(&s).unwrap();
            assert_eq!(Scenario::from_toml(&text).unwrap(), s);
        }
        assert!(Scenario::builtin("S9").is_none());
        let mut s = Scenario::builtin("S2").unwrap();
        s.jobs = JOBS_MAX + 1;
        assert!(s.validate().unwrap_err().contains("jobs"));
        s.jobs = 10;
        s.groups[0].fail_prob = 1.5;
        assert!(s.validate().unwrap_err().contains("fail_prob"));
        s.groups[0].fail_prob = 0.0;
        s.mechanisms = vec!["dutch".into()];
        assert!(s.validate().unwrap_err().contains("reverse-dutch"));
        let err = Scenario::from_toml("name = 1").unwrap_err();
        assert!(err.contains("name") || err.contains("invalid"), "{err}");
    }

    #[test]
    fn reward_booster_reproduces_the_research_numbers() {
        let (now, azip) = (Booster::AZTEC, Booster::AZIP5);
        // Break-even coverage: decay / increment.
        assert_eq!(now.decay * 1000 / now.increment, 800);
        assert_eq!(azip.decay * 1000 / azip.increment, 986);
        // One miss at max score: 99.9% of max shares now, 75.0% under AZIP-5.
        let after_miss = |b: Booster| b.shares(b.step(b.max_score, false)) as f64 / b.k as f64;
        assert!((after_miss(now) - 0.999).abs() < 0.0005, "{}", after_miss(now));
        assert!((after_miss(azip) - 0.750).abs() < 0.0005, "{}", after_miss(azip));
        // Epochs to recover one miss: decay / (increment − decay).
        let recover = |b: Booster| {
            let mut s = b.step(b.max_score, false);
            let mut n = 0;
            while s < b.max_score {
                s = b.step(s, true);
                n += 1;
            }
            n
        };
        assert_eq!(recover(now), 4);
        assert_eq!(recover(azip), 72, "71.4 epochs, rounded up to whole epochs");
        // Shares reach the minimum at 12.0 M (now) and 168.5 k (AZIP-5).
        let floor_at = |b: Booster| {
            (b.max_score as f64 - (((b.k - b.minimum) as f64) * 1e10 / b.a as f64).sqrt()) as u64
        };
        assert_eq!(floor_at(now) / 100_000, 120);
        assert_eq!(floor_at(azip) / 100, 1685);
        assert_eq!(now.shares(floor_at(now) - 1), now.minimum);
    }
}
