//! The vector arena: every slot's vector, contiguous, in the catalog's
//! element type. Exact scans and re-scoring of graph candidates read it;
//! it is append-only, like the slots.

use half::f16;

use crate::index::distance::{score, Element};
use crate::model::{Metric, VectorType};

/// Vectors of all slots, slot `s` at `[s * dim, (s + 1) * dim)`.
pub enum VectorArena {
    F32 { dim: usize, data: Vec<f32> },
    F16 { dim: usize, data: Vec<f16> },
}

impl VectorArena {
    pub fn new(vector_type: VectorType, dim: usize, capacity: usize) -> Self {
        match vector_type {
            VectorType::F32 => VectorArena::F32 {
                dim,
                data: Vec::with_capacity(capacity * dim),
            },
            VectorType::F16 => VectorArena::F16 {
                dim,
                data: Vec::with_capacity(capacity * dim),
            },
        }
    }

    /// `slots` zero vectors: the arena of a snapshot before its live slots
    /// are filled in (dead slots stay zero and are never read).
    pub fn zeros(vector_type: VectorType, dim: usize, slots: usize) -> Self {
        match vector_type {
            VectorType::F32 => VectorArena::F32 {
                dim,
                data: vec![0.0; slots * dim],
            },
            VectorType::F16 => VectorArena::F16 {
                dim,
                data: vec![f16::ZERO; slots * dim],
            },
        }
    }

    /// Bytes one vector takes.
    pub fn vector_bytes(&self) -> usize {
        match self {
            VectorArena::F32 { dim, .. } => dim * 4,
            VectorArena::F16 { dim, .. } => dim * 2,
        }
    }

    /// Overwrites an existing slot's vector.
    pub fn set(&mut self, slot: u32, v: &[f32]) {
        let start = slot as usize * v.len();
        match self {
            VectorArena::F32 { data, .. } => data[start..start + v.len()].copy_from_slice(v),
            VectorArena::F16 { data, .. } => {
                for (d, x) in data[start..start + v.len()].iter_mut().zip(v) {
                    *d = f16::from_f32(*x);
                }
            }
        }
    }

    /// Appends a vector; its slot is the number of vectors before it.
    pub fn push(&mut self, v: &[f32]) {
        match self {
            VectorArena::F32 { data, .. } => data.extend_from_slice(v),
            VectorArena::F16 { data, .. } => data.extend(v.iter().map(|x| f16::from_f32(*x))),
        }
    }

    /// The score of slot `slot` for `query`.
    #[inline]
    pub fn score(&self, metric: Metric, query: &[f32], slot: u32) -> f32 {
        match self {
            VectorArena::F32 { dim, data } => score(metric, query, slice(data, *dim, slot)),
            VectorArena::F16 { dim, data } => score(metric, query, slice(data, *dim, slot)),
        }
    }

    /// Asks the CPU to start reading slot `slot`'s vector (its first
    /// 512 bytes) into cache; a no-op where we have no prefetch intrinsic
    /// and for slots beyond the arena.
    #[inline]
    pub fn prefetch(&self, slot: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let (ptr, bytes) = match self {
                VectorArena::F32 { dim, data } => {
                    let start = slot as usize * dim;
                    if start + dim > data.len() {
                        return;
                    }
                    (data[start..].as_ptr() as *const i8, dim * 4)
                }
                VectorArena::F16 { dim, data } => {
                    let start = slot as usize * dim;
                    if start + dim > data.len() {
                        return;
                    }
                    (data[start..].as_ptr() as *const i8, dim * 2)
                }
            };
            for line in (0..bytes.min(512)).step_by(64) {
                // SAFETY: a prefetch is a hint that never faults, and the
                // address lies inside the slot's vector, checked above.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        ptr.add(line),
                    )
                };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    /// Slot `slot`'s vector as f32.
    pub fn get(&self, slot: u32) -> Vec<f32> {
        match self {
            VectorArena::F32 { dim, data } => slice(data, *dim, slot).to_vec(),
            VectorArena::F16 { dim, data } => {
                slice(data, *dim, slot).iter().map(|x| x.to_f32()).collect()
            }
        }
    }

    /// Whether slot `slot` holds exactly `v` once stored in the element type.
    pub fn equals(&self, slot: u32, v: &[f32]) -> bool {
        match self {
            VectorArena::F32 { dim, data } => slice(data, *dim, slot) == v,
            VectorArena::F16 { dim, data } => slice(data, *dim, slot)
                .iter()
                .zip(v)
                .all(|(a, b)| a.to_bits() == f16::from_f32(*b).to_bits()),
        }
    }
}

#[inline]
fn slice<T: Element>(data: &[T], dim: usize, slot: u32) -> &[T] {
    let start = slot as usize * dim;
    &data[start..start + dim]
}
