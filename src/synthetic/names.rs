//! Short lists of common Norwegian names and place-like words, combined at
//! random: the people they make do not exist.

/// Given names.
pub const GIVEN: &[&str] = &[
    "Emma", "Nora", "Sofie", "Olivia", "Ella", "Leah", "Ingrid", "Sara", "Maja", "Frida", "Aurora", "Hedda", "Selma",
    "Tiril", "Amalie", "Ida", "Jakob", "Emil", "Noah", "Oliver", "Filip", "William", "Lucas", "Henrik", "Aksel",
    "Ludvig", "Magnus", "Isak", "Tobias", "Sander", "Elias", "Mathias", "Kasper", "Jonas", "Aisha", "Yusuf", "Mina",
    "Ali", "Zara", "Omar",
];

/// Family names.
pub const FAMILY: &[&str] = &[
    "Hansen",
    "Johansen",
    "Olsen",
    "Larsen",
    "Andersen",
    "Pedersen",
    "Nilsen",
    "Kristiansen",
    "Jensen",
    "Karlsen",
    "Johnsen",
    "Pettersen",
    "Eriksen",
    "Berg",
    "Haugen",
    "Hagen",
    "Johannessen",
    "Andreassen",
    "Jacobsen",
    "Dahl",
    "Jørgensen",
    "Halvorsen",
    "Henriksen",
    "Lund",
    "Sørensen",
    "Moen",
    "Strand",
    "Solberg",
    "Bakken",
    "Lie",
];

/// Invented school places.
pub const PLACES: &[&str] = &[
    "Eikeli",
    "Bjerkely",
    "Furuhaug",
    "Granlia",
    "Lindeberg",
    "Askevold",
    "Heggedal",
    "Rognstad",
    "Seljebakken",
    "Hasselbakken",
    "Ospedalen",
    "Vierlia",
    "Lønneberg",
    "Almeåsen",
    "Einerhaugen",
    "Kirsebærhagen",
];
