//! What a media input really is, and how long it plays, before it is uploaded.
//!
//! The API decides by extension, so a JPEG renamed `x.mov` would be accepted,
//! uploaded, charged for and only then fail. `check` reads the first bytes and
//! refuses such a file up front; `duration` reads the container's own length so
//! clip tools default `end_seconds` to the whole clip instead of a guess.
//!
//! Pure std: files are read with positioned reads of a few bytes at a time, never
//! whole, because inputs can be multi-GB videos.

mod duration;

pub use duration::duration;

use crate::api::catalog::Media;
use std::fmt;
use std::io::Read;
use std::path::Path;

/// How much of a file `check` reads: every signature fits, and so does a modest
/// ID3v2 tag in front of an MP3/AAC/FLAC stream (a bigger tag is assumed MP3).
pub const HEAD_LEN: usize = 4096;

// Format names reported in `Sniffed::format`.
pub const PNG: &str = "png";
pub const JPEG: &str = "jpeg";
pub const GIF: &str = "gif";
pub const WEBP: &str = "webp";
pub const HEIF: &str = "heic/avif";
pub const BMP: &str = "bmp";
pub const TIFF: &str = "tiff";
pub const JP2: &str = "jp2";
pub const MP4: &str = "mp4/mov (ISO BMFF)";
pub const QUICKTIME: &str = "mov (QuickTime)";
pub const M4A: &str = "m4a";
pub const WEBM: &str = "webm/mkv";
pub const AVI: &str = "avi";
pub const MP3: &str = "mp3";
pub const WAV: &str = "wav";
pub const FLAC: &str = "flac";
pub const OGG: &str = "ogg";
pub const AAC: &str = "aac (ADTS)";
pub const ADIF: &str = "aac (ADIF)";
pub const AIFF: &str = "aiff";
pub const AMR: &str = "amr";

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    pub media: Media,
    pub format: &'static str,
}

impl Sniffed {
    const fn new(media: Media, format: &'static str) -> Self {
        Sniffed { media, format }
    }

    /// Whether this file can be given where `expected` is asked for. Some formats
    /// are more than one kind: GIFs are also (face-swap) videos, and Matroska/WebM
    /// or a generically branded MP4 may carry only audio, which the head can't tell.
    pub fn fits(&self, expected: Media) -> bool {
        self.media == expected
            || matches!(
                (self.format, expected),
                (GIF, Media::Video) | (WEBM, Media::Audio) | (MP4, Media::Audio)
            )
    }

    /// "a JPEG image", "an MP3 audio file".
    pub fn describe(&self) -> String {
        let label = match self.format {
            PNG => "PNG",
            JPEG => "JPEG",
            GIF => "GIF",
            WEBP => "WebP",
            HEIF => "HEIC/AVIF",
            BMP => "BMP",
            TIFF => "TIFF",
            JP2 => "JPEG 2000",
            MP4 => "MP4/MOV",
            QUICKTIME => "QuickTime",
            M4A => "M4A",
            WEBM => "WebM/Matroska",
            AVI => "AVI",
            MP3 => "MP3",
            WAV => "WAV",
            FLAC => "FLAC",
            OGG => "Ogg",
            AAC | ADIF => "AAC",
            AIFF => "AIFF",
            AMR => "AMR",
            other => other,
        };
        // Acronyms are read letter by letter: "an MP3", "an AVI", but "a FLAC".
        let article = if label.starts_with(['A', 'E', 'I', 'O', 'U', 'M']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {label} {}", noun(self.media))
    }
}

fn noun(media: Media) -> &'static str {
    match media {
        Media::Image => "image",
        Media::Video => "video",
        Media::Audio => "audio file",
    }
}

fn with_article(media: Media) -> String {
    match media {
        Media::Video => format!("a {}", noun(media)),
        _ => format!("an {}", noun(media)),
    }
}

/// Why `check` refused a file. `Display` is the sentence to show the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The bytes are a known format of another kind.
    Wrong {
        name: String,
        expected: Media,
        found: Sniffed,
    },
    /// The bytes match no format the API takes (including an empty file).
    Unknown { name: String, expected: Media },
    /// The file could not be opened or read.
    Unreadable { name: String, error: String },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Wrong {
                name,
                expected,
                found,
            } => write!(
                f,
                "{name} is {}, not {}",
                found.describe(),
                with_article(*expected)
            ),
            Mismatch::Unknown { name, expected } => {
                let kind = match expected {
                    Media::Audio => "an audio",
                    Media::Video => "a video",
                    Media::Image => "an image",
                };
                write!(f, "{name} is not {kind} file this tool can read")
            }
            Mismatch::Unreadable { name, error } => write!(f, "{name} could not be read: {error}"),
        }
    }
}

impl std::error::Error for Mismatch {}

/// Reads the first `HEAD_LEN` bytes of `path` and checks they are `expected`
/// media. `name` is how the file is called in the message.
pub fn check(path: &Path, expected: Media, name: &str) -> Result<(), Mismatch> {
    let head = read_head(path).map_err(|e| Mismatch::Unreadable {
        name: name.to_string(),
        error: e.to_string(),
    })?;
    match sniff(&head) {
        Some(found) if found.fits(expected) => Ok(()),
        Some(found) => Err(Mismatch::Wrong {
            name: name.to_string(),
            expected,
            found,
        }),
        None => Err(Mismatch::Unknown {
            name: name.to_string(),
            expected,
        }),
    }
}

fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(HEAD_LEN);
    std::fs::File::open(path)?
        .take(HEAD_LEN as u64)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// Identifies a file from its first bytes (`HEAD_LEN` is plenty; less works for
/// most formats). `None` when no format the API takes matches.
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    use Media::*;
    let at = |off: usize, sig: &[u8]| head.get(off..off + sig.len()) == Some(sig);
    let found = |media, format| Some(Sniffed::new(media, format));
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return found(Image, PNG);
    }
    if at(0, b"\xFF\xD8\xFF") {
        return found(Image, JPEG);
    }
    if at(0, b"GIF87a") || at(0, b"GIF89a") {
        return found(Image, GIF);
    }
    if at(0, b"RIFF") || at(0, b"RF64") {
        return match head.get(8..12)? {
            b"WEBP" => found(Image, WEBP),
            b"WAVE" => found(Audio, WAV),
            b"AVI " => found(Video, AVI),
            _ => None,
        };
    }
    if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        return found(Audio, AIFF);
    }
    if at(4, b"ftyp") {
        return Some(iso_brand(head));
    }
    // Old QuickTime files start straight with a movie or media box, no `ftyp`.
    if [b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"]
        .iter()
        .any(|t| at(4, *t))
    {
        return found(Video, QUICKTIME);
    }
    if at(0, b"\0\0\0\x0CjP  \r\n\x87\n") || at(0, b"\xFF\x4F\xFF\x51") {
        return found(Image, JP2);
    }
    if at(0, b"II*\0") || at(0, b"MM\0*") || at(0, b"II+\0") || at(0, b"MM\0+") {
        return found(Image, TIFF);
    }
    if at(0, b"\x1A\x45\xDF\xA3") {
        return found(Video, WEBM);
    }
    if at(0, b"OggS") {
        return found(Audio, OGG);
    }
    if at(0, b"fLaC") {
        return found(Audio, FLAC);
    }
    if at(0, b"#!AMR") {
        return found(Audio, AMR);
    }
    if at(0, b"ADIF") {
        return found(Audio, ADIF);
    }
    // "BM" alone is too weak; also require a known DIB header size.
    if at(0, b"BM") && head.len() >= 18 && [12, 40, 52, 56, 64, 108, 124].contains(&le32(head, 14))
    {
        return found(Image, BMP);
    }
    if let Some(tag) = id3_len(head) {
        // An ID3v2 tag may precede MP3, AAC or even FLAC; look past it if we can.
        let rest = head.get(tag as usize..).unwrap_or(&[]);
        if rest.starts_with(b"fLaC") {
            return found(Audio, FLAC);
        }
        return audio_frame(rest).or(found(Audio, MP3));
    }
    audio_frame(head)
}

/// An MPEG audio or ADTS frame header at the start of `b`.
fn audio_frame(b: &[u8]) -> Option<Sniffed> {
    if is_adts(b) {
        return Some(Sniffed::new(Media::Audio, AAC));
    }
    mpeg_header(b).map(|_| Sniffed::new(Media::Audio, MP3))
}

/// Tells images (HEIF/AVIF), audio (M4A) and video apart by the `ftyp` major brand.
fn iso_brand(head: &[u8]) -> Sniffed {
    const IMAGE: &[&[u8; 4]] = &[
        b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1",
        b"avif", b"avis",
    ];
    const AUDIO: &[&[u8; 4]] = &[b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "];
    let major = head.get(8..12).unwrap_or(&[]);
    if IMAGE.iter().any(|b| &b[..] == major) {
        Sniffed::new(Media::Image, HEIF)
    } else if AUDIO.iter().any(|b| &b[..] == major) {
        Sniffed::new(Media::Audio, M4A)
    } else {
        // isom/mp42/qt/3gp...: assume video; `fits` still lets it stand for audio.
        Sniffed::new(Media::Video, MP4)
    }
}

/// Total length of an ID3v2 tag at the start of `b` (header, body, footer).
fn id3_len(b: &[u8]) -> Option<u64> {
    if !b.starts_with(b"ID3") || b.len() < 10 {
        return None;
    }
    // The size is "syncsafe": 7 bits per byte.
    let size = b[6..10]
        .iter()
        .fold(0u64, |acc, &x| (acc << 7) | u64::from(x & 0x7F));
    let footer = if b[5] & 0x10 != 0 { 10 } else { 0 };
    Some(10 + size + footer)
}

fn is_adts(b: &[u8]) -> bool {
    // 12-bit sync, then layer bits 00 (MPEG audio proper never uses layer 00).
    b.len() >= 7 && b[0] == 0xFF && b[1] & 0xF6 == 0xF0 && (b[2] >> 2) & 0xF < 13
}

/// A parsed MPEG-1/2/2.5 audio frame header.
#[derive(Debug, Clone, Copy)]
struct Mpeg {
    /// 1 for MPEG-1, 2 for MPEG-2 and MPEG-2.5 (they share tables below).
    version: u8,
    layer: u8,
    kbps: u32,
    rate: u32,
    mono: bool,
    padding: bool,
}

impl Mpeg {
    fn samples_per_frame(&self) -> u32 {
        match (self.layer, self.version) {
            (1, _) => 384,
            (3, 2) => 576,
            _ => 1152,
        }
    }

    fn frame_len(&self) -> u32 {
        let pad = u32::from(self.padding);
        match self.layer {
            1 => (12 * self.kbps * 1000 / self.rate + pad) * 4,
            _ => self.samples_per_frame() / 8 * self.kbps * 1000 / self.rate + pad,
        }
    }

    /// Bytes between the 4-byte header and where a Xing/Info tag would sit.
    fn side_info(&self) -> usize {
        match (self.version, self.mono) {
            (1, false) => 32,
            (1, true) => 17,
            (_, false) => 17,
            (_, true) => 9,
        }
    }
}

fn mpeg_header(b: &[u8]) -> Option<Mpeg> {
    if b.len() < 4 || b[0] != 0xFF || b[1] & 0xE0 != 0xE0 {
        return None;
    }
    let (vbits, lbits) = ((b[1] >> 3) & 3, (b[1] >> 1) & 3);
    let (bi, si) = ((b[2] >> 4) as usize, ((b[2] >> 2) & 3) as usize);
    // Reserved version/layer/rate, "bad" bitrate and free-format are all refused.
    if vbits == 1 || lbits == 0 || bi == 0 || bi == 15 || si == 3 {
        return None;
    }
    let layer = 4 - lbits;
    let version = if vbits == 3 { 1 } else { 2 };
    const V1: [[u32; 14]; 3] = [
        [
            32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ],
        [
            32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ],
        [
            32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ],
    ];
    const V2_L1: [u32; 14] = [
        32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
    ];
    const V2_L23: [u32; 14] = [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let kbps = match (version, layer) {
        (1, l) => V1[l as usize - 1][bi - 1],
        (_, 1) => V2_L1[bi - 1],
        _ => V2_L23[bi - 1],
    };
    let base = [44100, 48000, 32000][si];
    let rate = match vbits {
        3 => base,
        2 => base / 2,
        _ => base / 4,
    };
    Some(Mpeg {
        version,
        layer,
        kbps,
        rate,
        mono: b[3] >> 6 == 3,
        padding: b[2] & 2 != 0,
    })
}

// Fixed-width readers; callers make sure the slice is long enough.
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}
fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[cfg(test)]
mod tests;
