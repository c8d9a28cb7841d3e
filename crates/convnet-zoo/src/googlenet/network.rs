//! The GoogLeNet network itself: the trunk in three segments, the optional
//! auxiliary classifiers fed by the first two, and the head; its forward
//! pass returns the main logits and keeps the auxiliary ones for
//! [`GoogLeNet::backward_with_aux`].

use super::*;
use convnet_layers::AuxOutput;

/// What `forward` leaves for `backward` and for [`GoogLeNet::aux_logits`].
#[derive(Debug)]
struct Cache {
    /// `aux1` and `aux2`'s outputs, if the network has them.
    aux_logits: Option<[Tensor; 2]>,
}

/// GoogLeNet: a trunk in three segments (up to `inception4a`, up to
/// `inception4d`, up to `inception5b`), the optional auxiliary classifiers
/// fed by the first two segments, and the head (`avgpool`, `flatten`,
/// `dropout`, `fc`).
///
/// # Shapes
///
/// - input: `[N, in_channels, H, W]` (224×224 for ImageNet; any size of
///   at least 31×31 goes through the four max-pools)
/// - output: `[N, num_classes]`; in training, [`GoogLeNet::aux_logits`]
///   gives two more `[N, num_classes]`
///
/// # Training with the auxiliary classifiers
///
/// ```
/// use convnet_layers::Layer;
/// use convnet_tensor::{Rng, Tensor};
/// use convnet_zoo::googlenet::{GoogLeNet, GoogLeNetConfig, AUX_LOSS_WEIGHT};
///
/// let config = GoogLeNetConfig { num_classes: 5, aux_logits: true, ..GoogLeNetConfig::default() };
/// let mut net = GoogLeNet::new(&config, &mut Rng::seed_from(0))?;
/// // 995 fewer classes in fc, aux1.fc2 and aux2.fc2, 1,025 parameters each.
/// assert_eq!(net.num_params(), 13_004_888 - 3 * 995 * 1025);
/// let x = Tensor::randn(&[2, 3, 64, 64], 0.0, 1.0, &mut Rng::seed_from(1));
/// let logits = net.forward(&x)?;
/// let (aux1, aux2) = net.aux_logits().expect("training forward with aux heads");
/// assert_eq!((logits.shape(), aux1.shape(), aux2.shape()), (&[2, 5][..], &[2, 5][..], &[2, 5][..]));
/// // The gradients of loss = L(logits) + 0.3 L(aux1) + 0.3 L(aux2) with
/// // respect to each output (here L = sum, so dL/dy = 1).
/// let g = Tensor::ones(&[2, 5]);
/// let g_aux = Tensor::full(&[2, 5], AUX_LOSS_WEIGHT);
/// let gx = net.backward_with_aux(&g, Some((&g_aux, &g_aux)))?;
/// assert_eq!(gx.shape(), x.shape());
/// // Inference ignores the auxiliary heads.
/// assert_eq!(net.infer(&x)?.shape(), &[2, 5]);
/// # Ok::<(), convnet_zoo::ZooError>(())
/// ```
#[derive(Debug)]
pub struct GoogLeNet {
    trunk: [Sequential; 3],
    aux: Option<[Sequential; 2]>,
    head: Sequential,
    cache: Option<Cache>,
}

const AUX_NAMES: [&str; 2] = ["aux1", "aux2"];

impl GoogLeNet {
    /// Builds GoogLeNet with torchvision's layout and initialisation.
    pub fn new(config: &GoogLeNetConfig, rng: &mut Rng) -> Result<Self> {
        config.validate()?;
        let pool = |k: usize| -> Result<Box<dyn Layer>> {
            Ok(Box::new(MaxPool2d::new(
                Pool2dConfig::new(k).stride(2).ceil_mode(true),
            )?))
        };
        let mut modules = INCEPTION_MODULES.iter();
        let mut channels = 192;
        let mut next_inception = |rng: &mut Rng| -> Result<(String, Box<dyn Layer>)> {
            let (name, w) = modules.next().expect("nine modules");
            let m = inception(channels, *w, config.branch3, rng)?;
            channels = w.out_channels();
            Ok((name.to_string(), Box::new(m)))
        };
        // Segment 1: conv1 ... inception4a (N×512×14×14 at 224×224).
        let mut s1: Vec<(String, Box<dyn Layer>)> = vec![
            (
                "conv1".into(),
                Box::new(basic_conv2d(config.in_channels, 64, 7, 2, 3, rng)?),
            ),
            ("maxpool1".into(), pool(3)?),
            (
                "conv2".into(),
                Box::new(basic_conv2d(64, 64, 1, 1, 0, rng)?),
            ),
            (
                "conv3".into(),
                Box::new(basic_conv2d(64, 192, 3, 1, 1, rng)?),
            ),
            ("maxpool2".into(), pool(3)?),
        ];
        s1.push(next_inception(rng)?);
        s1.push(next_inception(rng)?);
        s1.push(("maxpool3".into(), pool(3)?));
        s1.push(next_inception(rng)?);
        // Segment 2: inception4b ... inception4d (N×528×14×14).
        let s2 = vec![
            next_inception(rng)?,
            next_inception(rng)?,
            next_inception(rng)?,
        ];
        // Segment 3: inception4e ... inception5b (N×1024×7×7).
        let mut s3 = vec![next_inception(rng)?];
        s3.push(("maxpool4".into(), pool(2)?));
        s3.push(next_inception(rng)?);
        s3.push(next_inception(rng)?);
        let aux = if config.aux_logits {
            Some([
                inception_aux(512, config.num_classes, config.aux_dropout, rng)?,
                inception_aux(528, config.num_classes, config.aux_dropout, rng)?,
            ])
        } else {
            None
        };
        let fc = linear(
            LinearConfig::new(1024, config.num_classes),
            LinearInit::TruncNormal(0.01),
            rng,
        )?;
        let head = Sequential::named(vec![
            (
                "avgpool",
                Box::new(AdaptiveAvgPool2d::new(1)?) as Box<dyn Layer>,
            ),
            ("flatten", Box::new(Flatten::new())),
            ("dropout", Box::new(Dropout::new(config.dropout, rng)?)),
            ("fc", Box::new(fc)),
        ])?;
        Self::from_parts(
            [
                Sequential::named(s1)?,
                Sequential::named(s2)?,
                Sequential::named(s3)?,
            ],
            aux,
            head,
        )
    }

    /// Assembles a GoogLeNet-shaped network from its parts (for narrow
    /// variants and tests): `trunk[0]` feeds `aux[0]` and `trunk[1]`,
    /// `trunk[1]` feeds `aux[1]` and `trunk[2]`, `trunk[2]` feeds `head`.
    /// The trunk segments and the head are merged into the network's
    /// namespace (their children's names are top-level keys), the auxiliary
    /// heads are named `aux1` and `aux2`. Errors if two parameters or
    /// buffers would get the same name.
    pub fn from_parts(
        trunk: [Sequential; 3],
        aux: Option<[Sequential; 2]>,
        head: Sequential,
    ) -> Result<Self> {
        let net = GoogLeNet {
            trunk,
            aux,
            head,
            cache: None,
        };
        let mut keys = Vec::new();
        net.visit_params("", &mut |k, _| keys.push(k.to_string()));
        net.visit_buffers("", &mut |k, _| keys.push(k.to_string()));
        keys.sort_unstable();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(ZooError::config(
                NAME,
                format!("two parameters or buffers would be named {:?}", w[0]),
            ));
        }
        Ok(net)
    }

    /// Whether the network has its auxiliary classifiers.
    pub fn has_aux(&self) -> bool {
        self.aux.is_some()
    }

    /// The outputs of `aux1` and `aux2` in the last [`Layer::forward`]
    /// (`None` without auxiliary classifiers, or before a `forward`).
    pub fn aux_logits(&self) -> Option<(&Tensor, &Tensor)> {
        let [a1, a2] = self.cache.as_ref()?.aux_logits.as_ref()?;
        Some((a1, a2))
    }

    /// Backward pass of the last [`Layer::forward`], with the gradients of
    /// the loss with respect to the main output (`grad_out`) and, optionally,
    /// to the outputs of `aux1` and `aux2` (already multiplied by
    /// [`AUX_LOSS_WEIGHT`] if the loss weighs them so). Accumulates every
    /// parameter gradient and returns the gradient of the input. Errors
    /// without a `forward`, on a gradient of the wrong shape, or when
    /// auxiliary gradients are given to a network without auxiliary heads.
    pub fn backward_with_aux(
        &mut self,
        grad_out: &Tensor,
        grad_aux: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        let cache = self
            .cache
            .as_ref()
            .ok_or_else(|| LayerError::no_cache("GoogLeNet"))?;
        if let Some((g1, g2)) = grad_aux {
            let Some([a1, a2]) = &cache.aux_logits else {
                return Err(ZooError::config(
                    NAME,
                    "auxiliary gradients given but the network has no auxiliary classifiers",
                ));
            };
            for (name, g, a) in [(AUX_NAMES[0], g1, a1), (AUX_NAMES[1], g2, a2)] {
                if g.shape() != a.shape() {
                    return Err(LayerError::input_shape(
                        "GoogLeNet",
                        format!("a gradient of {name}'s output shape {:?}", a.shape()),
                        g.shape(),
                    )
                    .into());
                }
            }
        }
        self.cache = None;
        let g = self.head.backward(grad_out)?;
        let mut g = self.trunk[2].backward(&g)?;
        if let (Some((_, g2)), Some(aux)) = (grad_aux, &mut self.aux) {
            let ga = aux[1].backward(g2).map_err(|e| e.in_child(AUX_NAMES[1]))?;
            g.axpy(1.0, &ga)
                .map_err(|e| LayerError::tensor("GoogLeNet", e))?;
        }
        let mut g = self.trunk[1].backward(&g)?;
        if let (Some((g1, _)), Some(aux)) = (grad_aux, &mut self.aux) {
            let ga = aux[0].backward(g1).map_err(|e| e.in_child(AUX_NAMES[0]))?;
            g.axpy(1.0, &ga)
                .map_err(|e| LayerError::tensor("GoogLeNet", e))?;
        }
        Ok(self.trunk[0].backward(&g)?)
    }
}

impl GoogLeNet {
    /// The parts in visiting order (torchvision's `state_dict` order), with
    /// their names: the trunk segments and the head merged (`""`), then
    /// `aux1` and `aux2` between them.
    fn parts(&self) -> Vec<(&'static str, &Sequential)> {
        let mut v: Vec<(&'static str, &Sequential)> = self.trunk.iter().map(|t| ("", t)).collect();
        if let Some(aux) = &self.aux {
            v.extend(AUX_NAMES.into_iter().zip(aux.iter()));
        }
        v.push(("", &self.head));
        v
    }

    /// [`GoogLeNet::parts`], mutably.
    fn parts_mut(&mut self) -> Vec<(&'static str, &mut Sequential)> {
        let mut v: Vec<(&'static str, &mut Sequential)> =
            self.trunk.iter_mut().map(|t| ("", t)).collect();
        if let Some(aux) = &mut self.aux {
            v.extend(AUX_NAMES.into_iter().zip(aux.iter_mut()));
        }
        v.push(("", &mut self.head));
        v
    }
}

/// A zoo error of [`GoogLeNet::backward_with_aux`] as the layer error the
/// [`Layer`] methods return.
fn into_layer_error(e: ZooError) -> LayerError {
    match e {
        ZooError::Layer(e) => e,
        other => LayerError::config("GoogLeNet", other.to_string()),
    }
}

impl Layer for GoogLeNet {
    fn type_name(&self) -> &'static str {
        "GoogLeNet"
    }

    fn infer(&self, x: &Tensor) -> convnet_layers::Result<Tensor> {
        let t = self.trunk[0].infer(x)?;
        let t = self.trunk[1].infer(&t)?;
        let t = self.trunk[2].infer(&t)?;
        self.head.infer(&t)
    }

    fn forward(&mut self, x: &Tensor) -> convnet_layers::Result<Tensor> {
        self.cache = None;
        let t0 = self.trunk[0].forward(x)?;
        let t1 = self.trunk[1].forward(&t0)?;
        let aux_logits = match &mut self.aux {
            Some([aux1, aux2]) => Some([
                aux1.forward(&t0).map_err(|e| e.in_child(AUX_NAMES[0]))?,
                aux2.forward(&t1).map_err(|e| e.in_child(AUX_NAMES[1]))?,
            ]),
            None => None,
        };
        let t2 = self.trunk[2].forward(&t1)?;
        let y = self.head.forward(&t2)?;
        self.cache = Some(Cache { aux_logits });
        Ok(y)
    }

    /// The main path's backward pass: the auxiliary classifiers get no
    /// gradient (see [`GoogLeNet::backward_with_aux`]).
    fn backward(&mut self, grad_out: &Tensor) -> convnet_layers::Result<Tensor> {
        self.backward_with_aux(grad_out, None)
            .map_err(into_layer_error)
    }

    /// `aux1` and `aux2`'s logits of the last `forward`, each weighted
    /// [`AUX_LOSS_WEIGHT`] (none without auxiliary classifiers).
    fn aux_outputs(&self) -> Vec<AuxOutput<'_>> {
        let Some((a1, a2)) = self.aux_logits() else {
            return Vec::new();
        };
        AUX_NAMES
            .into_iter()
            .zip([a1, a2])
            .map(|(name, logits)| AuxOutput {
                name,
                weight: AUX_LOSS_WEIGHT,
                logits,
            })
            .collect()
    }

    /// [`GoogLeNet::backward_with_aux`] with `[aux1, aux2]`'s gradients
    /// (or none: the main path only).
    fn backward_params_with_aux(
        &mut self,
        grad_out: &Tensor,
        grad_aux: &[Tensor],
    ) -> convnet_layers::Result<()> {
        let aux = match grad_aux {
            [] => None,
            [g1, g2] => Some((g1, g2)),
            other => {
                return Err(LayerError::config(
                    "GoogLeNet",
                    format!(
                        "2 auxiliary gradients expected (aux1, aux2), {} given",
                        other.len()
                    ),
                ))
            }
        };
        self.backward_with_aux(grad_out, aux)
            .map(|_| ())
            .map_err(into_layer_error)
    }

    fn output_shape(&self, input_shape: &[usize]) -> convnet_layers::Result<Vec<usize>> {
        let s0 = self.trunk[0].output_shape(input_shape)?;
        let s1 = self.trunk[1].output_shape(&s0)?;
        if let Some(aux) = &self.aux {
            for ((a, s), name) in aux.iter().zip([&s0, &s1]).zip(AUX_NAMES) {
                a.output_shape(s).map_err(|e| e.in_child(name))?;
            }
        }
        let s2 = self.trunk[2].output_shape(&s1)?;
        self.head.output_shape(&s2)
    }

    /// The trunk's stages and the head merged into the network's namespace,
    /// the auxiliary classifiers as `aux1`/`aux2` (torchvision's key order):
    /// the visitors and freezing follow from this.
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Layer)) {
        for (n, part) in self.parts() {
            f(n, part);
        }
    }

    fn visit_children_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Layer)) {
        for (n, part) in self.parts_mut() {
            f(n, part);
        }
    }

    /// The network's row, then the trunk's and head's children in order of
    /// execution, each auxiliary classifier (type `InceptionAux`) after the
    /// layer that feeds it.
    fn summarize(
        &self,
        name: &str,
        input_shape: &[usize],
        depth: usize,
        rows: &mut Vec<SummaryRow>,
    ) -> convnet_layers::Result<Vec<usize>> {
        let out = self.output_shape(input_shape)?;
        rows.push(SummaryRow {
            name: name.to_string(),
            type_name: self.type_name().to_string(),
            depth,
            output_shape: out.clone(),
            params: self.num_params(),
            leaf: false,
        });
        // A segment's own row is dropped: its children are the network's.
        let merged = |seq: &Sequential, shape: &[usize], rows: &mut Vec<SummaryRow>| {
            let mut inner = Vec::new();
            let out = seq.summarize(name, shape, depth, &mut inner)?;
            rows.extend(inner.into_iter().skip(1));
            Ok::<_, LayerError>(out)
        };
        let mut shape = input_shape.to_vec();
        for (i, segment) in self.trunk.iter().enumerate() {
            shape = merged(segment, &shape, rows)?;
            if let (Some(aux), true) = (&self.aux, i < 2) {
                let start = rows.len();
                aux[i]
                    .summarize(&join(name, AUX_NAMES[i]), &shape, depth + 1, rows)
                    .map_err(|e| e.in_child(AUX_NAMES[i]))?;
                rows[start].type_name = "InceptionAux".to_string();
            }
        }
        merged(&self.head, &shape, rows)?;
        Ok(out)
    }

    fn clone_boxed(&self) -> Option<Box<dyn Layer>> {
        let seq = |s: &Sequential| s.try_clone().ok();
        let [t0, t1, t2] = &self.trunk;
        let aux = match &self.aux {
            Some([a1, a2]) => Some([seq(a1)?, seq(a2)?]),
            None => None,
        };
        Some(Box::new(GoogLeNet {
            trunk: [seq(t0)?, seq(t1)?, seq(t2)?],
            aux,
            head: seq(&self.head)?,
            cache: None,
        }))
    }
}
