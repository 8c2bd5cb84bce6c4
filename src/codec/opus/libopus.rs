//! The FFI boundary: the C shim of `csrc/opus_state.c`, libopus errors, and queries
//! about the linked build. The decoder and encoder wrappers are in `decoder.rs` and
//! `encoder.rs`.

use std::ffi::CStr;
use std::os::raw::{c_int, c_uchar};

use audiopus_sys as ffi;

unsafe extern "C" {
    pub(super) fn zw_opus_state_export(
        st: *const ffi::OpusDecoder,
        size: c_int,
        out: *mut c_uchar,
    ) -> c_int;
    pub(super) fn zw_opus_state_import(
        st: *mut ffi::OpusDecoder,
        size: c_int,
        input: *const c_uchar,
        scratch: *mut c_uchar,
    ) -> c_int;
    pub(super) fn zw_opus_ms_state_export(
        st: *const ffi::OpusMSDecoder,
        size: c_int,
        out: *mut c_uchar,
    ) -> c_int;
    pub(super) fn zw_opus_ms_state_import(
        st: *mut ffi::OpusMSDecoder,
        size: c_int,
        input: *const c_uchar,
        scratch: *mut c_uchar,
    ) -> c_int;
    pub(super) fn zw_opus_state_history(
        image: *const c_uchar,
        size: c_int,
        pairs: *mut c_int,
    ) -> c_int;
    pub(super) fn zw_opus_ms_state_history(
        st: *const ffi::OpusMSDecoder,
        size: c_int,
        pairs: *mut c_int,
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

pub(super) fn lib_error(code: c_int) -> OpusError {
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
