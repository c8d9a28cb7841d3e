//! # convnet-layers
//!
//! The [`Layer`] contract and every layer of convnet: any network of the
//! lecture (LeNet-5, AlexNet, VGG, Inception, ResNet, ConvNeXt, ViT, Swin) is a
//! composition of these layers, whose forward, backward and parameters are
//! exact, named and inspectable.
//!
//! ```
//! use convnet_layers::*;
//! use convnet_tensor::{Rng, Tensor};
//!
//! let mut rng = Rng::seed_from(0);
//! // conv → relu → pool → conv → relu → pool → flatten → linear
//! let mut net = Sequential::default()
//!     .with(Conv2d::new(Conv2dConfig::new(1, 6, 5).padding(2), &mut rng)?)
//!     .with(ReLU::new())
//!     .with(MaxPool2d::new(Pool2dConfig::new(2))?)
//!     .with(Conv2d::new(Conv2dConfig::new(6, 16, 5), &mut rng)?)
//!     .with(ReLU::new())
//!     .with(MaxPool2d::new(Pool2dConfig::new(2))?)
//!     .with(Flatten::new())
//!     .with(Linear::new(LinearConfig::new(16 * 5 * 5, 10), &mut rng)?);
//!
//! // Training mode: forward caches what backward needs.
//! let x = Tensor::randn(&[8, 1, 28, 28], 0.0, 1.0, &mut rng);
//! let logits = net.forward(&x)?;
//! assert_eq!(logits.shape(), &[8, 10]);
//! net.zero_grad();
//! let grad_x = net.backward(&Tensor::ones(&[8, 10]))?; // dL/dlogits = 1
//! assert_eq!(grad_x.shape(), x.shape());
//!
//! // Parameters by PyTorch state_dict key, with their accumulated gradients.
//! let mut keys = Vec::new();
//! net.visit_params("", &mut |key, p| keys.push((key.to_string(), p.grad.len())));
//! assert_eq!(keys[0], ("0.weight".to_string(), 6 * 25));
//!
//! // Inference: &self, no caches, usable from many threads at once.
//! let probabilities = Softmax::new(-1).infer(&net.infer(&x)?)?;
//! assert!((probabilities.sum() - 8.0).abs() < 1e-4);
//!
//! // A model summary, like torchsummary.
//! let s = summary(&net, &[1, 1, 28, 28])?;
//! println!("{s}");
//! assert_eq!(s.total_params, 156 + 2416 + 4010);
//!
//! // Bad input is an error naming the layer, never a panic.
//! let e = net.infer(&Tensor::zeros(&[8, 3, 28, 28])).unwrap_err();
//! assert_eq!(e.layer(), "0 (Conv2d)");
//! # Ok::<(), LayerError>(())
//! ```
//!
//! # The contract
//!
//! - [`Layer::infer`] is inference (`&self`): Dropout is the identity,
//!   BatchNorm uses its running statistics, nothing is cached.
//! - [`Layer::forward`] is training mode (`&mut self`): dropout masks are
//!   drawn, BatchNorm uses batch statistics and updates its running ones, and
//!   the layer caches exactly what `backward` needs (moved, not copied, where
//!   it can).
//! - [`Layer::backward`] takes the gradient of the loss with respect to the
//!   last `forward`'s output, **accumulates** (`+=`) the parameter gradients
//!   and **returns** (overwrites) the gradient with respect to the input. It
//!   consumes the cache: a `backward` without a preceding `forward` (or a
//!   second one) is [`LayerError::NoCache`]; a gradient of the wrong shape is
//!   an error too.
//! - Every layer validates its input and returns an error naming the layer
//!   (with its path inside containers: `"layer1.0.conv1 (Conv2d)"`), the
//!   expected and the actual shape; every constructor validates its
//!   configuration and returns a [`Result`].
//! - [`Layer::output_shape`] gives the output shape, or the error `infer`
//!   would give, without computing anything.
//!
//! # Names
//!
//! Parameters and buffers are visited with their PyTorch `state_dict` keys:
//! `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`
//! under the prefix of their container. A [`Sequential`] names its children
//! `0`, `1`, ... or explicitly ([`Sequential::named`]); a child named `""`
//! is merged into its parent's namespace ([`Residual`] does that with its
//! body), so torchvision's keys (`features.0.weight`,
//! `layer1.0.downsample.0.weight`, `layer1.0.bn1.running_var`) come out of
//! generic containers. BatchNorm's `num_batches_tracked` is visited (as a
//! 0-dimensional `f32` tensor). Dropout's generator is visited by
//! [`Layer::visit_rngs_mut`] so that checkpoints can save it.
//!
//! # Layers
//!
//! | layer | PyTorch |
//! |---|---|
//! | [`Conv2d`] | `nn.Conv2d` (stride, padding, dilation, groups, bias) |
//! | [`Linear`] | `nn.Linear` (last axis of `[N, D]`, `[N, T, D]`, ...) |
//! | [`MaxPool2d`], [`AvgPool2d`] | `nn.MaxPool2d`, `nn.AvgPool2d` (ceil mode, `count_include_pad`) |
//! | [`AdaptiveAvgPool2d`] | `nn.AdaptiveAvgPool2d` |
//! | [`Flatten`], [`Permute`], [`Identity`] | `nn.Flatten`, `torchvision.ops.Permute`, `nn.Identity` |
//! | [`ReLU`], [`GELU`], [`Sigmoid`], [`Tanh`], [`Softmax`] | the same names |
//! | [`Dropout`] | `nn.Dropout` (inverted, seeded) |
//! | [`BatchNorm2d`] | `nn.BatchNorm2d` (momentum 0.1, eps 1e-5) |
//! | [`LayerNorm`], [`LayerNorm2d`] | `nn.LayerNorm`, torchvision's ConvNeXt `LayerNorm2d` |
//! | [`LayerScale`] | timm's `LayerScale`, torchvision ConvNeXt's `layer_scale` |
//! | [`StochasticDepth`] | `torchvision.ops.StochasticDepth` |
//! | [`ClassToken`], [`PositionEmbedding`], [`SelectToken`] | torchvision ViT's `class_token`, `pos_embedding`, `x[:, 0]` |
//! | [`ShiftedWindowAttention`], [`PatchMerging`] | torchvision Swin's `ShiftedWindowAttention` (v1) and `PatchMerging` |
//! | [`ExpectShape`] | `torch._assert` on the input shape (the identity otherwise) |
//! | [`Wrapped`] | a module's own parameter applied after a submodule (`layer_scale * block(x)`) |
//! | [`Sequential`], [`Residual`], [`Concat`], [`Add`] | `nn.Sequential`, ResNet blocks, Inception, `a(x) + b(x)` |
//!
//! Compute goes through the kernels of `convnet_tensor::kernels` (sgemm,
//! conv2d, pooling, activations, softmax, normalisation); this crate holds
//! no numeric kernel of its own beyond trivial element-wise loops
//! (dropout masks, layer scale, concatenation).

#![warn(missing_docs)]

mod adaptive_avg_pool2d;
mod attention;
mod avg_pool2d;
mod batch_norm2d;
mod class_token;
pub mod containers;
mod conv2d;
mod dropout;
mod elementwise;
pub mod error;
mod expect_shape;
mod flatten;
mod fused;
mod gelu;
mod identity;
pub mod layer;
mod layer_norm;
mod layer_norm2d;
mod layer_scale;
mod linear;
mod max_pool2d;
pub mod memory;
#[cfg(test)]
mod model_tests;
pub mod param;
mod patch_merging;
mod permute;
mod position_embedding;
mod relu;
mod select_token;
mod shifted_window_attention;
mod sigmoid;
mod softmax;
mod stochastic_depth;
pub mod summary;
mod tanh;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod util;
mod wrapped;

pub use adaptive_avg_pool2d::AdaptiveAvgPool2d;
pub use attention::{MultiheadAttention, MultiheadAttentionConfig};
pub use avg_pool2d::AvgPool2d;
pub use batch_norm2d::{BatchNorm2d, BatchNorm2dConfig};
pub use class_token::ClassToken;
pub use containers::{Add, Concat, Residual, Sequential};
pub use conv2d::{Conv2d, Conv2dConfig};
pub use dropout::Dropout;
pub use error::{LayerError, Result};
pub use expect_shape::ExpectShape;
pub use flatten::Flatten;
pub use fused::FusionRole;
pub use gelu::GELU;
pub use identity::Identity;
pub use layer::{visit_param, visit_param_mut, AuxOutput, Layer};
pub use layer_norm::{LastAxis, LayerNorm, LayerNormConfig, Norm, NormAxis};
pub use layer_norm2d::{ChannelsFirst, LayerNorm2d};
pub use layer_scale::{LayerScale, ScaleAxis};
pub use linear::{Linear, LinearConfig};
pub use max_pool2d::{MaxPool2d, Pool2dConfig};
pub use param::{join, Param};
pub use patch_merging::PatchMerging;
pub use permute::Permute;
pub use position_embedding::PositionEmbedding;
pub use relu::ReLU;
pub use select_token::SelectToken;
pub use shifted_window_attention::{ShiftedWindowAttention, ShiftedWindowAttentionConfig};
pub use sigmoid::Sigmoid;
pub use softmax::Softmax;
pub use stochastic_depth::{DropMode, StochasticDepth};
pub use summary::{summary, Summary, SummaryRow};
pub use tanh::Tanh;
pub use util::IntoPair;
pub use wrapped::Wrapped;
