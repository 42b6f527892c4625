//! The issuer table: which leading digits and which lengths make a card number of
//! each brand. This file is the only place that knows issuer ranges.
//!
//! Source: braintree/credit-card-type 10.3.0 (commit fbd8ed8), `src/lib/card-types.ts`
//! for the patterns and lengths, `src/index.ts` (`ORIGINAL_TEST_ORDER`) for the
//! order. A pattern is one prefix (`4`) or an inclusive range of prefixes with the
//! same number of digits (`[2221, 2229]`). When the patterns of several brands
//! match, the longest wins and, between equally long ones, the brand tested first,
//! as in braintree's `find-best-match.ts` (Discover's `6011` over Maestro's
//! catch-all `6`).
//!
//! braintree guesses a brand from the first digits someone is typing; the screen
//! sees complete numbers, so here the length must also be one the brand uses. A
//! 13-digit number starting with 4 is not a card number in this table (Visa: 16,
//! 18 or 19 digits), but a 14-digit one starting with 6011 is (Maestro's `6`
//! accepts every length from 12 to 19).

use std::fmt;

use serde::{Serialize, Serializer};

/// A card brand, named as braintree/credit-card-type names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Brand {
    Visa,
    Mastercard,
    AmericanExpress,
    DinersClub,
    Discover,
    Troy,
    Jcb,
    UnionPay,
    Naranja,
    Verve,
    Maestro,
    Elo,
    Mir,
    Hiper,
    Hipercard,
}

impl Brand {
    /// Every brand of the table, in table order.
    pub const ALL: [Brand; 15] = [
        Brand::Visa,
        Brand::Mastercard,
        Brand::AmericanExpress,
        Brand::DinersClub,
        Brand::Discover,
        Brand::Troy,
        Brand::Jcb,
        Brand::UnionPay,
        Brand::Naranja,
        Brand::Verve,
        Brand::Maestro,
        Brand::Elo,
        Brand::Mir,
        Brand::Hiper,
        Brand::Hipercard,
    ];

    /// The stable identifier used on the wire and in the shared test vectors
    /// (braintree's `type`).
    pub fn id(self) -> &'static str {
        match self {
            Brand::Visa => "visa",
            Brand::Mastercard => "mastercard",
            Brand::AmericanExpress => "american-express",
            Brand::DinersClub => "diners-club",
            Brand::Discover => "discover",
            Brand::Troy => "troy",
            Brand::Jcb => "jcb",
            Brand::UnionPay => "unionpay",
            Brand::Naranja => "naranja",
            Brand::Verve => "verve",
            Brand::Maestro => "maestro",
            Brand::Elo => "elo",
            Brand::Mir => "mir",
            Brand::Hiper => "hiper",
            Brand::Hipercard => "hipercard",
        }
    }

    /// The name shown to people (braintree's `niceType`).
    pub fn name(self) -> &'static str {
        match self {
            Brand::Visa => "Visa",
            Brand::Mastercard => "Mastercard",
            Brand::AmericanExpress => "American Express",
            Brand::DinersClub => "Diners Club",
            Brand::Discover => "Discover",
            Brand::Troy => "Troy",
            Brand::Jcb => "JCB",
            Brand::UnionPay => "UnionPay",
            Brand::Naranja => "Naranja",
            Brand::Verve => "Verve",
            Brand::Maestro => "Maestro",
            Brand::Elo => "Elo",
            Brand::Mir => "Mir",
            Brand::Hiper => "Hiper",
            Brand::Hipercard => "Hipercard",
        }
    }

    /// Parses [`Brand::id`] back.
    pub fn from_id(id: &str) -> Option<Brand> {
        Brand::ALL.into_iter().find(|b| b.id() == id)
    }

    /// The lengths this brand's numbers have.
    pub fn lengths(self) -> &'static [u8] {
        issuer_of(self).lengths
    }
}

impl fmt::Display for Brand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Brand {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

/// Prefixes `lo..=hi` of `digits` leading digits.
#[derive(Clone, Copy, Debug)]
pub(super) struct Prefix {
    pub(super) lo: u32,
    pub(super) hi: u32,
    pub(super) digits: u8,
    /// The first digit of every prefix in the range, to pass over most patterns
    /// with one comparison.
    pub(super) first: u8,
}

impl Prefix {
    const fn range(lo: u32, hi: u32) -> Prefix {
        let mut digits = 0;
        let mut n = lo;
        let mut first = 0;
        while n > 0 {
            digits += 1;
            first = n;
            n /= 10;
        }
        Prefix {
            lo,
            hi,
            digits,
            first: first as u8,
        }
    }

    const fn one(p: u32) -> Prefix {
        Prefix::range(p, p)
    }
}

pub(super) struct Issuer {
    pub(super) brand: Brand,
    pub(super) lengths: &'static [u8],
    pub(super) prefixes: &'static [Prefix],
    /// Bit `n` set when the brand uses length `n`.
    length_mask: u32,
    /// Bit `d` set when a prefix of the brand starts with the digit `d`.
    first_digits: u16,
}

impl Issuer {
    const fn new(brand: Brand, lengths: &'static [u8], prefixes: &'static [Prefix]) -> Issuer {
        let mut length_mask = 0u32;
        let mut i = 0;
        while i < lengths.len() {
            length_mask |= 1 << lengths[i];
            i += 1;
        }
        let mut first_digits = 0u16;
        let mut i = 0;
        while i < prefixes.len() {
            first_digits |= 1 << prefixes[i].first;
            i += 1;
        }
        Issuer {
            brand,
            lengths,
            prefixes,
            length_mask,
            first_digits,
        }
    }
}

const fn r(lo: u32, hi: u32) -> Prefix {
    Prefix::range(lo, hi)
}

const fn p(prefix: u32) -> Prefix {
    Prefix::one(prefix)
}

/// The table, in braintree's test order, which settles ties between patterns of
/// the same length (Verve's `506099`–`506127` over Maestro's `504176`–`506698`).
pub(super) static ISSUERS: [Issuer; 15] = [
    Issuer::new(Brand::Visa, &[16, 18, 19], &[p(4)]),
    Issuer::new(
        Brand::Mastercard,
        &[16],
        &[
            r(51, 55),
            r(2221, 2229),
            r(223, 229),
            r(23, 26),
            r(270, 271),
            p(2720),
        ],
    ),
    Issuer::new(Brand::AmericanExpress, &[15], &[p(34), p(37)]),
    Issuer::new(
        Brand::DinersClub,
        &[14, 16, 19],
        &[r(300, 305), p(36), p(38), p(39)],
    ),
    Issuer::new(Brand::Discover, &[16, 19], &[p(6011), r(644, 649), p(65)]),
    Issuer::new(
        Brand::Troy,
        &[16],
        &[
            p(9792),
            p(650052),
            r(650082, 650083),
            p(650092),
            p(650161),
            p(650170),
            p(650173),
            p(650175),
            p(650268),
            p(650271),
            r(650273, 650274),
            r(650456, 650457),
            p(650836),
            r(650846, 650850),
            p(650923),
            p(650987),
            p(650990),
            p(654997),
            p(657366),
            p(657998),
            p(658758),
            r(658767, 658768),
            r(65083700, 65083704),
            r(65085800, 65085804),
            r(65085900, 65085901),
            p(65086000),
            r(65086100, 65086105),
            r(65086200, 65086203),
            r(65875000, 65875003),
            p(65875009),
            r(65875101, 65875104),
            p(65875200),
            p(65875501),
            p(65875601),
            p(65875900),
            r(65876000, 65876002),
            r(65876100, 65876103),
            p(65876110),
            r(65876115, 65876116),
            r(65876200, 65876201),
            p(65876500),
            r(65876504, 65876505),
            r(65876600, 65876602),
            r(65877100, 65877101),
            r(65877600, 65877602),
            p(65877700),
            r(65877801, 65877802),
            r(65878200, 65878202),
            r(65878300, 65878311),
            r(65878400, 65878405),
            r(65878500, 65878505),
            r(65878600, 65878601),
            p(65879800),
            p(65880800),
            p(65880900),
        ],
    ),
    Issuer::new(
        Brand::Jcb,
        &[16, 17, 18, 19],
        &[p(2131), p(1800), r(3528, 3589)],
    ),
    Issuer::new(
        Brand::UnionPay,
        &[14, 15, 16, 17, 18, 19],
        &[
            p(620),
            r(62100, 62182),
            r(62184, 62187),
            r(62185, 62197),
            r(62200, 62205),
            r(622010, 622999),
            p(622018),
            r(62207, 62209),
            r(623, 626),
            p(6270),
            p(6272),
            p(6276),
            r(627700, 627779),
            r(627781, 627799),
            r(6282, 6289),
            p(6291),
            p(6292),
            p(810),
            r(8110, 8131),
            r(8132, 8151),
            r(8152, 8163),
            r(8164, 8171),
        ],
    ),
    Issuer::new(Brand::Naranja, &[16], &[p(589562), p(402918), p(527572)]),
    Issuer::new(
        Brand::Verve,
        &[16, 18, 19],
        &[
            r(506099, 506127),
            p(506129),
            r(506133, 506150),
            r(506158, 506163),
            p(506166),
            p(506168),
            p(506170),
            p(506173),
            r(506176, 506180),
            p(506184),
            r(506187, 506188),
            p(506191),
            p(506195),
            p(506197),
            p(507865),
            p(507866),
            r(507868, 507877),
            r(507880, 507888),
            p(507900),
            p(507941),
        ],
    ),
    Issuer::new(
        Brand::Maestro,
        &[12, 13, 14, 15, 16, 17, 18, 19],
        &[
            p(493698),
            r(500000, 504174),
            r(504176, 506698),
            r(506779, 508999),
            r(56, 59),
            p(63),
            p(67),
            p(6),
        ],
    ),
    Issuer::new(
        Brand::Elo,
        &[16],
        &[
            p(401178),
            p(401179),
            p(438935),
            p(457631),
            p(457632),
            p(431274),
            p(451416),
            p(457393),
            p(504175),
            r(506699, 506778),
            r(509000, 509999),
            p(627780),
            p(636297),
            p(636368),
            r(650031, 650033),
            r(650035, 650051),
            r(650405, 650439),
            r(650485, 650538),
            r(650541, 650598),
            r(650700, 650718),
            r(650720, 650727),
            r(650901, 650978),
            r(651652, 651679),
            r(655000, 655019),
            r(655021, 655058),
        ],
    ),
    Issuer::new(Brand::Mir, &[16, 17, 18, 19], &[r(2200, 2204)]),
    Issuer::new(
        Brand::Hiper,
        &[16],
        &[
            p(637095),
            p(63737423),
            p(63743358),
            p(637568),
            p(637599),
            p(637609),
            p(637612),
        ],
    ),
    Issuer::new(Brand::Hipercard, &[16], &[p(606282)]),
];

fn issuer_of(brand: Brand) -> &'static Issuer {
    // ISSUERS is in the order of Brand::ALL; a test checks it.
    &ISSUERS[brand as usize]
}

/// The brand of a complete card number given as digit values, if its leading digits
/// and its length belong to one. Luhn is checked elsewhere.
pub(super) fn identify(digits: &[u8]) -> Option<Brand> {
    let len = u8::try_from(digits.len()).ok().filter(|&l| l < 32)?;
    // Eight digits is the longest pattern in the table (Hiper's 63737423).
    let mut leading = [0u32; 9];
    for (i, d) in digits.iter().take(8).enumerate() {
        leading[i + 1] = leading[i] * 10 + u32::from(*d);
    }
    let mut best: Option<(u8, Brand)> = None;
    let first = *digits.first()?;
    for issuer in &ISSUERS {
        if issuer.length_mask & (1 << len) == 0 || issuer.first_digits & (1 << first) == 0 {
            continue;
        }
        for prefix in issuer.prefixes.iter().filter(|p| p.first == first) {
            let n = usize::from(prefix.digits);
            if n > digits.len() || n >= leading.len() {
                continue;
            }
            let value = leading[n];
            let stronger = best.is_none_or(|(strength, _)| prefix.digits > strength);
            if stronger && (prefix.lo..=prefix.hi).contains(&value) {
                best = Some((prefix.digits, issuer.brand));
            }
        }
    }
    best.map(|(_, brand)| brand)
}
