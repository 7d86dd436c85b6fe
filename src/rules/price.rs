//! Prices: greater than 0, at most 1 000 000, at most two decimals. A third decimal is
//! rejected rather than rounded, so what the client sent is exactly what is stored. The rule
//! reads the JSON number's *text* (a float would already have rounded `0.005`).

use std::fmt;

/// The largest accepted price, in cents.
pub const MAX_CENTS: u64 = 100_000_000;

/// A validated price, held exactly as whole cents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Price {
    cents: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriceError {
    NotANumber,
    NotPositive,
    TooManyDecimals,
    TooLarge,
}

impl PriceError {
    /// The message a form shows next to the field.
    pub fn message(self) -> &'static str {
        match self {
            Self::NotANumber => "must be a number",
            Self::NotPositive => "must be greater than 0",
            Self::TooManyDecimals => "must have at most 2 decimal places",
            Self::TooLarge => "must be at most 1000000",
        }
    }
}

impl Price {
    pub fn cents(self) -> u64 {
        self.cents
    }

    /// Parses a JSON number literal (`12`, `12.5`, `1.25e1`, ...). Anything else, including a
    /// JSON string, is `NotANumber`.
    pub fn parse_json_number(text: &str) -> Result<Price, PriceError> {
        let (negative, digits, scale) = decompose(text.trim()).ok_or(PriceError::NotANumber)?;
        let significant = digits.trim_start_matches('0');
        if significant.is_empty() || negative {
            return Err(PriceError::NotPositive);
        }
        // Trailing zeros carry no value: `10.500` is 10.50.
        let trimmed = significant.trim_end_matches('0');
        let scale = scale - (significant.len() - trimmed.len()) as i64;
        if scale > 2 {
            return Err(PriceError::TooManyDecimals);
        }
        // value = trimmed * 10^-scale; cents = trimmed * 10^(2 - scale). MAX_CENTS has 9
        // digits, so anything longer is too large before any arithmetic can overflow.
        let shift = 2 - scale;
        if trimmed.len() as i64 + shift > 9 {
            return Err(PriceError::TooLarge);
        }
        let mut cents: u64 = trimmed.parse().map_err(|_| PriceError::NotANumber)?;
        for _ in 0..shift {
            cents *= 10;
        }
        if cents > MAX_CENTS {
            return Err(PriceError::TooLarge);
        }
        Ok(Price { cents })
    }
}

/// Splits a JSON number into (sign, all digits, decimal scale): `-12.50e1` → (true, "1250", 1).
fn decompose(text: &str) -> Option<(bool, String, i64)> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || (int.len() > 1 && int.starts_with('0')) {
        return None;
    }
    if let Some(f) = frac {
        if !all_digits(f) {
            return None;
        }
    }
    let exp: i64 = match exponent {
        None => 0,
        Some(e) => {
            let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
            if !all_digits(unsigned) {
                return None;
            }
            // Exponents beyond this are absurd for a price; treat them as out of range by
            // clamping (a huge positive one is too large, a huge negative one has decimals).
            let magnitude: i64 = unsigned.parse().unwrap_or(i64::from(u16::MAX)).min(1_000);
            if e.starts_with('-') {
                -magnitude
            } else {
                magnitude
            }
        }
    };
    let frac = frac.unwrap_or("");
    let digits = format!("{int}{frac}");
    Some((negative, digits, frac.len() as i64 - exp))
}

impl fmt::Display for Price {
    /// Plain decimal text (`12.50`), exact, suitable as a JSON number or a filter value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.cents / 100, self.cents % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cents(text: &str) -> Result<u64, PriceError> {
        Price::parse_json_number(text).map(Price::cents)
    }

    #[test]
    fn whole_and_two_decimal_prices_are_exact() {
        assert_eq!(cents("12"), Ok(1200));
        assert_eq!(cents("12.5"), Ok(1250));
        assert_eq!(cents("0.29"), Ok(29));
        assert_eq!(cents("0.01"), Ok(1));
        assert_eq!(cents("1000000"), Ok(100_000_000));
        assert_eq!(cents("1000000.00"), Ok(100_000_000));
    }

    #[test]
    fn trailing_zeros_do_not_count_as_decimals() {
        assert_eq!(cents("10.500"), Ok(1050));
        assert_eq!(cents("10.000000"), Ok(1000));
    }

    #[test]
    fn exponents_are_read_exactly() {
        assert_eq!(cents("1.25e1"), Ok(1250));
        assert_eq!(cents("125E-2"), Ok(125));
        assert_eq!(cents("1e6"), Ok(100_000_000));
        assert_eq!(cents("1e-3"), Err(PriceError::TooManyDecimals));
        assert_eq!(cents("1e7"), Err(PriceError::TooLarge));
        assert_eq!(cents("1e99999999999999999999"), Err(PriceError::TooLarge));
        assert_eq!(
            cents("1e-99999999999999999999"),
            Err(PriceError::TooManyDecimals)
        );
    }

    #[test]
    fn a_third_decimal_is_rejected_not_rounded() {
        assert_eq!(cents("10.005"), Err(PriceError::TooManyDecimals));
        assert_eq!(cents("0.001"), Err(PriceError::TooManyDecimals));
    }

    #[test]
    fn zero_and_negative_are_not_positive() {
        assert_eq!(cents("0"), Err(PriceError::NotPositive));
        assert_eq!(cents("0.00"), Err(PriceError::NotPositive));
        assert_eq!(cents("-1"), Err(PriceError::NotPositive));
        assert_eq!(cents("-0.001"), Err(PriceError::NotPositive));
    }

    #[test]
    fn above_one_million_is_too_large() {
        assert_eq!(cents("1000000.01"), Err(PriceError::TooLarge));
        assert_eq!(cents("99999999999999999999999"), Err(PriceError::TooLarge));
    }

    #[test]
    fn non_numbers_are_rejected() {
        for text in [
            "\"12\"", "null", "true", "", "1.", ".5", "01", "1e", "abc", "[1]",
        ] {
            assert_eq!(cents(text), Err(PriceError::NotANumber), "{text}");
        }
    }

    #[test]
    fn display_is_plain_two_decimal_text() {
        assert_eq!(
            Price::parse_json_number("12.5").unwrap().to_string(),
            "12.50"
        );
        assert_eq!(
            Price::parse_json_number("0.07").unwrap().to_string(),
            "0.07"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_cent_amount_round_trips(c in 1u64..=MAX_CENTS) {
            let p = Price { cents: c };
            proptest::prop_assert_eq!(Price::parse_json_number(&p.to_string()), Ok(p));
        }
    }
}
