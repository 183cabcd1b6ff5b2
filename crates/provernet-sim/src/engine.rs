//! The discrete-event engine: one run of one mechanism over one scenario with one seed.
//!
//! Jobs arrive; the mechanism picks provers through the same `provernet-mechanism` code the
//! ledger runs (random, stake lotteries, reverse Dutch, lowest bid, open race) or, for the
//! simulator-only mechanisms, through this module (k-redundant random assignment, the Tullock
//! contest, Aztec-style reputation-weighted shared prizes). Provers take time to prove, fail,
//! go offline, bid and lock by their strategies, pay their costs, collateral and slashes, and
//! exit after losing periods. Every run is a pure function of (scenario, mechanism, seed).
//!
//! Model choices (`docs/mechanism-lab.md` repeats them):
//! - a prover runs `capacity` attempts at once; an attempt that fails is silent and found out
//!   at the fallback timeout; an outage starting during an attempt fails it;
//! - an attempt still running at the fallback timeout is slashed and the job falls back, but
//!   it may still deliver first (Boundless' lock timeout before the request's deadline);
//! - the reverse Dutch price climbs from the scenario's `dutch_start` to the max fee;
//! - auctions use the availability at arrival, and the winner is reserved from then on;
//! - bids are complete-information equilibrium bids: each bids just under the cheapest rival's
//!   reservation price, never under its own (zero-fee workers' reservation is 0);
//! - in a race every free prover joins; losers stop when the race is won and pay the share of
//!   their cost already spent;
//! - a fault under fixed-price assignment is slashed `slash_ratio` × the price (burned); under
//!   the auctions it forfeits the collateral (part burned, part a bounty for the race winner);
//! - reputation epochs last `epoch_jobs` jobs: shares are computed from the scores at the start
//!   of the epoch, and scores move once per epoch;
//! - zero-fee workers are subsidised: they never exit.

use crate::contest::tullock;
use crate::scenario::{Offline, Scenario, TimeDist};
use provernet_mechanism::{
    mechanism, Candidate, Decision, MechanismParams, Offer, Request, ReverseDutch, Round, Seed,
};
use provernet_types::{
    Bytes, GpuCount, MechanismKind, MicroCredits, MilliCores, ProverId, ProverSet, Resources,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A mechanism the simulator runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mech {
    /// One of the ledger's mechanisms, through `provernet_mechanism::mechanism`.
    Chain(MechanismKind),
    /// `k` provers drawn uniformly per job (k-of-n redundancy); every valid proof is paid.
    Redundant(u8),
    /// Tullock contest: win probability proportional to effort, efforts paid by all.
    Tullock,
    /// Aztec-style: every free prover proves, the price is split by `RewardBooster` shares
    /// among those who delivered by the deadline.
    Reputation,
}

impl Mech {
    pub fn parse(s: &str) -> Result<Mech, String> {
        match s {
            "tullock" => return Ok(Mech::Tullock),
            "reputation" => return Ok(Mech::Reputation),
            _ => {}
        }
        if let Some(k) = s.strip_prefix("redundant-") {
            return match k.parse::<u8>() {
                Ok(k @ 2..=5) => Ok(Mech::Redundant(k)),
                _ => Err(format!("redundant-K takes K from 2 to 5, not {k:?}")),
            };
        }
        s.parse::<MechanismKind>()
            .map(Mech::Chain)
            .map_err(|e| format!("{e}, and the simulator's redundant-2..5, tullock, reputation"))
    }

    pub fn name(&self) -> String {
        match self {
            Mech::Chain(k) => k.name().to_string(),
            Mech::Redundant(k) => format!("redundant-{k}"),
            Mech::Tullock => "tullock".into(),
            Mech::Reputation => "reputation".into(),
        }
    }
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct RunResult {
    /// The entities, in the order of the per-entity vectors: a group's `entity` name, or
    /// `<group>-<i>` for each member of a group without one.
    pub entities: Vec<String>,
    /// Rewards earned per entity, in micro-credits.
    pub rewards: Vec<u64>,
    /// Profit per entity (rewards − proving costs − slashes − efforts − fixed costs), credits.
    pub profit: Vec<f64>,
    pub entities_exited: u32,
    /// Requester payments, credits.
    pub paid: f64,
    pub latencies: Vec<f64>,
    pub late: u32,
    pub unfulfilled: u32,
    pub jobs: u32,
    /// Proving cost of attempts whose proof was used, and of all the others.
    pub useful_cost: f64,
    pub wasted_cost: f64,
    pub burned: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Assigned by the mechanism; times out into a fallback.
    Assigned,
    Race,
    /// Reputation: everyone proves, the price is shared.
    Shared,
}

#[derive(Clone, Debug)]
struct Attempt {
    job: usize,
    prover: usize,
    kind: Kind,
    start: u64,
    end: u64,
    success: bool,
    price: f64,
    collateral: f64,
    /// Still counted against the prover's capacity.
    running: bool,
    /// Stopped because another attempt proved the job first.
    abandoned: bool,
    /// Missed the fallback timeout (slashed; may still deliver and win).
    timed_out: bool,
}

#[derive(Clone, Debug)]
struct Prover {
    entity: usize,
    cost: f64,
    time_mean: f64,
    dist: TimeDist,
    sigma: f64,
    fail: f64,
    stake: u64,
    capacity: u32,
    running: u32,
    zero_fee: bool,
    offline: Vec<Offline>,
    exited: bool,
    score: u64,
    /// Delivered a shared (reputation) proof in the current epoch.
    epoch_active: bool,
}

#[derive(Clone, Debug, Default)]
struct Job {
    arrival: u64,
    done: bool,
    failed: bool,
    tried: Vec<usize>,
    /// Indices of this job's attempts.
    attempts: Vec<usize>,
    mech_attempts: u32,
    race_open: bool,
    bounty: f64,
    /// Reputation: attempts not yet ended.
    shared_pending: u32,
    shared_delivered: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Ev {
    Arrive(usize),
    End(usize),
    Timeout(usize),
    Retry(usize),
}

const US: f64 = 1e6;

fn us(seconds: f64) -> u64 {
    (seconds.max(0.0) * US).round() as u64
}

fn mc(credits: f64) -> MicroCredits {
    MicroCredits((credits.max(0.0) * US).round() as u64)
}

struct Sim<'a> {
    sc: &'a Scenario,
    mech: Mech,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    provers: Vec<Prover>,
    ids: Vec<ProverId>,
    entities: usize,
    jobs: Vec<Job>,
    attempts: Vec<Attempt>,
    params: MechanismParams,
    // accounting, per entity
    revenue: Vec<f64>,
    spent: Vec<f64>,
    period_profit: Vec<f64>,
    loss_streak: Vec<u32>,
    exited: Vec<bool>,
    /// Entities of zero-fee workers: subsidised, they never exit.
    subsidised: Vec<bool>,
    out: RunResult,
}

/// Runs `mech` over `sc` with seed `seed`.
pub fn run(sc: &Scenario, mech: Mech, seed: u64) -> RunResult {
    let mut sim = Sim::new(sc, mech, seed);
    sim.go();
    sim.finish()
}

impl<'a> Sim<'a> {
    fn new(sc: &'a Scenario, mech: Mech, seed: u64) -> Sim<'a> {
        let mut entity_names: Vec<String> = Vec::new();
        let mut provers = Vec::new();
        for g in &sc.groups {
            let n = g.count.max(1);
            for i in 0..g.count {
                let x = if n > 1 { f64::from(i) / f64::from(n - 1) } else { 0.0 };
                let cost = g.cost_min + (g.cost_max.unwrap_or(g.cost_min) - g.cost_min) * x;
                let entity = match &g.entity {
                    Some(name) => match entity_names.iter().position(|e| e == name) {
                        Some(e) => e,
                        None => {
                            entity_names.push(name.clone());
                            entity_names.len() - 1
                        }
                    },
                    None => {
                        entity_names.push(format!("{}-{i}", g.name));
                        entity_names.len() - 1
                    }
                };
                provers.push(Prover {
                    entity,
                    cost,
                    time_mean: g.time_mean_s * (1.0 + (g.slowdown_max - 1.0) * x),
                    dist: g.time_dist,
                    sigma: g.time_sigma,
                    fail: g.fail_prob,
                    stake: mc(g.stake).0,
                    capacity: g.capacity,
                    running: 0,
                    zero_fee: g.zero_fee,
                    offline: g.offline.clone(),
                    exited: false,
                    score: sc.booster.max_score,
                    epoch_active: false,
                });
            }
        }
        let ids = (0..provers.len())
            .map(|i| {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&(i as u64).to_be_bytes());
                ProverId(id)
            })
            .collect();
        let e = entity_names.len();
        let params = MechanismParams {
            dutch_ramp_blocks: sc.dutch_ramp_blocks,
            bid_window_blocks: sc.bid_window_blocks,
            collateral_bps: (sc.collateral_ratio * 10_000.0).round() as u32,
            collateral_burn_bps: (sc.collateral_burn * 10_000.0).round() as u32,
            sqrt_lottery_top: sc.sqrt_lottery_top,
        };
        let subsidised =
            (0..e).map(|x| provers.iter().any(|p: &Prover| p.entity == x && p.zero_fee)).collect();
        Sim {
            sc,
            mech,
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            provers,
            ids,
            entities: e,
            jobs: vec![Job::default(); sc.jobs as usize],
            attempts: Vec::new(),
            params,
            revenue: vec![0.0; e],
            spent: vec![0.0; e],
            period_profit: vec![0.0; e],
            loss_streak: vec![0; e],
            exited: vec![false; e],
            subsidised,
            out: RunResult { jobs: sc.jobs, entities: entity_names, ..Default::default() },
        }
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq, ev)));
    }

    fn go(&mut self) {
        self.at(0, Ev::Arrive(0));
        while let Some(Reverse((t, _, ev))) = self.queue.pop() {
            self.now = t;
            match ev {
                Ev::Arrive(j) => self.arrive(j),
                Ev::End(a) => self.end(a),
                Ev::Timeout(a) => self.timeout(a),
                Ev::Retry(j) => self.retry(j),
            }
        }
    }

    fn online(&self, p: usize, t: u64) -> bool {
        self.offline_from(p, t, t) != Some(t)
    }

    /// The first moment in `[from, to]` the prover is offline, if any.
    fn offline_from(&self, p: usize, from: u64, to: u64) -> Option<u64> {
        let mut first: Option<u64> = None;
        for w in &self.provers[p].offline {
            let (start, dur, period) = (us(w.start_s), us(w.duration_s), us(w.period_s));
            let hit = if period == 0 {
                if from < start + dur && to >= start {
                    Some(from.max(start))
                } else {
                    None
                }
            } else if from + period < start {
                None
            } else {
                // The occurrence covering or following `from`.
                let k = from.saturating_sub(start) / period;
                let s = start + k * period;
                if from >= start && from < s + dur {
                    Some(from)
                } else {
                    let next = if from < start { start } else { s + period };
                    (next <= to).then_some(next)
                }
            };
            if let Some(h) = hit {
                first = Some(first.map_or(h, |f| f.min(h)));
            }
        }
        first
    }

    fn free(&self, p: usize) -> bool {
        let pr = &self.provers[p];
        !pr.exited && pr.running < pr.capacity && self.online(p, self.now)
    }

    fn draw_time(&mut self, p: usize) -> f64 {
        let pr = &self.provers[p];
        let (mean, sigma, dist) = (pr.time_mean, pr.sigma, pr.dist);
        match dist {
            TimeDist::Fixed => mean,
            TimeDist::Exp => -mean * (1.0 - self.rng.random::<f64>()).ln(),
            TimeDist::Lognormal => {
                // Box–Muller; μ chosen so the mean is `mean`.
                let (u1, u2): (f64, f64) = (self.rng.random(), self.rng.random());
                let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (mean.ln() - sigma * sigma / 2.0 + sigma * z).exp()
            }
        }
    }

    fn start(&mut self, j: usize, p: usize, kind: Kind, start: u64, price: f64, collateral: f64) {
        let t = self.draw_time(p);
        // Up to 1 ms of jitter breaks exact ties between equally fast provers at random
        // (otherwise the event order, i.e. the prover index, would decide every race).
        let mut end = start + us(t).max(1) + self.rng.random_range(0..1_000);
        let mut success = self.rng.random::<f64>() >= self.provers[p].fail;
        if let Some(off) = self.offline_from(p, start, end) {
            success = false;
            end = off.max(start + 1);
        }
        self.provers[p].running += 1;
        let a = self.attempts.len();
        self.attempts.push(Attempt {
            job: j,
            prover: p,
            kind,
            start,
            end,
            success,
            price,
            collateral,
            running: true,
            abandoned: false,
            timed_out: false,
        });
        self.jobs[j].tried.push(p);
        self.jobs[j].attempts.push(a);
        self.at(end, Ev::End(a));
        if kind == Kind::Assigned {
            self.at(start + us(self.sc.fallback_timeout_s), Ev::Timeout(a));
        }
    }

    fn arrive(&mut self, j: usize) {
        self.jobs[j].arrival = self.now;
        if j + 1 < self.jobs.len() {
            let gap = if self.sc.poisson {
                -self.sc.arrival_s * (1.0 - self.rng.random::<f64>()).ln()
            } else {
                self.sc.arrival_s
            };
            self.at(self.now + us(gap), Ev::Arrive(j + 1));
        }
        let period = self.sc.period_jobs as usize;
        if j > 0 && j.is_multiple_of(period) {
            self.close_period();
        }
        if self.mech == Mech::Reputation && j > 0 && j.is_multiple_of(self.sc.epoch_jobs as usize) {
            // The epoch ends: every prover decays, those who delivered in it gain.
            let b = self.sc.booster;
            for p in &mut self.provers {
                p.score = b.step(p.score, std::mem::take(&mut p.epoch_active));
            }
        }
        self.allocate(j);
    }

    fn retry(&mut self, j: usize) {
        if self.jobs[j].done || self.jobs[j].failed {
            return;
        }
        if self.jobs[j].race_open {
            self.open_race(j, 0.0);
        } else {
            self.allocate(j);
        }
    }

    /// Schedules another try a block later, or gives the job up.
    fn later(&mut self, j: usize) {
        let give_up = self.jobs[j].arrival + us(self.sc.deadline_s * self.sc.give_up_deadlines);
        let next = self.now + us(self.sc.block_s);
        if next > give_up {
            self.jobs[j].failed = true;
            self.out.unfulfilled += 1;
        } else {
            self.at(next, Ev::Retry(j));
        }
    }

    fn candidates(&self) -> Vec<Candidate<'static>> {
        (0..self.provers.len())
            .map(|p| Candidate {
                id: self.ids[p],
                free: if self.free(p) { UNIT } else { Resources::ZERO },
                free_stake: MicroCredits(u64::MAX),
                stake: MicroCredits(self.provers[p].stake),
                labels: &[],
            })
            .collect()
    }

    fn index_of(&self, id: &ProverId) -> usize {
        let mut b = [0u8; 8];
        b.copy_from_slice(&id.0[..8]);
        u64::from_be_bytes(b) as usize
    }

    /// The ids of the provers the job already tried: a fallback excludes them.
    fn tried(&self, j: usize) -> Vec<ProverId> {
        self.jobs[j].tried.iter().map(|p| self.ids[*p]).collect()
    }

    fn seed(&mut self) -> Seed {
        Seed(self.rng.random())
    }

    /// A prover's lowest acceptable price.
    fn reservation(&self, p: usize) -> f64 {
        let pr = &self.provers[p];
        if pr.zero_fee {
            0.0
        } else {
            pr.cost * (1.0 + self.sc.margin)
        }
    }

    fn allocate(&mut self, j: usize) {
        match self.mech {
            Mech::Chain(MechanismKind::OpenRace) => {
                self.jobs[j].race_open = true;
                self.open_race(j, self.sc.quote);
            }
            Mech::Chain(MechanismKind::ReverseDutch) => self.auction(j, true),
            Mech::Chain(MechanismKind::LowestBid) => self.auction(j, false),
            Mech::Chain(kind) => self.assign_fixed(j, kind, 1),
            Mech::Redundant(k) => self.assign_fixed(j, MechanismKind::RandomWithFallback, k),
            Mech::Tullock => self.contest(j),
            Mech::Reputation => self.shared(j),
        }
    }

    /// Random or stake-weighted assignment of `k` provers at the posted price.
    fn assign_fixed(&mut self, j: usize, kind: MechanismKind, k: u8) {
        let cands = self.candidates();
        let mut exclude = self.tried(j);
        let mut got = 0;
        for _ in 0..k {
            let request = request(&exclude);
            let round = Round {
                seed: self.seed(),
                request: &request,
                elapsed: 0,
                quote: mc(self.sc.quote),
                max_fee: mc(self.sc.max_fee),
                params: &self.params,
            };
            match mechanism(kind).decide(&round, &cands, &[]) {
                Decision::Assign { prover, .. } => {
                    let p = self.index_of(&prover);
                    exclude.push(prover);
                    self.start(j, p, Kind::Assigned, self.now, self.sc.quote, 0.0);
                    got += 1;
                }
                _ => break,
            }
        }
        if got > 0 {
            self.jobs[j].mech_attempts += 1;
        } else if self.jobs[j].mech_attempts > 0 {
            // Fallback found nobody fresh: the race.
            self.jobs[j].race_open = true;
            self.open_race(j, self.sc.quote);
        } else {
            self.later(j);
        }
    }

    /// Reverse Dutch (`dutch`) or lowest-bid auction among the free provers.
    fn auction(&mut self, j: usize, dutch: bool) {
        let cands = self.candidates();
        let free: Vec<usize> = (0..self.provers.len()).filter(|p| self.free(*p)).collect();
        let reserve: Vec<f64> = free.iter().map(|p| self.reservation(*p)).collect();
        // Each holds out for just under the cheapest rival's reservation.
        let ramp = self.sc.dutch_ramp_blocks;
        let lo = self.sc.dutch_start;
        let step = (self.sc.max_fee - lo) / ramp as f64;
        let tick = if dutch { step } else { 0.001 };
        let asks: Vec<f64> = (0..free.len())
            .map(|i| {
                let rival = (0..free.len())
                    .filter(|k| *k != i)
                    .map(|k| reserve[k])
                    .fold(f64::INFINITY, f64::min);
                let strategic =
                    if dutch && !self.sc.dutch_wait { reserve[i] } else { rival - tick };
                if rival.is_finite() {
                    reserve[i].max(strategic)
                } else {
                    self.sc.max_fee
                }
            })
            .collect();
        let exclude = self.tried(j);
        let request = request(&exclude);
        let kind = if dutch { MechanismKind::ReverseDutch } else { MechanismKind::LowestBid };
        let last = if dutch { ramp } else { self.sc.bid_window_blocks };
        let mut order: Vec<usize> = (0..free.len()).collect();
        for b in 0..=last {
            let offers: Vec<Offer> = if dutch {
                let price = ReverseDutch::price(mc(lo), mc(self.sc.max_fee), b, ramp);
                // Arrival order within a block is random.
                shuffle(&mut order, &mut self.rng);
                order
                    .iter()
                    .filter(|i| mc(asks[**i]) <= price)
                    .map(|i| Offer { prover: self.ids[free[*i]], price })
                    .collect()
            } else {
                (0..free.len())
                    .map(|i| Offer { prover: self.ids[free[i]], price: mc(asks[i]) })
                    .collect()
            };
            let round = Round {
                seed: self.seed(),
                request: &request,
                elapsed: b,
                quote: mc(lo),
                max_fee: mc(self.sc.max_fee),
                params: &self.params,
            };
            let when = self.now + b * us(self.sc.block_s);
            match mechanism(kind).decide(&round, &cands, &offers) {
                Decision::Wait => continue,
                Decision::Assign { prover, price, collateral } => {
                    let p = self.index_of(&prover);
                    self.jobs[j].mech_attempts += 1;
                    let (price, collateral) = (price.0 as f64 / US, collateral.0 as f64 / US);
                    self.start(j, p, Kind::Assigned, when, price, collateral);
                    return;
                }
                Decision::Open { .. } | Decision::Unfilled => break,
            }
        }
        // Nobody locked or bid: the open race at the max fee, once the auction is over.
        self.jobs[j].race_open = true;
        self.jobs[j].mech_attempts += 1;
        self.at(self.now + last * us(self.sc.block_s), Ev::Retry(j));
    }

    /// The Tullock contest among the free provers; the winner proves at the max fee.
    fn contest(&mut self, j: usize) {
        let free: Vec<usize> = (0..self.provers.len())
            .filter(|p| self.free(*p) && !self.jobs[j].tried.contains(p))
            .collect();
        let values: Vec<f64> =
            free.iter().map(|p| self.sc.max_fee - self.reservation(*p)).collect();
        let (shares, total) = tullock(&values);
        if shares.iter().all(|s| *s == 0.0) {
            return self.fallback_or_later(j);
        }
        for (i, p) in free.iter().enumerate() {
            // All-pay: every active contestant spends its effort, which is burned.
            let effort = shares[i] * total;
            self.charge(*p, effort);
            self.out.burned += effort;
        }
        let mut r = self.rng.random::<f64>();
        let mut pick = free[free.len() - 1];
        for (i, p) in free.iter().enumerate() {
            if r < shares[i] {
                pick = *p;
                break;
            }
            r -= shares[i];
        }
        self.jobs[j].mech_attempts += 1;
        self.start(j, pick, Kind::Assigned, self.now, self.sc.max_fee, 0.0);
    }

    fn fallback_or_later(&mut self, j: usize) {
        if self.jobs[j].mech_attempts > 0 {
            self.jobs[j].race_open = true;
            self.open_race(j, self.sc.quote);
        } else {
            self.later(j);
        }
    }

    /// Every free prover proves; the price is shared by reputation.
    fn shared(&mut self, j: usize) {
        let free: Vec<usize> = (0..self.provers.len()).filter(|p| self.free(*p)).collect();
        if free.is_empty() {
            return self.later(j);
        }
        self.jobs[j].shared_pending = free.len() as u32;
        for p in free {
            self.start(j, p, Kind::Shared, self.now, 0.0, 0.0);
        }
    }

    fn open_race(&mut self, j: usize, price: f64) {
        let price = if price > 0.0 { price } else { self.race_price() };
        let free: Vec<usize> = (0..self.provers.len()).filter(|p| self.free(*p)).collect();
        if free.is_empty() {
            return self.later(j);
        }
        for p in free {
            self.start(j, p, Kind::Race, self.now, price, 0.0);
        }
    }

    fn race_price(&self) -> f64 {
        match self.mech {
            Mech::Chain(MechanismKind::ReverseDutch | MechanismKind::LowestBid) | Mech::Tullock => {
                self.sc.max_fee
            }
            _ => self.sc.quote,
        }
    }

    fn charge(&mut self, p: usize, credits: f64) {
        let e = self.provers[p].entity;
        self.spent[e] += credits;
        self.period_profit[e] -= credits;
    }

    fn pay(&mut self, p: usize, credits: f64) {
        let e = self.provers[p].entity;
        self.revenue[e] += credits;
        self.period_profit[e] += credits;
    }

    fn end(&mut self, a: usize) {
        let at = self.attempts[a].clone();
        if !at.running {
            return;
        }
        self.attempts[a].running = false;
        self.provers[at.prover].running -= 1;
        let cost = self.provers[at.prover].cost;
        self.charge(at.prover, cost);
        let j = at.job;
        if at.kind == Kind::Shared {
            if at.success && self.now <= self.jobs[j].arrival + us(self.sc.deadline_s) {
                self.jobs[j].shared_delivered.push(at.prover);
            }
            if at.success && !self.jobs[j].done {
                self.complete(j);
                self.out.useful_cost += cost;
            } else {
                self.out.wasted_cost += cost;
            }
            self.jobs[j].shared_pending -= 1;
            if self.jobs[j].shared_pending == 0 {
                self.settle_shared(j);
            }
            return;
        }
        let paid_anyway = matches!(self.mech, Mech::Redundant(_)) && at.kind == Kind::Assigned;
        if !at.success || at.abandoned || (self.jobs[j].done && !paid_anyway) || self.jobs[j].failed
        {
            self.out.wasted_cost += cost;
            return;
        }
        // A valid proof that counts.
        let bounty =
            if at.kind == Kind::Race { std::mem::take(&mut self.jobs[j].bounty) } else { 0.0 };
        self.pay(at.prover, at.price + bounty);
        self.out.paid += at.price;
        if self.jobs[j].done {
            // A redundant copy: paid, but the job was already proven.
            self.out.wasted_cost += cost;
            return;
        }
        self.out.useful_cost += cost;
        self.complete(j);
        // The job is proven: racers and fallbacks still at work stop, having spent part of
        // their cost (redundant copies run on: each valid one is paid).
        let rivals = self.jobs[j].attempts.clone();
        for &b in &rivals {
            let r = self.attempts[b].clone();
            if !r.running || (paid_anyway && r.kind == Kind::Assigned && !r.timed_out) {
                continue;
            }
            self.attempts[b].running = false;
            self.attempts[b].abandoned = true;
            self.provers[r.prover].running -= 1;
            let full = self.provers[r.prover].cost;
            let part = full * (self.now - r.start) as f64 / (r.end - r.start).max(1) as f64;
            self.charge(r.prover, part);
            self.out.wasted_cost += part;
        }
    }

    fn complete(&mut self, j: usize) {
        self.jobs[j].done = true;
        let latency = (self.now - self.jobs[j].arrival) as f64 / US;
        self.out.latencies.push(latency);
        if latency > self.sc.deadline_s {
            self.out.late += 1;
        }
    }

    fn settle_shared(&mut self, j: usize) {
        let delivered = std::mem::take(&mut self.jobs[j].shared_delivered);
        let b = self.sc.booster;
        let weights: Vec<u64> =
            delivered.iter().map(|p| b.shares(self.provers[*p].score)).collect();
        let total: u64 = weights.iter().sum();
        if total > 0 {
            self.out.paid += self.sc.quote;
            for (p, w) in delivered.iter().zip(&weights) {
                self.pay(*p, self.sc.quote * *w as f64 / total as f64);
            }
        } else if !self.jobs[j].done {
            self.later(j);
        }
        for p in delivered {
            self.provers[p].epoch_active = true;
        }
    }

    fn timeout(&mut self, a: usize) {
        let at = self.attempts[a].clone();
        let j = at.job;
        if self.jobs[j].done || self.jobs[j].failed || at.abandoned {
            return;
        }
        if at.success && !at.running {
            return; // delivered in time
        }
        // Missed the timeout: slashed, and the job falls back; the attempt may still deliver
        // first (Boundless' lock timeout before the request's own deadline).
        self.attempts[a].timed_out = true;
        if at.collateral > 0.0 {
            self.charge(at.prover, at.collateral);
            let burned = at.collateral * self.sc.collateral_burn;
            self.out.burned += burned;
            self.jobs[j].bounty += at.collateral - burned;
        } else {
            let slash = at.price * self.sc.slash_ratio;
            self.charge(at.prover, slash);
            self.out.burned += slash;
        }
        // Redundancy: another copy may still deliver.
        let live = self.jobs[j].attempts.iter().any(|b| {
            let b = &self.attempts[*b];
            b.kind == Kind::Assigned && !b.timed_out && b.running
        });
        if live {
            return;
        }
        let auction = matches!(
            self.mech,
            Mech::Chain(MechanismKind::ReverseDutch | MechanismKind::LowestBid)
        );
        if auction || self.jobs[j].mech_attempts > self.sc.fallback_attempts {
            self.jobs[j].race_open = true;
            self.open_race(j, 0.0);
        } else {
            self.allocate(j);
        }
    }

    fn close_period(&mut self) {
        if self.sc.exit_after_periods == 0 && self.sc.fixed_cost_per_period == 0.0 {
            return;
        }
        let mut members = vec![0u32; self.entities];
        for p in &self.provers {
            if !p.exited {
                members[p.entity] += 1;
            }
        }
        for (e, members) in members.into_iter().enumerate() {
            if self.exited[e] {
                continue;
            }
            let fixed = self.sc.fixed_cost_per_period * f64::from(members);
            self.spent[e] += fixed;
            let profit = self.period_profit[e] - fixed;
            self.period_profit[e] = 0.0;
            if self.sc.exit_after_periods == 0 {
                continue;
            }
            self.loss_streak[e] = if profit < 0.0 { self.loss_streak[e] + 1 } else { 0 };
            if self.loss_streak[e] >= self.sc.exit_after_periods && !self.subsidised[e] {
                self.exited[e] = true;
                self.out.entities_exited += 1;
                for p in self.provers.iter_mut().filter(|p| p.entity == e) {
                    p.exited = true;
                }
            }
        }
    }

    fn finish(mut self) -> RunResult {
        // Jobs still open when the queue drained were never proven.
        for j in &self.jobs {
            if !j.done && !j.failed {
                self.out.unfulfilled += 1;
            }
        }
        self.out.rewards = self.revenue.iter().map(|r| mc(*r).0).collect();
        self.out.profit = (0..self.entities).map(|e| self.revenue[e] - self.spent[e]).collect();
        self.out
    }
}

/// Every simulated job needs one unit of capacity; a busy prover offers none.
const UNIT: Resources = Resources { cores: MilliCores(1_000), memory: Bytes(1), gpus: GpuCount(0) };

/// The request of one attempt, excluding the provers the job already tried.
fn request(exclude: &[ProverId]) -> Request<'_> {
    Request {
        resources: UNIT,
        bond: MicroCredits(0),
        prover_set: &ProverSet::Any,
        requires: &[],
        exclude,
    }
}

fn shuffle<T>(v: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..v.len()).rev() {
        let k = rng.random_range(0..=i);
        v.swap(i, k);
    }
}
