//! libopus encoders: a single-stream encoder for 1–2 channels (mapping family 0) and a
//! multistream encoder for 3–8 (family 1, Vorbis order) with the streams and coupling
//! libopus's surround encoder chooses, but without its surround treatment: the surround
//! encoder codes channel 4 of 6–8 as LFE and keeps only its lowest 400 Hz, which would
//! destroy one microphone of an array.

use std::os::raw::c_int;

use audiopus_sys as ffi;

use super::channel_order::{vorbis_of_wav, wav_to_vorbis};
use super::libopus::{OpusError, lib_error};
use crate::archive::opus_head::{ChannelMapping, MAX_FAMILY1_CHANNELS};

/// Bytes one stream's packet can take (RFC 6716 allows 1275 per frame; libopus's own
/// recommendation for a buffer is 4000).
const MAX_STREAM_PACKET: usize = 4000;

enum State {
    Single(*mut ffi::OpusEncoder),
    Multi(*mut ffi::OpusMSEncoder),
}

/// An Opus encoder (libopus's own allocation) taking interleaved f32 in WAV order.
pub struct Encoder {
    st: State,
    mapping: ChannelMapping,
    /// Family 1 streams hold Vorbis order: where each WAV channel goes.
    reorder: Option<&'static [usize]>,
}

// SAFETY: the encoder is only used through &mut self; libopus keeps no thread affinity.
unsafe impl Send for Encoder {}

impl Encoder {
    /// `bitrate` is the total for all channels, in bits per second.
    pub fn new(rate: u32, channels: u16, bitrate: u32) -> Result<Self, OpusError> {
        let mut err: c_int = 0;
        let rate = rate as i32;
        let mut enc = if channels <= 2 {
            // SAFETY: valid arguments are checked by libopus, which reports through err.
            let st = unsafe {
                ffi::opus_encoder_create(
                    rate,
                    c_int::from(channels),
                    ffi::OPUS_APPLICATION_AUDIO,
                    &mut err,
                )
            };
            if st.is_null() || err != 0 {
                return Err(lib_error(err));
            }
            let mapping = ChannelMapping::family0(channels as u8)
                .map_err(|e| OpusError::Lib(e.to_string()))?;
            Encoder {
                st: State::Single(st),
                mapping,
                reorder: None,
            }
        } else {
            if channels > u16::from(MAX_FAMILY1_CHANNELS) {
                return Err(OpusError::Lib(format!(
                    "{channels} channels: Ogg Opus surround (mapping family 1) takes at most {MAX_FAMILY1_CHANNELS}"
                )));
            }
            let (mut streams, mut coupled) = (0, 0);
            let mut table = [0u8; 255];
            // SAFETY: table has room for `channels` entries (libopus writes that many);
            // invalid arguments are reported through err.
            let st = unsafe {
                ffi::opus_multistream_surround_encoder_create(
                    rate,
                    c_int::from(channels),
                    1,
                    &mut streams,
                    &mut coupled,
                    table.as_mut_ptr(),
                    ffi::OPUS_APPLICATION_AUDIO,
                    &mut err,
                )
            };
            if st.is_null() || err != 0 {
                return Err(lib_error(err));
            }
            // Only the layout was wanted: encode with a plain multistream encoder of that
            // layout, which treats every channel as full band.
            // SAFETY: st came from the create call above and is not used again.
            unsafe { ffi::opus_multistream_encoder_destroy(st) };
            // SAFETY: table holds `channels` valid entries for `streams`/`coupled`, as
            // libopus itself produced them; errors are reported through err.
            let st = unsafe {
                ffi::opus_multistream_encoder_create(
                    rate,
                    c_int::from(channels),
                    streams,
                    coupled,
                    table.as_ptr(),
                    ffi::OPUS_APPLICATION_AUDIO,
                    &mut err,
                )
            };
            if st.is_null() || err != 0 {
                return Err(lib_error(err));
            }
            let mapping = ChannelMapping::family1(
                streams as u8,
                coupled as u8,
                table[..usize::from(channels)].to_vec(),
            );
            match mapping {
                Ok(mapping) => Encoder {
                    st: State::Multi(st),
                    mapping,
                    reorder: vorbis_of_wav(usize::from(channels)),
                },
                Err(e) => {
                    // SAFETY: st came from the create call above and is not used again.
                    unsafe { ffi::opus_multistream_encoder_destroy(st) };
                    return Err(OpusError::Lib(format!("libopus surround layout: {e}")));
                }
            }
        };
        enc.ctl_set(ffi::OPUS_SET_BITRATE_REQUEST, bitrate as i32)?;
        Ok(enc)
    }

    fn ctl_set(&mut self, request: c_int, value: i32) -> Result<(), OpusError> {
        // SAFETY: the encoder is live; SET requests take one opus_int32 argument.
        let rc = unsafe {
            match self.st {
                State::Single(st) => ffi::opus_encoder_ctl(st, request, value),
                State::Multi(st) => ffi::opus_multistream_encoder_ctl(st, request, value),
            }
        };
        if rc != 0 {
            return Err(lib_error(rc));
        }
        Ok(())
    }

    /// The channel mapping the OpusHead must declare for these packets.
    pub fn mapping(&self) -> &ChannelMapping {
        &self.mapping
    }

    /// The encoder's algorithmic delay in samples at its own rate (Ogg Opus pre-skip).
    pub fn lookahead(&self) -> Result<u32, OpusError> {
        let mut v: i32 = 0;
        let p = &mut v as *mut i32;
        // SAFETY: the encoder is live; the request writes one opus_int32 through p.
        let rc = unsafe {
            match self.st {
                State::Single(st) => ffi::opus_encoder_ctl(st, ffi::OPUS_GET_LOOKAHEAD_REQUEST, p),
                State::Multi(st) => {
                    ffi::opus_multistream_encoder_ctl(st, ffi::OPUS_GET_LOOKAHEAD_REQUEST, p)
                }
            }
        };
        if rc != 0 {
            return Err(lib_error(rc));
        }
        Ok(v as u32)
    }

    /// Encodes one frame of interleaved samples in WAV order (`pcm.len() / channels`
    /// frames).
    pub fn encode(&mut self, pcm: &[f32]) -> Result<Vec<u8>, OpusError> {
        let frames = pcm.len() / usize::from(self.mapping.channels());
        let mut out = vec![0u8; MAX_STREAM_PACKET * usize::from(self.mapping.streams())];
        let cap = out.len() as i32;
        // SAFETY: pcm holds `frames` interleaved frames; out has `cap` bytes, the size passed.
        let n = unsafe {
            match self.st {
                State::Single(st) => {
                    ffi::opus_encode_float(st, pcm.as_ptr(), frames as c_int, out.as_mut_ptr(), cap)
                }
                State::Multi(st) => {
                    let mut vorbis = pcm.to_vec();
                    if let Some(perm) = self.reorder {
                        wav_to_vorbis(perm, &mut vorbis);
                    }
                    ffi::opus_multistream_encode_float(
                        st,
                        vorbis.as_ptr(),
                        frames as c_int,
                        out.as_mut_ptr(),
                        cap,
                    )
                }
            }
        };
        if n < 0 {
            return Err(lib_error(n));
        }
        out.truncate(n as usize);
        Ok(out)
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: the pointer came from its create function and is destroyed once.
        unsafe {
            match self.st {
                State::Single(st) => ffi::opus_encoder_destroy(st),
                State::Multi(st) => ffi::opus_multistream_encoder_destroy(st),
            }
        }
    }
}
