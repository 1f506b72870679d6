//! Text for the PDF base-14 fonts: every PDF reader has Helvetica built in, so the agreement
//! needs no font file, but only through a single-byte encoding. WinAnsiEncoding covers German
//! (ä ö ü Ä Ö Ü ß, „ “, –, €, §), and the widths below let the layout wrap text itself.

/// The two faces the agreement uses; both are base-14 fonts with the same encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Font {
    Regular,
    Bold,
}

impl Font {
    /// The resource name a page's content stream refers to the font by.
    pub(crate) fn resource_name(self) -> &'static [u8] {
        match self {
            Font::Regular => b"F1",
            Font::Bold => b"F2",
        }
    }

    /// The PostScript name of the base-14 font.
    pub(crate) fn base_font(self) -> &'static [u8] {
        match self {
            Font::Regular => b"Helvetica",
            Font::Bold => b"Helvetica-Bold",
        }
    }

    fn widths(self) -> &'static [u16; 224] {
        match self {
            Font::Regular => &HELVETICA_WIDTHS,
            Font::Bold => &HELVETICA_BOLD_WIDTHS,
        }
    }

    /// The widths of codes 32 to 255 in thousandths of an em, for the font dictionary.
    pub(crate) fn width_table(self) -> impl Iterator<Item = f32> {
        self.widths().iter().map(|&width| f32::from(width))
    }

    /// The advance width of WinAnsi-encoded text at `size` points.
    pub(crate) fn width(self, size: f32, text: &[u8]) -> f32 {
        let widths = self.widths();
        let thousandths: u32 = text
            .iter()
            .map(|&byte| {
                usize::from(byte)
                    .checked_sub(0x20)
                    .and_then(|index| widths.get(index))
                    .map_or(0, |&width| u32::from(width))
            })
            .sum();
        thousandths as f32 * size / 1000.0
    }
}

/// Encodes text for the page. Characters WinAnsi lacks are spelled with their base letter
/// (a pupil called Yılmaz or Łukasz gets a printable agreement rather than none), anything
/// else becomes `?`. Line breaks and tabs become spaces; the layout decides where lines end.
pub(crate) fn encode(text: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len());
    for ch in text.chars() {
        if is_invisible(ch) {
            continue;
        } else if let Some(byte) = win_ansi(ch) {
            bytes.push(byte);
        } else if matches!(ch, '\n' | '\r' | '\t') {
            bytes.push(b' ');
        } else if let Some(base) = base_letters(ch) {
            bytes.extend_from_slice(base.as_bytes());
        } else {
            bytes.push(b'?');
        }
    }
    bytes
}

/// The first character of `text` the fonts cannot print as written, if any. Template text is
/// checked with this when it is loaded, because an authority should learn of it then rather
/// than find question marks on printed agreements.
pub(crate) fn first_unprintable(text: &str) -> Option<char> {
    text.chars().find(|&ch| {
        win_ansi(ch).is_none() && !matches!(ch, '\n' | '\r' | '\t') && !is_invisible(ch)
    })
}

/// Soft hyphens and zero-width characters would otherwise print as a visible glyph or a `?`.
fn is_invisible(ch: char) -> bool {
    matches!(
        ch,
        '\u{ad}' | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}'
    )
}

/// The WinAnsiEncoding (code page 1252) byte for a character.
fn win_ansi(ch: char) -> Option<u8> {
    let code = u32::from(ch);
    match code {
        0x20..=0x7e | 0xa0..=0xff => u8::try_from(code).ok(),
        _ => {
            let byte = match ch {
                '€' => 0x80,
                '‚' => 0x82,
                'ƒ' => 0x83,
                '„' => 0x84,
                '…' => 0x85,
                '†' => 0x86,
                '‡' => 0x87,
                'ˆ' => 0x88,
                '‰' => 0x89,
                'Š' => 0x8a,
                '‹' => 0x8b,
                'Œ' => 0x8c,
                'Ž' => 0x8e,
                '‘' => 0x91,
                '’' => 0x92,
                '“' => 0x93,
                '”' => 0x94,
                '•' => 0x95,
                '–' => 0x96,
                '—' => 0x97,
                '˜' => 0x98,
                '™' => 0x99,
                'š' => 0x9a,
                '›' => 0x9b,
                'œ' => 0x9c,
                'ž' => 0x9e,
                'Ÿ' => 0x9f,
                // Non-breaking and figure hyphens have no glyph of their own here.
                '\u{2010}' | '\u{2011}' => b'-',
                '\u{2212}' => b'-',
                '\u{202f}' | '\u{2009}' | '\u{2007}' => 0xa0,
                _ => return None,
            };
            Some(byte)
        }
    }
}

/// The base letters of Latin letters outside WinAnsi that occur in names of pupils in German
/// schools (Turkish, Polish, Czech, Romanian, Croatian, Baltic, ...).
fn base_letters(ch: char) -> Option<&'static str> {
    let base = match ch {
        'Ā' | 'Ă' | 'Ą' | 'Ǎ' => "A",
        'ā' | 'ă' | 'ą' | 'ǎ' => "a",
        'Ć' | 'Ĉ' | 'Ċ' | 'Č' => "C",
        'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'Ď' | 'Đ' => "D",
        'ď' | 'đ' => "d",
        'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => "E",
        'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' | 'Ǧ' => "G",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' | 'ǧ' => "g",
        'Ĥ' | 'Ħ' => "H",
        'ĥ' | 'ħ' => "h",
        'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' | 'Ǐ' => "I",
        'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' | 'ǐ' => "i",
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'Ĵ' => "J",
        'ĵ' => "j",
        'Ķ' => "K",
        'ķ' | 'ĸ' => "k",
        'Ĺ' | 'Ļ' | 'Ľ' | 'Ŀ' | 'Ł' => "L",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'Ń' | 'Ņ' | 'Ň' | 'Ŋ' => "N",
        'ń' | 'ņ' | 'ň' | 'ŉ' | 'ŋ' => "n",
        'Ō' | 'Ŏ' | 'Ő' | 'Ǒ' => "O",
        'ō' | 'ŏ' | 'ő' | 'ǒ' => "o",
        'Ŕ' | 'Ŗ' | 'Ř' => "R",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'Ś' | 'Ŝ' | 'Ş' | 'Ș' => "S",
        'ś' | 'ŝ' | 'ş' | 'ș' | 'ſ' => "s",
        'Ţ' | 'Ť' | 'Ŧ' | 'Ț' => "T",
        'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
        'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' | 'Ǔ' => "U",
        'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' | 'ǔ' => "u",
        'Ŵ' => "W",
        'ŵ' => "w",
        'Ŷ' => "Y",
        'ŷ' => "y",
        'Ź' | 'Ż' => "Z",
        'ź' | 'ż' => "z",
        _ => return None,
    };
    Some(base)
}

// Advance widths in thousandths of an em for WinAnsi codes 0x20 to 0xFF (0 where the code is
// unassigned), taken from Adobe's Core 14 AFM files Helvetica.afm and Helvetica-Bold.afm,
// version 002.000: Copyright (c) 1985, 1987, 1989, 1990, 1997 Adobe Systems Incorporated.
// All Rights Reserved. Helvetica is a trademark of Linotype-Hell AG and/or its subsidiaries.
// Readers draw the glyphs from their own copy of the font; these numbers only steer wrapping.

#[rustfmt::skip]
const HELVETICA_WIDTHS: [u16; 224] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // 0x20
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0x30
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // 0x40
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // 0x50
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // 0x60
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 0, // 0x70
    556, 0, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0, // 0x80
    0, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 0, 500, 667, // 0x90
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333, // 0xA0
    400, 584, 333, 333, 333, 556, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611, // 0xB0
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278, // 0xC0
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611, // 0xD0
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278, // 0xE0
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500, // 0xF0
];

#[rustfmt::skip]
const HELVETICA_BOLD_WIDTHS: [u16; 224] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, // 0x20
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, // 0x30
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778, // 0x40
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, // 0x50
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, // 0x60
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, 0, // 0x70
    556, 0, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0, // 0x80
    0, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 0, 500, 667, // 0x90
    278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333, // 0xA0
    400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611, // 0xB0
    722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278, // 0xC0
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611, // 0xD0
    556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278, // 0xE0
    611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556, // 0xF0
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn german_letters_use_their_win_ansi_codes() {
        assert_eq!(
            encode("äöüÄÖÜß"),
            vec![0xe4, 0xf6, 0xfc, 0xc4, 0xd6, 0xdc, 0xdf]
        );
        assert_eq!(
            encode("„€“ – §"),
            vec![0x84, 0x80, 0x93, b' ', 0x96, b' ', 0xa7]
        );
    }

    #[test]
    fn letters_outside_win_ansi_fall_back_to_their_base_letter() {
        assert_eq!(
            encode("Yılmaz Şahin Łukasz"),
            b"Yilmaz Sahin Lukasz".to_vec()
        );
        assert_eq!(encode("Иван"), b"????".to_vec());
        assert_eq!(first_unprintable("Gemäß Ł"), Some('Ł'));
        assert_eq!(first_unprintable("Gemäß „Schule“\n"), None);
    }

    #[test]
    fn widths_follow_the_afm_metrics() {
        assert!((Font::Regular.width(1000.0, b"a") - 556.0).abs() < 0.01);
        assert!((Font::Bold.width(1000.0, &[0xdf]) - 611.0).abs() < 0.01);
    }
}
