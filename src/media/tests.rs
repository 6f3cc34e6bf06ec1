use super::*;
use crate::mock::media as synth;
use std::io::Write;
use std::os::unix::fs::FileExt;

fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f
}

fn secs(bytes: &[u8]) -> Option<f64> {
    duration(file(bytes).path()).unwrap()
}

fn close(got: Option<f64>, want: f64, tol: f64) {
    let got = got.expect("a duration");
    assert!((got - want).abs() <= tol, "got {got}, want {want}");
}

// ---------------------------------------------------------------------------
// Hand-built fixtures.

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = (8 + body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(body);
    v
}

fn ftyp(brand: &[u8; 4]) -> Vec<u8> {
    bx(b"ftyp", &[&brand[..], &[0, 0, 2, 0], b"isom"].concat())
}

fn mvhd_v0(scale: u32, dur: u32) -> Vec<u8> {
    let mut b = vec![0; 100];
    b[12..16].copy_from_slice(&scale.to_be_bytes());
    b[16..20].copy_from_slice(&dur.to_be_bytes());
    bx(b"mvhd", &b)
}

fn mvhd_v1(scale: u32, dur: u64) -> Vec<u8> {
    let mut b = vec![0; 112];
    b[0] = 1;
    b[20..24].copy_from_slice(&scale.to_be_bytes());
    b[24..32].copy_from_slice(&dur.to_be_bytes());
    bx(b"mvhd", &b)
}

fn moov(mvhd: Vec<u8>) -> Vec<u8> {
    bx(
        b"moov",
        &[bx(b"iods", &[0; 8]), mvhd, bx(b"trak", &[0; 16])].concat(),
    )
}

fn jpeg() -> Vec<u8> {
    let mut v = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01".to_vec();
    v.resize(64, 0);
    v
}

fn riff(form: &[u8; 4], chunks: &[u8]) -> Vec<u8> {
    [
        b"RIFF",
        &(4 + chunks.len() as u32).to_le_bytes()[..],
        form,
        chunks,
    ]
    .concat()
}

fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = [&id[..], &(body.len() as u32).to_le_bytes()].concat();
    v.extend_from_slice(body);
    if body.len() % 2 == 1 {
        v.push(0);
    }
    v
}

fn streaminfo(rate: u32, total: u64) -> Vec<u8> {
    let mut b = vec![0x10, 0, 0x10, 0, 0, 0, 0, 0, 0, 0];
    let packed = (u64::from(rate) << 44) | (1 << 41) | (15 << 36) | total;
    b.extend_from_slice(&packed.to_be_bytes());
    b.extend_from_slice(&[0; 16]); // MD5
    b
}

fn flac(rate: u32, total: u64) -> Vec<u8> {
    [
        &b"fLaC\x80\x00\x00\x22"[..],
        &streaminfo(rate, total),
        &[0xFF, 0xF8, 0, 0],
    ]
    .concat()
}

fn ogg_page(flags: u8, granule: u64, serial: u32, packet: &[u8]) -> Vec<u8> {
    let mut v = b"OggS\0".to_vec();
    v.push(flags);
    v.extend_from_slice(&granule.to_le_bytes());
    v.extend_from_slice(&serial.to_le_bytes());
    v.extend_from_slice(&[0; 8]); // sequence, CRC (not checked)
    v.push(1);
    v.push(packet.len() as u8);
    v.extend_from_slice(packet);
    v
}

fn vorbis_id(rate: u32) -> Vec<u8> {
    [
        &b"\x01vorbis\0\0\0\0\x02"[..],
        &rate.to_le_bytes(),
        &[0; 12],
        &[0xB8, 1],
    ]
    .concat()
}

fn opus_head(pre_skip: u16) -> Vec<u8> {
    [
        &b"OpusHead\x01\x02"[..],
        &pre_skip.to_le_bytes(),
        &48000u32.to_le_bytes(),
        &[0; 3],
    ]
    .concat()
}

/// MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, stereo: 417-byte frames.
const MP3_HEADER: [u8; 4] = [0xFF, 0xFB, 0x90, 0x00];

fn mp3_frame(xing_frames: Option<u32>) -> Vec<u8> {
    let mut f = MP3_HEADER.to_vec();
    f.resize(417, 0);
    if let Some(n) = xing_frames {
        f[36..40].copy_from_slice(b"Xing");
        f[40..44].copy_from_slice(&1u32.to_be_bytes());
        f[44..48].copy_from_slice(&n.to_be_bytes());
    }
    f
}

fn id3(body: usize) -> Vec<u8> {
    let mut v = b"ID3\x04\x00\x00\x00\x00\x00".to_vec();
    v.push(body as u8); // < 128, so syncsafe is plain
    v.resize(10 + body, 0);
    v
}

fn adts_frame() -> Vec<u8> {
    // AAC LC, 44.1 kHz, stereo, 20-byte frame, one raw block.
    let mut f = vec![0xFF, 0xF1, 0x50, 0x80, 0x02, 0x9F, 0xFC];
    f.resize(20, 0);
    f
}

fn ebml(id: &[u8], body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 127);
    [id, &[0x80 | body.len() as u8], body].concat()
}

fn webm(info: &[u8]) -> Vec<u8> {
    let header = ebml(&[0x1A, 0x45, 0xDF, 0xA3], &ebml(&[0x42, 0x82], b"webm"));
    let cluster = [
        &[
            0x1F, 0x43, 0xB6, 0x75, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ][..],
        &[0; 20],
    ]
    .concat();
    let segment_body = [
        ebml(&[0xEC], &[0; 3]),
        ebml(&[0x15, 0x49, 0xA9, 0x66], info),
        cluster,
    ]
    .concat();
    // Segment of unknown size, as live writers leave it.
    [
        header,
        vec![
            0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ],
        segment_body,
    ]
    .concat()
}

fn avi(us_per_frame: u32, frames: u32) -> Vec<u8> {
    let mut avih = vec![0; 56];
    avih[0..4].copy_from_slice(&us_per_frame.to_le_bytes());
    avih[16..20].copy_from_slice(&frames.to_le_bytes());
    let hdrl = [&b"hdrl"[..], &chunk(b"avih", &avih)].concat();
    riff(
        b"AVI ",
        &[chunk(b"LIST", &hdrl), chunk(b"LIST", b"movi")].concat(),
    )
}

fn aiff_1s() -> Vec<u8> {
    let mut comm = vec![0, 1, 0, 0, 0x1F, 0x40, 0, 16]; // mono, 8000 frames, 16-bit
    comm.extend_from_slice(&0x400Bu16.to_be_bytes()); // 8000 = 1.953125 * 2^12
    comm.extend_from_slice(&(8000u64 << 51).to_be_bytes());
    let c = [&b"COMM"[..], &18u32.to_be_bytes(), &comm].concat();
    [
        &b"FORM"[..],
        &(4 + c.len() as u32).to_be_bytes(),
        b"AIFF",
        &c,
    ]
    .concat()
}

fn amr_1s() -> Vec<u8> {
    let mut v = b"#!AMR\n".to_vec();
    for _ in 0..50 {
        v.push(0x3C); // mode 7 (12.2 kbit/s): 31 payload bytes
        v.extend_from_slice(&[0; 31]);
    }
    v
}

// ---------------------------------------------------------------------------
// sniff / check.

/// A sample of every extension the API takes, with what it must sniff as.
fn samples() -> Vec<(&'static str, Vec<u8>, Media, &'static str)> {
    use Media::*;
    let png = synth::draw("a fox", 1, 16, 16);
    let gif = synth::gif("a fox", 1, 16, 16, 3);
    let mp4 = synth::mp4(0.5, 16, 16, 1);
    let wav = synth::wav(0.3, 1);
    let webm = webm(&ebml(&[0x44, 0x89], &8.0f64.to_be_bytes()));
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0; 12]);
    bmp.extend_from_slice(&40u32.to_le_bytes());
    let ogg = ogg_page(2, 0, 7, &vorbis_id(44100));
    vec![
        ("png", png, Image, PNG),
        ("jpg", jpeg(), Image, JPEG),
        ("jpeg", jpeg(), Image, JPEG),
        ("jfif", jpeg(), Image, JPEG),
        ("heic", ftyp(b"heic"), Image, HEIF),
        ("heif", ftyp(b"mif1"), Image, HEIF),
        ("avif", ftyp(b"avif"), Image, HEIF),
        (
            "webp",
            riff(b"WEBP", &chunk(b"VP8 ", &[0; 10])),
            Image,
            WEBP,
        ),
        (
            "jp2",
            b"\0\0\0\x0CjP  \r\n\x87\n\0\0\0\x14ftypjp2 ".to_vec(),
            Image,
            JP2,
        ),
        ("tiff", b"II*\0\x08\0\0\0".to_vec(), Image, TIFF),
        ("tif", b"MM\0*\0\0\0\x08".to_vec(), Image, TIFF),
        ("bmp", bmp, Image, BMP),
        ("gif", gif, Image, GIF),
        ("mp4", mp4.clone(), Video, MP4),
        ("m4v", ftyp(b"M4V "), Video, MP4),
        ("mov", ftyp(b"qt  "), Video, MP4),
        ("mov", bx(b"moov", &[0; 8]), Video, QUICKTIME),
        ("webm", webm.clone(), Video, WEBM),
        ("mp3", [id3(20), mp3_frame(None)].concat(), Audio, MP3),
        ("mp3", mp3_frame(None), Audio, MP3),
        ("wav", wav, Audio, WAV),
        ("aac", adts_frame(), Audio, AAC),
        ("aac", [id3(5), adts_frame()].concat(), Audio, AAC),
        ("flac", flac(44100, 0), Audio, FLAC),
        ("flac", [id3(5), flac(44100, 0)].concat(), Audio, FLAC),
        ("weba", webm, Video, WEBM),
        ("m4a", ftyp(b"M4A "), Audio, M4A),
        ("m4a", mp4, Video, MP4), // generic brand: video, but fits audio
        ("opus", ogg_page(2, 0, 7, &opus_head(312)), Audio, OGG),
        ("ogg", ogg.clone(), Audio, OGG),
        ("oga", ogg, Audio, OGG),
        ("aiff", aiff_1s(), Audio, AIFF),
        ("amr", amr_1s(), Audio, AMR),
    ]
}

#[test]
fn sniffs_every_accepted_extension() {
    let samples = samples();
    for (ext, bytes, media, format) in &samples {
        let got = sniff(bytes).unwrap_or_else(|| panic!("{ext}: not recognised"));
        assert_eq!((got.media, got.format), (*media, *format), "{ext}");
    }
    // Every extension the catalog accepts has a sample that `check` lets through.
    for media in [Media::Image, Media::Video, Media::Audio] {
        for ext in media.extensions() {
            let (_, bytes, _, _) = samples
                .iter()
                .find(|s| s.0 == *ext)
                .unwrap_or_else(|| panic!("no sample for {ext}"));
            let f = file(bytes);
            let name = format!("in.{ext}");
            assert_eq!(check(f.path(), media, &name), Ok(()), "{ext} as {media:?}");
        }
    }
}

#[test]
fn refuses_a_jpeg_named_mov() {
    let f = file(&jpeg());
    let err = check(f.path(), Media::Video, "x.mov").unwrap_err();
    assert_eq!(err.to_string(), "x.mov is a JPEG image, not a video");
    assert!(matches!(err, Mismatch::Wrong { found, .. } if found.format == JPEG));
}

#[test]
fn names_the_real_type_or_says_unknown() {
    let m4a = file(&ftyp(b"M4A "));
    let err = check(m4a.path(), Media::Video, "a.mp4").unwrap_err();
    assert_eq!(err.to_string(), "a.mp4 is an M4A audio file, not a video");
    let wav = file(&synth::wav(0.3, 2));
    let err = check(wav.path(), Media::Image, "p.png").unwrap_err();
    assert_eq!(err.to_string(), "p.png is a WAV audio file, not an image");
    let mp4 = file(&synth::mp4(0.5, 16, 16, 2));
    let err = check(mp4.path(), Media::Audio, "s.mp3");
    assert_eq!(err, Ok(()), "a generic MP4 may be audio-only");

    let text = file(b"hello, this is not a video at all");
    let err = check(text.path(), Media::Video, "x.mov").unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.mov is not a video file this tool can read"
    );
    let empty = file(b"");
    let err = check(empty.path(), Media::Audio, "e.wav").unwrap_err();
    assert_eq!(
        err.to_string(),
        "e.wav is not an audio file this tool can read"
    );
    let err = check(Path::new("/nonexistent/z.png"), Media::Image, "z.png").unwrap_err();
    assert!(matches!(err, Mismatch::Unreadable { .. }), "{err}");
}

#[test]
fn weak_signatures_need_more_than_two_bytes() {
    assert_eq!(sniff(b"BMxxxxxxxxxxxxxxxxxxxx"), None);
    assert_eq!(sniff(b"\xFF\xFF\xFF\xFF"), None);
    assert_eq!(sniff(b"RIFF\0\0\0\0JUNK"), None);
    assert_eq!(sniff(b""), None);
}

// ---------------------------------------------------------------------------
// duration.

#[test]
fn mp4_from_the_synthesiser() {
    close(secs(&synth::mp4(1.0, 16, 16, 3)), 1.0, 0.01);
    // The synthesiser caps clips at 10 s; longer ones are hand-built below.
    close(secs(&synth::mp4(10.0, 16, 16, 3)), 10.0, 0.01);
}

#[test]
fn mp4_moov_after_a_huge_mdat() {
    // A 5 GiB mdat (64-bit largesize) as a sparse file: only its header is read.
    let mut head = ftyp(b"isom");
    let big: u64 = 5 << 30;
    head.extend_from_slice(&1u32.to_be_bytes());
    head.extend_from_slice(b"mdat");
    head.extend_from_slice(&big.to_be_bytes());
    let f = file(&head);
    let moov_at = (head.len() - 16) as u64 + big;
    f.as_file()
        .write_all_at(&moov(mvhd_v0(1000, 20_000)), moov_at)
        .unwrap();
    close(duration(f.path()).unwrap(), 20.0, 1e-9);
}

#[test]
fn mp4_mvhd_version_1_and_size_zero_box() {
    let v1 = [ftyp(b"qt  "), moov(mvhd_v1(90_000, 1_125_000))].concat();
    close(secs(&v1), 12.5, 1e-9);
    // A last box of size 0 runs to the end of the file.
    let tail = [
        ftyp(b"M4A "),
        moov(mvhd_v0(44_100, 44_100 * 3)),
        vec![0, 0, 0, 0],
        b"mdat".to_vec(),
        vec![7; 100],
    ]
    .concat();
    close(secs(&tail), 3.0, 1e-9);
}

#[test]
fn mp4_corrupt_or_unknown() {
    let no_moov = [ftyp(b"isom"), bx(b"mdat", &[0; 32])].concat();
    assert!(duration(file(&no_moov).path()).is_err());
    let mut truncated = [ftyp(b"isom"), bx(b"mdat", &[0; 32])].concat();
    truncated.truncate(truncated.len() - 10);
    assert!(duration(file(&truncated).path()).is_err());
    let zero_scale = [ftyp(b"isom"), moov(mvhd_v0(0, 10))].concat();
    assert!(duration(file(&zero_scale).path()).is_err());
    let unknown = [ftyp(b"isom"), moov(mvhd_v0(1000, u32::MAX))].concat();
    assert_eq!(secs(&unknown), None);
}

#[test]
fn wav_aiff_avi() {
    close(secs(&synth::wav(0.5, 4)), 0.5, 0.001);
    close(secs(&aiff_1s()), 1.0, 1e-9);
    close(secs(&avi(40_000, 250)), 10.0, 1e-9);
    // A WAV whose data size was never filled in: trust the bytes on disk.
    let fmt = [
        &1u16.to_le_bytes()[..],
        &1u16.to_le_bytes(),
        &8000u32.to_le_bytes(),
        &16000u32.to_le_bytes(),
        &[2, 0, 16, 0],
    ]
    .concat();
    let mut wav = riff(
        b"WAVE",
        &[chunk(b"fmt ", &fmt), chunk(b"data", &[])].concat(),
    );
    let n = wav.len();
    wav[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    wav.extend_from_slice(&[0; 8000]);
    close(secs(&wav), 0.5, 1e-9);
}

#[test]
fn mp3_xing_and_cbr() {
    let mut vbr = id3(30);
    vbr.extend(mp3_frame(Some(100)));
    for _ in 0..3 {
        vbr.extend(mp3_frame(None));
    }
    close(secs(&vbr), 100.0 * 1152.0 / 44100.0, 1e-9);

    let mut cbr = id3(30);
    cbr.extend_from_slice(&[0; 7]); // junk before the first frame
    for _ in 0..10 {
        cbr.extend(mp3_frame(None));
    }
    cbr.extend_from_slice(b"TAG");
    cbr.extend_from_slice(&[0; 125]);
    close(secs(&cbr), 4170.0 * 8.0 / 128_000.0, 1e-9);
}

#[test]
fn aac_amr_gif() {
    let aac: Vec<u8> = (0..43).flat_map(|_| adts_frame()).collect();
    close(secs(&aac), 43.0 * 1024.0 / 44100.0, 1e-9);
    close(secs(&amr_1s()), 1.0, 1e-9);
    close(secs(&synth::gif("a fox", 1, 16, 16, 5)), 0.5, 1e-9);
    assert_eq!(
        secs(&synth::draw("a fox", 1, 16, 16)),
        None,
        "stills have no length"
    );
    let mut no_trailer = synth::gif("a fox", 1, 16, 16, 4);
    assert_eq!(no_trailer.pop(), Some(0x3B));
    close(secs(&no_trailer), 0.4, 1e-9);

    // AAC behind an ID3 tag bigger than the sniffed head (cover art).
    let mut tag = b"ID3\x04\x00\x00\x00\x00\x40\x00".to_vec(); // 8192 bytes, syncsafe
    tag.resize(10 + 8192, 0);
    let tagged = [tag, aac].concat();
    let f = file(&tagged);
    assert_eq!(check(f.path(), Media::Audio, "t.aac"), Ok(()));
    close(duration(f.path()).unwrap(), 43.0 * 1024.0 / 44100.0, 1e-9);
}

#[test]
fn flac_streaminfo() {
    close(secs(&flac(44100, 44100 * 3)), 3.0, 1e-9);
    close(secs(&[id3(12), flac(48000, 24000)].concat()), 0.5, 1e-9);
    assert_eq!(secs(&flac(44100, 0)), None, "total samples unknown");
    assert!(duration(file(&flac(0, 5)).path()).is_err());
}

#[test]
fn ogg_last_page() {
    let mut vorbis = ogg_page(2, 0, 7, &vorbis_id(44100));
    vorbis.extend(ogg_page(0, 0, 7, &[1; 200]));
    vorbis.extend(vec![0x55; 100_000]); // more than a page's worth of audio
    vorbis.extend(ogg_page(0, 44100 * 7, 7, &[1; 50]));
    vorbis.extend(ogg_page(0, u64::MAX, 7, &[1; 20])); // no packet ends here
    vorbis.extend(ogg_page(4, 1 << 40, 99, &[1; 20])); // another stream
    close(secs(&vorbis), 7.0, 1e-9);

    let mut opus = ogg_page(2, 0, 3, &opus_head(312));
    opus.extend(ogg_page(4, 96_000 + 312, 3, &[1; 50]));
    close(secs(&opus), 2.0, 1e-9);

    // An unknown codec has no known rate; no page with a granule is corrupt.
    assert_eq!(secs(&ogg_page(2, 0, 3, b"\x80theora")), None);
    let no_granule = ogg_page(2, u64::MAX, 3, &opus_head(312));
    assert!(duration(file(&no_granule).path()).is_err());
}

#[test]
fn webm_segment_info() {
    let info = [
        ebml(&[0x2A, 0xD7, 0xB1], &[0x0F, 0x42, 0x40]),
        ebml(&[0x44, 0x89], &12_345.0f64.to_be_bytes()),
    ]
    .concat();
    close(secs(&webm(&info)), 12.345, 1e-9);
    // Default scale (1 ms) and a 4-byte float.
    close(
        secs(&webm(&ebml(&[0x44, 0x89], &2500.0f32.to_be_bytes()))),
        2.5,
        1e-9,
    );
    // Live recordings carry no Duration.
    assert_eq!(
        secs(&webm(&ebml(&[0x2A, 0xD7, 0xB1], &[0x0F, 0x42, 0x40]))),
        None
    );
}
