//! Play length from the container's own headers, reading only the few bytes it
//! needs: box/chunk headers are read and their bodies skipped by size.

use super::*;
use std::fs::File;
use std::io::{BufReader, ErrorKind, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// The real duration of a media file in seconds. `Ok(None)` for stills and for
/// streams whose headers carry no length (live WebM, unknown codecs);
/// `Err` when the headers are truncated or contradict themselves.
pub fn duration(path: &Path) -> Result<Option<f64>, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let src = Src { file, len };
    let Some(mut kind) = sniff(&src.read_upto(0, HEAD_LEN)?) else {
        return Ok(None);
    };
    if kind.format == MP3 {
        // An ID3 tag longer than the head (cover art) hides what follows; look past it.
        let after_tag = src.read_upto(audio_start(&src)?, 16)?;
        kind = sniff(&after_tag)
            .filter(|k| k.media == Media::Audio)
            .unwrap_or(kind);
    }
    let secs = match kind.format {
        MP4 | QUICKTIME | M4A => bmff(&src)?,
        WAV => wave(&src)?,
        AIFF => aiff(&src)?,
        AVI => avi(&src)?,
        MP3 => mp3(&src)?,
        AAC => adts(&src)?,
        FLAC => flac(&src)?,
        OGG => ogg(&src)?,
        WEBM => matroska(&src)?,
        AMR => amr(&src)?,
        GIF => gif(&src)?,
        _ => None,
    };
    match secs {
        Some(s) if !(s.is_finite() && s >= 0.0) => Err(format!("implausible duration {s}")),
        s => Ok(s),
    }
}

/// A file read by position, so skipping a huge box costs nothing.
struct Src {
    file: File,
    len: u64,
}

impl Src {
    /// Exactly `n` bytes at `off`, or an error if the file ends first.
    fn read(&self, off: u64, n: usize) -> Result<Vec<u8>, String> {
        if off.checked_add(n as u64).is_none_or(|end| end > self.len) {
            return Err(format!(
                "truncated: wanted {n} bytes at {off} of {}",
                self.len
            ));
        }
        let mut buf = vec![0; n];
        self.file
            .read_exact_at(&mut buf, off)
            .map_err(|e| e.to_string())?;
        Ok(buf)
    }

    /// Up to `n` bytes at `off`, fewer near the end of the file.
    fn read_upto(&self, off: u64, n: usize) -> Result<Vec<u8>, String> {
        let n = self.len.saturating_sub(off).min(n as u64) as usize;
        self.read(off, n)
    }

    /// A buffered reader at `off`, for formats that must be walked frame by frame.
    fn stream(&self, off: u64) -> Result<BufReader<&File>, String> {
        let mut r = BufReader::new(&self.file);
        r.seek(SeekFrom::Start(off)).map_err(|e| e.to_string())?;
        Ok(r)
    }
}

fn io_err(e: std::io::Error) -> String {
    if e.kind() == ErrorKind::UnexpectedEof {
        "truncated".into()
    } else {
        e.to_string()
    }
}

// ---------------------------------------------------------------------------
// ISO BMFF (mp4/mov/m4a).

fn bmff(src: &Src) -> Result<Option<f64>, String> {
    // `moov` is often after a multi-GB `mdat`; `find_box` seeks over it.
    let (moov, moov_end) = find_box(src, 0, src.len, b"moov")?
        .ok_or("no moov box (truncated, or still being written?)")?;
    let (mvhd, _) = find_box(src, moov, moov_end, b"mvhd")?.ok_or("moov has no mvhd")?;
    let v1 = src.read(mvhd, 1)?[0] == 1;
    let body = src.read(mvhd, if v1 { 32 } else { 20 })?;
    let (scale, dur) = if v1 {
        (be32(&body, 20), be64(&body, 24))
    } else {
        let d = be32(&body, 16);
        (
            be32(&body, 12),
            if d == u32::MAX { u64::MAX } else { d.into() },
        )
    };
    if scale == 0 {
        return Err("mvhd timescale is 0".into());
    }
    let dur = match dur {
        u64::MAX => return Ok(None),
        // Fragmented files leave mvhd at 0 and may give the total in mvex/mehd.
        0 => match fragment_duration(src, moov, moov_end)? {
            Some(d) => d,
            None => return Ok(None),
        },
        d => d,
    };
    Ok(Some(dur as f64 / f64::from(scale)))
}

fn fragment_duration(src: &Src, moov: u64, moov_end: u64) -> Result<Option<u64>, String> {
    let Some((mvex, mvex_end)) = find_box(src, moov, moov_end, b"mvex")? else {
        return Ok(None);
    };
    let Some((mehd, _)) = find_box(src, mvex, mvex_end, b"mehd")? else {
        return Ok(None);
    };
    let body = src.read(mehd, 12)?;
    Ok(Some(if body[0] == 1 {
        be64(&body, 4)
    } else {
        be32(&body, 4).into()
    })
    .filter(|&d| d != 0))
}

/// The body range of the first `kind` box among the boxes filling `[start, end)`.
fn find_box(src: &Src, start: u64, end: u64, kind: &[u8; 4]) -> Result<Option<(u64, u64)>, String> {
    let mut at = start;
    while at + 8 <= end {
        let h = src.read(at, 8)?;
        let (header, size) = match be32(&h, 0) {
            1 => (16, be64(&src.read(at + 8, 8)?, 0)),
            0 => (8, end - at), // runs to the end of its parent (or file)
            s => (8, u64::from(s)),
        };
        let name = String::from_utf8_lossy(&h[4..8]);
        if size < header || at.checked_add(size).is_none_or(|e| e > end) {
            return Err(format!("box '{name}' at byte {at} has a bad size {size}"));
        }
        if &h[4..8] == kind {
            return Ok(Some((at + header, at + size)));
        }
        at += size;
    }
    Ok(None)
}

// ---------------------------------------------------------------------------
// RIFF (WAV, AVI) and IFF (AIFF).

/// The body offset and declared size of the first `id` chunk in `[start, end)`.
/// The found chunk's size is not checked: streaming writers leave it unfinished.
fn find_chunk(
    src: &Src,
    start: u64,
    end: u64,
    id: &[u8; 4],
    big_endian: bool,
) -> Result<Option<(u64, u64)>, String> {
    let mut at = start;
    while at + 8 <= end {
        let h = src.read(at, 8)?;
        let size = u64::from(if big_endian { be32(&h, 4) } else { le32(&h, 4) });
        if &h[..4] == id {
            return Ok(Some((at + 8, size)));
        }
        at += 8 + size + (size & 1); // bodies are padded to even length
    }
    Ok(None)
}

fn wave(src: &Src) -> Result<Option<f64>, String> {
    let (fmt, _) = find_chunk(src, 12, src.len, b"fmt ", false)?.ok_or("WAV has no fmt chunk")?;
    let byte_rate = le32(&src.read(fmt, 12)?, 8);
    if byte_rate == 0 {
        return Err("WAV byte rate is 0".into());
    }
    let (data, size) =
        find_chunk(src, 12, src.len, b"data", false)?.ok_or("WAV has no data chunk")?;
    let on_disk = src.len - data.min(src.len);
    let size = match size {
        // RF64 keeps the real size in `ds64`; 0/~0 also mark a header never finalised.
        0xFFFF_FFFF => match find_chunk(src, 12, src.len, b"ds64", false)? {
            Some((ds64, _)) => le64(&src.read(ds64, 16)?, 8),
            None => on_disk,
        },
        0 => on_disk,
        s => s,
    };
    Ok(Some(size.min(on_disk) as f64 / f64::from(byte_rate)))
}

fn aiff(src: &Src) -> Result<Option<f64>, String> {
    let (comm, _) = find_chunk(src, 12, src.len, b"COMM", true)?.ok_or("AIFF has no COMM chunk")?;
    let c = src.read(comm, 18)?;
    let frames = be32(&c, 2);
    let rate = extended(&c[8..18]);
    if !rate.is_finite() || rate <= 0.0 {
        return Err("AIFF sample rate is not positive".into());
    }
    Ok(Some(f64::from(frames) / rate))
}

/// An 80-bit IEEE extended float (AIFF's sample rate).
fn extended(b: &[u8]) -> f64 {
    let exp = i32::from(be16(b, 0) & 0x7FFF);
    let mantissa = be64(b, 2) as f64;
    let v = mantissa * 2f64.powi(exp - 16383 - 63);
    if b[0] & 0x80 != 0 { -v } else { v }
}

fn avi(src: &Src) -> Result<Option<f64>, String> {
    // `hdrl` is required to be the first list, and `avih` its first chunk.
    let h = src.read(12, 12)?;
    if &h[..4] != b"LIST" || &h[8..12] != b"hdrl" {
        return Err("AVI does not start with an hdrl list".into());
    }
    let end = (24 + u64::from(le32(&h, 4))).min(src.len);
    let (avih, _) = find_chunk(src, 24, end, b"avih", false)?.ok_or("AVI has no avih")?;
    let a = src.read(avih, 20)?;
    let (us_per_frame, frames) = (le32(&a, 0), le32(&a, 16));
    if us_per_frame == 0 || frames == 0 {
        return Ok(None);
    }
    Ok(Some(f64::from(us_per_frame) * f64::from(frames) / 1e6))
}

// ---------------------------------------------------------------------------
// MPEG audio and ADTS AAC.

fn audio_start(src: &Src) -> Result<u64, String> {
    Ok(id3_len(&src.read_upto(0, 10)?).unwrap_or(0))
}

fn mp3(src: &Src) -> Result<Option<f64>, String> {
    let start = audio_start(src)?;
    // Encoders may leave padding or junk between the tag and the first frame;
    // a sync only counts if the next frame follows where its length says.
    let buf = src.read_upto(start, 64 * 1024)?;
    let found = (0..buf.len()).find_map(|i| {
        let h = mpeg_header(&buf[i..])?;
        let next = i + h.frame_len() as usize;
        (next + 4 > buf.len() || mpeg_header(&buf[next..]).is_some()).then_some((i, h))
    });
    let (i, h) = found.ok_or("no MPEG audio frame found")?;
    let frame = &buf[i..];
    let at = |off: usize, sig: &[u8]| frame.get(off..off + 4) == Some(sig);
    // A VBR file's first frame may carry the frame count (Xing/Info or VBRI).
    let xing = 4 + h.side_info();
    let frames = if (at(xing, b"Xing") || at(xing, b"Info"))
        && frame.len() >= xing + 12
        && be32(frame, xing + 4) & 1 != 0
    {
        Some(be32(frame, xing + 8))
    } else if at(36, b"VBRI") && frame.len() >= 36 + 18 {
        Some(be32(frame, 36 + 14))
    } else {
        None
    };
    if let Some(n) = frames.filter(|&n| n > 0) {
        return Ok(Some(
            f64::from(n) * f64::from(h.samples_per_frame()) / f64::from(h.rate),
        ));
    }
    // Constant bitrate: audio bytes over bytes per second, minus an ID3v1 tag.
    let mut end = src.len;
    if src.len >= 128 && src.read(src.len - 128, 3)? == b"TAG" {
        end -= 128;
    }
    let bytes = end.saturating_sub(start + i as u64);
    Ok(Some(bytes as f64 * 8.0 / (f64::from(h.kbps) * 1000.0)))
}

fn adts(src: &Src) -> Result<Option<f64>, String> {
    // ADTS has no global header: walk the (small) frame headers.
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut at = audio_start(src)?;
    let mut r = src.stream(at)?;
    let (mut samples, mut rate) = (0u64, 0u32);
    while at + 7 <= src.len {
        let mut h = [0u8; 7];
        r.read_exact(&mut h).map_err(io_err)?;
        if !is_adts(&h) {
            if samples > 0 {
                break; // a trailing tag
            }
            return Err(format!("no ADTS frame at byte {at}"));
        }
        rate = RATES[usize::from((h[2] >> 2) & 0xF)];
        let len = (u64::from(h[3] & 3) << 11) | (u64::from(h[4]) << 3) | u64::from(h[5] >> 5);
        if len < 7 {
            return Err(format!("ADTS frame at byte {at} has length {len}"));
        }
        samples += 1024 * (u64::from(h[6] & 3) + 1);
        r.seek_relative(len as i64 - 7).map_err(io_err)?;
        at += len;
    }
    if rate == 0 {
        return Err("no ADTS frames".into());
    }
    Ok(Some(samples as f64 / f64::from(rate)))
}

// ---------------------------------------------------------------------------
// FLAC and Ogg.

/// (sample rate, total samples) from a 34-byte STREAMINFO body.
fn streaminfo(si: &[u8]) -> (u32, u64) {
    let rate = (u32::from(si[10]) << 12) | (u32::from(si[11]) << 4) | u32::from(si[12] >> 4);
    let total = (u64::from(si[13] & 0x0F) << 32) | u64::from(be32(si, 14));
    (rate, total)
}

fn flac(src: &Src) -> Result<Option<f64>, String> {
    let start = audio_start(src)?;
    let b = src.read(start, 8 + 34)?;
    if &b[..4] != b"fLaC" || b[4] & 0x7F != 0 {
        return Err("FLAC does not start with STREAMINFO".into());
    }
    let (rate, total) = streaminfo(&b[8..]);
    if rate == 0 {
        return Err("FLAC sample rate is 0".into());
    }
    Ok((total > 0).then(|| total as f64 / f64::from(rate)))
}

fn ogg(src: &Src) -> Result<Option<f64>, String> {
    let page = src.read(0, 27)?;
    let serial = le32(&page, 14);
    let body = 27 + u64::from(page[26]);
    let p = src.read_upto(body, 64)?;
    let has = |sig: &[u8], need: usize| p.starts_with(sig) && p.len() >= need;
    // The granule position counts samples at a codec-specific rate; Opus always
    // counts at 48 kHz and includes the encoder's pre-skip.
    let (rate, pre_skip) = if has(b"\x01vorbis", 16) {
        (le32(&p, 12), 0)
    } else if has(b"OpusHead", 12) {
        (48000, u64::from(le16(&p, 10)))
    } else if has(b"\x7FFLAC", 17 + 34) {
        (streaminfo(&p[17..]).0, 0)
    } else if has(b"Speex   ", 40) {
        (le32(&p, 36), 0)
    } else {
        return Ok(None);
    };
    if rate == 0 {
        return Err("Ogg stream sample rate is 0".into());
    }
    // A page is at most ~64 KiB, so the last one starts within the tail.
    let tail_start = src.len.saturating_sub(65_307 + 27);
    let tail = src.read_upto(tail_start, 65_307 + 27)?;
    let granule = (0..tail.len().saturating_sub(27))
        .rev()
        .filter(|&i| tail[i..].starts_with(b"OggS") && tail[i + 4] == 0)
        .filter(|&i| le32(&tail, i + 14) == serial)
        .map(|i| le64(&tail, i + 6))
        .find(|&g| g != u64::MAX) // -1: no packet ends on this page
        .ok_or("no final Ogg page found")?;
    Ok(Some(
        granule.saturating_sub(pre_skip) as f64 / f64::from(rate),
    ))
}

// ---------------------------------------------------------------------------
// Matroska / WebM.

const EBML_HEADER: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const CLUSTER: u32 = 0x1F43_B675;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;

/// An element header at `at`: (id, body offset, body size or None if unknown).
fn ebml_element(src: &Src, at: u64) -> Result<(u32, u64, Option<u64>), String> {
    let b = src.read_upto(at, 12)?;
    let (id, id_len) = vint(&b, 0).ok_or_else(|| format!("bad EBML id at byte {at}"))?;
    if id_len > 4 {
        return Err(format!("bad EBML id at byte {at}"));
    }
    let (size, size_len) = vint(&b, id_len).ok_or_else(|| format!("bad EBML size at byte {at}"))?;
    // The id keeps its length marker; the size drops it, and all ones means "unknown".
    let marker = 1u64 << (7 * size_len);
    let id = (id | (1u64 << (7 * id_len))) as u32;
    let size = (size != marker - 1).then_some(size);
    Ok((id, at + (id_len + size_len) as u64, size))
}

/// A variable-length integer at `b[off..]` without its marker bit, and its length.
fn vint(b: &[u8], off: usize) -> Option<(u64, usize)> {
    let first = *b.get(off)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || off + len > b.len() {
        return None;
    }
    let mut v = u64::from(first) & ((1u64 << (8 - len)) - 1);
    for &x in &b[off + 1..off + len] {
        v = (v << 8) | u64::from(x);
    }
    Some((v, len))
}

fn matroska(src: &Src) -> Result<Option<f64>, String> {
    let (id, body, size) = ebml_element(src, 0)?;
    if id != EBML_HEADER {
        return Err("not an EBML file".into());
    }
    let mut at = body + size.ok_or("EBML header of unknown size")?;
    // Find the Segment among the top-level elements.
    let (seg, seg_end) = loop {
        if at >= src.len {
            return Err("no Matroska Segment".into());
        }
        let (id, body, size) = ebml_element(src, at)?;
        if id == SEGMENT {
            break (body, size.map_or(src.len, |s| body + s).min(src.len));
        }
        at = body + size.ok_or("top-level element of unknown size")?;
    };
    // Info comes before the first Cluster; stop there (clusters may be unsized).
    let mut at = seg;
    let (info, info_end) = loop {
        if at >= seg_end {
            return Ok(None);
        }
        let (id, body, size) = ebml_element(src, at)?;
        match (id, size) {
            (INFO, Some(s)) => break (body, (body + s).min(seg_end)),
            (CLUSTER, _) | (_, None) => return Ok(None),
            (_, Some(s)) => at = body + s,
        }
    };
    let (mut scale, mut dur) = (1_000_000u64, None); // default scale: 1 ms ticks
    let mut at = info;
    while at < info_end {
        let (id, body, size) = ebml_element(src, at)?;
        let size = size.ok_or("Info child of unknown size")?;
        match (id, size) {
            (TIMECODE_SCALE, 1..=8) => {
                scale = src
                    .read(body, size as usize)?
                    .iter()
                    .fold(0, |a, &x| (a << 8) | u64::from(x));
            }
            (DURATION, 4) => {
                dur = Some(f64::from(f32::from_be_bytes(
                    src.read(body, 4)?[..].try_into().unwrap(),
                )))
            }
            (DURATION, 8) => {
                dur = Some(f64::from_be_bytes(
                    src.read(body, 8)?[..].try_into().unwrap(),
                ))
            }
            (DURATION, _) => return Err(format!("Duration of {size} bytes")),
            _ => {}
        }
        at = body + size;
    }
    Ok(dur.map(|d| d * scale as f64 / 1e9))
}

// ---------------------------------------------------------------------------
// AMR and GIF: no stored length, so walk the (small) files frame by frame.

fn amr(src: &Src) -> Result<Option<f64>, String> {
    // Payload bytes after the 1-byte frame header, by frame type; 15 is "no data".
    const NB: [u64; 16] = [12, 13, 15, 17, 19, 20, 26, 31, 5, 6, 5, 5, 0, 0, 0, 0];
    const WB: [u64; 16] = [17, 23, 32, 36, 40, 46, 50, 58, 60, 5, 0, 0, 0, 0, 0, 0];
    let head = src.read_upto(0, 12)?;
    let (mut at, sizes) = if head.starts_with(b"#!AMR\n") {
        (6, &NB)
    } else if head.starts_with(b"#!AMR-WB\n") {
        (9, &WB)
    } else {
        return Ok(None); // multichannel variants
    };
    let mut r = src.stream(at)?;
    let mut frames = 0u64;
    while at < src.len {
        let mut t = [0u8];
        r.read_exact(&mut t).map_err(io_err)?;
        let size = sizes[usize::from((t[0] >> 3) & 0xF)];
        r.seek_relative(size as i64).map_err(io_err)?;
        at += 1 + size;
        frames += 1;
    }
    if at > src.len {
        return Err("AMR ends inside a frame".into());
    }
    Ok(Some(frames as f64 * 0.02)) // every frame is 20 ms
}

fn gif(src: &Src) -> Result<Option<f64>, String> {
    let mut r = src.stream(0)?;
    let mut lsd = [0u8; 13];
    r.read_exact(&mut lsd).map_err(io_err)?;
    skip_table(&mut r, lsd[10])?;
    let (mut frames, mut centis) = (0u64, 0u64);
    loop {
        let block = match read_u8(&mut r) {
            Ok(b) => b,
            // Many encoders forget the trailer; the frames before it still count.
            Err(_) if frames > 0 => break,
            Err(e) => return Err(e),
        };
        match block {
            0x21 => {
                if read_u8(&mut r)? == 0xF9 {
                    let mut gce = [0u8; 5];
                    r.read_exact(&mut gce).map_err(io_err)?;
                    // Viewers show delays of 0 or 1 (1/100 s) as 10; so do we.
                    let delay = u64::from(le16(&gce, 2));
                    centis += if delay <= 1 { 10 } else { delay };
                }
                skip_blocks(&mut r)?;
            }
            0x2C => {
                let mut desc = [0u8; 9];
                r.read_exact(&mut desc).map_err(io_err)?;
                skip_table(&mut r, desc[8])?;
                read_u8(&mut r)?; // LZW minimum code size
                skip_blocks(&mut r)?;
                frames += 1;
            }
            0x3B => break,
            b => return Err(format!("unexpected GIF block 0x{b:02X}")),
        }
    }
    // A single frame is a still picture, with no length to speak of.
    Ok((frames > 1 && centis > 0).then(|| centis as f64 / 100.0))
}

fn read_u8(r: &mut impl Read) -> Result<u8, String> {
    let mut b = [0u8];
    r.read_exact(&mut b).map_err(io_err)?;
    Ok(b[0])
}

/// Skips a colour table if `flags` (packed field) says there is one.
fn skip_table(r: &mut BufReader<&File>, flags: u8) -> Result<(), String> {
    if flags & 0x80 != 0 {
        r.seek_relative(3 << ((flags & 7) + 1)).map_err(io_err)?;
    }
    Ok(())
}

fn skip_blocks(r: &mut BufReader<&File>) -> Result<(), String> {
    loop {
        match read_u8(r)? {
            0 => return Ok(()),
            n => r.seek_relative(i64::from(n)).map_err(io_err)?,
        }
    }
}
