//! The lecture recomputed, as text for a terminal.

use std::fmt::Write;

use super::{Lecture, LECTURE_FILE};

/// Width of `s` in characters (the lecture's × and − are one each).
fn width(s: &str) -> usize {
    s.chars().count()
}

/// Columns of a slip's explanation before it wraps.
const EXPLANATION_WIDTH: usize = 88;

/// `s` cut into lines of at most `columns` characters at spaces (a longer
/// word stays whole).
fn wrap(s: &str, columns: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in s.split_whitespace() {
        if !line.is_empty() && width(&line) + 1 + width(word) > columns {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

/// The checks section by section, each beside the lecture's figure with its
/// verdict (a slip's or a disagreement's reason below it); then the
/// training and annex tables when measured, and the counts.
pub fn render_text(lecture: &Lecture) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "The lecture ({LECTURE_FILE}), recomputed by convnet's own kernels, layers and zoo\n"
    );
    for section in &lecture.sections {
        let _ = writeln!(out, "{}", section.title);
        let head = ["line", "what", "the lecture says", "recomputed", "verdict"];
        let rows: Vec<[String; 5]> = section
            .checks
            .iter()
            .map(|c| {
                [
                    c.source.line.to_string(),
                    c.what.clone(),
                    c.lecture_says.clone(),
                    c.computed.clone(),
                    c.verdict.label().to_string(),
                ]
            })
            .collect();
        let mut w = head.map(width);
        for r in &rows {
            for (i, cell) in r.iter().enumerate() {
                w[i] = w[i].max(width(cell));
            }
        }
        let line = |cells: [&str; 5]| {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| if i == 4 { c.to_string() } else { pad(c, w[i]) })
                .collect();
            format!("  {}", parts.join("  "))
        };
        let _ = writeln!(out, "{}", line(head));
        for (r, c) in rows.iter().zip(&section.checks) {
            let _ = writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
            if let Some(why) = c.verdict.explanation() {
                let indent = " ".repeat(w[0] + 4);
                for (i, l) in wrap(why, EXPLANATION_WIDTH).iter().enumerate() {
                    let arrow = if i == 0 { "→ " } else { "  " };
                    let _ = writeln!(out, "{indent}{arrow}{l}");
                }
            }
        }
        let _ = writeln!(out);
    }
    if let Some(rows) = &lecture.training {
        let _ = writeln!(out, "{}", super::train::render_table(rows));
    }
    if let Some(rows) = &lecture.annex {
        let _ = writeln!(out, "{}", super::annex::render_table(rows));
    }
    let (agree, slips, disagree) = lecture.counts();
    let _ = writeln!(
        out,
        "{} checks: {agree} agree, {slips} lecture slips (flagged, not failures), {disagree} \
         disagree{}",
        agree + slips + disagree,
        if disagree > 0 {
            " (a bug: see the DISAGREES lines)"
        } else {
            ""
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn explanations_wrap_at_spaces() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("unbreakable-word x", 4), ["unbreakable-word", "x"]);
        assert!(wrap("", 10).is_empty());
        // Characters, not bytes: "×" is one column.
        assert_eq!(wrap("5×5×3 a", 7), ["5×5×3 a"]);
    }
}
