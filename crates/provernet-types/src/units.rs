//! Quantities with their unit in the type, and parsing of human units.
//!
//! Gevulot shipped unit bugs (cores vs millicores, bytes vs MB) in its own examples; here every
//! quantity is a newtype, parsing is explicit about the unit, and printing is unambiguous:
//! `500m` cores, `64GiB` or `190GB` of memory, `5m` or `90s` of time.

use crate::codec::{CodecError, Decode, Encode, Reader};
use std::fmt;
use std::str::FromStr;

/// Why a quantity could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{input}`: {reason}")]
pub struct ParseUnitError {
    pub what: &'static str,
    pub input: String,
    pub reason: String,
}

fn unit_err(what: &'static str, input: &str, reason: impl Into<String>) -> ParseUnitError {
    ParseUnitError { what, input: input.to_owned(), reason: reason.into() }
}

macro_rules! quantity {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl $name {
            pub const ZERO: Self = Self(0);

            pub fn checked_add(self, other: Self) -> Option<Self> {
                self.0.checked_add(other.0).map(Self)
            }

            pub fn checked_sub(self, other: Self) -> Option<Self> {
                self.0.checked_sub(other.0).map(Self)
            }

            pub fn saturating_sub(self, other: Self) -> Self {
                Self(self.0.saturating_sub(other.0))
            }
        }

        impl Encode for $name {
            fn encode_to(&self, out: &mut Vec<u8>) {
                self.0.encode_to(out);
            }
        }

        impl Decode for $name {
            fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
                Ok(Self(<$inner>::decode_from(r)?))
            }
        }

        crate::schema::schema!($name, crate::schema::integer(stringify!($name)));
    };
}

quantity!(
    /// A block height. Genesis state is at height 0; the first block is height 1.
    Height(u64)
);
quantity!(
    /// A number of blocks, for timeouts and delays.
    Blocks(u64)
);
quantity!(
    /// A transaction sequence number of an account.
    Nonce(u64)
);
quantity!(
    /// An amount of credits in millionths (1 credit = 1 USD = 1,000,000 micro-credits).
    MicroCredits(u64)
);
quantity!(
    /// A size in bytes.
    Bytes(u64)
);
quantity!(
    /// CPU in thousandths of a core (`1000` = one core).
    MilliCores(u32)
);
quantity!(
    /// A whole number of GPUs.
    GpuCount(u16)
);
quantity!(
    /// A duration in whole seconds.
    Seconds(u64)
);
quantity!(
    /// A duration or timestamp in milliseconds.
    Millis(u64)
);

impl Height {
    pub fn plus(self, blocks: Blocks) -> Height {
        Height(self.0.saturating_add(blocks.0))
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl fmt::Debug for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "h{}", self.0)
    }
}
impl fmt::Debug for Blocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} blocks", self.0)
    }
}
impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nonce {}", self.0)
    }
}
impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl fmt::Debug for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

impl MicroCredits {
    pub const PER_CREDIT: u64 = 1_000_000;

    /// `self × bps / 10_000`, rounded down and capped at `u64::MAX` (bps above 10,000 can
    /// overflow). Basis points are the only fractions in ledger math.
    pub fn mul_bps(self, bps: u32) -> MicroCredits {
        let v = u128::from(self.0) * u128::from(bps) / 10_000;
        MicroCredits(u64::try_from(v).unwrap_or(u64::MAX))
    }
}

impl fmt::Display for MicroCredits {
    /// Prints credits with six decimals: `0.035000 credits`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06} credits", self.0 / Self::PER_CREDIT, self.0 % Self::PER_CREDIT)
    }
}
impl fmt::Debug for MicroCredits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}µc", self.0)
    }
}

impl FromStr for MicroCredits {
    type Err = ParseUnitError;
    /// Parses credits as a decimal with at most six places (`0.035`, `12`); `µc` suffix for
    /// micro-credits (`35000µc` or `35000uc`).
    fn from_str(input: &str) -> Result<Self, ParseUnitError> {
        const WHAT: &str = "amount";
        let s = input.trim();
        let s = s.strip_suffix("credits").or_else(|| s.strip_suffix("credit")).unwrap_or(s);
        let s = s.trim();
        if let Some(n) = s.strip_suffix("µc").or_else(|| s.strip_suffix("uc")) {
            return n
                .trim()
                .parse::<u64>()
                .map(MicroCredits)
                .map_err(|e| unit_err(WHAT, input, e.to_string()));
        }
        let micros = parse_decimal(s, 6).ok_or_else(|| {
            unit_err(WHAT, input, "expected credits with at most 6 decimals, e.g. `0.035`")
        })?;
        Ok(MicroCredits(micros))
    }
}

/// Parses a non-negative decimal `int[.frac]` into an integer scaled by `10^scale`, exactly.
fn parse_decimal(s: &str, scale: u32) -> Option<u64> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if frac.len() > scale as usize || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut frac_val: u64 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    frac_val = frac_val.checked_mul(10u64.pow(scale - frac.len() as u32))?;
    int.checked_mul(10u64.pow(scale))?.checked_add(frac_val)
}

impl MilliCores {
    pub const PER_CORE: u32 = 1000;

    pub fn from_cores(cores: u32) -> Self {
        Self(cores.saturating_mul(Self::PER_CORE))
    }
}

impl FromStr for MilliCores {
    type Err = ParseUnitError;
    /// `32` or `1.5` cores, or `500m` millicores.
    fn from_str(input: &str) -> Result<Self, ParseUnitError> {
        const WHAT: &str = "cores";
        let s = input.trim();
        let value = if let Some(m) = s.strip_suffix('m') {
            m.parse::<u32>().ok()
        } else {
            parse_decimal(s, 3).and_then(|v| u32::try_from(v).ok())
        };
        value.map(MilliCores).ok_or_else(|| {
            unit_err(WHAT, input, "expected cores (`32`, `1.5`) or millicores (`500m`)")
        })
    }
}

impl fmt::Display for MilliCores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(Self::PER_CORE) {
            write!(f, "{}", self.0 / Self::PER_CORE)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}
impl fmt::Debug for MilliCores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}m", self.0)
    }
}

const BYTE_UNITS: &[(&str, u64)] = &[
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("B", 1),
];

impl Bytes {
    pub const KIB: u64 = 1 << 10;
    pub const MIB: u64 = 1 << 20;
    pub const GIB: u64 = 1 << 30;

    pub fn gib(n: u64) -> Self {
        Self(n.saturating_mul(Self::GIB))
    }
}

impl FromStr for Bytes {
    type Err = ParseUnitError;
    /// A number with a unit: `190GB` (10^9), `64GiB` (2^30), `512MiB`, `4096B`. A bare number is
    /// refused: memory sizes without a unit are how byte/megabyte mix-ups happen.
    fn from_str(input: &str) -> Result<Self, ParseUnitError> {
        const WHAT: &str = "size";
        let s = input.trim();
        let (num, mult) = BYTE_UNITS
            .iter()
            .find_map(|(unit, mult)| s.strip_suffix(unit).map(|n| (n.trim(), *mult)))
            .ok_or_else(|| {
                unit_err(WHAT, input, "a unit is required: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB")
            })?;
        // Allow up to three decimals (`1.5GiB`), computed exactly then scaled.
        let milli = parse_decimal(num, 3)
            .ok_or_else(|| unit_err(WHAT, input, "expected a number such as `64` or `1.5`"))?;
        let bytes = u128::from(milli) * u128::from(mult) / 1000;
        if u128::from(milli) * u128::from(mult) % 1000 != 0 {
            return Err(unit_err(WHAT, input, "not a whole number of bytes"));
        }
        u64::try_from(bytes).map(Bytes).map_err(|_| unit_err(WHAT, input, "too large"))
    }
}

impl fmt::Display for Bytes {
    /// The largest unit that represents the value exactly: `64GiB`, `190GB`, `1001B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0B");
        }
        let (unit, mult) = BYTE_UNITS
            .iter()
            .filter(|(_, mult)| self.0.is_multiple_of(*mult))
            .max_by_key(|(_, mult)| *mult)
            .unwrap_or(&("B", 1));
        write!(f, "{}{}", self.0 / mult, unit)
    }
}
impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for GpuCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl fmt::Debug for GpuCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} gpus", self.0)
    }
}

impl FromStr for GpuCount {
    type Err = ParseUnitError;
    fn from_str(input: &str) -> Result<Self, ParseUnitError> {
        input
            .trim()
            .parse::<u16>()
            .map(GpuCount)
            .map_err(|_| unit_err("GPU count", input, "expected a whole number such as `1`"))
    }
}

impl FromStr for Seconds {
    type Err = ParseUnitError;
    /// `90s`, `5m`, `2h`, `1h30m`; a bare number is seconds.
    fn from_str(input: &str) -> Result<Self, ParseUnitError> {
        const WHAT: &str = "duration";
        let s = input.trim();
        if let Ok(n) = s.parse::<u64>() {
            return Ok(Seconds(n));
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        let mut any = false;
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let mult = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => {
                    return Err(unit_err(
                        WHAT,
                        input,
                        format!("unknown unit `{c}`; use s, m, h, d"),
                    ))
                }
            };
            let n: u64 = digits
                .parse()
                .map_err(|_| unit_err(WHAT, input, "expected a number before each unit"))?;
            total = n
                .checked_mul(mult)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| unit_err(WHAT, input, "too large"))?;
            digits.clear();
            any = true;
        }
        if !digits.is_empty() || !any {
            return Err(unit_err(WHAT, input, "expected e.g. `90s`, `5m`, `1h30m`"));
        }
        Ok(Seconds(total))
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s) = (self.0 / 3600, self.0 / 60 % 60, self.0 % 60);
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if m > 0 {
            out.push_str(&format!("{m}m"));
        }
        if s > 0 || out.is_empty() {
            out.push_str(&format!("{s}s"));
        }
        f.write_str(&out)
    }
}
impl fmt::Debug for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_parse_and_print() {
        assert_eq!("32".parse::<MilliCores>(), Ok(MilliCores(32_000)));
        assert_eq!("500m".parse::<MilliCores>(), Ok(MilliCores(500)));
        assert_eq!("1.5".parse::<MilliCores>(), Ok(MilliCores(1500)));
        assert_eq!(MilliCores(32_000).to_string(), "32");
        assert_eq!(MilliCores(500).to_string(), "500m");
        assert!("1.2345".parse::<MilliCores>().is_err());
        assert!("-1".parse::<MilliCores>().is_err());
        assert!("lots".parse::<MilliCores>().is_err());
    }

    #[test]
    fn bytes_distinguish_decimal_and_binary_units() {
        assert_eq!("190GB".parse::<Bytes>(), Ok(Bytes(190_000_000_000)));
        assert_eq!("64GiB".parse::<Bytes>(), Ok(Bytes(64 << 30)));
        assert_eq!("1.5GiB".parse::<Bytes>(), Ok(Bytes(3 << 29)));
        assert_eq!(Bytes(190_000_000_000).to_string(), "190GB");
        assert_eq!(Bytes(64 << 30).to_string(), "64GiB");
        assert_eq!(Bytes(1001).to_string(), "1001B");
        let err = "64".parse::<Bytes>().unwrap_err();
        assert!(err.to_string().contains("a unit is required"), "{err}");
        assert!("99999999TB".parse::<Bytes>().is_err());
    }

    #[test]
    fn printed_quantities_parse_back() {
        for b in [0, 1, 1000, 1024, 190_000_000_000, 64 << 30, 12_345_678] {
            assert_eq!(Bytes(b).to_string().parse::<Bytes>(), Ok(Bytes(b)));
        }
        for c in [0, 1, 500, 1000, 32_000, 1500] {
            assert_eq!(MilliCores(c).to_string().parse::<MilliCores>(), Ok(MilliCores(c)));
        }
        for s in [0, 1, 59, 60, 90, 300, 3600, 5400, 86_399] {
            assert_eq!(Seconds(s).to_string().parse::<Seconds>(), Ok(Seconds(s)));
        }
    }

    #[test]
    fn durations() {
        assert_eq!("5m".parse::<Seconds>(), Ok(Seconds(300)));
        assert_eq!("90s".parse::<Seconds>(), Ok(Seconds(90)));
        assert_eq!("1h30m".parse::<Seconds>(), Ok(Seconds(5400)));
        assert_eq!("45".parse::<Seconds>(), Ok(Seconds(45)));
        assert!("5x".parse::<Seconds>().is_err());
        assert!("m".parse::<Seconds>().is_err());
        assert!("5m3".parse::<Seconds>().is_err());
        assert_eq!(Seconds(5400).to_string(), "1h30m");
    }

    #[test]
    fn credits() {
        assert_eq!("0.035".parse::<MicroCredits>(), Ok(MicroCredits(35_000)));
        assert_eq!("12".parse::<MicroCredits>(), Ok(MicroCredits(12_000_000)));
        assert_eq!("35000uc".parse::<MicroCredits>(), Ok(MicroCredits(35_000)));
        assert!("0.0000001".parse::<MicroCredits>().is_err());
        assert_eq!(MicroCredits(35_000).to_string(), "0.035000 credits");
        assert_eq!(MicroCredits(1_000).mul_bps(5_000), MicroCredits(500));
    }
}
