//! A `LIST`/`INFO` chunk made from Vorbis comments (FLAC inputs), with the mapping ffmpeg
//! uses between the two (libavformat's `ff_riff_info_conv`).

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunks::fields::fields;

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
        let d = from_vorbis_comments([("DESCRIPTION", "d")]).unwrap();
        assert_eq!(fields(&d), vec![("ICMT".into(), "d".into())]);
    }
}
