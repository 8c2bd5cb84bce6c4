//! The page index: one row per audio page of `stream`, enough to find the bytes of any
//! packet or sample range without reading the stream (docs/FORMAT.md, "index").

use sha2::{Digest, Sha256};

use super::ogg::{OggError, PacketAssembler, opus_packet_duration_48k, parse_page};
use super::opus_head::OpusHead;

/// One audio page. Counts are cumulative from the first audio packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRow {
    /// Byte offset of the page in `stream`.
    pub offset: u64,
    /// The page's Ogg granule position (48 kHz units), -1 when no packet ends on it.
    pub granule: i64,
    /// Audio packets completed by the end of this page.
    pub packets_done: u64,
    /// Decoder output samples (at the stream's rate) of those packets, pre-skip included.
    pub samples_done: u64,
}

impl PageRow {
    pub const COLUMNS: usize = 4;

    pub fn to_i64(&self) -> [i64; 4] {
        [
            self.offset as i64,
            self.granule,
            self.packets_done as i64,
            self.samples_done as i64,
        ]
    }

    pub fn from_i64(v: &[i64]) -> Option<Self> {
        let [o, g, p, s] = v.try_into().ok()?;
        (o >= 0 && p >= 0 && s >= 0).then_some(PageRow {
            offset: o as u64,
            granule: g,
            packets_done: p as u64,
            samples_done: s as u64,
        })
    }
}

/// SHA-256 of the rows as stored (each row as four little-endian i64), lower-case hex.
pub fn digest(rows: &[PageRow]) -> String {
    digest_rows(rows.iter().map(PageRow::to_i64))
}

/// SHA-256 of index rows, each as four little-endian i64, lower-case hex: the
/// `index_sha256` of every codec's index.
pub fn digest_rows(rows: impl IntoIterator<Item = [i64; 4]>) -> String {
    let mut h = Sha256::new();
    for r in rows {
        for v in r {
            h.update(v.to_le_bytes());
        }
    }
    hex::encode(h.finalize())
}

/// What a full scan of an Ogg Opus stream found.
#[derive(Debug, Clone)]
pub struct StreamLayout {
    pub head: OpusHead,
    pub rows: Vec<PageRow>,
    /// Granule position of the last page: pre-skip plus the frames the user sees (48 kHz units).
    pub final_granule: i64,
    /// Number of audio packets.
    pub total_packets: u64,
}

impl StreamLayout {
    pub fn total_samples(&self) -> u64 {
        self.rows.last().map_or(0, |r| r.samples_done)
    }
}

/// Scans a whole Ogg Opus stream: checks every page (CRC, one logical stream, page
/// sequence, header packets) and builds the page index at decoding rate `rate`.
pub fn scan(bytes: &[u8], rate: u32) -> Result<StreamLayout, OggError> {
    let factor = u64::from(48_000 / rate);
    let not_opus = |m: String| OggError::NotOpus(m);
    let mut pos = 0usize;
    let mut asm = PacketAssembler::new();
    let mut head: Option<OpusHead> = None;
    let mut tags_done = false;
    let mut rows = Vec::new();
    let (mut packets, mut samples) = (0u64, 0u64);
    let mut serial = None;
    let mut expected_seq = 0u32;
    let mut last_granule = -1i64;
    let mut saw_eos = false;
    while pos < bytes.len() {
        let page = parse_page(&bytes[pos..], pos as u64)?;
        if saw_eos {
            return Err(not_opus(format!(
                "data after the end-of-stream page at byte {pos} (chained streams are not supported)"
            )));
        }
        if *serial.get_or_insert(page.serial) != page.serial {
            return Err(not_opus(format!(
                "page at byte {pos} belongs to another logical stream (multiplexed Ogg is not supported)"
            )));
        }
        if page.sequence != expected_seq {
            return Err(not_opus(format!(
                "page at byte {pos} has sequence {} (expected {expected_seq}): pages missing",
                page.sequence
            )));
        }
        expected_seq = expected_seq.wrapping_add(1);
        saw_eos = page.end_of_stream();
        let audio = head.is_some() && tags_done;
        let mut err = None;
        asm.push::<OggError>(&page, |p| {
            if head.is_none() {
                head = Some(OpusHead::parse(p)?);
            } else if !tags_done {
                if !p.starts_with(b"OpusTags") {
                    return Err(not_opus("second packet is not OpusTags".into()));
                }
                tags_done = true;
            } else if !audio {
                return Err(not_opus(format!(
                    "audio packet on the header page at byte {pos} (RFC 7845 requires a new page)"
                )));
            } else {
                let d = opus_packet_duration_48k(p).ok_or_else(|| {
                    not_opus(format!(
                        "invalid Opus packet #{packets} in page at byte {pos}"
                    ))
                })?;
                if u64::from(d) % factor != 0 {
                    err = Some(not_opus(format!(
                        "packet #{packets} lasts {d}/48000 s, not whole samples at {rate} Hz"
                    )));
                }
                packets += 1;
                samples += u64::from(d) / factor;
            }
            Ok(())
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        if audio {
            rows.push(PageRow {
                offset: pos as u64,
                granule: page.granule,
                packets_done: packets,
                samples_done: samples,
            });
            if page.granule >= 0 {
                last_granule = page.granule;
            }
        } else if tags_done && page.lacing.last().is_some_and(|&l| l == 255) {
            return Err(not_opus(
                "audio data begins on the page that ends the headers".into(),
            ));
        }
        pos += page.len;
    }
    let head = head.ok_or_else(|| not_opus("empty stream".into()))?;
    if packets == 0 {
        return Err(not_opus("stream has no audio packets".into()));
    }
    // Every page but the last must carry exactly the running sample count; the last may
    // be smaller (end trimming). Anything else means a stream that does not start at 0.
    for r in &rows[..rows.len() - 1] {
        if r.granule >= 0 && r.granule as u64 != r.samples_done * factor {
            return Err(not_opus(format!(
                "page at byte {} has granule {} but {} samples precede it (streams not starting at granule 0 are not supported)",
                r.offset,
                r.granule,
                r.samples_done * factor
            )));
        }
    }
    if last_granule < i64::from(head.pre_skip) || last_granule as u64 > samples * factor {
        return Err(not_opus(format!(
            "final granule {last_granule} is outside [pre-skip {}, decoded {}]",
            head.pre_skip,
            samples * factor
        )));
    }
    Ok(StreamLayout {
        head,
        rows,
        final_granule: last_granule,
        total_packets: packets,
    })
}

/// Read-only lookups over a recording's rows.
#[derive(Debug, Clone)]
pub struct PageIndex {
    rows: Vec<PageRow>,
    stream_bytes: u64,
}

impl PageIndex {
    pub fn new(rows: Vec<PageRow>, stream_bytes: u64) -> Self {
        PageIndex { rows, stream_bytes }
    }

    pub fn rows(&self) -> &[PageRow] {
        &self.rows
    }

    pub fn total_packets(&self) -> u64 {
        self.rows.last().map_or(0, |r| r.packets_done)
    }

    pub fn total_samples(&self) -> u64 {
        self.rows.last().map_or(0, |r| r.samples_done)
    }

    /// The granule position of the last page that has one (48 kHz units): where the
    /// stream says its audio ends, pre-skip included.
    pub fn final_granule(&self) -> Option<u64> {
        let r = self.rows.iter().rev().find(|r| r.granule >= 0)?;
        Some(r.granule as u64)
    }

    /// Audio packets completed before page `k`.
    pub fn packets_before(&self, k: usize) -> u64 {
        if k == 0 {
            0
        } else {
            self.rows[k - 1].packets_done
        }
    }

    /// Samples of the packets completed before page `k`.
    pub fn samples_before(&self, k: usize) -> u64 {
        if k == 0 {
            0
        } else {
            self.rows[k - 1].samples_done
        }
    }

    /// The page on which packet `p` (0-based) ends.
    pub fn page_ending_packet(&self, p: u64) -> usize {
        self.rows.partition_point(|r| r.packets_done <= p)
    }

    /// The first page to read to obtain packet `p` whole: the page on which packet
    /// `p - 1` ends (packet `p` starts there or right after it), or the first page.
    pub fn first_page_for_packet(&self, p: u64) -> usize {
        if p == 0 {
            0
        } else {
            self.page_ending_packet(p - 1)
        }
    }

    /// Byte range of pages `first..=last`.
    pub fn byte_range(&self, first: usize, last: usize) -> std::ops::Range<u64> {
        let end = self
            .rows
            .get(last + 1)
            .map_or(self.stream_bytes, |r| r.offset);
        self.rows[first].offset..end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(done: &[u64]) -> PageIndex {
        let rows = done
            .iter()
            .enumerate()
            .map(|(i, &d)| PageRow {
                offset: i as u64 * 100,
                granule: d as i64 * 960,
                packets_done: d,
                samples_done: d * 960,
            })
            .collect();
        PageIndex::new(rows, done.len() as u64 * 100)
    }

    #[test]
    fn finds_pages_for_packets() {
        // page 0 ends packets 0..3, page 1 ends none (one long packet spans it), page 2 ends 3..5
        let ix = rows(&[3, 3, 5]);
        assert_eq!(ix.page_ending_packet(0), 0);
        assert_eq!(ix.page_ending_packet(2), 0);
        assert_eq!(ix.page_ending_packet(3), 2);
        assert_eq!(ix.first_page_for_packet(0), 0);
        assert_eq!(ix.first_page_for_packet(3), 0);
        assert_eq!(ix.first_page_for_packet(4), 2);
        assert_eq!(ix.byte_range(1, 2), 100..300);
        assert_eq!(ix.packets_before(2), 3);
    }

    #[test]
    fn digest_changes_with_any_field() {
        let a = rows(&[3, 5]);
        let mut b = a.rows().to_vec();
        b[1].granule += 1;
        assert_ne!(digest(a.rows()), digest(&b));
    }
}
