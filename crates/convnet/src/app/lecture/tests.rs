use std::sync::OnceLock;

use super::*;

/// The lecture recomputed once for every test (building the ImageNet
/// models takes seconds).
fn lecture() -> &'static Lecture {
    static LECTURE: OnceLock<Lecture> = OnceLock::new();
    LECTURE.get_or_init(|| recompute().unwrap())
}

#[test]
fn every_check_is_computed_and_none_disagrees() {
    let lecture = lecture();
    assert!(lecture.sections.len() >= 12, "{}", lecture.sections.len());
    for s in &lecture.sections {
        assert!(!s.checks.is_empty(), "{} has no check", s.title);
    }
    let failures: Vec<String> = lecture
        .failures()
        .iter()
        .map(|c| format!("{}: {:?}", c.what, c.verdict))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    for c in lecture.checks() {
        assert_ne!(c.computed, "(error)", "{}", c.what);
        assert!(c.source.line > 0 && c.source.line < 500, "{}", c.what);
    }
}

#[test]
fn the_known_slips_are_flagged_and_only_those() {
    let lecture = lecture();
    let slips: Vec<(&str, &str)> = lecture
        .checks()
        .filter(|c| matches!(c.verdict, Verdict::LectureSlip(_)))
        .map(|c| (c.what.as_str(), c.computed.as_str()))
        .collect();
    assert_eq!(
        slips,
        [
            ("parameters of one 5×5×3 filter, with its bias", "76"),
            (
                "parameters of one dense neuron on the 25×25×3 image",
                "1,876"
            ),
            (
                "a 3×3 filter with zero-padding 2 keeps the size (25×25 in)",
                "27"
            ),
        ]
    );
}

#[test]
fn worked_examples_are_recomputed_by_the_kernels() {
    let lecture = lecture();
    let find = |what: &str| {
        lecture
            .checks()
            .find(|c| c.what.starts_with(what))
            .unwrap_or_else(|| panic!("no check {what}"))
            .clone()
    };
    assert_eq!(
        find("4×4 input ∗ 2×2").computed,
        "[[-3, 1, 6], [4, 5, -1], [-1, 1, 6]]"
    );
    assert_eq!(
        find("after ReLU").computed,
        "[[0, 1, 6], [4, 5, 0], [0, 1, 6]]"
    );
    assert_eq!(find("2×2 max-pooling").computed, "[[6, 8], [14, 16]]");
    assert_eq!(find("parameters of LeNet-5").computed, "61,706");
    assert_eq!(find("parameters of VGG-16").computed, "138,357,544");
    assert_eq!(find("layers of Inception v1").computed, "22");
    assert_eq!(find("layers of ResNet-50").computed, "50");
}

fn fig(said: Said) -> Stated<'static> {
    Stated {
        what: "x",
        source: Source {
            section: "s",
            line: 1,
        },
        text: "26",
        said,
    }
}

#[test]
fn verdicts_fail_on_a_bug_an_unknown_difference_or_a_vanished_slip() {
    let n = Got::Number;
    assert_eq!(
        check(fig(Said::Exact(26.0)), n(26.0), n(26.0), None).verdict,
        Verdict::Agrees
    );
    // The code computes something else than it expects: a bug.
    let v = check(fig(Said::Exact(26.0)), n(26.0), n(27.0), None).verdict;
    assert!(
        matches!(v, Verdict::Disagrees(ref w) if w.contains("expects 26")),
        "{v:?}"
    );
    // The lecture differs and no slip is known.
    let v = check(fig(Said::Exact(26.0)), n(76.0), n(76.0), None).verdict;
    assert!(
        matches!(v, Verdict::Disagrees(ref w) if w.contains("no slip")),
        "{v:?}"
    );
    // A known slip.
    let v = check(fig(Said::Exact(26.0)), n(76.0), n(76.0), Some("channels")).verdict;
    assert_eq!(v, Verdict::LectureSlip("channels".into()));
    // A slip expected where the lecture is right.
    let v = check(fig(Said::Exact(26.0)), n(26.0), n(26.0), Some("channels")).verdict;
    assert!(matches!(v, Verdict::Disagrees(_)), "{v:?}");
}

#[test]
fn the_lectures_precision_is_respected() {
    let r = |value, digits| Said::Rounded { value, digits };
    assert!(r(60_000.0, 1).matches(&Got::Number(61_706.0)));
    assert!(!r(60_000.0, 2).matches(&Got::Number(61_706.0)));
    assert!(r(138e6, 3).matches(&Got::Number(138_357_544.0)));
    assert!(!r(138e6, 3).matches(&Got::Number(138_600_000.0)));
    let t = Said::Truncated {
        value: 6.9e6,
        digits: 2,
    };
    assert!(t.matches(&Got::Number(6_990_272.0)));
    assert!(!t.matches(&Got::Number(7_005_832.0)));
    let about = Said::About {
        value: 6.9e6,
        relative: 0.05,
    };
    assert!(about.matches(&Got::Number(6_624_904.0)));
    assert!(!about.matches(&Got::Number(6.5e6)));
    assert!(!Said::Exact(1.0).matches(&Got::Matrix(vec![vec![1.0]])));
}

#[test]
fn text_has_every_section_and_verdict() {
    let lecture = lecture();
    let text = render_text(lecture);
    for s in &lecture.sections {
        assert!(text.contains(&s.title), "{}", s.title);
    }
    assert!(text.contains("LECTURE SLIP"));
    assert!(text.contains("0 disagree"), "{text}");
    assert_eq!(number(1876.0), "1,876");
    assert_eq!(number(-3.0), "-3");
    assert_eq!(number(8.72), "8.72");
}

#[test]
fn a_disagreement_fails_the_command_and_a_slip_does_not() {
    let mut doctored = lecture().clone();
    assert!(check_outcome(&doctored).is_ok());
    let slip = doctored
        .checks()
        .find(|c| matches!(c.verdict, Verdict::LectureSlip(_)))
        .cloned()
        .unwrap();
    doctored.sections[0].checks = vec![Check {
        verdict: Verdict::Disagrees("recomputed 75, but the code expects 76".into()),
        ..slip
    }];
    let e = check_outcome(&doctored).unwrap_err().to_string();
    assert!(e.starts_with("1 recomputed number(s) disagree"), "{e}");
    assert!(
        e.contains("(line 108): recomputed 75, but the code expects 76"),
        "{e}"
    );
    assert!(render_text(&doctored).contains("DISAGREES"));
}

#[test]
fn annex_rows_for_unknown_models_say_so() {
    let rows = measure_models(
        &[
            ("convnext_tiny", "ConvNeXt-T", 1943.5, 82.1),
            ("no_such_model", "Nothing", 1.0, 50.0),
        ],
        &AnnexOptions {
            batch_size: 1,
            runs: 1,
            image_size: 32,
        },
    )
    .unwrap();
    match &rows[0].measured {
        Measured::Done {
            params,
            images_per_s,
        } => {
            assert_eq!(*params, 28_589_128);
            assert!(*images_per_s > 0.0 && images_per_s.is_finite());
        }
        m => panic!("{m:?}"),
    }
    assert_eq!(rows[1].measured, Measured::NotInZoo);
    let with_annex = Lecture {
        annex: Some(rows),
        ..lecture().clone()
    };
    let text = render_text(&with_annex);
    assert!(text.contains("not in the zoo"), "{text}");
    assert!(text.contains("82.1%"), "{text}");
    let html = render_html(&with_annex, &[]);
    assert!(html.contains("not in the zoo") && html.contains("quoted"));
    let bad = AnnexOptions {
        runs: 0,
        ..AnnexOptions::default()
    };
    assert!(measure_annex(&bad).is_err());
}

#[test]
fn the_report_places_figures_by_section_and_escapes_text() {
    let extra = vec![
        Figure {
            file: "relu_gelu.png".into(),
            caption: "ReLU & GELU".into(),
            section: "Annexe : Fonction d'activation GELU".into(),
        },
        Figure {
            file: "mistakes.png".into(),
            caption: "a <b> model's mistakes".into(),
            section: "Mistakes".into(),
        },
    ];
    let html = render_html(lecture(), &extra);
    let gelu = html
        .find("Annexe : Fonction d'activation GELU</h2>")
        .unwrap();
    let convnext = html.find("Annexe : ConvNext</h2>").unwrap();
    let relu = html.find("relu_gelu.png").unwrap();
    assert!(
        gelu < relu && relu < convnext,
        "a figure goes in its section"
    );
    assert!(
        html.contains("<h2>Mistakes</h2>"),
        "an unknown section gets its own"
    );
    assert!(html.contains("ReLU &amp; GELU") && html.contains("a &lt;b&gt; model"));
    assert_eq!(
        escape("<a href=\"x\">&</a>"),
        "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
    );
}
