//! The workspace's one zig-zag varint reader and writer (`hdi_log::records::read_varint` and
//! `put_varint`, which the broker's and the executor's record code use through
//! `parse_records`): values round-trip, and a varint longer than ten bytes or cut short is
//! refused rather than misread.
#![allow(clippy::unwrap_used, reason = "tests")]

use hdi_log::records::{put_varint, read_varint};

#[test]
fn varints_round_trip_and_bad_ones_are_refused() {
    for v in [
        0i64,
        1,
        -1,
        63,
        -64,
        64,
        300,
        -300,
        i64::from(i32::MAX),
        i64::MIN,
        i64::MAX,
    ] {
        let mut buf = Vec::new();
        put_varint(&mut buf, v);
        buf.push(0x55); // what follows stays
        let mut slice = buf.as_slice();
        assert_eq!(read_varint(&mut slice), Some(v));
        assert_eq!(slice, [0x55]);
    }
    let mut too_long: &[u8] = &[0xff; 11];
    assert_eq!(read_varint(&mut too_long), None);
    let mut cut: &[u8] = &[0x80, 0x80];
    assert_eq!(read_varint(&mut cut), None);
    let mut empty: &[u8] = &[];
    assert_eq!(read_varint(&mut empty), None);
}
