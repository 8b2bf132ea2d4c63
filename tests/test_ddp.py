"""Our trainers under ultralytics' multi-GPU launcher (``device=0,1``), checked on the CPU (issue #25 item 3).

The launcher cloudpickles the trainer class, its args, the model and callbacks into a file and runs a generated
script in each worker that rebuilds the trainer from it and trains. Here ``slimbench.pruning.training.train`` runs
as the CLI runs it until ultralytics would launch; ``generate_ddp_file`` writes the worker's file, and a fresh
process runs that file unchanged, with only ``BaseTrainer.train`` (the loop, which needs GPUs) replaced by a probe
of the trainer the file built. Then two gloo ranks run the proximal step on a DDP-wrapped model with different data.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

from slimbench.model.checkpoint import save_detector
from slimbench.pruning import training
from slimbench.pruning.sparsity import SparsityRecipe

pytest.importorskip("cloudpickle")

RECIPE = SparsityRecipe(lam=3.0, ramp=0.25, taylor=True, target=0.5, per_layer=True, layer_targets=(("model.22", 0.7),))

# Runs the generated worker file as torch.distributed.run would (as __main__), the training loop swapped for a probe.
PROBE = textwrap.dedent(
    """
    import dataclasses, json, runpy, sys

    from ultralytics.engine.trainer import BaseTrainer


    def count(m):
        return sum(p.numel() for p in m.parameters())


    def name(callback):
        return getattr(callback, "__name__", type(callback).__name__)


    def probe(self):
        given = self.model
        self.setup_model()  # the first thing _setup_train does: a given module must stay as it is
        recipe = getattr(type(self), "recipe", None)
        facts = {
            "mro": [c.__name__ for c in type(self).__mro__],
            "recipe": dataclasses.asdict(recipe) if recipe is not None else None,
            "sparsity": getattr(type(self), "sparsity", None),
            "model_kept": self.model is given,
            "params": count(self.model),
            "given": type(given).__name__,  # a str (the YAML) for an original: setup_model builds it
            "get_model_params": (
                count(self.get_model(cfg=given.yaml, weights=given, verbose=False)) if hasattr(given, "yaml") else None
            ),
            "report_epoch": sum(name(cb) == "report_epoch" for cb in self.callbacks["on_fit_epoch_end"]),
            "lambdas": sum(cb.__name__ == "<lambda>" for cb in self.callbacks["on_pretrain_routine_end"]),
            "args": {k: getattr(self.args, k) for k in ("optimizer", "lr0", "mosaic", "amp", "val", "warmup_epochs")},
            "stoppers": [
                {"rule": dataclasses.asdict(cb.rule), "curve": cb.curve}
                for cb in self.callbacks["on_fit_epoch_end"]
                if type(cb).__name__ == "StopWhenConverged"
            ],
            "epoch_starts": sum(name(cb) == "epoch_started" for cb in self.callbacks["on_train_epoch_start"]),
        }
        with open(sys.argv[2], "w") as f:
            json.dump(facts, f)


    BaseTrainer.train = probe
    runpy.run_path(sys.argv[1], run_name="__main__")
    """
)


class _Launched(Exception):
    """Raised where ultralytics would start torch.distributed.run."""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from slimbench.data.synthetic import make_dataset

    return make_dataset(tmp_path_factory.mktemp("ddp") / "data", train=4, val=2, imgsz=64)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, data: Path) -> dict[str, Path]:
    """A detector for the dataset's classes, and the same pruned to half its channels (for fine-tuning)."""
    import yaml

    from slimbench.pruning.structural import prune_detection_model

    nc = len(yaml.safe_load(data.read_text())["names"])
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    net = DetectionModel("yolov8n.yaml", nc=nc, verbose=False)
    trained = save_detector(net, folder / "trained.pt")
    prune_detection_model(net, 0.5)
    return {"trained": trained, "pruned": save_detector(net, folder / "pruned.pt")}


def _worker_view(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model: Path | str, data: Path, **kw: object
) -> dict[str, object]:
    """Train as the CLI does up to the DDP launch, write the worker's file, run it in a fresh process; its facts."""
    from ultralytics.engine.trainer import BaseTrainer
    from ultralytics.utils.dist import generate_ddp_file

    files: list[Path] = []

    def launch(trainer: BaseTrainer) -> None:
        files.append(Path(generate_ddp_file(trainer)))
        raise _Launched

    monkeypatch.setattr(BaseTrainer, "train", launch)
    with pytest.raises(_Launched):
        training.train(model, data, epochs=1, imgsz=64, batch=2, project=tmp_path / "runs", name="ddp", **kw)
    script, state = files[0], files[0].with_suffix(".pt")
    try:
        probe, facts = tmp_path / "probe.py", tmp_path / "facts.json"
        probe.write_text(PROBE)
        proc = subprocess.run(
            [sys.executable, str(probe), str(script), str(facts)], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(facts.read_text())
    finally:
        script.unlink(missing_ok=True)
        state.unlink(missing_ok=True)


def _params(path: Path) -> int:
    from slimbench.model.checkpoint import load_detector

    return sum(p.numel() for p in load_detector(path).model.parameters())


def test_the_proximal_trainer_is_rebuilt_with_its_recipe(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: Path, checkpoints: dict[str, Path]
) -> None:
    facts = _worker_view(monkeypatch, tmp_path, checkpoints["trained"], data, recipe=RECIPE, lr0=0.004)
    assert facts["mro"][:2] == ["ProximalSparsityTrainer", "ProximalSparsityTrainer"]
    assert facts["recipe"] == json.loads(json.dumps(asdict(RECIPE)))  # every knob, layer targets included
    assert facts["report_epoch"] == 1, "the worker gets the launcher's callbacks: the epoch report must not double"
    assert facts["lambdas"] == 1  # train()'s thread-count callback (a lambda) travelled too
    args = facts["args"]
    assert (args["optimizer"], args["lr0"], args["mosaic"], args["amp"]) == ("SGD", 0.004, 0.0, False)
    assert facts["model_kept"] and facts["params"] == _params(checkpoints["trained"])


def test_the_subgradient_trainer_is_rebuilt_with_its_strength(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: Path, checkpoints: dict[str, Path]
) -> None:
    facts = _worker_view(monkeypatch, tmp_path, checkpoints["trained"], data, sparsity=0.003)
    assert facts["mro"][:2] == ["SparsityTrainer", "SparsityTrainer"] and facts["sparsity"] == 0.003
    assert facts["model_kept"] and facts["params"] == _params(checkpoints["trained"])


def test_the_fine_tune_trainer_trains_the_pruned_model_not_the_yaml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: Path, checkpoints: dict[str, Path]
) -> None:
    facts = _worker_view(monkeypatch, tmp_path, checkpoints["pruned"], data, keep_shape=True)
    pruned, full = _params(checkpoints["pruned"]), _params(checkpoints["trained"])
    assert facts["mro"][0] == "ShapeKeepingTrainer" and pruned < 0.5 * full
    assert facts["model_kept"] and facts["params"] == pruned  # the module the launcher pickled, as it is
    assert facts["get_model_params"] == pruned  # and get_model would not rebuild it from yolov8n.yaml either


def test_the_original_is_trained_from_its_yaml_with_its_convergence_rule(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: Path
) -> None:
    """``train --until-converged`` and make-fixtures' original: the worker builds the model from the YAML and
    carries the convergence callback with its rule (rank 0 records the curve and its stop is broadcast)."""
    from slimbench.pruning.convergence import ConvergenceRule, StopWhenConverged

    rule = ConvergenceRule(patience=7, min_delta=0.003, cap=40, min_epochs=20)
    stopper = StopWhenConverged(rule)
    facts = _worker_view(monkeypatch, tmp_path, "yolov8n.yaml", data, callbacks=stopper.callbacks())
    assert facts["mro"][0] == "GivenModelTrainer" and facts["given"] == "str"  # built in the worker, from the YAML
    assert facts["stoppers"] == [{"rule": json.loads(json.dumps(asdict(rule))), "curve": []}]
    assert facts["epoch_starts"] == 1  # its epoch marker travelled too: the final validation is not an epoch
    assert facts["params"] == _params_of_yaml("yolov8n.yaml", data)


def test_the_fine_tune_recipe_and_final_validation_reach_the_worker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: Path, checkpoints: dict[str, Path]
) -> None:
    """make-fixtures' fine-tune with ``--finetune-optimizer SGD --finetune-lr0 ... --final-val-only``: the worker's
    args are the plan's."""
    from slimbench.pruning.fixture_plan import FixturePlan, finetune_recipe, stage_validation

    plan = FixturePlan(finetune_optimizer="SGD", finetune_lr0=0.02, finetune_warmup_epochs=0.0, val_each_epoch=False)
    recipe = {**finetune_recipe(plan), **stage_validation(plan)}
    facts = _worker_view(monkeypatch, tmp_path, checkpoints["pruned"], data, keep_shape=True, **recipe)
    args = facts["args"]
    assert (args["optimizer"], args["lr0"], args["warmup_epochs"], args["val"]) == ("SGD", 0.02, 0.0, False)
    assert facts["mro"][0] == "ShapeKeepingTrainer" and facts["params"] == _params(checkpoints["pruned"])


def _params_of_yaml(cfg: str, data: Path) -> int:
    import yaml

    nc = len(yaml.safe_load(data.read_text())["names"])
    return sum(p.numel() for p in DetectionModel(cfg, nc=nc, verbose=False).parameters())


# Two gloo ranks, one DDP-wrapped yolov8n, different images per rank: the real optimizer_step of the proximal trainer
# (optimizer step, Taylor scores, targeted proximal step, EMA update) on each, built without its dataset.
RANKS = textwrap.dedent(
    """
    import sys

    import torch
    import torch.distributed as dist
    from torch import nn
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.torch_utils import ModelEMA

    from slimbench.pruning.sparsity import SparsityRecipe, proximal_trainer

    RECIPE = SparsityRecipe(lam=60.0, ramp=0.0, taylor=True, target=0.5, per_layer=True,
                            layer_targets=(("model.22", 0.75),))


    def tensors(x):
        if isinstance(x, torch.Tensor):
            return [x]
        items = x.values() if isinstance(x, dict) else x if isinstance(x, (list, tuple)) else []
        return [t for i in items for t in tensors(i)]


    def rank_main(rank, world, init, out):
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
        torch.manual_seed(rank)  # each rank starts different: DDP must broadcast rank 0's weights
        net = DetectionModel("yolov8n.yaml", nc=2, verbose=False).train()
        cls = proximal_trainer(RECIPE)
        t = cls.__new__(cls)  # the step's state, as _setup_train leaves it
        t.model = nn.parallel.DistributedDataParallel(net, find_unused_parameters=True, broadcast_buffers=False)
        bn = [p for n, p in net.named_parameters() if ".bn." in n]
        rest = [p for n, p in net.named_parameters() if ".bn." not in n and p.requires_grad]
        t.optimizer = torch.optim.SGD([{"params": bn, "param_group": "bn"}, {"params": rest}], lr=0.01, momentum=0.9)
        t.scaler = torch.amp.GradScaler("cuda", enabled=False)
        t.device, t.epochs, t.train_loader, t.accumulate = torch.device("cpu"), 1, None, 1
        t.ema, t.prox_steps, t.taylor, t.history = ModelEMA(t.model), 0, {}, []
        for i in range(3):
            g = torch.Generator().manual_seed(100 * rank + i)  # different images on each rank
            x = torch.rand(2, 3, 64, 64, generator=g)
            loss = sum(o.float().pow(2).mean() for o in tensors(t.model(x)))
            loss.backward()
            t.optimizer_step()
        torch.save({"model": net.state_dict(), "ema": t.ema.ema.state_dict(), "steps": t.prox_steps}, out % rank)
        dist.destroy_process_group()


    if __name__ == "__main__":
        torch.multiprocessing.spawn(rank_main, args=(2, sys.argv[1], sys.argv[2]), nprocs=2)
    """
)


def _zero_share(state: dict[str, torch.Tensor], prefix: str, inside: bool) -> float:
    """Share of BN scales at (or, on the EMA, within 1e-3 of) zero, inside or outside the ``prefix`` module."""
    gammas = [v for k, v in state.items() if k.endswith(".bn.weight") and k.startswith(prefix + ".") == inside]
    flat = torch.cat([g.float().abs().flatten() for g in gammas])
    return float((flat < 1e-3).float().mean())


def test_two_ranks_apply_the_proximal_step_and_the_ema_identically(tmp_path: Path) -> None:
    script = tmp_path / "ranks.py"
    script.write_text(RANKS)
    out = str(tmp_path / "rank%d.pt")
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "init"), out], capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(out % r, weights_only=True) for r in (0, 1))
    assert r0["steps"] == r1["steps"] == 3
    params = [k for k in r0["model"] if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    for k in params:  # weights, BN scales and shifts: bit-identical on both ranks, in the model and in the EMA
        assert torch.equal(r0["model"][k], r1["model"][k]), k
        assert torch.equal(r0["ema"][k], r1["ema"][k]), k
    # each rank saw its own images (BN statistics are not synchronised), yet stepped alike
    assert not torch.equal(r0["model"]["model.0.bn.running_mean"], r1["model"]["model.0.bn.running_mean"])
    # rank 0's EMA, the one ultralytics saves, is the sparse one, with the head's own share under the DDP wrapper
    head, rest = _zero_share(r0["ema"], "model.22", True), _zero_share(r0["ema"], "model.22", False)
    assert 0.7 <= head <= 0.8 and 0.45 <= rest <= 0.55, (head, rest)
    assert _zero_share(r0["model"], "model.22", True) == pytest.approx(head, abs=0.01)
