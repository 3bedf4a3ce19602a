//! Kafka's record-batch compression codecs, for readers that decode records themselves (the
//! executor's direct fetches, the control plane's topic tail) and for the broker's log cleaner,
//! which compresses a cleaned batch again in its own codec: gzip (1), snappy (2, raw or in the
//! xerial framing of the Java client), lz4 (3, the LZ4 frame format) and zstd (4), with a bound on
//! what one batch may decompress to, so a small hostile batch cannot exhaust memory.
//!
//! The codecs are the crates DataFusion's Arrow and Parquet already build (nothing new to
//! compile for the executor); `kafka-protocol`'s own codec features would link other ones.

use std::io::Read as _;

use anyhow::{Context as _, bail};

/// The most bytes one record batch may decompress to through [`decompress`].
pub const MAX_DECOMPRESSED: usize = 256 * 1024 * 1024;

/// A compressed batch's records (the bytes after its 61-byte header) in the codec of its
/// attributes' low 3 bits: gzip (1), snappy (2, raw or in the xerial framing of the Java
/// client), lz4 (3, the LZ4 frame format) or zstd (4); at most [`MAX_DECOMPRESSED`] bytes
/// ([`decompress_at_most`] with that bound).
pub fn decompress(codec: i16, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    decompress_at_most(codec, data, MAX_DECOMPRESSED)
}

/// [`decompress`] with the caller's bound: an error, not an allocation, when the records
/// would be over `max` bytes. A reader that needs less than a whole batch's worth (a
/// diagnostic tail) passes a small `max`.
pub fn decompress_at_most(codec: i16, data: &[u8], max: usize) -> anyhow::Result<Vec<u8>> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    match codec {
        1 => flate2::read::GzDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out)
            .context("gzip")?,
        2 => return snappy(data, max),
        3 => lz4_flex::frame::FrameDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out)
            .context("lz4")?,
        4 => zstd::stream::read::Decoder::new(data)
            .context("zstd")?
            .take(limit)
            .read_to_end(&mut out)
            .context("zstd")?,
        other => bail!("unknown compression codec {other}"),
    };
    if out.len() > max {
        bail!("it decompresses to over {max} bytes");
    }
    Ok(out)
}

/// `data` (a batch's records) compressed in `codec` as the Java client writes it: gzip (1),
/// snappy (2) in the xerial framing, lz4 (3) as an LZ4 frame of independent 64 KiB blocks, zstd
/// (4). What [`decompress`] and every Kafka client read.
pub fn compress(codec: i16, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write as _;
    Ok(match codec {
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).context("gzip")?;
            e.finish().context("gzip")?
        }
        2 => {
            // The xerial header (magic, version 1, compatible version 1), then 32 KiB blocks.
            let mut out = b"\x82SNAPPY\x00".to_vec();
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for block in data.chunks(32 * 1024) {
                let compressed = encoder.compress_vec(block).context("snappy")?;
                out.extend_from_slice(&u32::try_from(compressed.len())?.to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            out
        }
        3 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(data).context("lz4")?;
            e.finish().context("lz4")?
        }
        4 => zstd::stream::encode_all(data, 3).context("zstd")?,
        other => bail!("unknown compression codec {other}"),
    })
}

fn snappy(data: &[u8], max: usize) -> anyhow::Result<Vec<u8>> {
    const XERIAL: &[u8] = b"\x82SNAPPY\x00";
    let raw = |block: &[u8], out: &mut Vec<u8>| -> anyhow::Result<()> {
        let len = snap::raw::decompress_len(block).context("snappy")?;
        if out.len().saturating_add(len) > max {
            bail!("it decompresses to over {max} bytes");
        }
        out.extend_from_slice(
            &snap::raw::Decoder::new()
                .decompress_vec(block)
                .context("snappy")?,
        );
        Ok(())
    };
    let mut out = Vec::new();
    if !data.starts_with(XERIAL) {
        raw(data, &mut out)?;
        return Ok(out);
    }
    // The magic, a version and a compatible version, then blocks of (u32 length, raw snappy).
    let mut rest = data.get(16..).context("a short xerial snappy header")?;
    while !rest.is_empty() {
        let (len, after) = rest
            .split_first_chunk::<4>()
            .context("a short xerial snappy block")?;
        let len = usize::try_from(u32::from_be_bytes(*len))?;
        let block = after.get(..len).context("a short xerial snappy block")?;
        raw(block, &mut out)?;
        rest = &after[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::io::Write as _;

    use super::*;

    fn compress(codec: i16, body: &[u8]) -> Vec<u8> {
        match codec {
            1 => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(body).unwrap();
                e.finish().unwrap()
            }
            2 => snap::raw::Encoder::new().compress_vec(body).unwrap(),
            3 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(body).unwrap();
                e.finish().unwrap()
            }
            4 => zstd::stream::encode_all(body, 3).unwrap(),
            _ => body.to_vec(),
        }
    }

    /// `body` in the Java client's xerial framing of snappy (a header, then (length, block)
    /// pairs), as two blocks.
    fn xerial_halves(body: &[u8]) -> Vec<u8> {
        let mut framed = b"\x82SNAPPY\x00".to_vec();
        framed.extend_from_slice(&1i32.to_be_bytes());
        framed.extend_from_slice(&1i32.to_be_bytes());
        for half in body.chunks(body.len() / 2) {
            let block = compress(2, half);
            framed.extend_from_slice(&u32::try_from(block.len()).unwrap().to_be_bytes());
            framed.extend_from_slice(&block);
        }
        framed
    }

    #[test]
    fn every_codec_round_trips() {
        let body: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in 1..=4 {
            assert_eq!(
                decompress(codec, &compress(codec, &body)).unwrap(),
                body,
                "codec {codec}"
            );
        }
        // The Java client's xerial framing of snappy.
        let framed = xerial_halves(&body);
        assert_eq!(decompress(2, &framed).unwrap(), body);
    }

    #[test]
    fn the_public_compress_round_trips_every_codec_and_refuses_unknown_ones() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        for codec in 1..=4 {
            let compressed = super::compress(codec, &body).unwrap();
            assert!(compressed.len() < body.len() / 4, "codec {codec}");
            assert_eq!(
                decompress(codec, &compressed).unwrap(),
                body,
                "codec {codec}"
            );
        }
        assert!(
            super::compress(2, &body)
                .unwrap()
                .starts_with(b"\x82SNAPPY\x00")
        );
        assert!(super::compress(5, &body).is_err());
    }

    #[test]
    fn the_callers_bound_holds_for_every_codec() {
        let body: Vec<u8> = (0..65_536u32).map(|i| (i % 13) as u8).collect();
        for codec in 1..=4 {
            let compressed = compress(codec, &body);
            assert_eq!(
                decompress_at_most(codec, &compressed, body.len()).unwrap(),
                body,
                "codec {codec}"
            );
            let error = decompress_at_most(codec, &compressed, body.len() - 1).unwrap_err();
            assert!(
                format!("{error:#}").contains("decompresses to over 65535 bytes"),
                "codec {codec}: {error:#}"
            );
        }
        // The xerial framing: the bound counts across its blocks.
        let framed = xerial_halves(&body);
        assert_eq!(decompress_at_most(2, &framed, body.len()).unwrap(), body);
        assert!(decompress_at_most(2, &framed, body.len() - 1).is_err());
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic_or_a_bomb() {
        let error = decompress(6, b"x").unwrap_err();
        assert!(format!("{error:#}").contains("codec 6"), "{error:#}");
        for codec in 1..=4 {
            assert!(
                decompress(codec, b"not compressed at all").is_err(),
                "codec {codec}"
            );
            let good = compress(codec, &[7u8; 4096]);
            for cut in [1, good.len() / 2, good.len() - 1] {
                // Truncated input: an error, or (a frame cut in its end mark) no more than was
                // compressed; never a panic.
                if let Ok(out) = decompress(codec, &good[..cut]) {
                    assert!(out.len() <= 4096, "codec {codec} cut at {cut}");
                }
            }
        }
        let short_xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x01\x00";
        assert!(decompress(2, short_xerial).is_err());
        // A zstd bomb: 300 MiB of zeros in a few KiB stops at the bound.
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 19).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..300 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        let error = decompress(4, &bomb).unwrap_err();
        assert!(
            format!("{error:#}").contains("decompresses to over"),
            "{error:#}"
        );
    }
}
