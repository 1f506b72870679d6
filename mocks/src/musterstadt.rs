//! The fictional school authority "Stadt Musterstadt": the fixed master data (schools, sites,
//! buildings, people's names) that the demo, the mock servers and the tests agree on.
//!
//! The numbers follow the model city of the source documents: 32 schools, about 15,000 pupils.

use std::fmt;

/// Slug of the authority in the demo configuration.
pub const AUTHORITY_SLUG: &str = "musterstadt";
/// Display name of the authority.
pub const AUTHORITY_NAME: &str = "Stadt Musterstadt";

/// School type (Schulform), spelled as the configuration spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SchoolType {
    Grundschule,
    Hauptschule,
    Realschule,
    Gesamtschule,
    Gymnasium,
    Foerderschule,
    Berufsschule,
}

impl SchoolType {
    /// Every type, in the order of [`SchoolType::as_str`]'s documentation.
    pub const ALL: [SchoolType; 7] = [
        SchoolType::Grundschule,
        SchoolType::Hauptschule,
        SchoolType::Realschule,
        SchoolType::Gesamtschule,
        SchoolType::Gymnasium,
        SchoolType::Foerderschule,
        SchoolType::Berufsschule,
    ];

    /// One of `grundschule, hauptschule, realschule, gesamtschule, gymnasium, foerderschule,
    /// berufsschule`.
    pub fn as_str(self) -> &'static str {
        match self {
            SchoolType::Grundschule => "grundschule",
            SchoolType::Hauptschule => "hauptschule",
            SchoolType::Realschule => "realschule",
            SchoolType::Gesamtschule => "gesamtschule",
            SchoolType::Gymnasium => "gymnasium",
            SchoolType::Foerderschule => "foerderschule",
            SchoolType::Berufsschule => "berufsschule",
        }
    }
}

impl fmt::Display for SchoolType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One school of Musterstadt. It is also one Jamf site (site name = school name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct School {
    /// Official 6-digit school number (Schulnummer).
    pub number: &'static str,
    pub name: &'static str,
    pub school_type: SchoolType,
    pub pupils: u32,
    /// Jamf site id; stable, 1-based, in the order of [`schools`].
    pub site_id: u32,
    /// ASCII short name used in device names and mail domains, e.g. `GS-Lindenweg`.
    pub tag: &'static str,
}

impl School {
    /// Mail domain of the school's accounts, e.g. `gs-lindenweg.example.de`.
    pub fn mail_domain(&self) -> String {
        format!("{}.example.de", self.tag.to_ascii_lowercase())
    }

    /// Parts of the school's premises; the first is always the main building.
    pub fn building_parts(&self) -> &'static [&'static str] {
        match self.school_type {
            SchoolType::Grundschule if self.pupils >= 280 => &["Hauptgebäude", "Pavillon"],
            SchoolType::Grundschule | SchoolType::Foerderschule | SchoolType::Hauptschule => {
                &["Hauptgebäude"]
            }
            SchoolType::Realschule | SchoolType::Gymnasium => &["Hauptgebäude", "Neubau"],
            SchoolType::Gesamtschule => &["Hauptgebäude", "Neubau", "Naturwissenschaften"],
            SchoolType::Berufsschule => &["Hauptgebäude", "Werkstattgebäude", "Neubau"],
        }
    }
}

const fn school(
    site_id: u32,
    number: &'static str,
    name: &'static str,
    school_type: SchoolType,
    pupils: u32,
    tag: &'static str,
) -> School {
    School {
        number,
        name,
        school_type,
        pupils,
        site_id,
        tag,
    }
}

use SchoolType::{
    Berufsschule as BK, Foerderschule as FS, Gesamtschule as GE, Grundschule as GS,
    Gymnasium as GY, Hauptschule as HS, Realschule as RS,
};

const SCHOOLS: [School; 32] = [
    school(
        1,
        "100001",
        "Grundschule Lindenweg",
        GS,
        312,
        "GS-Lindenweg",
    ),
    school(
        2,
        "100013",
        "Grundschule am Mühlenbach",
        GS,
        245,
        "GS-Muehlenbach",
    ),
    school(
        3,
        "100025",
        "Grundschule Sonnenhügel",
        GS,
        198,
        "GS-Sonnenhuegel",
    ),
    school(
        4,
        "100037",
        "Grundschule Kastanienallee",
        GS,
        276,
        "GS-Kastanienallee",
    ),
    school(
        5,
        "100049",
        "Grundschule Am Rosengarten",
        GS,
        331,
        "GS-Rosengarten",
    ),
    school(
        6,
        "100050",
        "Grundschule Nordstadt",
        GS,
        289,
        "GS-Nordstadt",
    ),
    school(
        7,
        "100062",
        "Grundschule Eichendorffstraße",
        GS,
        224,
        "GS-Eichendorff",
    ),
    school(
        8,
        "100074",
        "Grundschule Am Schlosspark",
        GS,
        356,
        "GS-Schlosspark",
    ),
    school(
        9,
        "100086",
        "Grundschule Wiesengrund",
        GS,
        187,
        "GS-Wiesengrund",
    ),
    school(
        10,
        "100098",
        "Brüder-Grimm-Grundschule",
        GS,
        263,
        "GS-Grimm",
    ),
    school(
        11,
        "100104",
        "Grundschule Kirchfeld",
        GS,
        241,
        "GS-Kirchfeld",
    ),
    school(
        12,
        "100116",
        "Grundschule Am Wasserturm",
        GS,
        298,
        "GS-Wasserturm",
    ),
    school(
        13,
        "100128",
        "Grundschule Südviertel",
        GS,
        214,
        "GS-Suedviertel",
    ),
    school(
        14,
        "100131",
        "Astrid-Lindgren-Grundschule",
        GS,
        305,
        "GS-Lindgren",
    ),
    school(
        15,
        "100143",
        "Grundschule Birkenhof",
        GS,
        176,
        "GS-Birkenhof",
    ),
    school(16, "100155", "Grundschule Am Markt", GS, 268, "GS-Markt"),
    school(17, "100167", "Grundschule Westend", GS, 233, "GS-Westend"),
    school(
        18,
        "100179",
        "Katholische Grundschule St. Martin",
        GS,
        252,
        "GS-StMartin",
    ),
    school(
        19,
        "190012",
        "Gesamtschule Musterstadt-Mitte",
        GE,
        1080,
        "GE-Mitte",
    ),
    school(20, "190024", "Gesamtschule Ost", GE, 1040, "GE-Ost"),
    school(
        21,
        "190036",
        "Willy-Brandt-Gesamtschule",
        GE,
        1105,
        "GE-Brandt",
    ),
    school(
        22,
        "170015",
        "Realschule Am Stadtwald",
        RS,
        620,
        "RS-Stadtwald",
    ),
    school(
        23,
        "170027",
        "Anne-Frank-Realschule",
        RS,
        705,
        "RS-AnneFrank",
    ),
    school(24, "170039", "Realschule Süd", RS, 580, "RS-Sued"),
    school(
        25,
        "160011",
        "Hermann-Hesse-Hauptschule",
        HS,
        310,
        "HS-Hesse",
    ),
    school(
        26,
        "180018",
        "Gymnasium am Stadtpark",
        GY,
        980,
        "GY-Stadtpark",
    ),
    school(27, "180021", "Goethe-Gymnasium", GY, 1000, "GY-Goethe"),
    school(
        28,
        "180033",
        "Städtisches Gymnasium Musterstadt-Nord",
        GY,
        860,
        "GY-Nord",
    ),
    school(
        29,
        "130014",
        "Förderschule Am Regenbogen",
        FS,
        145,
        "FS-Regenbogen",
    ),
    school(
        30,
        "130026",
        "Pestalozzi-Förderschule",
        FS,
        170,
        "FS-Pestalozzi",
    ),
    school(31, "110019", "Berufskolleg Technik", BK, 1050, "BK-Technik"),
    school(
        32,
        "110020",
        "Berufskolleg Wirtschaft und Verwaltung",
        BK,
        900,
        "BK-Wirtschaft",
    ),
];

/// The 32 schools of Musterstadt, ordered by site id.
pub fn schools() -> Vec<School> {
    SCHOOLS.to_vec()
}

pub(crate) fn school_table() -> &'static [School] {
    &SCHOOLS
}

/// A Jamf building. Jamf keeps buildings in one global list, so the name carries the school.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Building {
    /// Stable, 1-based.
    pub id: u32,
    pub name: String,
    pub site_id: u32,
}

/// Every building of every school, ids numbered school by school in site order.
pub fn buildings() -> Vec<Building> {
    let mut out = Vec::new();
    for school in school_table() {
        for part in school.building_parts() {
            out.push(Building {
                id: out.len() as u32 + 1,
                name: format!("{}, {}", school.name, part),
                site_id: school.site_id,
            });
        }
    }
    out
}

/// The schools as the `[[authority]]` block of the demo configuration (TOML).
pub fn authority_toml() -> String {
    let mut out = format!(
        "[[authority]]\nslug = {}\nname = {}\n\
         # North Rhine-Westphalia-like deletion period for persons who left, in months.\n\
         retention_months = 12\n",
        toml_string(AUTHORITY_SLUG),
        toml_string(AUTHORITY_NAME)
    );
    for school in school_table() {
        out.push_str(&format!(
            "\n[[authority.school]]\nnumber = {}\nname = {}\ntype = {}\n",
            toml_string(school.number),
            toml_string(school.name),
            toml_string(school.school_type.as_str())
        ));
    }
    out
}

/// A TOML basic string; the names hold no control characters, only quotes need care.
fn toml_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Given names of pupils and teachers, as they appear in German schools today.
pub(crate) const FIRST_NAMES: &[&str] = &[
    "Lea",
    "Mia",
    "Emma",
    "Hannah",
    "Sofia",
    "Emilia",
    "Lina",
    "Marie",
    "Lena",
    "Anna",
    "Clara",
    "Ella",
    "Mila",
    "Aylin",
    "Elif",
    "Zeynep",
    "Ben",
    "Paul",
    "Leon",
    "Finn",
    "Noah",
    "Elias",
    "Felix",
    "Jonas",
    "Luis",
    "Max",
    "Henry",
    "Emil",
    "Lukas",
    "Ole",
    "Yusuf",
    "Mehmet",
    "Katrin",
    "Sabine",
    "Stefanie",
    "Julia",
    "Nicole",
    "Thomas",
    "Andreas",
    "Michael",
    "Christian",
    "Markus",
    "Jörg",
    "Sören",
];

/// Family names; umlauts included on purpose, logins transliterate them.
pub(crate) const LAST_NAMES: &[&str] = &[
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hartmann",
    "Lange",
    "Schmitt",
    "Werner",
    "Krause",
    "Lehmann",
    "Yılmaz",
    "Kaya",
    "Öztürk",
    "Nowak",
    "Kowalski",
    "Weiß",
];

/// Login form of a name part: lower case ASCII, umlauts spelled out as German logins do.
pub(crate) fn login_part(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    for c in name.chars().flat_map(char::to_lowercase) {
        match c {
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            'ı' => out.push('i'),
            c if c.is_ascii_alphanumeric() => out.push(c),
            _ => {}
        }
    }
    out
}
