//! PostgreSQL snapshots (`pg_current_snapshot()::text`, `xmin:xmax:xip1,xip2,…`) and which
//! transactions they see; LSNs (`16/B374D848`).

use crate::error::{MigrateError, Result};

/// A snapshot: transactions below `xmin` are finished, those from `xmax` on had not started,
/// those in `xip` were running. Transaction ids are 64-bit (`xid8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Oldest transaction still running.
    pub xmin: u64,
    /// First transaction not yet started.
    pub xmax: u64,
    /// Transactions running between the two.
    pub xip: Vec<u64>,
}

impl Snapshot {
    /// Parses `pg_snapshot`'s text form.
    pub fn parse(text: &str) -> Result<Snapshot> {
        let bad = || {
            MigrateError::InvalidInput(format!(
                "invalid snapshot {text:?}: expected xmin:xmax:xip,…"
            ))
        };
        let mut parts = text.trim().splitn(3, ':');
        let xmin = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let xmax = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let xip = match parts.next() {
            None | Some("") => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|x| x.parse().map_err(|_| bad()))
                .collect::<Result<Vec<u64>>>()?,
        };
        if xmin > xmax {
            return Err(bad());
        }
        Ok(Snapshot { xmin, xmax, xip })
    }

    /// Whether a transaction that committed is visible to this snapshot: it finished before
    /// the snapshot was taken.
    pub fn sees(&self, xid: u64) -> bool {
        xid < self.xmin || (xid < self.xmax && !self.xip.contains(&xid))
    }

    /// The 64-bit id of a 32-bit transaction id printed by logical decoding, taken as the one
    /// nearest to this snapshot's `xmax` (PostgreSQL keeps every live id within 2^31 of it).
    pub fn widen(&self, xid: u32) -> u64 {
        let diff = xid.wrapping_sub(self.xmax as u32) as i32;
        (self.xmax as i64 + diff as i64).max(0) as u64
    }
}

/// Parses an LSN (`X/Y`, hexadecimal) into its 64-bit position.
pub fn parse_lsn(text: &str) -> Result<u64> {
    let bad =
        || MigrateError::InvalidInput(format!("invalid LSN {text:?}: expected X/Y in hexadecimal"));
    let (hi, lo) = text.trim().split_once('/').ok_or_else(bad)?;
    let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
    let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
    Ok(((hi as u64) << 32) | lo as u64)
}

/// Formats a 64-bit position as an LSN.
pub fn format_lsn(pos: u64) -> String {
    format!("{:X}/{:X}", pos >> 32, pos & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_follows_xmin_xmax_and_the_running_list() {
        let s = Snapshot::parse("100:110:103,107").unwrap();
        assert!(s.sees(99));
        assert!(s.sees(100));
        assert!(!s.sees(103));
        assert!(s.sees(104));
        assert!(!s.sees(107));
        assert!(!s.sees(110));
        assert!(!s.sees(5_000));
        assert_eq!(Snapshot::parse("733:733:").unwrap().xip, Vec::<u64>::new());
        assert!(Snapshot::parse("9:3:").is_err());
        assert!(Snapshot::parse("a:b").is_err());
    }

    #[test]
    fn widening_picks_the_epoch_nearest_xmax() {
        let s = Snapshot::parse("4294967290:4294967300:").unwrap(); // xmax in epoch 1
        assert_eq!(s.widen(4), 4_294_967_300);
        assert_eq!(s.widen(4_294_967_295), 4_294_967_295); // epoch 0, just below
        assert_eq!(s.widen(20), 4_294_967_316); // just above xmax
        let s = Snapshot::parse("700:733:").unwrap();
        assert_eq!(s.widen(728), 728);
        assert_eq!(s.widen(740), 740);
    }

    #[test]
    fn lsn_round_trip_and_order() {
        assert_eq!(parse_lsn("0/19291B8").unwrap(), 0x19291B8);
        assert_eq!(
            parse_lsn("16/B374D848").unwrap(),
            (0x16u64 << 32) | 0xB374D848
        );
        assert_eq!(format_lsn(parse_lsn("16/B374D848").unwrap()), "16/B374D848");
        assert!(parse_lsn("0/19291B8").unwrap() < parse_lsn("1/0").unwrap());
        assert!(parse_lsn("nope").is_err());
    }
}
