//! A micro-batch's `[n, V]` raw-logit and target tensors, from the rows the dataset stores.
//!
//! - [`batch_tensors`]: widened and densified on the host, then copied (the candle engine's).
//! - [`batch_tensors_on`]: assembled on the device from the *staged* form of the rows — f16 raw
//!   rows as they are stored, sparse targets as their kept tokens (flat positions `k·V + id` and
//!   logits) scattered into a row of `-inf` there: a quarter of the dense f32 pair's bytes or less.
//! - `PinnedStaging` (`cuda` builds): the fused trainer's double-buffered page-locked copy of the
//!   staged form. While the device runs one pass, a worker thread stages the next pass's rows
//!   into the other buffer set; the pass after uploads it asynchronously (a page-locked copy does
//!   not wait for the host), so most of the host's share of a step leaves the device's critical
//!   path.
//!
//! All three give the same tensors bit for bit.

use candle_core::{DType, Device, Tensor};
use half::f16;

use crate::error::Result;
use crate::train::data::{Dataset, Target};

/// `[n, V]` raw and target tensors for `rows`, built on the host.
pub(crate) fn batch_tensors(
    ds: &Dataset,
    rows: &[usize],
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    Ok((host_raw(ds, rows, device)?, host_targets(ds, rows, device)?))
}

/// The `[n, V]` raw logits of `rows`, widened to f32 on the host, then put on `device`.
fn host_raw(ds: &Dataset, rows: &[usize], device: &Device) -> Result<Tensor> {
    let v = ds.vocab();
    let mut raw = vec![0f32; rows.len() * v];
    for (k, &r) in rows.iter().enumerate() {
        ds.raw_row(r, &mut raw[k * v..(k + 1) * v]);
    }
    Ok(Tensor::from_vec(raw, (rows.len(), v), device)?)
}

/// The `[n, V]` dense targets of `rows`, built on the host, then put on `device`.
fn host_targets(ds: &Dataset, rows: &[usize], device: &Device) -> Result<Tensor> {
    let v = ds.vocab();
    let mut tgt = vec![0f32; rows.len() * v];
    for (k, &r) in rows.iter().enumerate() {
        ds.target(r).write_dense(&mut tgt[k * v..(k + 1) * v]);
    }
    Ok(Tensor::from_vec(tgt, (rows.len(), v), device)?)
}

/// The number of kept target tokens of `rows` when they have a staged form — every raw row
/// stored as f16, every target sparse, and `n · V` flat positions addressable as u32 — else
/// `None`.
pub(crate) fn staged_kept(ds: &Dataset, rows: &[usize]) -> Option<usize> {
    if rows.len() * ds.vocab() > u32::MAX as usize {
        return None;
    }
    let mut kept = 0;
    for &r in rows {
        ds.raw_row_f16(r)?;
        match ds.target(r) {
            Target::Sparse { ids, .. } => kept += ids.len(),
            Target::Dense(_) => return None,
        }
    }
    Some(kept)
}

/// Writes the staged form of `rows` (which [`staged_kept`] accepts): `raw[k·V ..]` = row `k`'s
/// f16 logits, and for each kept target token, in row order, `at` its flat position `k·V + id`
/// and `values` its logit. `raw` holds at least `n · V` values, `at` and `values` at least the
/// kept count.
pub(crate) fn stage(
    ds: &Dataset,
    rows: &[usize],
    raw: &mut [f16],
    at: &mut [u32],
    values: &mut [f32],
) {
    let v = ds.vocab();
    let mut j = 0;
    for (k, &r) in rows.iter().enumerate() {
        if let Some(row) = ds.raw_row_f16(r) {
            raw[k * v..(k + 1) * v].copy_from_slice(row);
        }
        if let Target::Sparse { ids, logits } = ds.target(r) {
            let base = (k * v) as u32;
            for (slot, &id) in at[j..j + ids.len()].iter_mut().zip(ids) {
                *slot = base + id;
            }
            values[j..j + ids.len()].copy_from_slice(logits);
            j += ids.len();
        }
    }
}

/// The `[n, V]` raw (f32) and target tensors from a staged batch already on `raw`'s device:
/// `raw` (f16, at least `n · V` values), `at` (u32) and `values` (f32), at least `kept` each.
pub(crate) fn assemble(
    raw: &Tensor,
    at: &Tensor,
    values: &Tensor,
    (n, v): (usize, usize),
    kept: usize,
) -> Result<(Tensor, Tensor)> {
    let raw = raw
        .narrow(0, 0, n * v)?
        .reshape((n, v))?
        .to_dtype(DType::F32)?;
    let empty = Tensor::full(f32::NEG_INFINITY, n * v, raw.device())?;
    let tgt = if kept == 0 {
        empty
    } else {
        let at = at.narrow(0, 0, kept)?.contiguous()?;
        let values = values.narrow(0, 0, kept)?.contiguous()?;
        empty.scatter(&at, &values, 0)?
    };
    Ok((raw, tgt.reshape((n, v))?))
}

/// [`batch_tensors`] assembled on `device` from the staged form of `rows` ([`assemble`]), or
/// built on the host where they have none ([`staged_kept`]). The same tensors.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) fn batch_tensors_on(
    ds: &Dataset,
    rows: &[usize],
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let Some(kept) = staged_kept(ds, rows) else {
        return batch_tensors(ds, rows, device);
    };
    let (n, v) = (rows.len(), ds.vocab());
    let mut raw = vec![f16::ZERO; n * v];
    let mut at = vec![0u32; kept];
    let mut values = vec![0f32; kept];
    stage(ds, rows, &mut raw, &mut at, &mut values);
    let raw = Tensor::from_vec(raw, n * v, device)?;
    let at = Tensor::from_vec(at, kept, device)?;
    let values = Tensor::from_vec(values, kept, device)?;
    assemble(&raw, &at, &values, (n, v), kept)
}

#[cfg(feature = "cuda")]
pub(crate) use pinned::PinnedStaging;

#[cfg(feature = "cuda")]
mod pinned {
    use std::sync::Arc;

    use candle_core::cuda_backend::cudarc::driver::{
        CudaContext, DeviceRepr, PinnedHostSlice, ValidAsZeroBits,
    };
    use candle_core::cuda_backend::{CudaDType, CudaDevice, CudaStorage, WrapErr};
    use candle_core::op::BackpropOp;
    use candle_core::{Device, Storage, Tensor};
    use half::f16;

    use super::{assemble, batch_tensors, stage, staged_kept};
    use crate::error::{NetsError, Result};
    use crate::train::data::Dataset;

    /// Page-locked host memory that grows to the largest request (by a quarter more, so that
    /// batches of varying kept counts do not reallocate each time).
    struct Pinned<T>(Option<PinnedHostSlice<T>>);

    impl<T> Default for Pinned<T> {
        fn default() -> Self {
            Self(None)
        }
    }

    impl<T: DeviceRepr + ValidAsZeroBits + CudaDType> Pinned<T> {
        /// At least `len` values (at least one), once the last copy out of them has finished.
        fn at_least(&mut self, ctx: &Arc<CudaContext>, len: usize) -> Result<&mut [T]> {
            let p = match self.0.take() {
                Some(p) if p.len() >= len => p,
                // SAFETY: `stage` writes the values a batch uses before its copy reads them.
                _ => unsafe { ctx.alloc_pinned::<T>((len + len / 4).max(1)) }.w()?,
            };
            Ok(self.0.insert(p).as_mut_slice().w()?)
        }

        /// A device copy of all of it as a 1-D tensor, enqueued on `dev`'s stream (asynchronous
        /// to the host; the next [`Self::at_least`] waits for it).
        fn upload(&self, dev: &CudaDevice) -> Result<Tensor> {
            let p = self.0.as_ref().ok_or_else(|| NetsError::NoData {
                what: "a staged batch buffer".into(),
            })?;
            let slice = dev.cuda_stream().clone_htod(p).w()?;
            let len = slice.len();
            Ok(Tensor::from_storage(
                Storage::Cuda(CudaStorage::wrap_cuda_slice(slice, dev.clone())),
                len,
                BackpropOp::none(),
                false,
            ))
        }
    }

    /// One buffer set: a staged batch and which rows it holds.
    #[derive(Default)]
    struct StagedSet {
        raw: Pinned<f16>,
        at: Pinned<u32>,
        values: Pinned<f32>,
        /// The rows staged here and their kept target count; `None` before staging or when the
        /// rows have no staged form.
        holds: Option<(Vec<usize>, usize)>,
    }

    impl StagedSet {
        /// Stages `rows` here (host memory only: runs on any thread).
        fn fill(&mut self, ctx: &Arc<CudaContext>, ds: &Dataset, rows: &[usize]) -> Result<()> {
            self.holds = None;
            let Some(kept) = staged_kept(ds, rows) else {
                return Ok(());
            };
            let raw = self.raw.at_least(ctx, rows.len() * ds.vocab())?;
            let at = self.at.at_least(ctx, kept)?;
            let values = self.values.at_least(ctx, kept)?;
            stage(ds, rows, raw, at, values);
            self.holds = Some((rows.to_vec(), kept));
            Ok(())
        }
    }

    /// The fused trainer's batches through two page-locked buffer sets: [`Self::take`] uploads
    /// the set staged for its rows (staging them first if they are not) and [`Self::while_staging`]
    /// stages the next rows into the other set on a worker thread while the device works.
    #[derive(Default)]
    pub(crate) struct PinnedStaging {
        sets: [StagedSet; 2],
        /// The set [`Self::take`] uploads next; the other one is free to stage into.
        next: usize,
    }

    impl PinnedStaging {
        /// The `[n, V]` raw and target tensors of `rows` on `device` (the same as
        /// [`super::batch_tensors`]); off a CUDA device, or for rows with no staged form, built
        /// as [`super::batch_tensors_on`] does.
        pub(crate) fn take(
            &mut self,
            ds: &Dataset,
            rows: &[usize],
            device: &Device,
        ) -> Result<(Tensor, Tensor)> {
            let Device::Cuda(dev) = device else {
                return super::batch_tensors_on(ds, rows, device);
            };
            let set = &mut self.sets[self.next];
            if set.holds.as_ref().is_none_or(|(held, _)| held != rows) {
                set.fill(dev.cuda_stream().context(), ds, rows)?;
            }
            let Some((_, kept)) = set.holds.take() else {
                return batch_tensors(ds, rows, device);
            };
            let raw = set.raw.upload(dev)?;
            let at = set.at.upload(dev)?;
            let values = set.values.upload(dev)?;
            self.next = 1 - self.next;
            assemble(&raw, &at, &values, (rows.len(), ds.vocab()), kept)
        }

        /// Runs `work` on this thread while a worker thread stages `rows` (when given) for the
        /// next [`Self::take`]. Where no thread can be started, `work` runs alone (the next take
        /// stages its rows itself).
        pub(crate) fn while_staging<T>(
            &mut self,
            ds: &Dataset,
            rows: Option<&[usize]>,
            device: &Device,
            work: impl FnOnce() -> Result<T>,
        ) -> Result<T> {
            let (Some(rows), Device::Cuda(dev)) = (rows, device) else {
                return work();
            };
            let ctx = dev.cuda_stream().context().clone();
            let set = &mut self.sets[self.next];
            std::thread::scope(|s| {
                let worker = std::thread::Builder::new()
                    .name("adasamp-staging".into())
                    .spawn_scoped(s, move || set.fill(&ctx, ds, rows));
                let out = work();
                if let Ok(handle) = worker {
                    handle.join().map_err(|_| NetsError::Poisoned {
                        what: "the batch staging thread".into(),
                    })??;
                }
                out
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::bench::synthetic_dataset;
    use crate::train::data::RowPrecision;

    fn bits(t: &Tensor) -> Vec<u32> {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        v.into_iter().map(f32::to_bits).collect()
    }

    #[test]
    fn batches_assembled_from_the_staged_form_equal_the_host_built_ones() {
        for precision in [RowPrecision::F16, RowPrecision::F32] {
            let ds = synthetic_dataset(1_000, 6, 3, precision).unwrap();
            let rows = [4, 0, 5];
            assert_eq!(
                staged_kept(&ds, &rows).is_some(),
                precision == RowPrecision::F16
            );
            let (raw, tgt) = batch_tensors(&ds, &rows, &Device::Cpu).unwrap();
            let (raw_on, tgt_on) = batch_tensors_on(&ds, &rows, &Device::Cpu).unwrap();
            assert_eq!(raw_on.dims(), raw.dims());
            assert_eq!(tgt_on.dims(), tgt.dims());
            assert_eq!(bits(&raw_on), bits(&raw), "{precision:?} raw rows");
            assert_eq!(bits(&tgt_on), bits(&tgt), "{precision:?} targets");
            let kept = tgt.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(kept.iter().any(|x| x.is_finite()) && kept.iter().any(|x| !x.is_finite()));
        }
    }

    #[test]
    fn staged_buffers_longer_than_the_batch_assemble_the_same_tensors() {
        // The page-locked buffers keep their largest size: a batch uses only their front.
        let ds = synthetic_dataset(500, 5, 9, RowPrecision::F16).unwrap();
        let rows = [3, 1];
        let kept = staged_kept(&ds, &rows).unwrap();
        let (n, v) = (rows.len(), ds.vocab());
        let mut raw = vec![f16::from_f32(7.0); n * v + 11];
        let mut at = vec![u32::MAX; kept + 5];
        let mut values = vec![f32::NAN; kept + 5];
        stage(&ds, &rows, &mut raw, &mut at, &mut values);
        let dev = Device::Cpu;
        let (raw_t, tgt_t) = assemble(
            &Tensor::from_vec(raw.clone(), raw.len(), &dev).unwrap(),
            &Tensor::from_vec(at.clone(), at.len(), &dev).unwrap(),
            &Tensor::from_vec(values.clone(), values.len(), &dev).unwrap(),
            (n, v),
            kept,
        )
        .unwrap();
        let (raw_h, tgt_h) = batch_tensors(&ds, &rows, &dev).unwrap();
        assert_eq!(bits(&raw_t), bits(&raw_h));
        assert_eq!(bits(&tgt_t), bits(&tgt_h));
    }
}
