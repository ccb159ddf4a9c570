//! A JPEG decoder whose pixels match libjpeg-turbo's default output exactly.
//!
//! Why: the model was trained on images decoded by Pillow, i.e. libjpeg-turbo with its defaults
//! (ISLOW integer IDCT, "fancy" triangle chroma upsampling with its alternating rounding bias,
//! table-driven YCbCr→RGB). `zune-jpeg` (behind `image`) rounds chroma upsampling differently,
//! which moves about a third of the pixels by one or two levels; this model turned that into
//! probability shifts of up to 0.02 on HAM10000 images, over the 0.01 parity budget. This module
//! ports the three pixel-producing stages of libjpeg-turbo (jidctint.c, jdsample.c, jdcolor.c)
//! onto a plain Huffman entropy decoder (baseline and progressive).
//!
//! It covers the JPEGs cameras and phones write: 8-bit, Huffman-coded, baseline or progressive,
//! grey or three-component YCbCr/RGB. Anything else (CMYK, 12-bit, arithmetic coding, lossless)
//! returns [`JpegError::Unsupported`], and [`crate::decode`] refuses the file with that reason:
//! there is no fallback to another decoder (its pixels would differ from training's).
//!
//! It runs on untrusted uploads, so it is fuzzed: `crates/inference/fuzz` (cargo-fuzz, libFuzzer)
//! with a committed corpus; see the README there for the runs and what they found.

use image::RgbImage;

/// Why the exact decoder could not produce pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JpegError {
    /// A legal JPEG variant this decoder does not implement (use another decoder).
    Unsupported(String),
    /// The data is not a well-formed JPEG stream.
    Corrupt(String),
    /// Decoding would need more memory than allowed.
    TooLarge(u64),
}

type Result<T> = std::result::Result<T, JpegError>;

fn corrupt<T>(why: &str) -> Result<T> {
    Err(JpegError::Corrupt(why.to_owned()))
}

/// Zigzag position → natural (row-major) position in an 8×8 block.
const NATURAL: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

// ---------------------------------------------------------------------------------------------
// Huffman tables and the bit reader

/// A canonical Huffman table with a 9-bit lookup for the common short codes.
#[derive(Clone)]
struct Huffman {
    /// `(length << 8) | value` for codes of ≤ 9 bits, indexed by the next 9 bits; 0 = longer code.
    lookup: Vec<u16>,
    maxcode: [i32; 18],
    valptr: [i32; 17],
    mincode: [i32; 17],
    values: Vec<u8>,
}

const LOOKUP_BITS: u32 = 9;

impl Huffman {
    fn new(counts: &[u8; 16], values: Vec<u8>) -> Result<Self> {
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total > 256 || total != values.len() {
            return corrupt("bad Huffman table size");
        }
        let mut maxcode = [-1i32; 18];
        let mut valptr = [0i32; 17];
        let mut mincode = [0i32; 17];
        let mut lookup = vec![0u16; 1 << LOOKUP_BITS];
        let (mut code, mut k) = (0i32, 0usize);
        for len in 1..=16usize {
            let n = usize::from(counts[len - 1]);
            // A code set that overflows its length is not a prefix code: refuse it before its
            // codes index the lookup table (found by the fuzzer: a slice out of range).
            if code as usize + n > (1usize << len) {
                return corrupt("bad Huffman table");
            }
            valptr[len] = k as i32;
            mincode[len] = code;
            for i in 0..n {
                let c = code + i as i32;
                if len as u32 <= LOOKUP_BITS {
                    let shift = LOOKUP_BITS - len as u32;
                    let first = (c as usize) << shift;
                    for slot in &mut lookup[first..first + (1 << shift)] {
                        *slot = ((len as u16) << 8) | u16::from(values[k + i]);
                    }
                }
            }
            code += n as i32;
            k += n;
            if n > 0 {
                maxcode[len] = code - 1;
            }
            // A code set that overflows its length is not a prefix code.
            if code > (1 << len) {
                return corrupt("bad Huffman table");
            }
            code <<= 1;
        }
        maxcode[17] = i32::MAX;
        Ok(Self {
            lookup,
            maxcode,
            valptr,
            mincode,
            values,
        })
    }
}

/// Reads entropy-coded bits, undoing 0xFF00 stuffing; at a marker (or the end of the data) it
/// supplies zero bits, as libjpeg does.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    bits: u32,
    at_marker: bool,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Self {
            data,
            pos,
            acc: 0,
            bits: 0,
            at_marker: false,
        }
    }

    #[inline]
    fn fill(&mut self) {
        while self.bits <= 56 {
            let mut byte = 0u8;
            if !self.at_marker {
                match self.data.get(self.pos) {
                    None => self.at_marker = true,
                    Some(&0xFF) => {
                        if self.data.get(self.pos + 1) == Some(&0x00) {
                            byte = 0xFF;
                            self.pos += 2;
                        } else {
                            self.at_marker = true;
                        }
                    }
                    Some(&b) => {
                        byte = b;
                        self.pos += 1;
                    }
                }
            }
            self.acc |= u64::from(byte) << (56 - self.bits);
            self.bits += 8;
        }
    }

    #[inline]
    fn bits(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        if self.bits < n {
            self.fill();
        }
        let v = (self.acc >> (64 - n)) as u32;
        self.acc <<= n;
        self.bits -= n;
        v
    }

    #[inline]
    fn bit(&mut self) -> bool {
        self.bits(1) == 1
    }

    /// JPEG's RECEIVE + EXTEND: `s` bits as a signed magnitude category.
    #[inline]
    fn signed(&mut self, s: u32) -> i32 {
        if s == 0 {
            return 0;
        }
        if s > 16 {
            return 0; // only reachable with a corrupt table; libjpeg also yields garbage here
        }
        let v = self.bits(s) as i32;
        if v < (1 << (s - 1)) {
            v - (1 << s) + 1
        } else {
            v
        }
    }

    #[inline]
    fn decode(&mut self, table: &Huffman) -> Result<u8> {
        if self.bits < 16 {
            self.fill();
        }
        let peek = (self.acc >> (64 - LOOKUP_BITS)) as usize;
        let entry = table.lookup[peek];
        if entry != 0 {
            let len = u32::from(entry >> 8);
            self.acc <<= len;
            self.bits -= len;
            return Ok(entry as u8);
        }
        for len in (LOOKUP_BITS + 1)..=16 {
            let code = (self.acc >> (64 - len)) as i32;
            if code <= table.maxcode[len as usize] {
                self.acc <<= len;
                self.bits -= len;
                let idx = table.valptr[len as usize] + code - table.mincode[len as usize];
                return table
                    .values
                    .get(idx as usize)
                    .copied()
                    .ok_or(JpegError::Corrupt("bad Huffman code".into()));
            }
        }
        corrupt("bad Huffman code")
    }

    /// At a restart interval: drop the buffered bits and consume the RSTn marker.
    fn restart(&mut self) -> Result<()> {
        self.acc = 0;
        self.bits = 0;
        self.at_marker = false;
        while self.data.get(self.pos) == Some(&0xFF) && self.data.get(self.pos + 1) == Some(&0xFF) {
            self.pos += 1;
        }
        match self.data.get(self.pos..self.pos + 2) {
            Some([0xFF, m]) if (0xD0..=0xD7).contains(m) => {
                self.pos += 2;
                Ok(())
            }
            _ => corrupt("missing restart marker"),
        }
    }

    /// Position of the marker that ends this scan's entropy-coded data.
    fn end_of_scan(&self) -> usize {
        let mut p = self.pos;
        while p + 1 < self.data.len() {
            if self.data[p] == 0xFF
                && self.data[p + 1] != 0x00
                && !(0xD0..=0xD7).contains(&self.data[p + 1])
            {
                return p;
            }
            p += 1;
        }
        self.data.len()
    }
}

// ---------------------------------------------------------------------------------------------
// Frame, scans and entropy decoding

#[derive(Clone)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// Blocks per row / column in storage (padded to whole MCUs).
    bw: usize,
    bh: usize,
    /// Real size of the component in samples (libjpeg's downsampled_width/height).
    dw: usize,
    dh: usize,
    /// Quantisation table in natural order, latched at the component's first scan.
    quant: Option<[u16; 64]>,
    coefs: Vec<i16>,
}

struct Frame {
    width: usize,
    height: usize,
    progressive: bool,
    comps: Vec<Component>,
    hmax: usize,
    vmax: usize,
    mcux: usize,
    mcuy: usize,
}

struct Scan {
    /// (component index, DC table, AC table)
    comps: Vec<(usize, usize, usize)>,
    ss: usize,
    se: usize,
    ah: u32,
    al: u32,
}

fn be16(data: &[u8], pos: usize) -> Result<usize> {
    match data.get(pos..pos + 2) {
        Some(b) => Ok(usize::from(u16::from_be_bytes([b[0], b[1]]))),
        None => corrupt("unexpected end of data"),
    }
}

fn parse_frame(seg: &[u8], progressive: bool, max_alloc: u64) -> Result<Frame> {
    if seg.len() < 6 {
        return corrupt("short SOF");
    }
    if seg[0] != 8 {
        return Err(JpegError::Unsupported(format!("{}-bit samples", seg[0])));
    }
    let height = be16(seg, 1)?;
    let width = be16(seg, 3)?;
    let n = usize::from(seg[5]);
    if height == 0 {
        return Err(JpegError::Unsupported(
            "height given by a DNL marker".into(),
        ));
    }
    if width == 0 || !(n == 1 || n == 3) || seg.len() < 6 + 3 * n {
        return Err(JpegError::Unsupported(format!("{n} components")));
    }
    let mut comps = Vec::with_capacity(n);
    for i in 0..n {
        let c = &seg[6 + 3 * i..9 + 3 * i];
        let (h, v) = (usize::from(c[1] >> 4), usize::from(c[1] & 15));
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) || c[2] > 3 {
            return corrupt("bad sampling factors or table");
        }
        comps.push(Component {
            id: c[0],
            h,
            v,
            tq: usize::from(c[2]),
            bw: 0,
            bh: 0,
            dw: 0,
            dh: 0,
            quant: None,
            coefs: Vec::new(),
        });
    }
    let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
    let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
    if comps.iter().any(|c| hmax % c.h != 0 || vmax % c.v != 0) {
        return Err(JpegError::Unsupported("fractional sampling factors".into()));
    }
    let mcux = width.div_ceil(8 * hmax);
    let mcuy = height.div_ceil(8 * vmax);
    // Coefficients (2 bytes/sample), component planes (1) and the RGB output (3).
    let mut bytes = 3 * (width * height) as u64;
    for c in &mut comps {
        c.bw = mcux * c.h;
        c.bh = mcuy * c.v;
        c.dw = (width * c.h).div_ceil(hmax);
        c.dh = (height * c.v).div_ceil(vmax);
        bytes += 3 * (c.bw * c.bh * 64) as u64;
    }
    if bytes > max_alloc {
        return Err(JpegError::TooLarge(bytes));
    }
    for c in &mut comps {
        c.coefs = vec![0; c.bw * c.bh * 64];
    }
    Ok(Frame {
        width,
        height,
        progressive,
        comps,
        hmax,
        vmax,
        mcux,
        mcuy,
    })
}

struct Decoder {
    frame: Option<Frame>,
    quant: [Option<[u16; 64]>; 4],
    dc: [Option<Huffman>; 4],
    ac: [Option<Huffman>; 4],
    restart_interval: usize,
    saw_jfif: bool,
    adobe_transform: Option<u8>,
}

fn parse_dqt(seg: &[u8], quant: &mut [Option<[u16; 64]>; 4]) -> Result<()> {
    let mut p = 0;
    while p < seg.len() {
        let (precision, id) = (seg[p] >> 4, usize::from(seg[p] & 15));
        p += 1;
        if id > 3 || precision > 1 {
            return corrupt("bad DQT");
        }
        let mut table = [0u16; 64];
        for (k, &natural) in NATURAL.iter().enumerate() {
            table[natural] = if precision == 0 {
                u16::from(
                    *seg.get(p + k)
                        .ok_or(JpegError::Corrupt("short DQT".into()))?,
                )
            } else {
                be16(seg, p + 2 * k)? as u16
            };
        }
        p += 64 * (usize::from(precision) + 1);
        quant[id] = Some(table);
    }
    Ok(())
}

fn parse_dht(
    seg: &[u8],
    dc: &mut [Option<Huffman>; 4],
    ac: &mut [Option<Huffman>; 4],
) -> Result<()> {
    let mut p = 0;
    while p < seg.len() {
        if p + 17 > seg.len() {
            return corrupt("short DHT");
        }
        let (class, id) = (seg[p] >> 4, usize::from(seg[p] & 15));
        if class > 1 || id > 3 {
            return corrupt("bad DHT");
        }
        let counts: [u8; 16] = seg[p + 1..p + 17].try_into().expect("16 bytes");
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        let values = seg
            .get(p + 17..p + 17 + total)
            .ok_or(JpegError::Corrupt("short DHT".into()))?
            .to_vec();
        let table = Huffman::new(&counts, values)?;
        if class == 0 {
            dc[id] = Some(table)
        } else {
            ac[id] = Some(table)
        }
        p += 17 + total;
    }
    Ok(())
}

impl Decoder {
    fn parse_sos(&self, seg: &[u8]) -> Result<Scan> {
        let frame = self
            .frame
            .as_ref()
            .ok_or(JpegError::Corrupt("SOS before SOF".into()))?;
        let n = usize::from(*seg.first().ok_or(JpegError::Corrupt("short SOS".into()))?);
        if n == 0 || n > 4 || seg.len() < 1 + 2 * n + 3 {
            return corrupt("bad SOS");
        }
        let mut comps = Vec::with_capacity(n);
        for i in 0..n {
            let (id, tables) = (seg[1 + 2 * i], seg[2 + 2 * i]);
            let ci = frame
                .comps
                .iter()
                .position(|c| c.id == id)
                .ok_or(JpegError::Corrupt("unknown component in SOS".into()))?;
            let (td, ta) = (usize::from(tables >> 4), usize::from(tables & 15));
            if td > 3 || ta > 3 {
                return corrupt("bad table in SOS");
            }
            comps.push((ci, td, ta));
        }
        let p = 1 + 2 * n;
        let (ss, se, ah, al) = (
            usize::from(seg[p]),
            usize::from(seg[p + 1]),
            u32::from(seg[p + 2] >> 4),
            u32::from(seg[p + 2] & 15),
        );
        if frame.progressive {
            let dc_scan = ss == 0;
            if (dc_scan && se != 0)
                || (!dc_scan && (se < ss || se > 63 || n != 1))
                || al > 13
                || ah > 13
            {
                return corrupt("bad progressive scan parameters");
            }
        } else if ss != 0 || se != 63 || ah != 0 || al != 0 {
            // Sequential files must code the whole block; libjpeg only warns, we let the fallback decide.
            return Err(JpegError::Unsupported(
                "sequential scan with spectral selection".into(),
            ));
        }
        if n > 1 {
            let blocks: usize = comps
                .iter()
                .map(|&(ci, _, _)| frame.comps[ci].h * frame.comps[ci].v)
                .sum();
            if blocks > 10 {
                return corrupt("too many blocks per MCU");
            }
        }
        Ok(Scan {
            comps,
            ss,
            se,
            ah,
            al,
        })
    }

    /// Decodes one scan starting at `pos`; returns the position after its entropy-coded data.
    fn decode_scan(&mut self, data: &[u8], pos: usize, scan: &Scan) -> Result<usize> {
        let frame = self.frame.as_mut().expect("checked in parse_sos");
        let progressive = frame.progressive;
        // Latch quantisation tables as libjpeg does: at the first scan of each component.
        for &(ci, _, _) in &scan.comps {
            let c = &mut frame.comps[ci];
            if c.quant.is_none() {
                c.quant = Some(
                    self.quant[c.tq]
                        .ok_or(JpegError::Corrupt("missing quantisation table".into()))?,
                );
            }
        }
        let need_dc = !progressive || (scan.ss == 0 && scan.ah == 0);
        let need_ac = !progressive || scan.ss > 0;
        let mut dc_tabs = Vec::new();
        let mut ac_tabs = Vec::new();
        for &(_, td, ta) in &scan.comps {
            dc_tabs.push(if need_dc {
                Some(
                    self.dc[td]
                        .clone()
                        .ok_or(JpegError::Corrupt("missing DC table".into()))?,
                )
            } else {
                None
            });
            ac_tabs.push(if need_ac {
                Some(
                    self.ac[ta]
                        .clone()
                        .ok_or(JpegError::Corrupt("missing AC table".into()))?,
                )
            } else {
                None
            });
        }
        let mut reader = BitReader::new(data, pos);
        let mut preds = vec![0i32; scan.comps.len()];
        let mut eobrun = 0u32;
        // Block coordinates of every MCU, in order.
        let single = scan.comps.len() == 1;
        let (mcus_x, mcus_y) = if single {
            let c = &frame.comps[scan.comps[0].0];
            (c.dw.div_ceil(8), c.dh.div_ceil(8))
        } else {
            (frame.mcux, frame.mcuy)
        };
        let total = mcus_x * mcus_y;
        for m in 0..total {
            if self.restart_interval > 0 && m > 0 && m % self.restart_interval == 0 {
                reader.restart()?;
                preds.iter_mut().for_each(|p| *p = 0);
                eobrun = 0;
            }
            let (mx, my) = (m % mcus_x, m / mcus_x);
            for (k, &(ci, _, _)) in scan.comps.iter().enumerate() {
                let c = &mut frame.comps[ci];
                let (bh, bv) = if single { (1, 1) } else { (c.h, c.v) };
                for by in 0..bv {
                    for bx in 0..bh {
                        let (x, y) = if single {
                            (mx, my)
                        } else {
                            (mx * c.h + bx, my * c.v + by)
                        };
                        let start = (y * c.bw + x) * 64;
                        let block: &mut [i16; 64] =
                            (&mut c.coefs[start..start + 64]).try_into().expect("64");
                        if !progressive {
                            decode_baseline(
                                &mut reader,
                                dc_tabs[k].as_ref().expect("dc"),
                                ac_tabs[k].as_ref().expect("ac"),
                                &mut preds[k],
                                block,
                            )?;
                        } else if scan.ss == 0 {
                            if scan.ah == 0 {
                                let t = reader.decode(dc_tabs[k].as_ref().expect("dc"))?;
                                preds[k] = preds[k].wrapping_add(reader.signed(u32::from(t)));
                                block[0] = (preds[k] << scan.al) as i16;
                            } else if reader.bit() {
                                block[0] |= 1 << scan.al;
                            }
                        } else if scan.ah == 0 {
                            decode_ac_first(
                                &mut reader,
                                ac_tabs[k].as_ref().expect("ac"),
                                scan,
                                &mut eobrun,
                                block,
                            )?;
                        } else {
                            decode_ac_refine(
                                &mut reader,
                                ac_tabs[k].as_ref().expect("ac"),
                                scan,
                                &mut eobrun,
                                block,
                            )?;
                        }
                    }
                }
            }
        }
        Ok(reader.end_of_scan())
    }
}

fn decode_baseline(
    r: &mut BitReader,
    dc: &Huffman,
    ac: &Huffman,
    pred: &mut i32,
    block: &mut [i16; 64],
) -> Result<()> {
    let t = r.decode(dc)?;
    *pred = pred.wrapping_add(r.signed(u32::from(t)));
    block[0] = *pred as i16;
    let mut k = 1;
    while k < 64 {
        let rs = r.decode(ac)?;
        let (run, size) = (usize::from(rs >> 4), u32::from(rs & 15));
        if size == 0 {
            if run == 15 {
                k += 16;
                continue;
            }
            break;
        }
        k += run;
        if k > 63 {
            return corrupt("coefficient index out of range");
        }
        block[NATURAL[k]] = r.signed(size) as i16;
        k += 1;
    }
    Ok(())
}

fn decode_ac_first(
    r: &mut BitReader,
    ac: &Huffman,
    scan: &Scan,
    eobrun: &mut u32,
    block: &mut [i16; 64],
) -> Result<()> {
    if *eobrun > 0 {
        *eobrun -= 1;
        return Ok(());
    }
    let mut k = scan.ss;
    while k <= scan.se {
        let rs = r.decode(ac)?;
        let (run, size) = (u32::from(rs >> 4), u32::from(rs & 15));
        if size != 0 {
            k += run as usize;
            if k > scan.se {
                return corrupt("coefficient index out of range");
            }
            block[NATURAL[k]] = (r.signed(size) << scan.al) as i16;
            k += 1;
        } else if run == 15 {
            k += 16;
        } else {
            *eobrun = (1 << run) + r.bits(run) - 1;
            break;
        }
    }
    Ok(())
}

/// Successive approximation of AC coefficients (libjpeg's decode_mcu_AC_refine).
fn decode_ac_refine(
    r: &mut BitReader,
    ac: &Huffman,
    scan: &Scan,
    eobrun: &mut u32,
    block: &mut [i16; 64],
) -> Result<()> {
    let p1: i16 = 1 << scan.al;
    let m1: i16 = (-1i16) << scan.al;
    let refine = |r: &mut BitReader, coef: &mut i16| {
        if r.bit() && (*coef & p1) == 0 {
            *coef = if *coef >= 0 {
                coef.wrapping_add(p1)
            } else {
                coef.wrapping_add(m1)
            };
        }
    };
    let mut k = scan.ss;
    if *eobrun == 0 {
        while k <= scan.se {
            let rs = r.decode(ac)?;
            let (mut run, size) = (i32::from(rs >> 4), rs & 15);
            let mut value = 0i16;
            if size != 0 {
                // size must be 1 here; libjpeg warns and carries on, so do we.
                value = if r.bit() { p1 } else { m1 };
            } else if run != 15 {
                *eobrun = (1 << run) + r.bits(run as u32);
                break;
            }
            while k <= scan.se {
                let coef = &mut block[NATURAL[k]];
                if *coef != 0 {
                    refine(r, coef);
                } else {
                    run -= 1;
                    if run < 0 {
                        break;
                    }
                }
                k += 1;
            }
            if value != 0 {
                if k > scan.se {
                    return corrupt("coefficient index out of range");
                }
                block[NATURAL[k]] = value;
            }
            k += 1;
        }
    }
    if *eobrun > 0 {
        while k <= scan.se {
            let coef = &mut block[NATURAL[k]];
            if *coef != 0 {
                refine(r, coef);
            }
            k += 1;
        }
        *eobrun -= 1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Pixels: ISLOW IDCT (jidctint.c), fancy upsampling (jdsample.c), colour conversion (jdcolor.c)

const CONST_BITS: i32 = 13;
const PASS1_BITS: i32 = 2;
const FIX_0_298631336: i32 = 2446;
const FIX_0_390180644: i32 = 3196;
const FIX_0_541196100: i32 = 4433;
const FIX_0_765366865: i32 = 6270;
const FIX_0_899976223: i32 = 7373;
const FIX_1_175875602: i32 = 9633;
const FIX_1_501321110: i32 = 12299;
const FIX_1_847759065: i32 = 15137;
const FIX_1_961570560: i32 = 16069;
const FIX_2_053119869: i32 = 16819;
const FIX_2_562915447: i32 = 20995;
const FIX_3_072711026: i32 = 25172;

#[cfg(test)]
fn descale(x: i32, n: i32) -> i32 {
    (x + (1 << (n - 1))) >> n
}

/// libjpeg's post-IDCT range limit: clamp(x + 128, 0, 255), with its wrap-around for values
/// outside ±512 that only corrupt data produces.
#[inline]
fn idct_limit(x: i32) -> u8 {
    let i = x & 1023;
    match i {
        0..=127 => (i + 128) as u8,
        128..=511 => 255,
        512..=895 => 0,
        _ => (i - 896) as u8,
    }
}

/// The even/odd butterfly of jidctint.c in plain arithmetic, as the reference for
/// [`wrapping_idct_1d`]; returns the eight outputs before descaling.
#[cfg(test)]
fn idct_1d(s: [i32; 8]) -> [i32; 8] {
    let (z2, z3) = (s[2], s[6]);
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 + z3 * -FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    let tmp0 = (s[0] + s[4]) << CONST_BITS;
    let tmp1 = (s[0] - s[4]) << CONST_BITS;
    let (tmp10, tmp13, tmp11, tmp12) = (tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2);

    let (mut t0, mut t1, mut t2, mut t3) = (s[7], s[5], s[3], s[1]);
    let (z1, z2, z3, z4) = (t0 + t3, t1 + t2, t0 + t2, t1 + t3);
    let z5 = (z3 + z4) * FIX_1_175875602;
    t0 *= FIX_0_298631336;
    t1 *= FIX_2_053119869;
    t2 *= FIX_3_072711026;
    t3 *= FIX_1_501321110;
    let z1 = z1 * -FIX_0_899976223;
    let z2 = z2 * -FIX_2_562915447;
    let z3 = z3 * -FIX_1_961570560 + z5;
    let z4 = z4 * -FIX_0_390180644 + z5;
    t0 += z1 + z3;
    t1 += z2 + z4;
    t2 += z2 + z3;
    t3 += z1 + z4;
    [
        tmp10 + t3,
        tmp11 + t2,
        tmp12 + t1,
        tmp13 + t0,
        tmp13 - t0,
        tmp12 - t1,
        tmp11 - t2,
        tmp10 - t3,
    ]
}

/// Dequantises and inverse-transforms one block into `out` (row stride `stride`), exactly as
/// libjpeg's jpeg_idct_islow. Arithmetic wraps like C's on corrupt input instead of panicking.
fn idct_block(coefs: &[i16; 64], quant: &[u16; 64], out: &mut [u8], stride: usize) {
    let mut ws = [0i32; 64];
    for col in 0..8 {
        let deq = |row: usize| {
            i32::from(coefs[row * 8 + col]).wrapping_mul(i32::from(quant[row * 8 + col]))
        };
        if (1..8).all(|row| coefs[row * 8 + col] == 0) {
            let dc = deq(0).wrapping_shl(PASS1_BITS as u32);
            for row in 0..8 {
                ws[row * 8 + col] = dc;
            }
            continue;
        }
        let v = wrapping_idct_1d([
            deq(0),
            deq(1),
            deq(2),
            deq(3),
            deq(4),
            deq(5),
            deq(6),
            deq(7),
        ]);
        for row in 0..8 {
            ws[row * 8 + col] = wrapping_descale(v[row], CONST_BITS - PASS1_BITS);
        }
    }
    for row in 0..8 {
        let w = &ws[row * 8..row * 8 + 8];
        let dst = &mut out[row * stride..row * stride + 8];
        if w[1..].iter().all(|&x| x == 0) {
            let v = idct_limit(wrapping_descale(w[0], PASS1_BITS + 3));
            dst.fill(v);
            continue;
        }
        let v = wrapping_idct_1d(w.try_into().expect("8"));
        for (d, x) in dst.iter_mut().zip(v) {
            *d = idct_limit(wrapping_descale(x, CONST_BITS + PASS1_BITS + 3));
        }
    }
}

#[inline]
fn wrapping_descale(x: i32, n: i32) -> i32 {
    x.wrapping_add(1 << (n - 1)) >> n
}

/// [`idct_1d`] in wrapping arithmetic: identical results whenever nothing overflows (any valid
/// stream), and no overflow panic in debug builds on hostile ones.
#[inline]
fn wrapping_idct_1d(s: [i32; 8]) -> [i32; 8] {
    use std::num::Wrapping as W;
    let s = s.map(W);
    let c = |x: i32| W(x);
    let (z2, z3) = (s[2], s[6]);
    let z1 = (z2 + z3) * c(FIX_0_541196100);
    let tmp2 = z1 + z3 * c(-FIX_1_847759065);
    let tmp3 = z1 + z2 * c(FIX_0_765366865);
    let tmp0 = (s[0] + s[4]) << CONST_BITS as usize;
    let tmp1 = (s[0] - s[4]) << CONST_BITS as usize;
    let (tmp10, tmp13, tmp11, tmp12) = (tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2);
    let (t0, t1, t2, t3) = (s[7], s[5], s[3], s[1]);
    let (z1, z2, z3, z4) = (t0 + t3, t1 + t2, t0 + t2, t1 + t3);
    let z5 = (z3 + z4) * c(FIX_1_175875602);
    let t0 = t0 * c(FIX_0_298631336);
    let t1 = t1 * c(FIX_2_053119869);
    let t2 = t2 * c(FIX_3_072711026);
    let t3 = t3 * c(FIX_1_501321110);
    let z1 = z1 * c(-FIX_0_899976223);
    let z2 = z2 * c(-FIX_2_562915447);
    let z3 = z3 * c(-FIX_1_961570560) + z5;
    let z4 = z4 * c(-FIX_0_390180644) + z5;
    let t0 = t0 + z1 + z3;
    let t1 = t1 + z2 + z4;
    let t2 = t2 + z2 + z3;
    let t3 = t3 + z1 + z4;
    [
        tmp10 + t3,
        tmp11 + t2,
        tmp12 + t1,
        tmp13 + t0,
        tmp13 - t0,
        tmp12 - t1,
        tmp11 - t2,
        tmp10 - t3,
    ]
    .map(|x| x.0)
}

/// A decoded component: `width × height` real samples in a buffer of row stride `stride`.
struct Plane {
    data: Vec<u8>,
    stride: usize,
    width: usize,
    height: usize,
}

impl Plane {
    #[inline]
    fn row(&self, y: usize) -> &[u8] {
        &self.data[y * self.stride..y * self.stride + self.width]
    }
}

fn component_plane(c: &Component) -> Plane {
    let stride = c.bw * 8;
    let mut data = vec![0u8; stride * c.bh * 8];
    let quant = c.quant.unwrap_or([0; 64]);
    for by in 0..c.bh {
        for bx in 0..c.bw {
            let start = (by * c.bw + bx) * 64;
            let block: &[i16; 64] = c.coefs[start..start + 64].try_into().expect("64");
            idct_block(block, &quant, &mut data[by * 8 * stride + bx * 8..], stride);
        }
    }
    Plane {
        data,
        stride,
        width: c.dw,
        height: c.dh,
    }
}

/// Upsamples a component to `hf × vf` times its size, as libjpeg-turbo's jdsample.c selects:
/// h2v1 / h1v2 / h2v2 "fancy" (triangle) filters, plain replication otherwise. Output rows have
/// stride `width * hf`; rows and columns past the real size are never read (edges replicate).
fn upsample(p: &Plane, hf: usize, vf: usize) -> Plane {
    let (w, h) = (p.width, p.height);
    let out_w = w * hf;
    let mut out = vec![0u8; out_w * h * vf];
    let clamp_row = |y: isize| y.clamp(0, h as isize - 1) as usize;
    match (hf, vf) {
        (1, 1) => {
            for y in 0..h {
                out[y * w..(y + 1) * w].copy_from_slice(p.row(y));
            }
        }
        (2, 1) if w > 2 => {
            for y in 0..h {
                h2v1_fancy(p.row(y), &mut out[y * out_w..(y + 1) * out_w]);
            }
        }
        (1, 2) => {
            for y in 0..h {
                for v in 0..2 {
                    let (near, far, bias) = if v == 0 {
                        (p.row(y), p.row(clamp_row(y as isize - 1)), 1u16)
                    } else {
                        (p.row(y), p.row(clamp_row(y as isize + 1)), 2u16)
                    };
                    let dst = &mut out[(2 * y + v) * out_w..(2 * y + v + 1) * out_w];
                    for ((d, &n), &f) in dst.iter_mut().zip(near).zip(far) {
                        *d = ((u16::from(n) * 3 + u16::from(f) + bias) >> 2) as u8;
                    }
                }
            }
        }
        (2, 2) if w > 2 => {
            for y in 0..h {
                for v in 0..2 {
                    let far = if v == 0 {
                        clamp_row(y as isize - 1)
                    } else {
                        clamp_row(y as isize + 1)
                    };
                    let dst = &mut out[(2 * y + v) * out_w..(2 * y + v + 1) * out_w];
                    h2v2_fancy(p.row(y), p.row(far), dst);
                }
            }
        }
        _ => {
            for y in 0..h {
                let src = p.row(y);
                for v in 0..vf {
                    let dst = &mut out[(y * vf + v) * out_w..(y * vf + v + 1) * out_w];
                    for (x, &s) in src.iter().enumerate() {
                        dst[x * hf..(x + 1) * hf].fill(s);
                    }
                }
            }
        }
    }
    Plane {
        data: out,
        stride: out_w,
        width: out_w,
        height: h * vf,
    }
}

fn h2v1_fancy(src: &[u8], dst: &mut [u8]) {
    let w = src.len();
    let s = |i: usize| u16::from(src[i]);
    dst[0] = src[0];
    dst[1] = ((s(0) * 3 + s(1) + 2) >> 2) as u8;
    for i in 1..w - 1 {
        let v = s(i) * 3;
        dst[2 * i] = ((v + s(i - 1) + 1) >> 2) as u8;
        dst[2 * i + 1] = ((v + s(i + 1) + 2) >> 2) as u8;
    }
    dst[2 * w - 2] = ((s(w - 1) * 3 + s(w - 2) + 1) >> 2) as u8;
    dst[2 * w - 1] = src[w - 1];
}

fn h2v2_fancy(near: &[u8], far: &[u8], dst: &mut [u8]) {
    let w = near.len();
    let col = |i: usize| u32::from(near[i]) * 3 + u32::from(far[i]);
    let mut this = col(0);
    let mut next = col(1);
    dst[0] = ((this * 4 + 8) >> 4) as u8;
    dst[1] = ((this * 3 + next + 7) >> 4) as u8;
    let mut last = this;
    this = next;
    for i in 1..w - 1 {
        next = col(i + 1);
        dst[2 * i] = ((this * 3 + last + 8) >> 4) as u8;
        dst[2 * i + 1] = ((this * 3 + next + 7) >> 4) as u8;
        last = this;
        this = next;
    }
    dst[2 * w - 2] = ((this * 3 + last + 8) >> 4) as u8;
    dst[2 * w - 1] = ((this * 4 + 7) >> 4) as u8;
}

/// libjpeg's YCbCr→RGB tables (jdcolor.c build_ycc_rgb_table, SCALEBITS = 16).
struct YccTables {
    cr_r: [i32; 256],
    cb_b: [i32; 256],
    cr_g: [i32; 256],
    cb_g: [i32; 256],
}

impl YccTables {
    fn new() -> Self {
        const SCALEBITS: i32 = 16;
        const ONE_HALF: i32 = 1 << (SCALEBITS - 1);
        let fix = |x: f64| (x * f64::from(1 << SCALEBITS) + 0.5) as i32;
        let mut t = Self {
            cr_r: [0; 256],
            cb_b: [0; 256],
            cr_g: [0; 256],
            cb_g: [0; 256],
        };
        for i in 0..256 {
            let x = i as i32 - 128;
            t.cr_r[i] = (fix(1.40200) * x + ONE_HALF) >> SCALEBITS;
            t.cb_b[i] = (fix(1.77200) * x + ONE_HALF) >> SCALEBITS;
            t.cr_g[i] = -fix(0.71414) * x;
            t.cb_g[i] = -fix(0.34414) * x + ONE_HALF;
        }
        t
    }
}

#[inline]
fn limit(x: i32) -> u8 {
    x.clamp(0, 255) as u8
}

// ---------------------------------------------------------------------------------------------
// Driver

/// Decodes a JPEG to RGB8 exactly as libjpeg-turbo (and so Pillow) would, or says why it cannot.
/// `max_alloc` bounds the decoder's working memory in bytes. Large images run the per-sample
/// stages on up to 4 threads (components side by side, then bands of rows); the entropy decoding
/// stays on one. Every sample is computed exactly as on one thread.
pub fn decode_rgb(data: &[u8], max_alloc: u64) -> Result<RgbImage> {
    decode_rgb_on(data, max_alloc, crate::bands::max_threads())
}

/// [`decode_rgb`] on at most `threads` threads.
fn decode_rgb_on(data: &[u8], max_alloc: u64, threads: usize) -> Result<RgbImage> {
    if data.get(..2) != Some(&[0xFF, 0xD8]) {
        return corrupt("no SOI marker");
    }
    let mut d = Decoder {
        frame: None,
        quant: [None; 4],
        dc: [None, None, None, None],
        ac: [None, None, None, None],
        restart_interval: 0,
        saw_jfif: false,
        adobe_transform: None,
    };
    let mut pos = 2;
    loop {
        // Find the next marker, skipping fill bytes (and, like libjpeg, stray garbage).
        while pos < data.len() && data[pos] != 0xFF {
            pos += 1;
        }
        while pos < data.len() && data[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = data.get(pos) else {
            return corrupt("no EOI marker");
        };
        pos += 1;
        match marker {
            0xD9 => break,
            0xD0..=0xD7 | 0x01 => continue,
            _ => {}
        }
        let len = be16(data, pos)?;
        if len < 2 {
            return corrupt("bad segment length");
        }
        let seg = data
            .get(pos + 2..pos + len)
            .ok_or(JpegError::Corrupt("segment past end of data".into()))?;
        pos += len;
        match marker {
            0xC0..=0xC2 => {
                if d.frame.is_some() {
                    return corrupt("two frames");
                }
                d.frame = Some(parse_frame(seg, marker == 0xC2, max_alloc)?);
            }
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(JpegError::Unsupported(format!(
                    "SOF{} coding",
                    marker - 0xC0
                )));
            }
            0xC4 => parse_dht(seg, &mut d.dc, &mut d.ac)?,
            0xCC => return Err(JpegError::Unsupported("arithmetic coding".into())),
            0xDB => parse_dqt(seg, &mut d.quant)?,
            0xDD => d.restart_interval = be16(seg, 0)?,
            0xDA => {
                let scan = d.parse_sos(seg)?;
                pos = d.decode_scan(data, pos, &scan)?;
            }
            0xE0 if seg.starts_with(b"JFIF\0") => d.saw_jfif = true,
            0xEE if seg.len() >= 12 && seg.starts_with(b"Adobe") => {
                d.adobe_transform = Some(seg[11])
            }
            0xDC => return Err(JpegError::Unsupported("DNL marker".into())),
            _ => {}
        }
    }
    let frame = d
        .frame
        .take()
        .ok_or(JpegError::Corrupt("no frame".into()))?;
    if frame.comps.iter().any(|c| c.quant.is_none()) {
        return corrupt("a component has no scan");
    }
    let (w, h) = (frame.width, frame.height);
    // The sample stages (IDCT, upsampling, colour conversion) of a large photo run on threads.
    let threads = crate::bands::threads_for(w * h, threads);
    let full_size = |c: &Component| {
        let plane = component_plane(c);
        let (hf, vf) = (frame.hmax / c.h, frame.vmax / c.v);
        if (hf, vf) == (1, 1) {
            // Already full size: its rows are read in place (no copy).
            plane
        } else {
            upsample(&plane, hf, vf)
        }
    };
    let planes: Vec<Plane> = if threads > 1 && frame.comps.len() > 1 {
        std::thread::scope(|scope| {
            let handles: Vec<_> = frame
                .comps
                .iter()
                .map(|c| scope.spawn(move || full_size(c)))
                .collect();
            handles
                .into_iter()
                .map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    } else {
        frame.comps.iter().map(full_size).collect()
    };
    let mut rgb = vec![0u8; w * h * 3];
    // libjpeg's default_decompress_parms: JFIF → YCbCr; Adobe transform 0 → RGB;
    // otherwise component ids 'R','G','B' → RGB; anything else → YCbCr.
    let ids: Vec<u8> = frame.comps.iter().map(|c| c.id).collect();
    let is_rgb = !d.saw_jfif
        && match d.adobe_transform {
            Some(t) => t == 0,
            None => ids == [b'R', b'G', b'B'],
        };
    let tables = YccTables::new();
    // Rows `y0..` of the image into `band` (whole rows of RGB).
    let convert = |y0: usize, band: &mut [u8]| {
        for (dy, dst) in band.chunks_exact_mut(w * 3).enumerate() {
            let y = y0 + dy;
            if planes.len() == 1 {
                let src = &planes[0].row(y)[..w];
                for (px, &v) in dst.chunks_exact_mut(3).zip(src) {
                    px.fill(v);
                }
                continue;
            }
            let (p0, p1, p2) = (
                &planes[0].row(y)[..w],
                &planes[1].row(y)[..w],
                &planes[2].row(y)[..w],
            );
            for (x, px) in dst.chunks_exact_mut(3).enumerate() {
                if is_rgb {
                    px.copy_from_slice(&[p0[x], p1[x], p2[x]]);
                } else {
                    let (yy, cb, cr) = (i32::from(p0[x]), usize::from(p1[x]), usize::from(p2[x]));
                    px[0] = limit(yy + tables.cr_r[cr]);
                    px[1] = limit(yy + ((tables.cb_g[cb] + tables.cr_g[cr]) >> 16));
                    px[2] = limit(yy + tables.cb_b[cb]);
                }
            }
        }
    };
    crate::bands::in_bands(&mut rgb, w * 3, threads, convert);
    RgbImage::from_raw(w as u32, h as u32, rgb).ok_or(JpegError::Corrupt("buffer size".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_of(image: image::DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&image)
            .unwrap();
        out
    }

    /// A large photo's sample stages on several threads give exactly the one-thread pixels:
    /// colour (with chroma subsampling) and grey, sizes that do not split evenly.
    #[test]
    fn a_large_photo_decodes_to_the_same_pixels_on_one_thread_and_on_four() {
        let mut state = 0x2545_F491u32;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let colour = image::RgbImage::from_fn(2011, 1503, |x, y| {
            let n = noise();
            image::Rgb([
                (x / 8) as u8 ^ n as u8,
                (y / 4) as u8,
                ((x + y) / 16) as u8 ^ (n >> 8) as u8,
            ])
        });
        let grey =
            image::GrayImage::from_fn(1601, 1301, |x, y| image::Luma([((x * y) / 64) as u8]));
        for jpeg in [
            jpeg_of(image::DynamicImage::ImageRgb8(colour)),
            jpeg_of(image::DynamicImage::ImageLuma8(grey)),
        ] {
            let one = decode_rgb_on(&jpeg, u64::MAX, 1).unwrap();
            assert!(one.width() as usize * one.height() as usize >= crate::bands::PARALLEL_PIXELS);
            let four = decode_rgb_on(&jpeg, u64::MAX, 4).unwrap();
            assert!(one == four, "the threaded decode differs");
        }
    }

    /// The straightforward, overflow-checked transform agrees with the wrapping one used for
    /// decoding on ordinary inputs.
    #[test]
    fn wrapping_and_plain_idct_agree_on_ordinary_values() {
        let mut seed = 12345u32;
        for _ in 0..1000 {
            let s: [i32; 8] = std::array::from_fn(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 16) as i32 % 2048 - 1024
            });
            assert_eq!(idct_1d(s), wrapping_idct_1d(s));
        }
    }

    #[test]
    fn a_dc_only_block_becomes_a_flat_block() {
        let mut coefs = [0i16; 64];
        coefs[0] = 10; // ×quant 8 = 80 → 80 / 8 = +10 around mid-grey
        let quant = [8u16; 64];
        let mut out = [0u8; 64];
        idct_block(&coefs, &quant, &mut out, 8);
        assert!(out.iter().all(|&v| v == 138), "{out:?}");
        assert_eq!(descale(80 << 2, 5), 10);
    }

    #[test]
    fn idct_range_limit_clamps_like_libjpeg() {
        assert_eq!(idct_limit(-128), 0);
        assert_eq!(idct_limit(-129), 0);
        assert_eq!(idct_limit(0), 128);
        assert_eq!(idct_limit(127), 255);
        assert_eq!(idct_limit(400), 255);
        assert_eq!(idct_limit(-400), 0);
    }

    #[test]
    fn fancy_upsampling_uses_libjpegs_alternating_rounding() {
        let mut dst = [0u8; 8];
        h2v1_fancy(&[0, 1, 2, 3], &mut dst);
        // 3/4·near + 1/4·far with biases 1 and 2: (0·3+1+2)>>2 = 0, (3+0+1)>>2 = 1, (3+2+2)>>2 = 1 ...
        assert_eq!(dst, [0, 0, 1, 1, 2, 2, 3, 3]);
        let mut dst = [0u8; 6];
        h2v2_fancy(&[10, 20, 30], &[10, 20, 30], &mut dst);
        assert_eq!(dst, [10, 12, 18, 22, 28, 30]);
    }

    #[test]
    fn ycc_tables_match_libjpegs_constants() {
        let t = YccTables::new();
        assert_eq!(t.cr_r[255], 178); // round(1.402 × 127)
        assert_eq!(t.cb_b[0], -227); // round(1.772 × −128)
        assert_eq!(t.cr_g[129], -46802);
        assert_eq!(t.cb_g[128], 1 << 15);
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        assert!(decode_rgb(b"\xFF\xD8\xFF\xDB\x00\x43\x00", 1 << 30).is_err());
        assert!(decode_rgb(b"not a jpeg", 1 << 30).is_err());
        assert!(
            decode_rgb(
                b"\xFF\xD8\xFF\xC0\x00\x0B\x08\xFF\xFF\xFF\xFF\x01\x01\x11\x00",
                1 << 20
            )
            .is_err()
        );
    }
}
