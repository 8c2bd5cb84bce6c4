//! Channel order: recordings keep the WAV order of their input; Ogg Opus mapping family 1
//! stores channels in Vorbis order (RFC 7845 §5.1.1.2).
//!
//! The encoder permutes WAV order into Vorbis order and the decoder permutes back, so
//! the stored stream is a correctly labelled surround file for every other player
//! (opusdec writes it back in WAV order too) and the served WAV has the input's order.
//! The tables are opus-tools' (opusenc/opusdec), which assume the default
//! WAVE_FORMAT_EXTENSIBLE speaker layout for each channel count.

/// For each WAV channel position, the Vorbis position holding it, by channel count.
const VORBIS_OF_WAV: [&[usize]; 8] = [
    &[0],
    &[0, 1],
    &[0, 2, 1],
    &[0, 1, 2, 3],
    &[0, 2, 1, 3, 4],
    &[0, 2, 1, 5, 3, 4],
    &[0, 2, 1, 6, 5, 3, 4],
    &[0, 2, 1, 7, 5, 6, 3, 4],
];

/// The permutation for `channels` channels of family 1, or `None` when the orders agree
/// (1, 2 and 4 channels) or family 1 does not define the channel count.
pub fn vorbis_of_wav(channels: usize) -> Option<&'static [usize]> {
    let p = *VORBIS_OF_WAV.get(channels.checked_sub(1)?)?;
    p.iter().enumerate().any(|(k, &v)| k != v).then_some(p)
}

/// Rewrites interleaved frames from Vorbis order to WAV order in place.
pub fn vorbis_to_wav<T: Copy + Default>(perm: &[usize], samples: &mut [T]) {
    let mut frame = [T::default(); 8];
    for f in samples.chunks_exact_mut(perm.len()) {
        frame[..f.len()].copy_from_slice(f);
        for (k, &v) in perm.iter().enumerate() {
            f[k] = frame[v];
        }
    }
}

/// Rewrites interleaved frames from WAV order to Vorbis order in place.
pub fn wav_to_vorbis<T: Copy + Default>(perm: &[usize], samples: &mut [T]) {
    let mut frame = [T::default(); 8];
    for f in samples.chunks_exact_mut(perm.len()) {
        frame[..f.len()].copy_from_slice(f);
        for (k, &v) in perm.iter().enumerate() {
            f[v] = frame[k];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_permutations_and_the_two_directions_invert() {
        for ch in 1..=8 {
            let perm = VORBIS_OF_WAV[ch - 1];
            let mut sorted = perm.to_vec();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..ch).collect::<Vec<_>>());
            let Some(p) = vorbis_of_wav(ch) else {
                assert!([1, 2, 4].contains(&ch));
                continue;
            };
            let wav: Vec<u16> = (0..ch as u16 * 3).collect();
            let mut v = wav.clone();
            wav_to_vorbis(p, &mut v);
            assert_ne!(v, wav);
            vorbis_to_wav(p, &mut v);
            assert_eq!(v, wav);
        }
        assert_eq!(vorbis_of_wav(9), None);
        assert_eq!(vorbis_of_wav(0), None);
    }

    #[test]
    fn five_one_puts_the_lfe_last_in_vorbis_order() {
        // WAV 5.1: FL FR FC LFE BL BR; Vorbis 5.1: FL FC FR RL RR LFE
        let mut s = ["FL", "FR", "FC", "LFE", "BL", "BR"];
        wav_to_vorbis(vorbis_of_wav(6).unwrap(), &mut s);
        assert_eq!(s, ["FL", "FC", "FR", "BL", "BR", "LFE"]);
    }
}
