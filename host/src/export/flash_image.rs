//! Flash images of the model blob and the test frames at a board's addresses: Intel HEX for
//! probes and vendor tools, UF2 for drag-and-drop bootloaders (the Pico's).

use anyhow::{Context, Result, bail};

/// UF2 image of `data` at `addr`: 512-byte blocks carrying 256 bytes each.
pub fn uf2_image(data: &[u8], addr: u32, family: u32) -> Result<Vec<u8>> {
    if !addr.is_multiple_of(256) {
        bail!("UF2 address {addr:#010x} is not 256-byte aligned");
    }
    uf2::bin_to_uf2(&data.to_vec(), family, addr).context("building the UF2 image")
}

/// Intel HEX of `data` at `addr` (extended linear address records, 16-byte data records).
pub fn intel_hex(data: &[u8], addr: u32) -> String {
    let mut out = String::new();
    let rec = |out: &mut String, kind: u8, a: u16, bytes: &[u8]| {
        let mut sum = bytes.len() as u8;
        sum = sum
            .wrapping_add((a >> 8) as u8)
            .wrapping_add(a as u8)
            .wrapping_add(kind);
        let mut line = format!(":{:02X}{:04X}{:02X}", bytes.len(), a, kind);
        for b in bytes {
            line += &format!("{b:02X}");
            sum = sum.wrapping_add(*b);
        }
        line += &format!("{:02X}\n", sum.wrapping_neg());
        out.push_str(&line);
    };
    let mut upper = None;
    for (i, chunk) in data.chunks(16).enumerate() {
        let a = addr + (i * 16) as u32;
        if upper != Some(a >> 16) {
            upper = Some(a >> 16);
            rec(&mut out, 4, 0, &((a >> 16) as u16).to_be_bytes());
        }
        rec(&mut out, 0, a as u16, chunk);
    }
    rec(&mut out, 1, 0, &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intel_hex_records() {
        let h = intel_hex(&[0x01, 0x02, 0x03], 0x0008_0000);
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(
            lines,
            [":020000040008F2", ":03000000010203F7", ":00000001FF"]
        );
    }

    #[test]
    fn uf2_blocks_carry_the_blob_at_its_address() {
        let blob: Vec<u8> = (0..600u32).map(|i| (i * 7) as u8).collect();
        let img = uf2_image(&blob, 0x1008_0000, 0xe48b_ff56).unwrap();
        assert_eq!(img.len(), 3 * 512);
        let word = |b: &[u8], i: usize| u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
        let mut back = Vec::new();
        for (n, block) in img.chunks(512).enumerate() {
            assert_eq!(word(block, 0), 0x0A32_4655);
            assert_eq!(word(block, 1), 0x9E5D_5157);
            assert_eq!(word(block, 2), 0x2000, "family-ID flag");
            assert_eq!(word(block, 3), 0x1008_0000 + 256 * n as u32);
            assert_eq!(word(block, 4), 256);
            assert_eq!((word(block, 5), word(block, 6)), (n as u32, 3));
            assert_eq!(word(block, 7), 0xe48b_ff56);
            assert_eq!(word(block, 127), 0x0AB1_6F30);
            back.extend_from_slice(&block[32..32 + 256]);
        }
        assert_eq!(&back[..600], &blob[..]);
        assert!(uf2_image(&blob, 0x1008_0001, 0).is_err());
    }
}
