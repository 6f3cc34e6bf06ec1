//! Synthesises the real output files the mock API serves: pictures drawn from a
//! prompt, edits of uploaded images, animated GIFs, WAV audio and H.264 MP4 video.
//!
//! Everything is deterministic for its inputs (prompt/seed/label), so the mock
//! serves the same bytes for the same request. Sizes are clamped where noted so a
//! hostile or silly request cannot make the mock allocate much.

use std::f32::consts::TAU;
use std::io::Cursor;

use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{
    AnimationDecoder, Delay, DynamicImage, Frame, ImageFormat, ImageReader, Limits, Rgba, RgbaImage,
};

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("cannot decode image: {0}")]
    Decode(String),
    #[error("{0}")]
    Other(String),
}

/// Encoded image kinds we emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
}

impl ImageKind {
    pub fn ext(self) -> &'static str {
        match self {
            ImageKind::Png => "png",
            ImageKind::Jpeg => "jpg",
        }
    }
}

/// Largest side `draw` produces; larger requests are clamped.
const MAX_DRAW_SIDE: u32 = 4096;
/// Largest side `gif` produces (GIF quantisation is the slow part).
const MAX_GIF_SIDE: u32 = 512;
const MAX_GIF_FRAMES: u32 = 60;
/// Largest side `mp4` produces: I_PCM frames are uncompressed, so keep them small.
const MAX_VIDEO_SIDE: u32 = 640;
const VIDEO_FPS: u32 = 4;
const WAV_RATE: u32 = 16_000;
/// Decoding limit for uploaded images, against decompression bombs.
const MAX_DECODE_SIDE: u32 = 16_384;

/// True when this module can decode images with this (lower-case, dotless) extension.
pub fn can_decode(ext: &str) -> bool {
    matches!(ext, "png" | "jpg" | "jpeg" | "jfif" | "gif")
}

// ---------------------------------------------------------------------------
// Deterministic randomness and colour helpers.

/// FNV-1a: stable across runs and platforms, unlike `std`'s `DefaultHasher`.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64: tiny, good enough to spread a hash into many parameters.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// HSV (hue wraps, all in 0..1) to RGB.
fn hsv(h: f32, s: f32, v: f32) -> [u8; 3] {
    let h = h.rem_euclid(1.0) * 6.0;
    let c = v * s;
    let x = c * (1.0 - ((h % 2.0) - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r, g, b].map(|ch| ((ch + m) * 255.0).round().clamp(0.0, 255.0) as u8)
}

fn lerp(a: [u8; 3], b: [u8; 3], t: f32) -> [u8; 3] {
    std::array::from_fn(|i| (f32::from(a[i]) + (f32::from(b[i]) - f32::from(a[i])) * t) as u8)
}

fn luma(p: [u8; 3]) -> f32 {
    (0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])) / 255.0
}

/// Clamps a duration, treating NaN as the minimum.
fn clamp_secs(s: f32, lo: f32, hi: f32) -> f32 {
    if s.is_nan() { lo } else { s.clamp(lo, hi) }
}

// ---------------------------------------------------------------------------
// Encoding helpers. Encoding into a Vec only fails on an empty image, which
// we replace by a 1x1 one, so the public functions can stay infallible.

fn non_empty(img: &DynamicImage) -> std::borrow::Cow<'_, DynamicImage> {
    if img.width() == 0 || img.height() == 0 {
        std::borrow::Cow::Owned(DynamicImage::new_rgba8(1, 1))
    } else {
        std::borrow::Cow::Borrowed(img)
    }
}

fn encode_png(img: &DynamicImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    non_empty(img)
        .write_to(&mut out, ImageFormat::Png)
        .expect("PNG encoding of a non-empty in-memory image");
    out.into_inner()
}

fn encode_jpeg(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    let rgb = non_empty(img).to_rgb8();
    JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&rgb)
        .expect("JPEG encoding of a non-empty in-memory image");
    out
}

// ---------------------------------------------------------------------------
// Pictures drawn from a prompt.

/// The prompt fixes the palette and gradient; prompt and seed together fix the
/// shapes, so a new seed gives a new picture in the same "style".
fn draw_rgba(prompt: &str, seed: u64, width: u32, height: u32) -> RgbaImage {
    let (w, h) = (
        width.clamp(1, MAX_DRAW_SIDE),
        height.clamp(1, MAX_DRAW_SIDE),
    );
    let ph = hash(prompt.as_bytes());
    let mut pal = Rng::new(ph);
    let hue = pal.unit();
    let c1 = hsv(hue, 0.6, 0.95);
    let c2 = hsv(hue + 0.3 + 0.4 * pal.unit(), 0.8, 0.45);
    let (dx, dy) = (pal.unit() * TAU).sin_cos();
    let (fw, fh) = (w as f32, h as f32);
    let mut img = RgbaImage::from_fn(w, h, |x, y| {
        let t = ((x as f32 / fw - 0.5) * dx + (y as f32 / fh - 0.5) * dy + 0.5).clamp(0.0, 1.0);
        let [r, g, b] = lerp(c1, c2, t);
        Rgba([r, g, b, 255])
    });

    let mut rng = Rng::new(ph ^ seed.wrapping_mul(0xd6e8_feb8_6659_fd93));
    let side = fw.min(fh);
    for _ in 0..3 + rng.below(5) {
        let col = hsv(
            hue + 0.5 * rng.unit(),
            0.5 + 0.5 * rng.unit(),
            0.6 + 0.4 * rng.unit(),
        );
        let (cx, cy) = (rng.unit() * fw, rng.unit() * fh);
        let r = side * (0.08 + 0.22 * rng.unit());
        let circle = rng.unit() < 0.5;
        paint_shape(&mut img, cx, cy, r, circle, col, 0.75);
    }
    img
}

/// Blends a circle or square (radius/half-side `r`) into `img`, touching only its bounding box.
fn paint_shape(img: &mut RgbaImage, cx: f32, cy: f32, r: f32, circle: bool, col: [u8; 3], a: f32) {
    let (w, h) = img.dimensions();
    let x0 = (cx - r).max(0.0) as u32;
    let y0 = (cy - r).max(0.0) as u32;
    let x1 = ((cx + r).ceil().max(0.0) as u32).min(w);
    let y1 = ((cy + r).ceil().max(0.0) as u32).min(h);
    for y in y0..y1 {
        for x in x0..x1 {
            let (ox, oy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            if !circle || ox * ox + oy * oy <= r * r {
                let p = img.get_pixel_mut(x, y);
                let [r2, g2, b2] = lerp([p[0], p[1], p[2]], col, a);
                *p = Rgba([r2, g2, b2, p[3]]);
            }
        }
    }
}

/// A picture "drawn from the prompt": deterministic for (prompt, seed), visibly
/// different for different prompts. PNG, width x height (each clamped to 1..=4096).
pub fn draw(prompt: &str, seed: u64, width: u32, height: u32) -> Vec<u8> {
    encode_png(&DynamicImage::ImageRgba8(draw_rgba(
        prompt, seed, width, height,
    )))
}

// ---------------------------------------------------------------------------
// Operations on uploaded images.

/// Decode any supported input image (by content sniffing, not extension).
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, MediaError> {
    let err = |e: &dyn std::fmt::Display| MediaError::Decode(e.to_string());
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(&e))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| err(&e))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(MediaError::Decode("image has no pixels".into()));
    }
    Ok(img)
}

/// Real resize to exactly (w*factor) x (h*factor), PNG. A factor of 0 counts
/// as 1. There is deliberately no output cap: callers pass small inputs and
/// factors (the API allows 2x/4x), and a cap would break the exact-size contract.
pub fn upscale(img: &DynamicImage, factor: u32) -> (Vec<u8>, ImageKind) {
    let f = factor.max(1);
    let img = non_empty(img);
    let out = img.resize_exact(img.width() * f, img.height() * f, FilterType::CatmullRom);
    (encode_png(&out), ImageKind::Png)
}

/// Per-channel median of the edge pixels: robust to a subject touching the edge.
fn border_colour(img: &RgbaImage) -> [u8; 3] {
    let (w, h) = img.dimensions();
    let mut edge: Vec<[u8; 3]> = img
        .enumerate_pixels()
        .filter(|(x, y, _)| *x == 0 || *y == 0 || *x + 1 == w || *y + 1 == h)
        .map(|(_, _, p)| [p[0], p[1], p[2]])
        .collect();
    std::array::from_fn(|c| {
        edge.sort_unstable_by_key(|p| p[c]);
        edge[edge.len() / 2][c]
    })
}

/// Foreground mask: true = keep. Pixels close to the border colour are background.
/// Guarantees both values for any image with at least two pixels.
fn foreground_mask(img: &RgbaImage) -> Vec<bool> {
    let bg = border_colour(img);
    let dist: Vec<u8> = img
        .pixels()
        .map(|p| (0..3).map(|c| p[c].abs_diff(bg[c])).max().unwrap_or(0))
        .collect();
    let (lo, hi) = dist
        .iter()
        .fold((u8::MAX, 0), |(lo, hi), &d| (lo.min(d), hi.max(d)));
    // A fixed threshold suits photos; when it separates nothing (low-contrast
    // input), split halfway between the extremes instead.
    let mut threshold = 40;
    if hi <= threshold || lo > threshold {
        threshold = lo + (hi - lo) / 2;
    }
    let mut mask: Vec<bool> = dist.iter().map(|&d| d > threshold).collect();
    if lo == hi {
        // Uniform distances (e.g. a flat image): keep a centred ellipse.
        let (w, h) = img.dimensions();
        let (rx, ry) = (w as f32 * 0.4, h as f32 * 0.4);
        for (i, m) in mask.iter_mut().enumerate() {
            let x = (i as u32 % w) as f32 + 0.5 - w as f32 / 2.0;
            let y = (i as u32 / w) as f32 + 0.5 - h as f32 / 2.0;
            *m = (x / rx).powi(2) + (y / ry).powi(2) <= 1.0;
        }
        // Tiny images may fall wholly inside or outside the ellipse.
        if mask.len() >= 2 {
            mask[0] = false;
            mask[(h / 2 * w + w / 2) as usize] = true;
        }
    }
    mask
}

/// PNG RGBA. Without `background`, pixels near the border colour become alpha 0
/// and the rest alpha 255 (both always occur, see `foreground_mask`). With
/// `background`, the foreground is composited over the background resized to
/// the input size, giving an opaque result.
pub fn remove_background(
    img: &DynamicImage,
    background: Option<&DynamicImage>,
) -> (Vec<u8>, ImageKind) {
    let mut rgba = non_empty(img).to_rgba8();
    let mask = foreground_mask(&rgba);
    let bg = background.map(|b| {
        non_empty(b)
            .resize_exact(rgba.width(), rgba.height(), FilterType::Triangle)
            .to_rgba8()
    });
    for ((x, y, p), keep) in rgba.enumerate_pixels_mut().zip(mask) {
        match (&bg, keep) {
            (_, true) => p[3] = 255,
            (Some(bg), false) => *p = Rgba([bg[(x, y)][0], bg[(x, y)][1], bg[(x, y)][2], 255]),
            (None, false) => *p = Rgba([0, 0, 0, 0]),
        }
    }
    (encode_png(&DynamicImage::ImageRgba8(rgba)), ImageKind::Png)
}

/// Generic "the AI changed it" edit (face editor, headshot, clothes changer,
/// face/head/body swap, image editor): a hue rotation and tint derived from
/// `seed` and `label`, plus a thin border in a `label`-derived colour, so the
/// output is visibly edited and differs per tool. Same dimensions as the input.
/// Fully opaque inputs (photos) come back as JPEG, like a real photo pipeline;
/// inputs with any transparent pixel come back as PNG so transparency survives.
pub fn restyle(img: &DynamicImage, seed: u64, label: &str) -> (Vec<u8>, ImageKind) {
    let img = non_empty(img);
    let mut rng = Rng::new(hash(label.as_bytes()) ^ seed.wrapping_mul(0xa076_1d64_78bd_642f));
    let (s, c) = ((0.15 + 0.7 * rng.unit()) * TAU).sin_cos();
    // Standard luminance-preserving hue-rotation matrix.
    let m = [
        [
            0.213 + c * 0.787 - s * 0.213,
            0.715 - c * 0.715 - s * 0.715,
            0.072 - c * 0.072 + s * 0.928,
        ],
        [
            0.213 - c * 0.213 + s * 0.143,
            0.715 + c * 0.285 + s * 0.140,
            0.072 - c * 0.072 - s * 0.283,
        ],
        [
            0.213 - c * 0.213 - s * 0.787,
            0.715 - c * 0.715 + s * 0.715,
            0.072 + c * 0.928 + s * 0.072,
        ],
    ];
    let tint = hsv(rng.unit(), 0.7, 1.0);
    let band = hsv(hash(label.as_bytes()) as f32 / u64::MAX as f32, 0.8, 0.9);

    let mut rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    let b = (w.min(h) / 24).max(1);
    for (x, y, p) in rgba.enumerate_pixels_mut() {
        let rgb = if x < b || y < b || x + b >= w || y + b >= h {
            band
        } else {
            let v = [p[0], p[1], p[2]].map(f32::from);
            let rot: [u8; 3] = std::array::from_fn(|i| {
                (m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2]).clamp(0.0, 255.0) as u8
            });
            lerp(rot, tint, 0.2)
        };
        *p = Rgba([rgb[0], rgb[1], rgb[2], p[3]]);
    }
    let transparent = rgba.pixels().any(|p| p[3] < 255);
    let out = DynamicImage::ImageRgba8(rgba);
    if transparent {
        (encode_png(&out), ImageKind::Png)
    } else {
        (encode_jpeg(&out), ImageKind::Jpeg)
    }
}

/// Grayscale in, sepia-toned colour out (luma mapped through a brown-to-cream
/// gradient), same size, PNG. Colour inputs are treated by their luma.
pub fn colorize(img: &DynamicImage) -> (Vec<u8>, ImageKind) {
    let img = non_empty(img);
    let (dark, mid, light) = ([40, 24, 12], [170, 110, 60], [255, 240, 205]);
    let mut rgba = img.to_rgba8();
    for p in rgba.pixels_mut() {
        let l = luma([p[0], p[1], p[2]]);
        let c = if l < 0.5 {
            lerp(dark, mid, l * 2.0)
        } else {
            lerp(mid, light, l * 2.0 - 1.0)
        };
        *p = Rgba([c[0], c[1], c[2], p[3]]);
    }
    let out = if img.color().has_alpha() {
        DynamicImage::ImageRgba8(rgba)
    } else {
        DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).to_rgb8())
    };
    (encode_png(&out), ImageKind::Png)
}

/// `count` square PNG "face" crops, cycling through centre, then the four
/// quadrants. Each is at least 16x16 (small crops are scaled up).
pub fn face_crops(img: &DynamicImage, count: usize) -> Vec<Vec<u8>> {
    let img = non_empty(img);
    let (w, h) = (img.width(), img.height());
    let side = (w.min(h) / 2).max(1);
    let spots = [
        ((w - side) / 2, (h - side) / 2),
        (0, 0),
        (w - side, 0),
        (0, h - side),
        (w - side, h - side),
    ];
    (0..count)
        .map(|i| {
            let (x, y) = spots[i % spots.len()];
            let mut crop = img.crop_imm(x, y, side, side);
            if side < 16 {
                crop = crop.resize_exact(16, 16, FilterType::Triangle);
            }
            encode_png(&crop)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Animation, audio, video.

/// Animated, endlessly looping GIF "drawn from the prompt": the `draw` picture
/// scrolls sideways while a seed-coloured dot orbits the centre. Sides are
/// clamped to 1..=512 and frames to 1..=60; 100 ms per frame.
pub fn gif(prompt: &str, seed: u64, width: u32, height: u32, frames: u32) -> Vec<u8> {
    let (w, h) = (width.clamp(1, MAX_GIF_SIDE), height.clamp(1, MAX_GIF_SIDE));
    let n = frames.clamp(1, MAX_GIF_FRAMES);
    let base = draw_rgba(prompt, seed, w, h);
    let dot = hsv(Rng::new(seed).unit(), 0.9, 1.0);
    let mut out = Vec::new();
    {
        // Speed 10 of 30: quick quantisation, still fine for flat synthetic art.
        let mut enc = GifEncoder::new_with_speed(&mut out, 10);
        enc.set_repeat(Repeat::Infinite).expect("GIF header to Vec");
        for i in 0..n {
            let shift = i * w / n;
            let mut img = RgbaImage::from_fn(w, h, |x, y| *base.get_pixel((x + shift) % w, y));
            let a = i as f32 / n as f32 * TAU;
            let (cx, cy) = (
                w as f32 * (0.5 + 0.25 * a.cos()),
                h as f32 * (0.5 + 0.25 * a.sin()),
            );
            paint_shape(
                &mut img,
                cx,
                cy,
                w.min(h) as f32 / 8.0 + 0.5,
                true,
                dot,
                1.0,
            );
            let delay = Delay::from_numer_denom_ms(100, 1);
            enc.encode_frame(Frame::from_parts(img, 0, 0, delay))
                .expect("GIF frame of clamped size to Vec");
        }
    } // dropping the encoder writes the GIF trailer
    out
}

/// A valid WAV (PCM 16-bit mono, 16 kHz): a pentatonic melody of 0.25 s notes
/// whose key and tune derive from `seed`. `seconds` is clamped to 0.2..=30.
pub fn wav(seconds: f32, seed: u64) -> Vec<u8> {
    const NOTE: usize = WAV_RATE as usize / 4;
    const SCALE: [f32; 5] = [0.0, 2.0, 4.0, 7.0, 9.0];
    let secs = clamp_secs(seconds, 0.2, 30.0);
    let total = (secs * WAV_RATE as f32).round() as usize;
    let mut rng = Rng::new(seed);
    let key = 220.0 * 2f32.powf(rng.below(12) as f32 / 12.0);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: WAV_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::with_capacity(44 + total * 2));
    let mut wr = hound::WavWriter::new(&mut out, spec).expect("WAV header to Vec");
    let mut freq = key;
    for i in 0..total {
        let pos = i % NOTE;
        if pos == 0 {
            let semis = SCALE[rng.below(5) as usize] + 12.0 * rng.below(2) as f32;
            freq = key * 2f32.powf(semis / 12.0);
        }
        // Short attack and release so note boundaries do not click.
        let env = (pos as f32 / 80.0)
            .min((NOTE - pos) as f32 / 320.0)
            .min(1.0);
        let phase = (i as f32 / WAV_RATE as f32 * freq).fract() * TAU;
        let v = phase.sin() * env * 0.4 * f32::from(i16::MAX);
        wr.write_sample(v as i16).expect("WAV sample to Vec");
    }
    wr.finalize().expect("WAV trailer to Vec");
    out.into_inner()
}

/// Round up to a multiple of 16 (the H.264 macroblock) within 16..=640.
fn video_side(v: u32) -> u32 {
    v.clamp(16, MAX_VIDEO_SIDE).div_ceil(16) * 16
}

/// One frame as full-range BT.601 4:2:0 planes (what less-avc's VUI declares):
/// a seed-coloured background whose hue drifts, with a square sliding across.
fn video_frame(w: u32, h: u32, seed: u64, i: u32, n: u32) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let (hue, sq_hue) = (rng.unit(), rng.unit());
    let t = i as f32 / n as f32;
    let side = w.min(h) / 3;
    let sx = (t * (w - side) as f32) as u32;
    let sy = (h - side) / 2;
    let colour = |x: u32, y: u32| {
        if (sx..sx + side).contains(&x) && (sy..sy + side).contains(&y) {
            hsv(sq_hue, 0.9, 1.0)
        } else {
            hsv(hue + 0.3 * t, 0.7, 0.4 + 0.5 * y as f32 / h as f32)
        }
    };
    let ycc = |p: [u8; 3]| {
        let [r, g, b] = p.map(f32::from);
        [
            0.299 * r + 0.587 * g + 0.114 * b,
            128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b,
            128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b,
        ]
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
    };
    let mut luma = Vec::with_capacity((w * h) as usize);
    for y in 0..h {
        luma.extend((0..w).map(|x| ycc(colour(x, y))[0]));
    }
    // Chroma is point-sampled at the top-left of each 2x2 block: the art is flat.
    let (mut cb, mut cr) = (Vec::new(), Vec::new());
    for y in (0..h).step_by(2) {
        for x in (0..w).step_by(2) {
            let [_, b, r] = ycc(colour(x, y));
            cb.push(b);
            cr.push(r);
        }
    }
    (luma, cb, cr)
}

fn mp4_inner(seconds: f32, width: u32, height: u32, seed: u64) -> Result<Vec<u8>, MediaError> {
    use less_avc::ycbcr_image::{DataPlane, Planes, YCbCrImage};
    let other = |e: &dyn std::fmt::Display| MediaError::Other(e.to_string());

    let secs = clamp_secs(seconds, 0.2, 10.0);
    let (w, h) = (video_side(width), video_side(height));
    let n = ((secs * VIDEO_FPS as f32).ceil() as u32).max(1);
    let total_ms = (secs * 1000.0).round() as u64;

    // Every frame is an I_PCM IDR picture, so each one is a sync sample.
    let mut nals = Vec::with_capacity(n as usize);
    let mut encoder = None;
    let mut params = None;
    for i in 0..n {
        let (y, cb, cr) = video_frame(w, h, seed, i, n);
        let plane = |data| DataPlane {
            data,
            stride: 0,
            bit_depth: less_avc::BitDepth::Depth8,
        };
        let frame = YCbCrImage {
            planes: Planes::YCbCr((
                DataPlane {
                    stride: w as usize,
                    ..plane(&y)
                },
                DataPlane {
                    stride: w as usize / 2,
                    ..plane(&cb)
                },
                DataPlane {
                    stride: w as usize / 2,
                    ..plane(&cr)
                },
            )),
            width: w,
            height: h,
        };
        let nal = match encoder.as_mut() {
            None => {
                let (init, enc) = less_avc::LessEncoder::new(&frame).map_err(|e| other(&e))?;
                encoder = Some(enc);
                params = Some((init.sps.to_nal_unit(), init.pps.to_nal_unit()));
                init.frame
            }
            Some(enc) => enc.encode(&frame).map_err(|e| other(&e))?,
        };
        nals.push(nal.to_nal_unit());
    }
    let (sps, pps) = params.ok_or_else(|| MediaError::Other("no frames".into()))?;

    let config = mp4::Mp4Config {
        major_brand: mp4::FourCC::from(*b"isom"),
        minor_version: 512,
        compatible_brands: [*b"isom", *b"iso2", *b"avc1", *b"mp41"]
            .map(mp4::FourCC::from)
            .into(),
        timescale: 1000,
    };
    let mut wr =
        mp4::Mp4Writer::write_start(Cursor::new(Vec::new()), &config).map_err(|e| other(&e))?;
    wr.add_track(&mp4::TrackConfig {
        track_type: mp4::TrackType::Video,
        timescale: 1000,
        language: "und".into(),
        media_conf: mp4::MediaConfig::AvcConfig(mp4::AvcConfig {
            width: w as u16,
            height: h as u16,
            seq_param_set: sps,
            pic_param_set: pps,
        }),
    })
    .map_err(|e| other(&e))?;
    let mut start = 0;
    for (i, nal) in nals.into_iter().enumerate() {
        // Spread the rounding so the durations add up to exactly `total_ms`.
        let end = (i as u64 + 1) * total_ms / u64::from(n);
        // avcC declares 4-byte NAL length prefixes.
        let mut bytes = Vec::with_capacity(nal.len() + 4);
        bytes.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&nal);
        let sample = mp4::Mp4Sample {
            start_time: start,
            duration: (end - start) as u32,
            rendering_offset: 0,
            is_sync: true,
            bytes: bytes.into(),
        };
        wr.write_sample(1, &sample).map_err(|e| other(&e))?;
        start = end;
    }
    wr.write_end().map_err(|e| other(&e))?;
    Ok(wr.into_writer().into_inner())
}

/// A small, genuinely valid MP4 (ftyp, mdat, moov with one avc1 track) of
/// `seconds` (clamped to 0.2..=10) at 4 fps. Sides are rounded up to multiples
/// of 16 within 16..=640. Frames are lossless I_PCM H.264 from less-avc.
pub fn mp4(seconds: f32, width: u32, height: u32, seed: u64) -> Vec<u8> {
    // Inputs are clamped to what both encoders accept, so failure is a bug.
    mp4_inner(seconds, width, height, seed).expect("MP4 synthesis of clamped parameters")
}

// ---------------------------------------------------------------------------
// Checks: "decodes as its type".

/// Decodes the image fully and returns its dimensions.
pub fn check_image(bytes: &[u8]) -> Result<(u32, u32), MediaError> {
    let img = decode(bytes)?;
    Ok((img.width(), img.height()))
}

/// Parses the WAV with hound, reads every sample, and returns its length in seconds.
pub fn check_wav(bytes: &[u8]) -> Result<f32, MediaError> {
    let err = |e: hound::Error| MediaError::Other(format!("invalid WAV: {e}"));
    let mut reader = hound::WavReader::new(Cursor::new(bytes)).map_err(err)?;
    let spec = reader.spec();
    if spec.sample_rate == 0 {
        return Err(MediaError::Other("invalid WAV: sample rate 0".into()));
    }
    let frames = reader.duration();
    match spec.sample_format {
        hound::SampleFormat::Int => reader.samples::<i32>().try_for_each(|s| s.map(drop)),
        hound::SampleFormat::Float => reader.samples::<f32>().try_for_each(|s| s.map(drop)),
    }
    .map_err(err)?;
    Ok(frames as f32 / spec.sample_rate as f32)
}

/// Parses the MP4 with `mp4::Mp4Reader`, requires a video track whose first
/// sample reads back, and returns that track's duration in seconds.
pub fn check_mp4(bytes: &[u8]) -> Result<f32, MediaError> {
    let err = |e: mp4::Error| MediaError::Other(format!("invalid MP4: {e}"));
    let mut reader =
        mp4::Mp4Reader::read_header(Cursor::new(bytes), bytes.len() as u64).map_err(err)?;
    let (id, secs) = reader
        .tracks()
        .values()
        .find(|t| matches!(t.track_type(), Ok(mp4::TrackType::Video)) && t.sample_count() > 0)
        .map(|t| (t.track_id(), t.duration().as_secs_f32()))
        .ok_or_else(|| MediaError::Other("invalid MP4: no video track with samples".into()))?;
    match reader.read_sample(id, 1).map_err(err)? {
        Some(s) if !s.bytes.is_empty() => Ok(secs),
        _ => Err(MediaError::Other(
            "invalid MP4: first video sample is empty".into(),
        )),
    }
}

/// Decodes every frame of the GIF and returns the frame count (at least 1).
pub fn check_gif(bytes: &[u8]) -> Result<u32, MediaError> {
    let err = |e: image::ImageError| MediaError::Decode(e.to_string());
    let frames = GifDecoder::new(Cursor::new(bytes))
        .map_err(err)?
        .into_frames()
        .collect_frames()
        .map_err(err)?;
    match frames.len() {
        0 => Err(MediaError::Decode("GIF has no frames".into())),
        n => Ok(n as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GenericImageView, Luma, RgbImage};

    fn sample_photo() -> DynamicImage {
        decode(&draw("a cat on a sofa", 1, 40, 30)).unwrap()
    }

    #[test]
    fn draw_is_deterministic_and_prompt_dependent() {
        let a = draw("sunset over the sea", 7, 48, 32);
        assert_eq!(a, draw("sunset over the sea", 7, 48, 32));
        assert_ne!(a, draw("a red bicycle", 7, 48, 32));
        assert_ne!(a, draw("sunset over the sea", 8, 48, 32));
        assert_eq!(check_image(&a).unwrap(), (48, 32));
        // "Visibly" different: mean absolute pixel difference is large.
        let (x, y) = (
            decode(&a).unwrap().to_rgb8(),
            decode(&draw("a red bicycle", 7, 48, 32)).unwrap().to_rgb8(),
        );
        let diff: u64 = x
            .as_raw()
            .iter()
            .zip(y.as_raw())
            .map(|(p, q)| u64::from(p.abs_diff(*q)))
            .sum();
        assert!(
            diff / x.as_raw().len() as u64 > 20,
            "mean diff {}",
            diff / x.as_raw().len() as u64
        );
        assert_eq!(check_image(&draw("x", 0, 0, 0)).unwrap(), (1, 1));
    }

    #[test]
    fn upscale_multiplies_dimensions() {
        let img = sample_photo();
        for f in [2, 4] {
            let (bytes, kind) = upscale(&img, f);
            assert_eq!(kind, ImageKind::Png);
            assert_eq!(check_image(&bytes).unwrap(), (40 * f, 30 * f));
        }
    }

    fn alphas(bytes: &[u8]) -> (bool, bool, bool) {
        let img = decode(bytes).unwrap();
        assert!(img.color().has_alpha());
        let a: Vec<u8> = img.to_rgba8().pixels().map(|p| p[3]).collect();
        (
            a.contains(&0),
            a.contains(&255),
            a.iter().all(|&v| v == 0 || v == 255),
        )
    }

    #[test]
    fn remove_background_has_transparent_and_opaque_pixels() {
        let (bytes, kind) = remove_background(&sample_photo(), None);
        assert_eq!(kind, ImageKind::Png);
        assert_eq!(alphas(&bytes), (true, true, true));
        // Uniform input: centred ellipse.
        let flat = DynamicImage::ImageRgb8(RgbImage::from_pixel(20, 20, image::Rgb([9, 9, 9])));
        let (bytes, _) = remove_background(&flat, None);
        assert_eq!(alphas(&bytes), (true, true, true));
        let rgba = decode(&bytes).unwrap().to_rgba8();
        assert_eq!((rgba[(0, 0)][3], rgba[(10, 10)][3]), (0, 255));
        // Low-contrast, tiny and checkerboard inputs still split.
        let faint = DynamicImage::ImageLuma8(image::GrayImage::from_fn(9, 9, |x, _| {
            Luma([100 + x as u8])
        }));
        assert_eq!(
            alphas(&remove_background(&faint, None).0),
            (true, true, true)
        );
        let tiny = DynamicImage::ImageRgb8(RgbImage::from_fn(2, 1, |x, _| {
            image::Rgb([x as u8 * 255; 3])
        }));
        assert_eq!(
            alphas(&remove_background(&tiny, None).0),
            (true, true, true)
        );
        let checker = DynamicImage::ImageLuma8(image::GrayImage::from_fn(8, 8, |x, y| {
            Luma([((x + y) % 2 * 255) as u8])
        }));
        assert_eq!(
            alphas(&remove_background(&checker, None).0),
            (true, true, true)
        );
    }

    #[test]
    fn remove_background_with_background_is_opaque() {
        let bg = decode(&draw("beach", 2, 10, 10)).unwrap();
        let (bytes, _) = remove_background(&sample_photo(), Some(&bg));
        let img = decode(&bytes).unwrap();
        assert_eq!(img.dimensions(), (40, 30));
        assert!(img.to_rgba8().pixels().all(|p| p[3] == 255));
    }

    #[test]
    fn restyle_changes_pixels_and_keeps_size() {
        let photo = sample_photo();
        let (bytes, kind) = restyle(&photo, 3, "face-editor");
        assert_eq!((kind, kind.ext()), (ImageKind::Jpeg, "jpg"));
        assert_eq!(check_image(&bytes).unwrap(), (40, 30));
        let (a, b) = (decode(&bytes).unwrap().to_rgb8(), photo.to_rgb8());
        let diff: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(p, q)| u64::from(p.abs_diff(*q)))
            .sum();
        assert!(
            diff / a.as_raw().len() as u64 > 10,
            "restyle barely changed the image"
        );
        assert_ne!(bytes, restyle(&photo, 3, "headshot").0);
        assert_ne!(bytes, restyle(&photo, 4, "face-editor").0);
        let mut with_alpha = photo.to_rgba8();
        with_alpha[(0, 0)][3] = 0;
        let with_alpha = DynamicImage::ImageRgba8(with_alpha);
        let (bytes, kind) = restyle(&with_alpha, 3, "image-editor");
        assert_eq!(kind, ImageKind::Png);
        let out = decode(&bytes).unwrap().to_rgba8();
        assert_ne!(out.as_raw(), with_alpha.to_rgba8().as_raw());
    }

    #[test]
    fn colorize_makes_gray_colourful() {
        let gray = DynamicImage::ImageLuma8(image::GrayImage::from_fn(16, 12, |x, y| {
            Luma([(x * 12 + y * 4) as u8])
        }));
        let (bytes, kind) = colorize(&gray);
        assert_eq!(kind, ImageKind::Png);
        let out = decode(&bytes).unwrap().to_rgb8();
        assert_eq!(out.dimensions(), (16, 12));
        assert!(out.pixels().any(|p| p[0] != p[2]));
    }

    #[test]
    fn face_crops_are_valid_and_large_enough() {
        let crops = face_crops(&sample_photo(), 6);
        assert_eq!(crops.len(), 6);
        for c in &crops {
            let (w, h) = check_image(c).unwrap();
            assert!(w >= 16 && h >= 16);
        }
        let tiny = DynamicImage::new_rgb8(5, 3);
        assert_eq!(check_image(&face_crops(&tiny, 1)[0]).unwrap(), (16, 16));
        assert!(face_crops(&tiny, 0).is_empty());
    }

    #[test]
    fn gif_decodes_with_all_frames() {
        let g = gif("dancing robot", 5, 24, 16, 5);
        assert_eq!(check_gif(&g).unwrap(), 5);
        assert_eq!(check_image(&g).unwrap(), (24, 16));
        assert_eq!(g, gif("dancing robot", 5, 24, 16, 5));
    }

    #[test]
    fn wav_has_requested_length() {
        let w = wav(1.5, 9);
        assert!((check_wav(&w).unwrap() - 1.5).abs() < 1e-3);
        assert_ne!(w, wav(1.5, 10));
        assert!((check_wav(&wav(0.0, 1)).unwrap() - 0.2).abs() < 1e-3);
        assert!((check_wav(&wav(f32::NAN, 1)).unwrap() - 0.2).abs() < 1e-3);
    }

    #[test]
    fn mp4_is_readable_with_h264_samples() {
        let bytes = mp4(1.3, 64, 40, 11);
        assert!((check_mp4(&bytes).unwrap() - 1.3).abs() < 1e-3);
        let mut r = mp4::Mp4Reader::read_header(Cursor::new(&bytes), bytes.len() as u64).unwrap();
        let t = r.tracks().get(&1).unwrap();
        assert_eq!((t.width(), t.height(), t.sample_count()), (64, 48, 6));
        assert_eq!(t.box_type().unwrap().to_string(), "avc1");
        assert_eq!(t.sequence_parameter_set().unwrap()[0] & 0x1f, 7);
        assert_eq!(t.picture_parameter_set().unwrap()[0] & 0x1f, 8);
        let s = r.read_sample(1, 6).unwrap().unwrap();
        let len = u32::from_be_bytes(s.bytes[..4].try_into().unwrap()) as usize;
        assert_eq!((len + 4, s.bytes[4] & 0x1f), (s.bytes.len(), 5)); // one IDR slice
        assert!((check_mp4(&mp4(99.0, 16, 16, 0)).unwrap() - 10.0).abs() < 1e-3);
    }

    #[test]
    fn corrupt_bytes_are_errors() {
        let junk = b"\x89PNG\r\n\x1a\nthis is not really a png";
        assert!(matches!(decode(junk), Err(MediaError::Decode(_))));
        assert!(matches!(check_image(b"hello"), Err(MediaError::Decode(_))));
        assert!(matches!(
            check_gif(b"GIF89a\x01"),
            Err(MediaError::Decode(_))
        ));
        let mut png = draw("p", 0, 8, 8);
        png.truncate(png.len() / 2);
        assert!(matches!(check_image(&png), Err(MediaError::Decode(_))));
        assert!(check_wav(b"RIFF....WAVE").is_err());
        assert!(check_mp4(b"\0\0\0\x08ftyp").is_err());
        let mut w = wav(0.5, 0);
        w.truncate(100);
        assert!(check_wav(&w).is_err());
    }

    #[test]
    fn can_decode_lists_supported_extensions() {
        assert!(
            ["png", "jpg", "jpeg", "jfif", "gif"]
                .iter()
                .all(|e| can_decode(e))
        );
        assert!(!can_decode("webp") && !can_decode("PNG") && !can_decode("mp4"));
    }
}
