"""Building blocks: layers, normalisations and blocks shared by the model families."""
from .image_pool import ImagePool
from .layers import EqualizedConv2d, EqualizedLinear, MinibatchStddev, PixelNorm
from .patchgan import (
    MultiscaleDiscriminator,
    NLayerDiscriminator,
    PixelDiscriminator,
    image_gan,
    patchgan_receptive_field,
    pix2pix_patchgan,
)
from .resnet_generator import ResnetBlock, ResnetGenerator
from .spade import SPADE, SegmapPyramid, SPADEResBlock, resize_segmap
from .unet import NoiseDropout, UnetGenerator, unet_depth
from .vgg import VGG19, VGGLoss, VGGWeightsError, load_vgg19

__all__ = [
    "ImagePool",
    "EqualizedConv2d",
    "EqualizedLinear",
    "MinibatchStddev",
    "PixelNorm",
    "MultiscaleDiscriminator",
    "NLayerDiscriminator",
    "NoiseDropout",
    "PixelDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "SPADE",
    "SPADEResBlock",
    "SegmapPyramid",
    "UnetGenerator",
    "VGG19",
    "VGGLoss",
    "VGGWeightsError",
    "image_gan",
    "load_vgg19",
    "patchgan_receptive_field",
    "pix2pix_patchgan",
    "resize_segmap",
    "unet_depth",
]
