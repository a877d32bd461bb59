//! SVG plots with plotters (SVG backend: text is left to the viewer's fonts, so no font files
//! are needed here): latency by payload size on log scales, and stream throughput.

use std::path::Path;

use plotters::prelude::*;

use super::{bytes, Report};
use crate::results::{Kind, Label, Mode};
use crate::stream::{BATCHES, MESSAGES};
use crate::{error, Result};

/// Width and height of each plot.
const SIZE: (u32, u32) = (1400, 560);

fn plot_error(e: impl std::fmt::Display) -> crate::Error {
    error(format!("plot: {e}"))
}

/// The distinct transports of `labels`, in first-seen order.
fn distinct(labels: impl Iterator<Item = Label>) -> Vec<Label> {
    let mut v: Vec<Label> = Vec::new();
    for l in labels {
        if !v.iter().any(|x| x.id == l.id) {
            v.push(l);
        }
    }
    v
}

/// A colour per transport: black and grey for floors, red and orange for Knit, the palette
/// for the rest.
fn colour(label: &Label, index: usize) -> RGBColor {
    match (label.kind, label.mode) {
        (Kind::Floor, Mode::Spinning) => RGBColor(0, 0, 0),
        (Kind::Floor, Mode::Parked) => RGBColor(120, 120, 120),
        (Kind::Knit, Mode::Spinning) => RGBColor(220, 20, 30),
        (Kind::Knit, Mode::Parked) => RGBColor(240, 140, 0),
        (Kind::Peer, _) => {
            let c = Palette99::pick(index + 2).to_rgba();
            RGBColor(c.0, c.1, c.2)
        }
    }
}

/// `x` position of a payload on the log axis: 0 B is drawn at 1 B.
fn x_of(payload: usize) -> f64 {
    to_f64(payload.max(1))
}

/// Latency (p50 and p99, µs) by payload size, both axes logarithmic.
pub fn latency(report: &Report, path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    let labels = distinct(report.round_trips.iter().map(|r| r.label));
    let (lo, hi) = report
        .round_trips
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), r| {
            (lo.min(r.latency.p50_ns), hi.max(r.latency.p999_ns))
        });
    let (lo, hi) = if lo <= hi {
        (lo / 2e3, hi * 2.0 / 1e3)
    } else {
        (0.01, 1e4)
    };
    for (area, which) in [(&left, "p50"), (&right, "p99")] {
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("round-trip latency, {which} (µs, log) by payload (0 B drawn at 1 B)"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((1f64..2.0e6).log_scale(), (lo..hi).log_scale())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("payload")
            .y_desc(format!("{which} µs"))
            .x_label_formatter(&|v| axis_bytes(*v))
            .y_label_formatter(&|v| format!("{v}"))
            .draw()
            .map_err(plot_error)?;
        for (i, label) in labels.iter().enumerate() {
            let c = colour(label, i);
            let points: Vec<(f64, f64)> = report
                .round_trips
                .iter()
                .filter(|r| r.label.id == label.id)
                .map(|r| {
                    let ns = if which == "p50" {
                        r.latency.p50_ns
                    } else {
                        r.latency.p99_ns
                    };
                    (x_of(r.payload), ns / 1e3)
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
                .map_err(plot_error)?
                .label(format!("{} ({})", label.id, label.mode.name()))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            chart
                .draw_series(points.into_iter().map(|p| Circle::new(p, 3, c.filled())))
                .map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
    }
    root.present().map_err(plot_error)
}

/// Stream throughput per case (GB/s and messages/s, log), one bar per transport.
pub fn throughput(report: &Report, path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    let labels = distinct(report.streams.iter().map(|r| r.label));
    let cases: Vec<(usize, usize)> = MESSAGES
        .iter()
        .flat_map(|&m| BATCHES.iter().map(move |&b| (m, b)))
        .collect();
    for (area, gb) in [(&left, true), (&right, false)] {
        let value = |r: &crate::results::StreamRow| {
            if gb {
                r.gb_per_sec()
            } else {
                r.messages_per_sec()
            }
        };
        let (lo, hi) = report
            .streams
            .iter()
            .map(value)
            .filter(|v| *v > 0.0)
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if lo <= hi {
            (lo / 2.0, hi * 2.0)
        } else {
            (1e-3, 1e3)
        };
        let n = to_f64(cases.len());
        let mut chart = ChartBuilder::on(area)
            .caption(
                if gb {
                    "stream throughput, GB/s (log)"
                } else {
                    "stream throughput, messages/s (log)"
                },
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..n, (lo..hi).log_scale())
            .map_err(plot_error)?;
        let case_names: Vec<String> = cases
            .iter()
            .map(|&(m, b)| format!("{} × {b}", bytes(m)))
            .collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(cases.len() * 2 + 1)
            .x_label_formatter(&|v| {
                let slot = v - v.floor();
                if (slot - 0.5).abs() < 0.01 {
                    case_names
                        .get(to_usize(v.floor()))
                        .cloned()
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc("message size × messages per send")
            .y_desc(if gb { "GB/s" } else { "messages/s" })
            .y_label_formatter(&|v| super::markdown::rate(*v))
            .draw()
            .map_err(plot_error)?;
        let width = 0.8 / to_f64(labels.len().max(1));
        for (i, label) in labels.iter().enumerate() {
            let c = colour(label, i);
            let bars: Vec<Rectangle<(f64, f64)>> = cases
                .iter()
                .enumerate()
                .filter_map(|(k, &(m, b))| {
                    let row = report
                        .streams
                        .iter()
                        .find(|r| r.label.id == label.id && r.message == m && r.batch == b)?;
                    let x0 = to_f64(k) + 0.1 + width * to_f64(i);
                    Some(Rectangle::new(
                        [(x0, lo), (x0 + width * 0.9, value(row))],
                        c.filled(),
                    ))
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(plot_error)?
                .label(format!("{} ({})", label.id, label.mode.name()))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
    }
    root.present().map_err(plot_error)
}

/// Axis labels of the payload axis: powers of two as sizes, others empty.
fn axis_bytes(v: f64) -> String {
    let n = to_usize(v.round());
    if n.is_power_of_two() {
        if n == 1 {
            "0/1 B".to_owned()
        } else {
            bytes(n)
        }
    } else {
        super::markdown::rate(v)
    }
}

// Sizes and counts here are small integers, exact in f64.
#[allow(clippy::cast_precision_loss)]
fn to_f64(v: usize) -> f64 {
    v as f64
}

// Axis positions are small non-negative integers after `floor`/`round`.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn to_usize(v: f64) -> usize {
    if v.is_finite() && v >= 0.0 {
        v as usize
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_name_sizes() {
        assert_eq!(axis_bytes(1.0), "0/1 B");
        assert_eq!(axis_bytes(1024.0), "1 KiB");
        assert_eq!(axis_bytes(1_048_576.0), "1 MiB");
        assert_eq!(to_usize(-3.0), 0);
        assert_eq!(to_usize(f64::NAN), 0);
    }
}
