//! How archive node names are shown as file names in the mount.
//!
//! The rule (also in README.md, "Names in the mount"), applied to each node name:
//! 1. `%`, `/`, NUL and the other ASCII control characters become `%XX` (upper-case hex);
//! 2. a name that is then `.` or `..` has its dots written as `%2E`;
//! 3. a recording gets `.wav` appended; a folder whose name ends in `.wav` has that dot
//!    written as `%2E`, so no folder can take a recording's name.
//!
//!
//! In the time-expanded view (`--time-expansion N`) an expanded recording is shown as
//! `NAME.TE<N>.wav` (`20250601_040000.TE10.wav`), and in the other recordings' names a
//! dot before a final `TE` and digits is written as `%2E`, so that no recording shown
//! unexpanded can take an expanded one's name.
//!
//! Percent-decoding after removing a recording's `.wav` gives the archive name back, so
//! two different nodes never get the same shown name, and no shown name contains `/` or
//! is `.` or `..`: nothing can point outside the mount.

/// The file or directory name shown for an archive node called `name`.
pub fn shown_name(name: &str, is_recording: bool) -> String {
    let mut s = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c == '%' || c == '/' || c.is_ascii_control() {
            s.push_str(&format!("%{:02X}", c as u32));
        } else {
            s.push(c);
        }
    }
    if s == "." || s == ".." {
        s = s.replace('.', "%2E");
    }
    if is_recording {
        s.push_str(".wav");
    } else if let Some(stem) = s.strip_suffix(".wav") {
        s = format!("{stem}%2Ewav");
    }
    s
}

/// The file name shown for a recording called `name`: [`shown_name`] when no time
/// expansion is asked for (`view` false), else as the module documentation says, with
/// `factor` the recording's own expansion if it gets one.
pub fn shown_recording_name(name: &str, view: bool, factor: Option<u32>) -> String {
    let plain = shown_name(name, true);
    if !view {
        return plain;
    }
    let stem = plain.strip_suffix(".wav").unwrap_or(&plain);
    match factor {
        Some(f) => format!("{stem}.TE{f}.wav"),
        None => match stem.rsplit_once(".TE") {
            Some((head, digits))
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) =>
            {
                format!("{head}%2ETE{digits}.wav")
            }
            _ => plain,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_expanded_names_cannot_collide() {
        assert_eq!(shown_recording_name("bat", false, None), "bat.wav");
        assert_eq!(shown_recording_name("bat", true, Some(10)), "bat.TE10.wav");
        assert_eq!(
            shown_recording_name("bat.TE10", true, None),
            "bat%2ETE10.wav"
        );
        assert_eq!(shown_recording_name("bat.TE", true, None), "bat.TE.wav");
        assert_eq!(shown_recording_name("bird", true, None), "bird.wav");
    }

    #[test]
    fn plain_names_stay_readable() {
        assert_eq!(shown_name("20250601_040000", true), "20250601_040000.wav");
        assert_eq!(shown_name("site 3", false), "site 3");
        assert_eq!(shown_name("été", true), "été.wav");
    }

    #[test]
    fn unsafe_characters_are_escaped() {
        assert_eq!(shown_name("a/b", true), "a%2Fb.wav");
        assert_eq!(shown_name("a\0b", false), "a%00b");
        assert_eq!(shown_name("100%", true), "100%25.wav");
        assert_eq!(shown_name("tab\there", false), "tab%09here");
        assert_eq!(shown_name(".", false), "%2E");
        assert_eq!(shown_name("..", true), "%2E%2E.wav");
    }

    #[test]
    fn folders_never_take_a_recordings_name() {
        assert_eq!(shown_name("x", true), "x.wav");
        assert_eq!(shown_name("x.wav", false), "x%2Ewav");
        assert_ne!(shown_name("x.wav", false), shown_name("x", true));
    }

    proptest::proptest! {
        #[test]
        fn distinct_nodes_get_distinct_safe_names(
            a in "[a-z./%\\x00\\x01]{1,6}", b in "[a-z./%\\x00\\x01]{1,6}",
            ra: bool, rb: bool,
        ) {
            let (sa, sb) = (shown_name(&a, ra), shown_name(&b, rb));
            proptest::prop_assert!(!sa.contains('/') && !sa.contains('\0'));
            proptest::prop_assert!(sa != "." && sa != "..");
            if (a.as_str(), ra) != (b.as_str(), rb) {
                proptest::prop_assert_ne!(sa, sb);
            }
        }
    }
}
