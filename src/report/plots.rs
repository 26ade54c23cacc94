//! Report figures with `plotters`, each written as SVG and PNG: line charts with
//! confidence bands (learning, adaptation and performance-profile curves), grouped
//! bar charts with interval whiskers (per-task success) and heat maps (training
//! success per class over frames). Text is drawn with the DejaVu
//! Sans face the `dejavu` crate embeds, so no system fonts are needed.

use crate::error::UserError;
use crate::run::files::atomic_write;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;
use std::path::Path;

/// One line, optionally with a band (`lo`, `hi` at the same `x`).
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub band: Option<(Vec<f64>, Vec<f64>)>,
}

#[derive(Clone, Debug)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// One bar: its value and the interval (lo, hi) drawn as a whisker.
pub type Bar = (f64, f64, f64);

/// Bars per category (x) and group (colour), each with an interval.
#[derive(Clone, Debug)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub categories: Vec<String>,
    /// (group name, per category: (value, lo, hi)).
    pub groups: Vec<(String, Vec<Bar>)>,
}

/// A grid of values in [0, 1]: rows (top to bottom) by x bins, as coloured cells;
/// `None` cells are left grey.
#[derive(Clone, Debug)]
pub struct HeatMap {
    pub title: String,
    pub x_label: String,
    /// What the colour shows (written under the colour scale).
    pub value_label: String,
    pub rows: Vec<String>,
    /// The bins' edges: one more than each row's cells.
    pub x_edges: Vec<f64>,
    pub cells: Vec<Vec<Option<f64>>>,
}

const SIZE: (u32, u32) = (800, 480);
/// A heat map's row height in pixels (class names stay readable).
const HEAT_ROW: u32 = 15;
const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("the embedded DejaVu Sans face is a valid font"));
    });
}

/// A colour per series, distinguishable and stable by index.
fn colour(i: usize) -> RGBColor {
    const TABLEAU: [RGBColor; 10] = [
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
    TABLEAU[i % TABLEAU.len()]
}

/// Writes `dir/stem.svg` and `dir/stem.png`.
pub fn save_line_chart(dir: &Path, stem: &str, chart: &LineChart) -> Result<(), UserError> {
    save(dir, stem, Figure::Lines(chart))
}

/// Writes `dir/stem.svg` and `dir/stem.png`.
pub fn save_heat_map(dir: &Path, stem: &str, map: &HeatMap) -> Result<(), UserError> {
    save(dir, stem, Figure::Heat(map))
}

/// Writes `dir/stem.svg` and `dir/stem.png`.
pub fn save_bar_chart(dir: &Path, stem: &str, chart: &BarChart) -> Result<(), UserError> {
    save(dir, stem, Figure::Bars(chart))
}

type DrawResult = Result<(), String>;

#[derive(Clone, Copy)]
enum Figure<'a> {
    Lines(&'a LineChart),
    Bars(&'a BarChart),
    Heat(&'a HeatMap),
}

impl Figure<'_> {
    /// Pixels: heat maps grow with their rows.
    fn size(self) -> (u32, u32) {
        match self {
            Figure::Heat(m) => (900, SIZE.1.max(130 + HEAT_ROW * m.rows.len() as u32)),
            _ => SIZE,
        }
    }
}

fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, figure: Figure<'_>) -> DrawResult {
    match figure {
        Figure::Lines(c) => draw_lines(area, c),
        Figure::Bars(c) => draw_bars(area, c),
        Figure::Heat(m) => draw_heat(area, m),
    }?;
    area.present().map_err(|e| e.to_string())
}

fn save(dir: &Path, stem: &str, figure: Figure<'_>) -> Result<(), UserError> {
    register_font();
    let svg_path = dir.join(format!("{stem}.svg"));
    let size = figure.size();
    let mut svg = String::new();
    draw(
        &SVGBackend::with_string(&mut svg, size).into_drawing_area(),
        figure,
    )
    .map_err(|e| UserError::file(&svg_path, format!("cannot draw: {e}")))?;
    atomic_write(&svg_path, svg.as_bytes())?;
    let png_path = dir.join(format!("{stem}.png"));
    let mut pixels = vec![0u8; (size.0 * size.1 * 3) as usize];
    draw(
        &BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area(),
        figure,
    )
    .map_err(|e| UserError::file(&png_path, format!("cannot draw: {e}")))?;
    atomic_write(&png_path, &encode_png(&pixels, size))
}

fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().expect("PNG header to memory");
        writer.write_image_data(rgb).expect("PNG data to memory");
    }
    out
}

/// Range of finite values with 5% padding (a unit range around a constant).
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

fn draw_lines<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, c: &LineChart) -> DrawResult {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    area.fill(&WHITE).map_err(err)?;
    let xs = c.series.iter().flat_map(|s| s.x.iter().copied());
    let (x0, x1) = padded_range(xs);
    let ys = c.series.iter().flat_map(|s| {
        let band = s.band.iter().flat_map(|(lo, hi)| lo.iter().chain(hi));
        s.y.iter().chain(band).copied()
    });
    let (y0, y1) = padded_range(ys);
    let mut chart = ChartBuilder::on(area)
        .caption(&c.title, (FONT, 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .label_style((FONT, 13))
        .x_label_formatter(&|v| short_number(*v))
        .y_label_formatter(&|v| short_number(*v))
        .draw()
        .map_err(err)?;
    for (i, s) in c.series.iter().enumerate() {
        let col = colour(i);
        if let Some((lo, hi)) = &s.band {
            let mut poly: Vec<(f64, f64)> = s.x.iter().copied().zip(hi.iter().copied()).collect();
            poly.extend(s.x.iter().copied().zip(lo.iter().copied()).rev());
            poly.retain(|(x, y)| x.is_finite() && y.is_finite());
            if poly.len() >= 3 {
                chart
                    .draw_series(std::iter::once(Polygon::new(poly, col.mix(0.18).filled())))
                    .map_err(err)?;
            }
        }
        let points: Vec<(f64, f64)> =
            s.x.iter()
                .copied()
                .zip(s.y.iter().copied())
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
        let single = points.len() == 1;
        chart
            .draw_series(LineSeries::new(points.clone(), col.stroke_width(2)))
            .map_err(err)?
            .label(&s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
        if single || points.len() <= 20 {
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, col.filled())))
                .map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn draw_bars<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, c: &BarChart) -> DrawResult {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    area.fill(&WHITE).map_err(err)?;
    let n = c.categories.len().max(1);
    let ys = c
        .groups
        .iter()
        .flat_map(|(_, v)| v.iter().flat_map(|&(m, lo, hi)| [m, lo, hi]))
        .chain([0.0]);
    let (_, y1) = padded_range(ys);
    // Category names that would overlap side by side (MetaWorld's ten training classes)
    // are written vertically, in a label area as tall as the longest.
    let longest = c
        .categories
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0);
    let vertical = n * longest > 70;
    let label_area = if vertical {
        20 + 7 * longest as u32
    } else {
        80
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&c.title, (FONT, 20))
        .margin(12)
        .x_label_area_size(label_area)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..y1.max(1e-9))
        .map_err(err)?;
    let names = c.categories.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(if vertical { 0 } else { n })
        .x_label_formatter(&|v| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(&c.y_label)
        .label_style((FONT, 12))
        .draw()
        .map_err(err)?;
    if vertical {
        // The mesh centres its labels on the tick whatever their rotation, so vertical
        // names are drawn here, each starting just below the axis.
        let style = (FONT, 12)
            .into_font()
            .transform(FontTransform::Rotate90)
            .into_text_style(area)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (i, name) in c.categories.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64, 0.0));
            area.draw(&Text::new(name.as_str(), (x, y + 6), &style))
                .map_err(err)?;
        }
    }
    let groups = c.groups.len().max(1) as f64;
    let width = 0.8 / groups;
    for (g, (name, values)) in c.groups.iter().enumerate() {
        let col = colour(g);
        let left = |i: usize| i as f64 - 0.4 + g as f64 * width;
        chart
            .draw_series(values.iter().enumerate().map(|(i, &(m, _, _))| {
                Rectangle::new([(left(i), 0.0), (left(i) + width * 0.9, m)], col.filled())
            }))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], col.filled()));
        chart
            .draw_series(values.iter().enumerate().map(|(i, &(_, lo, hi))| {
                let mid = left(i) + width * 0.45;
                PathElement::new(vec![(mid, lo), (mid, hi)], BLACK.stroke_width(1))
            }))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// A value in [0, 1] on viridis (five stops, linearly between them).
fn viridis(v: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let x = v.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let t = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + t * (q - p)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn draw_heat<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, m: &HeatMap) -> DrawResult {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    area.fill(&WHITE).map_err(err)?;
    let (width, _) = area.dim_in_pixel();
    let (main, scale) = area.split_horizontally(width.saturating_sub(110));
    let n = m.rows.len();
    let (x0, x1) = match (m.x_edges.first(), m.x_edges.last()) {
        (Some(&a), Some(&b)) if b > a => (a, b),
        _ => (0.0, 1.0),
    };
    let longest = m.rows.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    let mut chart = ChartBuilder::on(&main)
        .caption(&m.title, (FONT, 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(16 + 7 * longest as u32)
        .build_cartesian_2d(x0..x1, 0.0..n.max(1) as f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .y_labels(0)
        .x_desc(&m.x_label)
        .label_style((FONT, 13))
        .x_label_formatter(&|v| short_number(*v))
        .draw()
        .map_err(err)?;
    // Row i runs from the top: y in (n - i - 1, n - i).
    let cells = m.cells.iter().enumerate().flat_map(|(i, row)| {
        let top = (n - i) as f64;
        row.iter().enumerate().filter_map(move |(b, v)| {
            let (l, r) = (*m.x_edges.get(b)?, *m.x_edges.get(b + 1)?);
            let fill = v.map_or(RGBColor(225, 225, 225), viridis);
            Some(Rectangle::new([(l, top - 1.0), (r, top)], fill.filled()))
        })
    });
    chart.draw_series(cells).map_err(err)?;
    // The mesh would put its labels at round numbers, not at the rows' centres.
    let style = (FONT, 12)
        .into_font()
        .into_text_style(area)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, name) in m.rows.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(x0, (n - i) as f64 - 0.5));
        main.draw(&Text::new(name.as_str(), (x - 6, y), &style))
            .map_err(err)?;
    }
    // The colour scale: 0 at the bottom, 1 at the top, beside the grid.
    let (top, bottom) = (
        chart.backend_coord(&(x0, n as f64)).1,
        chart.backend_coord(&(x0, 0.0)).1,
    );
    let steps = 50;
    let height = (bottom - top).max(steps);
    let left = scale.get_base_pixel().0 + 10;
    for k in 0..steps {
        let (y_hi, y_lo) = (top + height * k / steps, top + height * (k + 1) / steps);
        let v = 1.0 - (k as f64 + 0.5) / steps as f64;
        area.draw(&Rectangle::new(
            [(left, y_hi), (left + 18, y_lo)],
            viridis(v).filled(),
        ))
        .map_err(err)?;
    }
    let label = (FONT, 12)
        .into_font()
        .into_text_style(area)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (v, y) in [(1.0, top), (0.5, (top + bottom) / 2), (0.0, top + height)] {
        area.draw(&Text::new(short_number(v), (left + 24, y), &label))
            .map_err(err)?;
    }
    area.draw(&Text::new(
        m.value_label.as_str(),
        (left - 4, top + height + 22),
        &label,
    ))
    .map_err(err)?;
    let grey = [(left, top + height + 40), (left + 18, top + height + 52)];
    area.draw(&Rectangle::new(grey, RGBColor(225, 225, 225).filled()))
        .map_err(err)?;
    area.draw(&Text::new(
        "no trial",
        (left + 24, top + height + 46),
        &label,
    ))
    .map_err(err)?;
    Ok(())
}

/// Axis numbers: 1.5M, 20k, 0.25.
fn short_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        let s = format!("{:.2}", v / 1e6);
        format!("{}M", s.trim_end_matches('0').trim_end_matches('.'))
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}
