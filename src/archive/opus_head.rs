//! The Ogg Opus header packets (RFC 7845 §5): the identification header `OpusHead`
//! with its channel mapping, and the `OpusTags` zarr-wavfs writes.

use super::ogg::OggError;

/// Largest channel count of channel mapping family 1 (RFC 7845 §5.1.1.2).
pub const MAX_FAMILY1_CHANNELS: u8 = 8;

/// How a decoder's output channels come from the Opus streams of each packet
/// (RFC 7845 §5.1.1). Always valid: built only by [`ChannelMapping::family0`] and
/// [`ChannelMapping::family1`], which check the RFC's rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelMapping {
    family: u8,
    streams: u8,
    coupled: u8,
    /// For each output channel, the decoded stream channel it carries (255: silence).
    table: Vec<u8>,
}

fn unsupported(message: String) -> OggError {
    OggError::Mapping(message)
}

impl ChannelMapping {
    /// Family 0: one stream, mono or stereo, no mapping table in the header.
    pub fn family0(channels: u8) -> Result<Self, OggError> {
        if !(1..=2).contains(&channels) {
            return Err(unsupported(format!(
                "mapping family 0 has 1 or 2 channels, this OpusHead declares {channels}"
            )));
        }
        Ok(ChannelMapping {
            family: 0,
            streams: 1,
            coupled: channels - 1,
            table: (0..channels).collect(),
        })
    }

    /// Family 1: up to 8 channels in Vorbis order, carried by `streams` Opus streams of
    /// which the first `coupled` are stereo; `table[c]` is the stream channel of output
    /// channel `c`.
    pub fn family1(streams: u8, coupled: u8, table: Vec<u8>) -> Result<Self, OggError> {
        let channels = table.len();
        if !(1..=usize::from(MAX_FAMILY1_CHANNELS)).contains(&channels) {
            return Err(unsupported(format!(
                "mapping family 1 has 1 to {MAX_FAMILY1_CHANNELS} channels, this OpusHead declares {channels}"
            )));
        }
        let decoded = u16::from(streams) + u16::from(coupled);
        if streams == 0 || coupled > streams || decoded > 255 {
            return Err(unsupported(format!(
                "{streams} streams with {coupled} coupled is not a valid family 1 layout"
            )));
        }
        if let Some(&bad) = table.iter().find(|&&m| m != 255 && u16::from(m) >= decoded) {
            return Err(unsupported(format!(
                "mapping table entry {bad} names none of the {decoded} decoded channels"
            )));
        }
        Ok(ChannelMapping {
            family: 1,
            streams,
            coupled,
            table,
        })
    }

    pub fn family(&self) -> u8 {
        self.family
    }

    pub fn channels(&self) -> u8 {
        self.table.len() as u8
    }

    pub fn streams(&self) -> u8 {
        self.streams
    }

    pub fn coupled(&self) -> u8 {
        self.coupled
    }

    pub fn table(&self) -> &[u8] {
        &self.table
    }
}

/// The Ogg Opus identification header ("OpusHead").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusHead {
    /// Samples at 48 kHz to drop from the decoder output's start.
    pub pre_skip: u16,
    pub input_sample_rate: u32,
    pub output_gain: i16,
    pub mapping: ChannelMapping,
}

impl OpusHead {
    /// Parses an identification header. Families other than 0 and 1 are refused: their
    /// channels have no order a WAV file could carry (255) or need ambisonic rendering.
    pub fn parse(p: &[u8]) -> Result<Self, OggError> {
        if p.len() < 19 || &p[0..8] != b"OpusHead" {
            return Err(OggError::NotOpus(
                "first packet is not an OpusHead header".into(),
            ));
        }
        if p[8] & 0xF0 != 0 {
            return Err(OggError::NotOpus(format!(
                "unsupported OpusHead version {}",
                p[8]
            )));
        }
        let channels = p[9];
        if channels == 0 {
            return Err(OggError::NotOpus("OpusHead declares 0 channels".into()));
        }
        let mapping = match p[18] {
            0 => ChannelMapping::family0(channels)?,
            1 => {
                let end = 21 + usize::from(channels);
                let table = p.get(21..end).ok_or_else(|| {
                    OggError::NotOpus("OpusHead ends inside its channel mapping table".into())
                })?;
                ChannelMapping::family1(p[19], p[20], table.to_vec())?
            }
            255 => {
                return Err(unsupported(
                    "family 255 (channels without a defined order or meaning); zarr-wavfs reads families 0 and 1"
                        .into(),
                ));
            }
            f => {
                return Err(unsupported(format!(
                    "family {f}; zarr-wavfs reads families 0 and 1"
                )));
            }
        };
        Ok(OpusHead {
            pre_skip: u16::from_le_bytes([p[10], p[11]]),
            input_sample_rate: u32::from_le_bytes([p[12], p[13], p[14], p[15]]),
            output_gain: i16::from_le_bytes([p[16], p[17]]),
            mapping,
        })
    }

    pub fn channels(&self) -> u8 {
        self.mapping.channels()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = b"OpusHead".to_vec();
        v.push(1);
        v.push(self.channels());
        v.extend_from_slice(&self.pre_skip.to_le_bytes());
        v.extend_from_slice(&self.input_sample_rate.to_le_bytes());
        v.extend_from_slice(&self.output_gain.to_le_bytes());
        v.push(self.mapping.family);
        if self.mapping.family != 0 {
            v.push(self.mapping.streams);
            v.push(self.mapping.coupled);
            v.extend_from_slice(&self.mapping.table);
        }
        v
    }
}

/// An "OpusTags" header naming the writer, with no user comments.
pub fn opus_tags(vendor: &str) -> Vec<u8> {
    let mut v = b"OpusTags".to_vec();
    v.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    v.extend_from_slice(vendor.as_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(mapping: ChannelMapping) -> OpusHead {
        OpusHead {
            pre_skip: 312,
            input_sample_rate: 44_100,
            output_gain: -3,
            mapping,
        }
    }

    #[test]
    fn family0_round_trips_in_19_bytes() {
        let h = head(ChannelMapping::family0(2).unwrap());
        let b = h.to_bytes();
        assert_eq!(b.len(), 19);
        assert_eq!(OpusHead::parse(&b).unwrap(), h);
        assert!(OpusHead::parse(b"OpusTags........xxxx").is_err());
    }

    #[test]
    fn family1_round_trips_with_its_table() {
        // 5.1 as libopus's surround encoder lays it out
        let m = ChannelMapping::family1(4, 2, vec![0, 4, 1, 2, 3, 5]).unwrap();
        let h = head(m);
        let b = h.to_bytes();
        assert_eq!(b.len(), 21 + 6);
        assert_eq!(&b[18..], &[1, 4, 2, 0, 4, 1, 2, 3, 5]);
        let p = OpusHead::parse(&b).unwrap();
        assert_eq!(p, h);
        assert_eq!(p.channels(), 6);
    }

    #[test]
    fn bad_headers_are_refused_with_the_reason() {
        let ok = head(ChannelMapping::family1(2, 1, vec![0, 2, 1]).unwrap()).to_bytes();
        let msg = |b: &[u8]| OpusHead::parse(b).unwrap_err().to_string();
        assert!(msg(&ok[..ok.len() - 1]).contains("inside its channel mapping table"));
        let mut b = ok.clone();
        b[18] = 255;
        assert!(msg(&b).contains("family 255"), "{}", msg(&b));
        b[18] = 2;
        assert!(msg(&b).contains("family 2"));
        let mut b = ok.clone();
        b[9] = 3;
        b[18] = 0;
        assert!(msg(&b).contains("1 or 2 channels"));
        let mut b = ok.clone();
        b[23] = 3; // names decoded channel 3 of 3
        assert!(msg(&b).contains("entry 3"));
        let mut b = ok.clone();
        b[20] = 3; // more coupled than streams
        assert!(msg(&b).contains("not a valid family 1 layout"));
        let mut b = ok;
        b[19] = 0;
        assert!(msg(&b).contains("not a valid family 1 layout"));
        let nine = ChannelMapping::family1(9, 0, (0..9).collect()).unwrap_err();
        assert!(nine.to_string().contains("1 to 8 channels"));
        // silent channels (255) are allowed
        assert!(ChannelMapping::family1(1, 0, vec![0, 255, 0]).is_ok());
    }
}
