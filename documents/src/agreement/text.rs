//! The agreement's typeface and how text becomes glyphs. Pupils' names come in Turkish, Polish,
//! Vietnamese, Cyrillic, Greek and Arabic script, which no PDF reader's built-in font carries;
//! so the agreement embeds DejaVu Sans Condensed (compiled into the binary from the `dejavu`
//! crate, and subset into each PDF by krilla; the condensed cut has about Helvetica's widths,
//! so an agreement still fits one page) and shapes text with rustybuzz, which joins Arabic letters
//! and places stacked diacritics. The layout wraps with the same shaped widths the page shows.

use std::ops::Range;
use std::sync::LazyLock;

use krilla::text::{GlyphId, KrillaGlyph};
use rustybuzz::{Direction, UnicodeBuffer};

/// The two faces the agreement uses: one family, so that bold headings match the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Font {
    Regular,
    Bold,
}

/// One face, parsed once per process: for shaping, and for krilla to embed.
struct Face {
    shaper: rustybuzz::Face<'static>,
    pdf: krilla::text::Font,
    /// The advance of a space in ems, which separates the words of a line.
    space: f32,
}

impl Face {
    fn load(bytes: &'static [u8], name: &str) -> Self {
        // The bytes are compiled in, so a face that does not parse is a broken build, not input.
        let shaper = rustybuzz::Face::from_slice(bytes, 0)
            .unwrap_or_else(|| panic!("the bundled font {name} does not parse"));
        let pdf = krilla::text::Font::new(krilla::Data::from(bytes), 0)
            .unwrap_or_else(|| panic!("krilla cannot read the bundled font {name}"));
        let mut face = Self {
            shaper,
            pdf,
            space: 0.0,
        };
        face.space = face
            .shape(" ", None)
            .iter()
            .map(|glyph| glyph.x_advance)
            .sum();
        face
    }

    /// Glyphs in visual order with advances in ems; each glyph's text range is its cluster in
    /// `text`. `rtl` forces a direction; `None` lets the script decide (for measuring).
    fn shape(&self, text: &str, rtl: Option<bool>) -> Vec<KrillaGlyph> {
        let mut buffer = UnicodeBuffer::new();
        buffer.push_str(text);
        buffer.guess_segment_properties();
        match rtl {
            Some(true) => buffer.set_direction(Direction::RightToLeft),
            Some(false) => buffer.set_direction(Direction::LeftToRight),
            None => {}
        }
        let output = rustybuzz::shape(&self.shaper, &[], buffer);
        let units = self.shaper.units_per_em() as f32;
        // A cluster ends where the next one (in text order) starts, whatever the direction.
        let mut starts: Vec<usize> = output
            .glyph_infos()
            .iter()
            .map(|info| info.cluster as usize)
            .collect();
        starts.sort_unstable();
        starts.dedup();
        let cluster = |start: usize| -> Range<usize> {
            let end = starts
                .iter()
                .copied()
                .find(|&next| next > start)
                .unwrap_or(text.len());
            start..end
        };
        output
            .glyph_infos()
            .iter()
            .zip(output.glyph_positions())
            .map(|(info, position)| {
                KrillaGlyph::new(
                    GlyphId::new(info.glyph_id),
                    position.x_advance as f32 / units,
                    position.x_offset as f32 / units,
                    position.y_offset as f32 / units,
                    position.y_advance as f32 / units,
                    cluster(info.cluster as usize),
                    None,
                )
            })
            .collect()
    }
}

static REGULAR: LazyLock<Face> =
    LazyLock::new(|| Face::load(dejavu::sans_condensed::regular(), "DejaVu Sans Condensed"));
static BOLD: LazyLock<Face> =
    LazyLock::new(|| Face::load(dejavu::sans_condensed::bold(), "DejaVu Sans Condensed Bold"));

impl Font {
    fn face(self) -> &'static Face {
        match self {
            Font::Regular => &REGULAR,
            Font::Bold => &BOLD,
        }
    }

    /// The face for krilla to embed; it subsets it to the glyphs a document uses.
    pub(crate) fn pdf_font(self) -> krilla::text::Font {
        self.face().pdf.clone()
    }

    /// Shaped glyphs of one direction run, in the order they are drawn left to right.
    pub(crate) fn shape(self, text: &str, rtl: bool) -> Vec<KrillaGlyph> {
        self.face().shape(text, Some(rtl))
    }

    /// The advance width of `text` at `size` points, in ems when `size` is 1.
    pub(crate) fn width(self, size: f32, text: &str) -> f32 {
        let ems: f32 = self
            .face()
            .shape(text, None)
            .iter()
            .map(|glyph| glyph.x_advance)
            .sum();
        ems * size
    }

    /// The width of the space between two words at `size` points.
    pub(crate) fn space(self, size: f32) -> f32 {
        self.face().space * size
    }

    fn covers(self, ch: char) -> bool {
        self.face().shaper.glyph_index(ch).is_some()
    }
}

/// Text as the layout takes it: line breaks, tabs and paragraph separators become spaces (the
/// layout decides where lines end) and invisible characters go, which would otherwise print
/// as a box.
pub(crate) fn normalize(text: &str) -> String {
    text.chars()
        .filter(|&ch| !is_invisible(ch))
        .map(|ch| if is_break(ch) { ' ' } else { ch })
        .collect()
}

/// The first character of `text` the fonts cannot print, if any. Template text is checked
/// with this when it is loaded, because an authority should learn of it then rather than find
/// boxes on printed agreements; for a loan's data it is a warning (`pdf.rs`).
pub(crate) fn first_unprintable(text: &str) -> Option<char> {
    text.chars().find(|&ch| {
        let printable = Font::Regular.covers(ch) && Font::Bold.covers(ch);
        !(printable || is_break(ch) || is_invisible(ch))
    })
}

fn is_break(ch: char) -> bool {
    matches!(
        ch,
        '\n' | '\r' | '\t' | '\u{0b}' | '\u{0c}' | '\u{1c}'
            ..='\u{1f}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// Soft hyphens, zero-width characters and bidi controls would otherwise print as a box; the
/// direction of text is worked out from its letters (`pdf.rs`).
fn is_invisible(ch: char) -> bool {
    matches!(
        ch,
        '\u{ad}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_every_script_of_the_directory_are_printable() {
        for name in [
            "Şükrü Yılmaz",
            "Ayşe Güneş",
            "İlkay Gündoğan",
            "Łukasz Wójcik",
            "Małgorzata Żółć",
            "Nguyễn Thị Phương",
            "Trần Văn Đức",
            "Ștefan Ionuț",
            "Анна Иванова",
            "Γιώργος Παπαδόπουλος",
            "محمد العلي",
            "„Gemäß § 598 BGB“ – 5 € • …",
        ] {
            assert_eq!(first_unprintable(name), None, "{name}");
        }
        assert_eq!(first_unprintable("Vertrag 借"), Some('借'));
    }

    #[test]
    fn arabic_letters_are_joined_into_their_contextual_forms() {
        // Alone, each letter of محمد gets its isolated form; in the word, the shaper picks
        // initial, medial and final forms, which are other glyphs.
        let word = Font::Regular.shape("محمد", true);
        let isolated: Vec<GlyphId> = "محمد"
            .chars()
            .rev()
            .map(|ch| Font::Regular.shape(&ch.to_string(), true)[0].glyph_id)
            .collect();
        let joined: Vec<GlyphId> = word.iter().map(|glyph| glyph.glyph_id).collect();
        assert_eq!(joined.len(), 4);
        assert_ne!(joined, isolated);
        // Right to left: the first glyph drawn is the last letter, د.
        assert_eq!(word[0].text_range, "محم".len().."محمد".len());
    }

    #[test]
    fn widths_come_from_the_font() {
        // DejaVu Sans Condensed: "i" is narrower than "m", bold is wider than regular.
        assert!(Font::Regular.width(10.0, "i") < Font::Regular.width(10.0, "m"));
        assert!(Font::Regular.width(10.0, "Schule") < Font::Bold.width(10.0, "Schule"));
        let word = Font::Regular.width(10.0, "Łukasz");
        assert!(word > 20.0 && word < 50.0, "{word}");
        assert!(Font::Regular.space(10.0) > 2.0);
    }

    #[test]
    fn invisible_characters_go_and_breaks_become_spaces() {
        assert_eq!(
            normalize("Ge\u{ad}rät\nund\tZu\u{200b}behör"),
            "Gerät und Zubehör"
        );
        assert_eq!(first_unprintable("Gemäß „Schule“\n"), None);
    }
}
