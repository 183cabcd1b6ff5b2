//! What this machine offers programs, as labels a prover registers with.
//!
//! A program that needs a CPU level declares it in its manifest's `requires` (e.g.
//! `cpu=x86-64-v3` for Plonky3's AVX2 kernels), and only provers carrying that label are
//! assigned its jobs. The labels here are detected, not declared.

/// The x86-64 micro-architecture levels this CPU supports, as `cpu=x86-64-v2`… labels.
pub fn cpu_labels() -> Vec<String> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let mut out = vec!["cpu=x86-64".to_owned()];
        let v2 = has!("cmpxchg16b")
            && has!("popcnt")
            && has!("sse3")
            && has!("sse4.1")
            && has!("sse4.2")
            && has!("ssse3");
        let v3 = v2
            && has!("avx")
            && has!("avx2")
            && has!("bmi1")
            && has!("bmi2")
            && has!("f16c")
            && has!("fma")
            && has!("lzcnt")
            && has!("movbe");
        let v4 = v3
            && has!("avx512f")
            && has!("avx512bw")
            && has!("avx512cd")
            && has!("avx512dq")
            && has!("avx512vl");
        for (level, ok) in [("v2", v2), ("v3", v3), ("v4", v4)] {
            if ok {
                out.push(format!("cpu=x86-64-{level}"));
            }
        }
        out
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        vec![format!("cpu={}", std::env::consts::ARCH)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_cumulative_and_valid_labels() {
        let labels = cpu_labels();
        assert!(!labels.is_empty());
        for l in &labels {
            assert!(l.parse::<provernet_types::Label>().is_ok(), "{l}");
        }
        if labels.iter().any(|l| l == "cpu=x86-64-v3") {
            assert!(labels.iter().any(|l| l == "cpu=x86-64-v2"));
        }
    }
}
