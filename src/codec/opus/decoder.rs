//! A libopus decoder whose whole state lives in one buffer owned here, so it can be
//! copied (same process) and snapshotted in the portable form of `csrc/opus_state.c`
//! (any process). One type serves both kinds of stream: a single `OpusDecoder` for
//! mapping family 0, an `OpusMSDecoder` for family 1.

use std::os::raw::c_int;

use audiopus_sys as ffi;

use super::channel_order::{vorbis_of_wav, vorbis_to_wav};
use super::libopus::{
    OpusError, lib_error, zw_opus_ms_state_export, zw_opus_ms_state_history,
    zw_opus_ms_state_import, zw_opus_state_export, zw_opus_state_history, zw_opus_state_import,
};
use crate::archive::opus_head::ChannelMapping;

/// Largest Opus packet duration (120 ms) at 48 kHz, per channel.
pub const MAX_PACKET_SAMPLES: usize = 5760;

/// Size in bytes of the decoder state for `mapping` (0 if libopus refuses the layout).
pub fn state_size(mapping: &ChannelMapping) -> usize {
    // SAFETY: pure queries; libopus returns 0 for invalid arguments.
    let n = unsafe {
        if mapping.family() == 0 {
            ffi::opus_decoder_get_size(c_int::from(mapping.channels()))
        } else {
            ffi::opus_multistream_decoder_get_size(
                c_int::from(mapping.streams()),
                c_int::from(mapping.coupled()),
            )
        }
    };
    usize::try_from(n).unwrap_or(0)
}

/// An Opus decoder. Output is interleaved i16 in the recording's channel order (WAV
/// order; see `channel_order`).
pub struct Decoder {
    /// u64 words keep the state 8-byte aligned, as libopus's own allocation would be.
    state: Vec<u64>,
    size: usize,
    mapping: ChannelMapping,
    /// Family 1 streams hold Vorbis order: the permutation back to WAV order.
    reorder: Option<&'static [usize]>,
}

// SAFETY: the state is plain memory owned by this value; libopus keeps no thread-local
// references to it, and `&mut self` is required for every call that mutates it.
unsafe impl Send for Decoder {}
// SAFETY: a shared `&Decoder` only allows reading the state buffer (export, clone).
unsafe impl Sync for Decoder {}

impl Decoder {
    pub fn new(rate: u32, mapping: &ChannelMapping) -> Result<Self, OpusError> {
        let size = state_size(mapping);
        if size == 0 {
            return Err(OpusError::Lib(format!(
                "unsupported channel layout {mapping:?}"
            )));
        }
        let mut d = Decoder {
            state: vec![0; size.div_ceil(8)],
            size,
            mapping: mapping.clone(),
            reorder: if mapping.family() == 1 {
                vorbis_of_wav(usize::from(mapping.channels()))
            } else {
                None
            },
        };
        let rate = rate as i32;
        let ch = c_int::from(mapping.channels());
        // SAFETY: the buffer is at least state_size(mapping) bytes and 8-byte aligned;
        // the mapping table has `channels` entries, as libopus reads.
        let rc = unsafe {
            if mapping.family() == 0 {
                ffi::opus_decoder_init(d.state.as_mut_ptr().cast(), rate, ch)
            } else {
                ffi::opus_multistream_decoder_init(
                    d.state.as_mut_ptr().cast(),
                    rate,
                    ch,
                    c_int::from(mapping.streams()),
                    c_int::from(mapping.coupled()),
                    mapping.table().as_ptr(),
                )
            }
        };
        if rc != 0 {
            return Err(lib_error(rc));
        }
        Ok(d)
    }

    pub fn channels(&self) -> u16 {
        u16::from(self.mapping.channels())
    }

    fn multistream(&self) -> bool {
        self.mapping.family() != 0
    }

    /// Decodes one packet, appending interleaved samples to `out`; returns frames decoded.
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<i16>) -> Result<usize, OpusError> {
        let ch = usize::from(self.mapping.channels());
        let start = out.len();
        // libopus writes into the spare capacity: zeroing a maximal packet's room first
        // cost a memset six times the size of a 20 ms packet's output.
        out.reserve(MAX_PACKET_SAMPLES * ch);
        let len =
            c_int::try_from(packet.len()).map_err(|_| OpusError::Lib("packet too large".into()))?;
        let pcm = out.spare_capacity_mut().as_mut_ptr().cast::<i16>();
        let st = self.state.as_mut_ptr();
        // SAFETY: the state is an initialised decoder of the kind `multistream` says;
        // packet has len bytes; out has spare room for MAX_PACKET_SAMPLES frames of `ch`
        // channels, the frame_size passed.
        let n = unsafe {
            if self.multistream() {
                ffi::opus_multistream_decode(
                    st.cast(),
                    packet.as_ptr(),
                    len,
                    pcm,
                    MAX_PACKET_SAMPLES as c_int,
                    0,
                )
            } else {
                ffi::opus_decode(
                    st.cast(),
                    packet.as_ptr(),
                    len,
                    pcm,
                    MAX_PACKET_SAMPLES as c_int,
                    0,
                )
            }
        };
        if n < 0 {
            return Err(lib_error(n));
        }
        // SAFETY: libopus wrote `n` frames of `ch` samples (n <= MAX_PACKET_SAMPLES, the
        // room reserved) at the end of `out`.
        unsafe { out.set_len(start + n as usize * ch) };
        if let Some(perm) = self.reorder {
            vorbis_to_wav(perm, &mut out[start..]);
        }
        Ok(n as usize)
    }

    /// The state in portable form: pointers replaced by table numbers (see csrc/opus_state.c).
    pub fn export_state(&self) -> Result<Vec<u8>, OpusError> {
        let mut out = vec![0u8; self.size];
        let (st, size) = (self.state.as_ptr(), self.size as c_int);
        // SAFETY: state is an initialised decoder of self.size bytes, of the kind
        // `multistream` says; out has self.size bytes.
        let rc = unsafe {
            if self.multistream() {
                zw_opus_ms_state_export(st.cast(), size, out.as_mut_ptr())
            } else {
                zw_opus_state_export(st.cast(), size, out.as_mut_ptr())
            }
        };
        match rc {
            0 => Ok(out),
            _ => Err(OpusError::State("unexpected pointer in decoder state")),
        }
    }

    /// Replaces the state with a portable image from `export_state` (of any process).
    pub fn import_state(&mut self, image: &[u8]) -> Result<(), OpusError> {
        if image.len() != self.size {
            return Err(OpusError::State("state size differs"));
        }
        let mut scratch = vec![0u8; self.size];
        let (st, size) = (self.state.as_mut_ptr(), self.size as c_int);
        // SAFETY: self is an initialised decoder of `size` bytes, of the kind
        // `multistream` says; image and scratch have `size` bytes. The shim validates
        // layout words and table numbers before copying.
        let rc = unsafe {
            if self.multistream() {
                zw_opus_ms_state_import(st.cast(), size, image.as_ptr(), scratch.as_mut_ptr())
            } else {
                zw_opus_state_import(st.cast(), size, image.as_ptr(), scratch.as_mut_ptr())
            }
        };
        match rc {
            0 => Ok(()),
            -1 => Err(OpusError::State("layout words differ")),
            -3 => Err(OpusError::State("state size differs")),
            _ => Err(OpusError::State("unknown table number")),
        }
    }
}

/// (offset, length) pairs the shim reports per single decoder: CELT's decode_mem and
/// two SILK buffers per SILK channel (`ZW_HISTORY_PAIRS` in csrc/opus_state.c).
const HISTORY_PAIRS: usize = 5;

impl Decoder {
    /// Byte ranges of the state image that hold signal history (see
    /// `seed_image`).
    fn history_ranges(&self) -> Result<Vec<std::ops::Range<usize>>, OpusError> {
        let streams = if self.multistream() {
            usize::from(self.mapping.streams())
        } else {
            1
        };
        let mut pairs = vec![0 as c_int; 2 * HISTORY_PAIRS * streams];
        let (st, size) = (self.state.as_ptr(), self.size as c_int);
        // SAFETY: state is an initialised decoder of self.size bytes, of the kind
        // `multistream` says (the shim reads its layout words and, for a multistream
        // decoder, asks libopus where each sub-decoder is); `pairs` has room for
        // HISTORY_PAIRS pairs per stream.
        let n = unsafe {
            if self.multistream() {
                zw_opus_ms_state_history(st.cast(), size, pairs.as_mut_ptr())
            } else {
                zw_opus_state_history(st.cast(), size, pairs.as_mut_ptr())
            }
        };
        let n = usize::try_from(n)
            .map_err(|_| OpusError::State("unexpected decoder layout"))?
            .min(HISTORY_PAIRS * streams);
        pairs[..2 * n]
            .chunks_exact(2)
            .map(|p| {
                let (at, len) = (p[0] as usize, p[1] as usize);
                (at + len <= self.size)
                    .then_some(at..at + len)
                    .ok_or(OpusError::State("history range outside the state"))
            })
            .collect()
    }

    /// The portable state with its signal history zeroed: the *seed* of a seeded
    /// checkpoint. Decoding a few packets from it overwrites the history again, so the
    /// state reached differs from the true one in few bits (docs/FORMAT.md).
    pub fn seed_image(&self) -> Result<Vec<u8>, OpusError> {
        let mut img = self.export_state()?;
        for r in self.history_ranges()? {
            img[r].fill(0);
        }
        Ok(img)
    }
}

impl Clone for Decoder {
    /// A same-process copy: valid because every pointer in the state points to static
    /// tables of this very process, and a multistream decoder finds its sub-decoders
    /// by offset, not by stored pointers.
    fn clone(&self) -> Self {
        Decoder {
            state: self.state.clone(),
            size: self.size,
            mapping: self.mapping.clone(),
            reorder: self.reorder,
        }
    }
}
