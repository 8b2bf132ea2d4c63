"""The proximal step's pieces, without training: who gets pushed, by how much, and the share below the threshold."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimbench.core.errors import SlimbenchError
from slimbench.pruning.sparsity import SparsityRecipe, prox_bn_, share_below, targeted_weights


def _net(*gammas: list[float]) -> nn.Sequential:
    layers = []
    for g in gammas:
        bn = nn.BatchNorm2d(len(g))
        with torch.no_grad():
            bn.weight.copy_(torch.tensor(g))
        layers.append(bn)
    return nn.Sequential(*layers)


def test_relative_prox_spares_each_layers_largest_and_lands_small_ones_on_zero() -> None:
    net = _net([1.0, 0.5, 0.2, -0.1], [2.0, 2.0, 1.0])
    prox_bn_(net, 0.3, relative=True)
    a, b = net[0].weight.detach(), net[1].weight.detach()
    assert a[0] == 1.0 and b[0] == 2.0 and b[1] == 2.0  # the layer max is never pushed
    assert a[3] == 0.0  # |-0.1| - 0.3 < 0: exactly zero, not past it
    assert b[2] == pytest.approx(0.7)  # (max - |g|) / (max - min) = 1 for the layer's smallest
    assert a[2] == 0.0  # 0.2 - 0.3 * (1 - 0.2) / (1 - 0.1) < 0
    assert share_below(net, 0.01) == pytest.approx(2 / 7)


def test_targeted_weights_push_only_the_lowest_share_within_the_layer_cap() -> None:
    net = _net([1.0, 0.9, 0.1, 0.05], [1.0, 1.0, 1.0, 1.0, 0.02, 0.01])
    w = targeted_weights(net, 0.4, max_layer=0.5)  # 4 of 10 channels, by |gamma| / layer mean
    assert w[net[0]].tolist() == [0, 0, 1, 1] and w[net[1]].tolist() == [0, 0, 0, 0, 1, 1]
    w = targeted_weights(net, 0.9, max_layer=0.5)  # at most half of any layer, the lowest first
    assert w[net[0]].tolist() == [0, 0, 1, 1] and int(w[net[1]].sum()) == 3 and w[net[1]][4:].tolist() == [1, 1]
    before = net[0].weight.detach().clone()
    prox_bn_(net, 0.5, weights=targeted_weights(net, 0.4, max_layer=0.5))
    assert net[0].weight[:2].tolist() == before[:2].tolist() and net[0].weight[2:].tolist() == [0.0, 0.0]
    assert all(v == 0 for v in targeted_weights(net, 0.0)[net[1]].tolist())


def test_recipe_schedules_and_refuses_bad_values() -> None:
    r = SparsityRecipe(lam=2.0, ramp=0.5)
    assert r.lam_at(0, 100) == 0.0 and r.lam_at(25, 100) == 1.0 and r.lam_at(80, 100) == 2.0
    t = SparsityRecipe(lam=2.0, ramp=0.5, target=0.6)
    assert t.lam_at(0, 100) == 2.0 and t.ramp_at(25, 100) == 0.5  # the targeted share rises, lambda does not
    for bad in ({"lam": -1.0}, {"ramp": 1.5}, {"threshold": 0.0}, {"target": 1.0}):
        with pytest.raises(SlimbenchError):
            SparsityRecipe(**bad)


def test_per_layer_targets_thin_every_layer_and_keep_multiples_of_round_to() -> None:
    wide = [float(i + 1) for i in range(32)]
    narrow = [float(i + 1) for i in range(16)]
    net = _net(wide, narrow)
    w = targeted_weights(net, 0.6, per_layer=True, round_to=8)
    # 60% of 32 leaves 12.8 channels, rounded up to 16 kept; 60% of 16 leaves 6.4, rounded up to 8 kept
    assert int(w[net[0]].sum()) == 16 and int(w[net[1]].sum()) == 8
    assert w[net[0]][:16].tolist() == [1.0] * 16 and w[net[1]][:8].tolist() == [1.0] * 8  # the lowest ones
    glob = targeted_weights(net, 0.6)  # a global ranking by |gamma| / layer mean takes other counts per layer
    assert int(glob[net[0]].sum()) + int(glob[net[1]].sum()) == int(0.6 * 48)
    capped = targeted_weights(net, 0.95, per_layer=True, round_to=1, max_layer=0.5)
    assert int(capped[net[0]].sum()) == 16 and int(capped[net[1]].sum()) == 8  # the per-layer cap still holds


def test_per_layer_targets_line_up_across_a_c2f_residual_stream() -> None:
    """C2f's residual stream (cv1's second half and each adding Bottleneck's cv2) is one pruning group: the same
    channels are targeted in all of them, so the zeros line up and the threshold rule can remove them."""
    from ultralytics.nn.modules.block import C2f
    from ultralytics.nn.tasks import DetectionModel

    from slimbench.pruning.sparsity import batchnorms, coupled_units

    model = DetectionModel("yolov8n.yaml", nc=3, verbose=False)
    torch.manual_seed(0)
    for bn in batchnorms(model):
        with torch.no_grad():
            bn.weight.uniform_(0.1, 1.0)  # different rankings in every layer
    w = targeted_weights(model, 0.6, per_layer=True, round_to=8)
    streams = [b for b in model.modules() if isinstance(b, C2f) and all(m.add for m in b.m)]
    assert streams, "yolov8n's backbone C2f blocks add their input"
    for block in streams:
        c = block.c
        first = w[block.cv1.bn][c:]
        assert 0 < int(first.sum()) < c
        for m in block.m:
            assert torch.equal(w[m.cv2.bn], first)
    blocks = [b for b in model.modules() if isinstance(b, C2f)]
    assert len(blocks) > len(streams), "yolov8n's neck C2f blocks do not add their input"
    for block in blocks:  # both halves of every cv1 lose the same count: the fold back to C2f pads nothing
        c = block.c
        assert int(w[block.cv1.bn][:c].sum()) == int(w[block.cv1.bn][c:].sum()) > 0
    units = coupled_units(model)
    assert sum(len(u) for u in units) == len(batchnorms(model)) + len(blocks)  # each cv1 appears in two units


def test_layer_targets_replace_the_share_under_their_module_only() -> None:
    """``layer_shares`` (the recipe's layer_targets) thin the named module harder; ``model.2`` is not ``model.22``."""
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolov8n.yaml", nc=3, verbose=False)
    head, neighbour = model.model[22].cv2[0][0].bn, model.model[21].cv2.bn  # 64 channels each
    plain = targeted_weights(model, 0.6, per_layer=True, round_to=8)
    heavy = targeted_weights(model, 0.6, per_layer=True, round_to=8, layer_shares={"model.2": 0.0, "model.22": 0.75})
    assert int(plain[head].sum()) == 32 and int(heavy[head].sum()) == 48  # 64 - 16 kept at 0.75
    assert torch.equal(heavy[neighbour], plain[neighbour])  # model.21 is under neither name
    assert int(heavy[model.model[2].cv2.bn].sum()) == 0  # model.2's own share, 0: nothing targeted


def test_recipe_refuses_layer_targets_it_cannot_apply() -> None:
    with pytest.raises(SlimbenchError, match=r"model\.22=1: the share must be in \[0, 1\)"):
        SparsityRecipe(target=0.6, per_layer=True, layer_targets=(("model.22", 1.0),))
    with pytest.raises(SlimbenchError, match="needs a per-layer target share"):
        SparsityRecipe(target=0.6, layer_targets=(("model.22", 0.7),))


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo11n.yaml", "yolo26n.yaml"])
def test_unmatched_layer_targets_name_the_modules_without_a_batchnorm(cfg: str) -> None:
    """A --layer-target that holds no BatchNorm (an Upsample, a missing index) is named, so it is refused."""
    from ultralytics.nn.tasks import DetectionModel

    from slimbench.pruning.sparsity import unmatched_layer_targets

    model = DetectionModel(cfg, nc=3, verbose=False)
    upsample = next(f"model.{i}" for i, m in enumerate(model.model) if isinstance(m, nn.Upsample))
    assert unmatched_layer_targets(model, [upsample, "model.99", "model.2"]) == [upsample, "model.99"]  # no BN
    assert unmatched_layer_targets(model, ["model.0", "model.9.cv1", "model.22"]) == []


def test_epoch_records_carry_map_only_for_validated_epochs(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """With ``val=False`` ultralytics validates the last epoch only and keeps the metrics of none before: an
    epoch it did not validate gets no mAP50-95 in its record (not the zeros ultralytics starts with), one it did
    gets the metric (what :meth:`ProximalSparsityTrainer.validate` notes)."""
    from types import SimpleNamespace

    from slimbench.pruning.sparsity import HISTORY_FILE, report_epoch

    net = _net([1.0, 0.0, 0.5])
    trainer = SimpleNamespace(
        epoch=0,
        epochs=2,
        ema=None,
        model=net,
        recipe=SparsityRecipe(),
        history=[],
        save_dir=str(tmp_path),
        metrics={"metrics/mAP50-95(B)": 0.0},  # ultralytics' start values, before any validation
        current_lambda=lambda: 4.0,
    )
    report_epoch(trainer)
    trainer.epoch, trainer.validated_epoch, trainer.metrics = 1, 1, {"metrics/mAP50-95(B)": 0.61}
    report_epoch(trainer)
    first, last = trainer.history
    assert "map50_95" not in first and first["share_below"] == pytest.approx(1 / 3)
    assert last["map50_95"] == 0.61
    assert "not validated" in capsys.readouterr().out
    assert (tmp_path / HISTORY_FILE).is_file()
