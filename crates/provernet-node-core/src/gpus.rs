//! The node's GPUs, handed to jobs whole and by index.
//!
//! A job that asks for `n` GPUs gets `n` of the node's free device indices (the lowest first);
//! the sandbox binds exactly those `/dev/nvidiaN` devices and sets `CUDA_VISIBLE_DEVICES`.
//! Indices are `0..count`, where `count` is the capacity the node declared.

use provernet_types::JobId;
use std::collections::{BTreeMap, BTreeSet};

type Key = (JobId, u8);

#[derive(Debug, Default)]
pub struct GpuPool {
    free: BTreeSet<u32>,
    held: BTreeMap<Key, Vec<u32>>,
}

impl GpuPool {
    pub fn new(count: u16) -> GpuPool {
        GpuPool { free: (0..u32::from(count)).collect(), held: BTreeMap::new() }
    }

    /// Takes `n` free GPUs for `key`; `None` (and nothing taken) if fewer are free.
    pub fn take(&mut self, key: Key, n: u16) -> Option<Vec<u32>> {
        if self.free.len() < usize::from(n) || self.held.contains_key(&key) {
            return None;
        }
        let picked: Vec<u32> = self.free.iter().take(usize::from(n)).copied().collect();
        for g in &picked {
            self.free.remove(g);
        }
        self.held.insert(key, picked.clone());
        Some(picked)
    }

    /// The GPUs `key` holds (none if it holds none).
    #[cfg(test)]
    pub fn of(&self, key: &Key) -> Vec<u32> {
        self.held.get(key).cloned().unwrap_or_default()
    }

    /// Returns what `key` holds to the pool.
    pub fn release(&mut self, key: &Key) {
        if let Some(gpus) = self.held.remove(key) {
            self.free.extend(gpus);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        (JobId([b; 32]), 0)
    }

    #[test]
    fn jobs_get_distinct_gpus_and_give_them_back() {
        let mut pool = GpuPool::new(4);
        assert_eq!(pool.take(key(1), 2), Some(vec![0, 1]));
        assert_eq!(pool.take(key(2), 0), Some(vec![]));
        assert_eq!(pool.take(key(3), 3), None, "only two are free");
        assert_eq!(pool.take(key(3), 2), Some(vec![2, 3]));
        assert_eq!(pool.take(key(4), 1), None);
        assert_eq!(pool.of(&key(3)), vec![2, 3]);
        pool.release(&key(1));
        assert_eq!(pool.of(&key(1)), Vec::<u32>::new());
        assert_eq!(pool.take(key(4), 1), Some(vec![0]));
        pool.release(&key(1)); // twice is harmless
        assert_eq!(pool.take(key(5), 1), Some(vec![1]));
        assert_eq!(pool.take(key(6), 1), None);
    }

    #[test]
    fn a_key_holds_one_allocation() {
        let mut pool = GpuPool::new(2);
        assert!(pool.take(key(1), 1).is_some());
        assert_eq!(pool.take(key(1), 1), None);
    }
}
