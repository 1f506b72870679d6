//! The page layout of a loan agreement and the PDF around it. Content is built as blocks
//! (a line of text, a row of fields, the signature area) that never split, placed top-down;
//! a block that does not fit any more starts the next page, so a long custom template still
//! prints completely while the default one fits on one A4 page.

use krilla::color::luma;
use krilla::geom::{PathBuilder, Point, Size};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::Stroke;
use krilla::text::KrillaGlyph;
use krilla::{Document, SerializeSettings};
use unicode_bidi::{BidiInfo, Level};

use super::template::{expand, placeholder_value};
use super::text::{first_unprintable, normalize, Font};
use super::{german_date, AgreementData, AgreementError, AgreementTemplate};

const PAGE_WIDTH: f32 = 595.28;
const PAGE_HEIGHT: f32 = 841.89;
const MARGIN_X: f32 = 51.0;
const CONTENT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN_X;
const CONTENT_TOP: f32 = PAGE_HEIGHT - 38.0;
/// Content stops here; the footer sits below.
const CONTENT_BOTTOM: f32 = 56.0;
const FOOTER_RULE_Y: f32 = 46.0;
const FOOTER_BASELINE: f32 = 36.0;

const BODY_SIZE: f32 = 8.5;
const BODY_LEADING: f32 = 10.3;
const HEADING_SIZE: f32 = 9.0;
const HEADING_LEADING: f32 = 12.0;
const TITLE_SIZE: f32 = 14.0;
const SMALL_SIZE: f32 = 7.0;
const COLUMN_GAP: f32 = 18.0;
/// Where a text's baseline sits below the top of its line, as a share of the font size.
const ASCENT: f32 = 0.8;
/// Room for a handwritten signature above each line.
const SIGNING_SPACE: f32 = 26.0;

/// Writes the whole document: the pages of every agreement in order.
/// Returns the PDF and its number of pages.
pub(super) fn render(
    template: &AgreementTemplate,
    agreements: &[AgreementData],
) -> Result<(Vec<u8>, usize), AgreementError> {
    let mut pages: Vec<Vec<Op>> = Vec::new();
    for data in agreements {
        warn_unprintable(data);
        pages.extend(layout_agreement(template, data)?);
    }

    // No tag tree and no XMP: the text is in reading order already, and the document
    // information below is what readers show. krilla compresses the content streams.
    let settings = SerializeSettings {
        enable_tagging: false,
        xmp_metadata: false,
        ..SerializeSettings::default()
    };
    let mut document = Document::new_with(settings);
    let size = Size::from_wh(PAGE_WIDTH, PAGE_HEIGHT).ok_or_else(|| pdf_error("page size"))?;
    for ops in &pages {
        let mut page = document.start_page_with(PageSettings::new(size));
        let mut surface = page.surface();
        for op in ops {
            op.draw(&mut surface);
        }
        surface.finish();
        page.finish();
    }
    // No creation date: the same loans give the same bytes, and the renderer reads no clock.
    document.set_metadata(
        Metadata::new()
            .title(template.title().to_owned())
            .producer("bestand".to_owned())
            .language("de-DE".to_owned()),
    );
    let bytes = document.finish().map_err(|error| match error {
        krilla::error::KrillaError::Font(_, message) => pdf_error(&message),
        other => pdf_error(&format!("{other:?}")),
    })?;
    Ok((bytes, pages.len()))
}

/// A value with a letter the font lacks (a name in Chinese script) still prints, with a box
/// for that letter, so that the pupil gets an agreement; the school is told, by field and loan
/// but without the value, so that it can write the name in by hand.
fn warn_unprintable(data: &AgreementData) {
    let borrower = &data.borrower;
    let device = &data.device;
    let fields: [(&str, Option<&str>); 12] = [
        ("authority", Some(&data.authority.name)),
        ("school", Some(&data.school.name)),
        ("borrower name", Some(&borrower.display_name)),
        ("user name", borrower.username.as_deref()),
        ("class", borrower.class_name.as_deref()),
        ("device category", Some(&device.category)),
        ("manufacturer", device.manufacturer.as_deref()),
        ("model", device.model.as_deref()),
        ("serial number", device.serial_number.as_deref()),
        ("Inventarnummer", device.asset_tag.as_deref()),
        ("handed out by", Some(&data.handed_out_by)),
        ("condition", data.condition.as_deref()),
    ];
    let accessories = data
        .accessories
        .iter()
        .map(|accessory| ("accessories", Some(accessory.as_str())));
    for (field, value) in fields.into_iter().chain(accessories) {
        if let Some(character) = value.and_then(first_unprintable) {
            tracing::warn!(
                loan_id = data.loan_id,
                "the {field} on the agreement of loan {} has a character the agreement's font \
                 lacks (U+{:04X}); it prints as a box",
                data.loan_id,
                u32::from(character)
            );
        }
    }
}

fn pdf_error(message: &str) -> AgreementError {
    AgreementError::Pdf(message.to_owned())
}

/// One word in one face; lines are sequences of words separated by a space.
#[derive(Debug, Clone)]
struct Word {
    font: Font,
    text: String,
    /// The shaped width at 1 pt, so that wrapping shapes each word once.
    width: f32,
}

impl Word {
    fn new(font: Font, text: &str) -> Self {
        Self {
            font,
            text: text.to_owned(),
            width: font.width(1.0, text),
        }
    }

    fn width(&self, size: f32) -> f32 {
        self.width * size
    }
}

fn words(font: Font, text: &str) -> Vec<Word> {
    normalize(text)
        .split(' ')
        .filter(|word| !word.is_empty())
        .map(|word| Word::new(font, word))
        .collect()
}

fn line_width(line: &[Word], size: f32) -> f32 {
    let mut width = 0.0;
    for (index, word) in line.iter().enumerate() {
        if index > 0 {
            width += word.font.space(size);
        }
        width += word.width(size);
    }
    width
}

/// Greedy line filling; a word wider than the line (a long serial number) is cut.
fn wrap(words: &[Word], size: f32, width: f32) -> Vec<Vec<Word>> {
    let mut lines: Vec<Vec<Word>> = Vec::new();
    let mut line: Vec<Word> = Vec::new();
    let mut line_width = 0.0;
    for word in words {
        let word_width = word.width(size);
        let space = word.font.space(size);
        if !line.is_empty() && line_width + space + word_width <= width {
            line_width += space + word_width;
            line.push(word.clone());
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        if word_width <= width {
            line_width = word_width;
            line.push(word.clone());
            continue;
        }
        // Cut after a hyphen, slash, dot or @ where possible, so that a double-barrelled name
        // or an e-mail address breaks where a reader expects it; never between a letter and
        // its combining accent.
        let mut rest: &str = &word.text;
        while rest.chars().nth(1).is_some() && word.font.width(size, rest) > width {
            let cuts: Vec<usize> = rest
                .char_indices()
                .skip(1)
                .filter(|&(_, ch)| !is_combining(ch))
                .map(|(index, _)| index)
                .collect();
            let fit = cuts
                .iter()
                .copied()
                .take_while(|&cut| word.font.width(size, &rest[..cut]) <= width)
                .last()
                .or_else(|| cuts.first().copied())
                .unwrap_or(rest.len());
            let cut = rest[..fit]
                .char_indices()
                .rev()
                .filter(|&(_, ch)| matches!(ch, '-' | '/' | '.' | '@' | '_'))
                .map(|(index, ch)| index + ch.len_utf8())
                .find(|&position| position > 1 && position < fit)
                .unwrap_or(fit);
            lines.push(vec![Word::new(word.font, &rest[..cut])]);
            rest = &rest[cut..];
        }
        let last = Word::new(word.font, rest);
        line_width = last.width(size);
        line.push(last);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Combining marks stay with the letter before them when a word is cut.
fn is_combining(ch: char) -> bool {
    matches!(
        ch,
        '\u{300}'..='\u{36f}'
            | '\u{483}'..='\u{489}'
            | '\u{64b}'..='\u{65f}'
            | '\u{670}'
            | '\u{1ab0}'..='\u{1aff}'
            | '\u{1dc0}'..='\u{1dff}'
            | '\u{20d0}'..='\u{20ff}'
            | '\u{fe20}'..='\u{fe2f}'
    )
}

/// A piece of a line in one face and one direction, shaped and ready to draw.
#[derive(Debug, Clone)]
struct Run {
    font: Font,
    text: String,
    glyphs: Vec<KrillaGlyph>,
}

impl Run {
    fn width(&self, size: f32) -> f32 {
        self.glyphs.iter().map(|glyph| glyph.x_advance).sum::<f32>() * size
    }
}

/// The runs of a line from left to right. The document is German, so a line reads left to
/// right; Arabic or Hebrew words in it (a name) are shaped right to left and ordered by the
/// Unicode bidirectional algorithm, so that a mixed line keeps its reading order.
fn visual_runs(line: &[Word]) -> Vec<Run> {
    let mut text = String::new();
    // Which face each byte of the line is in; a space takes the face of the word before it.
    let mut faces: Vec<(usize, Font)> = Vec::new();
    for (index, word) in line.iter().enumerate() {
        if index > 0 {
            text.push(' ');
        }
        if faces.last().is_none_or(|&(_, font)| font != word.font) {
            faces.push((text.len(), word.font));
        }
        text.push_str(&word.text);
    }
    // Face boundaries within `range`, as ranges in text order.
    let split = |range: std::ops::Range<usize>| -> Vec<(std::ops::Range<usize>, Font)> {
        let mut pieces = Vec::new();
        for (index, &(start, font)) in faces.iter().enumerate() {
            let end = faces.get(index + 1).map_or(text.len(), |&(next, _)| next);
            let (from, to) = (start.max(range.start), end.min(range.end));
            if from < to {
                pieces.push((from..to, font));
            }
        }
        pieces
    };
    let shaped = |range: std::ops::Range<usize>, font: Font, rtl: bool| Run {
        font,
        text: text[range.clone()].to_owned(),
        glyphs: font.shape(&text[range], rtl),
    };

    let bidi = BidiInfo::new(&text, Some(Level::ltr()));
    let Some(paragraph) = bidi.paragraphs.first().filter(|_| bidi.has_rtl()) else {
        return split(0..text.len())
            .into_iter()
            .map(|(range, font)| shaped(range, font, false))
            .collect();
    };
    let (levels, ranges) = bidi.visual_runs(paragraph, paragraph.range.clone());
    let mut runs = Vec::new();
    for range in ranges {
        let rtl = levels[range.start].is_rtl();
        let mut pieces = split(range);
        if rtl {
            pieces.reverse();
        }
        runs.extend(
            pieces
                .into_iter()
                .map(|(range, font)| shaped(range, font, rtl)),
        );
    }
    runs
}

/// A drawing instruction, positioned relative to the top of its block (in points downwards;
/// on a page, from the top of the page).
#[derive(Debug, Clone)]
enum Op {
    Text {
        size: f32,
        x: f32,
        baseline_below_top: f32,
        run: Run,
    },
    Rule {
        from_x: f32,
        to_x: f32,
        below_top: f32,
        thickness: f32,
        gray: f32,
    },
}

impl Op {
    /// The same instruction `offset` points further down.
    fn lowered(&self, offset: f32) -> Op {
        let mut op = self.clone();
        match &mut op {
            Op::Text {
                baseline_below_top, ..
            } => *baseline_below_top += offset,
            Op::Rule { below_top, .. } => *below_top += offset,
        }
        op
    }

    /// Draws an instruction of a page, whose positions are below the top of the page.
    fn draw(&self, surface: &mut krilla::surface::Surface<'_>) {
        match self {
            Op::Text {
                size,
                x,
                baseline_below_top,
                run,
            } => {
                surface.draw_glyphs(
                    Point::from_xy(*x, *baseline_below_top),
                    &run.glyphs,
                    run.font.pdf_font(),
                    &run.text,
                    *size,
                    false,
                );
            }
            Op::Rule {
                from_x,
                to_x,
                below_top,
                thickness,
                gray,
            } => {
                let mut path = PathBuilder::new();
                path.move_to(*from_x, *below_top);
                path.line_to(*to_x, *below_top);
                let Some(path) = path.finish() else {
                    return;
                };
                let lightness = (gray.clamp(0.0, 1.0) * 255.0).round() as u8;
                surface.set_stroke(Some(Stroke {
                    paint: luma::Color::new(lightness).into(),
                    width: *thickness,
                    ..Stroke::default()
                }));
                surface.draw_path(&path);
                // Text after the rule is filled only, not outlined as well.
                surface.set_stroke(None);
            }
        }
    }
}

/// Something that is placed as a whole: never split across pages.
#[derive(Debug, Clone, Default)]
struct Block {
    ops: Vec<Op>,
    height: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
    Center,
}

impl Block {
    fn line(&mut self, line: &[Word], size: f32, x: f32, width: f32, align: Align, top: f32) {
        let runs = visual_runs(line);
        let used: f32 = runs.iter().map(|run| run.width(size)).sum();
        let mut cursor_x = match align {
            Align::Left => x,
            Align::Right => x + width - used,
            Align::Center => x + (width - used) / 2.0,
        };
        for run in runs {
            let run_width = run.width(size);
            self.ops.push(Op::Text {
                size,
                x: cursor_x,
                baseline_below_top: top + size * ASCENT,
                run,
            });
            cursor_x += run_width;
        }
    }

    /// Wrapped text starting `top` below the block's top; returns the height it took.
    fn text(
        &mut self,
        words: &[Word],
        (size, leading): (f32, f32),
        x: f32,
        width: f32,
        align: Align,
        top: f32,
    ) -> f32 {
        let lines = wrap(words, size, width);
        for (index, line) in lines.iter().enumerate() {
            self.line(line, size, x, width, align, top + index as f32 * leading);
        }
        let height = lines.len() as f32 * leading;
        self.height = self.height.max(top + height);
        height
    }

    fn rule(&mut self, from_x: f32, to_x: f32, below_top: f32, thickness: f32, gray: f32) {
        self.ops.push(Op::Rule {
            from_x,
            to_x,
            below_top,
            thickness,
            gray,
        });
        self.height = self.height.max(below_top);
    }

    /// Puts the block on a page with its top at `top` (points above the bottom of the page).
    fn draw(&self, page: &mut Vec<Op>, top: f32) {
        page.extend(self.ops.iter().map(|op| op.lowered(PAGE_HEIGHT - top)));
    }
}

/// Places blocks top-down and opens a new page when the next one does not fit.
struct Pages {
    done: Vec<Vec<Op>>,
    current: Vec<Op>,
    top: f32,
    continuation: Block,
}

impl Pages {
    fn new(continuation: Block) -> Self {
        Self {
            done: Vec::new(),
            current: Vec::new(),
            top: CONTENT_TOP,
            continuation,
        }
    }

    fn place(&mut self, block: &Block) {
        if self.top - block.height < CONTENT_BOTTOM && self.top < CONTENT_TOP {
            let full = std::mem::take(&mut self.current);
            self.done.push(full);
            self.top = CONTENT_TOP;
            self.continuation.draw(&mut self.current, self.top);
            self.top -= self.continuation.height;
        }
        block.draw(&mut self.current, self.top);
        self.top -= block.height;
    }

    /// Vertical space, dropped at the top of a page where it would only push content down.
    fn space(&mut self, height: f32) {
        if self.top < CONTENT_TOP {
            self.top -= height;
        }
    }

    fn finish(mut self) -> Vec<Vec<Op>> {
        self.done.push(self.current);
        self.done
    }
}

/// Text from the template with this agreement's values in place of the placeholders.
fn fill(text: &str, location: &str, data: &AgreementData) -> Result<String, AgreementError> {
    expand(text, location, |name| placeholder_value(name, data)).map_err(|problem| {
        AgreementError::Template {
            origin: None,
            problem,
        }
    })
}

fn layout_agreement(
    template: &AgreementTemplate,
    data: &AgreementData,
) -> Result<Vec<Vec<Op>>, AgreementError> {
    let title = fill(template.title(), "title", data)?;
    let mut continuation = Block::default();
    continuation.text(
        &words(Font::Bold, &format!("{title} (Fortsetzung)")),
        (HEADING_SIZE, HEADING_LEADING),
        MARGIN_X,
        CONTENT_WIDTH,
        Align::Left,
        0.0,
    );
    continuation.height += 6.0;
    let mut pages = Pages::new(continuation);

    pages.place(&letterhead(template, data)?);
    pages.space(12.0);

    let mut title_block = Block::default();
    title_block.text(
        &words(Font::Bold, &title),
        (TITLE_SIZE, TITLE_SIZE * 1.25),
        MARGIN_X,
        CONTENT_WIDTH,
        Align::Center,
        0.0,
    );
    pages.place(&title_block);
    pages.space(6.0);

    let intro = fill(template.intro(), "intro", data)?;
    for block in flowing_text(&intro, &[], MARGIN_X, CONTENT_WIDTH) {
        pages.place(&block);
    }
    pages.space(8.0);

    for block in data_sections(data) {
        pages.place(&block);
    }
    pages.space(6.0);

    for (index, clause) in template.clauses().iter().enumerate() {
        let number = index + 1;
        let heading = fill(
            &clause.heading,
            &format!("heading of clause {number}"),
            data,
        )?;
        let text = fill(&clause.text, &format!("text of clause {number}"), data)?;
        // The heading runs into the clause's first line: on one A4 page with the signatures
        // below, there is no room for seven heading lines of their own.
        let heading = words(Font::Bold, &format!("§ {number} {heading}"));
        pages.space(3.0);
        for block in flowing_text(&text, &heading, MARGIN_X, CONTENT_WIDTH) {
            pages.place(&block);
        }
    }
    pages.space(10.0);

    pages.place(&signatures(template, data)?);

    let footer = fill(template.footer(), "footer", data)?;
    let mut contents = pages.finish();
    let page_count = contents.len();
    for (index, content) in contents.iter_mut().enumerate() {
        draw_footer(content, &footer, data.loan_id, index + 1, page_count);
    }
    Ok(contents)
}

/// Template text as one block per line, so that a long clause may continue on the next page.
/// A single line break is a space, an empty line starts a paragraph and `- ` a bullet point.
/// `lead` (a clause's heading) opens the first paragraph.
fn flowing_text(text: &str, lead: &[Word], x: f32, width: f32) -> Vec<Block> {
    const PARAGRAPH_GAP: f32 = 3.0;
    const BULLET_INDENT: f32 = 10.0;

    let mut paragraphs: Vec<(bool, String)> = Vec::new();
    let mut open = false;
    for raw_line in text.lines() {
        let line = raw_line.trim();
        if line.is_empty() {
            open = false;
        } else if let Some(item) = line.strip_prefix("- ") {
            paragraphs.push((true, item.to_owned()));
            open = true;
        } else if let Some((_, paragraph)) = paragraphs.last_mut().filter(|_| open) {
            paragraph.push(' ');
            paragraph.push_str(line);
        } else {
            paragraphs.push((false, line.to_owned()));
            open = true;
        }
    }

    if !lead.is_empty() && paragraphs.first().is_none_or(|(bullet, _)| *bullet) {
        paragraphs.insert(0, (false, String::new()));
    }
    let mut blocks = Vec::new();
    for (index, (bullet, paragraph)) in paragraphs.iter().enumerate() {
        let gap = if index > 0 { PARAGRAPH_GAP } else { 0.0 };
        let indent = if *bullet { BULLET_INDENT } else { 0.0 };
        let mut paragraph_words = if index == 0 {
            lead.to_vec()
        } else {
            Vec::new()
        };
        paragraph_words.extend(words(Font::Regular, paragraph));
        let lines = wrap(&paragraph_words, BODY_SIZE, width - indent);
        for (line_index, line) in lines.iter().enumerate() {
            let mut block = Block::default();
            let top = if line_index == 0 { gap } else { 0.0 };
            if *bullet && line_index == 0 {
                block.line(
                    &words(Font::Regular, "•"),
                    BODY_SIZE,
                    x + 2.0,
                    indent,
                    Align::Left,
                    top,
                );
            }
            block.line(
                line,
                BODY_SIZE,
                x + indent,
                width - indent,
                Align::Left,
                top,
            );
            block.height = top + BODY_LEADING;
            blocks.push(block);
        }
    }
    blocks
}

/// The authority's letterhead on the left, the lending school on the right.
fn letterhead(template: &AgreementTemplate, data: &AgreementData) -> Result<Block, AgreementError> {
    let mut block = Block::default();
    let left_width = CONTENT_WIDTH * 0.58;
    let mut top = 0.0;
    for (index, line) in template.letterhead().iter().enumerate() {
        let text = fill(line, &format!("letterhead line {}", index + 1), data)?;
        let (font, size) = if index == 0 {
            (Font::Bold, 10.5)
        } else {
            (Font::Regular, BODY_SIZE)
        };
        top += block.text(
            &words(font, &text),
            (size, size * 1.3),
            MARGIN_X,
            left_width,
            Align::Left,
            top,
        );
    }

    let right_x = MARGIN_X + left_width + COLUMN_GAP;
    let right_width = CONTENT_WIDTH - left_width - COLUMN_GAP;
    let school_height = block.text(
        &words(Font::Bold, &data.school.name),
        (HEADING_SIZE, HEADING_LEADING),
        right_x,
        right_width,
        Align::Right,
        0.0,
    );
    if !data.school.school_number.trim().is_empty() {
        block.text(
            &words(
                Font::Regular,
                &format!("Schulnummer {}", data.school.school_number),
            ),
            (BODY_SIZE, BODY_LEADING),
            right_x,
            right_width,
            Align::Right,
            school_height,
        );
    }
    let rule_at = block.height + 5.0;
    block.rule(MARGIN_X, MARGIN_X + CONTENT_WIDTH, rule_at, 0.6, 0.45);
    Ok(block)
}

/// A label and its value; `None` prints a dash so that a blank is visibly unknown.
type Field = (&'static str, Option<String>);

fn field(label: &'static str, value: Option<&str>) -> Field {
    let value = value.map(str::trim).filter(|value| !value.is_empty());
    (label, value.map(str::to_owned))
}

/// Label and value rows in a column; returns the height taken.
fn fields(
    block: &mut Block,
    rows: &[Field],
    x: f32,
    width: f32,
    label_width: f32,
    top: f32,
) -> f32 {
    let mut used = 0.0;
    for (label, value) in rows {
        let label_height = block.text(
            &words(Font::Regular, &format!("{label}:")),
            (BODY_SIZE, BODY_LEADING),
            x,
            label_width,
            Align::Left,
            top + used,
        );
        let value = value.as_deref().unwrap_or("—");
        let value_height = block.text(
            &words(Font::Bold, value),
            (BODY_SIZE, BODY_LEADING),
            x + label_width,
            width - label_width,
            Align::Left,
            top + used,
        );
        used += label_height.max(value_height);
    }
    used
}

fn label_width(rows: &[&[Field]]) -> f32 {
    rows.iter()
        .flat_map(|rows| rows.iter())
        .map(|(label, _)| Font::Regular.width(BODY_SIZE, &format!("{label}:")))
        .fold(0.0, f32::max)
        + 6.0
}

/// A bold heading with a hairline under it, across one column.
fn section_heading(block: &mut Block, heading: &str, x: f32, width: f32) -> f32 {
    let height = block.text(
        &words(Font::Bold, heading),
        (HEADING_SIZE, HEADING_LEADING),
        x,
        width,
        Align::Left,
        0.0,
    );
    block.rule(x, x + width, height - 1.0, 0.4, 0.6);
    height + 2.0
}

/// Who lends, who borrows, and what: the facts the signatures refer to.
fn data_sections(data: &AgreementData) -> Vec<Block> {
    let column_width = (CONTENT_WIDTH - COLUMN_GAP) / 2.0;
    let right_x = MARGIN_X + column_width + COLUMN_GAP;
    let borrower = &data.borrower;
    let device = &data.device;

    let lender: Vec<Field> = vec![
        field("Schulträger", Some(&data.authority.name)),
        field("Schule", Some(&data.school.name)),
        field("Ausgabe durch", Some(&data.handed_out_by)),
    ];
    let borrower_rows: Vec<Field> = vec![
        field("Name", Some(&borrower.display_name)),
        field("Rolle", Some(borrower.role.label())),
        field("Klasse", borrower.class_name.as_deref()),
        field("Benutzername", borrower.username.as_deref()),
    ];
    let device_left: Vec<Field> = vec![
        field("Gerät", Some(&device.category)),
        field("Hersteller", device.manufacturer.as_deref()),
        field("Modell", device.model.as_deref()),
    ];
    let device_right: Vec<Field> = vec![
        field("Seriennummer", device.serial_number.as_deref()),
        field("Inventarnummer", device.asset_tag.as_deref()),
    ];
    let accessories: Vec<&str> = data
        .accessories
        .iter()
        .map(|accessory| accessory.trim())
        .filter(|accessory| !accessory.is_empty())
        .collect();
    let accessories = if accessories.is_empty() {
        "keines".to_owned()
    } else {
        accessories.join(", ")
    };
    let handed_out: Vec<Field> = vec![field("Ausgabe am", Some(&german_date(data.handed_out_on)))];
    let due: Vec<Field> = vec![match data.due_on {
        Some(due_on) => field("Rückgabe bis", Some(&german_date(due_on))),
        None => field("Rückgabe", Some("bis auf Widerruf")),
    }];
    let accessory_rows: Vec<Field> = vec![field("Zubehör", Some(&accessories))];
    let condition: Vec<Field> = vec![field(
        "Zustand bei Ausgabe",
        Some(data.condition.as_deref().unwrap_or("keine Mängel vermerkt")),
    )];
    // Each column aligns its own values; the wide rows start in the left column.
    let left_labels = label_width(&[
        &lender,
        &device_left,
        &handed_out,
        &accessory_rows,
        &condition,
    ]);
    let right_labels = label_width(&[&borrower_rows, &device_right, &due]);

    let mut parties = Block::default();
    let left_heading = section_heading(&mut parties, "Verleiher", MARGIN_X, column_width);
    section_heading(&mut parties, "Entleihende Person", right_x, column_width);
    fields(
        &mut parties,
        &lender,
        MARGIN_X,
        column_width,
        left_labels,
        left_heading,
    );
    fields(
        &mut parties,
        &borrower_rows,
        right_x,
        column_width,
        right_labels,
        left_heading,
    );
    parties.height += 8.0;

    let mut item = Block::default();
    let mut top = section_heading(&mut item, "Leihgegenstand", MARGIN_X, CONTENT_WIDTH);
    let left = fields(
        &mut item,
        &device_left,
        MARGIN_X,
        column_width,
        left_labels,
        top,
    );
    let right = fields(
        &mut item,
        &device_right,
        right_x,
        column_width,
        right_labels,
        top,
    );
    top += left.max(right);
    top += fields(
        &mut item,
        &accessory_rows,
        MARGIN_X,
        CONTENT_WIDTH,
        left_labels,
        top,
    );
    let left = fields(
        &mut item,
        &handed_out,
        MARGIN_X,
        column_width,
        left_labels,
        top,
    );
    let right = fields(&mut item, &due, right_x, column_width, right_labels, top);
    top += left.max(right);
    fields(
        &mut item,
        &condition,
        MARGIN_X,
        CONTENT_WIDTH,
        left_labels,
        top,
    );

    vec![parties, item]
}

/// The confirmation and the signature lines: one column for the school, one for the borrower
/// and, for minors, one for the guardians; each with its own place and date.
fn signatures(template: &AgreementTemplate, data: &AgreementData) -> Result<Block, AgreementError> {
    const LABEL_LEADING: f32 = SMALL_SIZE * 1.25;
    let labels = template.signatures();
    let mut block = Block::default();
    let statement = fill(&labels.statement, "signatures.statement", data)?;
    let mut top = block.text(
        &words(Font::Regular, &statement),
        (BODY_SIZE, BODY_LEADING),
        MARGIN_X,
        CONTENT_WIDTH,
        Align::Left,
        0.0,
    );

    let mut signers = vec![
        fill(&labels.school, "signatures.school", data)?,
        fill(&labels.borrower, "signatures.borrower", data)?,
    ];
    if data.borrower.minor {
        signers.push(fill(&labels.guardians, "signatures.guardians", data)?);
    }
    let place_date = fill(&labels.place_date, "signatures.place_date", data)?;
    let gap = 16.0;
    let count = signers.len() as f32;
    let width = (CONTENT_WIDTH - gap * (count - 1.0)) / count;

    top += SIGNING_SPACE;
    let mut second_row = 0.0_f32;
    for (index, _) in signers.iter().enumerate() {
        let x = MARGIN_X + index as f32 * (width + gap);
        block.rule(x, x + width, top, 0.6, 0.0);
        let height = block.text(
            &words(Font::Regular, &place_date),
            (SMALL_SIZE, LABEL_LEADING),
            x,
            width,
            Align::Left,
            top + 2.0,
        );
        second_row = second_row.max(top + 2.0 + height + SIGNING_SPACE);
    }
    for (index, signer) in signers.iter().enumerate() {
        let x = MARGIN_X + index as f32 * (width + gap);
        block.rule(x, x + width, second_row, 0.6, 0.0);
        block.text(
            &words(Font::Regular, signer),
            (SMALL_SIZE, LABEL_LEADING),
            x,
            width,
            Align::Left,
            second_row + 2.0,
        );
    }
    Ok(block)
}

fn draw_footer(ops: &mut Vec<Op>, footer: &str, loan_id: i64, page: usize, pages: usize) {
    let mut block = Block::default();
    let top = FOOTER_RULE_Y;
    block.rule(MARGIN_X, MARGIN_X + CONTENT_WIDTH, 0.0, 0.4, 0.6);
    let reference = format!("Leihvertrag Nr. {loan_id} · Seite {page} von {pages}");
    let reference_words = words(Font::Regular, &reference);
    let reference_width = line_width(&reference_words, SMALL_SIZE);
    let baseline_top = FOOTER_RULE_Y - FOOTER_BASELINE - SMALL_SIZE * ASCENT;
    block.line(
        &reference_words,
        SMALL_SIZE,
        MARGIN_X,
        CONTENT_WIDTH,
        Align::Right,
        baseline_top,
    );
    // The footer text gets what the reference leaves, on at most two lines.
    let footer_width = CONTENT_WIDTH - reference_width - COLUMN_GAP;
    for (index, line) in wrap(&words(Font::Regular, footer), SMALL_SIZE, footer_width)
        .iter()
        .take(2)
        .enumerate()
    {
        block.line(
            line,
            SMALL_SIZE,
            MARGIN_X,
            footer_width,
            Align::Left,
            baseline_top + index as f32 * SMALL_SIZE * 1.25,
        );
    }
    block.draw(ops, top);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_lines_within_the_width() {
        let text = words(
            Font::Regular,
            &"Sorgfaltspflichten der entleihenden Person ".repeat(20),
        );
        let lines = wrap(&text, BODY_SIZE, 200.0);
        assert!(lines.len() > 5);
        assert!(lines
            .iter()
            .all(|line| line_width(line, BODY_SIZE) <= 200.0));
    }

    #[test]
    fn a_word_longer_than_the_line_is_cut() {
        let text = words(Font::Regular, &"X".repeat(200));
        let lines = wrap(&text, BODY_SIZE, 100.0);
        assert!(lines.len() > 1);
        assert!(lines
            .iter()
            .all(|line| line_width(line, BODY_SIZE) <= 100.0));
        let total: usize = lines.iter().flatten().map(|word| word.text.len()).sum();
        assert_eq!(total, 200);
    }

    #[test]
    fn a_long_word_is_never_cut_between_a_letter_and_its_accent() {
        // "é" as e and a combining acute, as some systems store names.
        let text = words(Font::Regular, &"e\u{301}".repeat(60));
        let lines = wrap(&text, BODY_SIZE, 40.0);
        assert!(lines.len() > 1);
        for word in lines.iter().flatten() {
            assert!(word.text.starts_with('e'), "{:?}", word.text);
        }
        let total: usize = lines.iter().flatten().map(|word| word.text.len()).sum();
        assert_eq!(total, "e\u{301}".len() * 60);
    }

    #[test]
    fn an_arabic_name_reads_right_to_left_inside_a_german_line() {
        let line = words(Font::Regular, "überlässt محمد العلي (Klasse 5a) das Gerät");
        let runs = visual_runs(&line);
        let texts: Vec<&str> = runs.iter().map(|run| run.text.as_str()).collect();
        // Left to right on the page: the German start, the name, the rest of the sentence.
        assert_eq!(
            texts,
            ["überlässt ", "محمد العلي", " (Klasse 5a) das Gerät"]
        );
        // The name's glyphs are drawn from its last letter (left) to its first (right), so
        // محمد stands to the right of العلي.
        let name = &runs[1];
        let first_drawn = name.glyphs.first().map(|glyph| glyph.text_range.start);
        let last_drawn = name.glyphs.last().map(|glyph| glyph.text_range.start);
        assert_eq!(last_drawn, Some(0));
        assert!(first_drawn > Some("محمد ".len()));
        // The line is as wide as its words and spaces, so wrapping measured what is drawn.
        let drawn: f32 = runs.iter().map(|run| run.width(BODY_SIZE)).sum();
        assert!(
            (drawn - line_width(&line, BODY_SIZE)).abs() < 0.5,
            "{drawn}"
        );
    }

    #[test]
    fn a_line_of_two_faces_keeps_both() {
        let mut line = words(Font::Bold, "§ 1 Zweck");
        line.extend(words(Font::Regular, "Das Gerät"));
        let runs = visual_runs(&line);
        let faces: Vec<(Font, &str)> = runs
            .iter()
            .map(|run| (run.font, run.text.as_str()))
            .collect();
        assert_eq!(
            faces,
            [(Font::Bold, "§ 1 Zweck "), (Font::Regular, "Das Gerät")]
        );
    }

    #[test]
    fn bullets_and_paragraphs_are_recognised() {
        let blocks = flowing_text(
            "Erster\nAbsatz.\n\n- eins\n- zwei",
            &[],
            MARGIN_X,
            CONTENT_WIDTH,
        );
        assert_eq!(blocks.len(), 3);
    }
}
