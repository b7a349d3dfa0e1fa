//! A raw row's top-process lists (`top.rs`), stored as their change from the lists of the
//! sample before when the row's values are (`chain.rs`), and read back through that chain.
//!
//! - Whole: the sample's CPU use and memory used (`f32` each; -1 when it does not say), the
//!   CPU list's length in bytes, then both lists ([`top_codec::encode_list`]).
//! - Against the row before: [`MAGIC`], the time back to that row (varint ms; its seq is one
//!   less), the two `f32`, then both lists packed against that row's lists
//!   ([`top_codec::encode_list_after`]): ~60 bytes instead of ~250 for two lists of five.
//!
//! Such a row is written only when its values are stored against the same row, so its chain
//! is the values' chain: within one clock hour, at most [`MAX_CHAIN`](super::chain::MAX_CHAIN)
//! long, cut by the disk bound only after [`Tsdb::rekey_after`] stored the rows after the cut
//! whole. Decoding is total: a damaged row or a broken chain reads as no lists.

use broker::ProcessTop;

use super::chain::{Key, Recent};
use super::codec::{get_varint, put_varint};
use super::db::{Sample, Tsdb};
use super::raw_scan::Walk;
use super::top_codec::{decode_list, decode_list_after, encode_list, encode_list_after};

/// The first bytes of lists stored against the row before: as the whole encoding's first
/// `f32` they would be a NaN, which it never holds (its CPU use is finite or -1).
pub(super) const MAGIC: [u8; 4] = [0xd7, 0x70, 0xc0, 0xff];

/// A raw row's lists, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Lists {
    /// The sample's CPU use (%) and memory used (MB): what a minute's peak is chosen by.
    pub cpu_peak: f64,
    pub mem_peak: f64,
    pub cpu: Vec<ProcessTop>,
    pub mem: Vec<ProcessTop>,
}

impl Lists {
    /// The whole encoding.
    pub(super) fn encode(&self) -> Vec<u8> {
        let (cpu, mem) = (encode_list(&self.cpu), encode_list(&self.mem));
        let mut out = Vec::with_capacity(12 + cpu.len() + mem.len());
        out.extend_from_slice(&(self.cpu_peak as f32).to_le_bytes());
        out.extend_from_slice(&(self.mem_peak as f32).to_le_bytes());
        out.extend_from_slice(&(cpu.len() as u32).to_le_bytes());
        out.extend_from_slice(&cpu);
        out.extend_from_slice(&mem);
        out
    }

    /// Stored against `base`, the lists of the row `back_ms` before with the seq before.
    pub(super) fn encode_after(&self, base: &Lists, back_ms: i64) -> Vec<u8> {
        let base = base.processes();
        let mut out = Vec::with_capacity(32 + 6 * (self.cpu.len() + self.mem.len()));
        out.extend_from_slice(&MAGIC);
        put_varint(&mut out, back_ms.max(0) as u64);
        out.extend_from_slice(&(self.cpu_peak as f32).to_le_bytes());
        out.extend_from_slice(&(self.mem_peak as f32).to_le_bytes());
        out.extend_from_slice(&encode_list_after(&self.cpu, &base));
        out.extend_from_slice(&encode_list_after(&self.mem, &base));
        out
    }

    fn processes(&self) -> Vec<&ProcessTop> {
        self.cpu.iter().chain(&self.mem).collect()
    }
}

fn f32_at(b: &[u8], at: usize) -> Option<f64> {
    Some(f64::from(f32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    )))
}

/// What a stored `top` blob is.
enum Stored<'a> {
    Whole(Option<Lists>),
    After { back_ms: i64, body: &'a [u8] },
}

fn stored(b: &[u8]) -> Stored<'_> {
    let Some(rest) = b.strip_prefix(&MAGIC) else {
        return Stored::Whole(decode_whole(b));
    };
    let mut at = 0;
    match get_varint(rest, &mut at).and_then(|v| i64::try_from(v).ok()) {
        Some(back_ms) => Stored::After {
            back_ms,
            body: &rest[at..],
        },
        None => Stored::Whole(None),
    }
}

fn decode_whole(b: &[u8]) -> Option<Lists> {
    let (cpu_peak, mem_peak) = (f32_at(b, 0)?, f32_at(b, 4)?);
    let len = usize::try_from(u32::from_le_bytes(b.get(8..12)?.try_into().ok()?)).ok()?;
    let cpu = b.get(12..12usize.checked_add(len)?)?;
    let mem = b.get(12 + len..)?;
    Some(Lists {
        cpu_peak,
        mem_peak,
        cpu: decode_list(cpu)?,
        mem: decode_list(mem)?,
    })
}

fn decode_after(body: &[u8], base: &Lists) -> Option<Lists> {
    let (cpu_peak, mem_peak) = (f32_at(body, 0)?, f32_at(body, 4)?);
    let processes = base.processes();
    let mut at = 8;
    let cpu = decode_list_after(body, &mut at, &processes)?;
    let mem = decode_list_after(body, &mut at, &processes)?;
    (at == body.len()).then_some(Lists {
        cpu_peak,
        mem_peak,
        cpu,
        mem,
    })
}

/// Lists recently read: the base of the next row of a scan.
pub(super) type TopChain = Recent<Lists, 64>;

impl Tsdb {
    /// The `top` to store for `sample` of `host` with `lists`, whose values were packed with
    /// chain length `chain` (`> 0`: against the host's last live sample, whose lists the
    /// cache holds).
    pub(super) fn pack_top(
        &self,
        host: &str,
        sample: &Sample,
        lists: Option<&Lists>,
        chain: u32,
    ) -> Option<Vec<u8>> {
        let lists = lists?;
        let base = self.hosts.get(host).and_then(|h| {
            let last = h.last.as_ref()?;
            let (key, base) = h.last_top.as_ref()?;
            (chain > 0 && *key == (last.ts_ms, last.seq)).then(|| (base, sample.ts_ms - last.ts_ms))
        });
        Some(match base {
            Some((base, back_ms)) => lists.encode_after(base, back_ms),
            None => lists.encode(),
        })
    }

    /// The lists of the raw row (`host`, `ts_ms`, `seq`) whose `top` is `blob`; `None` when
    /// it is damaged or its chain broken.
    pub(super) fn unpack_top(
        &self,
        host: i64,
        ts_ms: i64,
        seq: u64,
        blob: &[u8],
        chain: &mut TopChain,
    ) -> rusqlite::Result<Option<Lists>> {
        let mut pending: Vec<(Key, Vec<u8>)> = Vec::new();
        let mut key = (host, ts_ms, seq);
        let mut next: Option<Vec<u8>> = None;
        let mut base = loop {
            match stored(next.as_deref().unwrap_or(blob)) {
                Stored::Whole(lists) => {
                    if let Some(l) = &lists {
                        chain.put(key, l);
                    }
                    break lists;
                }
                Stored::After { back_ms, body } => {
                    let below = (host, key.1.saturating_sub(back_ms), key.2.wrapping_sub(1));
                    pending.push((key, body.to_vec()));
                    if let Some(l) = chain.get(&below) {
                        break Some(l.clone());
                    }
                    if pending.len() > 2 * super::chain::MAX_CHAIN as usize {
                        break None;
                    }
                    let (ts, seq) = (below.1, below.2);
                    let walk = Walk::host(host, ts, ts).with_top();
                    let row = self
                        .first_raw(walk, |r| r.ts == ts && r.seq == seq)?
                        .map(|r| r.top);
                    match row.flatten() {
                        Some(b) => {
                            key = below;
                            next = Some(b);
                        }
                        None => break None,
                    }
                }
            }
        };
        for (key, body) in pending.into_iter().rev() {
            base = base.and_then(|b| decode_after(&body, &b));
            match &base {
                Some(l) => chain.put(key, l),
                None => break,
            }
        }
        Ok(base)
    }
}
