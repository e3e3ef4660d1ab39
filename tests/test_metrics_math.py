"""Tests of the evaluation metrics against closed forms, brute-force references and their defining properties."""
import math

import numpy as np
import pytest
import torch

from gauguin.metrics.frechet import FeatureStats, fid_from_features, frechet_distance
from gauguin.metrics.inception_score import inception_score
from gauguin.metrics.kid import kernel_inception_distance, mmd2_unbiased
from gauguin.metrics.msssim import C1, MS_SSIM_WEIGHTS, max_scales, ms_ssim, ms_ssim_diversity, ssim
from gauguin.metrics.prdc import precision_recall_density_coverage


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors (tests/conftest.py)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _spd_from(q, eigenvalues):
    return (q * eigenvalues) @ q.T


# --- Fréchet distance -------------------------------------------------------------------------

def test_frechet_diagonal_closed_form():
    rng = _rng()
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(FeatureStats(mu1, np.diag(a), 1000), FeatureStats(mu2, np.diag(b), 1000))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_one_dimensional():
    got = frechet_distance(FeatureStats([1.0], [[4.0]], 100), FeatureStats([-2.0], [[9.0]], 100))
    assert got == pytest.approx(3.0**2 + (2.0 - 3.0) ** 2, rel=1e-12)


def test_frechet_commuting_covariances():
    rng = _rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    l1, l2 = rng.uniform(0.05, 4, 8), rng.uniform(0.05, 4, 8)
    mu = rng.normal(size=8)
    got = frechet_distance(FeatureStats(mu, _spd_from(q, l1), 100), FeatureStats(np.zeros(8), _spd_from(q, l2), 100))
    assert got == pytest.approx(mu @ mu + np.sum((np.sqrt(l1) - np.sqrt(l2)) ** 2), rel=1e-9)


def test_frechet_general_covariances_vs_eigvals_of_product():
    # Independent reference: the eigenvalues of Σ1Σ2 are real and >= 0, and Tr((Σ1Σ2)^½) is the sum of their roots.
    rng = _rng(2)
    a, b = rng.normal(size=(10, 10)), rng.normal(size=(10, 10))
    s1, s2 = a @ a.T + 0.1 * np.eye(10), b @ b.T + 0.1 * np.eye(10)
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    expected = np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    got = frechet_distance(FeatureStats(np.zeros(10), s1, 100), FeatureStats(np.zeros(10), s2, 100))
    assert got == pytest.approx(expected, rel=1e-8)


def test_fid_self_zero_and_symmetric():
    rng = _rng(3)
    x = np.maximum(rng.normal(0.3, 1.0, size=(500, 64)), 0)  # ReLU-like, as Inception pool features
    y = np.maximum(rng.normal(0.5, 1.2, size=(400, 64)), 0)
    assert abs(fid_from_features(x, x)) < 1e-6
    assert abs(fid_from_features(torch.from_numpy(x).float(), torch.from_numpy(x).float())) < 1e-6
    assert fid_from_features(x, y) > 1.0
    assert fid_from_features(x, y) == pytest.approx(fid_from_features(y, x), rel=1e-8)


def test_fid_warns_when_covariance_singular():
    x = _rng(4).normal(size=(20, 32))
    with pytest.warns(UserWarning, match="covariance is singular with 20 samples of 32 features"):
        value = fid_from_features(x, x + 1.0)
    assert value == pytest.approx(32.0, rel=1e-6)  # identical covariances: only the mean shift remains


def test_fid_bad_inputs():
    x = _rng(5).normal(size=(50, 4))
    bad = x.copy()
    bad[3, 1], bad[7, 2] = np.nan, np.inf
    with pytest.raises(ValueError, match="1 NaN and 1 Inf"):
        fid_from_features(x, bad)
    with pytest.raises(ValueError, match="different feature dimensions"):
        fid_from_features(x, x[:, :3])
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        fid_from_features(x.ravel(), x)
    with pytest.raises(ValueError, match="at least 2 samples"):
        fid_from_features(x[:1], x)
    with pytest.raises(ValueError, match="positive semi-definite"):
        frechet_distance(FeatureStats(np.zeros(2), np.diag([1.0, -1.0]), 10), FeatureStats(np.zeros(2), np.eye(2), 10))


def test_feature_stats_round_trip(tmp_path):
    from safetensors.numpy import load_file, save_file

    stats = FeatureStats.from_features(_rng(6).normal(size=(30, 5)))
    save_file(stats.to_arrays(), str(tmp_path / "stats.safetensors"))
    back = FeatureStats.from_arrays(load_file(str(tmp_path / "stats.safetensors")))
    assert back.n == 30 and np.array_equal(back.mu, stats.mu) and np.array_equal(back.sigma, stats.sigma)
    assert back.sigma.dtype == np.float64
    with pytest.raises(ValueError, match="missing"):
        FeatureStats.from_arrays({"mu": stats.mu})


# --- KID --------------------------------------------------------------------------------------

def test_mmd2_unbiased_matches_double_sum():
    rng = _rng(7)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(7, 3))
    k = lambda u, v: (u @ v / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(7) for j in range(7) if i != j) / 42
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(7)) / 35
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_same_vs_shifted():
    rng = _rng(8)
    x, y = rng.normal(size=(600, 32)), rng.normal(size=(600, 32))
    same, _ = kernel_inception_distance(x, y, subsets=20, subset_size=300)
    shifted, std = kernel_inception_distance(x, y + 0.5, subsets=20, subset_size=300)
    assert shifted > 0.1 and std > 0
    assert abs(same) < 0.02 * shifted
    assert kernel_inception_distance(x, y, subsets=5, subset_size=100, seed=3) == \
        kernel_inception_distance(x, y, subsets=5, subset_size=100, seed=3)


def test_mmd2_unbiased_is_unbiased_and_biased_one_is_not():
    rng = _rng(9)
    reps, m, d = 2000, 8, 4
    unbiased, biased = np.empty(reps), np.empty(reps)
    for r in range(reps):
        x, y = rng.normal(size=(m, d)), rng.normal(size=(m, d))
        unbiased[r] = mmd2_unbiased(x, y)
        k = lambda u, v: (u @ v.T / d + 1) ** 3  # noqa: E731
        biased[r] = k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()  # V-statistic, diagonals included
    se_u, se_b = unbiased.std() / math.sqrt(reps), biased.std() / math.sqrt(reps)
    assert abs(unbiased.mean()) < 4 * se_u
    assert biased.mean() > 20 * se_b


def test_kid_caps_subset_size_and_rejects_bad_input():
    rng = _rng(10)
    x, y = rng.normal(size=(40, 8)), rng.normal(size=(50, 8))
    with pytest.warns(UserWarning, match="capped at 40"):
        kernel_inception_distance(x, y, subsets=2, subset_size=1000)
    with pytest.raises(ValueError, match="at least 2 samples"):
        kernel_inception_distance(x[:1], y)
    with pytest.raises(ValueError, match="different feature dimensions"):
        mmd2_unbiased(x, y[:, :4])
    with pytest.raises(ValueError, match="1 NaN"):
        x[5, 2] = np.nan
        kernel_inception_distance(x, y)


# --- Inception Score --------------------------------------------------------------------------

def test_inception_score_closed_forms():
    k, n = 10, 200
    one_hot = np.eye(k)[np.arange(n) % k]
    assert inception_score(one_hot, splits=1) == pytest.approx((10.0, 0.0), rel=1e-12, abs=1e-12)
    assert inception_score(torch.from_numpy(one_hot), splits=5) == pytest.approx((10.0, 0.0), rel=1e-12, abs=1e-12)
    assert inception_score(np.full((n, k), 1 / k), splits=1)[0] == pytest.approx(1.0, rel=1e-12)
    assert inception_score(np.eye(k)[np.zeros(n, dtype=int)], splits=1)[0] == pytest.approx(1.0, rel=1e-12)
    # Hand-computed, with a 0·log 0 term: rows [1, 0] and [0.5, 0.5], p(y) = [0.75, 0.25].
    kl = [math.log(1 / 0.75), 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)]
    assert inception_score([[1.0, 0.0], [0.5, 0.5]], splits=1)[0] == pytest.approx(math.exp(sum(kl) / 2), rel=1e-12)


def test_inception_score_rejects_invalid_probabilities():
    with pytest.raises(ValueError, match="softmax"):
        inception_score(np.random.default_rng(0).normal(size=(20, 5)), splits=2)
    with pytest.raises(ValueError, match="1 of 2 rows have negative"):
        inception_score([[1.2, -0.2], [0.5, 0.5]], splits=1)
    with pytest.raises(ValueError, match="1 NaN"):
        inception_score([[np.nan, 1.0], [0.5, 0.5]], splits=1)
    with pytest.raises(ValueError, match="splits"):
        inception_score(np.eye(3), splits=4)
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        inception_score(np.ones(3) / 3)


# --- precision, recall, density, coverage ----------------------------------------------------

def _clusters(rng, centers, per_cluster):
    return np.concatenate([c + rng.normal(size=(per_cluster, centers.shape[1])) for c in centers])


def test_prdc_mode_dropping():
    rng = _rng(11)
    centers = rng.normal(size=(10, 16)) * 10
    real = _clusters(rng, centers, 100)
    fake = _clusters(rng, centers[:5], 100)
    # k = 10: with k = 5 in 16-D the k-NN balls under-cover the support, and precision is ~0.88 even for
    # fakes from the same distribution (the known downward bias of the k-NN estimate).
    r = precision_recall_density_coverage(real, fake, k=10)
    assert r["precision"] > 0.9 and r["recall"] < 0.6 and r["coverage"] < 0.6


def test_prdc_identical_and_same_distribution():
    rng = _rng(12)
    centers = rng.normal(size=(10, 16)) * 10
    real = _clusters(rng, centers, 100)
    r = precision_recall_density_coverage(real, real.copy(), k=5)
    assert r["precision"] == r["recall"] == r["coverage"] == 1.0
    r = precision_recall_density_coverage(torch.from_numpy(real), _clusters(rng, centers, 100), k=5)
    assert r["density"] == pytest.approx(1.0, abs=0.15)
    assert r["precision"] > 0.8 and r["recall"] > 0.8 and r["coverage"] > 0.9


def test_prdc_matches_brute_force_with_chunking():
    rng = _rng(13)
    real, fake, k = rng.normal(size=(37, 3)), rng.normal(0.3, 1.2, size=(29, 3)), 3
    dist = lambda a, b: np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))  # noqa: E731
    r_real = np.sort(dist(real, real), axis=1)[:, k]
    r_fake = np.sort(dist(fake, fake), axis=1)[:, k]
    inside = dist(real, fake) <= r_real[:, None]  # [N, M]: fake j in the ball of real i
    expected = {"precision": inside.any(0).mean(), "recall": (dist(real, fake) <= r_fake[None]).any(1).mean(),
                "density": inside.sum() / (k * len(fake)), "coverage": inside.any(1).mean()}
    got = precision_recall_density_coverage(real, fake, k=k, chunk_size=7)
    assert got == pytest.approx(expected, rel=1e-12)


def test_prdc_bad_inputs():
    x = _rng(14).normal(size=(10, 4))
    with pytest.raises(ValueError, match="k must satisfy"):
        precision_recall_density_coverage(x, x[:5], k=5)
    with pytest.raises(ValueError, match="k must satisfy"):
        precision_recall_density_coverage(x, x, k=0)
    with pytest.raises(ValueError, match="different feature dimensions"):
        precision_recall_density_coverage(x, x[:, :2], k=2)
    with pytest.raises(ValueError, match="1 NaN"):
        precision_recall_density_coverage(x, np.vstack([x[:9], [np.nan, 0, 0, 0]]), k=2)


# --- SSIM / MS-SSIM ---------------------------------------------------------------------------

def _noise(shape, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


@pytest.mark.parametrize("shape", [(3, 1, 28, 28), (2, 3, 64, 64)])
def test_ms_ssim_identical_and_noise(shape):
    a, b = _noise(shape, 0), _noise(shape, 1)
    for metric in (ssim, ms_ssim):
        same = metric(a, a.clone())
        assert same.shape == (shape[0],) and same.dtype == torch.float64
        assert torch.allclose(same, torch.ones_like(same), atol=1e-12)
        assert (metric(a, b).abs() < 0.1).all()


def test_ssim_constant_images_closed_form():
    ca, cb = 0.3, -0.5
    a, b = torch.full((1, 1, 32, 32), ca, dtype=torch.float64), torch.full((1, 1, 32, 32), cb, dtype=torch.float64)
    luminance = (2 * ca * cb + C1) / (ca**2 + cb**2 + C1)  # σ = 0, so the cs term is C2/C2 = 1
    assert ssim(a, b).item() == pytest.approx(luminance, rel=1e-9)
    # Constant images stay constant under pooling: cs_j = 1 at every scale, so MS-SSIM = l^{w_M} (renormalised).
    w = MS_SSIM_WEIGHTS[:2]
    assert ms_ssim(a, b).item() == pytest.approx(max(luminance, 0) ** (w[1] / sum(w)), rel=1e-9)
    assert ms_ssim(a, torch.full_like(b, 0.1)).item() == pytest.approx(
        ((2 * ca * 0.1 + C1) / (ca**2 + 0.01 + C1)) ** (w[1] / sum(w)), rel=1e-9)


def test_ssim_matches_direct_window_sums():
    a, b = _noise((1, 1, 12, 13), 2), _noise((1, 1, 12, 13), 3) * 0.5 + 0.3 * _noise((1, 1, 12, 13), 2)
    r = np.arange(11) - 5.0
    g = np.exp(-r**2 / 4.5)
    w = np.outer(g, g) / np.outer(g, g).sum()
    x, y = a[0, 0].numpy(), b[0, 0].numpy()
    values = []
    for i in range(2):
        for j in range(3):
            px, py = x[i:i + 11, j:j + 11], y[i:i + 11, j:j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy, cxy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum(), (w * (px - mx) * (py - my)).sum()
            values.append((2 * mx * my + C1) * (2 * cxy + 9 * C1) / ((mx**2 + my**2 + C1) * (vx + vy + 9 * C1)))
    assert ssim(a, b).item() == pytest.approx(np.mean(values), rel=1e-9)  # C2 = (0.03L)² = 9 C1


def test_ms_ssim_scales_and_bad_inputs():
    assert [max_scales(s) for s in (11, 21, 22, 28, 32, 64, 175, 176, 256)] == [1, 1, 2, 2, 2, 3, 4, 5, 5]
    a, b = _noise((2, 1, 28, 28), 4), _noise((2, 1, 28, 28), 5)
    assert torch.allclose(ms_ssim(a, b, scales=1), ssim(a, b).clamp(min=0))
    with pytest.raises(ValueError, match=r"scales must be in \[1, 2\]"):
        ms_ssim(a, b, scales=3)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        ms_ssim(a * 127.5 + 127.5, b)
    with pytest.raises(ValueError, match="1 NaN"):
        ms_ssim(a.clone().index_put_((torch.tensor(1), torch.tensor(0), torch.tensor(3), torch.tensor(4)),
                                     torch.tensor(torch.nan, dtype=torch.float64)), b)
    with pytest.raises(ValueError, match="one shape"):
        ms_ssim(a, b[:1])
    with pytest.raises(ValueError, match="smaller than the 11 px window"):
        ssim(a[..., :10, :10], b[..., :10, :10])
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        ssim(a[0], b[0])


def test_ms_ssim_diversity():
    noise = _noise((40, 1, 28, 28), 6)
    assert ms_ssim_diversity(noise[:1].expand(10, -1, -1, -1), pairs=20) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim_diversity(noise, pairs=100) < 0.1
    assert ms_ssim_diversity(noise, pairs=50, seed=1) == ms_ssim_diversity(noise, pairs=50, seed=1)
    # Two classes, each made of copies of one image: within-class pairs are identical, mixed pairs are not.
    images = torch.cat([noise[:1].expand(10, -1, -1, -1), noise[1:2].expand(10, -1, -1, -1)])
    labels = torch.arange(20) // 10
    assert ms_ssim_diversity(images, pairs=50, labels=labels) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim_diversity(images, pairs=50) < 0.8
    with pytest.warns(UserWarning, match=r"single sample: \[7\]"):
        ms_ssim_diversity(images[:11], pairs=10, labels=[0] * 10 + [7])
    with pytest.raises(ValueError, match="no class has at least 2"):
        ms_ssim_diversity(images[:3], labels=[0, 1, 2])
    with pytest.raises(ValueError, match="at least 2 images"):
        ms_ssim_diversity(images[:1])


# --- cross-checks against scipy and torchmetrics ------------------------------------------------
def test_frechet_matches_scipy_sqrtm_and_torchmetrics():
    """Same number as the textbook formula with scipy's general sqrtm and as torchmetrics' FID core."""
    linalg = pytest.importorskip("scipy.linalg")
    tm_fid = pytest.importorskip("torchmetrics.image.fid")
    rng = _rng(3)
    a = rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12))
    b = rng.normal(0.3, 1.0, size=(300, 12)) @ rng.normal(size=(12, 12))
    sa, sb = FeatureStats.from_features(a), FeatureStats.from_features(b)
    covmean = linalg.sqrtm(sa.sigma @ sb.sigma).real
    textbook = np.sum((sa.mu - sb.mu) ** 2) + np.trace(sa.sigma + sb.sigma - 2 * covmean)
    theirs = tm_fid._compute_fid(*(torch.from_numpy(x) for x in (sa.mu, sa.sigma, sb.mu, sb.sigma))).item()
    ours = frechet_distance(sa, sb)
    assert ours == pytest.approx(textbook, rel=1e-8)
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_mmd_matches_torchmetrics_poly_mmd():
    tm_kid = pytest.importorskip("torchmetrics.image.kid")
    rng = _rng(4)
    x, y = rng.normal(size=(60, 8)), rng.normal(0.2, 1.0, size=(60, 8))
    theirs = tm_kid.poly_mmd(torch.from_numpy(x), torch.from_numpy(y), degree=3, gamma=1 / 8, coef=1.0).item()
    assert mmd2_unbiased(x, y) == pytest.approx(theirs, rel=1e-9)
