//! Posted prices: per core-second, per GiB-second of memory and per GPU-second.
//!
//! A job pays for the resources it reserves for the time limit it asks for, whether or not it
//! uses all of it (seed 001: "you pay for what you requested"). Prices are integers in
//! pico-credits (10⁻¹² credit) per unit-second so that sub-micro-credit rates stay exact; a fee
//! is computed exactly in `u128` and rounded *up* to a whole micro-credit once, at the end.

use provernet_types::{Bytes, MicroCredits, Resources, Seconds};

const PICO_PER_MICRO: u128 = 1_000_000;
const MILLI_PER_CORE: u128 = 1000;
const BYTES_PER_GIB: u128 = 1 << 30;

/// The chain's posted prices.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct PriceTable {
    /// Pico-credits per core (1000 millicores) per second.
    pub core_pico_per_s: u64,
    /// Pico-credits per GiB of memory per second.
    pub memory_pico_per_gib_s: u64,
    /// Pico-credits per GPU per second.
    pub gpu_pico_per_s: u64,
}

provernet_types::codec_struct!(PriceTable {
    core_pico_per_s,
    memory_pico_per_gib_s,
    gpu_pico_per_s
});

impl Default for PriceTable {
    /// Calibrated to ZkCloud's published rates (seed 001): a fully used CPU node (96 cores,
    /// 768 GB) costs $0.61/h, a fully used GPU node (2 GPUs, 64 cores, 380 GB) $0.84/h, so half
    /// the GPU node (32 cores, 190 GB, 1 GPU) for 5 minutes costs 0.035 credits.
    fn default() -> Self {
        PriceTable {
            core_pico_per_s: 1_150_000,
            memory_pico_per_gib_s: 82_550,
            gpu_pico_per_s: 65_259_320,
        }
    }
}

impl PriceTable {
    /// The exact price in pico-credits × 1000 × 2³⁰ (the common denominator of millicores and
    /// bytes), so no precision is lost before the single rounding step.
    fn scaled(&self, r: &Resources, time: Seconds) -> u128 {
        let secs = u128::from(time.0);
        let cores = u128::from(r.cores.0) * u128::from(self.core_pico_per_s) * BYTES_PER_GIB;
        let memory =
            u128::from(r.memory.0) * u128::from(self.memory_pico_per_gib_s) * MILLI_PER_CORE;
        let gpus =
            u128::from(r.gpus.0) * u128::from(self.gpu_pico_per_s) * MILLI_PER_CORE * BYTES_PER_GIB;
        (cores + memory + gpus) * secs
    }

    /// The fee for reserving `r` for `time`, rounded up to a micro-credit. Saturates at
    /// `u64::MAX` micro-credits, far above anything the resource limits allow.
    pub fn quote(&self, r: &Resources, time: Seconds) -> MicroCredits {
        let denom = PICO_PER_MICRO * MILLI_PER_CORE * BYTES_PER_GIB;
        let micro = self.scaled(r, time).div_ceil(denom);
        MicroCredits(u64::try_from(micro).unwrap_or(u64::MAX))
    }

    /// The price of one hour of `r`, for display.
    pub fn hourly(&self, r: &Resources) -> MicroCredits {
        self.quote(r, Seconds(3600))
    }

    /// Whether a table can price anything (all zero would make jobs free and spam costless).
    pub fn is_usable(&self) -> bool {
        self.core_pico_per_s > 0 && self.memory_pico_per_gib_s > 0
    }
}

/// The memory of a machine described in decimal gigabytes, as the seeds quote it.
pub fn gb(n: u64) -> Bytes {
    Bytes(n * 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use provernet_types::{GpuCount, MilliCores};

    fn res(cores: u32, mem_gb: u64, gpus: u16) -> Resources {
        Resources { cores: MilliCores::from_cores(cores), memory: gb(mem_gb), gpus: GpuCount(gpus) }
    }

    #[test]
    fn seed_001_quote_32_cores_190gb_1_gpu_5_minutes_is_0_035() {
        let fee = PriceTable::default().quote(&res(32, 190, 1), Seconds(300));
        assert_eq!(fee, MicroCredits(35_000));
    }

    #[test]
    fn seed_001_96_cores_768gb_10_minutes_is_about_0_10() {
        let fee = PriceTable::default().quote(&res(96, 768, 0), Seconds(600));
        assert!((100_000..=103_000).contains(&fee.0), "{fee}");
    }

    #[test]
    fn seed_001_hourly_node_rates() {
        let p = PriceTable::default();
        // Rounded to the cent, as the rates are published.
        let cents = |m: MicroCredits| (m.0 + 5_000) / 10_000;
        assert_eq!(cents(p.hourly(&res(64, 380, 2))), 84, "GPU node");
        assert_eq!(cents(p.hourly(&res(96, 768, 0))), 61, "CPU node");
    }

    #[test]
    fn fees_round_up_and_never_under_charge() {
        let p = PriceTable::default();
        let tiny = Resources { cores: MilliCores(1), memory: Bytes(1), gpus: GpuCount(0) };
        assert_eq!(p.quote(&tiny, Seconds(1)), MicroCredits(1));
        assert_eq!(p.quote(&tiny, Seconds(0)), MicroCredits(0));
    }

    #[test]
    fn the_largest_request_does_not_overflow() {
        use provernet_types::limits::*;
        let max = Resources { cores: CORES_MAX, memory: MEMORY_MAX, gpus: GPUS_MAX };
        let fee = PriceTable::default().quote(&max, TIME_LIMIT_MAX);
        assert!(fee.0 < u64::MAX / 1000, "{fee}");
    }

    proptest::proptest! {
        #[test]
        fn price_is_monotone_in_every_dimension(
            c in 0u32..4_096_000, m in 0u64..(1u64 << 44), g in 0u16..64, t in 0u64..86_400,
            dc in 0u32..1000, dm in 0u64..(1 << 30), dg in 0u16..2, dt in 0u64..100,
        ) {
            let p = PriceTable::default();
            let a = Resources { cores: MilliCores(c), memory: Bytes(m), gpus: GpuCount(g) };
            let b = Resources { cores: MilliCores(c + dc), memory: Bytes(m + dm), gpus: GpuCount(g + dg) };
            proptest::prop_assert!(p.quote(&a, Seconds(t)) <= p.quote(&b, Seconds(t + dt)));
        }
    }
}
