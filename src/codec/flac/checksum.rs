//! FLAC's checksums: CRC-8 of frame headers, CRC-16 of whole frames, MD5 of the audio.

use md5::{Digest, Md5};

/// CRC-8 as FLAC defines it (polynomial x^8 + x^2 + x + 1, initial value 0).
pub(crate) fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in bytes {
        crc = CRC8_TABLE[(crc ^ b) as usize];
    }
    crc
}

/// CRC-16 as FLAC defines it (polynomial x^16 + x^15 + x^2 + 1, initial value 0).
///
/// Because the CRC has no final XOR, a frame followed by its own big-endian CRC
/// sums to zero, which is how frames are checked.
pub(crate) fn crc16(crc: u16, bytes: &[u8]) -> u16 {
    // Slicing-by-8: scanning checks the CRC of every frame of a file, so this is the
    // inner loop of `scan` and has to run at memory speed rather than byte by byte.
    // (Array patterns and `as` casts keep unoptimised test builds fast too.)
    let mut crc = crc;
    let (chunks, rest) = bytes.as_chunks::<8>();
    let t = &CRC16_TABLES;
    for &[b0, b1, b2, b3, b4, b5, b6, b7] in chunks {
        crc = t[7][(b0 ^ (crc >> 8) as u8) as usize]
            ^ t[6][(b1 ^ crc as u8) as usize]
            ^ t[5][b2 as usize]
            ^ t[4][b3 as usize]
            ^ t[3][b4 as usize]
            ^ t[2][b5 as usize]
            ^ t[1][b6 as usize]
            ^ t[0][b7 as usize];
    }
    for &b in rest {
        crc = (crc << 8) ^ t[0][(b ^ (crc >> 8) as u8) as usize];
    }
    crc
}

const CRC8_TABLE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u8;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 0x80 != 0 {
                (c << 1) ^ 0x07
            } else {
                c << 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// `CRC16_TABLES[k][b]`: the CRC of byte `b` followed by `k` zero bytes.
const CRC16_TABLES: [[u16; 256]; 8] = {
    let mut tables = [[0u16; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 0x8000 != 0 {
                (c << 1) ^ 0x8005
            } else {
                c << 1
            };
            bit += 1;
        }
        tables[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[k - 1][i];
            tables[k][i] = (prev << 8) ^ tables[0][(prev >> 8) as usize];
            i += 1;
        }
        k += 1;
    }
    tables
};

/// Streaming MD5 of decoded audio as STREAMINFO defines it: every sample
/// little-endian in `ceil(bits / 8)` bytes (two's complement), interleaved.
#[derive(Clone)]
pub struct AudioMd5 {
    md5: Md5,
    bytes_per_sample: usize,
    buf: Vec<u8>,
}

impl AudioMd5 {
    /// Samples this many interleaved values at a time are turned into bytes:
    /// hashing sample by sample would cost a call per sample.
    const CHUNK: usize = 4096;

    /// `bits` is the stream's bits per sample (1..=32; values outside are clamped).
    pub fn new(bits: u16) -> Self {
        let bytes_per_sample = usize::from(bits.clamp(1, 32)).div_ceil(8);
        AudioMd5 {
            md5: Md5::new(),
            bytes_per_sample,
            buf: Vec::with_capacity(Self::CHUNK * bytes_per_sample),
        }
    }

    /// Adds interleaved samples (any amount; frames may be split across calls).
    pub fn update(&mut self, interleaved: &[i32]) {
        let n = self.bytes_per_sample;
        for chunk in interleaved.chunks(Self::CHUNK) {
            self.buf.clear();
            for &s in chunk {
                self.buf.extend_from_slice(&s.to_le_bytes()[..n]);
            }
            self.md5.update(&self.buf);
        }
    }

    /// The digest of everything added.
    pub fn finish(self) -> [u8; 16] {
        self.md5.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc16_bytewise(bytes: &[u8]) -> u16 {
        let mut crc = 0u16;
        for &b in bytes {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x8005
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    #[test]
    fn crc16_matches_bitwise_definition_at_every_length_and_split() {
        let data: Vec<u8> = (0..100u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in 0..data.len() {
            let want = crc16_bytewise(&data[..len]);
            assert_eq!(crc16(0, &data[..len]), want, "len {len}");
            for split in 0..=len {
                let part = crc16(0, &data[..split]);
                assert_eq!(crc16(part, &data[split..len]), want);
            }
        }
    }

    #[test]
    fn crc_check_values() {
        // Standard check values for "123456789": CRC-8/SMBUS 0xF4, CRC-16/UMTS 0xFEE8.
        assert_eq!(crc8(b"123456789"), 0xF4);
        assert_eq!(crc16(0, b"123456789"), 0xFEE8);
        // A message followed by its CRC sums to zero.
        let mut m = b"123456789".to_vec();
        m.extend_from_slice(&0xFEE8u16.to_be_bytes());
        assert_eq!(crc16(0, &m), 0);
    }

    #[test]
    fn md5_of_samples_uses_little_endian_bytes_per_sample() {
        // 16-bit stereo silence, 32 frames: the digest flacenc's own tests pin.
        let mut m = AudioMd5::new(16);
        m.update(&[0; 32]);
        m.update(&[0; 32]);
        assert_eq!(
            m.finish(),
            [
                0xF0, 0x9F, 0x35, 0xA5, 0x63, 0x78, 0x39, 0x45, 0x8E, 0x46, 0x2E, 0x63, 0x50, 0xEC,
                0xBC, 0xE4
            ]
        );
        // 24 bits: three bytes each, sign bytes included.
        let mut a = AudioMd5::new(24);
        a.update(&[-2, 0x12_3456]);
        let mut b = Md5::new();
        b.update([0xFE, 0xFF, 0xFF, 0x56, 0x34, 0x12]);
        assert_eq!(a.finish(), <[u8; 16]>::from(b.finalize()));
    }
}
