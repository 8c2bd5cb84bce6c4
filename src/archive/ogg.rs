//! Ogg pages (RFC 3533) as stored in a recording's `stream`: parsing with CRC checks,
//! packet reassembly across pages, and Opus packet durations.
//!
//! Reading is hand-written rather than the `ogg` crate's `PacketReader` because the engine
//! starts in the middle of a stream, at a page whose first packet may be the tail of one
//! that began earlier, and must check every page against the index it came from.

/// Why a byte range is not the Ogg data the index promised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OggError {
    #[error("no Ogg page at byte {offset} (missing \"OggS\" capture pattern)")]
    NoCapture { offset: u64 },
    #[error("Ogg page at byte {offset} is truncated")]
    Truncated { offset: u64 },
    #[error("Ogg page at byte {offset} has a bad CRC (damaged data)")]
    Crc { offset: u64 },
    #[error("Ogg page at byte {offset} has unsupported version {version}")]
    Version { offset: u64, version: u8 },
    #[error("not an Ogg Opus stream: {0}")]
    NotOpus(String),
    #[error("unsupported Ogg Opus channel mapping: {0}")]
    Mapping(String),
}

/// One parsed page, borrowing from the buffer it was found in.
#[derive(Debug, Clone)]
pub struct Page<'a> {
    pub header_type: u8,
    pub granule: i64,
    pub serial: u32,
    pub sequence: u32,
    pub lacing: &'a [u8],
    pub body: &'a [u8],
    /// Total length of the page in bytes (header + body).
    pub len: usize,
}

impl Page<'_> {
    /// The first packet on this page continues one from the previous page.
    pub fn continued(&self) -> bool {
        self.header_type & 0x01 != 0
    }
    pub fn end_of_stream(&self) -> bool {
        self.header_type & 0x04 != 0
    }
    /// Number of packets that end on this page.
    pub fn packets_completed(&self) -> u64 {
        self.lacing.iter().filter(|&&l| l < 255).count() as u64
    }
}

/// CRC-32 of Ogg: polynomial 0x04c11db7, initial value 0, no reflection, no final xor.
fn crc_table() -> &'static [u32; 256] {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut r = (i as u32) << 24;
            for _ in 0..8 {
                r = if r & 0x8000_0000 != 0 {
                    (r << 1) ^ 0x04c1_1db7
                } else {
                    r << 1
                };
            }
            *e = r;
        }
        t
    })
}

/// `crc` (the Ogg CRC-32 of what came before) updated with `bytes`; 0 to start.
pub(crate) fn crc_update(mut crc: u32, bytes: &[u8]) -> u32 {
    let t = crc_table();
    for &b in bytes {
        crc = (crc << 8) ^ t[((crc >> 24) as u8 ^ b) as usize];
    }
    crc
}

/// Length of the page whose header starts `buf`, when `buf` holds that header whole
/// (at most 27 + 255 bytes), so a reader can fetch exactly one page.
pub fn page_len(buf: &[u8]) -> Option<usize> {
    let nseg = usize::from(*buf.get(26)?);
    let lacing = buf.get(27..27 + nseg)?;
    Some(27 + nseg + lacing.iter().map(|&l| usize::from(l)).sum::<usize>())
}

/// Parses and CRC-checks the page at the start of `buf`; `offset` only labels errors.
pub fn parse_page(buf: &[u8], offset: u64) -> Result<Page<'_>, OggError> {
    if buf.len() < 27 {
        return Err(if buf.starts_with(b"OggS") || buf.is_empty() {
            OggError::Truncated { offset }
        } else {
            OggError::NoCapture { offset }
        });
    }
    if &buf[0..4] != b"OggS" {
        return Err(OggError::NoCapture { offset });
    }
    if buf[4] != 0 {
        return Err(OggError::Version {
            offset,
            version: buf[4],
        });
    }
    let nseg = usize::from(buf[26]);
    let header_len = 27 + nseg;
    if buf.len() < header_len {
        return Err(OggError::Truncated { offset });
    }
    let lacing = &buf[27..header_len];
    let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
    let len = header_len + body_len;
    if buf.len() < len {
        return Err(OggError::Truncated { offset });
    }
    let stored = u32::from_le_bytes(buf[22..26].try_into().expect("4 bytes"));
    let mut crc = crc_update(0, &buf[..22]);
    crc = crc_update(crc, &[0; 4]);
    crc = crc_update(crc, &buf[26..len]);
    if crc != stored {
        return Err(OggError::Crc { offset });
    }
    Ok(Page {
        header_type: buf[5],
        granule: i64::from_le_bytes(buf[6..14].try_into().expect("8 bytes")),
        serial: u32::from_le_bytes(buf[14..18].try_into().expect("4 bytes")),
        sequence: u32::from_le_bytes(buf[18..22].try_into().expect("4 bytes")),
        lacing,
        body: &buf[header_len..len],
        len,
    })
}

/// Reassembles packets from consecutive pages.
///
/// When started on a page whose first packet continues from an earlier page, that
/// partial packet is dropped: the reader did not see its beginning.
#[derive(Default)]
pub struct PacketAssembler {
    partial: Vec<u8>,
    /// True while the bytes in `partial` are a packet whose start we never saw.
    headless: bool,
    started: bool,
}

impl PacketAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one page; calls `emit` for each packet completed on it.
    pub fn push<E>(
        &mut self,
        page: &Page<'_>,
        mut emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.started {
            self.started = true;
            self.headless = page.continued();
        } else if !page.continued() {
            // A packet left unfinished at the end of the previous page was abandoned.
            self.partial.clear();
            self.headless = false;
        }
        let mut pos = 0;
        for &l in page.lacing {
            let l = usize::from(l);
            self.partial.extend_from_slice(&page.body[pos..pos + l]);
            pos += l;
            if l < 255 {
                if !self.headless {
                    emit(&self.partial)?;
                }
                self.headless = false;
                self.partial.clear();
            }
        }
        Ok(())
    }
}

/// Duration of an Opus packet in 48 kHz samples, from its TOC byte (RFC 6716 §3.1).
///
/// Ogg Opus granule positions are sums of these, so the container layer computes them
/// itself rather than asking a decoder.
pub fn opus_packet_duration_48k(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let count = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3F),
    };
    let total = frame * count;
    (count > 0 && total <= 5760).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_stream(packets: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = ogg::PacketWriter::new(&mut out);
            for (i, p) in packets.iter().enumerate() {
                let end = if i + 1 == packets.len() {
                    ogg::PacketWriteEndInfo::EndStream
                } else if i % 3 == 2 {
                    ogg::PacketWriteEndInfo::EndPage
                } else {
                    ogg::PacketWriteEndInfo::NormalPacket
                };
                w.write_packet(p.clone(), 7, end, i as u64).unwrap();
            }
        }
        out
    }

    fn read_all(bytes: &[u8], from: usize) -> Vec<Vec<u8>> {
        let mut asm = PacketAssembler::new();
        let mut pos = from;
        let mut got = Vec::new();
        while pos < bytes.len() {
            let page = parse_page(&bytes[pos..], pos as u64).unwrap();
            asm.push::<()>(&page, |p| {
                got.push(p.to_vec());
                Ok(())
            })
            .unwrap();
            pos += page.len;
        }
        got
    }

    #[test]
    fn reads_what_the_ogg_crate_writes_including_packets_spanning_pages() {
        // 70,000 bytes needs more than one page (max 255 * 255 bytes per page).
        let packets: Vec<Vec<u8>> = [10usize, 70_000, 255, 0, 510, 3]
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (i * 31 + j) as u8).collect())
            .collect();
        let bytes = write_stream(&packets);
        assert_eq!(read_all(&bytes, 0), packets);
    }

    #[test]
    fn starting_on_a_continued_page_drops_the_partial_packet() {
        let packets: Vec<Vec<u8>> = vec![vec![1; 70_000], vec![2; 5]];
        let bytes = write_stream(&packets);
        let first = parse_page(&bytes, 0).unwrap();
        assert!(!first.continued());
        let second = parse_page(&bytes[first.len..], first.len as u64).unwrap();
        assert!(second.continued());
        assert_eq!(read_all(&bytes, first.len), vec![vec![2; 5]]);
    }

    #[test]
    fn any_flipped_bit_is_caught_by_the_crc() {
        let bytes = write_stream(&[vec![9; 100]]);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(parse_page(&b, 0).is_err(), "flip at byte {i} not detected");
        }
    }

    #[test]
    fn packet_durations_follow_the_toc_byte() {
        assert_eq!(opus_packet_duration_48k(&[0xFC, 0, 0]), Some(960)); // CELT FB 20 ms, code 0
        assert_eq!(opus_packet_duration_48k(&[0x09]), Some(960 * 2)); // SILK NB 20 ms, code 1: two frames
        assert_eq!(opus_packet_duration_48k(&[0x0B]), None); // code 3 without its frame-count byte
        assert_eq!(opus_packet_duration_48k(&[0x0B, 0x03]), Some(960 * 3));
        assert_eq!(opus_packet_duration_48k(&[0x0B, 0x07]), None); // 7 x 20 ms > 120 ms
        assert_eq!(opus_packet_duration_48k(&[]), None);
    }
}
