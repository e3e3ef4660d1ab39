"""mIoU / pixel accuracy against hand-computed values and torchmetrics; the segmenter on real data."""
import pytest
import torch

from gauguin.fileio import WeightsFileError
from gauguin.metrics.segmentation import confusion_matrix, scores_from_confusion, segmentation_scores
from gauguin.metrics.segmenter import fit_segmenter, load_segmenter, segmenter_scores, train_segmenter


def test_scores_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 1]])
    predicted = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 1]])
    conf = confusion_matrix(predicted, target, 3)
    assert conf.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 2]]
    s = scores_from_confusion(conf)
    # IoU_0 = 1/(2+2-1), IoU_1 = 3/(3+4-3), IoU_2 = 2/(3+2-2)
    assert s["miou"] == pytest.approx((1 / 3 + 3 / 4 + 2 / 3) / 3)
    assert s["pixel_accuracy"] == pytest.approx(6 / 8)
    assert s["mean_accuracy"] == pytest.approx((1 / 2 + 1 + 2 / 3) / 3)


def test_ignore_index_and_absent_labels():
    target = torch.tensor([0, 0, 3, 3, 1])
    predicted = torch.tensor([0, 0, 1, 2, 1])
    s = segmentation_scores(predicted, target, 4, ignore_index=3)
    assert s == pytest.approx({"miou": 1.0, "pixel_accuracy": 1.0, "mean_accuracy": 1.0})  # label 2 never occurs
    with pytest.raises(ValueError, match="outside 0..3"):
        confusion_matrix(torch.tensor([4]), torch.tensor([0]), 4)
    with pytest.raises(ValueError, match="don't-care"):
        segmentation_scores(predicted[2:4], target[2:4], 4, ignore_index=3)


def test_matches_torchmetrics():
    tm = pytest.importorskip("torchmetrics.functional.classification")
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 6, (4, 16, 16), generator=gen)
    predicted = torch.where(torch.rand(4, 16, 16, generator=gen) < 0.6, target,
                            torch.randint(0, 6, (4, 16, 16), generator=gen))
    ours = segmentation_scores(predicted, target, 6, ignore_index=5)
    theirs = tm.multiclass_jaccard_index(predicted, target, 6, ignore_index=5, average="none")[:5].mean()
    assert ours["miou"] == pytest.approx(theirs.item(), abs=1e-6)
    acc = tm.multiclass_accuracy(predicted, target, 6, ignore_index=5, average="micro")
    assert ours["pixel_accuracy"] == pytest.approx(acc.item(), abs=1e-6)


@pytest.fixture(scope="module")
def silhouettes():
    from gauguin.data import FashionMNISTSilhouettes

    train = FashionMNISTSilhouettes("train").get_batch(torch.arange(3000))
    test = FashionMNISTSilhouettes("test").get_batch(torch.arange(1000))
    return train, test


def test_silhouettes_are_labelled_garments(silhouettes):
    _, test = silhouettes
    maps, labels, images = test["label_map"], test["label"], test["image"]
    assert maps.shape == (1000, 28, 28) and maps.dtype == torch.int64
    for i in range(20):
        assert set(maps[i].unique().tolist()) <= {0, labels[i].item() + 1}
    assert images[:, 0][maps > 0].mean() > images[:, 0][maps == 0].mean() + 0.5  # garments are bright, background dark


@pytest.mark.slow
def test_segmenter_learns_real_pairs(silhouettes, tmp_path):
    """Trained briefly on real pairs, the segmenter scores real images against their own label maps far
    above the same images against shuffled label maps (the mIoU a generator ignoring its input gets)."""
    train, test = silhouettes
    model = fit_segmenter(train["image"], train["label_map"], 11, epochs=1, progress=False)
    own = segmenter_scores(model, test["image"], test["label_map"])
    shuffled = segmenter_scores(model, test["image"], test["label_map"][torch.randperm(1000)])
    assert own["pixel_accuracy"] > 0.7 and own["miou"] > 0.35
    assert shuffled["miou"] < own["miou"] / 2


def test_segmenter_file_roundtrip_and_errors(tmp_path):
    from gauguin.data import FashionMNISTSilhouettes

    class Small:  # the first 256 pairs of a split, through the dataset contract
        def __init__(self, split):
            self.data = FashionMNISTSilhouettes(split)
            self.num_labels, self.dont_care_index, self.label_names = 11, None, self.data.label_names

        def __len__(self):
            return 256

        def get_batch(self, idx):
            return self.data.get_batch(idx)

    path = tmp_path / "seg.safetensors"
    result = train_segmenter(Small("train"), Small("test"), path, "fashion-mnist", epochs=1, progress=False)
    loaded = load_segmenter(path)
    assert loaded.num_labels == 11 and loaded.label_names[1] == "T-shirt/top"
    assert loaded.weights_sha256 == result["sha256"]
    batch = Small("test").get_batch(torch.arange(256))
    assert segmenter_scores(loaded, batch["image"], batch["label_map"])["miou"] == pytest.approx(result["miou"])
    with pytest.raises(WeightsFileError, match="do not exist"):
        load_segmenter(tmp_path / "missing.safetensors")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WeightsFileError, match="seg.safetensors"):
        load_segmenter(path)


@pytest.mark.slow
def test_cli_train_segmenter_on_real_coco_stuff(tmp_path):
    """The generic path on real COCO-Stuff pairs: 183 labels, don't-care (raw 255) ignored."""
    import subprocess
    import sys
    from pathlib import Path

    coco = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "coco_stuff"
    if not coco.is_dir():
        pytest.skip("../shared/fixtures is not beside the repository")
    out = tmp_path / "coco_seg.safetensors"
    done = subprocess.run([sys.executable, "-m", "gauguin.cli", "eval", "train-segmenter", "--data",
                           f"coco-stuff:{coco}", "--epochs", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mIoU" in done.stdout
    model = load_segmenter(out)
    assert model.num_labels == 183 and model.ignore_index == 182 and model.in_channels == 3
