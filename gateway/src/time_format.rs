//! Times on the wire are RFC 3339 strings (`2026-11-25T12:00:00Z`, offsets allowed);
//! inside they are milliseconds since the Unix epoch.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let moment = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    u64::try_from(moment.unix_timestamp_nanos() / 1_000_000).ok()
}

pub fn format_rfc3339_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|moment| moment.format(&Rfc3339).ok())
        // Only reachable for times beyond year 9999, which the engine never produces.
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_honours_offsets() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01Z"), Some(1_000));
        assert_eq!(parse_rfc3339_ms("1970-01-01T05:30:01+05:30"), Some(1_000));
        assert_eq!(format_rfc3339_ms(1_500), "1970-01-01T00:00:01.5Z");
        assert_eq!(parse_rfc3339_ms("tomorrow"), None);
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59Z"), None);
    }
}
