//! The page layout of a loan agreement and the PDF around it. Content is built as blocks
//! (a line of text, a row of fields, the signature area) that never split, placed top-down;
//! a block that does not fit any more starts the next page, so a long custom template still
//! prints completely while the default one fits on one A4 page.

use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use super::template::{expand, placeholder_value};
use super::text::{encode, Font};
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

/// Writes the whole document: a page tree over the pages of every agreement in order.
/// Returns the PDF and its number of pages.
pub(super) fn render(
    template: &AgreementTemplate,
    agreements: &[AgreementData],
) -> Result<(Vec<u8>, usize), AgreementError> {
    let mut pages: Vec<Vec<u8>> = Vec::new();
    for data in agreements {
        for content in layout_agreement(template, data)? {
            // Compressed, a page is about 6 instead of 15 kB; a whole year group stays mailable.
            pages.push(miniz_oxide::deflate::compress_to_vec_zlib(
                &content.finish(),
                6,
            ));
        }
    }

    let mut pdf = Pdf::new();
    let catalog_id = Ref::new(1);
    let page_tree_id = Ref::new(2);
    let info_id = Ref::new(3);
    let regular_id = Ref::new(4);
    let bold_id = Ref::new(5);
    let first_page_ref = 6;
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|index| Ref::new(first_page_ref + 2 * index as i32))
        .collect();

    pdf.catalog(catalog_id)
        .pages(page_tree_id)
        .lang(TextStr("de-DE"));
    pdf.pages(page_tree_id)
        .kids(page_ids.iter().copied())
        .count(pages.len() as i32);
    // Readers that substitute a look-alike font (no Helvetica on the system) still place the
    // glyphs with the widths the lines were wrapped for.
    for (font, id) in [(Font::Regular, regular_id), (Font::Bold, bold_id)] {
        pdf.type1_font(id)
            .base_font(Name(font.base_font()))
            .encoding_predefined(Name(b"WinAnsiEncoding"))
            .first_char(32)
            .last_char(255)
            .widths(font.width_table());
    }
    for (page_id, stream) in page_ids.iter().zip(&pages) {
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT));
        page.parent(page_tree_id);
        page.contents(content_id);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(Name(Font::Regular.resource_name()), regular_id);
        fonts.pair(Name(Font::Bold.resource_name()), bold_id);
        fonts.finish();
        resources.finish();
        page.finish();
        pdf.stream(content_id, stream).filter(Filter::FlateDecode);
    }
    // No creation date: the same loans give the same bytes, and the renderer reads no clock.
    pdf.document_info(info_id)
        .title(TextStr(template.title()))
        .producer(TextStr("bestand"));
    Ok((pdf.finish(), pages.len()))
}

/// One word in one face; lines are sequences of words separated by a space.
#[derive(Debug, Clone)]
struct Word {
    font: Font,
    bytes: Vec<u8>,
}

fn words(font: Font, text: &str) -> Vec<Word> {
    encode(text)
        .split(|&byte| byte == b' ')
        .filter(|word| !word.is_empty())
        .map(|word| Word {
            font,
            bytes: word.to_vec(),
        })
        .collect()
}

fn line_width(line: &[Word], size: f32) -> f32 {
    let mut width = 0.0;
    for (index, word) in line.iter().enumerate() {
        if index > 0 {
            width += word.font.width(size, b" ");
        }
        width += word.font.width(size, &word.bytes);
    }
    width
}

/// Greedy line filling; a word wider than the line (a long serial number) is cut.
fn wrap(words: &[Word], size: f32, width: f32) -> Vec<Vec<Word>> {
    let mut lines: Vec<Vec<Word>> = Vec::new();
    let mut line: Vec<Word> = Vec::new();
    let mut line_width = 0.0;
    for word in words {
        let word_width = word.font.width(size, &word.bytes);
        let space = word.font.width(size, b" ");
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
        // or an e-mail address breaks where a reader expects it.
        let mut rest: &[u8] = &word.bytes;
        while rest.len() > 1 && word.font.width(size, rest) > width {
            let mut fit = 1;
            while fit < rest.len() && word.font.width(size, &rest[..=fit]) <= width {
                fit += 1;
            }
            let cut = rest[..fit]
                .iter()
                .rposition(|byte| matches!(byte, b'-' | b'/' | b'.' | b'@' | b'_'))
                .filter(|&position| position > 0)
                .map_or(fit, |position| position + 1);
            lines.push(vec![Word {
                font: word.font,
                bytes: rest[..cut].to_vec(),
            }]);
            rest = &rest[cut..];
        }
        line_width = word.font.width(size, rest);
        line.push(Word {
            font: word.font,
            bytes: rest.to_vec(),
        });
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A drawing instruction, positioned relative to the top of its block.
#[derive(Debug, Clone)]
enum Op {
    Text {
        font: Font,
        size: f32,
        x: f32,
        baseline_below_top: f32,
        bytes: Vec<u8>,
    },
    Rule {
        from_x: f32,
        to_x: f32,
        below_top: f32,
        thickness: f32,
        gray: f32,
    },
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
        let used = line_width(line, size);
        let mut cursor_x = match align {
            Align::Left => x,
            Align::Right => x + width - used,
            Align::Center => x + (width - used) / 2.0,
        };
        // Consecutive words of one face become one text run.
        let mut index = 0;
        while let Some(first) = line.get(index) {
            let font = first.font;
            let mut run: Vec<u8> = Vec::new();
            while let Some(word) = line.get(index).filter(|word| word.font == font) {
                if !run.is_empty() {
                    run.push(b' ');
                }
                run.extend_from_slice(&word.bytes);
                index += 1;
            }
            let run_width = font.width(size, &run);
            self.ops.push(Op::Text {
                font,
                size,
                x: cursor_x,
                baseline_below_top: top + size * ASCENT,
                bytes: run,
            });
            cursor_x += run_width + font.width(size, b" ");
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

    fn draw(&self, content: &mut Content, top: f32) {
        for op in &self.ops {
            match op {
                Op::Text {
                    font,
                    size,
                    x,
                    baseline_below_top,
                    bytes,
                } => {
                    content.begin_text();
                    content.set_font(Name(font.resource_name()), *size);
                    content.next_line(*x, top - baseline_below_top);
                    content.show(Str(bytes));
                    content.end_text();
                }
                Op::Rule {
                    from_x,
                    to_x,
                    below_top,
                    thickness,
                    gray,
                } => {
                    content.save_state();
                    content.set_line_width(*thickness);
                    content.set_stroke_gray(*gray);
                    content.move_to(*from_x, top - below_top);
                    content.line_to(*to_x, top - below_top);
                    content.stroke();
                    content.restore_state();
                }
            }
        }
    }
}

/// Places blocks top-down and opens a new page when the next one does not fit.
struct Pages {
    done: Vec<Content>,
    current: Content,
    top: f32,
    continuation: Block,
}

impl Pages {
    fn new(continuation: Block) -> Self {
        Self {
            done: Vec::new(),
            current: Content::new(),
            top: CONTENT_TOP,
            continuation,
        }
    }

    fn place(&mut self, block: &Block) {
        if self.top - block.height < CONTENT_BOTTOM && self.top < CONTENT_TOP {
            let full = std::mem::replace(&mut self.current, Content::new());
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

    fn finish(mut self) -> Vec<Content> {
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
) -> Result<Vec<Content>, AgreementError> {
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
        .map(|(label, _)| Font::Regular.width(BODY_SIZE, &encode(&format!("{label}:"))))
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

fn draw_footer(content: &mut Content, footer: &str, loan_id: i64, page: usize, pages: usize) {
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
    block.draw(content, top);
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
        let total: usize = lines.iter().flatten().map(|word| word.bytes.len()).sum();
        assert_eq!(total, 200);
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
