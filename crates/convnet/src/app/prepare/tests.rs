use super::*;

#[test]
fn decode_image_refuses_what_is_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = decode_image(dir.path()).unwrap_err().to_string();
    assert!(e.contains("not a regular file: it is a directory"), "{e}");
    if cfg!(target_os = "linux") {
        let e = decode_image(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/dev/zero") && e.contains("character device"),
            "{e}"
        );
        let fifo = dir.path().join("digit.png");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.map(|s| s.success()).unwrap_or(false) {
            let e = decode_image(&fifo).unwrap_err().to_string();
            assert!(e.contains("digit.png") && e.contains("a FIFO"), "{e}");
        }
    }
}

/// A light `w`×`h` sheet (grey 240) with dark ink (grey 20) where
/// `ink(x, y)` is true.
fn sheet(w: u32, h: u32, ink: impl Fn(u32, u32) -> bool) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| Luma([if ink(x, y) { 20 } else { 240 }]))
}

fn digit(img: &GrayImage) -> PreparedImage {
    prepare_grey(img, 28, Preprocess::Digit, Path::new("test.png")).unwrap()
}

/// Bounding box (x0, y0, x1, y1) of pixels above 0.05 in a 28×28 result.
fn box_of(p: &[f32]) -> (usize, usize, usize, usize) {
    let lit: Vec<usize> = (0..p.len()).filter(|&i| p[i] > 0.05).collect();
    let xs = lit.iter().map(|i| i % 28);
    let ys = lit.iter().map(|i| i / 28);
    (
        xs.clone().min().unwrap(),
        ys.clone().min().unwrap(),
        xs.max().unwrap(),
        ys.max().unwrap(),
    )
}

#[test]
fn off_centre_blob_is_centred_by_its_mass_and_fits_20x20() {
    // A filled disc of radius 40 near the top-left of a 400×300 sheet,
    // with a heavier bar on its right so the mass is off its box centre.
    let img = sheet(400, 300, |x, y| {
        let (dx, dy) = (x as f32 - 80.0, y as f32 - 70.0);
        dx * dx + dy * dy <= 40.0 * 40.0 || ((120..140).contains(&x) && (40..100).contains(&y))
    });
    let p = digit(&img);
    assert!(p.inverted);
    assert_eq!(p.original_size, (400, 300));
    assert_eq!(
        p.ink_box,
        Some(InkBox {
            x: 40,
            y: 30,
            width: 100,
            height: 81
        })
    );
    let (cx, cy) = centre_of_mass(&p.pixels, 28).unwrap();
    assert!(
        (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
        "({cx}, {cy})"
    );
    let (x0, y0, x1, y1) = box_of(&p.pixels);
    assert!(x1 - x0 < 21 && y1 - y0 < 21, "{:?}", (x0, y0, x1, y1));
    assert!(p.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(p.pixels.iter().copied().fold(0.0, f32::max) > 0.99);
}

#[test]
fn aspect_ratio_is_kept() {
    // A 30×150 bar (1:5), as a "1": 20 tall and 4 wide once fitted.
    let img = sheet(500, 400, |x, y| {
        (300..330).contains(&x) && (200..350).contains(&y)
    });
    let p = digit(&img);
    let on: Vec<usize> = (0..784).filter(|&i| p.pixels[i] > 0.5).collect();
    let width =
        on.iter().map(|i| i % 28).max().unwrap() - on.iter().map(|i| i % 28).min().unwrap() + 1;
    let height =
        on.iter().map(|i| i / 28).max().unwrap() - on.iter().map(|i| i / 28).min().unwrap() + 1;
    assert_eq!(height, 20);
    assert!((3..=5).contains(&width), "width {width}");
    let (cx, cy) = centre_of_mass(&p.pixels, 28).unwrap();
    assert!(
        (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
        "({cx}, {cy})"
    );
}

#[test]
fn grey_noisy_paper_is_not_ink() {
    // Paper at 200-230 with pseudo-random noise, one small stroke.
    let mut state = 7u32;
    let img = GrayImage::from_fn(300, 300, |x, y| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let paper = 200 + (state >> 24) as u8 % 30;
        Luma([if (150..160).contains(&x) && (100..160).contains(&y) {
            30
        } else {
            paper
        }])
    });
    let p = digit(&img);
    assert_eq!(
        p.ink_box,
        Some(InkBox {
            x: 150,
            y: 100,
            width: 10,
            height: 60
        })
    );
}

#[test]
fn light_ink_on_dark_is_not_inverted_and_thin_strokes_are_thickened() {
    // A 1-pixel white "L" 200 pixels tall on black: scaled 10× down it
    // would be a faint hairline; it comes out as a visible stroke.
    let img = GrayImage::from_fn(400, 400, |x, y| {
        let on = (x == 100 && (100..300).contains(&y)) || (y == 299 && (100..200).contains(&x));
        Luma([if on { 255 } else { 0 }])
    });
    let p = digit(&img);
    assert!(!p.inverted);
    let row = &p.pixels[10 * 28..11 * 28];
    assert!(row.iter().filter(|&&v| v > 0.4).count() >= 2, "{row:?}");
    assert!(row.iter().copied().fold(0.0, f32::max) > 0.5, "{row:?}");
}

#[test]
fn blank_images_are_errors_naming_the_file() {
    for g in [0u8, 128, 255] {
        let img = GrayImage::from_pixel(100, 80, Luma([g]));
        let e = prepare_grey(&img, 28, Preprocess::Digit, Path::new("blank.png"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("blank.png") && e.contains("no digit"), "{e}");
    }
    // A faint smudge (5 grey levels) is still blank.
    let img = GrayImage::from_fn(100, 100, |x, _| Luma([if x == 50 { 245 } else { 250 }]));
    assert!(prepare_grey(&img, 28, Preprocess::Digit, Path::new("b.png")).is_err());
    // The whole-image recipe accepts anything.
    let img = GrayImage::from_pixel(100, 80, Luma([255]));
    let p = prepare_grey(&img, 28, Preprocess::WholeImage, Path::new("b.png")).unwrap();
    assert!(p.inverted && p.pixels.iter().all(|&v| v == 0.0));
}

#[test]
fn a_28x28_mnist_like_image_stays_about_the_same() {
    // Light strokes on black already centred: the recipe is stable.
    let img = GrayImage::from_fn(28, 28, |x, y| {
        Luma([if (12..16).contains(&x) && (4..24).contains(&y) {
            255
        } else {
            0
        }])
    });
    let p = digit(&img);
    assert!(!p.inverted);
    let (x0, y0, x1, y1) = box_of(&p.pixels);
    // Its centre of mass (13.5, 13.5) moves to within half a pixel of 14.
    assert!((4..=5).contains(&y0) && y1 == y0 + 19, "{y0}..{y1}");
    assert!(x0 >= 11 && x1 <= 16);
}

#[test]
fn recipes_follow_the_dataset() {
    assert_eq!(
        Preprocess::for_dataset(Some(DatasetKind::Mnist)),
        Preprocess::Digit
    );
    assert_eq!(
        Preprocess::for_dataset(Some(DatasetKind::FashionMnist)),
        Preprocess::WholeImage
    );
    assert_eq!(Preprocess::for_dataset(None), Preprocess::WholeImage);
    assert_eq!(digit_box(28), 20);
}
