//! Charts of the insight numbers, as PNG (for chat) and SVG (for documents),
//! drawn in pure Rust with plotters and an embedded font: no system fonts
//! or fontconfig, so a chart looks the same on every server.
//!
//! Every chart has an opaque light card background, so it reads the same in
//! Element's light and dark themes. Labels are Norwegian. A chart carries no
//! more about the pupil than its caller's label (case number, initials and
//! class): the numbers are counts and percentages.
//!
//! Intended call sites (wired in later): the bot uploads [`Chart::png`] as
//! an encrypted `m.image` in the case thread with [`Chart::alt`] as its body;
//! the evaluation PDF embeds the same PNG ([`crate::archive::pdf`]).

use super::patterns::{SchoolWeek, SubjectStat, WeekStat};
use super::weekday_short;
use chrono::{Datelike, NaiveDate, Weekday};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use std::sync::OnceLock;

/// DejaVu Sans (Bitstream Vera licence; see `assets/fonts/LICENSE-DejaVu.txt`).
/// The PDF writer embeds the same files.
pub static SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// DejaVu Sans Bold.
pub static SANS_BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// The family the charts draw with. Named like the generic family so an
/// SVG viewer without our font falls back to a similar one.
const FAMILY: &str = "sans-serif";

const BACKGROUND: RGBColor = RGBColor(0xFA, 0xFA, 0xF7);
const INK: RGBColor = RGBColor(0x1F, 0x23, 0x28);
const MUTED: RGBColor = RGBColor(0x59, 0x63, 0x6E);
const GRID: RGBColor = RGBColor(0xD8, 0xDE, 0xE4);
const LINE: RGBColor = RGBColor(0x1A, 0x5F, 0xB4);
const AGREEMENT: RGBColor = RGBColor(0xFF, 0xE3, 0x9B);
const VALID: RGBColor = RGBColor(0x6C, 0x8E, 0xBF);
const NOT_VALID: RGBColor = RGBColor(0xD9, 0x5F, 0x0E);

/// What went wrong while drawing.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// Nothing to draw (no weeks, no subjects).
    #[error("ingen data å tegne: {0}")]
    NoData(&'static str),
    /// The embedded font could not be loaded.
    #[error("skrifta kunne ikke lastes")]
    Font,
    /// Drawing failed.
    #[error("tegningen feilet: {0}")]
    Draw(String),
    /// PNG encoding failed.
    #[error("PNG-kodingen feilet: {0}")]
    Png(String),
}

/// A rendered chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    /// The PNG image (RGB, opaque).
    pub png: Vec<u8>,
    /// The same chart as SVG.
    pub svg: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// A Norwegian description, for the image message's body and alt text.
    pub alt: String,
}

fn fonts() -> Result<(), ChartError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        register_font(FAMILY, FontStyle::Normal, SANS).is_ok()
            && register_font(FAMILY, FontStyle::Bold, SANS_BOLD).is_ok()
    });
    if ok { Ok(()) } else { Err(ChartError::Font) }
}

fn draw_err<E: std::fmt::Debug>(e: E) -> ChartError {
    ChartError::Draw(format!("{e:?}"))
}

fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&INK)
}

fn bold(size: u32) -> TextStyle<'static> {
    // Not `.into_font().style(Bold)`: plotters keeps the regular face's data
    // when only the style changes.
    FontDesc::new(FontFamily::Name(FAMILY), f64::from(size), FontStyle::Bold).color(&INK)
}

/// A chart's drawing, generic over the backend so one drawing makes both
/// the PNG and the SVG.
trait Paint {
    fn paint<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), ChartError>;
}

/// Draws `painter` onto a PNG and an SVG of the same size.
fn render(width: u32, height: u32, alt: String, painter: &impl Paint) -> Result<Chart, ChartError> {
    fonts()?;
    let mut pixels = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&BACKGROUND).map_err(draw_err)?;
        painter.paint(&root)?;
        root.present().map_err(draw_err)?;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&BACKGROUND).map_err(draw_err)?;
        painter.paint(&root)?;
        root.present().map_err(draw_err)?;
    }
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| ChartError::Png(e.to_string()))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| ChartError::Png(e.to_string()))?;
        writer.finish().map_err(|e| ChartError::Png(e.to_string()))?;
    }
    Ok(Chart {
        png,
        svg,
        width,
        height,
        alt,
    })
}

/// A case's weekly attendance: what goes into [`weekly_attendance`].
#[derive(Debug, Clone, Copy)]
pub struct CaseChart<'a> {
    /// The case label: case number, initials and class (nothing more).
    pub label: &'a str,
    /// The weeks, in order ([`super::Insight::weeks`]).
    pub weeks: &'a [WeekStat],
    /// The agreement period (first and last day), shaded; weeks before it
    /// are marked «før», weeks after it «etter».
    pub agreement: Option<(NaiveDate, NaiveDate)>,
}

/// A chart of the fraction of lessons attended per week, with the agreement
/// period shaded.
pub fn weekly_attendance(input: &CaseChart<'_>) -> Result<Chart, ChartError> {
    let weeks = input.weeks;
    let (Some(first), Some(last)) = (weeks.first(), weeks.last()) else {
        return Err(ChartError::NoData("ingen uker"));
    };
    let alt = format!(
        "Oppmøte per uke for {} (uke {}–{}){}.",
        input.label,
        first.iso_week,
        last.iso_week,
        if input.agreement.is_some() {
            ", avtaleperioden markert"
        } else {
            ""
        }
    );
    // Weeks that overlap the agreement, by index.
    let span = input.agreement.and_then(|(from, to)| {
        let idx: Vec<usize> = weeks
            .iter()
            .enumerate()
            .filter(|(_, w)| w.monday + chrono::Duration::days(6) >= from && w.monday <= to)
            .map(|(i, _)| i)
            .collect();
        Some((*idx.first()?, *idx.last()?))
    });
    let painter = WeeklyPaint {
        title: format!("Oppmøte per uke · {}", input.label),
        weeks,
        span,
    };
    render(1200, 600, alt, &painter)
}

struct WeeklyPaint<'a> {
    title: String,
    weeks: &'a [WeekStat],
    span: Option<(usize, usize)>,
}

impl Paint for WeeklyPaint<'_> {
    fn paint<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), ChartError> {
        let (weeks, span, title) = (self.weeks, self.span, &self.title);
        let n = weeks.len();
        let mut chart = ChartBuilder::on(root)
            .caption(title, bold(30))
            .margin(24)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..114f64)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(BACKGROUND)
            .bold_line_style(GRID)
            .axis_style(MUTED)
            .y_labels(6)
            .y_label_formatter(&|y| if *y > 100.5 { String::new() } else { format!("{y:.0} %") })
            .x_labels(n.min(14))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() > 0.01 || i < 0.0 {
                    return String::new();
                }
                weeks
                    .get(i as usize)
                    .map(|w| w.iso_week.to_string())
                    .unwrap_or_default()
            })
            .x_desc("Uke")
            .y_desc("Oppmøte")
            .label_style(font(20))
            .axis_desc_style(font(20))
            .draw()
            .map_err(draw_err)?;
        if let Some((a, b)) = span {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(a as f64 - 0.5, 0.0), (b as f64 + 0.5, 114.0)],
                    AGREEMENT.mix(0.7).filled(),
                )))
                .map_err(draw_err)?;
            let label = |text: &str, from: usize, to: usize| {
                Text::new(
                    text.to_string(),
                    ((from as f64 + to as f64) / 2.0 - 0.4, 111.0),
                    font(20).color(&MUTED),
                )
            };
            let mut labels = vec![label("under avtalen", a, b)];
            if a > 0 {
                labels.push(label("før", 0, a - 1));
            }
            if b + 1 < n {
                labels.push(label("etter", b + 1, n - 1));
            }
            chart.draw_series(labels).map_err(draw_err)?;
        }
        let points: Vec<(f64, f64)> = weeks
            .iter()
            .enumerate()
            .map(|(i, w)| (i as f64, w.attendance_pct))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), LINE.stroke_width(4)))
            .map_err(draw_err)?;
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 6, LINE.filled())))
            .map_err(draw_err)?;
        Ok(())
    }
}

/// A heat map of single-lesson absence by weekday and subject.
pub fn weekday_subject_heatmap(label: &str, subjects: &[SubjectStat]) -> Result<Chart, ChartError> {
    if subjects.is_empty() {
        return Err(ChartError::NoData("ingen fag oppgitt"));
    }
    let rows = subjects.len().min(14);
    let subjects = &subjects[..rows];
    let max = subjects.iter().flat_map(|s| s.by_weekday).max().unwrap_or(0).max(1);
    let width = (HEAT_LEFT + 5 * CELL_W + 40) as u32;
    let height = (HEAT_TOP + rows as i32 * CELL_H + 80) as u32;
    let alt = format!("Timefravær per ukedag og fag for {label}.");
    let painter = HeatPaint {
        title: format!("Timefravær per ukedag og fag · {label}"),
        subjects,
        max,
    };
    render(width, height, alt, &painter)
}

const CELL_W: i32 = 150;
const CELL_H: i32 = 56;
const HEAT_LEFT: i32 = 200;
const HEAT_TOP: i32 = 130;

struct HeatPaint<'a> {
    title: String,
    subjects: &'a [SubjectStat],
    max: u32,
}

impl Paint for HeatPaint<'_> {
    fn paint<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), ChartError> {
        let (subjects, max, title) = (self.subjects, self.max, &self.title);
        let (cell_w, cell_h, left, top) = (CELL_W, CELL_H, HEAT_LEFT, HEAT_TOP);
        let rows = subjects.len();
        root.draw(&Text::new(title.clone(), (24, 28), bold(30)))
            .map_err(draw_err)?;
        for (c, wd) in [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri]
            .into_iter()
            .enumerate()
        {
            let x = left + c as i32 * cell_w + cell_w / 2 - 20;
            root.draw(&Text::new(weekday_short(wd), (x, top - 40), bold(22)))
                .map_err(draw_err)?;
        }
        for (r, s) in subjects.iter().enumerate() {
            let y = top + r as i32 * cell_h;
            root.draw(&Text::new(s.subject.clone(), (24, y + cell_h / 2 - 12), bold(22)))
                .map_err(draw_err)?;
            for (c, count) in s.by_weekday.iter().enumerate() {
                let x = left + c as i32 * cell_w;
                let t = f64::from(*count) / f64::from(max);
                let color = heat(t);
                root.draw(&Rectangle::new(
                    [(x + 2, y + 2), (x + cell_w - 2, y + cell_h - 2)],
                    color.filled(),
                ))
                .map_err(draw_err)?;
                let ink = if t > 0.55 { WHITE } else { INK };
                let text = count.to_string();
                let tx = x + cell_w / 2 - 7 * text.len() as i32;
                root.draw(&Text::new(text, (tx, y + cell_h / 2 - 12), bold(22).color(&ink)))
                    .map_err(draw_err)?;
            }
        }
        let note = format!("Tallene er fraværstimer; mørkere farge er flere (mest: {max}).");
        root.draw(&Text::new(
            note,
            (24, top + rows as i32 * cell_h + 30),
            font(18).color(&MUTED),
        ))
        .map_err(draw_err)?;
        Ok(())
    }
}

/// From the card background (t = 0) to deep orange (t = 1).
fn heat(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let from = (0xEE, 0xF1, 0xF4);
    let to = (0xB3, 0x3C, 0x00);
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    RGBColor(mix(from.0, to.0), mix(from.1, to.1), mix(from.2, to.2))
}

/// Leadership's review: a school's absence per week, valid and not valid,
/// in percent of all lessons.
pub fn school_overview(label: &str, weeks: &[SchoolWeek]) -> Result<Chart, ChartError> {
    let (Some(first), Some(last)) = (weeks.first(), weeks.last()) else {
        return Err(ChartError::NoData("ingen uker"));
    };
    let alt = format!(
        "Fravær per uke for {label} (uke {}–{}), gyldig og ikke gyldig, i prosent av timene.",
        first.iso_week, last.iso_week
    );
    let top = weeks
        .iter()
        .map(|w| w.valid_pct + w.not_valid_pct)
        .fold(0.0f64, f64::max);
    let painter = SchoolPaint {
        title: format!("Fravær per uke · {label}"),
        weeks,
        y_max: (top * 1.25 / 2.0).ceil().max(1.0) * 2.0,
    };
    render(1200, 600, alt, &painter)
}

struct SchoolPaint<'a> {
    title: String,
    weeks: &'a [SchoolWeek],
    y_max: f64,
}

impl Paint for SchoolPaint<'_> {
    fn paint<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), ChartError> {
        let (weeks, y_max, title) = (self.weeks, self.y_max, &self.title);
        let n = weeks.len();
        let mut chart = ChartBuilder::on(root)
            .caption(title, bold(30))
            .margin(24)
            .x_label_area_size(60)
            .y_label_area_size(110)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..y_max)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(BACKGROUND)
            .bold_line_style(GRID)
            .axis_style(MUTED)
            .y_labels(6)
            .y_label_formatter(&|y| format!("{y:.1} %").replace('.', ","))
            .x_labels(n.min(14))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() > 0.01 || i < 0.0 {
                    return String::new();
                }
                weeks
                    .get(i as usize)
                    .map(|w| w.iso_week.to_string())
                    .unwrap_or_default()
            })
            .x_desc("Uke")
            .y_desc("Fravær (andel av timene)")
            .label_style(font(20))
            .axis_desc_style(font(20))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(
                weeks.iter().enumerate().map(|(i, w)| {
                    Rectangle::new([(i as f64 - 0.35, 0.0), (i as f64 + 0.35, w.valid_pct)], VALID.filled())
                }),
            )
            .map_err(draw_err)?
            .label("gyldig fravær")
            .legend(|(x, y)| Rectangle::new([(x, y - 8), (x + 20, y + 8)], VALID.filled()));
        chart
            .draw_series(weeks.iter().enumerate().map(|(i, w)| {
                Rectangle::new(
                    [
                        (i as f64 - 0.35, w.valid_pct),
                        (i as f64 + 0.35, w.valid_pct + w.not_valid_pct),
                    ],
                    NOT_VALID.filled(),
                )
            }))
            .map_err(draw_err)?
            .label("ugyldig eller ikke vurdert")
            .legend(|(x, y)| Rectangle::new([(x, y - 8), (x + 20, y + 8)], NOT_VALID.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(BACKGROUND)
            .border_style(GRID)
            .label_font(font(20))
            .draw()
            .map_err(draw_err)?;
        Ok(())
    }
}

/// The week of `date` as «uke N».
pub fn week_label(date: NaiveDate) -> String {
    format!("uke {}", date.iso_week().week())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Kind, Validity};
    use crate::insight::{AbsenceEvent, PatternSettings, WeekdayCalendar, Window, analyse, school_weeks};

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn sample() -> crate::insight::Insight {
        let window = Window::new(d("2026-01-05"), d("2026-04-24"));
        let calendar = WeekdayCalendar::default().with_break(d("2026-02-23"), d("2026-02-27"));
        let mut events = Vec::new();
        for (i, date) in window.days().filter(|x| x.weekday() == Weekday::Mon).enumerate() {
            if i < 8 {
                events.push(AbsenceEvent {
                    date,
                    kind: Kind::Day,
                    lessons: 1,
                    validity: Validity::Unclassified,
                    subject: None,
                    period: None,
                });
            }
            let subject = ["MAT", "NOR", "MAT", "ENG"][i % 4];
            events.push(AbsenceEvent {
                date: date + chrono::Duration::days(1 + (i as i64 % 3)),
                kind: Kind::Lesson,
                lessons: 1,
                validity: Validity::Invalid,
                subject: Some(subject.into()),
                period: Some(1),
            });
        }
        analyse(&events, window, &calendar, None, &PatternSettings::default())
    }

    /// Decodes a PNG and returns its size and the colour of its corner.
    fn decode(png_bytes: &[u8]) -> (u32, u32, [u8; 3]) {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb, "opaque: no alpha channel");
        (info.width, info.height, [buf[0], buf[1], buf[2]])
    }

    #[test]
    fn weekly_attendance_chart_is_an_opaque_png_and_an_svg() {
        let insight = sample();
        let chart = weekly_attendance(&CaseChart {
            label: "S-2026-0001 · A.B. (5A)",
            weeks: &insight.weeks,
            agreement: Some((d("2026-03-02"), d("2026-03-20"))),
        })
        .unwrap();
        let (w, h, corner) = decode(&chart.png);
        assert_eq!((w, h), (1200, 600));
        assert_eq!(corner, [0xFA, 0xFA, 0xF7], "light card background");
        assert!(chart.svg.starts_with("<svg"));
        assert!(chart.svg.contains("Oppmøte per uke · S-2026-0001 · A.B. (5A)"));
        assert!(chart.svg.contains("under avtalen") && chart.svg.contains("før") && chart.svg.contains("etter"));
        assert_eq!(
            chart.alt,
            "Oppmøte per uke for S-2026-0001 · A.B. (5A) (uke 2–17), avtaleperioden markert."
        );
        if let Ok(dir) = std::env::var("TILSTEDE_CHART_DIR") {
            std::fs::write(format!("{dir}/ukentlig.png"), &chart.png).unwrap();
        }
    }

    #[test]
    fn heatmap_and_school_overview() {
        let insight = sample();
        let heat = weekday_subject_heatmap("S-2026-0001 · A.B. (5A)", &insight.by_subject).unwrap();
        let (w, h, _) = decode(&heat.png);
        assert_eq!((w, h), (990, 130 + 3 * 56 + 80));
        assert!(heat.svg.contains("MAT") && heat.svg.contains("man"));

        let window = Window::new(d("2026-01-05"), d("2026-03-27"));
        let calendar = WeekdayCalendar::default();
        let pupils: Vec<Vec<AbsenceEvent>> = (0..40)
            .map(|p| {
                window
                    .days()
                    .filter(|x| (x.ordinal() + p) % 17 == 0)
                    .map(|date| AbsenceEvent {
                        date,
                        kind: Kind::Day,
                        lessons: 1,
                        validity: if p % 3 == 0 {
                            Validity::Valid
                        } else {
                            Validity::Unclassified
                        },
                        subject: None,
                        period: None,
                    })
                    .collect()
            })
            .collect();
        let weeks = school_weeks(&pupils, 120, window, &calendar, &PatternSettings::default());
        let school = school_overview("Eksempel skole", &weeks).unwrap();
        assert_eq!(decode(&school.png).0, 1200);
        assert!(school.svg.contains("gyldig fravær"));
        if let Ok(dir) = std::env::var("TILSTEDE_CHART_DIR") {
            std::fs::write(format!("{dir}/fag.png"), &heat.png).unwrap();
            std::fs::write(format!("{dir}/skole.png"), &school.png).unwrap();
        }
    }

    #[test]
    fn no_data_is_an_error_not_an_empty_picture() {
        assert!(matches!(weekday_subject_heatmap("x", &[]), Err(ChartError::NoData(_))));
        assert!(matches!(school_overview("x", &[]), Err(ChartError::NoData(_))));
    }
}
