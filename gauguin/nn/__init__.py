"""Building blocks: layers, normalisations and blocks shared by the model families."""
from .layers import MinibatchStddev
from .patchgan import MultiscaleDiscriminator, NLayerDiscriminator
from .spade import SPADE, SegmapPyramid, SPADEResBlock, resize_segmap
from .vgg import VGG19, VGGLoss, VGGWeightsError, load_vgg19

__all__ = [
    "MinibatchStddev",
    "MultiscaleDiscriminator",
    "NLayerDiscriminator",
    "SPADE",
    "SPADEResBlock",
    "SegmapPyramid",
    "VGG19",
    "VGGLoss",
    "VGGWeightsError",
    "load_vgg19",
    "resize_segmap",
]
