"""Evaluation metrics, feature extractors and the protocols that tie them together."""
from .classifier import ClassifierWeightsError, default_classifier_path, load_fmnist_classifier, train_fmnist_classifier
from .extractors import EXTRACTOR_NAMES, FeatureExtractor, create_extractor, extract, wrap_module
from .frechet import FeatureStats, fid_from_features, frechet_distance
from .inception import InceptionFID, InceptionWeightsError, InceptionWeightsNotFoundError, load_inception
from .inception_score import inception_score
from .kid import kernel_inception_distance, mmd2_unbiased
from .msssim import ms_ssim, ms_ssim_diversity, ssim
from .prdc import precision_recall_density_coverage
from .sr import psnr_y, rgb_to_y, sr_scores, ssim_y
from .swd import sliced_wasserstein

__all__ = [
    "EXTRACTOR_NAMES", "ClassifierWeightsError", "FeatureExtractor", "FeatureStats", "InceptionFID",
    "InceptionWeightsError", "InceptionWeightsNotFoundError", "create_extractor", "default_classifier_path",
    "extract", "fid_from_features", "frechet_distance", "inception_score", "kernel_inception_distance",
    "load_fmnist_classifier", "load_inception", "mmd2_unbiased", "ms_ssim", "ms_ssim_diversity",
    "precision_recall_density_coverage", "psnr_y", "rgb_to_y", "sliced_wasserstein", "sr_scores", "ssim", "ssim_y",
    "train_fmnist_classifier", "wrap_module",
]
