//! Case documents as PDF/A-2b, from their Markdown rendering.
//!
//! # Why krilla
//!
//! The archive wants PDF/A (Noark 5 names PDF/A as an archival format), so
//! the writer must produce conforming files, not just PDFs: embedded and
//! subset fonts with ToUnicode maps (so text can be searched and copied, and
//! `pdftotext` gets the Norwegian letters back), an sRGB output intent, XMP
//! metadata declaring the part and conformance, no transparency groups that
//! PDF/A forbids. krilla is pure Rust, writes PDF/A-1/2/3 (b, u, a) and
//! checks the rules while it writes: a document that would break PDF/A-2b
//! fails to export instead of reaching the archive broken. It builds on
//! rustc 1.95 beside our other dependencies, needs no C libraries, and its
//! text shaping (rustybuzz) handles æ, ø and å through the font's own
//! tables. Typst as a library would also produce PDF/A, but brings a whole
//! typesetting language and its compiler for documents this small; printpdf
//! and lopdf leave PDF/A conformance to the caller.
//!
//! # What is rendered
//!
//! The Markdown the templates write (`render::markdown`): `#`/`##`/`###`
//! headings, paragraphs (each source line its own line, as in chat),
//! `- ` and `1. ` lists, `**bold**`, pipe tables (`| a | b |` with a
//! `|---|---|` line under the header), and signature lines — a run of four
//! or more underscores (`Elev: ________`) becomes a ruled line with room to
//! sign. An image line `![text](name)` places the chart `name`; charts not
//! placed that way follow the text. Text is DejaVu Sans (embedded).
//!
//! Intended call site: when a document is final, the chat layer renders it
//! (`render::Renderer::render`), calls [`render_pdf`] with the Markdown and
//! the case's charts ([`crate::insight::charts`]), attaches the PDF to the
//! thread and hands it to the archive ([`crate::archive::ArchiveDocument`]).

use crate::insight::charts::{SANS, SANS_BOLD};
use ab_glyph::{Font as _, FontRef};
use chrono::{DateTime, Datelike, Timelike, Utc};
use krilla::color::rgb;
use krilla::configure::{Archival, ConfigurationBuilder};
use krilla::geom::{PathBuilder, Point, Rect, Size};
use krilla::image::Image;
use krilla::metadata::{DateTime as PdfDateTime, Metadata};
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, TextDirection};
use krilla::{Document, SerializeSettings};

/// What went wrong while making a PDF.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// The embedded font could not be read.
    #[error("skrifta kunne ikke leses")]
    Font,
    /// A chart is not a readable PNG.
    #[error("diagrammet «{name}» er ikke et lesbart PNG-bilde: {message}")]
    Image {
        /// The chart's name.
        name: String,
        /// The decoder's complaint.
        message: String,
    },
    /// The PDF configuration was refused.
    #[error("PDF-oppsettet ble avvist: {0}")]
    Configuration(String),
    /// The writer refused the document (e.g. it would break PDF/A-2b).
    #[error("PDF-en kunne ikke skrives: {0}")]
    Export(String),
}

/// A document to render.
#[derive(Debug, Clone, Copy)]
pub struct PdfInput<'a> {
    /// The document title (metadata and footer), e.g. «Samarbeidsavtale,
    /// sak S-2026-0001». No personal data beyond the case label.
    pub title: &'a str,
    /// The Markdown rendering.
    pub markdown: &'a str,
    /// Charts by name, as PNG.
    pub images: &'a [NamedImage<'a>],
    /// When the document was made final (the PDF's creation date).
    pub created: DateTime<Utc>,
}

/// A chart to embed.
#[derive(Debug, Clone, Copy)]
pub struct NamedImage<'a> {
    /// The name an image line refers to (`![…](name)`).
    pub name: &'a str,
    /// A caption (the chart's alt text).
    pub caption: &'a str,
    /// The PNG.
    pub png: &'a [u8],
}

// A4 in points, with 2 cm margins.
const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 57.0;
const BOTTOM: f32 = PAGE_H - MARGIN - 20.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
const BODY: f32 = 10.5;
const LEADING: f32 = 1.4;
const SIGNATURE_RULE: f32 = 220.0;
const BLANK_RULE: f32 = 90.0;

const INK: (u8, u8, u8) = (0x1F, 0x23, 0x28);
const MUTED: (u8, u8, u8) = (0x59, 0x63, 0x6E);
const RULE: (u8, u8, u8) = (0xB0, 0xB7, 0xBF);
const HEADER_FILL: (u8, u8, u8) = (0xEE, 0xF1, 0xF4);

/// A piece of inline text.
#[derive(Debug, Clone, PartialEq)]
enum Inline {
    Text {
        text: String,
        bold: bool,
    },
    /// A signature rule (from a run of underscores).
    Rule,
}

/// A block of the Markdown.
#[derive(Debug, Clone, PartialEq)]
enum Block {
    Heading(usize, Vec<Inline>),
    Paragraph(Vec<Vec<Inline>>),
    List(Vec<(String, Vec<Inline>)>),
    Table(Vec<Vec<Inline>>, Vec<Vec<Vec<Inline>>>),
    Image { name: String, alt: String },
}

/// `**bold**` and underscore runs into inline pieces.
fn inline(text: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    let mut bold = false;
    for (i, part) in text.split("**").enumerate() {
        if i > 0 {
            bold = !bold;
        }
        let mut rest = part;
        while let Some(start) = rest.find("____") {
            let run = rest[start..].chars().take_while(|c| *c == '_').count();
            let before = rest[..start].trim_end();
            if !before.is_empty() {
                out.push(Inline::Text {
                    text: before.to_string(),
                    bold,
                });
            }
            out.push(Inline::Rule);
            rest = rest[start + run..].trim_start();
        }
        if !rest.is_empty() {
            out.push(Inline::Text {
                text: rest.to_string(),
                bold,
            });
        }
    }
    out
}

fn table_cells(line: &str) -> Vec<String> {
    let t = line.trim().trim_start_matches('|').trim_end_matches('|');
    t.split('|').map(|c| c.trim().to_string()).collect()
}

fn is_table_rule(line: &str) -> bool {
    let t = line.trim();
    t.starts_with('|') && t.contains('-') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

fn list_item(line: &str) -> Option<(String, &str)> {
    if let Some(rest) = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")) {
        return Some(("•".into(), rest));
    }
    let digits: String = line.chars().take_while(|c| c.is_ascii_digit()).collect();
    if !digits.is_empty()
        && let Some(rest) = line[digits.len()..].strip_prefix(". ")
    {
        return Some((format!("{digits}."), rest));
    }
    None
}

fn image_line(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix("![")?;
    let (alt, rest) = rest.split_once("](")?;
    let name = rest.strip_suffix(')')?;
    Some((name.to_string(), alt.to_string()))
}

/// The Markdown's blocks.
fn blocks(markdown: &str) -> Vec<Block> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut out = Vec::new();
    let mut para: Vec<Vec<Inline>> = Vec::new();
    let mut list: Vec<(String, Vec<Inline>)> = Vec::new();
    let flush = |out: &mut Vec<Block>, para: &mut Vec<Vec<Inline>>, list: &mut Vec<(String, Vec<Inline>)>| {
        if !para.is_empty() {
            out.push(Block::Paragraph(std::mem::take(para)));
        }
        if !list.is_empty() {
            out.push(Block::List(std::mem::take(list)));
        }
    };
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if line.trim().is_empty() {
            flush(&mut out, &mut para, &mut list);
            i += 1;
            continue;
        }
        let level = line.chars().take_while(|c| *c == '#').count();
        if (1..=3).contains(&level)
            && let Some(text) = line[level..].strip_prefix(' ')
        {
            flush(&mut out, &mut para, &mut list);
            out.push(Block::Heading(level, inline(text)));
            i += 1;
            continue;
        }
        if line.trim_start().starts_with('|') && lines.get(i + 1).is_some_and(|l| is_table_rule(l)) {
            flush(&mut out, &mut para, &mut list);
            let header = table_cells(line).iter().map(|c| inline(c)).collect();
            let mut rows = Vec::new();
            i += 2;
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                rows.push(table_cells(lines[i]).iter().map(|c| inline(c)).collect());
                i += 1;
            }
            out.push(Block::Table(header, rows));
            continue;
        }
        if let Some((name, alt)) = image_line(line) {
            flush(&mut out, &mut para, &mut list);
            out.push(Block::Image { name, alt });
            i += 1;
            continue;
        }
        if let Some((marker, text)) = list_item(line) {
            if !para.is_empty() {
                out.push(Block::Paragraph(std::mem::take(&mut para)));
            }
            // A bullet list and a numbered list are two lists.
            if list.last().is_some_and(|(m, _)| (m == "•") != (marker == "•")) {
                out.push(Block::List(std::mem::take(&mut list)));
            }
            list.push((marker, inline(text)));
        } else if !list.is_empty() && line.starts_with("  ") {
            // A continuation line of the last item.
            if let Some(last) = list.last_mut() {
                last.1.push(Inline::Text {
                    text: String::new(),
                    bold: false,
                });
                last.1.extend(inline(line.trim()));
            }
        } else {
            if !list.is_empty() {
                out.push(Block::List(std::mem::take(&mut list)));
            }
            para.push(inline(line));
        }
        i += 1;
    }
    flush(&mut out, &mut para, &mut list);
    out
}

/// Measures text with the embedded fonts.
struct Metrics {
    regular: FontRef<'static>,
    bold: FontRef<'static>,
}

impl Metrics {
    fn new() -> Result<Metrics, PdfError> {
        Ok(Metrics {
            regular: FontRef::try_from_slice(SANS).map_err(|_| PdfError::Font)?,
            bold: FontRef::try_from_slice(SANS_BOLD).map_err(|_| PdfError::Font)?,
        })
    }

    /// Width in points; the sum of advances (no kerning), so never less
    /// than what the shaper draws.
    fn width(&self, text: &str, bold: bool, size: f32) -> f32 {
        let font = if bold { &self.bold } else { &self.regular };
        // In font units per em, so the width matches a PDF font size in
        // points (ab_glyph's own scaling is by the font's height).
        let units = font.units_per_em().unwrap_or(1000.0);
        let em: f32 = text.chars().map(|c| font.h_advance_unscaled(font.glyph_id(c))).sum();
        em / units * size
    }
}

/// A drawing operation on a page.
#[derive(Debug, Clone)]
enum Op {
    Text {
        x: f32,
        baseline: f32,
        text: String,
        bold: bool,
        size: f32,
        color: (u8, u8, u8),
    },
    Line {
        x1: f32,
        y1: f32,
        x2: f32,
        y2: f32,
        color: (u8, u8, u8),
        width: f32,
    },
    Fill {
        rect: (f32, f32, f32, f32),
        color: (u8, u8, u8),
    },
    Image {
        index: usize,
        rect: (f32, f32, f32, f32),
    },
}

/// A word or rule placed on a line.
#[derive(Debug, Clone)]
enum Piece {
    Word { text: String, bold: bool, width: f32 },
    Rule { width: f32 },
}

/// Lays out pages.
struct Layout<'m> {
    metrics: &'m Metrics,
    pages: Vec<Vec<Op>>,
    y: f32,
}

impl<'m> Layout<'m> {
    fn new(metrics: &'m Metrics) -> Layout<'m> {
        Layout {
            metrics,
            pages: vec![Vec::new()],
            y: MARGIN,
        }
    }

    fn ops(&mut self) -> &mut Vec<Op> {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN;
    }

    /// Makes room for `height`, starting a new page when it does not fit
    /// (unless the page is still empty).
    fn ensure(&mut self, height: f32) {
        if self.y + height > BOTTOM && self.y > MARGIN + 1.0 {
            self.new_page();
        }
    }

    /// Breaks inline pieces into lines of at most `width`.
    fn wrap(&self, pieces: &[Inline], size: f32, width: f32) -> Vec<Vec<Piece>> {
        let mut words: Vec<Piece> = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            match p {
                Inline::Text { text, bold } => {
                    for w in text.split_whitespace() {
                        words.push(Piece::Word {
                            text: w.to_string(),
                            bold: *bold,
                            width: self.metrics.width(w, *bold, size),
                        });
                    }
                }
                // A rule ending the line is a signature line; one with text
                // after it is a blank to fill in («Dato: ____ · Sted: ____»).
                Inline::Rule if i + 1 == pieces.len() => words.push(Piece::Rule {
                    width: SIGNATURE_RULE.min(width),
                }),
                Inline::Rule => words.push(Piece::Rule {
                    width: BLANK_RULE.min(width),
                }),
            }
        }
        let mut lines: Vec<Vec<Piece>> = vec![Vec::new()];
        let mut used = 0.0f32;
        for w in words {
            let wwidth = match &w {
                Piece::Word { width, .. } | Piece::Rule { width } => *width,
            };
            let line = lines.last_mut().expect("one line");
            let extra = match line.last() {
                None => wwidth,
                Some(prev) => self.gap(prev, &w, size) + wwidth,
            };
            if !line.is_empty() && used + extra > width {
                lines.push(vec![w]);
                used = wwidth;
            } else {
                line.push(w);
                used += extra;
            }
        }
        lines
    }

    /// The space between two pieces: inside a bold run the space is drawn
    /// bold (wider), between runs it is not drawn at all.
    fn gap(&self, prev: &Piece, next: &Piece, size: f32) -> f32 {
        let both_bold = matches!(
            (prev, next),
            (Piece::Word { bold: true, .. }, Piece::Word { bold: true, .. })
        );
        self.metrics.width(" ", both_bold, size)
    }

    /// Draws wrapped lines at `x`; returns the height used.
    fn draw_lines(&mut self, lines: &[Vec<Piece>], x: f32, size: f32, color: (u8, u8, u8)) -> f32 {
        let height = size * LEADING;
        let mut used = 0.0;
        for line in lines {
            let has_rule = line.iter().any(|p| matches!(p, Piece::Rule { .. }));
            // Room to sign above a signature rule.
            let line_h = if has_rule { height + 18.0 } else { height };
            self.ensure(line_h);
            let baseline = self.y + line_h - size * 0.35;
            let mut cx = x;
            // Consecutive words of one weight go out as one text run, so
            // the text extracts with its spaces.
            let mut run: Option<(String, bool, f32)> = None;
            let flush = |ops: &mut Vec<Op>, run: &mut Option<(String, bool, f32)>| {
                if let Some((text, bold, rx)) = run.take() {
                    ops.push(Op::Text {
                        x: rx,
                        baseline,
                        text,
                        bold,
                        size,
                        color,
                    });
                }
            };
            for (i, p) in line.iter().enumerate() {
                if i > 0 {
                    if let Some((text, _, _)) = run.as_mut() {
                        text.push(' ');
                    }
                    cx += self.gap(&line[i - 1], p, size);
                }
                match p {
                    Piece::Word { text, bold, width } => {
                        match run.as_mut() {
                            Some((t, b, _)) if *b == *bold => t.push_str(text),
                            _ => {
                                let ops = self.ops();
                                let mut old = run.take();
                                if let Some((t, _, _)) = old.as_mut() {
                                    *t = t.trim_end().to_string();
                                }
                                flush(ops, &mut old);
                                run = Some((text.clone(), *bold, cx));
                            }
                        }
                        cx += width;
                    }
                    Piece::Rule { width } => {
                        let ops = self.ops();
                        if let Some((t, _, _)) = run.as_mut() {
                            *t = t.trim_end().to_string();
                        }
                        flush(ops, &mut run);
                        ops.push(Op::Line {
                            x1: cx,
                            y1: baseline + 1.5,
                            x2: cx + width,
                            y2: baseline + 1.5,
                            color: INK,
                            width: 0.6,
                        });
                        cx += width;
                    }
                }
            }
            let ops = self.ops();
            flush(ops, &mut run);
            self.y += line_h;
            used += line_h;
        }
        used
    }

    fn heading(&mut self, level: usize, text: &[Inline]) {
        let size = match level {
            1 => 18.0,
            2 => 13.5,
            _ => 11.5,
        };
        let bolded: Vec<Inline> = text
            .iter()
            .map(|p| match p {
                Inline::Text { text, .. } => Inline::Text {
                    text: text.clone(),
                    bold: true,
                },
                Inline::Rule => Inline::Rule,
            })
            .collect();
        let lines = self.wrap(&bolded, size, CONTENT_W);
        // Keep a heading with at least two lines of what follows.
        let space_before = if self.y > MARGIN + 1.0 { size * 0.8 } else { 0.0 };
        self.ensure(space_before + lines.len() as f32 * size * LEADING + 2.0 * BODY * LEADING);
        if self.y > MARGIN + 1.0 {
            self.y += space_before;
        }
        self.draw_lines(&lines, MARGIN, size, INK);
        self.y += size * 0.25;
    }

    fn paragraph(&mut self, lines: &[Vec<Inline>]) {
        for l in lines {
            let wrapped = self.wrap(l, BODY, CONTENT_W);
            self.draw_lines(&wrapped, MARGIN, BODY, INK);
        }
        self.y += BODY * 0.6;
    }

    fn list(&mut self, items: &[(String, Vec<Inline>)]) {
        let indent = 16.0;
        for (marker, text) in items {
            let wrapped = self.wrap(text, BODY, CONTENT_W - indent);
            let has_rule = wrapped
                .first()
                .is_some_and(|l| l.iter().any(|p| matches!(p, Piece::Rule { .. })));
            let first_h = BODY * LEADING + if has_rule { 18.0 } else { 0.0 };
            self.ensure(first_h);
            let baseline = self.y + first_h - BODY * 0.35;
            self.ops().push(Op::Text {
                x: MARGIN + 2.0,
                baseline,
                text: marker.clone(),
                bold: false,
                size: BODY,
                color: INK,
            });
            self.draw_lines(&wrapped, MARGIN + indent, BODY, INK);
        }
        self.y += BODY * 0.6;
    }

    fn table(&mut self, header: &[Vec<Inline>], rows: &[Vec<Vec<Inline>>]) {
        let columns = header.len().max(rows.iter().map(Vec::len).max().unwrap_or(0)).max(1);
        let pad = 4.0;
        let natural = |cell: &[Inline], bold: bool| -> f32 {
            cell.iter()
                .map(|p| match p {
                    Inline::Text { text, bold: b } => self.metrics.width(text, bold || *b, BODY),
                    Inline::Rule => 60.0,
                })
                .sum::<f32>()
                + 2.0 * pad
        };
        let mut widths = vec![30.0f32; columns];
        for (c, cell) in header.iter().enumerate() {
            widths[c] = widths[c].max(natural(cell, true));
        }
        for row in rows {
            for (c, cell) in row.iter().enumerate().take(columns) {
                widths[c] = widths[c].max(natural(cell, false));
            }
        }
        let total: f32 = widths.iter().sum();
        if total > CONTENT_W {
            // Shrink the wide columns first: every column keeps at least
            // its share of an even split.
            let even = CONTENT_W / columns as f32;
            let narrow: f32 = widths.iter().filter(|w| **w <= even).sum();
            let wide: f32 = widths.iter().filter(|w| **w > even).sum();
            let room = CONTENT_W - narrow;
            for w in &mut widths {
                if *w > even {
                    *w = *w / wide * room;
                }
            }
        }
        let emit_row = |layout: &mut Layout<'_>, cells: &[Vec<Inline>], bold: bool| {
            let wrapped: Vec<Vec<Vec<Piece>>> = (0..columns)
                .map(|c| {
                    let cell: Vec<Inline> = cells
                        .get(c)
                        .map(|cell| {
                            cell.iter()
                                .map(|p| match p {
                                    Inline::Text { text, bold: b } => Inline::Text {
                                        text: text.clone(),
                                        bold: bold || *b,
                                    },
                                    Inline::Rule => Inline::Rule,
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    layout.wrap(&cell, BODY, widths[c] - 2.0 * pad)
                })
                .collect();
            let lines = wrapped.iter().map(Vec::len).max().unwrap_or(1).max(1);
            let row_h = lines as f32 * BODY * LEADING + 2.0 * pad;
            layout.ensure(row_h);
            let top = layout.y;
            if bold {
                layout.ops().push(Op::Fill {
                    rect: (MARGIN, top, widths.iter().sum(), row_h),
                    color: HEADER_FILL,
                });
            }
            let mut x = MARGIN;
            for (c, cell) in wrapped.iter().enumerate() {
                layout.y = top + pad;
                layout.draw_lines(cell, x + pad, BODY, INK);
                x += widths[c];
            }
            layout.y = top + row_h;
            // Row rules and column rules.
            let right: f32 = MARGIN + widths.iter().sum::<f32>();
            let ops = layout.ops();
            ops.push(Op::Line {
                x1: MARGIN,
                y1: top,
                x2: right,
                y2: top,
                color: RULE,
                width: 0.5,
            });
            ops.push(Op::Line {
                x1: MARGIN,
                y1: top + row_h,
                x2: right,
                y2: top + row_h,
                color: RULE,
                width: 0.5,
            });
            let mut x = MARGIN;
            for w in widths.iter().take(columns) {
                ops.push(Op::Line {
                    x1: x,
                    y1: top,
                    x2: x,
                    y2: top + row_h,
                    color: RULE,
                    width: 0.5,
                });
                x += w;
            }
            ops.push(Op::Line {
                x1: right,
                y1: top,
                x2: right,
                y2: top + row_h,
                color: RULE,
                width: 0.5,
            });
        };
        // A header never ends a page alone.
        self.ensure(2.0 * (BODY * LEADING + 2.0 * pad) + 4.0);
        emit_row(self, header, true);
        for row in rows {
            emit_row(self, row, false);
        }
        self.y += BODY * 0.8;
    }

    fn image(&mut self, index: usize, size: (u32, u32), caption: &str) {
        let (w, h) = (size.0.max(1) as f32, size.1.max(1) as f32);
        let width = CONTENT_W;
        let height = (h / w * width).min(BOTTOM - MARGIN - 40.0);
        let width = height * w / h;
        let caption_lines = self.wrap(
            &[Inline::Text {
                text: caption.to_string(),
                bold: false,
            }],
            9.0,
            CONTENT_W,
        );
        self.ensure(height + 9.0 * LEADING * caption_lines.len() as f32 + 6.0);
        self.y += 4.0;
        let top = self.y;
        self.ops().push(Op::Image {
            index,
            rect: (MARGIN, top, width, height),
        });
        self.y += height + 4.0;
        self.draw_lines(&caption_lines, MARGIN, 9.0, MUTED);
        self.y += BODY * 0.6;
    }
}

/// Renders `input` to a PDF/A-2b file.
pub fn render_pdf(input: &PdfInput<'_>) -> Result<Vec<u8>, PdfError> {
    let metrics = Metrics::new()?;
    let mut images = Vec::with_capacity(input.images.len());
    for img in input.images {
        // PDF/A forbids asking viewers to interpolate images.
        let image = Image::from_png(img.png.to_vec().into(), false).map_err(|message| PdfError::Image {
            name: img.name.to_string(),
            message,
        })?;
        images.push(image);
    }

    let mut layout = Layout::new(&metrics);
    let mut placed = vec![false; images.len()];
    for block in blocks(input.markdown) {
        match block {
            Block::Heading(level, text) => layout.heading(level, &text),
            Block::Paragraph(lines) => layout.paragraph(&lines),
            Block::List(items) => layout.list(&items),
            Block::Table(header, rows) => layout.table(&header, &rows),
            Block::Image { name, alt } => match input.images.iter().position(|i| i.name == name) {
                Some(i) => {
                    let caption = if alt.is_empty() { input.images[i].caption } else { &alt };
                    layout.image(i, images[i].size(), caption);
                    placed[i] = true;
                }
                None => layout.paragraph(&[inline(&alt)]),
            },
        }
    }
    for (i, done) in placed.iter().enumerate() {
        if !done {
            layout.image(i, images[i].size(), input.images[i].caption);
        }
    }

    let configuration = ConfigurationBuilder::new()
        .with_archival_validator(Archival::A2_B)
        .finish()
        .map_err(|e| PdfError::Configuration(format!("{e:?}")))?;
    let settings = SerializeSettings {
        configuration,
        ..SerializeSettings::default()
    };
    let mut document = Document::new_with(settings);
    let regular = Font::new(SANS.into(), 0).ok_or(PdfError::Font)?;
    let bold = Font::new(SANS_BOLD.into(), 0).ok_or(PdfError::Font)?;
    let pages = layout.pages.len();
    for (n, ops) in layout.pages.iter().enumerate() {
        let settings = PageSettings::from_wh(PAGE_W, PAGE_H).ok_or_else(|| PdfError::Export("sidestørrelse".into()))?;
        let mut page = document.start_page_with(settings);
        let mut surface = page.surface();
        for op in ops {
            match op {
                Op::Text {
                    x,
                    baseline,
                    text,
                    bold: b,
                    size,
                    color,
                } => {
                    surface.set_fill(Some(fill(*color)));
                    surface.set_stroke(None);
                    let font = if *b { bold.clone() } else { regular.clone() };
                    surface.draw_text(
                        Point::from_xy(*x, *baseline),
                        font,
                        *size,
                        text,
                        false,
                        TextDirection::Auto,
                    );
                }
                Op::Line {
                    x1,
                    y1,
                    x2,
                    y2,
                    color,
                    width,
                } => {
                    let mut pb = PathBuilder::new();
                    pb.move_to(*x1, *y1);
                    pb.line_to(*x2, *y2);
                    if let Some(path) = pb.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            paint: rgb::Color::new(color.0, color.1, color.2).into(),
                            width: *width,
                            ..Stroke::default()
                        }));
                        surface.draw_path(&path);
                    }
                }
                Op::Fill { rect, color } => {
                    let mut pb = PathBuilder::new();
                    if let Some(r) = Rect::from_xywh(rect.0, rect.1, rect.2, rect.3) {
                        pb.push_rect(r);
                    }
                    if let Some(path) = pb.finish() {
                        surface.set_stroke(None);
                        surface.set_fill(Some(fill(*color)));
                        surface.draw_path(&path);
                    }
                }
                Op::Image { index, rect } => {
                    if let Some(size) = Size::from_wh(rect.2, rect.3) {
                        surface.push_transform(&krilla::geom::Transform::from_translate(rect.0, rect.1));
                        surface.draw_image(images[*index].clone(), size);
                        surface.pop();
                    }
                }
            }
        }
        // Footer: the title and the page.
        let footer = format!("{} · side {} av {pages}", input.title, n + 1);
        surface.set_stroke(None);
        surface.set_fill(Some(fill(MUTED)));
        surface.draw_text(
            Point::from_xy(MARGIN, PAGE_H - MARGIN + 16.0),
            regular.clone(),
            8.0,
            &footer,
            false,
            TextDirection::Auto,
        );
        surface.finish();
        page.finish();
    }

    let c = input.created;
    let created = PdfDateTime::new(u16::try_from(c.year()).unwrap_or(2000))
        .month(c.month() as u8)
        .day(c.day() as u8)
        .hour(c.hour() as u8)
        .minute(c.minute() as u8)
        .second(c.second() as u8)
        .utc_offset_hour(0)
        .utc_offset_minute(0);
    document.set_metadata(
        Metadata::new()
            .title(input.title.to_string())
            .language("nb-NO".into())
            .creator(format!("tilstede {}", env!("CARGO_PKG_VERSION")))
            .creation_date(created),
    );
    document.finish().map_err(|e| PdfError::Export(format!("{e:?}")))
}

fn fill(color: (u8, u8, u8)) -> Fill {
    Fill {
        paint: rgb::Color::new(color.0, color.1, color.2).into(),
        ..Fill::default()
    }
}

/// The words a reader sees in the Markdown: markup, table rules and
/// underscore runs removed. Tests compare a PDF's extracted text with it.
pub fn visible_words(markdown: &str) -> Vec<String> {
    fn push(words: &mut Vec<String>, pieces: &[Inline]) {
        for p in pieces {
            if let Inline::Text { text, .. } = p {
                words.extend(text.split_whitespace().map(str::to_string));
            }
        }
    }
    let mut words = Vec::new();
    for block in blocks(markdown) {
        match &block {
            Block::Heading(_, t) => push(&mut words, t),
            Block::Paragraph(lines) => lines.iter().for_each(|l| push(&mut words, l)),
            Block::List(items) => {
                for (marker, t) in items {
                    words.push(marker.clone());
                    push(&mut words, t);
                }
            }
            Block::Table(h, rows) => {
                h.iter().for_each(|c| push(&mut words, c));
                rows.iter().flatten().for_each(|c| push(&mut words, c));
            }
            Block::Image { .. } => {}
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_blocks() {
        let md = "# Tittel\n\n**Sak S-1** · A.B. (5A)\nLinje to\n\n- én\n- to: ____\n1. første\n\n| Fag | Timer |\n|---|---:|\n| MAT | 3 |\n\n![Diagram](ukentlig)\n";
        let b = blocks(md);
        assert_eq!(b.len(), 6, "{b:#?}");
        assert!(matches!(&b[0], Block::Heading(1, _)));
        let Block::Paragraph(lines) = &b[1] else { panic!() };
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0][0],
            Inline::Text {
                text: "Sak S-1".into(),
                bold: true
            }
        );
        let Block::List(items) = &b[2] else { panic!() };
        assert_eq!(items[1].1.last(), Some(&Inline::Rule));
        assert!(matches!(&b[3], Block::List(items) if items[0].0 == "1."));
        let Block::Table(h, rows) = &b[4] else { panic!() };
        assert_eq!((h.len(), rows.len(), rows[0].len()), (2, 1, 2));
        assert_eq!(
            b[5],
            Block::Image {
                name: "ukentlig".into(),
                alt: "Diagram".into()
            }
        );
        assert_eq!(
            visible_words(md),
            [
                "Tittel", "Sak", "S-1", "·", "A.B.", "(5A)", "Linje", "to", "•", "én", "•", "to:", "1.", "første",
                "Fag", "Timer", "MAT", "3"
            ]
        );
    }

    #[test]
    fn measured_widths_are_in_points() {
        let m = Metrics::new().unwrap();
        // DejaVu Sans "M" is 1767/2048 em wide.
        let w = m.width("M", false, 10.0);
        assert!((w - 8.628).abs() < 0.01, "{w}");
        assert!(m.width("Mål", true, 10.0) > m.width("Mål", false, 10.0));
    }
}
