//! Distance kernels: dot product and squared L2 over f32 and f16 vectors,
//! chosen once at run time for the CPU the server runs on.
//!
//! Three pairings occur: an f32 query against stored f32 or f16 vectors
//! (exact scans and re-scoring of graph candidates) and two stored vectors
//! of the same type (the HNSW graph's own distance). Each has a portable
//! kernel and, on x86-64 with AVX2, FMA and F16C, a hand-written one that
//! converts f16 lanes in registers (`vcvtph2ps`) instead of materialising
//! an f32 copy: f16 storage is then half the bytes *and* as fast as f32.
//!
//! **Why no AVX-512 kernel.** Neither this project's machines nor its CI
//! have AVX-512, so such a kernel could be neither tested nor measured
//! here; shipping SIMD code that no test has ever executed is worse than
//! running the AVX2 kernel on AVX-512 CPUs (which works, and is within a
//! small factor at 128–784 dimensions, where loads and the horizontal sum
//! weigh as much as the multiply-adds).
//!
//! `RECSTORE_KERNELS=portable` forces the portable kernels (to compare, or
//! to rule the SIMD ones out when chasing a wrong answer).

use std::sync::OnceLock;

use half::f16;

/// The kernels one CPU level provides.
pub struct Kernels {
    /// `"avx2+fma+f16c"` or `"portable"`: logged at start, shown in stats.
    pub name: &'static str,
    pub dot_f32: fn(&[f32], &[f32]) -> f32,
    pub l2_f32: fn(&[f32], &[f32]) -> f32,
    pub dot_f32_f16: fn(&[f32], &[f16]) -> f32,
    pub l2_f32_f16: fn(&[f32], &[f16]) -> f32,
    pub dot_f16: fn(&[f16], &[f16]) -> f32,
    pub l2_f16: fn(&[f16], &[f16]) -> f32,
}

/// The portable kernels: plain loops with eight independent accumulators,
/// which LLVM vectorises for the baseline target without fast-math.
pub static PORTABLE: Kernels = Kernels {
    name: "portable",
    dot_f32: portable::dot::<f32, f32>,
    l2_f32: portable::l2::<f32, f32>,
    dot_f32_f16: portable::dot::<f32, f16>,
    l2_f32_f16: portable::l2::<f32, f16>,
    dot_f16: portable::dot::<f16, f16>,
    l2_f16: portable::l2::<f16, f16>,
};

/// The best kernels this CPU supports, ignoring `RECSTORE_KERNELS`.
pub fn best() -> &'static Kernels {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::supported() {
            return &avx2::KERNELS;
        }
    }
    &PORTABLE
}

/// The kernels in use: [`best`] unless `RECSTORE_KERNELS=portable`.
#[inline]
pub fn active() -> &'static Kernels {
    static ACTIVE: OnceLock<&'static Kernels> = OnceLock::new();
    ACTIVE.get_or_init(|| match std::env::var("RECSTORE_KERNELS").as_deref() {
        Ok("portable") => &PORTABLE,
        Ok("auto") | Err(_) => best(),
        Ok(other) => {
            tracing::warn!(
                value = other,
                "RECSTORE_KERNELS must be `auto` or `portable`; using auto"
            );
            best()
        }
    })
}

/// An element type the kernels read as f32.
pub trait Lane: Copy {
    fn f32(self) -> f32;
}

impl Lane for f32 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self
    }
}

impl Lane for f16 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self.to_f32()
    }
}

mod portable {
    use super::Lane;

    const LANES: usize = 8;

    pub fn dot<A: Lane, B: Lane>(a: &[A], b: &[B]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0.0f32; LANES];
        let (ca, ra) = a.split_at(n / LANES * LANES);
        let (cb, rb) = b.split_at(n / LANES * LANES);
        for (x, y) in ca.chunks_exact(LANES).zip(cb.chunks_exact(LANES)) {
            for l in 0..LANES {
                acc[l] += x[l].f32() * y[l].f32();
            }
        }
        let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x.f32() * y.f32()).sum();
        tail + acc.iter().sum::<f32>()
    }

    pub fn l2<A: Lane, B: Lane>(a: &[A], b: &[B]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0.0f32; LANES];
        let (ca, ra) = a.split_at(n / LANES * LANES);
        let (cb, rb) = b.split_at(n / LANES * LANES);
        for (x, y) in ca.chunks_exact(LANES).zip(cb.chunks_exact(LANES)) {
            for l in 0..LANES {
                let d = x[l].f32() - y[l].f32();
                acc[l] += d * d;
            }
        }
        let tail: f32 = ra
            .iter()
            .zip(rb)
            .map(|(x, y)| {
                let d = x.f32() - y.f32();
                d * d
            })
            .sum();
        tail + acc.iter().sum::<f32>()
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! 32 lanes per step in four independent FMA chains (an FMA's latency
    //! is four cycles, two issue per cycle), then 8-lane steps, then a
    //! scalar tail, so any dimension is exact.

    use std::arch::x86_64::*;

    use half::f16;

    use super::{Kernels, Lane};

    pub fn supported() -> bool {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    }

    // SAFETY (all six): these entries are only reachable through
    // `KERNELS`, which `best()` hands out after `supported()` said yes.
    pub static KERNELS: Kernels = Kernels {
        name: "avx2+fma+f16c",
        dot_f32: |a, b| unsafe { dot::<f32, f32>(a, b) },
        l2_f32: |a, b| unsafe { l2::<f32, f32>(a, b) },
        dot_f32_f16: |a, b| unsafe { dot::<f32, f16>(a, b) },
        l2_f32_f16: |a, b| unsafe { l2::<f32, f16>(a, b) },
        dot_f16: |a, b| unsafe { dot::<f16, f16>(a, b) },
        l2_f16: |a, b| unsafe { l2::<f16, f16>(a, b) },
    };

    /// Eight lanes loaded as f32.
    pub trait Load8: Lane {
        /// # Safety
        /// `p` points at 8 readable elements; the CPU has AVX2 and F16C.
        unsafe fn load8(p: *const Self) -> __m256;
    }

    impl Load8 for f32 {
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn load8(p: *const f32) -> __m256 {
            // SAFETY: the caller guarantees 8 readable f32s.
            unsafe { _mm256_loadu_ps(p) }
        }
    }

    impl Load8 for f16 {
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn load8(p: *const f16) -> __m256 {
            // SAFETY: the caller guarantees 8 readable f16s (16 bytes).
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast::<__m128i>())) }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot<A: Load8, B: Load8>(a: &[A], b: &[B]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: every load reads [i, i + 8) with i + 8 <= n.
        unsafe {
            while i + 32 <= n {
                for (j, acc) in acc.iter_mut().enumerate() {
                    let o = i + 8 * j;
                    *acc = _mm256_fmadd_ps(A::load8(pa.add(o)), B::load8(pb.add(o)), *acc);
                }
                i += 32;
            }
            while i + 8 <= n {
                acc[0] = _mm256_fmadd_ps(A::load8(pa.add(i)), B::load8(pb.add(i)), acc[0]);
                i += 8;
            }
        }
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut sum = hsum(v);
        for k in i..n {
            sum += a[k].f32() * b[k].f32();
        }
        sum
    }

    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn l2<A: Load8, B: Load8>(a: &[A], b: &[B]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: every load reads [i, i + 8) with i + 8 <= n.
        unsafe {
            while i + 32 <= n {
                for (j, acc) in acc.iter_mut().enumerate() {
                    let o = i + 8 * j;
                    let d = _mm256_sub_ps(A::load8(pa.add(o)), B::load8(pb.add(o)));
                    *acc = _mm256_fmadd_ps(d, d, *acc);
                }
                i += 32;
            }
            while i + 8 <= n {
                let d = _mm256_sub_ps(A::load8(pa.add(i)), B::load8(pb.add(i)));
                acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
                i += 8;
            }
        }
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut sum = hsum(v);
        for k in i..n {
            let d = a[k].f32() - b[k].f32();
            sum += d * d;
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every kernel set this CPU can run; the test fails loudly rather
    /// than pass vacuously if the SIMD set is expected but missing.
    fn kernel_sets() -> Vec<&'static Kernels> {
        let mut sets = vec![&PORTABLE];
        if !std::ptr::eq(best(), &PORTABLE) {
            sets.push(best());
        }
        #[cfg(target_arch = "x86_64")]
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            // CI runs on the project's x86-64 machines, which have AVX2:
            // a detection regression must not silently test only one set.
            assert_eq!(sets.len(), 2, "CI expects the AVX2 kernels to be detected");
        }
        sets
    }

    fn ref_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    fn ref_l2(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum()
    }

    fn close(got: f32, want: f64, scale: f64) -> bool {
        (f64::from(got) - want).abs() <= 1e-5 * scale + 1e-6
    }

    fn halves(v: &[f32]) -> (Vec<f16>, Vec<f32>) {
        let h: Vec<f16> = v.iter().map(|x| f16::from_f32(*x)).collect();
        let back = h.iter().map(|x| x.to_f32()).collect();
        (h, back)
    }

    proptest! {
        // Lengths cover every path: below 8, 8-lane steps, 32-lane steps
        // and scalar tails after each.
        #[test]
        fn every_kernel_matches_a_plain_reference(
            pair in (0usize..300).prop_flat_map(|n| (
                proptest::collection::vec(-50.0f32..50.0, n),
                proptest::collection::vec(-50.0f32..50.0, n),
            ))
        ) {
            let (a, b) = pair;
            let (a16, a16f) = halves(&a);
            let (b16, b16f) = halves(&b);
            // Rounding grows with the magnitudes summed, not the result.
            let mag = |x: &[f32], y: &[f32]| -> f64 {
                x.iter().zip(y).map(|(p, q)| f64::from(p.abs()) * f64::from(q.abs()) + f64::from((p - q).powi(2))).sum::<f64>() + 1.0
            };
            for k in kernel_sets() {
                let m = mag(&a, &b);
                prop_assert!(close((k.dot_f32)(&a, &b), ref_dot(&a, &b), m), "{} dot_f32", k.name);
                prop_assert!(close((k.l2_f32)(&a, &b), ref_l2(&a, &b), m), "{} l2_f32", k.name);
                let m = mag(&a, &b16f);
                prop_assert!(close((k.dot_f32_f16)(&a, &b16), ref_dot(&a, &b16f), m), "{} dot_f32_f16", k.name);
                prop_assert!(close((k.l2_f32_f16)(&a, &b16), ref_l2(&a, &b16f), m), "{} l2_f32_f16", k.name);
                let m = mag(&a16f, &b16f);
                prop_assert!(close((k.dot_f16)(&a16, &b16), ref_dot(&a16f, &b16f), m), "{} dot_f16", k.name);
                prop_assert!(close((k.l2_f16)(&a16, &b16), ref_l2(&a16f, &b16f), m), "{} l2_f16", k.name);
            }
        }
    }

    #[test]
    fn unaligned_slices_and_exact_values() {
        // Offsets into a larger buffer make the SIMD loads unaligned.
        let buf: Vec<f32> = (0..200).map(|i| (i % 7) as f32 - 3.0).collect();
        let buf16: Vec<f16> = buf.iter().map(|x| f16::from_f32(*x)).collect();
        for k in kernel_sets() {
            for off in 0..4 {
                let (a, b) = (&buf[off..off + 77], &buf[off + 50..off + 127]);
                let (a16, b16) = (&buf16[off..off + 77], &buf16[off + 50..off + 127]);
                // Small integers: every product and sum is exact in f32.
                assert_eq!((k.dot_f32)(a, b) as f64, ref_dot(a, b), "{}", k.name);
                assert_eq!((k.l2_f32)(a, b) as f64, ref_l2(a, b), "{}", k.name);
                assert_eq!((k.dot_f32_f16)(a, b16) as f64, ref_dot(a, b), "{}", k.name);
                assert_eq!((k.l2_f16)(a16, b16) as f64, ref_l2(a, b), "{}", k.name);
            }
        }
    }
}
