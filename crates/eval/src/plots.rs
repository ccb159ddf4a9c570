//! The report's plots, drawn with plotters into SVG strings (no fonts or files needed: the
//! browser renders the text).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::metrics::{Calibration, ClassInfo, RocCurve};

/// Font family of every label.
const FONT: &str = "sans-serif";

/// Class colours, in class order (Tableau 10, distinguishable and print-safe).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const GREY: RGBColor = RGBColor(150, 150, 150);

/// Colour of class `i`.
pub fn class_colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A plot could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("plot failed: {0}")]
pub struct PlotError(String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        PlotError(e.to_string())
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws into a fresh white SVG of `size` and returns its text.
fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), PlotError>,
) -> Result<String, PlotError> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(buf)
}

/// `Full name (code)`, the label used wherever a class is named in a plot.
pub fn class_label(c: &ClassInfo) -> String {
    format!("{} ({})", c.name, c.code)
}

fn text_style(size: u32, colour: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    (FONT, size).into_font().color(&colour).pos(Pos::new(h, v))
}

/// White → dark blue for `t` in [0, 1].
fn heat(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(lerp(247.0, 8.0), lerp(251.0, 48.0), lerp(255.0, 107.0))
}

/// Which numbers a confusion-matrix plot shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixValues {
    /// Raw counts, shaded by count relative to the largest cell.
    Counts,
    /// Each row divided by its total (the per-class recall is on the diagonal).
    RowNormalised,
}

/// A confusion-matrix heat map: true classes as rows (named in full), predicted as columns.
pub fn confusion_matrix(
    title: &str,
    matrix: &[Vec<u64>],
    classes: &[ClassInfo],
    values: MatrixValues,
) -> Result<String, PlotError> {
    confusion_matrix_with_axes(
        title,
        matrix,
        classes,
        values,
        "True class (rows)",
        "Predicted class (columns, same order as the rows)",
    )
}

/// A confusion-matrix heat map with its own axis titles (e.g. a reviewer's diagnosis against
/// the model's): rows named in full, columns by code in the same order.
pub fn confusion_matrix_with_axes(
    title: &str,
    matrix: &[Vec<u64>],
    classes: &[ClassInfo],
    values: MatrixValues,
    rows_title: &str,
    columns_title: &str,
) -> Result<String, PlotError> {
    let k = classes.len().max(1);
    let cell: i32 = 62;
    let left: i32 = 440;
    let top: i32 = 60;
    let bottom: i32 = 80;
    let width = (left + cell * k as i32 + 30) as u32;
    let height = (top + cell * k as i32 + bottom) as u32;
    let max_count = matrix.iter().flatten().copied().max().unwrap_or(0).max(1);
    svg((width, height), |root| {
        root.draw(&Text::new(
            title.to_string(),
            (width as i32 / 2, 24),
            text_style(20, BLACK, HPos::Center, VPos::Center),
        ))?;
        root.draw(&Text::new(
            rows_title.to_string(),
            (left - 10, top - 12),
            text_style(14, BLACK, HPos::Right, VPos::Center),
        ))?;
        for (t, class) in classes.iter().enumerate() {
            let y = top + cell * t as i32;
            root.draw(&Text::new(
                class_label(class),
                (left - 10, y + cell / 2),
                text_style(13, BLACK, HPos::Right, VPos::Center),
            ))?;
            let row = matrix.get(t).map(Vec::as_slice).unwrap_or(&[]);
            let row_total: u64 = row.iter().sum();
            for p in 0..k {
                let x = left + cell * p as i32;
                let count = row.get(p).copied().unwrap_or(0);
                let (shade, label) = match values {
                    MatrixValues::Counts => (count as f64 / max_count as f64, count.to_string()),
                    MatrixValues::RowNormalised if row_total == 0 => (0.0, "–".to_string()),
                    MatrixValues::RowNormalised => {
                        let r = count as f64 / row_total as f64;
                        (r, format!("{r:.2}"))
                    }
                };
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    heat(shade).filled(),
                ))?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    WHITE.stroke_width(1),
                ))?;
                let ink = if shade > 0.5 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    label,
                    (x + cell / 2, y + cell / 2),
                    text_style(14, ink, HPos::Center, VPos::Center),
                ))?;
            }
        }
        // Outline the diagonal (the correct predictions).
        for d in 0..k as i32 {
            let (x, y) = (left + cell * d, top + cell * d);
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                BLACK.stroke_width(2),
            ))?;
        }
        let below = top + cell * k as i32;
        for (p, class) in classes.iter().enumerate() {
            root.draw(&Text::new(
                class.code.clone(),
                (left + cell * p as i32 + cell / 2, below + 14),
                text_style(13, BLACK, HPos::Center, VPos::Center),
            ))?;
        }
        root.draw(&Text::new(
            columns_title.to_string(),
            (left + cell * k as i32 / 2, below + 44),
            text_style(14, BLACK, HPos::Center, VPos::Center),
        ))?;
        Ok(())
    })
}

/// One curve of a ROC plot.
#[derive(Debug, Clone)]
pub struct RocSeries<'a> {
    /// Legend text (class named in full, with its AUC).
    pub label: String,
    /// The curve.
    pub curve: &'a RocCurve,
    /// Line colour.
    pub colour: RGBColor,
}

/// A point marked on a ROC plot.
#[derive(Debug, Clone)]
pub struct OperatingPoint {
    /// Legend text.
    pub label: String,
    /// False-positive rate (1 − specificity).
    pub fpr: f64,
    /// True-positive rate (sensitivity).
    pub tpr: f64,
}

/// ROC curves on one chart, with the chance diagonal and an optional operating point.
pub fn roc_curves(
    title: &str,
    series: &[RocSeries<'_>],
    point: Option<&OperatingPoint>,
) -> Result<String, PlotError> {
    svg((820, 640), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..1f64, 0f64..1.0001f64)?;
        chart
            .configure_mesh()
            .x_desc("False-positive rate (1 − specificity)")
            .y_desc("True-positive rate (sensitivity)")
            .x_labels(11)
            .y_labels(11)
            .x_label_formatter(&|v| format!("{v:.1}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .axis_desc_style((FONT, 15))
            .light_line_style(WHITE)
            .draw()?;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                6,
                4,
                GREY.stroke_width(1),
            ))?
            .label("Chance (AUC 0.5)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREY.stroke_width(1)));
        for s in series {
            let colour = s.colour;
            let points: Vec<(f64, f64)> = s
                .curve
                .fpr
                .iter()
                .copied()
                .zip(s.curve.tpr.iter().copied())
                .collect();
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        if let Some(p) = point {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (p.fpr, p.tpr),
                    7,
                    RED.filled(),
                )))?
                .label(p.label.clone())
                .legend(|(x, y)| Circle::new((x + 10, y), 5, RED.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .margin(12)
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// Reliability diagram: accuracy per confidence bin against the diagonal, each bin's mean
/// confidence marked on its bar and its count written above it.
pub fn reliability_diagram(title: &str, calibration: &Calibration) -> Result<String, PlotError> {
    svg((760, 640), |root| {
        // Head-room above 1.0 holds the legend clear of the bars.
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..1f64, 0f64..1.3f64)?;
        chart
            .configure_mesh()
            .x_desc("Top-label confidence (probability of the predicted class)")
            .y_desc("Accuracy (fraction predicted correctly)")
            .x_labels(11)
            .y_labels(14)
            .x_label_formatter(&|v| format!("{v:.1}"))
            .y_label_formatter(&|v| {
                if *v <= 1.0001 {
                    format!("{v:.1}")
                } else {
                    String::new()
                }
            })
            .axis_desc_style((FONT, 15))
            .light_line_style(WHITE)
            .draw()?;
        let bar = RGBColor(31, 119, 180);
        let filled: Vec<_> = calibration
            .bins
            .iter()
            .filter_map(|b| b.accuracy.zip(b.mean_confidence).map(|(a, c)| (b, a, c)))
            .collect();
        chart
            .draw_series(filled.iter().map(|(b, a, _)| {
                Rectangle::new([(b.lower, 0.0), (b.upper, *a)], bar.mix(0.75).filled())
            }))?
            .label("Accuracy in the bin")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], bar.mix(0.75).filled())
            });
        chart
            .draw_series(filled.iter().map(|(b, _, c)| {
                PathElement::new(vec![(b.lower, *c), (b.upper, *c)], RED.stroke_width(3))
            }))?
            .label("Mean confidence in the bin")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(3)));
        chart.draw_series(filled.iter().map(|(b, a, c)| {
            Text::new(
                format!("{}", b.count),
                ((b.lower + b.upper) / 2.0, a.max(*c) + 0.04),
                text_style(11, BLACK, HPos::Center, VPos::Center),
            )
        }))?;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                6,
                4,
                BLACK.stroke_width(1),
            ))?
            .label("Perfect calibration")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .margin(8)
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// Horizontal bars: images per true class, classes named in full, malignant classes in red.
pub fn class_distribution(
    title: &str,
    classes: &[ClassInfo],
    counts: &[u64],
) -> Result<String, PlotError> {
    let k = classes.len().max(1);
    let height = 120 + 46 * k as u32;
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    svg((900, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(430)
            .build_cartesian_2d(0f64..max * 1.15, (0..k - 1).into_segmented())?;
        // Class 0 at the top: row r shows class k-1-r.
        let label_of = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(r) if *r < k => {
                classes.get(k - 1 - r).map(class_label).unwrap_or_default()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .x_desc("Images")
            .y_desc("True class")
            .y_label_formatter(&label_of)
            .y_label_style((FONT, 13))
            .y_labels(k)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .axis_desc_style((FONT, 15))
            .disable_y_mesh()
            .light_line_style(WHITE)
            .draw()?;
        let benign = RGBColor(31, 119, 180);
        let malignant = RGBColor(214, 39, 40);
        for (i, class) in classes.iter().enumerate() {
            let n = counts.get(i).copied().unwrap_or(0) as f64;
            let row = k - 1 - i;
            let colour = if class.malignant { malignant } else { benign };
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(row)),
                    (n, SegmentValue::Exact(row + 1)),
                ],
                colour.filled(),
            );
            bar.set_margin(8, 8, 0, 0);
            chart.draw_series(std::iter::once(bar))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{}", n as u64),
                (n + max * 0.01, SegmentValue::CenterOf(row)),
                text_style(13, BLACK, HPos::Left, VPos::Center),
            )))?;
        }
        // Legend entries for the two colours (drawn as empty series so only the key shows).
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, SegmentValue<usize>)>>())?
            .label("Malignant class")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], malignant.filled())
            });
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, SegmentValue<usize>)>>())?
            .label("Benign class")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], benign.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// Horizontal bars of a rate in [0, 1] per class (classes named in full, malignant ones in red),
/// each bar labelled with its percentage and the count it is out of; a class without cases says
/// so instead of a bar.
pub fn class_rates(
    title: &str,
    x_title: &str,
    classes: &[ClassInfo],
    rates: &[(Option<f64>, u64)],
) -> Result<String, PlotError> {
    let k = classes.len().max(1);
    let height = 120 + 46 * k as u32;
    svg((900, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(430)
            .build_cartesian_2d(0f64..1.25f64, (0..k - 1).into_segmented())?;
        let label_of = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(r) if *r < k => {
                classes.get(k - 1 - r).map(class_label).unwrap_or_default()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .x_desc(x_title)
            .y_label_formatter(&label_of)
            .y_label_style((FONT, 13))
            .y_labels(k)
            .x_labels(6)
            .x_label_formatter(&|v| {
                if *v <= 1.0001 {
                    format!("{:.0}%", v * 100.0)
                } else {
                    String::new()
                }
            })
            .axis_desc_style((FONT, 15))
            .disable_y_mesh()
            .light_line_style(WHITE)
            .draw()?;
        let benign = RGBColor(31, 119, 180);
        let malignant = RGBColor(214, 39, 40);
        for (i, class) in classes.iter().enumerate() {
            let (rate, n) = rates.get(i).copied().unwrap_or((None, 0));
            let row = k - 1 - i;
            let colour = if class.malignant { malignant } else { benign };
            let label = match rate {
                Some(r) => {
                    let mut bar = Rectangle::new(
                        [
                            (0.0, SegmentValue::Exact(row)),
                            (r, SegmentValue::Exact(row + 1)),
                        ],
                        colour.filled(),
                    );
                    bar.set_margin(8, 8, 0, 0);
                    chart.draw_series(std::iter::once(bar))?;
                    format!("{:.0}% of {n}", r * 100.0)
                }
                None => "no cases".to_owned(),
            };
            chart.draw_series(std::iter::once(Text::new(
                label,
                (rate.unwrap_or(0.0) + 0.01, SegmentValue::CenterOf(row)),
                text_style(13, BLACK, HPos::Left, VPos::Center),
            )))?;
        }
        Ok(())
    })
}
