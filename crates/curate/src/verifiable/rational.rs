//! Exact rational numbers for answer comparison: `18.0 = 18`, `0.5 = 1/2`, `\frac{3}{6} = 1/2`.
//! Arithmetic is checked: anything that would overflow `i128` is "not a number we can compare"
//! (`None`), never a wrong value.

use std::fmt;

/// A reduced fraction `num / den` with `den > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    num: i128,
    den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Rational {
    /// `num / den` reduced; `None` when `den` is 0 (or the sign cannot be normalised).
    pub fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        let (mut num, mut den) = (num / g, den / g);
        if den < 0 {
            num = num.checked_neg()?;
            den = den.checked_neg()?;
        }
        Some(Self { num, den })
    }

    /// The integer `n`.
    pub fn integer(n: i128) -> Self {
        Self { num: n, den: 1 }
    }

    /// Numerator (sign carrier).
    pub fn numer(&self) -> i128 {
        self.num
    }

    /// Denominator (> 0).
    pub fn denom(&self) -> i128 {
        self.den
    }

    /// `self + o`.
    pub fn checked_add(self, o: Self) -> Option<Self> {
        let num = self
            .num
            .checked_mul(o.den)?
            .checked_add(o.num.checked_mul(self.den)?)?;
        Self::new(num, self.den.checked_mul(o.den)?)
    }

    /// `self − o`.
    pub fn checked_sub(self, o: Self) -> Option<Self> {
        self.checked_add(o.checked_neg()?)
    }

    /// `self × o`.
    pub fn checked_mul(self, o: Self) -> Option<Self> {
        Self::new(self.num.checked_mul(o.num)?, self.den.checked_mul(o.den)?)
    }

    /// `self ÷ o`; `None` when `o` is 0.
    pub fn checked_div(self, o: Self) -> Option<Self> {
        Self::new(self.num.checked_mul(o.den)?, self.den.checked_mul(o.num)?)
    }

    /// `−self`.
    pub fn checked_neg(self) -> Option<Self> {
        Some(Self {
            num: self.num.checked_neg()?,
            den: self.den,
        })
    }

    /// Parses a plain decimal: optional sign, digits, optional `.digits` (`18`, `-3.50`, `.5`,
    /// `7.`). Anything else (separators, exponents, spaces) is `None`.
    pub fn parse_decimal(s: &str) -> Option<Self> {
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut num: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            num = num.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        let den = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
        let r = Self::new(num, den)?;
        if neg {
            r.checked_neg()
        } else {
            Some(r)
        }
    }
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i128, d: i128) -> Rational {
        Rational::new(n, d).unwrap()
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(Rational::parse_decimal("18.0"), Some(Rational::integer(18)));
        assert_eq!(Rational::parse_decimal("-3.50"), Some(r(-7, 2)));
        assert_eq!(Rational::parse_decimal(".5"), Some(r(1, 2)));
        assert_eq!(Rational::parse_decimal("7."), Some(Rational::integer(7)));
        assert_eq!(Rational::parse_decimal("+2"), Some(Rational::integer(2)));
        for bad in ["", "-", ".", "1,000", "1e3", " 1", "1.2.3", "--1", "x"] {
            assert_eq!(Rational::parse_decimal(bad), None, "{bad}");
        }
        // 40 digits overflow i128: not comparable, not wrong.
        assert_eq!(Rational::parse_decimal(&"9".repeat(40)), None);
    }

    #[test]
    fn arithmetic_is_exact_and_reduced() {
        assert_eq!(r(1, 2).checked_add(r(1, 3)), Some(r(5, 6)));
        assert_eq!(r(1, 2).checked_sub(r(1, 2)), Some(Rational::integer(0)));
        assert_eq!(r(2, 3).checked_mul(r(3, 4)), Some(r(1, 2)));
        assert_eq!(r(1, 2).checked_div(r(-1, 4)), Some(Rational::integer(-2)));
        assert_eq!(r(1, 2).checked_div(Rational::integer(0)), None);
        assert_eq!(r(3, -6), r(-1, 2));
        assert_eq!(r(-1, 2).to_string(), "-1/2");
        assert_eq!(
            Rational::integer(i128::MAX).checked_add(Rational::integer(1)),
            None
        );
    }
}
