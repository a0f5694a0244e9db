//! Keys and values for the loads: key n is a prefix and n as zero-padded decimal, so keys have
//! the requested size and sort in index order; values are fresh random bytes, so that no store
//! gains by compressing them.

use anyhow::bail;

use crate::args::KeyArgs;

/// A small, fast, non-cryptographic generator (splitmix64); one per client, no locking.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A seed that differs between runs and between clients of a run.
    pub fn seeded(stream: u64) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut rng = Self::new(now ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next_u64();
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the multiply-shift bias is negligible at bench key spaces.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// The set of keys a load uses, and how it picks one for each request.
#[derive(Debug, Clone)]
pub struct KeySpace {
    prefix: Vec<u8>,
    digits: usize,
    size: u64,
    sequential: bool,
}

impl KeySpace {
    pub fn new(args: &KeyArgs) -> anyhow::Result<Self> {
        Self::with_size(args, args.key_space_size, args.sequential_keys)
    }

    /// The same key shape over keys `0..size`, e.g. for a preload.
    pub fn with_size(args: &KeyArgs, size: u64, sequential: bool) -> anyhow::Result<Self> {
        let prefix = args.key_prefix.as_bytes().to_vec();
        if size == 0 {
            bail!("--key-space-size must be at least 1");
        }
        if args.key_size == 0 {
            bail!("--key-size must be at least 1 (etcd rejects empty keys)");
        }
        if prefix.len() > args.key_size {
            bail!(
                "--key-prefix is {} bytes, longer than --key-size {}",
                prefix.len(),
                args.key_size
            );
        }
        let digits = args.key_size - prefix.len();
        // 10^digits keys fit; past 19 digits every u64 fits.
        let fits = digits >= 20 || 10u64.pow(digits as u32) >= size;
        if !fits {
            bail!(
                "{size} keys do not fit in {digits} decimal digits (--key-size {} minus a {}-byte --key-prefix); raise --key-size or lower the key count",
                args.key_size,
                prefix.len()
            );
        }
        Ok(Self {
            prefix,
            digits,
            size,
            sequential,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The key index request `seq` uses.
    pub fn pick(&self, seq: u64, rng: &mut Rng) -> u64 {
        if self.sequential {
            seq % self.size
        } else {
            rng.below(self.size)
        }
    }

    pub fn key(&self, index: u64) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + self.digits);
        key.extend_from_slice(&self.prefix);
        if self.digits > 0 {
            key.extend_from_slice(format!("{index:0width$}", width = self.digits).as_bytes());
        }
        key
    }

    /// `(key, range_end)` covering every key under the prefix, as etcd's clients build it:
    /// "\0","\0" (all keys) when the prefix is empty.
    pub fn prefix_range(&self) -> (Vec<u8>, Vec<u8>) {
        let mut end = self.prefix.clone();
        while let Some(last) = end.pop() {
            if last < 0xff {
                end.push(last + 1);
                return (self.prefix.clone(), end);
            }
        }
        if self.prefix.is_empty() {
            (vec![0], vec![0])
        } else {
            (self.prefix.clone(), vec![0])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(key_size: usize, prefix: &str, space: u64) -> KeyArgs {
        KeyArgs {
            key_size,
            val_size: 4,
            key_space_size: space,
            sequential_keys: true,
            key_prefix: prefix.into(),
        }
    }

    #[test]
    fn keys_have_the_requested_size() -> anyhow::Result<()> {
        let ks = KeySpace::new(&args(8, "", 100_000))?;
        assert_eq!(ks.key(42), b"00000042");
        let ks = KeySpace::new(&args(8, "k/", 1000))?;
        assert_eq!(ks.key(7), b"k/000007");
        assert_eq!(ks.prefix_range(), (b"k/".to_vec(), b"k0".to_vec()));
        let ks = KeySpace::new(&args(1, "a", 1))?;
        assert_eq!(ks.key(0), b"a");
        Ok(())
    }

    #[test]
    fn rejects_what_does_not_fit() {
        assert!(KeySpace::new(&args(4, "", 100_000)).is_err());
        assert!(KeySpace::new(&args(2, "abc", 1)).is_err());
        assert!(KeySpace::new(&args(8, "", 0)).is_err());
        assert!(KeySpace::new(&args(0, "", 1)).is_err());
    }

    #[test]
    fn empty_prefix_ranges_over_everything() -> anyhow::Result<()> {
        let ks = KeySpace::new(&args(8, "", 10))?;
        assert_eq!(ks.prefix_range(), (vec![0], vec![0]));
        Ok(())
    }

    #[test]
    fn rng_stays_in_range() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            assert!(rng.below(10) < 10);
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(rng.bytes(13).len(), 13);
    }
}
