//! Encoding PCM to a complete Ogg Opus stream (RFC 7845) in 20 ms packets: mapping
//! family 0 for 1–2 channels, family 1 (Vorbis order) for 3–8.

use ogg::{PacketWriteEndInfo, PacketWriter};

use super::encoder::Encoder;
use super::libopus::OpusError;
use crate::archive::opus_head::{OpusHead, opus_tags};

/// Packets per Ogg page: one second of 20 ms packets keeps the index small (one row per
/// second) while a page stays a few kilobytes.
const PACKETS_PER_PAGE: u64 = 50;

/// Encodes interleaved f32 samples (-1.0..1.0, WAV channel order) into an Ogg Opus
/// byte stream.
pub struct OggOpusEncoder {
    enc: Encoder,
    writer: PacketWriter<'static, Vec<u8>>,
    serial: u32,
    channels: usize,
    /// Samples per channel per packet at the encoder's rate (20 ms).
    frame: usize,
    /// 48 kHz granule units per encoder sample.
    factor: u64,
    pre_skip_48k: u64,
    lookahead: u64,
    pending: Vec<f32>,
    frames_in: u64,
    packets: u64,
}

impl OggOpusEncoder {
    /// `rate` must be an Opus rate (8, 12, 16, 24 or 48 kHz); `bitrate` is the total of
    /// all channels; `serial` names the Ogg stream.
    pub fn new(rate: u32, channels: u16, bitrate: u32, serial: u32) -> Result<Self, OpusError> {
        let enc = Encoder::new(rate, channels, bitrate)?;
        let lookahead = u64::from(enc.lookahead()?);
        let factor = u64::from(48_000 / rate);
        let pre_skip_48k = lookahead * factor;
        let head = OpusHead {
            pre_skip: u16::try_from(pre_skip_48k)
                .map_err(|_| OpusError::Lib("pre-skip too large".into()))?,
            input_sample_rate: rate,
            output_gain: 0,
            mapping: enc.mapping().clone(),
        };
        let mut writer = PacketWriter::new(Vec::new());
        let io = |e: std::io::Error| OpusError::Lib(e.to_string());
        writer
            .write_packet(head.to_bytes(), serial, PacketWriteEndInfo::EndPage, 0)
            .map_err(io)?;
        let vendor = format!(
            "zarr-wavfs {} ({})",
            env!("CARGO_PKG_VERSION"),
            super::libopus::version()
        );
        writer
            .write_packet(opus_tags(&vendor), serial, PacketWriteEndInfo::EndPage, 0)
            .map_err(io)?;
        Ok(OggOpusEncoder {
            enc,
            writer,
            serial,
            channels: usize::from(channels),
            frame: rate as usize / 50,
            factor,
            pre_skip_48k,
            lookahead,
            pending: Vec::new(),
            frames_in: 0,
            packets: 0,
        })
    }

    /// Pre-skip in 48 kHz units, as written in the OpusHead.
    pub fn pre_skip_48k(&self) -> u64 {
        self.pre_skip_48k
    }

    /// Adds interleaved samples.
    pub fn push(&mut self, samples: &[f32]) -> Result<(), OpusError> {
        self.frames_in += (samples.len() / self.channels) as u64;
        self.pending.extend_from_slice(samples);
        let n = self.frame * self.channels;
        let whole = self.pending.len() / n * n;
        let mut buf = std::mem::take(&mut self.pending);
        for chunk in buf[..whole].chunks_exact(n) {
            self.write(chunk, false, 0)?;
        }
        buf.drain(..whole);
        self.pending = buf;
        Ok(())
    }

    fn write(&mut self, pcm: &[f32], last: bool, end_granule: u64) -> Result<(), OpusError> {
        let packet = self.enc.encode(pcm)?;
        self.packets += 1;
        let (info, granule) = if last {
            (PacketWriteEndInfo::EndStream, end_granule)
        } else if self.packets.is_multiple_of(PACKETS_PER_PAGE) {
            (
                PacketWriteEndInfo::EndPage,
                self.packets * self.frame as u64 * self.factor,
            )
        } else {
            (
                PacketWriteEndInfo::NormalPacket,
                self.packets * self.frame as u64 * self.factor,
            )
        };
        self.writer
            .write_packet(packet, self.serial, info, granule)
            .map_err(|e| OpusError::Lib(e.to_string()))
    }

    /// Flushes the encoder (zero padding covers its lookahead) and returns the stream
    /// bytes and the number of frames encoded. The final granule position marks the end
    /// exactly, so decoders trim the padding.
    pub fn finish(mut self) -> Result<(Vec<u8>, u64), OpusError> {
        let frames = self.frames_in;
        let end_granule = self.pre_skip_48k + frames * self.factor;
        let needed = frames + self.lookahead;
        let n = self.frame * self.channels;
        let mut tail = std::mem::take(&mut self.pending);
        loop {
            let encoded = self.packets * self.frame as u64;
            let last = encoded + self.frame as u64 >= needed;
            tail.resize(n, 0.0);
            let chunk = std::mem::take(&mut tail);
            self.write(&chunk, last, end_granule)?;
            if last {
                break;
            }
        }
        Ok((self.writer.into_inner(), frames))
    }
}
