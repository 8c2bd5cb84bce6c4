//! Safe wrappers around the parts of libopus zarr-wavfs uses: a decoder whose state can be
//! snapshotted (in memory, or in the portable form of `csrc/opus_state.c`), an encoder,
//! and packet inspection.

use std::ffi::CStr;
use std::os::raw::{c_int, c_uchar};

use audiopus_sys as ffi;

/// Largest Opus packet duration (120 ms) at 48 kHz, per channel.
pub const MAX_PACKET_SAMPLES: usize = 5760;

unsafe extern "C" {
    fn zw_opus_state_export(st: *const ffi::OpusDecoder, size: c_int, out: *mut c_uchar) -> c_int;
    fn zw_opus_state_import(
        st: *mut ffi::OpusDecoder,
        size: c_int,
        input: *const c_uchar,
        scratch: *mut c_uchar,
    ) -> c_int;
    fn zw_opus_arch() -> c_int;
    fn zw_opus_silk_state_size() -> c_int;
    fn zw_opus_layout_ok() -> c_int;
}

/// A libopus failure, with libopus's own message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpusError {
    #[error("libopus: {0}")]
    Lib(String),
    #[error("decoder state snapshot does not fit this libopus build ({0})")]
    State(&'static str),
}

fn lib_error(code: c_int) -> OpusError {
    // SAFETY: opus_strerror returns a pointer to a static NUL-terminated string for any code.
    let msg = unsafe { CStr::from_ptr(ffi::opus_strerror(code)) };
    OpusError::Lib(msg.to_string_lossy().into_owned())
}

/// libopus's version string and the source package it was built from.
pub fn version() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(ffi::opus_get_version_string()) };
    format!("{} ({})", v.to_string_lossy(), env!("ZW_OPUS_SOURCE"))
}

/// Run-time CPU dispatch level libopus selected on this machine (stored inside states).
pub fn arch() -> i32 {
    // SAFETY: pure query without arguments.
    unsafe { zw_opus_arch() }
}

/// `sizeof(silk_decoder_state)` as the shim was compiled; part of the fingerprint.
pub fn silk_state_size() -> i32 {
    // SAFETY: pure query without arguments.
    unsafe { zw_opus_silk_state_size() }
}

/// Whether the internal headers the shim was compiled with match the linked library.
pub fn layout_ok() -> bool {
    // SAFETY: pure query without arguments.
    unsafe { zw_opus_layout_ok() == 1 }
}

/// Size in bytes of a decoder state for `channels` (1 or 2).
pub fn state_size(channels: u16) -> usize {
    // SAFETY: pure query; returns 0 for invalid channel counts.
    unsafe { ffi::opus_decoder_get_size(c_int::from(channels)) as usize }
}

/// An Opus decoder whose whole state lives in one buffer owned here, so it can be copied.
pub struct Decoder {
    /// u64 words keep the state 8-byte aligned, as libopus's own allocation would be.
    state: Vec<u64>,
    size: usize,
    channels: u16,
    rate: u32,
}

// SAFETY: the state is plain memory owned by this value; libopus keeps no thread-local
// references to it, and `&mut self` is required for every call that mutates it.
unsafe impl Send for Decoder {}
// SAFETY: a shared `&Decoder` only allows reading the state buffer (export, clone).
unsafe impl Sync for Decoder {}

impl Decoder {
    pub fn new(rate: u32, channels: u16) -> Result<Self, OpusError> {
        let size = state_size(channels);
        if size == 0 {
            return Err(OpusError::Lib(format!(
                "unsupported channel count {channels}"
            )));
        }
        let mut d = Decoder {
            state: vec![0; size.div_ceil(8)],
            size,
            channels,
            rate,
        };
        // SAFETY: the buffer is at least opus_decoder_get_size(channels) bytes and aligned.
        let rc = unsafe { ffi::opus_decoder_init(d.ptr(), rate as i32, c_int::from(channels)) };
        if rc != 0 {
            return Err(lib_error(rc));
        }
        Ok(d)
    }

    fn ptr(&mut self) -> *mut ffi::OpusDecoder {
        self.state.as_mut_ptr().cast()
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Decodes one packet, appending interleaved samples to `out`; returns frames decoded.
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<i16>) -> Result<usize, OpusError> {
        let ch = usize::from(self.channels);
        let start = out.len();
        out.resize(start + MAX_PACKET_SAMPLES * ch, 0);
        let len =
            c_int::try_from(packet.len()).map_err(|_| OpusError::Lib("packet too large".into()))?;
        // SAFETY: state is initialised; packet has len bytes; out has room for
        // MAX_PACKET_SAMPLES frames of `ch` channels, the frame_size passed.
        let n = unsafe {
            ffi::opus_decode(
                self.ptr(),
                packet.as_ptr(),
                len,
                out[start..].as_mut_ptr(),
                MAX_PACKET_SAMPLES as c_int,
                0,
            )
        };
        if n < 0 {
            out.truncate(start);
            return Err(lib_error(n));
        }
        out.truncate(start + n as usize * ch);
        Ok(n as usize)
    }

    /// The state in portable form: pointers replaced by table numbers (see csrc/opus_state.c).
    pub fn export_state(&self) -> Result<Vec<u8>, OpusError> {
        let mut out = vec![0u8; self.size];
        // SAFETY: state is an initialised decoder of self.size bytes; out has self.size bytes.
        let rc = unsafe {
            zw_opus_state_export(
                self.state.as_ptr().cast(),
                self.size as c_int,
                out.as_mut_ptr(),
            )
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
        let size = self.size as c_int;
        // SAFETY: self is an initialised decoder of `size` bytes; image and scratch have
        // `size` bytes. The shim validates layout words and table numbers before copying.
        let rc =
            unsafe { zw_opus_state_import(self.ptr(), size, image.as_ptr(), scratch.as_mut_ptr()) };
        match rc {
            0 => Ok(()),
            -1 => Err(OpusError::State("layout words differ")),
            _ => Err(OpusError::State("unknown table number")),
        }
    }
}

impl Clone for Decoder {
    /// A same-process copy: valid because every pointer in the state points to static
    /// tables of this very process.
    fn clone(&self) -> Self {
        Decoder {
            state: self.state.clone(),
            size: self.size,
            channels: self.channels,
            rate: self.rate,
        }
    }
}

/// An Opus encoder (libopus's own allocation).
pub struct Encoder {
    st: *mut ffi::OpusEncoder,
    channels: u16,
}

// SAFETY: the encoder is only used through &mut self; libopus keeps no thread affinity.
unsafe impl Send for Encoder {}

impl Encoder {
    pub fn new(rate: u32, channels: u16, bitrate: u32) -> Result<Self, OpusError> {
        let mut err: c_int = 0;
        // SAFETY: valid arguments are checked by libopus, which reports through err.
        let st = unsafe {
            ffi::opus_encoder_create(
                rate as i32,
                c_int::from(channels),
                ffi::OPUS_APPLICATION_AUDIO,
                &mut err,
            )
        };
        if st.is_null() || err != 0 {
            return Err(lib_error(err));
        }
        let enc = Encoder { st, channels };
        // SAFETY: st is a live encoder; the request takes one opus_int32 argument.
        let rc =
            unsafe { ffi::opus_encoder_ctl(enc.st, ffi::OPUS_SET_BITRATE_REQUEST, bitrate as i32) };
        if rc != 0 {
            return Err(lib_error(rc));
        }
        Ok(enc)
    }

    /// The encoder's algorithmic delay in samples at its own rate (Ogg Opus pre-skip).
    pub fn lookahead(&self) -> Result<u32, OpusError> {
        let mut v: i32 = 0;
        // SAFETY: st is live; the request writes one opus_int32 through the pointer.
        let rc = unsafe {
            ffi::opus_encoder_ctl(self.st, ffi::OPUS_GET_LOOKAHEAD_REQUEST, &mut v as *mut i32)
        };
        if rc != 0 {
            return Err(lib_error(rc));
        }
        Ok(v as u32)
    }

    /// Encodes one frame of interleaved samples (`pcm.len() / channels` frames).
    pub fn encode(&mut self, pcm: &[f32]) -> Result<Vec<u8>, OpusError> {
        let frames = pcm.len() / usize::from(self.channels);
        let mut out = vec![0u8; 4000];
        // SAFETY: pcm holds `frames` interleaved frames; out has 4000 bytes, the size passed.
        let n = unsafe {
            ffi::opus_encode_float(
                self.st,
                pcm.as_ptr(),
                frames as c_int,
                out.as_mut_ptr(),
                out.len() as i32,
            )
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
        // SAFETY: st came from opus_encoder_create and is destroyed once.
        unsafe { ffi::opus_encoder_destroy(self.st) }
    }
}
