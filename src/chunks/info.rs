//! A `LIST`/`INFO` chunk made from an input's tags: Vorbis comments (FLAC, Ogg Vorbis), with
//! the mapping ffmpeg uses between the two (libavformat's `ff_riff_info_conv`), and ID3v2
//! frames (MP3) and MP4 atoms by their Vorbis counterparts.

use super::{Chunk, ChunkId};

/// Vorbis comment field → INFO id, in the order the entries are written.
const MAPPING: [(&str, &[u8; 4]); 11] = [
    ("TITLE", b"INAM"),
    ("ARTIST", b"IART"),
    ("ALBUM", b"IPRD"),
    ("TRACKNUMBER", b"IPRT"),
    ("DATE", b"ICRD"),
    ("GENRE", b"IGNR"),
    ("COMMENT", b"ICMT"),
    ("COPYRIGHT", b"ICOP"),
    ("LANGUAGE", b"ILNG"),
    ("ENCODER", b"ISFT"),
    ("ENCODED_BY", b"ITCH"),
];

/// The entries (id, text bytes) of the body of a `LIST` chunk of type `INFO`; none
/// for another list type. An entry running past the end is cut there.
pub fn entries(list: &[u8]) -> impl Iterator<Item = (&[u8; 4], &[u8])> {
    let mut at = if list.starts_with(b"INFO") {
        4
    } else {
        list.len()
    };
    std::iter::from_fn(move || {
        let id: &[u8; 4] = list.get(at..)?.first_chunk()?;
        let size = crate::le::u32_at(list, at + 4)? as usize;
        let body = at + 8;
        let end = body.saturating_add(size).min(list.len());
        let entry = (id, &list[body..end]);
        at = end.saturating_add(size & 1);
        Some(entry)
    })
}

/// The `LIST`/`INFO` chunk of the mapped comments (field names case-insensitive; the
/// first value of a field; `DESCRIPTION` stands in for a missing `COMMENT`), or None when
/// no comment maps. Each entry's text is NUL-terminated, as RIFF INFO strings are.
pub fn from_vorbis_comments<'a>(
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<Chunk> {
    let tags: Vec<(String, &str)> = tags
        .into_iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), v))
        .collect();
    let first = |name: &str| tags.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    let mut body = b"INFO".to_vec();
    for (field, id) in MAPPING {
        let value =
            first(field).or_else(|| (field == "COMMENT").then(|| first("DESCRIPTION")).flatten());
        if let Some(v) = value {
            let mut text = v.as_bytes().to_vec();
            text.push(0);
            Chunk::new(ChunkId(*id), text).push(&mut body);
        }
    }
    (body.len() > 4).then(|| Chunk::new(ChunkId::LIST, body))
}

/// ID3v2 frame ids and MP4 atoms → the Vorbis comment field they hold.
const ALIASES: [(&str, &str); 20] = [
    ("TIT2", "TITLE"),
    ("TPE1", "ARTIST"),
    ("TALB", "ALBUM"),
    ("TRCK", "TRACKNUMBER"),
    ("TDRC", "DATE"),
    ("TYER", "DATE"),
    ("TCON", "GENRE"),
    ("COMM", "COMMENT"),
    ("TCOP", "COPYRIGHT"),
    ("TLAN", "LANGUAGE"),
    ("TSSE", "ENCODER"),
    ("TENC", "ENCODED_BY"),
    ("\u{a9}nam", "TITLE"),
    ("\u{a9}ART", "ARTIST"),
    ("\u{a9}alb", "ALBUM"),
    ("\u{a9}day", "DATE"),
    ("\u{a9}gen", "GENRE"),
    ("\u{a9}cmt", "COMMENT"),
    ("cprt", "COPYRIGHT"),
    ("\u{a9}too", "ENCODER"),
];

/// [`from_vorbis_comments`] for tags of any container: ID3v2 and MP4 keys are read as the
/// Vorbis fields they stand for (an ID3v2 `COMM` key may carry a language or description
/// after it, e.g. `COMM:eng`), other keys as they are.
pub fn from_tags<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Chunk> {
    from_vorbis_comments(tags.into_iter().map(|(k, v)| {
        let frame = k.split([':', '(']).next().unwrap_or(k);
        let key = ALIASES
            .iter()
            .find(|(alias, _)| *alias == frame || *alias == k)
            .map_or(k, |(_, vorbis)| *vorbis);
        (key, v)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunks::fields::fields;

    #[test]
    fn entries_follow_padding_and_stop_at_the_end() {
        // "IART" of 3 bytes (a pad byte follows), then "ICMT" claiming more than is left.
        let list = b"INFOIART\x03\0\0\0abc\0ICMT\x09\0\0\0hi";
        let got: Vec<(&[u8; 4], &[u8])> = entries(list).collect();
        assert_eq!(got, [(b"IART", &b"abc"[..]), (b"ICMT", &b"hi"[..])]);
        assert_eq!(
            entries(b"adtllabl\x04\0\0\0\x01\0\0\0").count(),
            0,
            "not INFO"
        );
        assert_eq!(entries(b"INFOIAR").count(), 0, "a cut header");
    }

    #[test]
    fn mapped_fields_in_order() {
        let c = from_vorbis_comments([
            ("comment", "dawn chorus, site 3"),
            ("title", "dawn"),
            ("ARTIST", "lab"),
            ("TITLE", "second title"),
            ("X-UNMAPPED", "x"),
        ])
        .unwrap();
        assert_eq!(
            fields(&c),
            vec![
                ("INAM".into(), "dawn".into()),
                ("IART".into(), "lab".into()),
                ("ICMT".into(), "dawn chorus, site 3".into()),
            ]
        );
        assert_eq!(&c.body[4..12], b"INAM\x05\0\0\0");
        assert!(from_vorbis_comments([("X", "y")]).is_none());
        let id3 = from_tags([("TIT2", "dawn"), ("COMM:eng", "x"), ("\u{a9}ART", "lab")]).unwrap();
        assert_eq!(
            fields(&id3),
            vec![
                ("INAM".into(), "dawn".into()),
                ("IART".into(), "lab".into()),
                ("ICMT".into(), "x".into()),
            ]
        );
        let d = from_vorbis_comments([("DESCRIPTION", "d")]).unwrap();
        assert_eq!(fields(&d), vec![("ICMT".into(), "d".into())]);
    }
}
