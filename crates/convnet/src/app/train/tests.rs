use super::*;
use convnet_datasets::DatasetKind;

#[test]
fn timestamp_has_the_right_form() {
    let t = timestamp();
    assert_eq!(t.len(), 15, "{t}");
    assert_eq!(&t[8..9], "-");
    assert!(t[..4].parse::<u32>().unwrap() >= 2024);
}

#[test]
fn options_are_validated() {
    let mut o = TrainOptions::new("lenet5", DatasetKind::Mnist);
    assert!(o.validate().is_ok());
    assert!(!o.hflip, "no flips for digits");
    assert!(TrainOptions::new("lenet5", DatasetKind::FashionMnist).hflip);
    o.model = "lenet7".into();
    let e = o.validate().unwrap_err().to_string();
    assert!(
        e.contains("valid models are") && e.contains("lenet5"),
        "{e}"
    );
    let mut o = TrainOptions::new("lenet5", DatasetKind::Mnist);
    o.optimizer = OptimizerKind::AdamW;
    assert_eq!(
        o.optimizer_config().unwrap(),
        OptimizerConfig::adamw(1e-3, 5e-4)
    );
    let mut o = TrainOptions::new("lenet5", DatasetKind::Mnist);
    o.hflip = true;
    assert!(o.validate().is_err());
    let mut o = TrainOptions::new("lenet5", DatasetKind::Mnist);
    o.lr = Some(-1.0);
    assert!(o.validate().is_err());
    o.lr = None;
    o.variant = Some("1998".into());
    assert!(o.validate().is_ok());
    o.variant = Some("2024".into());
    let e = o.validate().unwrap_err().to_string();
    assert!(e.contains("modern, 1998"), "{e}");
    let json = serde_json::to_string(&o).unwrap();
    let back: TrainOptions = serde_json::from_str(&json).unwrap();
    assert_eq!(back, o);
    // The checkpoints of earlier versions stored the same names and a
    // number of warm-up steps: they still resume.
    assert!(json.contains(r#""optimizer":"sgd""#), "{json}");
    let old = json.replace(r#""warmup_steps":null"#, r#""warmup_steps":200"#);
    assert_ne!(old, json);
    let back: TrainOptions = serde_json::from_str(&old).unwrap();
    assert_eq!(back.warmup_steps, Some(200));
    assert_eq!(back.train_config().unwrap().warmup_for(10_000), 200);
}
